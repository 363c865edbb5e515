"""Contract 8 (handshakes and HTTP on the WebSocket port) and 13 (--max-conns).

Every refusal is read over a raw socket: status line and headers, then the server must
close the socket (recv returns b"" or a reset) within a bounded time, never hang.
"""

import asyncio
import base64
import json
import time

import pytest
import websockets

from helpers import (
    HOST,
    OP_TEXT,
    RawConn,
    build_frame,
    check_101,
    expect_refusal,
    http_exchange,
    make_key,
    request_key,
    run_async,
    t,
    upgrade_request,
    ws_connect,
)


def test_valid_upgrade_raw(server):
    req = upgrade_request()
    resp, c = http_exchange(server.port, req)
    with c:
        check_101(resp, request_key(req))
        assert resp.header("Sec-WebSocket-Protocol") == "agentws.v1"
        c.send_frame(OP_TEXT, b"hi")
        assert c.recv_message(t(5)) == (OP_TEXT, b"hi")


def test_upgrade_with_query_string(server):
    req = upgrade_request("/ws?epoch=e-1&last_seq=0")
    resp, c = http_exchange(server.port, req)
    with c:
        check_101(resp, request_key(req))
        c.send_frame(OP_TEXT, b"query ok")
        assert c.recv_message(t(5)) == (OP_TEXT, b"query ok")


def test_missing_key_400(server):
    expect_refusal(server.port, upgrade_request(key=""), 400)


@pytest.mark.parametrize(
    "key",
    ["abc", base64.b64encode(b"x" * 15).decode(), base64.b64encode(b"x" * 17).decode(), "!!!!!!!!!!!!!!!!!!!!!!=="],
    ids=["short", "15-bytes", "17-bytes", "not-base64"],
)
def test_bad_key_400(server, key):
    expect_refusal(server.port, upgrade_request(key=key), 400)


def test_version_8_gets_426_with_version_header(server):
    resp = expect_refusal(server.port, upgrade_request(version="8"), 426)
    assert resp.header("Sec-WebSocket-Version") == "13", str(resp)


def test_missing_version_426(server):
    resp = expect_refusal(server.port, upgrade_request(version=None), 426)
    assert resp.header("Sec-WebSocket-Version") == "13", str(resp)


def test_post_405(server):
    expect_refusal(server.port, upgrade_request(method="POST"), 405)


def test_missing_upgrade_426(server):
    expect_refusal(server.port, upgrade_request(upgrade=None), 426)


def test_http_10_505(server):
    expect_refusal(server.port, upgrade_request(http_version="HTTP/1.0"), 505)


@pytest.mark.parametrize("path", ["/nope", "/", "/ws/extra"])
def test_unknown_path_404(server, path):
    expect_refusal(server.port, upgrade_request(path), 404)


def test_plain_get_unknown_path_404(server):
    req = f"GET /nope HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    expect_refusal(server.port, req, 404)


def test_healthz(server):
    req = f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    resp = expect_refusal(server.port, req, 200)
    try:
        body = json.loads(resp.body)
    except ValueError:
        pytest.fail(f"/healthz body is not JSON:\n{resp}")
    assert body.get("status") == "ok", f"/healthz body: {resp.body!r}"


def test_tls_client_hello_400(server):
    hello = bytes.fromhex(
        "16030100c4010000c00303" + "ab" * 32 + "20" + "cd" * 32 + "0002130101000075"
    ) + b"\x00" * 40
    expect_refusal(server.port, hello, 400)


def test_garbage_request_line_400(server):
    expect_refusal(server.port, b"\x00\x01\x02 garbage\r\n\r\n", 400)


def test_header_block_over_limit_431(demo_server):
    srv = demo_server("--max-header-bytes", "1024")
    big = upgrade_request(extra_headers=[("X-Padding", "p" * 2000)])
    expect_refusal(srv.port, big, 431)


def test_header_block_under_limit_upgrades(demo_server):
    srv = demo_server("--max-header-bytes", "1024")
    req = upgrade_request(extra_headers=[("X-Padding", "p" * 500)])
    assert len(req) < 800
    resp, c = http_exchange(srv.port, req)
    with c:
        check_101(resp, request_key(req))


def test_header_block_over_default_limit_431(server):
    big = upgrade_request(extra_headers=[("X-Padding-%d" % i, "p" * 1000) for i in range(9)])
    assert len(big) > 8192
    expect_refusal(server.port, big, 431)


def test_origin_not_allowed_403(demo_server):
    srv = demo_server("--origin", "https://good.example")
    expect_refusal(srv.port, upgrade_request(origin="https://evil.example"), 403)


def test_origin_allowed_101(demo_server):
    srv = demo_server("--origin", "https://good.example")
    req = upgrade_request(origin="https://good.example")
    resp, c = http_exchange(srv.port, req)
    with c:
        check_101(resp, request_key(req))
        c.send_frame(OP_TEXT, b"origin ok")
        assert c.recv_message(t(5)) == (OP_TEXT, b"origin ok")


def test_origin_allow_list_is_repeatable(demo_server):
    srv = demo_server("--origin", "https://good.example", "--origin", "https://also.example")
    for origin in ["https://good.example", "https://also.example"]:
        req = upgrade_request(origin=origin)
        resp, c = http_exchange(srv.port, req)
        with c:
            check_101(resp, request_key(req))
    expect_refusal(srv.port, upgrade_request(origin="https://evil.example"), 403)


def test_subprotocol_selected_from_list(server):
    async def go():
        async with ws_connect(server.port, subprotocols=["foo", "agentws.v1"]) as ws:
            assert ws.subprotocol == "agentws.v1"
            await ws.send("sp")
            assert await asyncio.wait_for(ws.recv(), t(5)) == "sp"

    run_async(go(), t(20))


def test_subprotocol_bearer_token_never_echoed(server):
    req = upgrade_request(protocols="bearer.abc, agentws.v1")
    resp, c = http_exchange(server.port, req)
    with c:
        check_101(resp, request_key(req))
        assert resp.header_all("Sec-WebSocket-Protocol") == ["agentws.v1"], str(resp)
        assert b"bearer." not in resp.raw_head.lower(), str(resp)


def test_subprotocol_bearer_token_in_separate_header(server):
    req = upgrade_request(protocols="bearer.xyz", extra_headers=[("Sec-WebSocket-Protocol", "agentws.v1")])
    resp, c = http_exchange(server.port, req)
    with c:
        check_101(resp, request_key(req))
        assert resp.header_all("Sec-WebSocket-Protocol") == ["agentws.v1"], str(resp)
        assert b"bearer." not in resp.raw_head.lower(), str(resp)


def test_no_subprotocol_offered(server):
    req = upgrade_request(protocols=None)
    resp, c = http_exchange(server.port, req)
    with c:
        check_101(resp, request_key(req))
        assert resp.header("Sec-WebSocket-Protocol") is None, str(resp)
        c.send_frame(OP_TEXT, b"v1 anyway")
        assert c.recv_message(t(5)) == (OP_TEXT, b"v1 anyway")

    async def go():
        async with ws_connect(server.port, subprotocols=None) as ws:
            assert ws.subprotocol is None
            await ws.send("none")
            assert await asyncio.wait_for(ws.recv(), t(5)) == "none"

    run_async(go(), t(20))


def test_first_frame_pipelined_with_request(server):
    req = upgrade_request()
    with RawConn(server.port) as c:
        c.send(req + build_frame(OP_TEXT, b"pipelined") + build_frame(OP_TEXT, b"second"))
        check_101(c.read_http_response(), request_key(req))
        assert c.recv_message(t(5)) == (OP_TEXT, b"pipelined")
        assert c.recv_message(t(5)) == (OP_TEXT, b"second")


def test_request_head_in_small_pieces(server):
    req = upgrade_request()
    with RawConn(server.port) as c:
        for i in range(0, len(req), 7):
            c.send(req[i : i + 7])
            time.sleep(0.002)
        check_101(c.read_http_response(), request_key(req))


def test_bad_handshakes_do_not_disturb_a_live_client(server):
    async def go():
        async with ws_connect(server.port) as ws:
            for req in [b"\x16\x03\x01\x00\x05hello\r\n\r\n", upgrade_request(version="8"), upgrade_request(key="")]:
                await asyncio.get_running_loop().run_in_executor(None, _refused_any, server.port, req)
                await ws.send("still here")
                assert await asyncio.wait_for(ws.recv(), t(5)) == "still here"

    run_async(go(), t(30))


def _refused_any(port, req):
    resp, c = http_exchange(port, req)
    with c:
        assert 400 <= resp.status < 500, str(resp)
        c.wait_closed(t(5))


# --------------------------------------------------------------------------- 13. --max-conns


def test_max_conns_refuses_third_with_503(demo_server):
    srv = demo_server("--max-conns", "2")

    async def go():
        async with ws_connect(srv.port) as a, ws_connect(srv.port) as b:
            await a.send("a")
            await b.send("b")
            assert await asyncio.wait_for(a.recv(), t(5)) == "a"
            assert await asyncio.wait_for(b.recv(), t(5)) == "b"
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, expect_refusal, srv.port, upgrade_request(), 503)
            with pytest.raises(websockets.InvalidStatusCode) as info:
                async with ws_connect(srv.port):
                    pass
            assert info.value.status_code == 503
            # The two admitted clients are unaffected.
            await a.send("a2")
            assert await asyncio.wait_for(a.recv(), t(5)) == "a2"

    run_async(go(), t(30))


def test_max_conns_slot_is_freed_after_close(demo_server):
    srv = demo_server("--max-conns", "2")

    async def go():
        async with ws_connect(srv.port) as a:
            async with ws_connect(srv.port):
                pass  # closed: its slot must come back
            deadline = time.monotonic() + t(3)
            while True:
                try:
                    async with ws_connect(srv.port) as c:
                        await c.send("third")
                        assert await asyncio.wait_for(c.recv(), t(5)) == "third"
                        break
                except websockets.InvalidStatusCode as exc:
                    assert exc.status_code == 503
                    assert time.monotonic() < deadline, "slot of a closed connection never came back"
                    await asyncio.sleep(0.05)
            await a.send("a")
            assert await asyncio.wait_for(a.recv(), t(5)) == "a"

    run_async(go(), t(30))
