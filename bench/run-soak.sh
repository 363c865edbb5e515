#!/usr/bin/env bash
# run-soak.sh: the soak (issue 9). fanout-host (a threaded libagentws
# manager) holds CONNS WebSocket connections over USERS users and emits
# RATE ~200-byte events/s to them, paced, for DURATION seconds after WARMUP;
# agentws-load --mode fanout reads every connection. Every SAMPLE seconds
# the host prints its VmRSS, the library's queued-bytes and loop-lag gauges,
# the loop lag its probe saw, open connections and closes by code; at the
# end the script prints the series as a markdown table with the growth of
# RSS and queued bytes after warm-up, the unexpected closes (anything but
# the final 1001s) and the generator's delivered count and latency, and
# appends it to RESULTS (default bench/RESULTS.md; RESULTS=/dev/null to
# skip).
#
#   bench/run-soak.sh                      10,000 conns, 20,000 events/s, 600 s
#   DURATION=60 CONNS=2000 bench/run-soak.sh   a short check
#
# Environment: CONNS (10000) USERS (2000) RATE (20000) DURATION (600)
#   WARMUP (60) SAMPLE (10) BACKLOG (200 events per user stream: at
#   RATE/USERS events/s a stream is full after BACKLOG*USERS/RATE s, well
#   inside the warm-up, so what follows is the steady state) RESULTS
#   FANOUT_HOST AGENTWS_LOAD
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HOST=${FANOUT_HOST:-$ROOT/build/bench/fanout-host}
LOAD=${AGENTWS_LOAD:-$ROOT/build/bench/agentws-load}
CONNS=${CONNS:-10000}
USERS=${USERS:-2000}
RATE=${RATE:-20000}
DURATION=${DURATION:-600}
WARMUP=${WARMUP:-60}
BACKLOG=${BACKLOG:-200}
SAMPLE=${SAMPLE:-10}
RESULTS=${RESULTS:-$ROOT/bench/RESULTS.md}

die() { echo "run-soak: $*" >&2; exit 1; }
[ -x "$HOST" ] && [ -x "$LOAD" ] || die "build first: ninja -C build"
ulimit -n "$(ulimit -Hn)" || die "cannot raise the NOFILE soft limit"
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((CONNS + 64)) ] ||
  die "NOFILE limit $(ulimit -n) is below $CONNS connections"

TMP=$(mktemp -d)
HOST_PID= LOAD_PID=
cleanup() {
  [ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null
  [ -n "$HOST_PID" ] && kill "$HOST_PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

"$HOST" --port 0 --conns "$CONNS" --users "$USERS" --rate "$RATE" \
  --warmup "$WARMUP" --duration "$DURATION" --tail 5 --linger 5 --wait 120 \
  --sample-s "$SAMPLE" --backlog-events "$BACKLOG" >"$TMP/host.out" 2>"$TMP/host.err" &
HOST_PID=$!
port=
for _ in $(seq 100); do
  port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$TMP/host.out" | head -n1)
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || die "fanout-host did not start: $(tail -n3 "$TMP/host.err")"
"$LOAD" --mode fanout --port "$port" --conns "$CONNS" --users "$USERS" \
  --warmup "$WARMUP" --duration "$DURATION" >"$TMP/load.out" 2>"$TMP/load.err" &
LOAD_PID=$!
wait "$LOAD_PID"; LOAD_PID=
for _ in $(seq 600); do kill -0 "$HOST_PID" 2>/dev/null || break; sleep 0.1; done
kill "$HOST_PID" 2>/dev/null
wait "$HOST_PID" 2>/dev/null; HOST_PID=

lj=$(cat "$TMP/load.out")
hj=$(grep '^{' "$TMP/host.out" | head -n1)
[ -n "$lj" ] || die "agentws-load printed nothing: $(tail -n3 "$TMP/load.err")"
grep '^{"t":' "$TMP/host.err" >"$TMP/samples.jsonl"
[ -s "$TMP/samples.jsonl" ] || die "no samples: $(tail -n3 "$TMP/host.err")"

jget() { sed -n "s/.*\"$2\":\\([-0-9.e+]*\\).*/\\1/p" <<<"$1" | head -n1; }

report() {
  echo "### Soak: $CONNS connections, $RATE events/s, ${DURATION} s ($(date -u '+%Y-%m-%d %H:%M UTC'), $(git -C "$ROOT" rev-parse --short HEAD))"
  echo
  echo "\`CONNS=$CONNS USERS=$USERS RATE=$RATE DURATION=$DURATION WARMUP=$WARMUP SAMPLE=$SAMPLE BACKLOG=$BACKLOG bench/run-soak.sh\`"
  echo "on $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)); host and load generator on this machine."
  echo
  echo "| t (s) | RSS (MiB) | queued bytes | loop lag gauge (ms) | probe lag max (ms) | open | events emitted | closes 1000/1001/1006/1011/1013/other |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---|"
  while read -r s; do
    awk -v t="$(jget "$s" t)" -v r="$(jget "$s" rss_kb)" -v q="$(jget "$s" queued_bytes)" \
      -v l="$(jget "$s" loop_lag_us)" -v p="$(jget "$s" probe_lag_max_ms)" \
      -v o="$(jget "$s" open)" -v e="$(jget "$s" emitted)" \
      -v c="$(sed -n 's/.*"closes":\[\([0-9,]*\)\].*/\1/p' <<<"$s" | tr ',' '/')" \
      'BEGIN { printf "| %d | %.1f | %d | %.2f | %.2f | %d | %d | %s |\n", t, r / 1024, q, l / 1000, p, o, e, c }'
  done <"$TMP/samples.jsonl"
  echo
  # Growth after warm-up: the first sample in the measured window against
  # its last one. The generator closes its connections (1000) at the end,
  # so open connections and closes are judged inside the window only.
  awk -v w="$WARMUP" -v d="$DURATION" -v n="$CONNS" '
    function f(k,   v) { v = $0; if (!sub(".*\"" k "\":", "", v)) return 0; return v + 0 }
    { t = f("t"); r = f("rss_kb"); q = f("queued_bytes"); l = f("probe_lag_max_ms"); o = f("open")
      c = $0; sub(/.*"closes":\[/, "", c); sub(/\].*/, "", c)
      if (t < w || t > w + d) next
      if (first == "") first = r
      last = r; if (r > maxr) maxr = r; if (q > maxq) maxq = q; if (l > maxl) maxl = l
      if (minopen == "" || o < minopen) minopen = o
      closes = c }
    END {
      printf "In the measured window: RSS %.1f -> %.1f MiB (%+.1f%%, max %.1f MiB, %.2f KiB per connection at the end); queued bytes max %d; probe lag max %.1f ms; open connections min %d of %d; closes by code (1000/1001/1006/1011/1013/other) %s.\n",
        first / 1024, last / 1024, (first > 0 ? (last - first) * 100 / first : 0), maxr / 1024, last / n, maxq, maxl, minopen, n, closes
    }' "$TMP/samples.jsonl"
  echo
  echo "Load generator: $(jget "$lj" messages) events received in the measured window, $(jget "$lj" msg_per_s) deliveries/s, emit->receive p50 $(jget "$lj" emit_p50_us) us, p99 $(jget "$lj" emit_p99_us) us, max $(jget "$lj" emit_max_us) us; host: $(jget "$hj" events_window_per_s) events/s emitted in the window, CPU $(jget "$hj" cpu_window_s) s over $(jget "$hj" window_s) s."
  echo
}

report | tee "$TMP/report.md"
[ "$RESULTS" = /dev/null ] || { echo; cat "$TMP/report.md"; } >>"$RESULTS"
