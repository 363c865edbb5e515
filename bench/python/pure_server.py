#!/usr/bin/python3
"""The same fan-out as agentws_host.py, served by pure Python: asyncio and
the `websockets` library (Debian python3-websockets 10.x), no libagentws.

    pure_server.py --conns N --users U [--port 0] [--duration D (5)]
                   [--warmup W (1)] [--tail T (1)] [--size S (200)]
                   [--batch B (64)] [--wait S (60)]

What agentws-load --mode fanout needs of a server, as libagentws gives it:
the WebSocket path /ws, the user from ?user=, a welcome message, then one
JSON text frame per event, {"type":"bench","ts":MS,"data":{"emit_us":US,
"i":N,"pad":"..."},"seq":S} with a per-user seq. Each event is serialized
once and written to the user's connections with websockets.broadcast()
(the library's fan-out path: no await per connection). After each batch
of B events the loop runs (B from 16 to 1024 gives the same rate), and
every 16 batches the emitter pauses while any connection has more than
1 MiB buffered (a slow reader bounds memory, as max_queued_bytes does in
libagentws). Prints `listening on 127.0.0.1:PORT`
and, after W + D + T seconds of emitting, one JSON line.
"""

import argparse
import asyncio
import json
import resource
import time
import urllib.parse

import websockets

BUFFER_LIMIT = 1 << 20


def cpu_s():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class FanOut:
    def __init__(self, a):
        self.a = a
        self.users = {}        # user -> set of open connections
        self.seq = {}          # user -> last seq
        self.opened = 0
        self.all_open = asyncio.Event()
        self.closes = {}
        self.events = 0

    async def handler(self, ws, path):
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
        user = query.get("user", [""])[0]
        if not user:
            await ws.close(1008, "no user")
            return
        conns = self.users.setdefault(user, set())
        conns.add(ws)
        await ws.send(json.dumps({
            "type": "welcome", "session": f"s-{id(ws):x}", "user": user,
            "epoch": "e-pure.1", "seq": self.seq.get(user, 0),
            "recovered": True, "missed": 0}))
        self.opened += 1
        if self.opened >= self.a.conns:
            self.all_open.set()
        try:
            await ws.wait_closed()
        finally:
            conns.discard(ws)
            self.closes[ws.close_code] = self.closes.get(ws.close_code, 0) + 1

    async def emit(self, t_end):
        a, n = self.a, 0
        pad = "x" * max(0, a.size - 110)
        names = [f"u{i}" for i in range(a.users)]
        batches = 0
        while time.monotonic() < t_end:
            for _ in range(self.a.batch):
                user = names[n % a.users]
                seq = self.seq.get(user, 0) + 1
                self.seq[user] = seq
                now_us = time.time_ns() // 1000
                msg = (f'{{"type":"bench","ts":{now_us // 1000},"data":'
                       f'{{"emit_us":{now_us},"i":{n},"pad":"{pad}"}},'
                       f'"seq":{seq}}}')
                websockets.broadcast(self.users.get(user, ()), msg)
                n += 1
            self.events, batches = n, batches + 1
            await asyncio.sleep(0)
            while batches % 16 == 0 and any(
                    ws.transport.get_write_buffer_size() > BUFFER_LIMIT
                    for conns in self.users.values() for ws in conns):
                await asyncio.sleep(0.001)


async def main(a):
    fan = FanOut(a)
    async with websockets.serve(fan.handler, "127.0.0.1", a.port,
                                subprotocols=["agentws.v1"], compression=None,
                                ping_interval=None, max_queue=64,
                                backlog=1024) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"listening on 127.0.0.1:{port}", flush=True)
        try:
            await asyncio.wait_for(fan.all_open.wait(), a.wait)
        except asyncio.TimeoutError:
            pass
        t0 = time.monotonic()
        task = asyncio.create_task(
            fan.emit(t0 + a.warmup + a.duration + a.tail))
        await asyncio.sleep(a.warmup)
        ev0, cpu0, w0 = fan.events, cpu_s(), time.monotonic()
        await asyncio.sleep(a.duration)
        ev1, cpu1, w1 = fan.events, cpu_s(), time.monotonic()
        await task
    print(json.dumps({
        "server": "pure-python", "conns": a.conns, "users": a.users,
        "opened": fan.opened, "threads": 1, "events": fan.events,
        "window_s": round(w1 - w0, 3), "events_window": ev1 - ev0,
        "events_window_per_s": round((ev1 - ev0) / (w1 - w0), 1),
        "cpu_window_s": round(cpu1 - cpu0, 3),
        "closes": {str(k): v for k, v in fan.closes.items()}}), flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    for name, kind, default in (("port", int, 0), ("conns", int, 1000),
                                ("users", int, 100), ("duration", float, 5),
                                ("warmup", float, 1), ("tail", float, 1),
                                ("size", int, 200), ("wait", float, 60),
                                ("batch", int, 64)):
        p.add_argument("--" + name, type=kind, default=default)
    asyncio.run(main(p.parse_args()))
