#!/usr/bin/python3
"""chart.py ALL.JSONL > chart.svg: run-peers.sh's raw results as one SVG.

One row per case (fan-out, room, paced, echo variants, connect, memory),
one bar per server: the median over the repetitions, drawn relative to
libwebsockets (lws = 1) on a log scale, and labelled with the value itself.
Higher is better except for the paced p99 latency and the memory per
connection, which are drawn as lws/value so that longer is always better.
Standard library only; no external assets.
"""

import json
import math
import statistics
import sys
from xml.sax.saxutils import escape

# Server names: run-peers.sh's (py: bench/peers/py-server.py) and
# run-connect.sh's (python: bench/python/pure_server.py). Any other name is
# drawn after these, in grey.
SERVERS = ["libagentws", "lws", "ws", "py", "python"]
COLORS = {"libagentws": "#2b6cb0", "lws": "#718096", "ws": "#c05621",
          "py": "#2f855a", "python": "#2f855a"}


def value(rec):
    """(figure, unit, higher_is_better) of one run record."""
    case = rec["case"]
    if case == "paced":
        return rec.get("emit_p99_us"), "us p99", False
    if case.startswith("memory"):
        return rec.get("rss_kib_per_conn"), "KiB/conn", False
    if case.startswith("connect"):
        return rec.get("handshakes_per_s"), "handshakes/s", True
    if rec.get("mode") == "echo":
        return rec.get("rt_per_s"), "round trips/s", True
    return rec.get("msg_per_s"), "deliveries/s", True


def load(path):
    runs = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            rec = json.loads(line)
            if "server" not in rec or "case" not in rec:
                continue  # fanout-host's own report
            v, unit, hib = value(rec)
            if v is None:
                continue
            runs.setdefault(rec["case"], {}).setdefault(
                rec["server"], []).append(float(v))
            runs[rec["case"]]["_unit"] = (unit, hib)
    return runs


def fmt(v):
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e4:
        return f"{v / 1e3:.0f}k"
    if v >= 100:
        return f"{v:.0f}"
    return f"{v:.2f}"


def render(runs):
    cases = [c for c in runs if "lws" in runs[c]]
    row_h, bar_h, left, width = 18, 14, 170, 560
    y = 40
    out = []
    lo, hi = -1.0, 2.0  # log10 range of the ratio axis: 0.1x .. 100x
    scale = width / (hi - lo)
    x0 = left + (0 - lo) * scale
    for case in cases:
        unit, hib = runs[case]["_unit"]
        servers = [s for s in SERVERS if s in runs[case]] + sorted(
            s for s in runs[case] if s not in SERVERS and s != "_unit")
        lws = statistics.median(runs[case]["lws"])
        out.append(f'<text x="8" y="{y + 12}" font-weight="bold">'
                   f'{escape(case)}</text>')
        out.append(f'<text x="8" y="{y + 26}" fill="#555">{escape(unit)}'
                   f'{"" if hib else " (lower is better)"}</text>')
        for s in servers:
            med = statistics.median(runs[case][s])
            ratio = (med / lws if hib else lws / med) if med > 0 and lws > 0 \
                else 1.0
            r = min(max(math.log10(ratio), lo), hi)
            xa, xb = sorted((x0, left + (r - lo) * scale))
            out.append(f'<rect x="{xa:.1f}" y="{y}" width="{max(xb - xa, 1):.1f}"'
                       f' height="{bar_h}" fill="{COLORS.get(s, "#999")}"/>')
            out.append(f'<text x="{left + width + 6}" y="{y + 11}">'
                       f'{escape(s)}: {fmt(med)} ({ratio:.2f}x lws)</text>')
            y += row_h
        y += 14
    grid = []
    for k in range(int(lo), int(hi) + 1):
        gx = left + (k - lo) * scale
        grid.append(f'<line x1="{gx:.1f}" y1="30" x2="{gx:.1f}" y2="{y}" '
                    f'stroke="#ddd"/>')
        grid.append(f'<text x="{gx:.1f}" y="24" text-anchor="middle" '
                    f'fill="#555">{10 ** k:g}x</text>')
    total_w = left + width + 330
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w}" '
            f'height="{y + 10}" font-family="sans-serif" font-size="11">'
            f'<rect width="100%" height="100%" fill="white"/>'
            f'<text x="8" y="14" font-size="13" font-weight="bold">'
            f'libagentws and peers, relative to libwebsockets (log scale; '
            f'longer is better)</text>')
    return head + "".join(grid) + "".join(out) + "</svg>\n"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    runs = load(sys.argv[1])
    if not runs:
        sys.exit("chart.py: no run records")
    sys.stdout.write(render(runs))


if __name__ == "__main__":
    main()
