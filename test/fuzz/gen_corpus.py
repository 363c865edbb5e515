#!/usr/bin/python3
"""Writes the seed corpora of fuzz_emit, fuzz_config and fuzz_upgrade.

    /usr/bin/python3 test/fuzz/gen_corpus.py [emit|config|upgrade ...]

Each target's input format is described at the top of its .c file; the
seeds here are a few small valid (and a few deliberately broken) inputs
of that format, so the fuzzer starts from inputs that reach deep. The
output is deterministic; re-running it rewrites the same files.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# ------------------------------------------------------------------ emit

RS, US = b"\x1e", b"\x1f"
SWEEP, STARTED, THINKING, EXECUTING, TOOL_DONE, DONE, ERROR, CUSTOM = range(8)


def rec(typ, run=None, target=b"alice", s1=None, s2=None, s3=None, j1=None,
        j2=None, flags=0, step=1):
    """One fuzz_emit record; fields after the last given one are absent."""
    fields = [run, target, s1, s2, s3, j1, j2]
    while fields and fields[-1] is None:
        fields.pop()
    # An empty field is absent (NULL); a lone 0x1D is the empty string.
    body = US.join(b"" if f is None else (f or b"\x1d") for f in fields)
    return bytes([typ, flags, step]) + body


def emit_input(p0, records, p1=0, p2=0, p3=0, p4=2):
    return bytes([p0, p1, p2, p3, p4]) + RS.join(records)


def good_run(run=b"r-1", target=b"alice", room=0):
    f = room
    return [
        rec(STARTED, run, target, s1=b"planner", j1=b'{"thread_id":"t-1"}',
            flags=f),
        rec(THINKING, run, target, s3=b"Let me ", flags=f),
        rec(THINKING, run, target, s3=b"look \xe2\x80\xa8 that up\n\"ok\"\x00",
            j1=b'{"progress":0.5}', flags=f),
        rec(EXECUTING, run, target, s1=b"web_search", s2=b"c-1",
            j2=b'{"q":"libuv","n":[1,2.5,null,true]}', flags=f),
        rec(TOOL_DONE, run, target, s1=b"web_search", s2=b"c-1",
            j2=b'{"hits":3}', flags=f | 2 | (3 << 4)),
        rec(DONE, run, target, j1=b'{"usage":{"tokens":42}}',
            j2=b'"the answer"', flags=f | (5 << 4)),
    ]


def emit_seeds():
    s = {}
    s["good_repair"] = emit_input(0x00, good_run())
    s["good_strict_room"] = emit_input(0x01, good_run(room=1, target=b"lobby"))
    s["mixed_policies"] = emit_input(0x02, good_run(), 0x1b, 0xe4, 0x39)
    s["warn_big_seq"] = emit_input(0x03 | 0x0c, good_run(), p4=0x82)
    s["orphan_and_open"] = emit_input(0x00, [
        rec(TOOL_DONE, b"r-2", s1=b"calc", s2=b"c-9", flags=2),
        rec(EXECUTING, b"r-2", s1=b"calc", s2=b"c-10"),
        rec(EXECUTING, b"r-2", s1=b"calc", s2=b"c-10"),
        rec(DONE, b"r-2", flags=1 << 4),
        rec(THINKING, b"r-2", s3=b"late"),
        rec(STARTED, b"r-2", s1=b"again"),
    ])
    s["error_mid_tool_strict"] = emit_input(0x01, [
        rec(STARTED, b"r-3", s1=b"a"),
        rec(EXECUTING, b"r-3", s1=b"t", s2=b"c"),
        rec(ERROR, b"r-3", s1=b"boom", s2=b"it broke", s3=b"fatal",
            j1=b'{"hint":"retry"}', flags=4),
        rec(ERROR, b"r-4", s1=b"x", s2=b"y", s3=b"loud"),
    ])
    # Stalls and tool timeouts (P0 bit 7), swept by a moving clock.
    s["stall_sweep"] = emit_input(0x80, [
        rec(STARTED, b"r-5", s1=b"a"),
        rec(EXECUTING, b"r-5", s1=b"t", s2=b"c-1"),
        rec(SWEEP, step=24),
        rec(SWEEP, step=40),
        rec(THINKING, b"r-5", s3=b"?"),
    ], p4=0x06)
    # max_runs 1: a second run evicts the first.
    s["run_limit"] = emit_input(0x00, [
        rec(STARTED, b"a", s1=b"x"),
        rec(EXECUTING, b"a", s1=b"t", s2=b"c"),
        rec(STARTED, b"b", s1=b"x"),
        rec(THINKING, b"a", s3=b"?"),
        rec(STARTED, b"a", s1=b"x"),
    ], p4=0x00)
    s["custom_and_bad"] = emit_input(0x02, [
        rec(CUSTOM, None, s1=b"billing.update", j1=b'{"cents":120}'),
        rec(CUSTOM, b"r-1", s1=b"agent_fake", j1=b"{}"),
        rec(CUSTOM, b"r-1", s1=b"welcome"),
        rec(STARTED, b"r-6", s1=b"a", j1=b'{"agent":"dup"}'),
        rec(STARTED, b"r-6", s1=b"a", j1=b'{"\\u0061gent":"dup"}'),
        rec(STARTED, b"r-6", s1=b"a", j1=b'{"a":1,"a":2}'),
        rec(STARTED, b"r-6", s1=b"\xff\xfe"),
        rec(STARTED, b"", s1=b"a"),
        rec(EXECUTING, b"r-6", s1=b"t", s2=b"c", j2=b"[" * 40 + b"]" * 40),
        rec(TOOL_DONE, b"r-6", s1=b"t", s2=b"c", j2=b"1e999", flags=8),
        rec(DONE, b"r-6", j2=b'  {"x":"\\u0000"}  ', step=255),
        rec(THINKING, b"r-6", s3=b"\xc0\x80", step=254),
    ])
    s["escapes_room"] = emit_input(0x04, [
        rec(STARTED, b"r\x01\"\\", b"room\x7f", s1=b"\x1b[31m", flags=1),
        rec(EXECUTING, b"r\x01\"\\", b"room\x7f",
            s1=b"\x02" * 200, s2=b"\x03" * 200, flags=1),
        rec(DONE, b"r\x01\"\\", b"room\x7f", flags=1),
    ])
    # Ids of control bytes escape six-fold: the failed tool_completed that
    # closes this call must still build (it did not under a 4 KiB floor).
    s["synth_escaped_ids"] = emit_input(0x78, [
        rec(STARTED, b"\x01" * 256, s1=b"a"),
        rec(EXECUTING, b"\x01" * 256, s1=b"\x01" * 256, s2=b"\x01" * 150),
        rec(DONE, b"\x01" * 256),
    ])
    return s


# ---------------------------------------------------------------- config

def config_seeds():
    # One op per line: OP byte then the string (fuzz_config.c's table).
    def ops(*pairs):
        return b"\n".join(bytes([op]) + arg for op, arg in pairs)
    s = {}
    s["paths"] = ops((0, b"/ws"), (0, b"/agent/v1/stream"), (0, b"ws"),
                     (0, b"/a?b"), (0, b"/" + b"x" * 300))
    s["origins"] = ops((1, b"https://app.example.com"),
                       (1, b"http://localhost:8080"), (1, b"null"),
                       (1, b"https://a b"), (1, b""))
    s["subprotocols"] = ops((2, b"ag-ui"), (2, b"agentws.v1"),
                            (2, b"bearer.x"), (2, b"Bearer.x"),
                            (2, b"has space"), (2, b"x" * 65))
    s["jwt"] = ops((3, b"HS256,RS256,ES256"), (3, b" PS512 , ES384"),
                   (3, b"none"), (3, b"HS256,,RS256"), (3, b""),
                   (4, b"https://issuer.example"), (5, b"api://agents"),
                   (6, b"email"), (7, b"agents:write"), (7, b"a b"))
    s["tokens"] = ops((8, b"header,subprotocol,query,cookie"),
                      (8, b"cookie"), (8, b"header,header"), (8, b"query,"),
                      (9, b"token"), (9, b"a&b"), (10, b"session"),
                      (10, b"bad;name"), (11, b"s3cret-Token_1"),
                      (11, b"bad token"), (11, b""))
    # Bit 7: a NULL string; bit 6: a NULL config.
    s["nulls"] = ops(*[(0x80 | op, b"x") for op in range(13)],
                     *[(0x40 | op, b"x") for op in range(13)])
    s["kids"] = ops((12, b"k1"), (12, b""), (12, b"k" * 256), (12, b"a\tb"),
                    (0x8c, b""))
    return s


# --------------------------------------------------------------- upgrade

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


def head(target=b"/ws?user=alice", extra=b"", method=b"GET"):
    return (method + b" " + target + b" HTTP/1.1\r\nHost: x\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + KEY + b"\r\n"
            b"Sec-WebSocket-Version: 13\r\n" + extra + b"\r\n")


def upgrade_input(flags, h, msgs=(), split=0):
    """FLAGS SPLIT HEAD [0x00 MSG]*: see fuzz_upgrade.c."""
    return bytes([flags, split]) + h + b"".join(b"\x00" + m for m in msgs)


def upgrade_seeds():
    s = {}
    s["dev_welcome"] = upgrade_input(0x00, head())
    s["dev_resume_url"] = upgrade_input(
        0x00, head(b"/ws?user=alice&epoch=@E&last_seq=2"))
    s["dev_resume_gap"] = upgrade_input(
        0x00, head(b"/ws?user=alice&epoch=@E&last_seq=0"))
    s["dev_resume_other_epoch"] = upgrade_input(
        0x00, head(b"/ws?user=al%69ce&epoch=e-x.1&last_seq=5"))
    s["dev_messages"] = upgrade_input(0x00, head(), [
        b'{"type":"ping"}',
        b'{"type":"resume","epoch":"@E","last_seq":1}',
        b'{"type":"ack","seq":3}',
        b'{"type":"join","room":"lobby","last_seq":0}',
        b'{"type":"ack","seq":1,"stream":"room:lobby"}',
        b'{"type":"leave","room":"lobby"}',
        b'{"type":"refresh","token":"x"}',
        b'{"type":"user_message","text":"hi"}',
        b'not json',
    ])
    s["dev_split_head"] = upgrade_input(0x00, head(), split=17)
    s["dev_proto_origin"] = upgrade_input(0x04, head(extra=(
        b"Origin: https://app.example.com\r\n"
        b"Sec-WebSocket-Protocol: bearer.abc, ag-ui, agentws.v1\r\n"
        b"Sec-WebSocket-Extensions: permessage-deflate\r\n")))
    s["dev_bad_origin"] = upgrade_input(0x04, head(extra=(
        b"Origin: https://evil.example\r\n")))
    s["jwt_header"] = upgrade_input(0x01, head(b"/ws", extra=(
        b"Authorization: Bearer @T\r\n")))
    s["jwt_subprotocol"] = upgrade_input(0x01, head(b"/ws", extra=(
        b"Sec-WebSocket-Protocol: agentws.v1, bearer.@T\r\n")))
    s["jwt_query"] = upgrade_input(0x01, head(b"/ws?access_token=@T"))
    s["jwt_cookie"] = upgrade_input(0x01, head(b"/ws", extra=(
        b"Cookie: a=b; agentws_token=\"@T\"\r\n")))
    s["jwt_bad"] = upgrade_input(0x01, head(b"/ws", extra=(
        b"Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.x\r\n")))
    s["hook_now"] = upgrade_input(0x02, head(b"/ws", extra=(
        b"X-User: bob\r\n")))
    s["hook_later"] = upgrade_input(0x03, head(b"/ws", extra=(
        b"X-User: carol\r\nX-Later: 1\r\n")))
    s["hook_refuse"] = upgrade_input(0x02, head(b"/ws", extra=(
        b"X-Refuse: 418\r\n")))
    s["endpoints"] = upgrade_input(0x00, b"GET /healthz HTTP/1.1\r\n"
                                   b"Host: x\r\n\r\n")
    s["metrics_token"] = upgrade_input(0x08, b"GET /metrics HTTP/1.1\r\n"
                                       b"Host: x\r\nAuthorization: Bearer "
                                       b"s3cret\r\n\r\n")
    s["readyz_head"] = upgrade_input(0x00, b"HEAD /readyz HTTP/1.1\r\n"
                                     b"Host: x\r\n\r\n")
    s["not_found"] = upgrade_input(0x00, b"GET /nope HTTP/1.1\r\n"
                                   b"Host: x\r\n\r\n")
    s["too_large"] = upgrade_input(0x10, head(extra=b"X-Pad: " + b"p" * 400
                                              + b"\r\n"), split=100)
    s["too_large_adopt"] = upgrade_input(0x10, head(extra=b"X-Pad: " + b"p"
                                                    * 400 + b"\r\n"))
    s["bad_version"] = upgrade_input(0x00, head().replace(b": 13", b": 8"))
    s["raw_echo"] = upgrade_input(0x20, head(b"/ws"), [b"hello", b"!fail"])
    return s


def write(name, seeds):
    d = os.path.join(HERE, "corpus", name)
    os.makedirs(d, exist_ok=True)
    for k, v in sorted(seeds.items()):
        with open(os.path.join(d, k), "wb") as f:
            f.write(v)
    print("%s: %d seeds in %s" % (name, len(seeds), d))


def main(argv):
    gens = {"emit": emit_seeds, "config": config_seeds,
            "upgrade": upgrade_seeds}
    for name in argv or sorted(gens):
        write(name, gens[name]())


if __name__ == "__main__":
    main(sys.argv[1:])
