#!/usr/bin/env bash
# The monitor's cost at full fan-out (issue 6): fanout-host emitting
# agent_thinking events of one live run per user (validation warn, the
# default) with the monitor off, on, and on while the host scrapes its own
# /metrics every second (--scrape-ms 1000, as Prometheus would);
# agentws-load receiving on 1,000 connections over 100 users. Variants
# alternate within each repetition; prints one JSON line per run (stderr)
# and a Markdown table of deliveries/s and host CPU per delivered event
# (median, min-max) with their ratios to "off" (ratio of the medians, and
# the median of the ratios paired within each repetition), and the CPU the
# rest of the machine used in the window ("other", as in run-fanout.sh).
#
# Environment: AGENTWS_BUILD (default build) REPS (5) DURATION (5) WARMUP (1)
#              CONNS (1000) USERS (100) SCRAPE_MS (1000)
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${AGENTWS_BUILD:-$ROOT/build}
HOST=$BUILD/bench/fanout-host
LOAD=$BUILD/bench/agentws-load
REPS=${REPS:-5}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-1000}
USERS=${USERS:-100}
SCRAPE_MS=${SCRAPE_MS:-1000}
VARIANTS=(off on on+scrape)
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$TMP"' EXIT

if [ ! -x "$HOST" ] || [ ! -x "$LOAD" ]; then
  echo "run-monitor: no $HOST or $LOAD" >&2
  exit 1
fi
"$HOST" --help 2>&1 | grep -q -- '--monitor' ||
  { echo "run-monitor: $HOST has no --monitor (rebuild it)" >&2; exit 1; }
# Both programs inherit this (1,000 connections plus the listener and pipes).
ulimit -n "$(ulimit -Hn)" 2>/dev/null
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((CONNS + 64)) ] ||
  { echo "run-monitor: NOFILE limit $(ulimit -n) is below $CONNS connections" >&2; exit 1; }

# busy_ticks: user+nice+system+irq+softirq+steal jiffies of all CPUs.
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
CLK_TCK=$(getconf CLK_TCK)

# jget JSON FIELD: one numeric field of a flat JSON line (first match).
jget() { sed -n "s/.*\"$2\":\\([-0-9.e+]*\\).*/\\1/p" <<<"$1" | head -n1; }

one() { # rep variant -> prints "rep variant msg_per_s host_us_per_delivery host_cores client_cpu other"
  local rep=$1 var=$2 port="" lj hj lp b0='' b1='' other=nan
  local args=(--monitor on)
  case $var in
  off) args=(--monitor off) ;;
  on+scrape) args=(--monitor on --scrape-ms "$SCRAPE_MS") ;;
  esac
  "$HOST" --port 0 --conns "$CONNS" --users "$USERS" --duration "$DURATION" \
    --warmup "$WARMUP" --wait 60 --type thinking --validation warn "${args[@]}" \
    >"$TMP/host.out" 2>"$TMP/host.err" &
  local hp=$!
  for _ in $(seq 1 100); do
    port=$(grep -m1 '^listening on ' "$TMP/host.out" 2>/dev/null | sed 's/.*://')
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "no port" >&2; kill $hp; return 1; }
  timeout 120 "$LOAD" --mode fanout --port "$port" --conns "$CONNS" \
    --users "$USERS" --duration "$DURATION" --warmup "$WARMUP" \
    >"$TMP/load.out" 2>"$TMP/load.err" &
  lp=$!
  # Busy CPU of the whole machine over the measured window, which starts
  # WARMUP s after the generator has all connections open.
  for _ in $(seq 600); do
    grep -q 'connections open in' "$TMP/load.err" && break
    kill -0 $lp 2>/dev/null || break
    sleep 0.1
  done
  if grep -q 'connections open in' "$TMP/load.err"; then
    sleep "$WARMUP"
    b0=$(busy_ticks)
    sleep "$DURATION"
    b1=$(busy_ticks)
  fi
  wait $lp
  wait $hp
  lj=$(tail -n1 "$TMP/load.out")
  hj=$(grep '^{' "$TMP/host.out" | tail -n1)
  # Host CPU per delivered event as in run-fanout.sh: the host's
  # user+system CPU over the window / messages the generator counted in it.
  if [ -n "$b0" ] && [ -n "$b1" ]; then
    # Cores busy on the machine minus what the two programs reported.
    other=$(awk -v a="$b0" -v b="$b1" -v hz="$CLK_TCK" -v d="$DURATION" \
      -v h="$(jget "$hj" cpu_window_s)" -v c="$(jget "$lj" client_cpu)" \
      'BEGIN { o = (b - a) / hz / d - h / d - c; if (o < 0) o = 0; printf "%.2f", o }')
  fi
  echo "$rep $var $(jget "$lj" msg_per_s)" \
    "$(awk -v c="$(jget "$hj" cpu_window_s)" -v n="$(jget "$lj" messages)" 'BEGIN { if (n > 0) printf "%.3f", c / n * 1e6; else print "nan" }')" \
    "$(awk -v c="$(jget "$hj" cpu_window_s)" -v d="$(jget "$hj" window_s)" 'BEGIN { if (d > 0) printf "%.2f", c / d; else print "nan" }')" \
    "$(jget "$lj" client_cpu)" "$other"
  echo "load: $lj" >&2
  echo "host: $hj" >&2
  [ "$(jget "$lj" errors)" = 0 ] || echo "run-monitor: $var: load generator errors $(jget "$lj" errors)" >&2
  [ "$var" != on+scrape ] || [ "$(jget "$hj" scrapes)" -gt 0 ] 2>/dev/null ||
    echo "run-monitor: $var: no successful scrape" >&2
}

: >"$TMP/all"
for r in $(seq 1 "$REPS"); do
  if [ $((r % 2)) -eq 1 ]; then order=("${VARIANTS[@]}"); else order=(on+scrape on off); fi
  for v in "${order[@]}"; do one "$r" "$v" | tee -a "$TMP/all"; done
done
/usr/bin/python3 - "$TMP/all" <<'PY'
import math, statistics, sys
K = ("dps", "cpu", "cores", "ccpu", "other")
runs, byrep = {}, {}
for line in open(sys.argv[1]):
    f = line.split()
    rep, p, vals = f[0], f[1], [float(x) for x in f[2:]]
    byrep.setdefault(rep, {})[p] = dict(zip(K, vals))
    r = runs.setdefault(p, {k: [] for k in K})
    for k, v in zip(K, vals):
        if not math.isnan(v):
            r[k].append(v)
def med(v): return statistics.median(v) if v else float("nan")
def rng(v, f): return f"{f.format(med(v))} ({f.format(min(v))}–{f.format(max(v))})" if v else "n/a"
def paired(p, k):
    v = [x[p][k] / x["off"][k] for x in byrep.values()
         if p in x and "off" in x and x["off"][k] > 0 and not math.isnan(x[p][k])]
    return rng(v, "{:.3f}")
off = runs["off"]
print("| monitor | deliveries/s, median (min–max) | vs off | vs off, paired | host CPU per delivered event (us), median (min–max) | vs off | vs off, paired | host CPU (cores) | load generator CPU (cores) | other CPU (cores) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for p in ("off", "on", "on+scrape"):
    r = runs[p]
    d, c = r["dps"], r["cpu"]
    print(f"| {p} | {rng(d, '{:,.0f}')} | {med(d)/med(off['dps']):.3f} | {paired(p, 'dps')}"
          f" | {rng(c, '{:.3f}')} | {med(c)/med(off['cpu']):.3f} | {paired(p, 'cpu')}"
          f" | {med(r['cores']):.2f} | {med(r['ccpu']):.2f} | {rng(r['other'], '{:.2f}')} |")
PY
