"""The demo's web pages (examples/web) and its monitor hooks, end to end.

- Plain HTTP: the pages are served from memory through the library's on_http hook with the right content
  types, nothing outside the page table is reachable (404), and --http-token guards /metrics only.
- WebSocket: the demo emits each monitor alert as a "monitor.alert" event to room "ops" and each validator
  violation as a "validation.violation" event to the run's user (or room).
- Browser (headless Chromium via playwright-core, test/e2e/browser/run_{chat,dashboard}.mjs): the chat page
  renders a whole run and what the validator repaired; the dashboard shows live numbers from /metrics and the
  alerts of room "ops". Screenshots go to $AGENTWS_ARTIFACTS, else <repo>/build-artifacts/e2e-pages.
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from helpers import (E2E_DIR, HOST, REPO_ROOT, RUN_SHAPE, HttpResponse, RawConn, agent_client, demo_path,
                     http_exchange, run_async, t, wrapper_argv)

WEB_DIR = REPO_ROOT / "examples" / "web"
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
PAGES = {"/": "chat.html", "/chat": "chat.html", "/chat.html": "chat.html", "/dashboard": "dashboard.html",
         "/dashboard.html": "dashboard.html", "/chat?user=bob": "chat.html", "/dashboard?token=x#y": "dashboard.html"}
ASSETS = {"/chat.js": "text/javascript", "/dashboard.js": "text/javascript", "/agentws-client.js": "text/javascript",
          "/prom.js": "text/javascript", "/style.css": "text/css"}
NOT_SERVED = ["/../etc/passwd", "/../../../../etc/passwd", "/..%2f..%2fetc%2fpasswd", "/%2e%2e/%2e%2e/etc/passwd",
              "/..", "/.", "/web/chat.html", "/examples/web/chat.html", "/chat.html/", "/chat.html/../chat.html",
              "//etc/passwd", "/chat.html%00", "/CHAT.HTML", "/nope", "/meson.build", "/.gitignore", "/chat.",
              "/dashboard.htm"]


def artifacts_dir() -> Path:
    base = os.environ.get("AGENTWS_ARTIFACTS", "").strip()
    path = Path(base) if base else REPO_ROOT / "build-artifacts"
    path = path / "e2e-pages"
    path.mkdir(parents=True, exist_ok=True)
    return path


def page_server(agent_server, *args: str):
    """An agent-mode demo (dev mode) serving examples/web of this checkout."""
    return agent_server("--static-dir", str(WEB_DIR), *args)


def get(port: int, path: str, method: str = "GET", headers: Optional[Dict[str, str]] = None) -> HttpResponse:
    """One request on a fresh connection; the server answers and closes it (no keep-alive)."""
    head = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    with RawConn(port) as conn:
        conn.send(f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\n{head}\r\n".encode())
        resp = conn.read_http_response(read_body=method != "HEAD")
        rest = conn.wait_closed(t(5))
        assert rest == b"", f"{method} {path}: bytes after the response: {rest[:80]!r}"
    return resp


# ------------------------------------------------------------------------------------------- plain HTTP


def test_pages_and_assets(agent_server):
    srv = page_server(agent_server)
    for path, name in PAGES.items():
        resp = get(srv.port, path)
        assert resp.status == 200, f"GET {path}:\n{resp}"
        assert resp.header("Content-Type") == "text/html; charset=utf-8", f"GET {path}:\n{resp}"
        assert resp.body == (WEB_DIR / name).read_bytes(), f"GET {path}: not the bytes of {name}"
    for path, ctype in ASSETS.items():
        resp = get(srv.port, path)
        assert resp.status == 200, f"GET {path}:\n{resp}"
        assert resp.header("Content-Type") == ctype + "; charset=utf-8", f"GET {path}:\n{resp}"
        assert resp.body == (WEB_DIR / path[1:]).read_bytes()
    resp = get(srv.port, "/dashboard", "HEAD")
    assert resp.status == 200 and resp.header("Content-Type") == "text/html; charset=utf-8", str(resp)


@pytest.mark.parametrize("path", NOT_SERVED)
def test_nothing_else_is_served(agent_server, path):
    srv = page_server(agent_server)
    resp = get(srv.port, path)
    assert resp.status == 404, f"GET {path}:\n{resp}"
    assert b"root:" not in resp.body


def test_upgrade_to_a_page_is_404(agent_server):
    """A WebSocket handshake to a page path is not a page request."""
    srv = page_server(agent_server)
    req = (f"GET /chat HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
    resp, conn = http_exchange(srv.port, req)
    with conn:
        assert resp.status == 404, str(resp)


def test_echo_mode_serves_no_pages(demo_server):
    srv = demo_server("--static-dir", str(WEB_DIR))
    assert get(srv.port, "/chat").status == 404


def test_http_token_guards_metrics_not_pages(agent_server):
    srv = page_server(agent_server, "--http-token", "s3cret-token")
    assert get(srv.port, "/metrics").status == 401
    assert get(srv.port, "/metrics", headers={"Authorization": "Bearer wrong"}).status == 401
    resp = get(srv.port, "/metrics", headers={"Authorization": "Bearer s3cret-token"})
    assert resp.status == 200, str(resp)
    assert b"agentws_connections" in resp.body
    assert get(srv.port, "/dashboard").status == 200
    assert "s3cret-token" not in srv.stderr_path.read_text(errors="replace")


# --------------------------------------------------------------------------------------- command line


def run_demo(*args: str, timeout: float = 10) -> subprocess.CompletedProcess:
    return subprocess.run(wrapper_argv() + [str(demo_path()), *args], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=t(timeout))


def test_usage_lists_the_new_flags():
    out = run_demo("--help").stdout
    for flag in ["--static-dir", "--http-token", "--no-monitor", "--monitor-interval-ms", "--alert-loop-lag-ms",
                 "--alert-ack-timeout-ms", "--alert-queue-bytes", "--alert-window-ms", "--alert-violations-per-s",
                 "--alert-auth-timeouts", "--log-level"]:
        assert flag in out, f"{flag} missing from --help:\n{out}"


@pytest.mark.parametrize("args", [
    ["--log-level", "loud"],
    ["--monitor-interval-ms", "5"],
    ["--monitor-interval-ms", "ten"],
    ["--alert-window-ms", "1"],
    ["--alert-queue-bytes", "-1"],
    ["--alert-queue-bytes", "10"],
    ["--alert-loop-lag-ms", "-5"],
    ["--http-token", "has space"],
    ["--static-dir", "/nonexistent/agentws-web"],
])
def test_bad_flag_values_exit_2(args):
    proc = run_demo("--mode", "agent", "--dev-insecure", "--port", "0", *args)
    assert proc.returncode == 2, f"{args}: exit {proc.returncode}\n{proc.stderr}"
    assert "agentws-demo:" in proc.stderr


def test_every_monitor_flag_is_taken(agent_server):
    srv = page_server(agent_server, "--monitor-interval-ms", "100", "--alert-loop-lag-ms", "500",
                      "--alert-ack-timeout-ms", "5000", "--alert-queue-bytes", "65536", "--alert-window-ms", "1000",
                      "--alert-violations-per-s", "100", "--alert-auth-timeouts", "3", "--log-level", "debug")
    assert get(srv.port, "/metrics").status == 200
    srv2 = page_server(agent_server, "--no-monitor", "--log-level", "error")
    assert get(srv2.port, "/chat").status == 200
    # Whatever the library logs arrives as one "agentws-demo: [level] message" line each.
    for line in srv.stderr_path.read_text(errors="replace").splitlines():
        if line.startswith("agentws-demo: ["):
            assert re.match(r"agentws-demo: \[(error|warn|info|debug)\] \S", line), line


# ------------------------------------------------------------------------------ monitor events over WS


def test_alert_reaches_room_ops(agent_server):
    """/broken stall under warn: the run_stalled alert fires (and stays: warn does not end the run); the demo
    logs it and emits it to room ops, where a watcher that joined with last_seq 0 finds it."""
    srv = page_server(agent_server, "--validation", "warn", "--stall-timeout-ms", "200", "--thinking-delay-ms", "5")

    async def go():
        async with agent_client(srv.port, "stalluser") as alice:
            await alice.say("/broken stall")
            await alice.until(lambda m: m["type"] == "tool_executing", t(5), "the stalled run's tool call")
            async with agent_client(srv.port, "watcher") as ops:
                await ops.send({"type": "join", "room": "ops", "last_seq": 0})
                got = await ops.until(lambda m: m["type"] == "monitor.alert" and m["data"].get("rule") == "run_stalled",
                                      t(10), "the run_stalled alert")
                joined = [m for m in got if m["type"] == "joined"]
                assert joined and joined[0]["room"] == "ops", got
                return got[-1]

    ev = run_async(go(), t(30))
    assert ev["stream"] == "room:ops", ev
    d = ev["data"]
    assert d["firing"] is True and d["severity"] == "warning", d
    assert d["target"] == "stalluser" and d["run"] == "r-1" and ev.get("run_id") == "r-1", d
    assert d["threshold"] == 200 and d["value"] >= 200, d
    assert isinstance(d["message"], str) and d["message"], d
    assert isinstance(d["conn"], int) and d["tool_call"] == "", d
    assert set(d) == {"rule", "severity", "firing", "conn", "target", "run", "tool_call", "value", "threshold",
                      "message"}, d
    log = srv.stderr_path.read_text(errors="replace")
    assert re.search(r"agentws-demo: alert run_stalled \(warning\) firing: .*run 'r-1'", log), log


def test_alert_fired_and_cleared_under_repair(agent_server):
    """Under repair the library ends a stalled run at once, so the alert fires and clears."""
    srv = page_server(agent_server, "--validation", "repair", "--stall-timeout-ms", "200", "--thinking-delay-ms", "5")

    async def go():
        async with agent_client(srv.port, "ops-watch") as ops, agent_client(srv.port, "bob") as bob:
            await ops.send({"type": "join", "room": "ops"})
            await ops.expect("joined")
            await bob.say("/broken stall")
            got = await ops.until(lambda m: m["type"] == "monitor.alert" and m["data"].get("firing") is False,
                                  t(10), "the cleared alert")
            return [m for m in got if m["type"] == "monitor.alert"]

    alerts = run_async(go(), t(30))
    assert [(a["data"]["rule"], a["data"]["firing"]) for a in alerts] == [("run_stalled", True), ("run_stalled", False)]
    assert all(a["data"]["target"] == "bob" and a["data"]["run"] == "r-1" for a in alerts), alerts


async def violations_of(c, n: int) -> List[dict]:
    """Reads |c| until it has seen |n| validation.violation events; returns them."""
    seen: List[dict] = []

    def enough(m: dict) -> bool:
        if m["type"] == "validation.violation":
            seen.append(m)
        return len(seen) >= n

    await c.until(enough, t(10), f"{n} validation.violation events")
    return seen


def test_violation_events_to_the_user(agent_server):
    srv = page_server(agent_server, "--validation", "repair", "--thinking-delay-ms", "5")

    async def go():
        async with agent_client(srv.port, "carol") as carol, agent_client(srv.port, "dave") as dave:
            await carol.say("/broken orphan-tool")
            got = await violations_of(carol, 2)
            assert await dave.barrier(t(2)) == [], "another user got carol's violations"
            return got

    got = run_async(go(), t(30))
    assert sorted((v["data"]["rule"], v["data"]["outcome"]) for v in got) == [
        ("orphan_tool_result", "repaired"), ("run_not_started", "repaired")], got
    for v in got:
        assert "stream" not in v and v["run_id"] == "r-1" and v["data"]["run_id"] == "r-1", v
        assert isinstance(v["data"]["message"], str) and v["data"]["message"], v


def test_violation_events_of_a_room_run_go_to_the_room(agent_server):
    srv = page_server(agent_server, "--validation", "strict", "--thinking-delay-ms", "5")

    async def go():
        async with agent_client(srv.port, "erin") as erin, agent_client(srv.port, "frank") as frank:
            for c in (erin, frank):
                await c.send({"type": "join", "room": "public.lab"})
                await c.expect("joined")
            await erin.say("/broken duplicate-start", room="public.lab")
            got = await violations_of(frank, 1)
            return got

    got = run_async(go(), t(30))
    assert len(got) == 1 and got[0]["stream"] == "room:public.lab", got
    assert got[0]["data"]["rule"] == "duplicate_start" and got[0]["data"]["outcome"] == "refused", got


# ------------------------------------------------------------------------------------------ browser


def run_driver(script: str, port: int, extra_env: Dict[str, str], timeout: float = 120) -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (apt-get install nodejs)")
    if not (E2E_DIR / "node" / "node_modules" / "playwright-core" / "package.json").exists():
        pytest.skip("npm module playwright-core is missing: run test/e2e/setup-node-deps.sh")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    env = dict(os.environ, AGENTWS_PORT=str(port), CHROMIUM_PATH=str(CHROMIUM),
               AGENTWS_ARTIFACTS_DIR=str(artifacts_dir()), **extra_env)
    proc = subprocess.run([node, str(E2E_DIR / "browser" / script)], cwd=E2E_DIR, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=t(timeout))
    assert proc.returncode == 0, f"{script} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(result, indent=1, ensure_ascii=False))
    return result


@pytest.mark.browser
def test_chat_page(agent_server):
    srv = page_server(agent_server, "--validation", "repair", "--thinking-delay-ms", "40")
    r = run_driver("run_chat.mjs", srv.port, {"CHAT_USER": "pat", "CHAT_TEXT": "What is \"libuv\"? <b>caf\u00e9</b>"})
    assert r["pageErrors"] == [], r["pageErrors"]
    assert r["status"] == "open", r
    assert r["serverErrors"] == [], r["serverErrors"]

    # The ordinary run: every event is in the timeline, the thinking block is the concatenated deltas.
    run = r["run"]
    # Three deltas on each side of the tool call (a slow connection may get them coalesced).
    types = run["events"]
    shape = [tp for i, tp in enumerate(types) if i == 0 or tp != "agent_thinking" or types[i - 1] != tp]
    assert shape == RUN_SHAPE, types
    assert run["shown"][0] == "agent_started" and run["shown"][-1] == "agent_completed", run["shown"]
    assert {"agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"} <= set(run["shown"])
    assert run["thinkingText"] == run["deltasJoined"] == run["resultText"], run
    assert run["thinkingDeltas"] == "6", run
    assert run["tool"] == {"status": "ok", "ok": "true", "name": "web_search", "hasDuration": True}, run["tool"]
    assert run["runStatus"] == "completed", run
    assert run["userMessage"] == r["text"], run
    assert run["userMessageIsText"], "the user's message was rendered as HTML"

    # /broken orphan-tool under repair: the made-up events are marked, the violations are shown.
    broken = r["broken"]
    assert sorted(broken["synthesized"]) == [["agent_started", "run_not_started"],
                                             ["tool_executing", "orphan_tool_result"]], broken
    assert sorted(broken["violations"]) == [["orphan_tool_result", "repaired"], ["run_not_started", "repaired"]], broken
    assert broken["runStatus"] == "completed", broken
    for shot in r["screenshots"]:
        assert Path(shot).stat().st_size > 10000, shot


@pytest.mark.browser
def test_dashboard_page(agent_server):
    srv = page_server(agent_server, "--validation", "warn", "--stall-timeout-ms", "300", "--thinking-delay-ms", "20",
                      "--http-token", "dash-token")
    r = run_driver("run_dashboard.mjs", srv.port, {"DASH_TOKEN": "dash-token"})
    assert r["pageErrors"] == [], r["pageErrors"]
    assert r["noTokenStatus"].startswith("401"), r["noTokenStatus"]
    assert r["wsState"] == "open" and r["chatErrors"] == [], r  # acks and the join of room ops were taken
    last = r["last"]
    assert last["connections"] >= 2, last  # the dashboard's and the chat page's
    assert last["users"] >= 2 and last["rooms"] >= 1, last
    assert r["maxRate"].get("custom", 0) > 0, r["maxRate"]
    assert r["maxRate"].get("agent_thinking", 0) > 0, r["maxRate"]
    assert r["maxDelivered"] > 0, r
    assert r["typeRows"] and "custom" in r["typeRows"], r["typeRows"]
    assert r["latencyPoints"] >= 1, r
    assert last["runsStalled"] >= 1, last
    alert = r["alerts"][0]
    assert alert["rule"] == "run_stalled" and alert["firing"] == "true", r["alerts"]
    assert "dashcarol" in alert["text"], alert
    for shot in r["screenshots"]:
        assert Path(shot).stat().st_size > 10000, shot
