"""Contract 12: SIGTERM closes every client with 1001 and the process exits 0 promptly."""

import asyncio
import signal
import time

import pytest

from helpers import RawConn, run_async, t, upgrade_request, ws_connect


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_graceful_shutdown_closes_clients_1001(server, sig):
    async def go():
        clients = [await ws_connect(server.port).__aenter__() for _ in range(3)]
        for i, ws in enumerate(clients):
            await ws.send(f"hello {i}")
            assert await asyncio.wait_for(ws.recv(), t(5)) == f"hello {i}"
        t0 = time.monotonic()
        server.signal(sig)
        await asyncio.wait_for(asyncio.gather(*(ws.wait_closed() for ws in clients)), t(5))
        codes = [ws.close_code for ws in clients]
        assert codes == [1001, 1001, 1001], f"close codes after {sig.name}: {codes}"
        return time.monotonic() - t0

    try:
        run_async(go(), t(20))
    finally:
        server.expect_exit(t(5), sig.name)


def test_shutdown_with_unresponsive_and_half_open_clients(demo_server):
    """A client that never answers the close and one stuck mid-handshake do not hold up exit."""
    srv = demo_server("--close-timeout-ms", "1000")
    with RawConn(srv.port) as mute, RawConn(srv.port) as half:
        mute.handshake()
        half.send(upgrade_request()[:20])
        time.sleep(0.1)
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        frame = mute.expect_close(t(5))
        assert frame.close_code == 1001, frame.describe()
        # Never reply: the server must give up after its close timeout and exit.
        srv.expect_exit(t(5), "SIGTERM with an unresponsive client")
        elapsed = time.monotonic() - t0
        assert elapsed < t(4), f"exit took {elapsed:.1f}s with --close-timeout-ms 1000"
        mute.wait_closed(t(2))
        half.wait_closed(t(2))
