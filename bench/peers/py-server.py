#!/usr/bin/python3
"""py-server: the Python `websockets` peer for bench/run-peers.sh, the same
modes as lws-server.c and ws-server.mjs, written the way websockets
applications are written: asyncio, websockets.serve, `await ws.send()` per
message where each connection has its own stream, websockets.broadcast()
where one message goes to every connection. Standard library plus Debian's
python3-websockets (10.x, the asyncio API; Debian ships no compiled
speedups, so unmasking client frames is pure Python); run it with
/usr/bin/python3. asyncio's default event loop (epoll): a write to an
empty transport buffer is one send(2) there and then.

    py-server.py --mode echo|fanout|room|paced [--port 0] [--conns 0]
                 [--size 200] [--interval-ms 10] [--write-limit 65536]
                 [--max-run 3600]

    echo    every text/binary message goes back to its sender
            (`async for msg in ws: await ws.send(msg)`).
    fanout  each connection (?user=u<k>) is its own user's stream: one
            coroutine per connection, `await ws.send(event)` in a loop,
            yielding to the others after every 16.
    room    one stream for all connections: each event is made once and
            handed to websockets.broadcast(); after every 16 events the
            producer awaits ws.drain() of each connection, so no event is
            made while a connection is over the bound.
    paced   one event to every connection each --interval-ms, by
            websockets.broadcast() (connections over the bound skipped).

Backpressure is the library's own: --write-limit is websockets' write_limit,
the high-water mark of a connection's write buffer (low water a quarter of
it). send() and drain() return at once below it and wait above it until
the buffer is under the low-water mark; broadcast() has none, hence the
drain() in room and the skip in paced. So fanout and room measure the
sustained rate, not how much Python can buffer.

--conns N: no events until N connections are open, as fanout-host and the
other peers wait for theirs. Events match theirs ("ts" wall ms, data
"emit_us" wall us, taken when the event is made); non-echo connections
first get a welcome; agentws.v1 is accepted when offered. Listens on
127.0.0.1 only, prints "listening on 127.0.0.1:PORT"; SIGINT/SIGTERM stop
it (exit 0), as does --max-run seconds (exit 1). Stopping is immediate
(os._exit, as ws-server's process.exit): no close handshakes.
"""

import argparse
import asyncio
import json
import os
import signal
import sys
import time
import urllib.parse

import websockets

# Events per turn of a producer (room: broadcast 16, drain, yield; fanout:
# a connection sends 16, then yields). send() yields only over write_limit,
# and a reader as fast as the writer never gets there: one connection's
# loop would keep the event loop to itself.
BATCH = 16

# Padding so the envelope is ~size bytes (13-digit ts, 16-digit emit_us,
# 6-digit seq), as the other peers and fanout-host size theirs.
FIXED = ('{"type":"custom_event","run_id":"r-1","ts":1763769600123,'
         '"data":{"emit_us":1763769600123456,"pad":""},"seq":123456}')


def parse_args():
    def num(lo, hi):
        def conv(v):
            try:
                n = int(v)
            except ValueError:
                n = lo - 1
            if not lo <= n <= hi:
                raise argparse.ArgumentTypeError(f"a number in [{lo}, {hi}]")
            return n
        return conv

    p = argparse.ArgumentParser(prog="py-server.py")
    p.add_argument("--mode", required=True,
                   choices=("echo", "fanout", "room", "paced"))
    p.add_argument("--port", type=num(0, 65535), default=0)
    p.add_argument("--conns", type=num(0, 1000000), default=0)
    p.add_argument("--size", type=num(64, 4096), default=200)
    p.add_argument("--interval-ms", type=num(1, 60000), default=10)
    p.add_argument("--write-limit", type=num(4096, 1 << 30), default=1 << 16)
    p.add_argument("--max-run", type=num(0, 86400), default=3600)
    return p.parse_args()


a = parse_args()
PAD = "".join(chr(97 + i % 26) for i in range(a.size - len(FIXED)))
conns = set()        # open non-echo connections
started = asyncio.Event()
st = {"events": 0, "writes": 0, "skipped": 0}


def log(msg):
    print(f"py-server: {msg}", file=sys.stderr, flush=True)


def make_event(seq):
    us = time.time_ns() // 1000
    return (f'{{"type":"custom_event","run_id":"r-1","ts":{us // 1000},'
            f'"data":{{"emit_us":{us},"pad":"{PAD}"}},"seq":{seq}}}')


async def handler(ws):
    try:
        if a.mode == "echo":
            async for msg in ws:
                st["writes"] += 1
                await ws.send(msg)  # waits while over write_limit; the
            return                  # read queue (max_queue) then stops reading
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(ws.path).query)
        user = query.get("user", ["anonymous"])[0]
        st["writes"] += 1
        await ws.send(json.dumps({"type": "welcome", "user": user, "seq": 0},
                                 separators=(",", ":")))
        conns.add(ws)
        if not started.is_set() and len(conns) >= a.conns:
            log(f"{len(conns)} connections open, sending")
            started.set()
        if a.mode != "fanout":
            await ws.wait_closed()
            return
        await started.wait()
        seq = 0
        while True:
            for _ in range(BATCH):
                await ws.send(make_event(seq))
                seq += 1
            st["events"] += BATCH
            st["writes"] += BATCH
            await asyncio.sleep(0)  # the others' turn (see BATCH)
    except websockets.ConnectionClosed:
        pass
    finally:
        conns.discard(ws)


async def room():
    await started.wait()
    while True:
        if not conns:
            await asyncio.sleep(0.01)
            continue
        for _ in range(BATCH):
            websockets.broadcast(conns, make_event(st["events"]))
            st["events"] += 1
            st["writes"] += len(conns)
        for ws in list(conns):
            try:
                await ws.drain()  # at once unless over write_limit
            except websockets.ConnectionClosed:
                pass
        await asyncio.sleep(0)  # reads, handshakes, signals


async def paced():
    loop = asyncio.get_running_loop()
    iv = a.interval_ms / 1000
    nxt = loop.time() + iv
    while True:
        await asyncio.sleep(max(0.0, nxt - loop.time()))
        if started.is_set() and conns:
            msg = make_event(st["events"])
            st["events"] += 1
            ready = [ws for ws in conns
                     if ws.transport.get_write_buffer_size() < a.write_limit]
            st["skipped"] += len(conns) - len(ready)  # a stalled reader
            st["writes"] += len(ready)
            websockets.broadcast(ready, msg)
        now = loop.time()
        nxt += iv
        if nxt < now:
            nxt = now


def stop(code):
    log(f"{st['events']} events made, {st['writes']} messages written" +
        (f", {st['skipped']} paced sends skipped (reader behind)"
         if st["skipped"] else ""))
    sys.stdout.flush()
    os._exit(code)


async def main():
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop, 0)
    if a.max_run > 0:
        loop.call_later(a.max_run, lambda: (
            log(f"--max-run {a.max_run} s reached"), stop(1)))
    if a.conns == 0:
        started.set()
    async with websockets.serve(handler, "127.0.0.1", a.port,
                                subprotocols=["agentws.v1"], compression=None,
                                ping_interval=None, write_limit=a.write_limit,
                                backlog=1024) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"listening on 127.0.0.1:{port}", flush=True)
        log(f"python {sys.version.split()[0]}, websockets "
            f"{websockets.__version__}, mode {a.mode}, events ~{a.size} bytes")
        if a.mode == "room":
            await room()
        elif a.mode == "paced":
            await paced()
        else:
            await asyncio.Future()  # until a signal or --max-run


asyncio.run(main())
