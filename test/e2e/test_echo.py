"""Contract 1 (echo of every size, order kept) with the websockets client, plus the CLI line."""

import asyncio
import os

import pytest

from helpers import HOST, OP_BINARY, OP_TEXT, RawConn, run_async, t, ws_connect

SIZES = [0, 1, 125, 126, 65535, 65536, 1048576]


def text_of_size(n: int) -> str:
    """|n| bytes of UTF-8 with multi-byte code points where they fit (ASCII tail pads)."""
    unit = "aé€😀"  # 1 + 2 + 3 + 4 bytes
    reps = n // 10
    s = unit * reps
    return s + "x" * (n - len(s.encode("utf-8")))


def test_listening_line(server):
    assert server.host == HOST
    assert 0 < server.port < 65536
    assert server.stop() == 0
    assert server.stdout_lines == [f"listening on {HOST}:{server.port}"], (
        "stdout must hold exactly the one 'listening on HOST:PORT' line"
    )


@pytest.mark.parametrize("size", SIZES)
def test_echo_text_sizes(server, size):
    msg = text_of_size(size)
    assert len(msg.encode("utf-8")) == size

    async def go():
        async with ws_connect(server.port) as ws:
            assert ws.subprotocol == "agentws.v1"
            await ws.send(msg)
            got = await asyncio.wait_for(ws.recv(), t(10))
            assert isinstance(got, str), f"text came back as {type(got).__name__}"
            assert got == msg

    run_async(go(), t(30))


@pytest.mark.parametrize("size", SIZES)
def test_echo_binary_sizes(server, size):
    msg = os.urandom(size)

    async def go():
        async with ws_connect(server.port) as ws:
            await ws.send(msg)
            got = await asyncio.wait_for(ws.recv(), t(10))
            assert isinstance(got, bytes), f"binary came back as {type(got).__name__}"
            assert got == msg

    run_async(go(), t(30))


def test_echo_max_size_raw_frame_types(server):
    """Sizes at the 7/16/64-bit length boundaries, read frame by frame from a raw socket."""
    with RawConn(server.port) as c:
        c.handshake()
        for size in SIZES:
            payload = os.urandom(size)
            c.send_frame(OP_BINARY, payload)
            assert c.recv_message(t(10)) == (OP_BINARY, payload), f"size {size}"
            text = text_of_size(size).encode("utf-8")
            c.send_frame(OP_TEXT, text)
            assert c.recv_message(t(10)) == (OP_TEXT, text), f"size {size}"
        c.send_close(1000)
        assert c.expect_close().close_code == 1000
        c.finish_close(reply=False)


def test_many_in_flight_keep_order(server):
    """60 messages of mixed type and size sent without waiting come back in order."""
    msgs = []
    for i in range(60):
        size = [0, 5, 200, 70000, 3000][i % 5]
        if i % 2:
            msgs.append(os.urandom(size))
        else:
            msgs.append(f"{i}:" + "z" * size)

    async def go():
        async with ws_connect(server.port) as ws:
            for m in msgs:
                await ws.send(m)
            for i, m in enumerate(msgs):
                got = await asyncio.wait_for(ws.recv(), t(10))
                assert type(got) is type(m) and got == m, f"message {i} out of order or changed"

    run_async(go(), t(30))


def test_two_clients_are_independent(server):
    async def go():
        async with ws_connect(server.port) as a, ws_connect(server.port) as b:
            await a.send("from a")
            await b.send(b"from b")
            assert await asyncio.wait_for(b.recv(), t(5)) == b"from b"
            assert await asyncio.wait_for(a.recv(), t(5)) == "from a"

    run_async(go(), t(20))
