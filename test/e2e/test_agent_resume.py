"""Agent mode: resume on the URL and by message, the offline backlog, the backlog limit (gap), unknown epochs
after a restart, and resume_too_late (docs/PROTOCOL.md "Resume")."""

import asyncio
import json
import threading
import time

from helpers import (
    OP_CLOSE,
    OP_TEXT,
    RawConn,
    agent_client,
    agent_path,
    check_run,
    check_seqs,
    check_ticks,
    run_async,
    summarize,
    t,
    timeout_scale,
    upgrade_request,
)


async def run_once(port: int, user: str, text: str):
    """One run on a tab opened for it; returns (welcome, events)."""
    async with agent_client(port, user) as c:
        await c.say(text)
        events = await c.run_events()
        return c.welcome, events


async def burst_once(port: int, user: str, n: int):
    """'/burst n' on a tab opened for it; returns (welcome, events)."""
    async with agent_client(port, user) as c:
        await c.say(f"/burst {n}")
        events = await c.collect(n)
        return c.welcome, events


def check_welcome(w: dict, *, epoch=None, seq=None, recovered=None, missed=None) -> None:
    for key, want in (("epoch", epoch), ("seq", seq), ("recovered", recovered), ("missed", missed)):
        if want is not None:
            assert w.get(key) == want, f"welcome {key}: expected {want!r}, got {w}"


def test_resume_after_a_drop_mid_run(agent_server):
    """Dropped after 3 events; the reconnect with ?epoch&last_seq gets the rest: union exactly once, in order."""
    srv = agent_server("--thinking-delay-ms", "100")

    async def go():
        async with agent_client(srv.port, "alice") as a:
            epoch = a.welcome["epoch"]
            await a.say("resume me")
            first = await a.collect(3)
            a.drop()
        last = first[-1]["seq"]
        await asyncio.sleep(0.25)  # events keep coming while nobody is connected
        async with agent_client(srv.port, "alice", epoch=epoch, last_seq=last) as b:
            check_welcome(b.welcome, epoch=epoch, recovered=True, missed=0)
            assert b.welcome["seq"] >= last, b.welcome
            rest = await b.run_events()
            union = first + rest
            check_run(union, "resume me", first_seq=1)
            assert rest[0]["seq"] == last + 1, f"replay starts at {rest[0]['seq']}, expected {last + 1}"
            await b.nothing_pending()

    run_async(go(), t(30))


def test_offline_backlog_and_live_edge(agent_server):
    """Events emitted while the user has no connection wait in the backlog; a plain connect starts at the
    live edge, a resume from the last seen seq gets them."""
    srv = agent_server()

    async def go():
        w0, online = await run_once(srv.port, "alice", "online")
        epoch, seen = w0["epoch"], online[-1]["seq"]
        k = len(online)
        # Start a run and leave at once: the run happens while alice is offline.
        async with agent_client(srv.port, "alice") as a:
            await a.say("offline")
        deadline = asyncio.get_running_loop().time() + t(10)
        while True:
            async with agent_client(srv.port, "alice") as p:
                check_welcome(p.welcome, epoch=epoch, recovered=True, missed=0)
                if p.welcome["seq"] == seen + k:
                    await p.nothing_pending()  # a plain connect after the run: no replay
                    break
                assert p.welcome["seq"] <= seen + k, p.welcome
            assert asyncio.get_running_loop().time() < deadline, f"the offline run never finished: {p.welcome}"
            await asyncio.sleep(0.1)
        async with agent_client(srv.port, "alice", epoch=epoch, last_seq=seen) as r:
            check_welcome(r.welcome, epoch=epoch, seq=seen + k, recovered=True, missed=0)
            replay = await r.collect(k)
            check_run(replay, "offline", first_seq=seen + 1)
            await r.nothing_pending()
            # And live events follow the replay.
            await r.say("live")
            check_run(await r.run_events(), "live", first_seq=seen + k + 1)

    run_async(go(), t(30))


def test_resume_boundaries(agent_server):
    """Up to date, one step behind, and ahead of the stream (live edge, recovered false)."""
    srv = agent_server()

    async def go():
        w, events = await run_once(srv.port, "alice", "boundaries")
        epoch, s = w["epoch"], events[-1]["seq"]
        async with agent_client(srv.port, "alice", epoch=epoch, last_seq=s) as c:
            check_welcome(c.welcome, epoch=epoch, seq=s, recovered=True, missed=0)
            await c.nothing_pending()
        async with agent_client(srv.port, "alice", epoch=epoch, last_seq=s - 1) as c:
            check_welcome(c.welcome, epoch=epoch, seq=s, recovered=True, missed=0)
            got = await c.collect(1)
            assert got == events[-1:], summarize(got)
            await c.nothing_pending()
        async with agent_client(srv.port, "alice", epoch=epoch, last_seq=0) as c:
            check_welcome(c.welcome, epoch=epoch, seq=s, recovered=True, missed=0)
            assert await c.collect(len(events)) == events
            await c.nothing_pending()
        async with agent_client(srv.port, "alice", epoch=epoch, last_seq=s + 100) as c:
            check_welcome(c.welcome, epoch=epoch, seq=s, recovered=False, missed=0)
            await c.nothing_pending()
            await c.say("after")
            check_run(await c.run_events(), "after", first_seq=s + 1)

    run_async(go(), t(30))


def test_backlog_event_limit_gap(agent_server):
    """--backlog-events 5: resuming from before the held window gets recovered:false, a gap, then the rest."""
    srv = agent_server("--backlog-events", "5")

    async def go():
        w, events = await run_once(srv.port, "alice", "long run")
        epoch, s = w["epoch"], events[-1]["seq"]
        assert s > 6, f"a run should have more than 6 events: {summarize(events)}"
        oldest = s - 4  # the 5 held events are oldest..s
        for last_seq in (0, 2, oldest - 2):
            async with agent_client(srv.port, "alice", epoch=epoch, last_seq=last_seq) as c:
                missed = oldest - 1 - last_seq
                check_welcome(c.welcome, epoch=epoch, seq=s, recovered=False, missed=missed)
                gap = await c.expect("gap")
                assert gap == {"type": "gap", "from": last_seq + 1, "to": oldest - 1}, f"last_seq={last_seq}: {gap}"
                replay = await c.collect(5)
                assert replay == events[-5:], f"last_seq={last_seq}: replay {summarize(replay)}"
                await c.nothing_pending()
        # From oldest-1 on nothing is missing.
        for last_seq in (oldest - 1, oldest, s - 1):
            async with agent_client(srv.port, "alice", epoch=epoch, last_seq=last_seq) as c:
                check_welcome(c.welcome, epoch=epoch, seq=s, recovered=True, missed=0)
                replay = await c.collect(s - last_seq)
                assert replay == events[last_seq:], f"last_seq={last_seq}: replay {summarize(replay)}"
                await c.nothing_pending()
        # The same rules for the resume message.
        async with agent_client(srv.port, "alice") as c:
            check_welcome(c.welcome, epoch=epoch, seq=s, recovered=True, missed=0)
            await c.send({"type": "resume", "epoch": epoch, "last_seq": 1})
            resumed = await c.expect("resumed")
            assert resumed == {"type": "resumed", "epoch": epoch, "seq": s, "recovered": False,
                               "missed": oldest - 2}, resumed
            gap = await c.expect("gap")
            assert gap == {"type": "gap", "from": 2, "to": oldest - 1}, gap
            assert await c.collect(5) == events[-5:]
            await c.nothing_pending()

    run_async(go(), t(30))


def test_message_resume_and_resume_too_late(agent_server):
    srv = agent_server()

    async def go():
        w, events = await run_once(srv.port, "alice", "history")
        epoch, s = w["epoch"], events[-1]["seq"]
        # A plain connection starts at the live edge; a resume message before any event replays.
        async with agent_client(srv.port, "alice") as c:
            check_welcome(c.welcome, epoch=epoch, seq=s, recovered=True, missed=0)
            await c.send({"type": "resume", "epoch": epoch, "last_seq": 0})
            resumed = await c.expect("resumed")
            assert resumed == {"type": "resumed", "epoch": epoch, "seq": s, "recovered": True, "missed": 0}, resumed
            assert await c.collect(s) == events
            await c.nothing_pending()
            # Events were delivered: too late now.
            await c.send({"type": "resume", "epoch": epoch, "last_seq": 0})
            await c.expect_error("resume_too_late")
            await c.nothing_pending()
        # Too late also once a live event has arrived.
        async with agent_client(srv.port, "alice") as c:
            await c.say("live")
            await c.expect("agent_started")
            await c.send({"type": "resume", "epoch": epoch, "last_seq": 0})
            got = await c.until(lambda m: m["type"] == "error", what="the resume_too_late error")
            assert got[-1].get("code") == "resume_too_late", got[-1]
            rest = [m for m in got[:-1]] + await c.run_events()
            assert all(m["type"] != "agent_started" for m in rest), "events replayed after resume_too_late"
            check_seqs(rest)
        # Up to date by message: nothing to replay.
        async with agent_client(srv.port, "alice") as c:
            s2 = c.welcome["seq"]
            await c.send({"type": "resume", "epoch": epoch, "last_seq": s2})
            resumed = await c.expect("resumed")
            assert resumed == {"type": "resumed", "epoch": epoch, "seq": s2, "recovered": True, "missed": 0}, resumed
            await c.nothing_pending()

    run_async(go(), t(30))


def test_unknown_epoch_after_restart(agent_server):
    """A restart loses the history: the old epoch is unknown, recovered is false, and what the new epoch holds
    is replayed (after a gap when its start is gone)."""
    srv1 = agent_server()
    w1, events1 = run_async(run_once(srv1.port, "alice", "before restart"), t(20))
    old_epoch, old_seq = w1["epoch"], events1[-1]["seq"]
    assert srv1.stop() == 0
    srv2 = agent_server("--backlog-events", "5")

    async def go():
        async with agent_client(srv2.port, "alice", epoch=old_epoch, last_seq=old_seq) as c:
            assert c.welcome["epoch"] != old_epoch, f"epoch survived a restart: {c.welcome}"
            check_welcome(c.welcome, seq=0, recovered=False, missed=0)
            await c.nothing_pending()
            new_epoch = c.welcome["epoch"]
        # Held from 1: everything replayed, nothing missed.
        w, ticks = await burst_once(srv2.port, "dave", 3)
        dave_epoch = w["epoch"]  # epochs are per stream
        async with agent_client(srv2.port, "dave", epoch=old_epoch, last_seq=2) as c:
            check_welcome(c.welcome, epoch=dave_epoch, seq=3, recovered=False, missed=0)
            assert await c.collect(3) == ticks
            await c.nothing_pending()
        # Held from 6 (backlog 5): gap 1..5 first.
        _, events = await run_once(srv2.port, "alice", "after restart")
        s = events[-1]["seq"]
        async with agent_client(srv2.port, "alice", epoch=old_epoch, last_seq=old_seq) as c:
            check_welcome(c.welcome, epoch=new_epoch, seq=s, recovered=False, missed=s - 5)
            gap = await c.expect("gap")
            assert gap == {"type": "gap", "from": 1, "to": s - 5}, gap
            assert await c.collect(5) == events[-5:]
            await c.nothing_pending()
        # The resume message follows the same rule.
        async with agent_client(srv2.port, "dave") as c:
            await c.send({"type": "resume", "epoch": "e-no-such-epoch", "last_seq": 3})
            resumed = await c.expect("resumed")
            assert resumed == {"type": "resumed", "epoch": dave_epoch, "seq": 3, "recovered": False,
                               "missed": 0}, resumed
            assert await c.collect(3) == ticks
            await c.nothing_pending()

    run_async(go(), t(30))


def test_offline_burst_resume_is_complete(agent_server):
    """A burst emitted while nobody is connected is replayed in full from last_seq=0."""
    srv = agent_server()

    async def go():
        async with agent_client(srv.port, "erin") as a:
            epoch = a.welcome["epoch"]
            await a.say("/burst 500")
        deadline = asyncio.get_running_loop().time() + t(10)
        while True:
            async with agent_client(srv.port, "erin") as p:
                if p.welcome["seq"] == 500:
                    break
            assert asyncio.get_running_loop().time() < deadline, p.welcome
            await asyncio.sleep(0.1)
        async with agent_client(srv.port, "erin", epoch=epoch, last_seq=0) as r:
            check_welcome(r.welcome, epoch=epoch, seq=500, recovered=True, missed=0)
            check_ticks(await r.collect(500), 500, first_seq=1)
            await r.nothing_pending()

    run_async(go(), t(30))


def test_resume_replay_larger_than_the_queue_bound(agent_server):
    """A resume whose replay is larger than max_queued_bytes is paced from the backlog, not refused: the client
    gets its 101, the welcome and every held event."""
    srv = agent_server("--max-queued-bytes", "65536", "--backlog-events", "5000")
    n = 3000  # about 210 KiB of ticks

    async def go():
        async with agent_client(srv.port, "frank") as a:
            epoch = a.welcome["epoch"]
            await a.say(f"/burst {n}")
        deadline = asyncio.get_running_loop().time() + t(10)
        while True:
            async with agent_client(srv.port, "frank") as p:
                if p.welcome["seq"] == n:
                    break
            assert asyncio.get_running_loop().time() < deadline, p.welcome
            await asyncio.sleep(0.1)
        return epoch

    epoch = run_async(go(), t(30))
    with RawConn(srv.port) as r:
        r.send(upgrade_request(agent_path("frank", epoch=epoch, last_seq=0)))
        try:
            resp = r.read_http_response()
        except AssertionError as exc:
            raise AssertionError(f"resume of {n} held events (about {n * 70 // 1024} KiB > max_queued_bytes "
                                 f"64 KiB): no HTTP response: {exc}") from None
        assert resp.status == 101, str(resp)
        msgs = [json.loads(r.recv_message()[1]) for _ in range(n + 1)]
    check_welcome(msgs[0], epoch=epoch, seq=n, recovered=True, missed=0)
    check_ticks(msgs[1:], n, first_seq=1)


def test_large_replay_with_live_events_is_not_a_slow_consumer(agent_server):
    """A resume whose replay is larger than max_queued_bytes while the user's live events keep coming is still
    paced, not closed with 1013 (regression, found by test_chaos: the events held before it connected counted as
    its debt, so the first live event closed a client reading at full speed)."""
    srv = agent_server("--max-queued-bytes", "262144", "--socket-send-buffer", "8192",
                       "--backlog-events", "100000", "--backlog-bytes", str(64 << 20))
    n, pad = 20000, 1000  # about 20 MB held: 80 times the bound

    with RawConn(srv.port) as a:
        a.handshake(agent_path("gus"))
        epoch = json.loads(a.recv_message()[1])["epoch"]
        a.send_frame(OP_TEXT, json.dumps({"type": "user_message", "text": f"/burst {n} {pad}"}).encode())
    deadline = time.monotonic() + t(20)
    while True:  # until the whole burst is held
        with RawConn(srv.port) as p:
            p.handshake(agent_path("gus"))
            if json.loads(p.recv_message()[1])["seq"] == n:
                break
        assert time.monotonic() < deadline, "the burst was not published in time"
        time.sleep(0.1)
    with RawConn(srv.port, timeout=t(10)) as r, RawConn(srv.port) as b:
        r.send(upgrade_request(agent_path("gus", epoch=epoch, last_seq=0)))
        assert r.read_http_response().status == 101
        b.handshake(agent_path("gus"))
        b.recv_message()
        b.send_frame(OP_TEXT, json.dumps({"type": "user_message", "text": "during the replay"}).encode())
        # Not reading yet: the replay waits at the output limit while the live run is published.
        b.recv_message(t(10))  # the run has started
        time.sleep(0.5)
        msgs = []
        # The welcome, the ticks, then the live run through its agent_completed.
        while len(msgs) <= n or msgs[-1]["type"] != "agent_completed":
            f = r.recv_frame(t(10))
            assert f.opcode != OP_CLOSE, f"closed after {len(msgs)} messages: {f.describe()}"
            if f.opcode == OP_TEXT:
                msgs.append(json.loads(f.payload))
    check_welcome(msgs[0], epoch=epoch, seq=n, recovered=True, missed=0)
    check_ticks(msgs[1:n + 1], n, first_seq=1, pad=pad)
    check_run(msgs[n + 1:], "during the replay", first_seq=n + 1)


def test_every_resume_during_a_burst_gets_its_101(agent_server):
    """Resumes opened while the user's burst is being published all get an HTTP response (regression, found by
    test_chaos: a slow-consumer close in the handshake's own loop turn discarded the queued 101, so the client read
    a close frame where the status line should be)."""
    srv = agent_server("--max-queued-bytes", "262144", "--socket-send-buffer", "8192",
                       "--backlog-events", "200000", "--backlog-bytes", str(256 << 20))
    rate = max(int(50000 / timeout_scale()), 1000)
    counts, bad, lock = {"101": 0, "other": 0}, [], threading.Lock()

    def resumes(epoch, until):
        while time.monotonic() < until:
            with RawConn(srv.port, timeout=t(5)) as r:
                r.send(upgrade_request(agent_path("hal", epoch=epoch, last_seq=0)))
                try:
                    resp = r.read_http_response(timeout=t(5))
                except AssertionError as exc:  # no complete response head
                    with lock:
                        bad.append(str(exc)[:200])
                    continue
                with lock:
                    counts["101" if resp.status == 101 else "other"] += 1

    with RawConn(srv.port) as a:
        a.handshake(agent_path("hal"))
        epoch = json.loads(a.recv_message()[1])["epoch"]
        a.send_frame(OP_TEXT, json.dumps({"type": "user_message",
                                          "text": f"/burst {rate * 2} 0 {rate}"}).encode())
    time.sleep(0.3)
    until = time.monotonic() + 1.6
    threads = [threading.Thread(target=resumes, args=(epoch, until)) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(t(30))
    assert not bad, f"{len(bad)} resumes got no HTTP response ({counts}): {bad[:3]}"
    assert counts["101"] > 0, counts


def test_epoch_of_an_idle_stream_survives_the_sweep(agent_server):
    """A user's stream created by a connection that saw no event keeps its epoch across the library's 1 s
    sweep (regression: it was collected at once, so a resume after it saw a new epoch)."""
    srv = agent_server()

    async def go():
        async with agent_client(srv.port, "ivy") as a:
            epoch = a.welcome["epoch"]
        await asyncio.sleep(2.5)  # more than two sweeps
        async with agent_client(srv.port, "ivy", epoch=epoch, last_seq=0) as b:
            check_welcome(b.welcome, epoch=epoch, seq=0, recovered=True, missed=0)

    run_async(go(), t(30))
