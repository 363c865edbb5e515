"""Contracts 2-7: fragmentation, ping/pong, close handshake, UTF-8, size limit, protocol errors.

These use a raw socket and hand-built frames so every bit on the wire is the test's choice.
"""

import asyncio
import os

import pytest

from helpers import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    RawConn,
    build_frame,
    close_payload,
    run_async,
    t,
    ws_connect,
)


def assert_closed_with(c: RawConn, code: int, reason: bytes = None) -> None:
    """The server's next frame is a close with |code|; then it closes TCP."""
    frame = c.expect_close(t(5))
    assert frame.close_code == code, f"expected close {code}, got {frame.describe()}"
    if reason is not None:
        assert frame.close_reason == reason, f"expected reason {reason!r}, got {frame.describe()}"
    c.finish_close(reply=True, timeout=t(5))


def assert_still_echoes(c: RawConn) -> None:
    c.send_frame(OP_TEXT, b"still alive")
    assert c.recv_message(t(5)) == (OP_TEXT, b"still alive")


# --------------------------------------------------------------------------- 2. fragmentation


def test_fragmented_text_with_interleaved_ping(server):
    message = "Hello, 世界! ünïcödé 😀".encode("utf-8")
    split1 = message.index("世".encode("utf-8")) + 1  # inside the 3-byte code point
    split2 = message.index("😀".encode("utf-8")) + 2  # inside the 4-byte code point
    with RawConn(server.port) as c:
        c.handshake()
        c.send_frame(OP_TEXT, message[:split1], fin=False)
        c.send_frame(OP_PING, b"between-fragments")
        c.send_frame(OP_CONT, message[split1:split2], fin=False)
        c.send_frame(OP_CONT, message[split2:], fin=True)
        pong = c.recv_frame(t(5))
        assert pong.opcode == OP_PONG, f"expected the pong first, got {pong.describe()}"
        assert pong.payload == b"between-fragments"
        assert pong.fin
        assert c.recv_message(t(5)) == (OP_TEXT, message)
        assert_still_echoes(c)


def test_fragmented_binary_and_empty_fragments(server):
    data = os.urandom(3000)
    with RawConn(server.port) as c:
        c.handshake()
        c.send_frame(OP_BINARY, data[:1000], fin=False)
        c.send_frame(OP_CONT, b"", fin=False)
        c.send_frame(OP_PING, b"")
        c.send_frame(OP_CONT, data[1000:], fin=False)
        c.send_frame(OP_CONT, b"", fin=True)
        pong = c.recv_frame(t(5))
        assert (pong.opcode, pong.payload) == (OP_PONG, b""), pong.describe()
        assert c.recv_message(t(5)) == (OP_BINARY, data)
        # An empty first fragment of a text message.
        c.send_frame(OP_TEXT, b"", fin=False)
        c.send_frame(OP_CONT, b"abc", fin=True)
        assert c.recv_message(t(5)) == (OP_TEXT, b"abc")


def test_fragmented_text_sent_byte_by_byte(server):
    """Frame headers and payloads arriving in 1-byte TCP segments are reassembled."""
    message = "frägmënt€d".encode("utf-8")
    wire = b"".join(
        build_frame(OP_TEXT if i == 0 else OP_CONT, message[i : i + 3], fin=i + 3 >= len(message))
        for i in range(0, len(message), 3)
    )
    with RawConn(server.port) as c:
        c.handshake()
        for i in range(len(wire)):
            c.send(wire[i : i + 1])
        assert c.recv_message(t(5)) == (OP_TEXT, message)


# --------------------------------------------------------------------------- 3. ping / pong


@pytest.mark.parametrize("payload", [b"", b"\x00\x01\xffping", bytes(range(125))], ids=["empty", "binary", "125"])
def test_ping_gets_pong_with_same_payload(server, payload):
    with RawConn(server.port) as c:
        c.handshake()
        c.send_frame(OP_PING, payload)
        pong = c.recv_frame(t(5))
        assert pong.opcode == OP_PONG, pong.describe()
        assert pong.fin and pong.rsv == 0
        assert pong.payload == payload


def test_ping_with_websockets_client(server):
    async def go():
        async with ws_connect(server.port) as ws:
            waiter = await ws.ping(b"are-you-there")
            await asyncio.wait_for(waiter, t(5))
            await ws.send("after ping")
            assert await asyncio.wait_for(ws.recv(), t(5)) == "after ping"

    run_async(go(), t(20))


def test_unsolicited_pong_is_ignored(server):
    with RawConn(server.port) as c:
        c.handshake()
        c.send_frame(OP_PONG, b"nobody asked")
        c.send_frame(OP_PONG, b"")
        c.send_frame(OP_TEXT, b"next")
        # The echo is the very next frame: no reply to the pongs, no close.
        assert c.recv_message(t(5)) == (OP_TEXT, b"next")


# --------------------------------------------------------------------------- 4. close handshake


def test_client_close_1000_is_echoed(server):
    with RawConn(server.port) as c:
        c.handshake()
        c.send_close(1000, b"bye")
        frame = c.expect_close(t(5))
        assert frame.close_code == 1000, frame.describe()
        c.finish_close(reply=False, timeout=t(5))


def test_client_close_4001_is_echoed(server):
    with RawConn(server.port) as c:
        c.handshake()
        c.send_close(4001, b"custom")
        frame = c.expect_close(t(5))
        assert frame.close_code == 4001, frame.describe()
        c.finish_close(reply=False, timeout=t(5))


def test_close_with_websockets_client(server):
    async def go():
        async with ws_connect(server.port) as ws:
            await ws.send("x")
            assert await asyncio.wait_for(ws.recv(), t(5)) == "x"
            await ws.close(1000, "bye")
            assert ws.close_code == 1000

    run_async(go(), t(20))


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 5000, 65535])
def test_close_with_invalid_code_gets_1002(server, code):
    with RawConn(server.port) as c:
        c.handshake()
        c.send_close(code, b"")
        assert_closed_with(c, 1002)


def test_close_with_one_byte_payload_gets_1002(server):
    with RawConn(server.port) as c:
        c.handshake()
        c.send_frame(OP_CLOSE, b"\x03")
        assert_closed_with(c, 1002)


def test_close_without_payload_gets_empty_close(server):
    with RawConn(server.port) as c:
        c.handshake()
        c.send_frame(OP_CLOSE, b"")
        frame = c.expect_close(t(5))
        assert frame.payload == b"", f"expected an empty close (1005 at the client), got {frame.describe()}"
        assert frame.close_code == 1005
        c.finish_close(reply=False, timeout=t(5))


def test_nothing_is_echoed_after_close(server):
    """Data frames that follow the client's close are not answered."""
    with RawConn(server.port) as c:
        c.handshake()
        c.send(build_frame(OP_CLOSE, close_payload(1000)) + build_frame(OP_TEXT, b"too late"))
        frame = c.expect_close(t(5))
        assert frame.close_code == 1000, frame.describe()
        c.finish_close(reply=False, timeout=t(5))


# --------------------------------------------------------------------------- 5. UTF-8


@pytest.mark.parametrize(
    "payload",
    [b"\xff", b"abc\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"ok\xe2\x82"],
    ids=["ff", "bad-continuation", "surrogate", "above-10ffff", "overlong", "truncated"],
)
def test_invalid_utf8_text_gets_1007(server, payload):
    with RawConn(server.port) as c:
        c.handshake()
        c.send_frame(OP_TEXT, payload)
        assert_closed_with(c, 1007)


def test_invalid_utf8_split_across_fragments_gets_1007(server):
    with RawConn(server.port) as c:
        c.handshake()
        c.send_frame(OP_TEXT, "valid €".encode("utf-8") + b"\xe2\x82", fin=False)  # incomplete €
        c.send_frame(OP_CONT, b"\x28 tail", fin=False)  # not a continuation byte
        c.send_frame(OP_CONT, b" end", fin=True)
        assert_closed_with(c, 1007)


def test_invalid_utf8_in_last_fragment_gets_1007(server):
    with RawConn(server.port) as c:
        c.handshake()
        c.send_frame(OP_TEXT, b"fine so far", fin=False)
        c.send_frame(OP_CONT, b" then \xff", fin=True)
        assert_closed_with(c, 1007)


def test_binary_is_not_utf8_checked(server):
    with RawConn(server.port) as c:
        c.handshake()
        c.send_frame(OP_BINARY, b"\xff\xfe\xc0\xaf")
        assert c.recv_message(t(5)) == (OP_BINARY, b"\xff\xfe\xc0\xaf")


# --------------------------------------------------------------------------- 6. message size


def test_message_at_max_size_is_echoed(demo_server):
    srv = demo_server("--max-message-size", "1024")
    with RawConn(srv.port) as c:
        c.handshake()
        data = os.urandom(1024)
        c.send_frame(OP_BINARY, data)
        assert c.recv_message(t(5)) == (OP_BINARY, data)
        c.send_frame(OP_TEXT, b"t" * 1024)
        assert c.recv_message(t(5)) == (OP_TEXT, b"t" * 1024)


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_message_over_max_size_gets_1009(demo_server, opcode):
    srv = demo_server("--max-message-size", "1024")
    with RawConn(srv.port) as c:
        c.handshake()
        c.send_frame(opcode, b"a" * 1025)
        assert_closed_with(c, 1009)


def test_fragmented_message_over_max_size_gets_1009(demo_server):
    srv = demo_server("--max-message-size", "1024")
    with RawConn(srv.port) as c:
        c.handshake()
        c.send_frame(OP_BINARY, b"a" * 600, fin=False)
        c.send_frame(OP_CONT, b"b" * 425, fin=True)
        assert_closed_with(c, 1009)


def test_websockets_client_sees_1009(demo_server):
    srv = demo_server("--max-message-size", "1024")

    async def go():
        async with ws_connect(srv.port) as ws:
            await ws.send(b"x" * 1025)
            await asyncio.wait_for(ws.wait_closed(), t(5))
            assert ws.close_code == 1009

    run_async(go(), t(20))


# --------------------------------------------------------------------------- 7. protocol errors


PROTOCOL_ERRORS = {
    "unmasked": [build_frame(OP_TEXT, b"hello", mask=False)],
    "reserved-opcode-3": [build_frame(0x3, b"x")],
    "reserved-opcode-b": [build_frame(0xB, b"x")],
    "rsv1": [build_frame(OP_TEXT, b"hello", rsv=4)],
    "rsv2": [build_frame(OP_BINARY, b"hello", rsv=2)],
    "continuation-first": [build_frame(OP_CONT, b"orphan")],
    "new-message-inside-fragmented": [
        build_frame(OP_TEXT, b"part", fin=False),
        build_frame(OP_TEXT, b"another", fin=True),
    ],
    "ping-126": [build_frame(OP_PING, b"p" * 126)],
    "close-126": [build_frame(OP_CLOSE, close_payload(1000, b"r" * 124))],
    "fragmented-ping": [build_frame(OP_PING, b"frag", fin=False)],
}


@pytest.mark.parametrize("frames", list(PROTOCOL_ERRORS.values()), ids=list(PROTOCOL_ERRORS))
def test_protocol_error_gets_1002(server, frames):
    with RawConn(server.port) as c:
        c.handshake()
        c.send(b"".join(frames))
        assert_closed_with(c, 1002)


def test_protocol_error_after_good_traffic(server):
    with RawConn(server.port) as c:
        c.handshake()
        assert_still_echoes(c)
        c.send_frame(OP_TEXT, b"no mask", mask=False)
        assert_closed_with(c, 1002)
