"""examples/python/agent_runtime.py as a process: concurrent runs for several
users, and a clean stop on SIGTERM in the middle of a run."""

import asyncio
import json
import signal
import subprocess
import sys

from conftest import REPO, recv_json, run

import websockets

RUNTIME = REPO / "examples" / "python" / "agent_runtime.py"
LIFECYCLE = ["agent_started", "agent_thinking", "agent_thinking",
             "agent_thinking", "tool_executing", "tool_completed",
             "agent_thinking", "agent_thinking", "agent_completed"]


def start_runtime(*args):
    proc = subprocess.Popen(
        [sys.executable, str(RUNTIME), "--dev-insecure", "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # bounded: the test's timeout kills it
    assert line.startswith("listening on 127.0.0.1:"), (line, proc.stderr)
    return proc, int(line.rsplit(":", 1)[1])


def client(port, user):
    return websockets.connect(f"ws://127.0.0.1:{port}/ws?user={user}",
                              subprotocols=["agentws.v1"], open_timeout=5,
                              ping_interval=None)


async def runs_of(ws, n_runs):
    """Events until |n_runs| runs ended, grouped by run_id."""
    runs, ended = {}, 0
    while ended < n_runs:
        ev = await recv_json(ws, 10)
        if "run_id" in ev:
            runs.setdefault(ev["run_id"], []).append(ev["type"])
            ended += ev["type"] in ("agent_completed", "agent_error")
    return runs


def test_runs_in_parallel_then_sigterm_mid_run():
    proc, port = start_runtime("--agents", "2", "--workers", "4",
                               "--thinking-delay-ms", "40")
    try:
        async def go():
            async with client(port, "alice") as a1, \
                    client(port, "alice") as a2, client(port, "bob") as b:
                for ws in (a1, a2, b):
                    await recv_json(ws)
                for ws, text in ((a1, "first"), (b, "second")):
                    await ws.send(json.dumps({"type": "user_message",
                                              "text": text}))
                tab1, tab2, bobs = await asyncio.gather(
                    runs_of(a1, 2), runs_of(a2, 2), runs_of(b, 2))
                assert tab1 == tab2 and len(tab1) == 2
                assert set(tab1).isdisjoint(bobs) and len(bobs) == 2
                for events in list(tab1.values()) + list(bobs.values()):
                    assert events == LIFECYCLE
                await b.send(json.dumps({"type": "nope"}))
                assert (await recv_json(b))["code"] == "bad_message"
                # A run in progress when the runtime is told to stop.
                await a1.send(json.dumps({"type": "user_message",
                                          "text": "long"}))
                assert (await recv_json(a1))["type"] == "agent_started"
                proc.send_signal(signal.SIGTERM)
                ends = []
                async for raw in a1:
                    ev = json.loads(raw)
                    if ev["type"] in ("agent_error", "agent_completed"):
                        ends.append(ev)
                assert a1.close_code == 1001
                assert {e["data"].get("code") for e in ends} == {"shutdown"}
                for ws in (a2, b):
                    await asyncio.wait_for(ws.wait_closed(), 10)
                    assert ws.close_code == 1001
        run(go(), timeout=60)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
        assert "'completed': 4, 'interrupted': 2, 'failed': 0" in err, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
