"""Contract 10: a client that never reads is closed (1013 "slow consumer") without hurting others."""

import asyncio
import os
import select
import socket
import threading
import time

import pytest

from helpers import OP_BINARY, OP_CLOSE, ConnectionEnded, RawConn, build_frame, run_async, t, ws_connect

pytestmark = pytest.mark.slow

MESSAGE = 16 * 1024
MAX_FLOOD = 64 * 1024 * 1024  # bytes the flooder may send at most


class Flooder(threading.Thread):
    """Sends 16 KiB binary frames back to back and never reads, until the server stops it.

    A server that has sent its close frame may go on reading (and dropping) input while it waits
    for the client's close, so the flood can run to its 64 MiB cap; that alone proves nothing.
    """

    def __init__(self, conn: RawConn, payload: bytes, time_cap: float):
        super().__init__(daemon=True)
        self.conn = conn
        self.wire = build_frame(OP_BINARY, payload, mask_key=b"\x11\x22\x33\x44")
        self.time_cap = time_cap
        self.sent = 0
        self.outcome = "running"
        self.stop = threading.Event()

    def run(self) -> None:
        sock = self.conn.sock
        sock.setblocking(False)
        start = time.monotonic()
        last_progress = start
        view = memoryview(self.wire)
        off = 0
        try:
            while not self.stop.is_set():
                now = time.monotonic()
                if self.sent >= MAX_FLOOD:
                    self.outcome = "sent the maximum"
                    return
                if now - start > self.time_cap:
                    self.outcome = "time cap"
                    return
                if now - last_progress > 3.0:
                    self.outcome = "server stopped reading"
                    return
                _, w, _ = select.select([], [sock], [], 0.2)
                if not w:
                    continue
                n = sock.send(view[off:])
                self.sent += n
                off = (off + n) % len(self.wire)
                last_progress = time.monotonic()
        except (BrokenPipeError, ConnectionResetError):
            self.outcome = "server closed the connection"
        except OSError as exc:
            self.outcome = f"send error {exc!r}"
        finally:
            sock.setblocking(True)


def test_slow_consumer_is_closed_and_others_unaffected(demo_server):
    srv = demo_server("--max-queued-bytes", "65536")
    payload = os.urandom(MESSAGE)
    latencies = []
    result = {}

    with RawConn(srv.port, rcvbuf=65536) as slow:
        slow.handshake()
        flooder = Flooder(slow, payload, time_cap=t(30))

        async def normal_client():
            async with ws_connect(srv.port) as ws:
                i = 0
                flooder.start()
                while flooder.is_alive() or i < 5:
                    msg = f"normal {i} ".encode() + b"n" * 1000
                    t0 = time.monotonic()
                    await ws.send(msg)
                    got = await asyncio.wait_for(ws.recv(), t(2))
                    latencies.append(time.monotonic() - t0)
                    assert got == msg, f"normal client got a wrong echo for message {i}"
                    i += 1
                    await asyncio.sleep(0.05)
                result["normal_messages"] = i
                # The slow one is gone; the normal client still works.
                await ws.send(b"after")
                assert await asyncio.wait_for(ws.recv(), t(2)) == b"after"

        try:
            run_async(normal_client(), t(60))
        finally:
            flooder.stop.set()
            flooder.join(t(5))

        # Now read what the server sent the slow client: echoes, maybe a close 1013, then EOF.
        frames = 0
        close = None
        closed = False
        deadline = time.monotonic() + t(15)
        while time.monotonic() < deadline:
            try:
                frame = slow.recv_frame(max(deadline - time.monotonic(), 0.01))
            except ConnectionEnded:
                closed = True
                break
            except TimeoutError:
                break
            if frame.opcode == OP_CLOSE:
                close = frame
                try:
                    slow.send_close(None)
                except OSError:
                    pass
                slow.wait_closed(t(5))
                closed = True
                break
            assert frame.opcode == OP_BINARY and frame.payload == payload, (
                f"slow client got a wrong frame #{frames}: {frame.describe()}"
            )
            frames += 1

    info = (
        f"flooder: {flooder.outcome}, sent {flooder.sent / 1048576:.1f} MiB; slow client read {frames} echoes; "
        f"normal client: {result.get('normal_messages')} round trips, max {max(latencies or [0]):.3f}s; "
        f"last frame: {close.describe() if close else 'none (TCP closed)'}"
    )
    assert closed, f"server never closed the slow consumer ({info})"
    if close is not None:
        assert close.close_code == 1013, f"{close.describe()} ({info})"
        assert close.close_reason == b"slow consumer", f"{close.describe()} ({info})"
    print(info)
