"""Contract 9: handshake timeout (slow-loris), heartbeat pings, pong timeout, idle timeout."""

import asyncio
import socket
import time

import pytest

from helpers import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    ConnectionEnded,
    RawConn,
    run_async,
    socket_readable,
    t,
    upgrade_request,
    ws_connect,
)

pytestmark = pytest.mark.slow


def test_slow_loris_gets_408_and_is_closed(demo_server):
    srv = demo_server("--handshake-timeout-ms", "500")
    req = upgrade_request()
    with RawConn(srv.port) as c:
        start = time.monotonic()
        sent = 0
        # One byte every 100 ms, never the whole head; stop once the server answers or hangs up.
        while sent < len(req) - 1 and time.monotonic() - start < t(5):
            try:
                c.sock.sendall(req[sent : sent + 1])
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 1
            if socket_readable(c.sock, 0.1):
                break
        resp = c.read_http_response(t(3))
        assert resp.status == 408, f"expected 408 after the handshake timeout, got:\n{resp}"
        c.wait_closed(t(3))
        elapsed = time.monotonic() - start
    assert elapsed >= 0.4, f"handshake timed out after {elapsed:.2f}s, before the 0.5s limit"
    assert elapsed < t(3), f"slow-loris connection lived {elapsed:.2f}s with a 0.5s handshake timeout"


def test_idle_http_connection_gets_408(demo_server):
    """A connection that sends nothing at all is also bounded by the handshake timeout."""
    srv = demo_server("--handshake-timeout-ms", "300")
    with RawConn(srv.port) as c:
        start = time.monotonic()
        resp = c.read_http_response(t(3))
        assert resp.status == 408, str(resp)
        c.wait_closed(t(3))
        assert time.monotonic() - start < t(3)


def test_handshake_timeout_does_not_hit_upgraded_connection(demo_server):
    srv = demo_server("--handshake-timeout-ms", "300")
    with RawConn(srv.port) as c:
        c.handshake()
        time.sleep(0.8)
        c.send_frame(OP_TEXT, b"after handshake timeout")
        assert c.recv_message(t(5)) == (OP_TEXT, b"after handshake timeout")


def test_ping_interval_keeps_responsive_client_open(demo_server):
    srv = demo_server("--ping-interval-ms", "200", "--pong-timeout-ms", "300")

    async def go():
        # The client sends no pings of its own; websockets answers the server's pings.
        async with ws_connect(srv.port, ping_interval=None) as ws:
            await asyncio.sleep(1.5)
            assert ws.open, f"server closed a responsive client: code {ws.close_code} {ws.close_reason!r}"
            await ws.send("still open")
            assert await asyncio.wait_for(ws.recv(), t(5)) == "still open"

    run_async(go(), t(20))


def test_raw_client_answering_pings_stays_open(demo_server):
    srv = demo_server("--ping-interval-ms", "200", "--pong-timeout-ms", "300")
    with RawConn(srv.port) as c:
        c.handshake()
        pings = 0
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            try:
                frame = c.recv_frame(max(end - time.monotonic(), 0.01))
            except TimeoutError:
                break
            assert frame.opcode == OP_PING, f"unexpected {frame.describe()}"
            pings += 1
            c.send_frame(OP_PONG, frame.payload)
        assert pings >= 3, f"saw {pings} pings in 1.5s with --ping-interval-ms 200"
        c.send_frame(OP_TEXT, b"alive")
        while True:  # a ping may come before the echo
            frame = c.recv_frame(t(5))
            if frame.opcode == OP_PING:
                c.send_frame(OP_PONG, frame.payload)
                continue
            assert (frame.opcode, frame.payload) == (OP_TEXT, b"alive"), frame.describe()
            break


def test_client_not_answering_pings_is_dropped(demo_server):
    srv = demo_server("--ping-interval-ms", "200", "--pong-timeout-ms", "300")
    with RawConn(srv.port) as c:
        c.handshake()
        start = time.monotonic()
        frames = []
        closed = False
        while time.monotonic() - start < t(4):
            try:
                frames.append(c.recv_frame(t(4) - (time.monotonic() - start)))
            except ConnectionEnded:
                closed = True
                break
            except TimeoutError:
                break
            if frames[-1].opcode == OP_CLOSE:
                c.wait_closed(t(3))
                closed = True
                break
        elapsed = time.monotonic() - start
        seen = [f.describe() for f in frames]
        assert any(f.opcode == OP_PING for f in frames), f"no ping before the drop: {seen}"
        assert closed, f"client that never answers pings still connected after {elapsed:.1f}s: {seen}"
        assert elapsed < t(2.5), f"dropped only after {elapsed:.2f}s (ping 200ms, pong timeout 300ms): {seen}"


def test_idle_timeout_closes_1001(demo_server):
    srv = demo_server("--idle-timeout-ms", "300")
    with RawConn(srv.port) as c:
        c.handshake()
        start = time.monotonic()
        frame = c.expect_close(t(3))
        elapsed = time.monotonic() - start
        assert frame.close_code == 1001, frame.describe()
        assert frame.close_reason == b"idle timeout", frame.describe()
        assert elapsed >= 0.25, f"idle close after {elapsed:.2f}s, before the 0.3s limit"
        c.finish_close(reply=True, timeout=t(3))


def test_idle_timeout_websockets_client(demo_server):
    srv = demo_server("--idle-timeout-ms", "300")

    async def go():
        async with ws_connect(srv.port) as ws:
            try:
                await asyncio.wait_for(ws.wait_closed(), t(3))
            except asyncio.TimeoutError:
                raise AssertionError("no idle close within 3s with --idle-timeout-ms 300") from None
            assert ws.close_code == 1001
            assert ws.close_reason == "idle timeout"

    run_async(go(), t(10))


def test_traffic_resets_idle_timeout(demo_server):
    srv = demo_server("--idle-timeout-ms", "400")
    with RawConn(srv.port) as c:
        c.handshake()
        for i in range(10):  # 1 s of traffic, well past the 0.4 s idle limit
            c.send_frame(OP_TEXT, b"tick %d" % i)
            assert c.recv_message(t(5)) == (OP_TEXT, b"tick %d" % i)
            time.sleep(0.1)
        frame = c.expect_close(t(3))
        assert frame.close_code == 1001, frame.describe()
