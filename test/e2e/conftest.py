"""Fixtures that run agentws-demo for the end-to-end tests.

`demo_server(*args)` starts `agentws-demo --mode echo --host 127.0.0.1 --port 0 *args`
(prefixed by $AGENTWS_DEMO_WRAPPER, e.g. valgrind), waits for `listening on HOST:PORT`
and returns a DemoServer. At teardown each server gets SIGTERM and must exit 0 in time:
that is how a wrapper's error exit code (valgrind --error-exitcode) fails the suite.
"""

import os
import re
import resource
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import List, Optional

import pytest

from helpers import HOST, demo_path, t, wrapper_argv

LISTEN_RE = re.compile(r"^listening on (\S+):(\d+)$")


def _raise_nofile_limit() -> None:
    """The 1,000-connection tests need > 1,024 descriptors in this process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


_raise_nofile_limit()


class DemoServer:
    """One running agentws-demo process."""

    def __init__(self, args: List[str], log_dir: Path, index: int):
        binary = demo_path()
        if not binary.exists():
            pytest.fail(
                f"agentws-demo not found at {binary}: build it (meson compile -C build) "
                "or point AGENTWS_DEMO at it",
                pytrace=False,
            )
        self.args = list(args)
        self.argv = wrapper_argv() + [
            str(binary), "--mode", "echo", "--host", HOST, "--port", "0", *self.args
        ]
        self.stderr_path = log_dir / f"agentws-demo-{index}.stderr"
        self.stdout_lines: List[str] = []
        self._listening = threading.Event()
        self.host: Optional[str] = None
        self.port: Optional[int] = None
        self.returncode: Optional[int] = None
        self.exit_checked = False  # a test asserted the exit itself
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err
            )
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + t(10)
        while not self._listening.wait(0.05):
            if self.proc.poll() is not None:
                self._reader.join(t(2))
                pytest.fail(
                    f"agentws-demo exited with {self.proc.returncode} before listening\n"
                    f"argv: {self.argv}\n{self.log_tail()}",
                    pytrace=False,
                )
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(
                    f"agentws-demo printed no 'listening on HOST:PORT' within {t(10):.0f}s\n"
                    f"argv: {self.argv}\nstdout: {self.stdout_lines}\n{self.log_tail()}",
                    pytrace=False,
                )

    def _read_stdout(self) -> None:
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.stdout_lines.append(line)
            m = LISTEN_RE.match(line)
            if m and not self._listening.is_set():
                self.host, self.port = m.group(1), int(m.group(2))
                self._listening.set()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, limit: int = 6000) -> str:
        try:
            data = self.stderr_path.read_text(errors="replace")
        except OSError:
            data = ""
        if len(data) > limit:
            data = "...\n" + data[-limit:]
        return f"--- agentws-demo stderr ({self.stderr_path}) ---\n{data}"

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> Optional[int]:
        """Waits up to |timeout| for the process to exit; returns its code or None."""
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._reader.join(t(2))
        return self.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(t(10))
        self._reader.join(t(2))

    def expect_exit(self, timeout: float, what: str) -> None:
        """Asserts the process exits 0 within |timeout| (after |what|); teardown then skips it."""
        code = self.wait(timeout)
        self.exit_checked = True
        if code is None:
            self.kill()
            raise AssertionError(f"agentws-demo still running {timeout:.1f}s after {what}\n{self.log_tail()}")
        assert code == 0, f"agentws-demo exited with {code} after {what} (want 0)\n{self.log_tail()}"

    def stop(self, timeout: Optional[float] = None) -> int:
        """SIGTERM (if still running) and wait; returns the exit code. Kills on timeout."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.wait(timeout or t(10))
        if code is None:
            self.kill()
            raise AssertionError(
                f"agentws-demo did not exit within {timeout or t(10):.0f}s of SIGTERM\n{self.log_tail()}"
            )
        return code


@pytest.fixture
def demo_server(tmp_path):
    """Factory: demo_server("--max-message-size", "1024") -> a running DemoServer."""
    servers: List[DemoServer] = []

    def start(*args: str) -> DemoServer:
        server = DemoServer([str(a) for a in args], tmp_path, len(servers))
        servers.append(server)
        return server

    yield start

    problems = []
    for server in servers:
        if server.exit_checked:
            server.kill()
            continue
        try:
            code = server.stop()
        except AssertionError as exc:
            problems.append(str(exc))
            continue
        if code != 0:
            how = f"signal {-code}" if code < 0 else f"code {code}"
            problems.append(
                f"agentws-demo {server.args} exited with {how} after SIGTERM (want 0)\n{server.log_tail()}"
            )
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def server(demo_server) -> DemoServer:
    """A demo server with default options."""
    return demo_server()


def pytest_report_header(config):
    wrapper = " ".join(wrapper_argv())
    lines = [f"agentws-demo: {demo_path()}"]
    if wrapper:
        lines.append(f"wrapper: {wrapper}")
    scale = os.environ.get("AGENTWS_TIMEOUT_SCALE")
    if scale:
        lines.append(f"timeout scale: {scale}")
    return lines


@pytest.fixture
def agent_server(demo_server):
    """Factory: agent_server("--backlog-events", "5") -> agentws-demo --mode agent --dev-insecure ...

    insecure=False leaves out --dev-insecure. The later --mode wins over the fixture's --mode echo.
    """

    def start(*args: str, insecure: bool = True) -> DemoServer:
        extra = ["--mode", "agent"] + (["--dev-insecure"] if insecure else [])
        return demo_server(*extra, *args)

    return start
