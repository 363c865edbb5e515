#!/usr/bin/python3
"""Fan-out host in Python on libagentws (through examples/python/agentws.py),
the peer of pure_server.py for bench/python/run-python.sh.

    agentws_host.py --conns N --users U [--port 0] [--duration D (5)]
                    [--warmup W (1)] [--tail T (1)] [--size S (200)]
                    [--threads K (1)] [--window E (4096)] [--wait S (60)]

Prints `listening on 127.0.0.1:PORT`, waits until N WebSocket connections
are open (on_open), then K Python threads emit custom "bench" events of
about S bytes (the whole envelope) to users u0..u{U-1} in turn for W + D + T
seconds; [W, W+D] is the window agentws-load measures too. Emit never
refuses (its queue is unbounded), so each thread keeps at most E events
ahead of what the library's thread has published (the emitted_custom
counter of a stats snapshot, read without the GIL on that thread). The
deeper that queue, the more frames each connection's write carries (the
library writes once per connection per loop turn), so E trades latency
for throughput: 512 is the C fanout-host's bound (8 markers x 64). The
data's first member is "emit_us" (wall clock, us) for agentws-load's
latency. Prints one JSON line, then closes the manager.
"""

import argparse
import ctypes
import json
import os
import resource
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "examples", "python"))
import agentws  # noqa: E402

STAT_EMITTED_CUSTOM = 72


def cpu_s():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class Published:
    """The library's published-event count, from a private stats snapshot
    (agentws_manager_get_stats is thread-safe)."""

    def __init__(self, m):
        self.lib, self.m, self.st = agentws.lib(), m, ctypes.c_void_p()
        self.lib.agentws_stats_new(ctypes.byref(self.st))

    def __call__(self):
        self.lib.agentws_manager_get_stats(self.m._m, self.st)
        return self.lib.agentws_stats_get(self.st, STAT_EMITTED_CUSTOM)

    def close(self):
        self.lib.agentws_stats_free(self.st)


def emitter(m, a, index, t_end, counts, sent_total, lock):
    users = [f"u{i}" for i in range(a.users)]
    pad = "x" * max(0, a.size - 110)
    published = Published(m)
    custom, n, k = m.custom, 0, index % a.users
    try:
        while time.monotonic() < t_end:
            for _ in range(64):
                now_us = time.time_ns() // 1000
                custom("bench", f'{{"emit_us":{now_us},"i":{n},"pad":"{pad}"}}',
                       user=users[k])
                n += 1
                k = (k + 1) % a.users
            with lock:
                sent_total[0] += 64
            # At most |window| events per thread ahead of the library.
            while sent_total[0] - published() > a.window * a.threads:
                time.sleep(0.0002)
    finally:
        published.close()
        counts[index] = n


def main():
    p = argparse.ArgumentParser()
    for name, kind, default in (("port", int, 0), ("conns", int, 1000),
                                ("users", int, 100), ("duration", float, 5),
                                ("warmup", float, 1), ("tail", float, 1),
                                ("size", int, 200), ("threads", int, 1),
                                ("window", int, 4096), ("wait", float, 60)):
        p.add_argument("--" + name, type=kind, default=default)
    a = p.parse_args()
    opened = threading.Semaphore(0)
    closes = {}
    lock = threading.Lock()

    def on_close(conn, code, reason):
        with lock:
            closes[code] = closes.get(code, 0) + 1
    m = agentws.Manager("127.0.0.1", a.port, dev_insecure=True,
                        ping_interval_ms=0,
                        max_conns_per_user=max(5, -(-a.conns // a.users)),
                        on_open=lambda conn: opened.release(),
                        on_close=on_close)
    print(f"listening on 127.0.0.1:{m.port}", flush=True)
    deadline = time.monotonic() + a.wait
    n_open = 0
    while n_open < a.conns and opened.acquire(
            timeout=max(0, deadline - time.monotonic())):
        n_open += 1
    t0 = time.monotonic()
    t_end = t0 + a.warmup + a.duration + a.tail
    counts, sent_total = [0] * a.threads, [0]
    threads = [threading.Thread(target=emitter,
                                args=(m, a, i, t_end, counts, sent_total, lock))
               for i in range(a.threads)]
    for t in threads:
        t.start()
    time.sleep(max(0, t0 + a.warmup - time.monotonic()))
    ev0, cpu0, w0 = m.stats()["emitted_custom"], cpu_s(), time.monotonic()
    time.sleep(max(0, t0 + a.warmup + a.duration - time.monotonic()))
    ev1, cpu1, w1 = m.stats()["emitted_custom"], cpu_s(), time.monotonic()
    for t in threads:
        t.join()
    st = m.stats()
    m.close()
    print(json.dumps({
        "server": "agentws-python", "window": a.window, "conns": a.conns, "users": a.users,
        "opened": n_open, "threads": a.threads, "events": sum(counts),
        "window_s": round(w1 - w0, 3), "events_window": ev1 - ev0,
        "events_window_per_s": round((ev1 - ev0) / (w1 - w0), 1),
        "cpu_window_s": round(cpu1 - cpu0, 3),
        "delivered": st["events_delivered"], "closes": closes,
        "emit_to_write_p99_us": st["emit_to_write_p99_ns"] // 1000}),
        flush=True)


if __name__ == "__main__":
    main()
