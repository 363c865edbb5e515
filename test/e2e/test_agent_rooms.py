"""Agent mode: rooms. join (host-authorized: the demo allows "public.<x>" to everyone and "<user>.<x>" to that
user), room events with "stream":"room:<id>" and the room's own seq, leave, not_member, join with resume."""

from helpers import agent_client, check_run, check_seqs, run_async, summarize, t

LOBBY = "public.lobby"
STREAM = "room:" + LOBBY


def check_joined(msg: dict, room: str, seq: int, epoch=None) -> None:
    assert msg.get("type") == "joined" and msg.get("room") == room, msg
    assert msg.get("stream") == "room:" + room, msg
    assert isinstance(msg.get("epoch"), str) and msg["epoch"], msg
    if epoch is not None:
        assert msg["epoch"] == epoch, msg
    assert msg.get("seq") == seq, f"joined seq: expected {seq}: {msg}"


def test_join_room_events_leave(agent_server):
    srv = agent_server()

    async def go():
        async with agent_client(srv.port, "alice") as a1, agent_client(srv.port, "alice") as a2, \
                agent_client(srv.port, "bob") as b:
            await a1.send({"type": "join", "room": LOBBY})
            joined = await a1.expect("joined")
            check_joined(joined, LOBBY, 0)
            room_epoch = joined["epoch"]
            await b.send({"type": "join", "room": LOBBY})
            check_joined(await b.expect("joined"), LOBBY, 0, room_epoch)
            # Authorization by the host's on_join.
            await a1.send({"type": "join", "room": "alice.notes"})
            check_joined(await a1.expect("joined"), "alice.notes", 0)
            await b.send({"type": "join", "room": "alice.notes"})
            await b.expect_error("join_denied")
            await a1.send({"type": "join", "room": "bob.notes"})
            await a1.expect_error("join_denied")
            await a1.send({"type": "join", "room": "lobby"})
            await a1.expect_error("join_denied")

            # A run in the room reaches its members only, on the room's stream.
            await a1.say("to the room", room=LOBBY)
            ev_a = await a1.run_events()
            ev_b = await b.run_events()
            check_run(ev_a, "to the room", stream=STREAM, first_seq=1)
            assert ev_a == ev_b, f"members got different events:\n{summarize(ev_a)}\n{summarize(ev_b)}"
            await a2.nothing_pending()
            k = len(ev_a)
            # The user's own stream did not move.
            async with agent_client(srv.port, "alice") as a3:
                assert a3.welcome["seq"] == 0, f"room events counted in the user stream: {a3.welcome}"

            # Acks name the room's stream.
            await b.send({"type": "ack", "seq": ev_b[-1]["seq"], "stream": STREAM})
            await b.nothing_pending()

            # leave, and leave again.
            await b.send({"type": "leave", "room": LOBBY})
            left = await b.expect("left")
            assert left.get("room") == LOBBY, left
            await b.send({"type": "leave", "room": LOBBY})
            await b.expect_error("not_member")
            await b.send({"type": "leave", "room": "public.never"})
            await b.expect_error("not_member")

            await a1.say("second", room=LOBBY)
            ev2 = await a1.run_events()
            check_run(ev2, "second", stream=STREAM, first_seq=k + 1)
            await b.nothing_pending()
            await a2.nothing_pending()

            # Join with resume: the room's history from last_seq on.
            async with agent_client(srv.port, "bob") as b2:
                await b2.send({"type": "join", "room": LOBBY, "epoch": room_epoch, "last_seq": k})
                check_joined(await b2.expect("joined"), LOBBY, 2 * k, room_epoch)
                resumed = await b2.expect("resumed")
                assert resumed == {"type": "resumed", "stream": STREAM, "epoch": room_epoch, "seq": 2 * k,
                                   "recovered": True, "missed": 0}, resumed
                replay = await b2.collect(k)
                assert replay == ev2, summarize(replay)
                await b2.nothing_pending()
                # A plain join starts at the live edge.
            async with agent_client(srv.port, "carol") as c:
                await c.send({"type": "join", "room": LOBBY})
                check_joined(await c.expect("joined"), LOBBY, 2 * k, room_epoch)
                await c.nothing_pending()
                await a1.say("third", room=LOBBY)
                check_run(await c.run_events(), "third", stream=STREAM, first_seq=2 * k + 1)
                check_run(await a1.run_events(), "third", stream=STREAM, first_seq=2 * k + 1)

    run_async(go(), t(40))


def test_room_backlog_gap(agent_server):
    srv = agent_server("--backlog-events", "5")

    async def go():
        async with agent_client(srv.port, "alice") as a:
            await a.send({"type": "join", "room": "alice.work"})
            joined = await a.expect("joined")
            epoch = joined["epoch"]
            await a.say("room history", room="alice.work")
            events = await a.run_events()
            s = events[-1]["seq"]
            check_seqs(events, 1)
        async with agent_client(srv.port, "alice") as a:
            await a.send({"type": "join", "room": "alice.work", "epoch": epoch, "last_seq": 0})
            check_joined(await a.expect("joined"), "alice.work", s, epoch)
            resumed = await a.expect("resumed")
            assert resumed == {"type": "resumed", "stream": "room:alice.work", "epoch": epoch, "seq": s,
                               "recovered": False, "missed": s - 5}, resumed
            gap = await a.expect("gap")
            assert gap == {"type": "gap", "stream": "room:alice.work", "from": 1, "to": s - 5}, gap
            assert await a.collect(5) == events[-5:]
            await a.nothing_pending()

    run_async(go(), t(30))
