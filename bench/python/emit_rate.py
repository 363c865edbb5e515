#!/usr/bin/python3
"""Events/s that Python threads can emit through the binding
(examples/python/agentws.py), with no client connected.

    emit_rate.py [--threads T (1)] [--events N (200000 in all)]
                 [--kind custom|custom-dict|thinking] [--users U (100)]

T threads start together (a barrier) and emit N/T events each to users
u0..u{U-1} in turn: "custom" passes the data as JSON text, "custom-dict" as
a dict (json.dumps in the call), "thinking" emits agent_thinking deltas of
one live run per user and thread (validated by the library). Reported:
the emit calls' rate (all threads' calls over the time until the last
thread returned) and the published rate (until the library's thread had
given every event its seq: emit only queues). One JSON line.
"""

import argparse
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "examples", "python"))
import agentws  # noqa: E402


def emitter(m, a, index, per_thread, barrier, done):
    users = [f"u{i}" for i in range(a.users)]
    runs = [f"r-{index}-{i}" for i in range(a.users)]
    if a.kind == "thinking":
        for user, run in zip(users, runs):
            m.agent_started(run, "bench", user=user)
    custom, thinking = m.custom, m.agent_thinking
    data, dict_data = '{"i":1,"pad":"xxxxxxxxxxxxxxxx"}', {"i": 1, "pad": "x" * 16}
    barrier.wait()
    for n in range(per_thread):
        k = n % a.users
        if a.kind == "custom":
            custom("bench", data, user=users[k])
        elif a.kind == "custom-dict":
            custom("bench", dict_data, user=users[k])
        else:
            thinking(runs[k], "a thinking delta of some words", user=users[k])
    done[index] = time.perf_counter()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--events", type=int, default=200000)
    p.add_argument("--users", type=int, default=100)
    p.add_argument("--kind", default="custom",
                   choices=("custom", "custom-dict", "thinking"))
    a = p.parse_args()
    per_thread = a.events // a.threads
    with agentws.Manager(dev_insecure=True, ping_interval_ms=0,
                         backlog_events=100) as m:
        barrier = threading.Barrier(a.threads + 1)
        done = [0.0] * a.threads
        threads = [threading.Thread(target=emitter,
                                    args=(m, a, i, per_thread, barrier, done))
                   for i in range(a.threads)]
        for t in threads:
            t.start()
        barrier.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        t_calls = max(done) - t0
        key = "emitted_custom" if a.kind != "thinking" else \
            "emitted_agent_thinking"
        total = per_thread * a.threads
        while m.stats()[key] < total:
            time.sleep(0.001)
        t_published = time.perf_counter() - t0
    print(json.dumps({
        "kind": a.kind, "threads": a.threads, "events": total,
        "calls_s": round(t_calls, 4),
        "calls_per_s": round(total / t_calls, 1),
        "published_per_s": round(total / t_published, 1),
        "us_per_call": round(t_calls / total * 1e6, 3)},
        separators=(",", ":")))


if __name__ == "__main__":
    main()
