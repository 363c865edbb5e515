#!/usr/bin/env bash
# run-foundation.sh: the foundation benchmarks, agentws-demo (echo mode)
# side by side with a raw TCP echo server, measured by the same tool in
# the same run.
#
#   - echo round trips/s at 1, 100 and 1,000 connections (pipeline 16,
#     64-byte text messages), demo and raw TCP alternating, and the
#     raw/demo ratio at 100 connections (the target is <= 1.5);
#   - server RSS per idle connection at 10,000 connections, from
#     /proc/PID/status VmRSS before and while the connections are held;
#   - the time to open those 10,000 connections (upgrade completed).
#
# Each measurement runs REPS times (default 3); medians and min-max are
# printed and appended as a markdown section to bench/RESULTS.md.
#
# Environment (all optional):
#   AGENTWS_DEMO  demo server binary      (default build/examples/agentws-demo)
#   AGENTWS_LOAD  load generator binary   (default build/bench/agentws-load)
#   RAW_ECHO      raw echo server binary  (default build/bench/raw-echo)
#   DEMO_ARGS     extra demo flags, e.g. --dev-insecure
#   REPS DURATION WARMUP PIPELINE SIZE IDLE_CONNS HOLD RESULTS
# If the bench binaries are missing or older than their sources, they are
# compiled with cc into a temporary directory.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEMO=${AGENTWS_DEMO:-$ROOT/build/examples/agentws-demo}
LOAD=${AGENTWS_LOAD:-$ROOT/build/bench/agentws-load}
RAW=${RAW_ECHO:-$ROOT/build/bench/raw-echo}
DEMO_ARGS=${DEMO_ARGS:-}
read -r -a DEMO_ARGV <<<"$DEMO_ARGS"
REPS=${REPS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
PIPELINE=${PIPELINE:-16}
SIZE=${SIZE:-64}
IDLE_CONNS=${IDLE_CONNS:-10000}
HOLD=${HOLD:-5}
RESULTS=${RESULTS:-$ROOT/bench/RESULTS.md}
QUERY='user=u%d' # each connection its own user, clear of per-user limits
ECHO_CONNS=(1 100 1000)

TMP=$(mktemp -d /tmp/agentws-bench.XXXXXX)
SRV_PID=
LOAD_PID=

die() { echo "run-foundation: $*" >&2; exit 1; }

cleanup() {
  [ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null
  [ -n "$SRV_PID" ] && kill -TERM "$SRV_PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

# Both the servers and the load generator inherit this.
ulimit -n "$(ulimit -Hn)" || die "cannot raise the NOFILE soft limit"

# stale BINARY SOURCES...: true if the binary is missing or older than a source.
stale() {
  local bin=$1 f
  shift
  [ -x "$bin" ] || return 0
  for f in "$@"; do
    [ "$f" -nt "$bin" ] && return 0
  done
  return 1
}

# Use the meson-built tools when current; otherwise compile them here, so a
# stale build directory never measures old code.
build_tools() {
  local src=$ROOT/bench
  local flags=(-std=c11 -O2 -Wall -Wextra)
  if [ -z "${AGENTWS_LOAD:-}" ] && stale "$LOAD" "$src"/agentws-load.c "$src"/load_conn.c \
      "$src"/load_hist.c "$src"/load.h "$src"/load_hist.h; then
    LOAD=$TMP/agentws-load
    echo "run-foundation: building $LOAD" >&2
    # shellcheck disable=SC2046
    cc "${flags[@]}" -o "$LOAD" "$src/agentws-load.c" "$src/load_conn.c" "$src/load_hist.c" \
      $(pkg-config --cflags --libs libuv libcrypto) -lwslay -lm || die "build failed"
  fi
  if [ -z "${RAW_ECHO:-}" ] && stale "$RAW" "$src"/raw-echo.c; then
    RAW=$TMP/raw-echo
    echo "run-foundation: building $RAW" >&2
    # shellcheck disable=SC2046
    cc "${flags[@]}" -o "$RAW" "$src/raw-echo.c" $(pkg-config --cflags --libs libuv) || die "build failed"
  fi
  [ -x "$LOAD" ] || die "no load generator at $LOAD"
  [ -x "$RAW" ] || die "no raw echo server at $RAW"
}

# The library is rebuilt while others work: run a private copy of the demo
# and of the libagentws it loads, so every repetition measures one build.
snapshot_demo() {
  local lib soname
  DEMO_BUILT=$(date -u -r "$DEMO" '+%Y-%m-%d %H:%M UTC')
  lib=$(ldd "$DEMO" 2>/dev/null | awk '/libagentws/ { print $3 }')
  mkdir -p "$TMP/snap"
  cp "$DEMO" "$TMP/snap/" || die "cannot copy $DEMO"
  DEMO_RUN=$TMP/snap/$(basename "$DEMO")
  LIB_BUILT="statically linked or not found"
  if [ -n "$lib" ] && [ -f "$lib" ]; then
    soname=$(ldd "$DEMO" | awk '/libagentws/ { print $1 }')
    cp -L "$lib" "$TMP/snap/$soname" || die "cannot copy $lib"
    LIB_BUILT="built $(date -u -r "$lib" '+%Y-%m-%d %H:%M UTC')"
    export LD_LIBRARY_PATH=$TMP/snap${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  fi
  "$DEMO_RUN" --help 2>&1 | grep -q usage
}

# start_server NAME CMD...: sets SRV_PID and SRV_PORT once it prints "listening on".
start_server() {
  local name=$1 line
  shift
  : >"$TMP/$name.out"
  "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
  SRV_PID=$!
  for _ in $(seq 150); do
    line=$(grep -m1 '^listening on ' "$TMP/$name.out" 2>/dev/null)
    if [ -n "$line" ]; then
      SRV_PORT=${line##*:}
      return 0
    fi
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$TMP/$name.err" >&2
  die "$name did not print 'listening on HOST:PORT'"
}

# stop_server NAME: SIGTERM, wait up to 10 s, record a non-zero exit.
stop_server() {
  local name=$1 rc
  kill -TERM "$SRV_PID" 2>/dev/null
  for _ in $(seq 100); do
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$SRV_PID" 2>/dev/null; then
    kill -KILL "$SRV_PID" 2>/dev/null
    NOTES+=("$name did not exit within 10 s of SIGTERM (killed)")
  fi
  wait "$SRV_PID"
  rc=$?
  if [ "$rc" -ne 0 ]; then
    NOTES+=("$name exited $rc after SIGTERM (expected 0)")
  fi
  SRV_PID=
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# cpu_ticks PID: user+system clock ticks (fields 14 and 15 of /proc/PID/stat,
# counted after the ")" that ends the command name).
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
CLK_TCK=$(getconf CLK_TCK)

# jget JSON FIELD: one numeric field of agentws-load's flat JSON line.
jget() { sed -n "s/.*\"$2\":\\([-0-9.e+]*\\).*/\\1/p" <<<"$1"; }

# load ARGS...: run agentws-load, echo its JSON line, keep it for the report.
load() {
  local out
  out=$("$LOAD" "$@" 2>>"$TMP/load.err")
  [ -n "$out" ] && echo "$out" >>"$TMP/all.jsonl"
  echo "$out"
}

# stats: numbers on stdin -> "median min max".
stats() {
  sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "n/a n/a n/a"; exit }
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    print m, v[1], v[NR] }'
}

declare -A R    # R[key] = newline-separated samples
declare -A LAST    # LAST[target.conns] = this repetition's rt/s
declare -A LASTCPU # LASTCPU[target.conns] = this repetition's server CPU us per round trip
NOTES=()
add() { R[$1]+="$2"$'\n'; }

echo_run() { # echo_run TARGET(demo|raw) PORT
  local target=$1 port=$2 c j args t0 t1 c0 c1 scpu
  for c in "${ECHO_CONNS[@]}"; do
    args=(--mode echo --port "$port" --conns "$c" --pipeline "$PIPELINE" --size "$SIZE"
          --duration "$DURATION" --warmup "$WARMUP")
    if [ "$target" = raw ]; then
      args+=(--raw)
    else
      args+=(--query "$QUERY")
    fi
    t0=$(date +%s.%N)
    c0=$(cpu_ticks "$SRV_PID")
    j=$(load "${args[@]}")
    [ -n "$j" ] || die "agentws-load printed nothing: $(tail -n3 "$TMP/load.err")"
    c1=$(cpu_ticks "$SRV_PID")
    t1=$(date +%s.%N)
    # Cores the server kept busy over the whole load run (connect + warmup + window).
    scpu=$(awk -v a="$c0" -v b="$c1" -v s="$t0" -v e="$t1" -v hz="$CLK_TCK" \
      'BEGIN { printf "%.2f", (b - a) / hz / (e - s) }')
    add "scpu.$target.$c" "$scpu"
    # Server CPU time per round trip: less sensitive than rt/s to other load on the host.
    LASTCPU[$target.$c]=$(awk -v c="$scpu" -v r="$(jget "$j" rt_per_s)" \
      'BEGIN { if (r > 0) printf "%.3f", c / r * 1e6; else print "nan" }')
    add "cpurt.$target.$c" "${LASTCPU[$target.$c]}"
    add "ccpu.$target.$c" "$(jget "$j" client_cpu)"
    add "rt.$target.$c" "$(jget "$j" rt_per_s)"
    LAST[$target.$c]=$(jget "$j" rt_per_s)
    add "p99.$target.$c" "$(jget "$j" p99_us)"
    add "err.$target" "$(jget "$j" errors)"
    printf '  %-4s %5d conns: %10.0f rt/s  p50 %8.1f us  p99 %8.1f us  cpu server %s client %s  errors %s\n' \
      "$target" "$c" "$(jget "$j" rt_per_s)" "$(jget "$j" p50_us)" "$(jget "$j" p99_us)" \
      "$scpu" "$(jget "$j" client_cpu)" "$(jget "$j" errors)"
  done
}

idle_run() {
  local before after j rc
  start_server demo "$DEMO_RUN" --mode echo --port 0 "${DEMO_ARGV[@]}"
  sleep 0.5
  before=$(rss_kb "$SRV_PID")
  : >"$TMP/idle.err"
  "$LOAD" --mode connect --port "$SRV_PORT" --conns "$IDLE_CONNS" --hold "$HOLD" \
    --query "$QUERY" >"$TMP/idle.json" 2>"$TMP/idle.err" &
  LOAD_PID=$!
  for _ in $(seq 1200); do # up to 120 s to open them all
    grep -q 'holding' "$TMP/idle.err" && break
    kill -0 "$LOAD_PID" 2>/dev/null || break
    sleep 0.1
  done
  sleep 1 # let the server finish its per-connection work (welcome, timers)
  after=$(rss_kb "$SRV_PID")
  wait "$LOAD_PID"
  rc=$?
  LOAD_PID=
  j=$(cat "$TMP/idle.json")
  [ -n "$j" ] || die "connect run printed nothing (rc $rc): $(cat "$TMP/idle.err")"
  echo "$j" >>"$TMP/all.jsonl"
  stop_server demo
  add "rss.before" "$before"
  add "rss.after" "$after"
  add "rss.per_conn" "$(awk -v a="$after" -v b="$before" -v n="$(jget "$j" open)" \
    'BEGIN { if (n > 0) printf "%.0f", (a - b) * 1024 / n; else print "nan" }')"
  add "open_ms" "$(jget "$j" open_ms)"
  add "open_conns" "$(jget "$j" open)"
  add "err.idle" "$(jget "$j" errors)"
  printf '  idle %d conns: opened %s in %s ms, VmRSS %s -> %s kB, errors %s\n' "$IDLE_CONNS" \
    "$(jget "$j" open)" "$(jget "$j" open_ms)" "$before" "$after" "$(jget "$j" errors)"
}

# ---- run

build_tools
[ -x "$DEMO" ] || die "demo server not found at $DEMO (set AGENTWS_DEMO)"
for _ in 1 2 3 4 5 6; do # a rebuild in progress leaves a short .so: wait for it
  snapshot_demo && break
  echo "run-foundation: demo snapshot does not start yet, retrying" >&2
  sleep 10
done
"$DEMO_RUN" --help 2>&1 | grep -q usage || die "the demo does not start: $("$DEMO_RUN" --help 2>&1 | head -n2)"
: >"$TMP/load.err"
: >"$TMP/all.jsonl"
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
# Other tenants of a 2-CPU host move rt/s a lot; name the busy ones.
BUSY=$(top -bn1 -w 200 2>/dev/null | awk 'NR > 7 && $9 + 0 >= 20 { printf "%s%s (%s%% CPU)", sep, $12, $9; sep = ", " }')
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')

for rep in $(seq "$REPS"); do
  echo "repetition $rep/$REPS"
  # Alternate which server goes first so slow drift does not favour one.
  if [ $((rep % 2)) -eq 1 ]; then order=(demo raw); else order=(raw demo); fi
  for t in "${order[@]}"; do
    if [ "$t" = demo ]; then
      start_server demo "$DEMO_RUN" --mode echo --port 0 "${DEMO_ARGV[@]}"
    else
      start_server raw "$RAW" --port 0
    fi
    echo_run "$t" "$SRV_PORT"
    stop_server "$t"
  done
  # Paired ratio: raw and demo measured seconds apart, in the same repetition.
  add ratio.100 "$(awk -v r="${LAST[raw.100]}" -v d="${LAST[demo.100]}" \
    'BEGIN { if (d > 0) printf "%.3f", r / d; else print "inf" }')"
  add cpuratio.100 "$(awk -v d="${LASTCPU[demo.100]}" -v r="${LASTCPU[raw.100]}" \
    'BEGIN { if (r > 0) printf "%.3f", d / r; else print "inf" }')"
  idle_run
done

# ---- report

row() { # row LABEL KEY FORMAT
  local s
  s=$(printf '%s' "${R[$2]:-}" | stats)
  read -r med lo hi <<<"$s"
  if [ "$med" = n/a ]; then
    printf '| %s | n/a | n/a |\n' "$1"
  else
    printf "| %s | $3 | $3 – $3 |\n" "$1" "$med" "$lo" "$hi"
  fi
}

read -r ratio_med _ _ <<<"$(printf '%s' "${R[ratio.100]}" | stats)"
verdict=$(awk -v r="$ratio_med" 'BEGIN { print (r <= 1.5) ? "meets" : "misses" }')
errs=$(printf '%s' "${R[err.demo]}${R[err.raw]}${R[err.idle]}" | awk '{ s += $1 } END { print s + 0 }')

{
  echo
  echo "## Foundation run, $STARTED"
  echo
  echo "Machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)," \
       "kernel $(uname -r); load average at start $LOADAVG; NOFILE limit $(ulimit -n)."
  echo "Busy processes at start: ${BUSY:-none}."
  echo "Demo: ${DEMO#"$ROOT"/}, built $DEMO_BUILT; libagentws $LIB_BUILT (both copied before the first run)."
  echo "Each value: median of $REPS runs, min – max. Demo and raw TCP runs alternate within each repetition."
  echo
  echo "Commands (PORT is the port the server printed; C in ${ECHO_CONNS[*]}):"
  echo
  echo '```'
  echo "$(basename "$DEMO") --mode echo --port 0${DEMO_ARGS:+ $DEMO_ARGS}"
  echo "raw-echo --port 0"
  echo "agentws-load --mode echo --port PORT --conns C --pipeline $PIPELINE --size $SIZE --duration $DURATION --warmup $WARMUP --query '$QUERY'"
  echo "agentws-load --mode echo --raw --port PORT --conns C --pipeline $PIPELINE --size $SIZE --duration $DURATION --warmup $WARMUP"
  echo "agentws-load --mode connect --port PORT --conns $IDLE_CONNS --hold $HOLD --query '$QUERY'"
  echo '```'
  echo
  echo "| measurement | median | min – max |"
  echo "|---|---:|---:|"
  for c in "${ECHO_CONNS[@]}"; do
    row "echo round trips/s, $c conn(s), demo" "rt.demo.$c" '%.0f'
    row "echo round trips/s, $c conn(s), raw TCP" "rt.raw.$c" '%.0f'
  done
  for c in "${ECHO_CONNS[@]}"; do
    row "p99 round trip (us), $c conn(s), demo" "p99.demo.$c" '%.0f'
    row "p99 round trip (us), $c conn(s), raw TCP" "p99.raw.$c" '%.0f'
  done
  row "server CPU (cores), 100 conns, demo" scpu.demo.100 '%.2f'
  row "server CPU (cores), 100 conns, raw TCP" scpu.raw.100 '%.2f'
  row "server CPU per round trip (us), 100 conns, demo" cpurt.demo.100 '%.2f'
  row "server CPU per round trip (us), 100 conns, raw TCP" cpurt.raw.100 '%.2f'
  row "server CPU per round trip, demo / raw TCP, 100 conns" cpuratio.100 '%.2f'
  row "load generator CPU (cores), 100 conns, demo" ccpu.demo.100 '%.2f'
  row "load generator CPU (cores), 100 conns, raw TCP" ccpu.raw.100 '%.2f'
  row "raw TCP / demo throughput, 100 conns x pipeline $PIPELINE (target <= 1.5)" ratio.100 '%.2f'
  row "demo RSS per idle connection at $IDLE_CONNS (bytes)" rss.per_conn '%.0f'
  row "demo VmRSS before (kB)" rss.before '%.0f'
  row "demo VmRSS with $IDLE_CONNS idle (kB)" rss.after '%.0f'
  row "time to open $IDLE_CONNS connections (ms)" open_ms '%.1f'
  row "connections open at the hold" open_conns '%.0f'
  echo
  echo "Raw/demo ratio at 100 connections: median $ratio_med, which $verdict the 1.5x target." \
       "Errors counted by the load generator over all runs: $errs."
  read -r ccpu_raw _ _ <<<"$(printf '%s' "${R[ccpu.raw.100]}" | stats)"
  if awk -v c="$ccpu_raw" 'BEGIN { exit !(c >= 0.9) }'; then
    echo "The load generator used $ccpu_raw of a core in the raw TCP runs at 100 connections, so raw rt/s" \
         "there is a lower bound and the raw/demo ratio understates the gap; server CPU per round trip does not depend on it."
  fi
  for n in "${NOTES[@]}"; do echo "Note: $n."; done | sort | uniq -c | sed 's/^ *\([0-9]*\) \(.*\)/\2 (x\1)/'
  echo
  echo "<details><summary>agentws-load output, one JSON line per run</summary>"
  echo
  echo '```'
  cat "$TMP/all.jsonl"
  echo '```'
  echo "</details>"
} >"$TMP/section.md"

cat "$TMP/section.md"
cat "$TMP/section.md" >>"$RESULTS"
echo "run-foundation: appended to $RESULTS" >&2
if [ -s "$TMP/load.err" ] && grep -qv -e 'connections open in' -e 'holding' "$TMP/load.err"; then
  echo "run-foundation: agentws-load stderr:" >&2
  grep -v -e 'connections open in' -e 'holding' "$TMP/load.err" >&2
fi
