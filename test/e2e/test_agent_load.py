"""Agent mode under load: "/burst N" fan-out to every tab, slow-consumer isolation (1013 and resume),
thinking coalescing for a connection that is behind, the demo's bounded job queue, and shutdown mid-run."""

import asyncio
import json
import signal
import threading
import time

import pytest

from helpers import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    ConnectionEnded,
    RawConn,
    agent_client,
    agent_path,
    check_run,
    check_seqs,
    check_ticks,
    run_async,
    summarize,
    t,
    timeout_scale,
    upgrade_request,
    ws_connect,
)
from metrics_client import scrape, v


def test_burst_reaches_every_tab_in_order(agent_server):
    srv = agent_server()  # default backlog: 1000 events, fewer than the burst
    n = 2000

    async def go():
        async with agent_client(srv.port, "alice") as a1, agent_client(srv.port, "alice") as a2, \
                agent_client(srv.port, "alice") as a3, agent_client(srv.port, "bob") as b:
            await a2.say(f"/burst {n}")
            got = await asyncio.gather(*(c.collect(n, t(20)) for c in (a1, a2, a3)))
            for events in got:
                check_ticks(events, n, first_seq=1)
            assert got[0] == got[1] == got[2]
            await b.nothing_pending()
            for c in (a1, a2, a3):
                await c.nothing_pending()

    run_async(go(), t(60))


def test_reading_client_within_queue_bound_is_not_closed(agent_server):
    """Default config (max_queued_bytes 1 MiB, backlog 1000 events): a client that reads as fast as it can
    gets all of '/burst 5000' (about 350 KB in all, so its unsent data never nears 1 MiB) without a 1013."""
    srv = agent_server()
    n = 5000

    async def go():
        async with agent_client(srv.port, "alice") as a:
            await a.say(f"/burst {n}")
            events = []
            try:
                while len(events) < n:
                    events.append(await a.recv(t(10)))
            except AssertionError as exc:
                raise AssertionError(
                    f"after {len(events)} of {n} events: {exc}; the whole burst is about {n * 70 // 1024} KiB, "
                    "far below max_queued_bytes (1 MiB)"
                ) from None
            check_ticks(events, n, first_seq=1)

    run_async(go(), t(60))


class SlowReader:
    """A raw agentws.v1 client that stops reading after its welcome; later reads what it can."""

    def __init__(self, port: int, user: str, rcvbuf: int = 4096, **params):
        self.conn = RawConn(port, rcvbuf=rcvbuf)
        self.conn.handshake(agent_path(user, **params))
        op, payload = self.conn.recv_message()
        assert op == OP_TEXT
        self.welcome = json.loads(payload)
        assert self.welcome["type"] == "welcome", self.welcome

    def drain(self, timeout: float, stop=None):
        """Reads messages until a close frame, the end of the connection, or a message for which stop(msg) is
        true; returns (messages, close frame)."""
        msgs, close = [], None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                frame = self.conn.recv_frame(max(deadline - time.monotonic(), 0.01))
            except (ConnectionEnded, TimeoutError):
                break
            if frame.opcode == OP_CLOSE:
                close = frame
                try:
                    self.conn.send_close(None)
                except OSError:
                    pass
                break
            if frame.opcode == OP_PING:  # the server's keepalive while we did not read
                self.conn.send_frame(OP_PONG, frame.payload)
                continue
            if frame.opcode == OP_PONG:
                continue
            assert frame.opcode == OP_TEXT and frame.fin, frame.describe()
            msgs.append(json.loads(frame.payload))
            if stop is not None and stop(msgs[-1]):
                break
        return msgs, close

    def close(self):
        self.conn.close()


class FastReader(threading.Thread):
    """A raw agentws.v1 client that reads as fast as the socket delivers (no parsing while it reads), until it
    holds |n| demo.tick events or |timeout| passes."""

    def __init__(self, port: int, user: str, n: int, timeout: float):
        super().__init__(daemon=True)
        self.conn = RawConn(port)
        self.conn.handshake(agent_path(user))
        op, payload = self.conn.recv_message()
        self.welcome = json.loads(payload)
        self.n, self.timeout = n, timeout
        self.msgs = []
        self.close_frame = None
        self.error = None

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout
        ticks = 0
        try:
            while ticks < self.n:
                frame = self.conn.recv_frame(max(deadline - time.monotonic(), 0.01))
                if frame.opcode == OP_CLOSE:
                    self.close_frame = frame
                    return
                if frame.opcode == OP_PING:
                    self.conn.send_frame(OP_PONG, frame.payload)
                    continue
                if frame.opcode != OP_TEXT:
                    continue
                self.msgs.append(frame.payload)
                ticks += 1 if frame.payload.startswith(b'{"type":"demo.tick"') else 0
        except (ConnectionEnded, TimeoutError) as exc:
            self.error = repr(exc)

    def events(self):
        return [json.loads(p) for p in self.msgs]


@pytest.mark.slow
def test_slow_consumer_closed_1013_and_resumes(agent_server):
    """A tab that stops reading during '/burst 20000 512 20000' (11 MiB in one second: more than the kernel's
    socket buffers hold) is closed with 1013 "slow consumer"; another tab of the same user that reads at full
    speed gets every event; the slow tab then resumes from its last seq and misses nothing.

    The burst is paced: an unpaced one is published faster than any socket drains, so every tab's unsent
    data would pass a small max_queued_bytes at once, fast reader or not."""
    n, pad = 20000, 512
    rate = int(20000 / timeout_scale())  # a server under valgrind writes slower
    srv = agent_server("--max-queued-bytes", "262144", "--backlog-events", "30000", "--backlog-bytes", "67108864")
    slow = SlowReader(srv.port, "alice")
    fast = FastReader(srv.port, "alice", n, t(60))
    epoch = slow.welcome["epoch"]
    try:
        fast.start()
        fast.conn.send_frame(OP_TEXT, json.dumps({"type": "user_message", "text": f"/burst {n} {pad} {rate}"}).encode())
        t0 = time.monotonic()
        fast.join(t(70))
        took = time.monotonic() - t0
        assert fast.close_frame is None and fast.error is None, (
            f"the tab that reads at full speed did not get everything: got {len(fast.msgs)} messages, "
            f"{fast.close_frame.describe() if fast.close_frame else fast.error}"
        )
        check_ticks(fast.events(), n, first_seq=1, pad=pad)
        got, close = slow.drain(t(15))
    finally:
        slow.close()
        fast.conn.close()
    ticks = [m for m in got if m.get("type") == "demo.tick"]
    assert len(ticks) < n, f"the slow tab received all {n} events: it was never behind (took {took:.1f}s)"
    assert close is not None or slow.conn.eof, "the slow tab was never closed"
    if close is not None:
        assert (close.close_code, close.close_reason) == (1013, b"slow consumer"), close.describe()
    if ticks:
        check_ticks(ticks, len(ticks), first_seq=1, pad=pad)
    last = ticks[-1]["seq"] if ticks else 0

    # Resume from the last event read: the rest is still held (backlog 30000 events, 64 MiB).
    with RawConn(srv.port) as r:
        r.send(upgrade_request(agent_path("alice", epoch=epoch, last_seq=last)))
        try:
            resp = r.read_http_response()
        except AssertionError as exc:
            raise AssertionError(
                f"resume after the 1013 (last_seq={last}, {n - last} events = about "
                f"{(n - last) * (pad + 60) // 1024} KiB to replay): no HTTP response: {exc}"
            ) from None
        assert resp.status == 101, f"resume after the 1013: {resp}"
        op, payload = r.recv_message()
        welcome = json.loads(payload)
        assert welcome.get("type") == "welcome" and welcome.get("recovered") is True and \
            welcome.get("missed") == 0, welcome
        rest = []
        while len(rest) < n - last:
            op, payload = r.recv_message(t(30))
            rest.append(json.loads(payload))
        check_ticks(ticks + rest, n, first_seq=1, pad=pad)
    print(f"fast tab: {n} events in {took:.2f}s; slow tab read {len(ticks)} before "
          f"{close.describe() if close else 'TCP close'}")
    # The monitor counted it: one slow-consumer close, reported as 1013.
    _, s, _ = scrape(srv.port)
    assert v(s, "agentws_slow_consumer_closes_total") >= 1
    assert v(s, "agentws_connections_closed_total", code="1013") >= 1
    assert v(s, "agentws_events_replayed_total") >= n - last


@pytest.mark.slow
def test_thinking_coalesced_for_a_connection_behind(agent_server):
    """A tab that is behind (a burst queued ahead) gets the run's thinking deltas merged ("coalesced":n, seq of
    the last delta); the text reassembles byte for byte and seq accounting holds."""
    n, pad = 6000, 1024  # 6 MiB: more than the kernel's socket buffers hold, less than the queue bound
    srv = agent_server("--workers", "1", "--thinking-delay-ms", "0", "--backlog-events", "20000",
                       "--backlog-bytes", "67108864", "--max-queued-bytes", "33554432")
    slow = SlowReader(srv.port, "alice")
    try:

        async def fast_tab():
            async with agent_client(srv.port, "alice") as a:
                await a.say(f"/burst {n} {pad}")
                await a.say("coalesce me")  # one worker: runs right after the burst
                ticks = await a.collect(n, t(60))
                check_ticks(ticks, n, first_seq=1, pad=pad)
                run = await a.run_events(t(30))
                check_run(run, "coalesce me", first_seq=n + 1)
                return run

        fast_run = run_async(fast_tab(), t(90))
        got, close = slow.drain(t(15), stop=lambda m: m.get("type") in ("agent_completed", "agent_error"))
    finally:
        slow.close()
    assert close is None, f"the slow tab was closed: {close.describe()} (the queue bound should not be reached)"
    ticks = [m for m in got if m.get("type") == "demo.tick"]
    run = [m for m in got if m.get("type") != "demo.tick"]
    check_ticks(ticks, n, first_seq=1, pad=pad)
    check_run(run, "coalesce me")
    assert run[-1]["seq"] == fast_run[-1]["seq"], (summarize(run), summarize(fast_run))
    check_seqs(ticks + run, 1)
    merged = [e for e in run if e["type"] == "agent_thinking" and e["data"].get("coalesced", 1) > 1]
    assert merged, (
        f"no thinking delta was coalesced for a tab {n} events behind: {summarize(run)} "
        "(DESIGN §7: deltas of one run are merged for a connection that cannot keep up)"
    )
    # The monitor counts the deltas merged away, for both tabs (the fast one may fall behind too): an event that
    # merged n deltas stands for n - 1 fewer deliveries.
    _, s, _ = scrape(srv.port)
    assert v(s, "agentws_events_coalesced_total") == sum(
        e["data"].get("coalesced", 1) - 1 for e in run + fast_run if e["type"] == "agent_thinking")


def test_busy_when_the_job_queue_is_full(agent_server):
    srv = agent_server("--workers", "1", "--job-queue", "1", "--thinking-delay-ms", "300")

    async def go():
        async with agent_client(srv.port, "alice") as a:
            await a.say("first")
            await a.expect("agent_started")
            await a.say("second")  # queued
            await a.say("third")  # no room
            got = await a.until(lambda m: m["type"] == "error", t(5), "the busy error")
            assert got[-1].get("code") == "busy", got[-1]
            assert all(m["type"] == "agent_thinking" for m in got[:-1]), summarize(got)

    run_async(go(), t(20))


def test_sigterm_during_runs_and_a_burst(agent_server):
    """Runs and a 100000-event burst in flight: SIGTERM closes every client with 1001 and exits 0."""
    srv = agent_server("--thinking-delay-ms", "200")

    async def go():
        clients = [await ws_connect(srv.port, agent_path(u)).__aenter__() for u in ("dave", "bob", "carol")]
        for ws in clients:
            assert json.loads(await asyncio.wait_for(ws.recv(), t(5)))["type"] == "welcome"

        async def until_closed(ws):
            try:
                while True:
                    await ws.recv()
            except Exception:  # ConnectionClosed
                return ws.close_code

        readers = [asyncio.ensure_future(until_closed(ws)) for ws in clients]
        await clients[0].send(json.dumps({"type": "user_message", "text": "/burst 100000"}))
        for ws in clients[1:]:
            await ws.send(json.dumps({"type": "user_message", "text": "long run"}))
        await asyncio.sleep(0.5)
        srv.signal(signal.SIGTERM)
        codes = await asyncio.wait_for(asyncio.gather(*readers), t(15))
        # The burst's reader may fall behind and be closed as a slow consumer first.
        assert codes[0] in (1001, 1013) and codes[1:] == [1001, 1001], f"close codes after SIGTERM: {codes}"

    try:
        run_async(go(), t(30))
    finally:
        srv.expect_exit(t(10), "SIGTERM during runs and a burst")
