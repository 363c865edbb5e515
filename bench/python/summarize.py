#!/usr/bin/python3
"""The markdown section of bench/python/run-python.sh from its JSON lines.

usage: summarize.py ALL.jsonl START LOADAVG BUILD CONNS USERS DURATION
                    WARMUP REPS EMIT_EVENTS
       summarize.py --progress JSON_LINE      (one line about one run)
"""

import json
import os
import platform
import statistics
import sys


def span(xs, fmt="{:,.0f}"):
    """'median | min – max' cells."""
    return (f"{fmt.format(statistics.median(xs))} | "
            f"{fmt.format(min(xs))} – {fmt.format(max(xs))}")


def progress(line):
    r = json.loads(line)
    if r["run"] == "emit":
        print(f"  emit {r['kind']:<11} {r['threads']} thread(s) "
              f"{r['calls_per_s']:>10,.0f} calls/s  "
              f"{r['published_per_s']:>10,.0f} published/s")
        return
    load, server = r["load"], r["server"]
    print(f"  {r['run']:<19} {load['msg_per_s']:>10,.0f} deliveries/s  "
          f"server {server['cpu_window_s'] / server['window_s']:.2f} cores  "
          f"load generator {load['client_cpu']:.2f}  p99 "
          f"{load['emit_p99_us'] / 1000:.1f} ms  errors {load['errors']}")


def main(argv):
    if argv[0] == "--progress":
        return progress(argv[1])
    path, start, loadavg, build, conns, users, dur, warm, reps, n_emit = argv
    rows = [json.loads(line) for line in open(path)]
    host = [r for r in rows if r["run"] == "agentws-python"]
    host512 = [r for r in rows if r["run"] == "agentws-python-w512"]
    pure = [r for r in rows if r["run"] == "pure-python"]

    def ratios(runs):  # paired within a repetition: same conditions
        return [a["load"]["msg_per_s"] / p["load"]["msg_per_s"]
                for a, p in zip(runs, pure)]
    with open("/proc/cpuinfo") as f:
        cpu = next(line.split(":", 1)[1].strip() for line in f
                   if line.startswith("model name"))
    print(f"\n## Python run, {start}\n")
    print(f"Machine: {os.cpu_count()} CPUs, {cpu}, kernel "
          f"{platform.release()}; load average at start {loadavg}; Python "
          f"{platform.python_version()}. Library: "
          f"{os.path.relpath(build)}/lib/libagentws.so.0 (release build). Each "
          f"value: median of {reps} repetitions, min – max; the two fan-out "
          "servers alternate order between repetitions.\n")
    print("Commands (PORT is the port the server printed):\n\n```")
    print(f"REPS={reps} bash bench/python/run-python.sh")
    for script in ("agentws_host.py", "pure_server.py"):
        print(f"/usr/bin/python3 bench/python/{script} --conns {conns} "
              f"--users {users} --duration {dur} --warmup {warm}")
    print(f"agentws-load --mode fanout --port PORT --conns {conns} --users "
          f"{users} --duration {dur} --warmup {warm}")
    print("/usr/bin/python3 bench/python/emit_rate.py --kind KIND --threads T"
          f" --events {n_emit}")
    print("```\n")
    print(f"| fan-out, {conns} connections over {users} users | median | "
          "min – max |")
    print("|---|---:|---:|")
    for label, rs in (("Python host on libagentws", host),
                      ("… with at most 512 events queued", host512),
                      ("pure Python websockets server", pure)):
        server = [r["server"] for r in rs]
        print(f"| {label}: deliveries/s | "
              f"{span([r['load']['msg_per_s'] for r in rs])} |")
        print(f"| {label}: events/s emitted | "
              f"{span([s['events_window_per_s'] for s in server])} |")
        print(f"| {label}: server CPU (cores) | "
              f"{span([s['cpu_window_s'] / s['window_s'] for s in server], '{:.2f}')} |")
        print(f"| {label}: load generator CPU (cores) | "
              f"{span([r['load']['client_cpu'] for r in rs], '{:.2f}')} |")
        print(f"| {label}: p99 emit→receive (ms) | "
              f"{span([r['load']['emit_p99_us'] / 1000 for r in rs], '{:.1f}')} |")
    for label, rs, fmt in (
            ("**deliveries/s, libagentws / pure Python (target ≥ 10)**",
             ratios(host), "**{:.1f}**"),
            ("deliveries/s, libagentws with 512 queued / pure Python",
             ratios(host512), "{:.1f}")):
        print(f"| {label} | {fmt.format(statistics.median(rs))} | "
              f"{min(rs):.1f} – {max(rs):.1f} |")
    errors = sum(r["load"]["errors"] for r in host + host512 + pure)
    print(f"\nLoad generator errors over all runs: {errors}.\n")
    print("| emit through the binding, no clients | calls/s | min – max | "
          "published/s | µs per call |")
    print("|---|---:|---:|---:|---:|")
    for kind in ("custom", "custom-dict", "thinking"):
        for threads in (1, 8):
            rs = [r for r in rows if r["run"] == "emit" and
                  r["kind"] == kind and r["threads"] == threads]
            if not rs:
                continue
            print(f"| {kind}, {threads} thread{'s' * (threads > 1)} | "
                  f"{span([r['calls_per_s'] for r in rs])} | "
                  f"{statistics.median(r['published_per_s'] for r in rs):,.0f}"
                  f" | {statistics.median(r['us_per_call'] for r in rs):.2f} |")
    print("\n<details><summary>raw JSON lines</summary>\n\n```")
    for r in rows:
        print(json.dumps(r, separators=(",", ":")))
    print("```\n</details>")


if __name__ == "__main__":
    main(sys.argv[1:])
