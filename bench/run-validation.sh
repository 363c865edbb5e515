#!/usr/bin/env bash
# The validator's cost at full fan-out (issue 5): fanout-host emitting
# agent_thinking events of one live run per user (so every event goes
# through the run state machine) with --validation off / warn / strict,
# agentws-load receiving on 1,000 connections over 100 users. Policies
# alternate within each repetition; prints one JSON line per run and a
# Markdown table of deliveries/s (median, min-max) and ratios to "off".
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${AGENTWS_BUILD:-$ROOT/build}
HOST=$BUILD/bench/fanout-host
LOAD=$BUILD/bench/agentws-load
REPS=${REPS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-1000}
USERS=${USERS:-100}
POLICIES=(off warn strict)
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$TMP"' EXIT

one() { # policy -> prints "policy msg_per_s"
  local pol=$1 port="" i
  "$HOST" --port 0 --conns "$CONNS" --users "$USERS" --duration "$DURATION" \
    --warmup "$WARMUP" --wait 60 --type thinking --validation "$pol" \
    >"$TMP/host.out" 2>"$TMP/host.err" &
  local hp=$!
  for i in $(seq 1 100); do
    port=$(grep -m1 '^listening on ' "$TMP/host.out" 2>/dev/null | sed 's/.*://')
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "no port" >&2; kill $hp; return 1; }
  timeout 120 "$LOAD" --mode fanout --port "$port" --conns "$CONNS" \
    --users "$USERS" --duration "$DURATION" --warmup "$WARMUP" \
    >"$TMP/load.out" 2>/dev/null
  wait $hp
  local mps
  mps=$(/usr/bin/python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["msg_per_s"])' "$TMP/load.out")
  echo "$pol $mps"
  echo "load: $(tail -n1 "$TMP/load.out")" >&2
  echo "host: $(grep '^{' "$TMP/host.out" | tail -n1)" >&2
  grep 'violations' "$TMP/host.err" >&2
}

: >"$TMP/all"
for r in $(seq 1 "$REPS"); do
  if [ $((r % 2)) -eq 1 ]; then order=("${POLICIES[@]}"); else order=(strict warn off); fi
  for p in "${order[@]}"; do one "$p" | tee -a "$TMP/all"; done
done
/usr/bin/python3 - "$TMP/all" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    p, v = line.split()
    runs.setdefault(p, []).append(float(v))
off = statistics.median(runs["off"])
print("| validation | deliveries/s, median (min–max) | vs off |")
print("|---|---|---|")
for p in ("off", "warn", "strict"):
    v = runs[p]
    m = statistics.median(v)
    print(f"| {p} | {m:,.0f} ({min(v):,.0f}–{max(v):,.0f}) | {m/off:.3f} |")
PY
