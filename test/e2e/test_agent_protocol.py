"""Agent mode (agentws.v1): handshake auth, welcome, a run's lifecycle, tabs and users, per-user limit,
ping/ack, and every kind of bad client message (docs/PROTOCOL.md)."""

import asyncio
import json

import websockets

from helpers import (
    agent_client,
    agent_path,
    check_run,
    expect_refusal,
    run_async,
    summarize,
    t,
    upgrade_request,
)

TEXT = 'héllo "wörld" \\ tab\t ✓ 🚀'


# ------------------------------------------------------------------ handshake and auth


def test_no_dev_insecure_refuses_everything_401(agent_server):
    srv = agent_server(insecure=False)
    cases = {
        "?user=": upgrade_request(agent_path("alice")),
        "Authorization": upgrade_request("/ws", extra_headers=[("Authorization", "Bearer abc.def.ghi")]),
        "bearer subprotocol": upgrade_request("/ws", protocols="agentws.v1, bearer.abc"),
        "nothing": upgrade_request("/ws"),
    }
    for what, req in cases.items():
        resp = expect_refusal(srv.port, req, 401)
        challenge = resp.header("WWW-Authenticate") or ""
        assert challenge.startswith("Bearer"), f"{what}: 401 without WWW-Authenticate: Bearer\n{resp}"


def test_dev_insecure_without_user_is_401(agent_server):
    srv = agent_server()
    expect_refusal(srv.port, upgrade_request("/ws"), 401)
    expect_refusal(srv.port, upgrade_request("/ws?user="), 401)


def test_dev_insecure_warns_loudly(agent_server):
    srv = agent_server()
    srv.stop()
    log = srv.stderr_path.read_text(errors="replace")
    assert "INSECURE: user id taken from ?user=; never use in production" in log, log


def test_welcome_fields(agent_server):
    srv = agent_server()

    async def go():
        async with agent_client(srv.port, "alice") as a:
            w = a.welcome
            assert a.ws.subprotocol == "agentws.v1"
            assert isinstance(w.get("session"), str) and w["session"], w
            assert w.get("user") == "alice", w
            assert isinstance(w.get("epoch"), str) and w["epoch"], w
            assert w.get("seq") == 0, f"fresh user stream: seq must be 0: {w}"
            assert w.get("recovered") is True and w.get("missed") == 0, w
            async with agent_client(srv.port, "alice") as a2:
                w2 = a2.welcome
                assert w2["session"] != w["session"], "two connections share a session id"
                assert w2["epoch"] == w["epoch"], "epoch changed without a restart"
            async with agent_client(srv.port, "bob") as b:
                assert b.welcome["user"] == "bob" and b.welcome["seq"] == 0, b.welcome
            await a.nothing_pending()

    run_async(go(), t(20))


def test_subprotocol_selection(agent_server):
    """No subprotocol offered: v1 anyway; a bearer.<t> entry is never echoed."""
    srv = agent_server()

    async def go():
        async with agent_client(srv.port, "alice", subprotocols=[]) as a:
            assert a.ws.subprotocol is None
            assert a.welcome["user"] == "alice"
        async with agent_client(srv.port, "alice", subprotocols=["bearer.secret-token", "agentws.v1"]) as a:
            assert a.ws.subprotocol == "agentws.v1"

    run_async(go(), t(20))


def test_per_user_connection_limit_429(agent_server):
    srv = agent_server("--max-conn-per-user", "2")

    async def go():
        async with agent_client(srv.port, "alice") as a1, agent_client(srv.port, "alice") as a2:
            resp = await asyncio.get_running_loop().run_in_executor(
                None, expect_refusal, srv.port, upgrade_request(agent_path("alice")), 429)
            assert resp.status == 429
            async with agent_client(srv.port, "bob") as b:  # other users are not affected
                assert b.welcome["user"] == "bob"
            await a2.close()
            # The freed slot becomes usable once the server has seen the close.
            deadline = asyncio.get_running_loop().time() + t(5)
            while True:
                try:
                    async with agent_client(srv.port, "alice") as a3:
                        assert a3.welcome["user"] == "alice"
                    break
                except websockets.InvalidStatusCode as exc:
                    assert exc.status_code == 429, exc
                    assert asyncio.get_running_loop().time() < deadline, "slot not freed after a close"
                    await asyncio.sleep(0.05)
            await a1.nothing_pending()

    run_async(go(), t(30))


def test_server_connection_limit_503(agent_server):
    srv = agent_server("--max-conns", "2")

    async def go():
        async with agent_client(srv.port, "alice"), agent_client(srv.port, "bob"):
            resp = await asyncio.get_running_loop().run_in_executor(
                None, expect_refusal, srv.port, upgrade_request(agent_path("carol")), 503)
            assert resp.header("Retry-After") is not None, str(resp)

    run_async(go(), t(20))


# ------------------------------------------------------------------ runs


def test_user_message_runs_the_lifecycle(agent_server):
    srv = agent_server()

    async def go():
        async with agent_client(srv.port, "alice") as a:
            await a.say(TEXT)
            events = await a.run_events()
            run1 = check_run(events, TEXT, first_seq=1)
            assert set(e["type"] for e in events) == set(
                ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"])
            assert sum(e["type"] == "agent_thinking" for e in events) >= 4, summarize(events)
            full = events[-1]["data"]["result"]["text"]
            assert '"' in full and "\\" in full and any(ord(c) > 127 for c in full), (
                f"the reply should exercise escaping (quote, backslash, non-ASCII): {full!r}"
            )
            # Raw JSON: the escaping in the wire text is standard JSON.
            for raw in a.raw:
                json.loads(raw)
            await a.say("again")
            events2 = await a.run_events()
            run2 = check_run(events2, "again", first_seq=events[-1]["seq"] + 1)
            assert run2 != run1, "two runs share a run_id"
            calls = [next(e["data"]["tool_call_id"] for e in evs if e["type"] == "tool_executing")
                     for evs in (events, events2)]
            assert calls[0] != calls[1], f"two runs share a tool_call_id: {calls}"
            await a.nothing_pending()

    run_async(go(), t(20))


def test_two_tabs_get_the_run_and_other_users_nothing(agent_server):
    srv = agent_server()

    async def go():
        async with agent_client(srv.port, "alice") as a1, agent_client(srv.port, "alice") as a2, \
                agent_client(srv.port, "bob") as b:
            await a1.say("tabs")
            e1 = await a1.run_events()
            e2 = await a2.run_events()
            check_run(e1, "tabs", first_seq=1)
            assert e1 == e2, f"tabs differ:\n{summarize(e1, 40)}\n{summarize(e2, 40)}"
            assert a1.raw[-len(e1):] == a2.raw[-len(e2):], "the same event was serialized differently per tab"
            await b.nothing_pending()
            # Bob's own run reaches bob only.
            await b.say("bob's")
            eb = await b.run_events()
            check_run(eb, "bob's", first_seq=1)
            await a1.nothing_pending()
            await a2.nothing_pending()

    run_async(go(), t(30))


def test_ping_pong_and_silent_ack(agent_server):
    srv = agent_server()

    async def go():
        async with agent_client(srv.port, "alice") as a:
            await a.send({"type": "ping"})
            pong = await a.expect("pong")
            assert pong == {"type": "pong"}, pong
            await a.say("ack me")
            events = await a.run_events()
            await a.send({"type": "ack", "seq": events[0]["seq"]})
            await a.send({"type": "ack", "seq": events[-1]["seq"]})
            await a.nothing_pending()

    run_async(go(), t(20))


# ------------------------------------------------------------------ bad client messages

BAD_MESSAGES = [
    ("too_large", '{"type":"ping","pad":"' + "x" * 70000 + '"}'),
    ("bad_json", '{"type":'),
    ("bad_json", "not json"),
    ("bad_json", '{"type":"ping"} trailing'),
    ("bad_message", "[]"),
    ("bad_message", '"just a string"'),
    ("bad_message", "{}"),
    ("bad_message", '{"type":5}'),
    ("bad_message", '{"type":null}'),
    ("bad_field", '{"type":"ack"}'),
    ("bad_field", '{"type":"ack","seq":"5"}'),
    ("bad_field", '{"type":"ack","seq":-1}'),
    ("bad_field", '{"type":"ack","seq":1.5}'),
    ("bad_field", '{"type":"resume","epoch":7,"last_seq":0}'),
    ("bad_field", '{"type":"resume","epoch":"e-1","last_seq":"x"}'),
    ("bad_field", '{"type":"join"}'),
    ("bad_field", '{"type":"join","room":""}'),
    ("bad_field", '{"type":"join","room":"bad room!"}'),
    ("bad_field", '{"type":"join","room":"' + "a" * 129 + '"}'),
    ("bad_field", '{"type":"leave","room":5}'),
]


def test_bad_messages_get_error_codes(agent_server):
    """Each bad message gets {"type":"error","code":C,"message":M}; the connection stays usable."""
    srv = agent_server()
    failures = []

    async def one(code, msg):
        async with agent_client(srv.port, "alice") as a:
            await a.send(msg)
            try:
                got = await a.recv()
            except AssertionError as exc:
                failures.append(f"{msg[:60]!r}: expected error {code!r}, got {exc}")
                return
            if got.get("type") != "error" or got.get("code") != code or not isinstance(got.get("message"), str) \
                    or not got["message"]:
                failures.append(f"{msg[:60]!r}: expected error {code!r}, got {json.dumps(got)[:200]}")
                return
            try:
                await a.nothing_pending()
            except AssertionError as exc:
                failures.append(f"{msg[:60]!r}: not usable after the error: {exc}")

    async def go():
        for code, msg in BAD_MESSAGES:
            await one(code, msg)

    run_async(go(), t(60))
    assert not failures, "\n".join(failures)


def test_rate_limited(agent_server):
    """Default 50 messages/s with bursts of 100: the excess gets rate_limited errors."""
    srv = agent_server()
    n = 108

    async def go():
        async with agent_client(srv.port, "alice") as a:
            for _ in range(n):
                await a.send({"type": "ping"})
            replies = await a.collect(n, t(10))
            pongs = sum(m["type"] == "pong" for m in replies)
            errors = [m for m in replies if m["type"] == "error"]
            assert pongs + len(errors) == n, summarize(replies, 120)
            assert all(m.get("code") == "rate_limited" for m in errors), summarize(errors)
            assert 100 <= pongs < n, f"{pongs} pongs and {len(errors)} rate_limited errors for {n} pings"
            await asyncio.sleep(1.0)  # tokens come back
            await a.nothing_pending()

    run_async(go(), t(30))


def test_many_bad_messages_close_1008(agent_server):
    srv = agent_server()

    async def go():
        async with agent_client(srv.port, "alice") as a:
            for i in range(15):
                try:
                    await a.send("{bad json %d" % i)
                except websockets.ConnectionClosed:
                    break
            errors = []
            while True:
                try:
                    raw = await asyncio.wait_for(a.ws.recv(), t(5))
                except websockets.ConnectionClosed:
                    break
                errors.append(json.loads(raw))
            assert all(e.get("type") == "error" and e.get("code") == "bad_json" for e in errors), summarize(errors)
            assert 10 <= len(errors) <= 11, f"{len(errors)} errors before the close: {summarize(errors)}"
            assert a.ws.close_code == 1008, f"close code {a.ws.close_code} {a.ws.close_reason!r}"
            assert a.ws.close_reason == "too many bad messages", repr(a.ws.close_reason)

    run_async(go(), t(30))


def test_demo_rejects_odd_user_messages(agent_server):
    """The demo's own answers to messages it cannot run."""
    srv = agent_server()

    async def go():
        async with agent_client(srv.port, "alice") as a:
            await a.send({"type": "user_message"})
            await a.expect_error("bad_field")
            await a.send({"type": "user_message", "text": 5})
            await a.expect_error("bad_field")
            await a.send({"type": "user_message", "text": "/burst 100001"})
            await a.expect_error("bad_field")
            await a.send({"type": "something_else", "x": 1})
            await a.expect_error("bad_message")
            await a.say("in a room I never joined", room="public.lobby")
            await a.expect_error("not_member")
            await a.nothing_pending()

    run_async(go(), t(20))
