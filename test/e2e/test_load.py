"""Contract 11: 1,000 concurrent websockets connections, each echoes a message."""

import asyncio
import time

import pytest

from helpers import run_async, t, ws_connect

N = 1000


@pytest.mark.slow
def test_1000_concurrent_connections(server):
    stats = {}

    async def go():
        gate = asyncio.Semaphore(100)  # bounds connects in progress, not connections held

        async def open_one(i):
            async with gate:
                return await ws_connect(server.port).__aenter__()

        t0 = time.monotonic()
        results = await asyncio.gather(*(open_one(i) for i in range(N)), return_exceptions=True)
        conns = [r for r in results if not isinstance(r, BaseException)]
        errors = [r for r in results if isinstance(r, BaseException)]
        stats["open_s"] = time.monotonic() - t0
        try:
            assert not errors, f"{len(errors)} of {N} connections failed; first: {errors[0]!r}"

            async def echo(i, ws):
                msg = f"connection {i} says hello"
                await ws.send(msg)
                got = await asyncio.wait_for(ws.recv(), t(30))
                assert got == msg, f"connection {i} got {got!r}"

            t1 = time.monotonic()
            echoes = await asyncio.gather(*(echo(i, ws) for i, ws in enumerate(conns)), return_exceptions=True)
            stats["echo_s"] = time.monotonic() - t1
            failed = [e for e in echoes if isinstance(e, BaseException)]
            assert not failed, f"{len(failed)} of {N} echoes failed; first: {failed[0]!r}"
        finally:
            t2 = time.monotonic()
            await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
            stats["close_s"] = time.monotonic() - t2
        codes = [ws.close_code for ws in conns]
        assert codes.count(1000) == N, f"close codes seen: { {c: codes.count(c) for c in set(codes)} }"

    run_async(go(), t(90))
    print(f"1000 connections: open {stats['open_s']:.2f}s, echo {stats['echo_s']:.2f}s, close {stats['close_s']:.2f}s")
