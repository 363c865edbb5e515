"""The Python binding (examples/python/agentws.py) against the built library,
end to end with real websockets clients on loopback."""

import asyncio
import base64
import ctypes as C
import http.client
import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time

import jwt
import pytest
import websockets

import agentws
from conftest import (CALLED, HEADER, ORIGINAL, REPO, connect, load_checker,
                      recv_events, recv_json, run, wait_for)

# ------------------------------------------------------------ the table

SCALAR = {"int": C.c_int, "unsigned": C.c_uint, "size_t": C.c_size_t,
          "double": C.c_double, "int64_t": C.c_int64, "uint64_t": C.c_uint64}


def expected_ctype(ctype, in_callback, has_length):
    """What the binding must declare for one C type of the header."""
    tokens = ctype.replace("*", " * ").split()
    stars = tokens.count("*")
    base = " ".join(t for t in tokens if t not in ("const", "*"))
    if ctype == "void":
        return None
    if stars == 0:
        return SCALAR.get(base) or agentws.CALLBACK_TYPES[base]
    if stars == 2:
        return C.POINTER(C.c_char_p if base == "char" else C.c_void_p)
    if base in ("char", "uint8_t"):
        # Callbacks read (pointer, length) buffers with string_at.
        return C.c_void_p if in_callback and has_length else C.c_char_p
    if base in SCALAR:
        return C.POINTER(SCALAR[base])
    return C.c_void_p  # opaque handles, void *user_data


def declared(params, in_callback):
    return [expected_ctype(t, in_callback,
                           i + 1 < len(params) and params[i + 1][0] == "size_t")
            for i, (t, _) in enumerate(params)]


def test_table_is_the_header():
    """Every AGENTWS_EXTERN function, with the types the header gives."""
    functions, callbacks, _ = load_checker().parse_header(HEADER.read_text())
    assert set(agentws.FUNCTIONS) == set(functions)
    for name, (ret, params) in functions.items():
        restype, argtypes = agentws.FUNCTIONS[name]
        assert restype is expected_ctype(ret, False, False), name
        assert argtypes == declared(params, False), name
        assert ORIGINAL[name].argtypes == argtypes, name
        assert ORIGINAL[name].restype is restype, name
    assert set(agentws.CALLBACK_TYPES) == set(callbacks)
    for name, (ret, params) in callbacks.items():
        cbtype = agentws.CALLBACK_TYPES[name]
        assert cbtype._restype_ is expected_ctype(ret, True, False), name
        assert list(cbtype._argtypes_) == declared(params, True), name


def test_header_checker_catches_a_broken_header(tmp_path):
    """check-ctypes.py passes the real header and fails copies that break
    one rule in one function."""
    script = REPO / "test" / "abi" / "check-ctypes.py"
    text = HEADER.read_text()
    breaks = {  # what the report says: (pattern, replacement)
        "no size_t length": (r"(agentws_conn_send\([^;]*?\*data),\s*size_t len",
                             r"\1"),
        "uses long": (r"(agentws_config_set_ping_interval_ms\([^;]*?)int64_t",
                      r"\1long"),
        "varargs": (r"(agentws_emit_custom\([^;]*?data_json)\)", r"\1, ...)"),
        "by value": (r"(agentws_stats_get\(const agentws_stats) \*st",
                     r"\1 st"),
    }
    ok = subprocess.run([sys.executable, script, HEADER], capture_output=True,
                        text=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    for what, (pattern, repl) in breaks.items():
        broken, n = re.subn(pattern, repl, text, count=1)
        assert n == 1, pattern
        bad = tmp_path / "agentws.h"
        bad.write_text(broken)
        r = subprocess.run([sys.executable, script, bad], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 1 and what in r.stderr, (what, r.stderr)


# --------------------------------------------------------------- basics

def test_names_and_errors():
    assert agentws.version() >= 0x000100
    assert agentws.version_string().count(".") == 2
    assert agentws.strerror(agentws.ERR_NOT_FOUND) == "no such connection"
    assert agentws.err_name(agentws.ERR_VALIDATION) == "AGENTWS_ERR_VALIDATION"
    lib = agentws.lib()
    buf = C.create_string_buffer(8)
    assert lib.agentws_strerror_r(agentws.ERR_NOT_FOUND, buf, 8) == 0
    assert buf.value == b"no such"  # truncated, NUL-terminated
    assert lib.agentws_err_is_fatal(agentws.ERR_NOMEM) == 1
    assert lib.agentws_err_is_fatal(agentws.ERR_NOT_FOUND) == 0
    # A host-loop manager needs a uv loop, which Python does not have.
    m = C.c_void_p()
    assert lib.agentws_manager_new(C.byref(m), None, None, None, None) == \
        agentws.ERR_INVALID_ARGUMENT


def test_options_map_to_setters(manager):
    m = manager(dev_insecure=True, validation="strict", log_level="debug",
                validation_rules={"run_stalled": "off", "tool_timeout": 1},
                allowed_origins=["https://app.example"],
                subprotocols=["chat.v1"], max_conns_per_user=3,
                backlog_events=10, stall_timeout_ms=0, http_token="t0k",
                max_message_size=1 << 20, ws_path="/agents")
    assert m.url == f"ws://127.0.0.1:{m.port}/agents"
    with pytest.raises(agentws.AgentwsError) as e:
        manager(max_conns_per_user=0)
    assert (e.value.code, e.value.name) == (agentws.ERR_OUT_OF_RANGE,
                                            "AGENTWS_ERR_OUT_OF_RANGE")
    assert "agentws_config_set_max_conns_per_user" in str(e.value)
    with pytest.raises(TypeError):
        manager(no_such_option=1)
    with pytest.raises(TypeError):
        manager(on_nothing=print)
    with pytest.raises(agentws.AgentwsError) as e:
        manager(port=m.port)
    assert e.value.name == "EADDRINUSE"
    with pytest.raises(agentws.AgentwsError) as e:
        m.custom("x.y", {}, user="a\0b")
    assert e.value.code == agentws.ERR_INVALID_ARGUMENT
    assert "NUL" in e.value.message


# One valid value (the default, mostly) per agentws_config_set_* option.
EVERY_OPTION = dict(
    ws_path="/ws", max_message_size=1 << 20, max_queued_bytes=1 << 20,
    max_header_bytes=8192, max_headers=64, handshake_timeout_ms=10000,
    ping_interval_ms=30000, pong_timeout_ms=10000, idle_timeout_ms=0,
    close_timeout_ms=5000, max_connections=0, healthz=True,
    socket_send_buffer=0, listen_backlog=511, raw_messages=False,
    dev_insecure=False, max_conns_per_user=5, backlog_events=1000,
    backlog_bytes=4 << 20, backlog_age_ms=300000, max_client_message=65536,
    client_rate=50, auth_timeout_ms=5000, max_event_bytes=262144,
    jwt_algorithms="HS256,RS256,ES256", jwt_issuer="https://auth.example",
    jwt_audience="agents", jwt_leeway_s=30, jwt_user_claim="sub",
    jwt_required_scope="agents:read", jwt_require_exp=True,
    jwt_cache_size=10000, token_sources="header,subprotocol",
    token_query_param="access_token", token_cookie="agentws_token",
    token_expiring_s=60, validation="warn", stall_timeout_ms=300000,
    tool_timeout_ms=300000, max_live_runs=100000, run_keep_ms=600000,
    monitor=True, monitor_interval_ms=1000, alert_loop_lag_ms=250,
    alert_ack_timeout_ms=30000, alert_queue_bytes=1 << 18,
    alert_auth_timeouts=1, alert_violations_per_s=10, alert_window_ms=10000,
    metrics=True, readyz=True, http_token="t", ready_max_loop_lag_ms=1000,
    ready_max_queued_bytes=1 << 30, log_level="info")


def test_every_option_is_a_keyword(manager):
    setters = {n[len("agentws_config_set_"):] for n in agentws.FUNCTIONS
               if n.startswith("agentws_config_set_")}
    assert setters - set(EVERY_OPTION) == {"validation_rule", "jwt_keys",
                                           "allocator"}
    manager(**EVERY_OPTION).close()


def test_emit_errors_are_exceptions(manager):
    m = manager(dev_insecure=True)
    cases = [
        (lambda: m.agent_started("r", "a", user="u", data="[1]"),
         agentws.ERR_INVALID_JSON),
        (lambda: m.agent_started("r", "a", user="u", data="{"),
         agentws.ERR_INVALID_JSON),
        (lambda: m.agent_started("", "a", user="u"),
         agentws.ERR_INVALID_ARGUMENT),
        (lambda: m.agent_thinking("r", b"\xff", user="u"),
         agentws.ERR_INVALID_UTF8),
        (lambda: m.agent_started("r" * 300, "a", user="u"),
         agentws.ERR_TOO_BIG),
        (lambda: m.agent_error("r", "c", "m", "loud", user="u"),
         agentws.ERR_INVALID_ARGUMENT),
        (lambda: m.custom("agent_x", user="u"), agentws.ERR_INVALID_ARGUMENT),
    ]
    for emit, code in cases:
        with pytest.raises(agentws.AgentwsError) as e:
            emit()
        assert e.value.code == code, e.value
    with pytest.raises(TypeError):
        m.custom("x.y", {}, user="u", room="r")


# ------------------------------------------------------- end to end

def test_jwt_auth_and_key_rotation(manager):
    secret, secret2 = os.urandom(32), os.urandom(48)
    seen = []

    def on_authenticate(req):
        seen.append((req.user, req.claims["sub"], req.header("authorization")
                     is not None, req.method, req.path))
        return req.user

    m = manager(jwt_hs256_secret=secret, on_authenticate=on_authenticate)

    def token(key, sub="alice"):
        return jwt.encode({"sub": sub, "exp": int(time.time()) + 600}, key,
                          "HS256")

    async def go():
        bearer = {"Authorization": f"Bearer {token(secret)}"}
        async with connect(m, headers=bearer) as ws:
            welcome = await recv_json(ws)
            assert welcome["user"] == "alice"
            m.agent_started("r-1", "a", user="alice")
            assert (await recv_events(ws, 1))[0]["type"] == "agent_started"
            info = await m.run(m.connection, 1)
            assert info.user == "alice" and info.token_exp > time.time()
        for headers, status in (({}, 401),
                                ({"Authorization": f"Bearer {token(b'x' * 32)}"},
                                 401)):
            with pytest.raises(websockets.InvalidStatusCode) as e:
                await connect(m, headers=headers)
            assert e.value.status_code == status
        # Rotation: the old secret is refused at once, the new one works.
        with agentws.KeySet() as ks:
            m.set_jwt_keys(ks.add_secret(secret2, kid="k2"))
        with pytest.raises(websockets.InvalidStatusCode):
            await connect(m, headers=bearer)
        async with connect(m, headers={
                "Authorization": f"Bearer {token(secret2, 'bob')}"}) as ws:
            assert (await recv_json(ws))["user"] == "bob"

    run(go())
    assert seen[0] == ("alice", "alice", True, "GET", "/ws")
    st = m.stats()
    assert st["auth_accepted"] == 2 and st["auth_missing_token"] == 1
    assert st["auth_bad_signature"] >= 2


def test_multi_tab_delivery(manager):
    m = manager(dev_insecure=True)

    async def go():
        async with connect(m, "?user=alice") as a1, \
                connect(m, "?user=alice") as a2, \
                connect(m, "?user=bob") as b:
            for ws in (a1, a2, b):
                await recv_json(ws)  # welcome
            stream_run(m, "r-1", user="alice")
            m.custom("demo.marker", {"for": "bob"}, user="bob")
            tab1, tab2 = await recv_events(a1, 5), await recv_events(a2, 5)
            assert tab1 == tab2
            assert [e["type"] for e in tab1] == LIFECYCLE
            assert [e["seq"] for e in tab1] == [1, 2, 3, 4, 5]
            # bob's first event is his own marker: none of alice's reached him
            assert (await recv_events(b, 1))[0]["type"] == "demo.marker"
    run(go())


LIFECYCLE = ["agent_started", "agent_thinking", "tool_executing",
             "tool_completed", "agent_completed"]


def stream_run(m, run_id, **target):
    m.agent_started(run_id, "researcher", data={"thread_id": "t-1"}, **target)
    m.agent_thinking(run_id, "Looking it up: ünïcödé \"quoted\"", **target)
    m.tool_executing(run_id, "web_search", "c-1", {"q": "libuv"}, **target)
    m.tool_completed(run_id, "web_search", "c-1", True, 12, {"hits": 3},
                     **target)
    m.agent_completed(run_id, 40, {"text": "done"}, **target)


def test_resume_after_a_drop_and_gap(manager):
    gaps = []
    m = manager(dev_insecure=True, backlog_events=4,
                on_gap=lambda *a: gaps.append(a))

    async def go():
        async with connect(m, "?user=alice") as ws:
            epoch = (await recv_json(ws))["epoch"]
            for i in range(3):
                m.custom("demo.tick", {"i": i}, user="alice")
            last = (await recv_events(ws, 3))[-1]["seq"]
        for i in range(3, 6):  # while alice is offline
            m.custom("demo.tick", {"i": i}, user="alice")
        await asyncio.sleep(0.1)
        async with connect(m, f"?user=alice&epoch={epoch}&last_seq={last}") as ws:
            w = await recv_json(ws)
            assert (w["recovered"], w["missed"], w["seq"]) == (True, 0, 6)
            replay = await recv_events(ws, 3)
            assert [e["data"]["i"] for e in replay] == [3, 4, 5]
        # Resuming from the start: seqs 1-2 left the 4-event backlog.
        async with connect(m, f"?user=alice&epoch={epoch}&last_seq=0") as ws:
            w = await recv_json(ws)
            assert (w["recovered"], w["missed"]) == (False, 2)
            assert await recv_json(ws) == {"type": "gap", "from": 1, "to": 2}
            await wait_for(lambda: gaps)
    run(go())
    assert gaps[0][1:] == ("", 1, 2)


def test_strict_validation_raises(manager):
    violations = []
    m = manager(dev_insecure=True, validation="strict",
                on_violation=violations.append)
    with pytest.raises(agentws.AgentwsError) as e:
        m.tool_completed("r-9", "web_search", "c-1", user="alice")
    assert (e.value.code, e.value.name) == (agentws.ERR_VALIDATION,
                                            "AGENTWS_ERR_VALIDATION")
    stream_run(m, "r-10", user="alice")  # a correct run passes
    with pytest.raises(agentws.AgentwsError):
        m.agent_thinking("r-10", "after the end", user="alice")
    run(wait_for(lambda: len(violations) >= 2))
    v = violations[0]
    assert (v.rule, v.outcome, v.run_id, v.target, v.target_id) == \
        ("run_not_started", "refused", "r-9", "user", "alice")
    assert violations[1].rule == "event_after_terminal"
    assert m.stats()["violations_refused"] == 2


def test_alert_callback(manager):
    alerts = []
    m = manager(dev_insecure=True, stall_timeout_ms=100,
                monitor_interval_ms=20, on_alert=alerts.append)
    m.agent_started("r-s", "sleepy", user="alice")
    run(wait_for(lambda: any(a.rule == "run_stalled" for a in alerts)))
    a = next(a for a in alerts if a.rule == "run_stalled")
    assert (a.firing, a.run, a.target, a.severity) == (True, "r-s", "alice",
                                                       "warning")
    assert a.value >= a.threshold == 100
    m.agent_thinking("r-s", "awake", user="alice")
    run(wait_for(lambda: any(not x.firing for x in alerts)))
    assert m.stats()["alerts_run_stalled"] >= 1


def test_stats_dict(manager):
    m = manager(dev_insecure=True)

    async def go():
        async with connect(m, "?user=alice") as ws:
            await recv_json(ws)
            stream_run(m, "r-1", user="alice")
            await recv_events(ws, 5)
    run(go())
    st = m.stats()
    names = []
    while (n := agentws.lib().agentws_stat_name(len(names))) is not None:
        names.append(n.decode())
    assert set(names) <= set(st) and len(names) >= 110
    assert st["events_delivered"] == 5 and st["emitted_agent_started"] == 1
    assert st["connections_opened"] == 1
    for h in ("emit_to_write", "emit_to_ack", "handshake"):
        for key in ("count", "sum_ns", "p50_ns", "p90_ns", "p99_ns", "p999_ns"):
            assert isinstance(st[f"{h}_{key}"], int)
    assert st["emit_to_write_count"] == 5 and st["handshake_count"] == 1
    assert 0 < st["emit_to_write_p50_ns"] <= st["emit_to_write_p99_ns"]


def test_eight_threads_emit_at_once(manager):
    threads, per_thread = 8, 400
    m = manager(dev_insecure=True, backlog_events=threads * per_thread)

    def emitter(t, barrier):
        barrier.wait(5)
        for i in range(per_thread):
            m.custom("load.tick", {"t": t, "i": i}, user="alice")

    async def go():
        async with connect(m, "?user=alice") as ws:
            await recv_json(ws)
            barrier = threading.Barrier(threads)
            workers = [threading.Thread(target=emitter, args=(t, barrier))
                       for t in range(threads)]
            for w in workers:
                w.start()
            events = await recv_events(ws, threads * per_thread, timeout=10)
            for w in workers:
                w.join(5)
            return events
    events = run(go())
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    for t in range(threads):
        assert [e["data"]["i"] for e in events if e["data"]["t"] == t] == \
            list(range(per_thread))


def test_raising_handlers_are_logged_not_fatal(manager, caplog):
    def boom(*args):
        raise RuntimeError("handler bug")
    m = manager(dev_insecure=True, on_open=boom, on_client_message=boom,
                on_close=boom)
    raw = manager(raw_messages=True, on_message=boom)

    async def go():
        async with connect(m, "?user=alice") as ws:
            await recv_json(ws)
            await ws.send(json.dumps({"type": "user_message", "text": "hi"}))
            await ws.send(json.dumps({"type": "ping"}))
            assert (await recv_json(ws))["type"] == "pong"  # still served
        async with connect(raw) as ws:
            await ws.send("hello")
            await asyncio.wait_for(ws.wait_closed(), 5)
            assert ws.close_code == 1011  # on_message failed: 1011
    with caplog.at_level(logging.ERROR, logger="agentws"):
        run(go())
        run(wait_for(lambda: sum("handler raised" in r.message
                                 for r in caplog.records) >= 4))
    for hook in ("on_open", "on_client_message", "on_message"):
        assert any(hook in r.getMessage() and r.exc_info for r in
                   caplog.records), hook


def test_close_with_clients_connected(manager):
    closes = []
    m = manager(dev_insecure=True, on_close=lambda *a: closes.append(a))

    async def go():
        clients = [await connect(m, f"?user=u{i % 2}") for i in range(3)]
        for ws in clients:
            await recv_json(ws)
        await m.aclose()  # the loop keeps serving the clients meanwhile
        for ws in clients:
            await asyncio.wait_for(ws.wait_closed(), 5)
            assert (ws.close_code, ws.close_reason) == (1001, "server shutdown")
    run(go())
    assert m.closed and len(closes) == 3
    with pytest.raises(agentws.AgentwsError) as e:
        m.custom("x.y", {}, user="u0")
    assert e.value.code == agentws.ERR_INVALID_STATE
    with pytest.raises(agentws.AgentwsError):
        m.stats()
    m.close()  # idempotent


UNLOAD = r"""
import _ctypes, socket, sys
sys.path.insert(0, sys.argv[1])
import agentws
lib = agentws.load()
opened = []
m = agentws.Manager(dev_insecure=True, on_open=opened.append)
with socket.create_connection(("127.0.0.1", m.port), timeout=5) as s:
    s.sendall(b"GET /ws?user=u HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    assert s.recv(4096).startswith(b"HTTP/1.1 101")
    m.custom("demo.tick", {"i": 1}, user="u")
m.close()
assert opened == [1]
handle = lib._handle
agentws._libs.clear()
del lib, m
_ctypes.dlclose(handle)
maps = open("/proc/self/maps").read()
assert "libagentws" not in maps, "still mapped"
print("unloaded")
"""


def test_library_unloads_cleanly():
    r = subprocess.run([sys.executable, "-c", UNLOAD,
                        str(REPO / "examples" / "python")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "unloaded", r.stderr


# ------------------------------------------------------------- asyncio

def test_callbacks_on_the_asyncio_loop(manager):
    got = []

    async def go():
        loop = asyncio.get_running_loop()
        here = threading.get_ident()

        async def on_open(conn):
            await asyncio.sleep(0)
            got.append(("open", threading.get_ident() == here))

        def on_client_message(conn, user, msg):
            got.append((msg["type"], threading.get_ident() == here))
            # Connection calls go through the library's thread.
            m.call_soon(m.send, conn, json.dumps({"type": "note",
                                                  "echo": msg["text"]}))

        def on_log(level, line):
            if "insecure" in line:
                got.append(("log", threading.get_ident() == here))

        m = manager(dev_insecure=True, loop=loop, on_open=on_open,
                    on_client_message=on_client_message, on_log=on_log,
                    log_level="debug")
        async with connect(m, "?user=alice") as ws:
            await recv_json(ws)
            await ws.send(json.dumps({"type": "user_message", "text": "hi"}))
            assert await recv_json(ws) == {"type": "note", "echo": "hi"}
            conns = await m.run(m.user_connections, "alice")
            assert conns == [1]
            with pytest.raises(agentws.AgentwsError) as e:
                m.send(1, "not from here")
            assert e.value.code == agentws.ERR_WRONG_THREAD
            await m.run(m.close_connection, 1, 4002, "bye")
            await asyncio.wait_for(ws.wait_closed(), 5)
            assert (ws.close_code, ws.close_reason) == (4002, "bye")
        await wait_for(lambda: any(g[0] == "log" for g in got))
    run(go())
    assert sorted(set(got)) == [("log", True), ("open", True),
                                ("user_message", True)]


def test_emit_never_blocks_the_event_loop(manager):
    """The library's thread is stuck in a handler for 1 s; emits from a
    coroutine still return at once, and arrive once it is free."""
    def slow_join(conn, user, room):
        time.sleep(1.0)
        return True

    m = manager(dev_insecure=True, on_join=slow_join)

    async def go():
        async with connect(m, "?user=alice") as ws:
            await recv_json(ws)
            await ws.send(json.dumps({"type": "join", "room": "public.a"}))
            await asyncio.sleep(0.1)  # the loop thread is in slow_join now
            t0 = time.monotonic()
            worst = 0.0
            for i in range(1000):
                t = time.monotonic()
                m.custom("demo.tick", {"i": i}, user="alice")
                worst = max(worst, time.monotonic() - t)
            total = time.monotonic() - t0
            assert total < 0.5 and worst < 0.05, (total, worst)
            # The stuck thread has taken none of them yet.
            assert m.queued_events() == 1000
            assert (await recv_json(ws, 5))["type"] == "joined"
            events = await recv_events(ws, 1000)
            assert [e["data"]["i"] for e in events] == list(range(1000))
    run(go())


# ------------------------------------------------------ hooks and rooms

def test_authenticate_hook_answers_now_later_or_fails(manager):
    def on_authenticate(req):
        who = req.query.get("who")
        if who == "later":
            inside = req.headers()
            req.defer()  # answered from another thread, headers kept

            def later():
                # Every header line was copied, in order, with its case.
                assert req.headers() == inside
                names = [n.lower() for n, _ in inside]
                assert "host" in names and "sec-websocket-key" in names
                req.accept("carol-" + req.header("user-agent")[:3])
            threading.Timer(0.1, later).start()
        elif who == "boom":
            raise RuntimeError("auth backend down")
        elif who == "no":
            req.refuse(403, "not you")
        else:
            return who  # None: 403

    m = manager(on_authenticate=on_authenticate, auth_timeout_ms=2000)

    async def go():
        async with connect(m, "?who=dave") as ws:
            assert (await recv_json(ws))["user"] == "dave"
        async with connect(m, "?who=later") as ws:
            assert (await recv_json(ws))["user"] == "carol-Pyt"
        for who, status in (("boom", 500), ("no", 403), ("", 403)):
            with pytest.raises(websockets.InvalidStatusCode) as e:
                await connect(m, f"?who={who}")
            assert e.value.status_code == status, who
    run(go())


def test_rooms_limits_and_host_calls(manager):
    state = {}

    def on_open(conn):
        m.room_add(conn, "ops")
        state["in_ops"] = m.in_room(conn, "ops")
        state["conns"] = m.num_connections()

    m = manager(dev_insecure=True, max_conns_per_user=1, on_open=on_open,
                on_join=lambda conn, user, room: room.startswith("public."))

    async def go():
        async with connect(m, "?user=alice") as ws:
            await recv_json(ws)
            ops = await recv_json(ws)  # the host's room_add is announced
            assert (ops["type"], ops["room"]) == ("joined", "ops")
            with pytest.raises(websockets.InvalidStatusCode) as e:
                await connect(m, "?user=alice")
            assert e.value.status_code == 429
            await ws.send(json.dumps({"type": "join", "room": "public.lobby"}))
            assert (await recv_json(ws))["type"] == "joined"
            await ws.send(json.dumps({"type": "join", "room": "secret"}))
            assert (await recv_json(ws))["code"] == "join_denied"
            m.custom("demo.news", {"n": 1}, room="public.lobby")
            m.custom("demo.ops", {"n": 2}, room="ops")
            got = await recv_events(ws, 2)
            assert {e["stream"] for e in got} == {"room:public.lobby",
                                                  "room:ops"}
            await m.run(m.room_remove, 1, "ops")
            assert not await m.run(m.in_room, 1, "ops")
            assert await m.run(m.disconnect_user, "alice", 4000, "revoked") == 1
            await asyncio.wait_for(ws.wait_closed(), 5)
            assert (ws.close_code, ws.close_reason) == (4000, "revoked")
    run(go())
    assert state == {"in_ops": True, "conns": 1}


def test_http_hook_and_endpoint_token(manager):
    def on_http(req):
        if req.path == "/hello":
            return f"hi {req.query.get('name')}"
        if req.path == "/data":
            return 201, "application/json", b'{"ok":true}'
        if req.path == "/boom":
            raise ValueError("page bug")
        return None

    m = manager(dev_insecure=True, http_token="s3cret", on_http=on_http)

    def get(path, token=None):
        c = http.client.HTTPConnection("127.0.0.1", m.port, timeout=5)
        c.request("GET", path, headers={"Authorization": f"Bearer {token}"}
                  if token else {})
        r = c.getresponse()
        out = r.status, r.getheader("Content-Type"), r.read()
        c.close()
        return out

    assert get("/hello?name=py") == (200, "text/plain; charset=utf-8",
                                     b"hi py")
    assert get("/data") == (201, "application/json", b'{"ok":true}')
    assert get("/boom")[0] == 404 and get("/nothing")[0] == 404
    assert get("/metrics")[0] == 401
    status, _, body = get("/metrics", "s3cret")
    assert status == 200 and b"agentws_events_delivered_total" in body


def test_key_set_sources(tmp_path, manager):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo)
    secret = os.urandom(32)
    jwk = {"kty": "oct", "kid": "j1",
           "k": base64.urlsafe_b64encode(secret).rstrip(b"=").decode()}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    ks = agentws.KeySet()
    ks.add_pem(pem, kid="rsa").add_jwks({"keys": [jwk]}).add_jwks_file(path)
    assert len(ks) == 3
    m = manager(jwt_keys=ks)
    ks.close()
    with pytest.raises(agentws.AgentwsError) as e:
        agentws.KeySet().add_secret(b"short")
    assert e.value.code == agentws.ERR_INVALID_ARGUMENT

    async def go():
        for alg, k, kid in (("RS256", key, "rsa"), ("HS256", secret, "j1")):
            tok = jwt.encode({"sub": alg, "exp": int(time.time()) + 60}, k,
                             alg, headers={"kid": kid})
            async with connect(m, headers={"Authorization": f"Bearer {tok}"}) as ws:
                assert (await recv_json(ws))["user"] == alg
    run(go())


def test_adopt_a_socket_the_host_accepted(manager):
    """The host's own listener hands an accepted socket over."""
    m = manager(dev_insecure=True)
    lsock = socket.create_server(("127.0.0.1", 0))
    port = lsock.getsockname()[1]

    def host_server():
        sock, _ = lsock.accept()
        sock.settimeout(5)
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        state["conn"] = m.call_soon(m.adopt, sock, head).result(5)

    state = {}
    t = threading.Thread(target=host_server)
    t.start()

    async def go():
        async with websockets.connect(
                f"ws://127.0.0.1:{port}/ws?user=adopted",
                subprotocols=["agentws.v1"], open_timeout=5) as ws:
            assert (await recv_json(ws))["user"] == "adopted"
    try:
        run(go())
    finally:
        t.join(5)
        lsock.close()
    assert state["conn"] >= 1


def test_raw_user_data_and_close_in_a_callback(manager):
    """The remaining C calls, raw: user data, and agentws_manager_close on
    the library's thread (allowed there; stop then just joins)."""
    lib = agentws.lib()
    results = {}

    def on_open(conn):
        mp = m._m
        lib.agentws_manager_set_user_data(mp, 42)
        results["m_ud"] = lib.agentws_manager_get_user_data(mp)
        assert lib.agentws_conn_set_user_data(mp, conn, 7) == 0
        out = C.c_void_p()
        assert lib.agentws_conn_get_user_data(mp, conn, C.byref(out)) == 0
        results["c_ud"] = out.value
        results["close"] = lib.agentws_manager_close(
            mp, agentws.CALLBACK_TYPES["agentws_closed_cb"](), None)  # NULL

    m = manager(dev_insecure=True, on_open=on_open)

    async def go():
        async with connect(m, "?user=a") as ws:
            await recv_json(ws)
            await asyncio.wait_for(ws.wait_closed(), 5)
            assert ws.close_code == 1001
    run(go())
    m.close()
    assert results == {"m_ud": 42, "c_ud": 7, "close": 0}


def test_allocator_hook_from_python():
    """A Python allocator over libc: a threaded manager allocates through
    it, frees all it allocated, and half a hook is refused."""
    lib_ = agentws.load()
    libc = C.CDLL(None)
    P, SZ = C.c_void_p, C.c_size_t
    libc.malloc.restype = libc.calloc.restype = libc.realloc.restype = P
    libc.malloc.argtypes = [SZ]
    libc.calloc.argtypes = [SZ, SZ]
    libc.realloc.argtypes = [P, SZ]
    libc.free.argtypes = [P]
    live = set()
    count = [0]

    def track(p, old=None):
        if old:
            live.discard(old)
        if p:
            count[0] += 1
            live.add(p)
        return p

    def free(p, ud):
        live.discard(p)
        libc.free(p)

    fns = (agentws.CB["malloc"](lambda n, ud: track(libc.malloc(n))),
           agentws.CB["free"](free),
           agentws.CB["calloc"](lambda k, n, ud: track(libc.calloc(k, n))),
           agentws.CB["realloc"](
               lambda p, n, ud: track(libc.realloc(p, n), p)))
    cfg, m = P(), P()
    assert lib_.agentws_config_new(C.byref(cfg)) == 0
    try:
        nulls = [agentws.CB[k]() for k in ("malloc", "free", "calloc",
                                          "realloc")]
        assert lib_.agentws_config_set_allocator(
            cfg, fns[0], *nulls[1:], None) == agentws.ERR_INVALID_ARGUMENT
        assert lib_.agentws_config_set_allocator(cfg, *fns, None) == 0
        assert lib_.agentws_manager_new_threaded(C.byref(m), cfg, None,
                                                 None) == 0
        assert count[0] > 0 and live
        lib_.agentws_manager_free(m)
        assert not live
        assert lib_.agentws_config_set_allocator(cfg, *nulls, None) == 0
    finally:
        lib_.agentws_config_free(cfg)


# ------------------------------------------------------------ coverage

def test_every_public_function_was_called(request):
    """Runs last: each AGENTWS_EXTERN function went through the binding."""
    mine = [i for i in request.session.items if i.module is request.module]
    if len(mine) != len([n for n in dir(request.module)
                         if n.startswith("test_")]):
        pytest.skip("only meaningful when the whole module runs")
    missing = sorted(set(agentws.FUNCTIONS) - CALLED)
    assert not missing, "\n".join(missing)
