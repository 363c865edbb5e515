"""Per-user isolation under concurrent emits, with the library loaded through ctypes (agentlib.py).

A threaded manager (dev mode, pings off, a 20,000-event backlog) serves 50 users x 3 connections of
real `websockets` clients. 10,000 custom events ("iso.tick", data {user, n}) are emitted by 4 Python
threads at once; ctypes releases the GIL during each call, so the emits really run concurrently.
Each thread owns a disjoint set of users, so every user's events have one defined order. Every
connection must get exactly its user's events: the right count, data.user its own, n strictly +1
and seq strictly +1 from welcome.seq + 1. A second test drops some connections halfway and
reconnects them with ?epoch=&last_seq=: the union is exactly once, in order.

With a sanitizer build ($AGENTWS_LIB_PRELOAD set by meson), each test reruns itself in a child
interpreter with the sanitizer runtime preloaded.
"""

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional, Tuple

import pytest
import websockets

import agentlib
from helpers import HOST, run_async, t

USERS = 50
CONNS_PER_USER = 3
EVENTS = 10_000
THREADS = 4
PER_USER = EVENTS // USERS  # 200
EVENT_TYPE = "iso.tick"

# ------------------------------------------------------------------ setup


def _run_in_child(request) -> None:
    """Reruns this test in a child interpreter with the sanitizer runtime preloaded."""
    env = dict(os.environ)
    pre = agentlib.preload_path()
    env["LD_PRELOAD"] = (pre + " " + env.get("LD_PRELOAD", "")).strip()
    # The interpreter's own allocations are not ours to leak-check.
    env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=1"
    node = f"{os.path.abspath(__file__)}::{request.node.name}"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", node]
    try:
        r = subprocess.run(cmd, env=env, cwd=os.path.dirname(os.path.abspath(__file__)),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=t(300))
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"child run of {node} timed out\n{(exc.output or b'').decode(errors='replace')[-8000:]}")
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, f"child run of {node} (LD_PRELOAD={pre}) failed: {r.returncode}\n{out[-8000:]}"
    assert "1 passed" in out, f"child run of {node} did not pass (skipped?)\n{out[-8000:]}"


@pytest.fixture
def manager(request):
    """A started threaded manager on 127.0.0.1:0 (None when the test ran in a child)."""
    if agentlib.needs_preload():
        _run_in_child(request)
        yield None
        return
    try:
        agentlib.load()
    except OSError as exc:
        if "__asan" in str(exc) or "__ubsan" in str(exc) or "__tsan" in str(exc):
            pytest.skip(f"{agentlib.lib_path()} is a sanitizer build and AGENTWS_LIB_PRELOAD is not set: {exc}")
        raise
    m = agentlib.Manager(dev_insecure=True, ping_interval_ms=0, backlog_events=20000,
                         close_timeout_ms=1000)
    try:
        m.listen(HOST, 0)
        m.start()
        yield m
    finally:
        rv = m.stop()
        m.free()
        assert rv == 0, f"agentws_manager_stop: {agentlib.err_name(rv)}"


def user_name(i: int) -> str:
    return f"u{i}"


def owned_users(k: int) -> List[str]:
    """Thread k's users: disjoint across threads."""
    return [user_name(i) for i in range(USERS) if i % THREADS == k]


# ----------------------------------------------------------------- emitters


class Emitters:
    """THREADS threads emitting n = first..last to each of their users, round robin."""

    def __init__(self, m: agentlib.Manager, first: int, last: int, pause_every: int = 0):
        self.m = m
        self.first, self.last = first, last
        self.pause_every = pause_every
        self.errors: List[str] = []
        self.start_gate = threading.Barrier(THREADS)
        self.threads = [threading.Thread(target=self._run, args=(k,), daemon=True)
                        for k in range(THREADS)]

    def _run(self, k: int) -> None:
        users = owned_users(k)
        try:
            self.start_gate.wait(t(10))
            count = 0
            for n in range(self.first, self.last + 1):
                for u in users:
                    data = json.dumps({"user": u, "n": n}, separators=(",", ":"))
                    rv = self.m.emit_custom(agentlib.TARGET_USER, u, EVENT_TYPE, None, data)
                    if rv != 0:
                        self.errors.append(f"emit {u} n={n}: {agentlib.err_name(rv)}")
                        return
                    count += 1
                    if self.pause_every and count % self.pause_every == 0:
                        time.sleep(0.001)  # spread over time: live and replay interleave
        except Exception as exc:  # reported by join()
            self.errors.append(f"thread {k}: {exc!r}")

    def start(self) -> "Emitters":
        for th in self.threads:
            th.start()
        return self

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for th in self.threads:
            th.join(max(0.0, deadline - time.monotonic()))
        alive = [th.name for th in self.threads if th.is_alive()]
        assert not alive, f"emitter threads still running after {timeout:.0f}s: {alive}"
        assert not self.errors, self.errors[:10]


# ------------------------------------------------------------------ clients


class Conn:
    """One websocket connection of |user|, with the events it received."""

    def __init__(self, user: str, index: int):
        self.user = user
        self.index = index
        self.ws = None
        self.welcome: Dict = {}
        self.welcomes: List[Dict] = []
        self.events: List[Dict] = []

    @property
    def name(self) -> str:
        return f"{self.user}#{self.index}"

    async def open(self, port: int, epoch: Optional[str] = None, last_seq: Optional[int] = None) -> None:
        url = f"ws://{HOST}:{port}/ws?user={self.user}"
        if epoch is not None:
            url += f"&epoch={epoch}&last_seq={last_seq}"
        self.ws = await asyncio.wait_for(
            websockets.connect(url, ping_interval=None, open_timeout=t(10), close_timeout=t(2),
                               max_queue=None), t(15))
        raw = await asyncio.wait_for(self.ws.recv(), t(10))
        w = json.loads(raw)
        assert w.get("type") == "welcome", f"{self.name}: first message is not a welcome: {raw}"
        assert w.get("user") == self.user, f"{self.name}: welcome for another user: {raw}"
        self.welcome = w
        self.welcomes.append(w)

    async def collect(self, total: int, timeout: float) -> None:
        """Receives until self.events holds |total| events."""
        deadline = time.monotonic() + timeout
        while len(self.events) < total:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.name}: {len(self.events)} of {total} events after {timeout:.0f}s")
            try:
                raw = await asyncio.wait_for(self.ws.recv(), left)
            except asyncio.TimeoutError:
                continue
            msg = json.loads(raw)
            assert msg.get("type") == EVENT_TYPE, f"{self.name}: unexpected message {raw}"
            # Fail at the first wrong event rather than at the timeout.
            assert msg["data"]["user"] == self.user, f"{self.name}: another user's event {raw}"
            want_n = len(self.events) + 1
            assert msg["data"]["n"] == want_n, f"{self.name}: n {msg['data']['n']}, want {want_n}: {raw}"
            if self.events:
                prev = self.events[-1]["seq"]
                assert msg["seq"] == prev + 1, f"{self.name}: seq {msg['seq']} after {prev}: {raw}"
            self.events.append(msg)

    async def nothing_more(self, quiet: float) -> None:
        try:
            raw = await asyncio.wait_for(self.ws.recv(), quiet)
        except asyncio.TimeoutError:
            return
        raise AssertionError(f"{self.name}: extra message after {len(self.events)} events: {raw}")

    async def close(self) -> None:
        if self.ws is not None:
            await asyncio.wait_for(self.ws.close(), t(5))


async def open_all(port: int) -> List[Conn]:
    conns = [Conn(user_name(i), j) for i in range(USERS) for j in range(CONNS_PER_USER)]
    # In batches: bounded concurrency, no listen-backlog surprises.
    for b in range(0, len(conns), 30):
        await asyncio.gather(*(c.open(port) for c in conns[b:b + 30]))
    return conns


def check_conn(c: Conn, first_seq: int) -> None:
    """Exactly this user's PER_USER events, n 1..PER_USER, seq +1 from first_seq."""
    ev = c.events
    assert len(ev) == PER_USER, f"{c.name}: {len(ev)} events, want {PER_USER}"
    others = [e for e in ev if e.get("data", {}).get("user") != c.user]
    assert not others, f"{c.name}: {len(others)} events of other users, e.g. {others[0]}"
    assert not [e for e in ev if "stream" in e], f"{c.name}: user events must carry no stream"
    ns = [e["data"]["n"] for e in ev]
    bad = [i for i in range(len(ns)) if ns[i] != i + 1]
    assert not bad, f"{c.name}: counters not 1..{PER_USER} +1 at index {bad[0]}: {ns[max(0, bad[0] - 3):bad[0] + 3]}"
    seqs = [e["seq"] for e in ev]
    bad = [i for i in range(len(seqs)) if seqs[i] != first_seq + i]
    assert not bad, (f"{c.name}: seq not +1 from {first_seq} at index {bad[0]}: "
                     f"{seqs[max(0, bad[0] - 3):bad[0] + 3]}")


# -------------------------------------------------------------------- tests


def test_isolation_concurrent_emits(manager):
    """50 users x 3 connections, 10,000 events from 4 threads: each connection gets exactly its user's."""
    if manager is None:
        return  # ran in a child process

    async def go():
        conns = await open_all(manager.port)
        for c in conns:
            assert c.welcome["seq"] == 0, f"{c.name}: fresh user, welcome {c.welcome}"
        em = Emitters(manager, 1, PER_USER).start()
        try:
            await asyncio.gather(*(c.collect(PER_USER, t(30)) for c in conns))
        finally:
            em.join(t(30))
        await asyncio.gather(*(c.nothing_more(0.3) for c in conns))
        for c in conns:
            check_conn(c, c.welcome["seq"] + 1)
        await asyncio.gather(*(c.close() for c in conns))

    run_async(go(), t(120))


def test_isolation_with_resume(manager):
    """As above, but some connections drop halfway and reconnect with ?epoch=&last_seq=: every
    connection's union is exactly once, in order; the others are not disturbed."""
    if manager is None:
        return
    half = PER_USER // 2

    async def go():
        conns = await open_all(manager.port)
        # Every 7th connection drops: some users lose one, none lose all; half abort the
        # TCP connection, half close cleanly.
        dropping = [c for k, c in enumerate(conns) if k % 7 == 3]
        assert len(dropping) >= 20
        em1 = Emitters(manager, 1, half).start()
        try:
            await asyncio.gather(*(c.collect(half, t(30)) for c in conns))
        finally:
            em1.join(t(30))
        # Phase 2 starts while the dropped connections are away, and keeps going (paced) while they
        # come back: replay from the backlog races live events.
        resume_at: Dict[str, Tuple[str, int]] = {}
        for k, c in enumerate(dropping):
            resume_at[c.name] = (c.welcome["epoch"], c.events[-1]["seq"])
            if k % 2:
                c.ws.transport.abort()
            else:
                await c.close()
        em2 = Emitters(manager, half + 1, PER_USER, pause_every=25).start()
        try:
            await asyncio.sleep(0.05)
            await asyncio.gather(*(c.open(manager.port, *resume_at[c.name]) for c in dropping))
            for c in dropping:
                epoch, last = resume_at[c.name]
                w = c.welcome
                assert w["epoch"] == epoch, f"{c.name}: epoch changed: {w}"
                assert w["recovered"] is True and w["missed"] == 0, f"{c.name}: resume not complete: {w}"
                assert w["seq"] >= last, f"{c.name}: welcome seq {w['seq']} < last_seq {last}"
            await asyncio.gather(*(c.collect(PER_USER, t(30)) for c in conns))
        finally:
            em2.join(t(30))
        await asyncio.gather(*(c.nothing_more(0.3) for c in conns))
        for c in conns:
            check_conn(c, c.welcomes[0]["seq"] + 1)
        await asyncio.gather(*(c.close() for c in conns))

    run_async(go(), t(120))
