#!/usr/bin/env bash
# run-python.sh: Python on libagentws, measured in one run:
#
#   (a) emit   events/s one and eight Python threads emit through the
#              binding (bench/python/emit_rate.py: custom events with JSON
#              text, with a dict, and agent_thinking deltas), no clients;
#   (b) fanout deliveries/s with CONNS connections over USERS users (the
#              C load generator, agentws-load --mode fanout), served by a
#              Python host on libagentws (agentws_host.py; at most 4096
#              events queued ahead of the library, and again with 512, the
#              C fanout-host's bound) and by a pure Python websockets
#              server (pure_server.py), in alternating order, same events
#              (~200-byte custom events, one JSON text frame each,
#              per-user seq).
#
# REPS repetitions (default 3); medians and min-max; the target is the
# libagentws host delivering >= 10x the pure server (per-repetition ratios,
# median). Prints a markdown section and appends it to RESULTS (default
# bench/RESULTS.md); raw JSON lines go in a collapsed block.
#
# Environment (all optional): AGENTWS_BUILD (build-py, a release build:
# meson setup build-py -Dbuildtype=release), REPS DURATION WARMUP CONNS
# USERS EMIT_EVENTS RESULTS QUIET_WAIT, PYTHON (/usr/bin/python3).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/bench/python
BUILD=${AGENTWS_BUILD:-$ROOT/build-py}
PY=${PYTHON:-/usr/bin/python3}
REPS=${REPS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-1000}
USERS=${USERS:-100}
EMIT_EVENTS=${EMIT_EVENTS:-200000}
RESULTS=${RESULTS:-$ROOT/bench/RESULTS.md}
LOAD=$BUILD/bench/agentws-load
export AGENTWS_LIBRARY=$BUILD/lib/libagentws.so.0

TMP=$(mktemp -d /tmp/agentws-python.XXXXXX)
SERVER_PID=
cleanup() {
  [ -n "$SERVER_PID" ] && kill -TERM "$SERVER_PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
die() { echo "run-python: $*" >&2; exit 1; }

[ -x "$LOAD" ] || die "no load generator at $LOAD (ninja -C $BUILD)"
[ -f "$AGENTWS_LIBRARY" ] || die "no library at $AGENTWS_LIBRARY"
"$PY" -c 'import websockets' 2>/dev/null || die "python3-websockets missing"
ulimit -n "$(ulimit -Hn)" || die "cannot raise the NOFILE soft limit"

# fanout NAME SCRIPT [ARGS...]: one server + one load generator run;
# appends both JSON lines (tagged with the run's name) to all.jsonl.
fanout() {
  local name=$1 script=$2 port line
  shift 2
  : >"$TMP/server.out"
  "$PY" "$HERE/$script" --conns "$CONNS" --users "$USERS" \
    --duration "$DURATION" --warmup "$WARMUP" "$@" \
    >"$TMP/server.out" 2>>"$TMP/server.err" &
  SERVER_PID=$!
  for _ in $(seq 100); do
    line=$(grep -m1 '^listening on ' "$TMP/server.out")
    [ -n "$line" ] && break
    sleep 0.1
  done
  [ -n "$line" ] || die "$script did not print 'listening on HOST:PORT'"
  port=${line##*:}
  timeout 120 "$LOAD" --mode fanout --port "$port" --conns "$CONNS" \
    --users "$USERS" --duration "$DURATION" --warmup "$WARMUP" \
    >"$TMP/load.out" 2>>"$TMP/load.err"
  timeout 60 tail --pid="$SERVER_PID" -f /dev/null || kill -KILL "$SERVER_PID"
  wait "$SERVER_PID"
  SERVER_PID=
  printf '{"run":"%s","load":%s,"server":%s}\n' "$name" "$(cat "$TMP/load.out")" \
    "$(grep '^{' "$TMP/server.out")" >>"$TMP/all.jsonl"
  "$PY" "$HERE/summarize.py" --progress "$(tail -n1 "$TMP/all.jsonl")"
}

emit() {
  local kind=$1 threads=$2
  "$PY" "$HERE/emit_rate.py" --kind "$kind" --threads "$threads" \
    --events "$EMIT_EVENTS" 2>>"$TMP/server.err" |
    sed 's/^{/{"run":"emit",/' >>"$TMP/all.jsonl"
  "$PY" "$HERE/summarize.py" --progress "$(tail -n1 "$TMP/all.jsonl")"
}

# wait_quiet: the 2 CPUs are shared with other work; give a burst of it
# (a build, a test suite) up to QUIET_WAIT s to pass before measuring.
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
wait_quiet() {
  local a b
  for _ in $(seq "${QUIET_WAIT:-30}"); do
    a=$(busy_ticks)
    sleep 1
    b=$(busy_ticks)
    [ $(((b - a) * 100 / $(getconf CLK_TCK))) -lt 25 ] && return 0
  done
  echo "run-python: the machine is still busy; measuring anyway" >&2
}

START=$(date -u '+%Y-%m-%d %H:%M UTC')
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
for rep in $(seq "$REPS"); do
  echo "repetition $rep/$REPS" >&2
  if [ $((rep % 2)) -eq 1 ]; then order="agentws pure w512"; else order="w512 pure agentws"; fi
  for s in $order; do
    wait_quiet
    case $s in
    agentws) fanout agentws-python agentws_host.py ;;
    w512) fanout agentws-python-w512 agentws_host.py --window 512 ;;
    pure) fanout pure-python pure_server.py ;;
    esac
  done
  wait_quiet
  for kind in custom custom-dict thinking; do
    for threads in 1 8; do emit "$kind" "$threads"; done
  done
done

"$PY" "$HERE/summarize.py" "$TMP/all.jsonl" "$START" "$LOADAVG" "$BUILD" \
  "$CONNS" "$USERS" "$DURATION" "$WARMUP" "$REPS" "$EMIT_EVENTS" | tee -a "$RESULTS"
