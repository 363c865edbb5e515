"""Emit-time validation end to end: the demo's `/broken SCENARIO` runs under each `--validation` policy.

Every scenario breaks a run's lifecycle in one way (examples/demo_broken.c). Under `repair` every run a client
sees is a valid lifecycle and the events the library made up carry data.synthesized / data.rule; under `strict`
the broken events never reach the client (exactly the valid ones do, and the demo logs the refused emits);
under `warn` and `off` they arrive as sent. The demo logs each violation ("violation <rule> (<outcome>)") from
its on_violation hook; warn / strict / repair must log exactly the expected ones, off none.

The server runs one worker, so a `/burst 1` sent after the `/broken` command is a marker: its custom event
comes after everything the broken run emits. Every wait is bounded.
"""

import asyncio
import re
import time
from typing import Dict, List, Optional, Tuple

import pytest

from helpers import agent_client, check_envelope, run_async, summarize, t

POLICIES = ["off", "warn", "strict", "repair"]
SCENARIOS = ["orphan-tool", "after-terminal", "open-tools", "duplicate-start", "error-then-complete", "stall"]
STALL_MS = 300

S, TH, EX, TC, AC, AE = (
    "agent_started",
    "agent_thinking",
    "tool_executing",
    "tool_completed",
    "agent_completed",
    "agent_error",
)

# What each scenario emits, in order (examples/demo_broken.c).
SENT = {
    "orphan-tool": [TH, TC, AC],
    "after-terminal": [S, TH, AC, TH, EX],
    "open-tools": [S, TH, EX, AC],
    "duplicate-start": [S, TH, S, AC],
    "error-then-complete": [S, TH, AE, AC],
    "stall": [S, TH, EX],
}

# Per scenario and policy: the events the client gets, as (type, rule that synthesized it or None), and the
# violations logged, as (rule, outcome). off / warn deliver SENT unchanged.
Expect = Tuple[List[Tuple[str, Optional[str]]], List[Tuple[str, str]]]
EXPECT: Dict[str, Dict[str, Expect]] = {
    "orphan-tool": {
        "warn": ([], [("run_not_started", "warned"), ("orphan_tool_result", "warned")]),
        # Nothing of the run exists: every event is "not started".
        "strict": ([], [("run_not_started", "refused")] * 3),
        "repair": (
            [(S, "run_not_started"), (TH, None), (EX, "orphan_tool_result"), (TC, None), (AC, None)],
            [("run_not_started", "repaired"), ("orphan_tool_result", "repaired")],
        ),
    },
    "after-terminal": {
        "warn": ([], [("event_after_terminal", "warned")] * 2),
        "strict": ([(S, None), (TH, None), (AC, None)], [("event_after_terminal", "refused")] * 2),
        "repair": ([(S, None), (TH, None), (AC, None)], [("event_after_terminal", "dropped")] * 2),
    },
    "open-tools": {
        "warn": ([], [("open_tools_at_end", "warned")]),
        # Refused: the run stays open (until a stall timeout, see test_strict_open_tools_then_stall).
        "strict": ([(S, None), (TH, None), (EX, None)], [("open_tools_at_end", "refused")]),
        "repair": (
            [(S, None), (TH, None), (EX, None), (TC, "open_tools_at_end"), (AC, None)],
            [("open_tools_at_end", "repaired")],
        ),
    },
    "duplicate-start": {
        "warn": ([], [("duplicate_start", "warned")]),
        "strict": ([(S, None), (TH, None), (AC, None)], [("duplicate_start", "refused")]),
        "repair": ([(S, None), (TH, None), (AC, None)], [("duplicate_start", "dropped")]),
    },
    "error-then-complete": {
        "warn": ([], [("event_after_terminal", "warned")]),
        "strict": ([(S, None), (TH, None), (AE, None)], [("event_after_terminal", "refused")]),
        "repair": ([(S, None), (TH, None), (AE, None)], [("event_after_terminal", "dropped")]),
    },
    "stall": {
        "warn": ([], [("run_stalled", "warned")]),
        # A stall ends the run under strict too: its open call fails, then agent_error.
        "strict": (
            [(S, None), (TH, None), (EX, None), (TC, "run_stalled"), (AE, "run_stalled")],
            [("run_stalled", "repaired")],
        ),
        "repair": (
            [(S, None), (TH, None), (EX, None), (TC, "run_stalled"), (AE, "run_stalled")],
            [("run_stalled", "repaired")],
        ),
    },
}

# Under strict the demo logs each refused emit: "broken run R: <event>: AGENTWS_ERR_VALIDATION".
STRICT_REFUSED = {
    "orphan-tool": [TH, TC, AC],
    "after-terminal": [TH, EX],
    "open-tools": [AC],
    "duplicate-start": [S],
    "error-then-complete": [AC],
    "stall": [],
}

VIOLATION_RE = re.compile(r"agentws-demo: violation (\S+) \((\S+)\) run (\S+) of (\S+): (.+)$")
REFUSED_RE = re.compile(r"agentws-demo: broken run (\S+): (\S+): (\S+)$")


def expected(scenario: str, policy: str) -> Expect:
    if policy == "off":
        return [(tp, None) for tp in SENT[scenario]], []
    events, violations = EXPECT[scenario][policy]
    if policy == "warn":
        events = [(tp, None) for tp in SENT[scenario]]
    return events, violations


def server_args(scenario: str, policy: str) -> List[str]:
    args = ["--validation", policy, "--thinking-delay-ms", "5", "--workers", "1"]
    if scenario == "stall":
        args += ["--stall-timeout-ms", str(STALL_MS)]
    return args


def log_lines(srv, regex) -> List[re.Match]:
    text = srv.stderr_path.read_text(errors="replace")
    return [m for m in (regex.match(line) for line in text.splitlines()) if m]


def wait_log(srv, regex, n: int, timeout: float) -> List[re.Match]:
    """The matching stderr lines once there are at least |n| (or whatever there is after |timeout|)."""
    deadline = time.monotonic() + timeout
    while True:
        got = log_lines(srv, regex)
        if len(got) >= n or time.monotonic() > deadline:
            return got
        time.sleep(0.02)


def check_lifecycle(events: List[dict]) -> None:
    """|events| (one run) is a valid lifecycle: agent_started first; tool_completed only for an open
    tool_executing of the same id; ids used once; nothing after the end; no end with calls open."""
    assert events, "no events"
    assert events[0]["type"] == S, f"run does not start with agent_started: {summarize(events)}"
    open_calls, used, ended = set(), set(), False
    for ev in events[1:]:
        tp, data = ev["type"], ev["data"]
        assert not ended, f"{tp} after the end of the run: {summarize(events)}"
        assert tp != S, f"agent_started twice: {summarize(events)}"
        if tp == EX:
            call = data["tool_call_id"]
            assert call not in used, f"tool_call_id {call} used twice: {summarize(events)}"
            used.add(call)
            open_calls.add(call)
        elif tp == TC:
            call = data["tool_call_id"]
            assert call in open_calls, f"tool_completed for {call}, which is not open: {summarize(events)}"
            open_calls.discard(call)
        elif tp in (AC, AE):
            assert not open_calls, f"{tp} with tool calls {open_calls} open: {summarize(events)}"
            ended = True


def is_marker(m: dict) -> bool:
    return m["type"] == "demo.tick"


def is_report(m: dict) -> bool:
    """The demo's own "validation.violation" custom events (for its chat page); they come when the loop reports
    a violation, so their place among the run's events is not fixed. test_pages.py checks them."""
    return m["type"] == "validation.violation"


def run_only(msgs: List[dict]) -> List[dict]:
    return [m for m in msgs if not is_report(m)]


async def broken_run(port: int, user: str, scenario: str, policy: str, srv) -> List[dict]:
    """Sends /broken SCENARIO and the marker; returns the run's events (everything before the marker, and for
    a stall under strict / repair up to the synthesized agent_error)."""
    async with agent_client(port, user) as c:
        await c.say(f"/broken {scenario}")
        await c.say("/burst 1")
        got = await c.until(is_marker, t(10), "the marker after the broken run")
        events = [m for m in run_only(got) if not is_marker(m)]
        if scenario == "stall":
            if policy in ("strict", "repair"):
                # Ended by the stall timeout, some STALL_MS after its last event.
                t0 = time.monotonic()
                events += run_only(await c.until(lambda m: m["type"] == AE, t(5), "the stall's agent_error"))
                assert time.monotonic() - t0 < t(3), "the stalled run took too long to end"
            else:
                # Twice the stall timeout: nothing comes (warn reports it, off ignores it).
                if policy == "warn":
                    wait_log(srv, VIOLATION_RE, 1, t(5))
                await asyncio.sleep(2 * STALL_MS / 1000)
        # Nothing else is on its way (the pong comes after all of it).
        rest = run_only(await c.barrier(t(5)))
        assert rest == [], f"unexpected events after the run: {summarize(rest)}"
        for m in events:
            assert m["type"] != "error", f"the server refused the command: {m}"
        return events


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_broken_scenario(agent_server, scenario, policy):
    srv = agent_server(*server_args(scenario, policy))
    user = f"{scenario.replace('-', '')}{policy}"
    events = run_async(broken_run(srv.port, user, scenario, policy, srv), t(30))
    want_events, want_violations = expected(scenario, policy)

    # Exactly the expected events, in order, all of one run.
    for ev in events:
        check_envelope(ev)
    got = [(ev["type"], ev["data"].get("rule") if ev["data"].get("synthesized") is True else None) for ev in events]
    assert got == want_events, (
        f"{scenario} under {policy}: got {got}, want {want_events}\n{srv.log_tail()}"
    )
    run_ids = {ev["run_id"] for ev in events}
    assert len(run_ids) <= 1, f"events of several runs: {run_ids}"
    run_id = run_ids.pop() if run_ids else "r-1"
    assert re.fullmatch(r"r-[0-9]+", run_id), run_id

    # Synthesized events are marked; the agent's own events are not.
    for ev in events:
        data = ev["data"]
        if "synthesized" in data:
            assert data["synthesized"] is True and isinstance(data.get("rule"), str), ev
            assert policy in ("strict", "repair"), f"{policy} synthesized {ev}"
    if policy in ("strict", "repair"):
        if events:
            check_lifecycle(events)
    if policy == "repair":
        # Under repair a run a client sees always starts (and here always ends, but for a stall under off).
        assert events and events[0]["type"] == S, summarize(events)
        assert events[-1]["type"] in (AC, AE), f"the run does not end: {summarize(events)}"

    # The agent's events keep their payload where they arrive as sent.
    by_type = {}
    for ev in events:
        if not ev["data"].get("synthesized"):
            by_type.setdefault(ev["type"], ev["data"])
    if TH in by_type:
        assert by_type[TH]["text"] == "Thinking about breaking the rules.", by_type[TH]
    if S in by_type:
        assert by_type[S]["agent"] == "broken-agent", by_type[S]

    # Details of what the repairs made.
    for ev in events:
        data = ev["data"]
        if not data.get("synthesized"):
            continue
        if ev["type"] == S:
            assert data["agent"] == "unknown", ev
        elif ev["type"] == EX:
            assert data["tool"] == "web_search" and re.fullmatch(r"c-[0-9]+", data["tool_call_id"]), ev
        elif ev["type"] == TC:
            code = {"open_tools_at_end": "abandoned", "run_stalled": "stalled"}[data["rule"]]
            assert data["ok"] is False and data["result"] == {"code": code}, ev
            assert isinstance(data["duration_ms"], int) and data["duration_ms"] >= 0, ev
            if data["rule"] == "run_stalled":
                assert data["duration_ms"] >= STALL_MS - 5, ev
        elif ev["type"] == AE:
            assert data["code"] == "stalled" and data["severity"] == "error", ev
            assert data["retryable"] is True and data["message"], ev

    # The demo's on_violation hook logged exactly the expected violations, for this run and user.
    lines = wait_log(srv, VIOLATION_RE, len(want_violations), t(5))
    got_v = sorted((m.group(1), m.group(2)) for m in lines)
    assert got_v == sorted(want_violations), (
        f"{scenario} under {policy}: violations {got_v}, want {sorted(want_violations)}\n{srv.log_tail()}"
    )
    for m in lines:
        assert m.group(3) == run_id and m.group(4) == user and m.group(5).strip(), m.group(0)

    # Under strict the demo logs each refused emit with AGENTWS_ERR_VALIDATION; otherwise emits succeed.
    refused = [m for m in log_lines(srv, REFUSED_RE) if m.group(1) == run_id]
    if policy == "strict":
        assert sorted(m.group(2) for m in refused) == sorted(STRICT_REFUSED[scenario]), srv.log_tail()
        assert all(m.group(3) == "AGENTWS_ERR_VALIDATION" for m in refused), srv.log_tail()
    else:
        assert refused == [], srv.log_tail()


def test_strict_open_tools_then_stall(agent_server):
    """Strict refuses agent_completed while a call is open; the run then stalls and is ended for the client
    (failed tool_completed, agent_error "stalled") so it does not wait forever."""
    srv = agent_server(*server_args("stall", "strict"))

    async def go():
        async with agent_client(srv.port, "openstall") as c:
            await c.say("/broken open-tools")
            events = run_only(await c.until(lambda m: m["type"] == AE, t(10), "the stall's agent_error"))
            assert run_only(await c.barrier(t(5))) == []
            return events

    events = run_async(go(), t(20))
    got = [(e["type"], e["data"].get("rule")) for e in events]
    assert got == [(S, None), (TH, None), (EX, None), (TC, "run_stalled"), (AE, "run_stalled")], got
    check_lifecycle(events)
    lines = wait_log(srv, VIOLATION_RE, 2, t(5))
    assert sorted((m.group(1), m.group(2)) for m in lines) == [
        ("open_tools_at_end", "refused"),
        ("run_stalled", "repaired"),
    ], srv.log_tail()


def test_repair_many_runs_concurrently(agent_server):
    """Every scenario at once on four workers and two tabs of one user: under repair every run either tab
    sees is a valid lifecycle that ends, and both tabs see the same events."""
    srv = agent_server("--validation", "repair", "--thinking-delay-ms", "5", "--workers", "4",
                       "--stall-timeout-ms", str(STALL_MS))

    async def go():
        async with agent_client(srv.port, "many") as a, agent_client(srv.port, "many") as b:
            for _ in range(2):
                for scenario in SCENARIOS:
                    await a.say(f"/broken {scenario}")
            # 12 runs, each ending with agent_completed or agent_error.
            ends = 0
            got_a: List[dict] = []
            deadline = asyncio.get_running_loop().time() + t(15)
            while ends < 2 * len(SCENARIOS):
                left = deadline - asyncio.get_running_loop().time()
                assert left > 0, f"only {ends} runs ended: {summarize(got_a, 40)}"
                m = await a.recv(left)
                assert m["type"] != "error", m
                if is_report(m):
                    continue
                got_a.append(m)
                ends += m["type"] in (AC, AE)
            got_a += run_only(await a.barrier(t(5)))
            got_b: List[dict] = []
            while len(got_b) < len(got_a):
                got_b += run_only([await b.recv(t(10))])
            return got_a, got_b

    got_a, got_b = run_async(go(), t(40))
    assert [(m["seq"], m["type"]) for m in got_a] == [(m["seq"], m["type"]) for m in got_b]
    runs: Dict[str, List[dict]] = {}
    for m in got_a:
        runs.setdefault(m["run_id"], []).append(m)
    assert len(runs) == 2 * len(SCENARIOS), sorted(runs)
    for run_id, events in runs.items():
        check_lifecycle(events)
        assert events[-1]["type"] in (AC, AE), f"{run_id} does not end: {summarize(events)}"
