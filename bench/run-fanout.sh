#!/usr/bin/env bash
# run-fanout.sh: the emitter fan-out benchmarks. fanout-host (a threaded
# libagentws manager that emits ~200-byte events to U users) is measured by
# agentws-load --mode fanout on the same machine, over loopback:
#
#   (a) sat    C connections over U users (connection i is user u<i % U>),
#              the host emitting as fast as the manager publishes:
#              deliveries/s (messages received, summed over connections)
#              and the host's CPU per delivered event;
#   (b) rate   the same at RATE events/s emitted (paced): emit->receive
#              latency p50/p99; also at LOW_RATE events/s (RATE events/s
#              is RATE*C/U deliveries/s; LOW_RATE*C/U is the other reading
#              of the target) and, for the shape of the curve, SWEEP_RATES;
#   (c) stall  saturation with STALL connections that stop reading after
#              their welcome: the host's VmRSS every second (max, final,
#              growth over the second half), whether the stalled ones were
#              closed with 1013 and whether the others kept receiving
#              (host: --sndbuf-kb 64 --max-queued-kb 256; STALL_SNDBUF_KB,
#              STALL_MAX_QUEUED_KB override).
#
# Each scenario runs REPS times (default 3), the order alternating between
# repetitions; medians and min-max are printed and appended as a markdown
# section to bench/RESULTS.md, with a targets table (met/missed).
#
# Environment (all optional):
#   FANOUT_HOST   host binary             (default build/bench/fanout-host)
#   AGENTWS_LOAD  load generator binary   (default build/bench/agentws-load)
#   HOST_ARGS     extra fanout-host flags, e.g. '--window 32' or '--type thinking'
#   REPS DURATION WARMUP CONNS USERS RATE LOW_RATE SWEEP_RATES STALL STALL_DURATION RESULTS
#   QUIET_WAIT    seconds to wait before each run for the rest of the machine
#                 to use under QUIET_CORES (default 30, 0.25); then it runs anyway
# If the binaries are missing or older than their sources, they are compiled
# with cc into a temporary directory (the host against build/lib).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HOST=${FANOUT_HOST:-$ROOT/build/bench/fanout-host}
LOAD=${AGENTWS_LOAD:-$ROOT/build/bench/agentws-load}
HOST_ARGS=${HOST_ARGS:-}
read -r -a HOST_ARGV <<<"$HOST_ARGS"
REPS=${REPS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-1000}
USERS=${USERS:-100}
RATE=${RATE:-20000}
LOW_RATE=${LOW_RATE:-2000}
SWEEP_RATES=${SWEEP_RATES:-5000 10000}
STALL=${STALL:-10}
STALL_DURATION=${STALL_DURATION:-10}
RESULTS=${RESULTS:-$ROOT/bench/RESULTS.md}
QUIET_WAIT=${QUIET_WAIT:-30}
QUIET_CORES=${QUIET_CORES:-0.25}
TARGET_DPS=500000 # deliveries/s
TARGET_P99_US=2000
read -r -a RATES <<<"$RATE $SWEEP_RATES $LOW_RATE"
SCENARIOS=(sat)
for r in "${RATES[@]}"; do SCENARIOS+=("r$r"); done
SCENARIOS+=(stall)

TMP=$(mktemp -d /tmp/agentws-fanout.XXXXXX)
HOST_PID=
LOAD_PID=

die() { echo "run-fanout: $*" >&2; exit 1; }

cleanup() {
  [ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null
  [ -n "$HOST_PID" ] && kill -TERM "$HOST_PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

# Both programs inherit this.
ulimit -n "$(ulimit -Hn)" || die "cannot raise the NOFILE soft limit"
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((CONNS + 64)) ] ||
  die "NOFILE limit $(ulimit -n) is below $CONNS connections"

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

build_tools() {
  local src=$ROOT/bench
  local flags=(-std=c11 -O2 -Wall -Wextra -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE)
  if [ -z "${AGENTWS_LOAD:-}" ] && stale "$LOAD" "$src"/agentws-load.c "$src"/load_conn.c \
      "$src"/load_hist.c "$src"/load.h "$src"/load_hist.h; then
    LOAD=$TMP/agentws-load
    echo "run-fanout: building $LOAD" >&2
    # shellcheck disable=SC2046
    cc "${flags[@]}" -o "$LOAD" "$src/agentws-load.c" "$src/load_conn.c" "$src/load_hist.c" \
      $(pkg-config --cflags --libs libuv libcrypto) -lwslay -lm || die "build failed"
  fi
  if [ -z "${FANOUT_HOST:-}" ] && stale "$HOST" "$src"/fanout-host.c "$ROOT"/include/agentws.h; then
    HOST=$TMP/fanout-host
    echo "run-fanout: building $HOST" >&2
    # shellcheck disable=SC2046
    cc "${flags[@]}" -I"$ROOT/include" -I"$ROOT/build/include" -o "$HOST" "$src/fanout-host.c" \
      -L"$ROOT/build/lib" -lagentws -Wl,-rpath,"$ROOT/build/lib" \
      $(pkg-config --cflags --libs libuv) -pthread || die "build failed"
  fi
  [ -x "$LOAD" ] || die "no load generator at $LOAD"
  [ -x "$HOST" ] || die "no fanout host at $HOST"
}

# The library is rebuilt while others work: run private copies of both
# programs and of the libagentws the host loads, so every run measures one build.
snapshot() {
  local lib soname
  HOST_BUILT=$(date -u -r "$HOST" '+%Y-%m-%d %H:%M UTC')
  lib=$(ldd "$HOST" 2>/dev/null | awk '/libagentws/ { print $3 }')
  mkdir -p "$TMP/snap"
  cp "$HOST" "$TMP/snap/fanout-host" || die "cannot copy $HOST"
  cp "$LOAD" "$TMP/snap/agentws-load" || die "cannot copy $LOAD"
  HOST_RUN=$TMP/snap/fanout-host
  LOAD_RUN=$TMP/snap/agentws-load
  LIB_BUILT="not found"
  if [ -n "$lib" ] && [ -f "$lib" ]; then
    soname=$(ldd "$HOST" | awk '/libagentws/ { print $1 }')
    cp -L "$lib" "$TMP/snap/$soname" || die "cannot copy $lib"
    LIB_BUILT="built $(date -u -r "$lib" '+%Y-%m-%d %H:%M UTC')"
    export LD_LIBRARY_PATH=$TMP/snap${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  fi
  "$HOST_RUN" --help 2>&1 | grep -q usage
}

# jget JSON FIELD: one numeric field of a flat JSON line (first match).
jget() { sed -n "s/.*\"$2\":\\([-0-9.e+]*\\).*/\\1/p" <<<"$1" | head -n1; }
# jarr JSON FIELD: a numeric array field, space-separated.
jarr() { sed -n "s/.*\"$2\":\\[\\([-0-9.,]*\\)\\].*/\\1/p" <<<"$1" | tr ',' ' '; }

# busy_ticks: user+nice+system+irq+softirq+steal jiffies of all CPUs.
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
CLK_TCK=$(getconf CLK_TCK)

# stats: numbers on stdin -> "median min max".
stats() {
  sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "n/a n/a n/a"; exit }
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    print m, v[1], v[NR] }'
}

declare -A R # R[key] = newline-separated samples
SAT_HJ=
NOTES=()
add() { [ -n "$2" ] && R[$1]+="$2"$'\n'; }

# start_host ARGS...: sets HOST_PID and HOST_PORT once it prints "listening on".
start_host() {
  local line
  : >"$TMP/host.out"
  "$HOST_RUN" "$@" >"$TMP/host.out" 2>>"$TMP/host.err" &
  HOST_PID=$!
  for _ in $(seq 100); do
    line=$(grep -m1 '^listening on ' "$TMP/host.out" 2>/dev/null)
    if [ -n "$line" ]; then
      HOST_PORT=${line##*:}
      return 0
    fi
    kill -0 "$HOST_PID" 2>/dev/null || break
    sleep 0.1
  done
  tail -n5 "$TMP/host.err" >&2
  die "fanout-host did not print 'listening on HOST:PORT'"
}

# wait_host SECONDS: the host ends by itself; kill it if it overstays.
wait_host() {
  local limit=$1 rc
  for _ in $(seq $((limit * 10))); do
    kill -0 "$HOST_PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$HOST_PID" 2>/dev/null; then
    kill -TERM "$HOST_PID" 2>/dev/null
    sleep 2
    kill -KILL "$HOST_PID" 2>/dev/null
    NOTES+=("fanout-host overran its run by more than ${limit} s (killed)")
  fi
  wait "$HOST_PID"
  rc=$?
  [ "$rc" -ne 0 ] && NOTES+=("fanout-host exited $rc")
  HOST_PID=
}

# wait_quiet KEY: the host has 2 CPUs shared with other work; give a burst of
# it (a build, a test suite) up to QUIET_WAIT s to pass before measuring.
wait_quiet() {
  local a b waited=0
  while [ "$waited" -lt "$QUIET_WAIT" ]; do
    a=$(busy_ticks)
    sleep 1
    b=$(busy_ticks)
    awk -v a="$a" -v b="$b" -v hz="$CLK_TCK" -v q="$QUIET_CORES" \
      'BEGIN { exit !((b - a) / hz < q) }' && return 0
    waited=$((waited + 1))
  done
  NOTES+=("$1: the machine was still busy after ${QUIET_WAIT} s of waiting; measured anyway")
}

# run_case KEY DURATION RATE STALL: one host + one load generator run.
run_case() {
  local key=$1 dur=$2 rate=$3 stall=$4 hj lj b0 b1 other hcpu deliv ccpu
  local hargs=(--port 0 --conns "$CONNS" --users "$USERS" --duration "$dur"
               --warmup "$WARMUP" --wait 60 "${HOST_ARGV[@]}")
  local largs=(--mode fanout --conns "$CONNS" --users "$USERS" --duration "$dur"
               --warmup "$WARMUP")
  [ "$rate" != 0 ] && hargs+=(--rate "$rate")
  # Stalled readers: a bounded kernel send buffer and queue bound, as a
  # production host would set, so the 1013 shows within the run instead of
  # the kernel absorbing megabytes per stalled socket.
  [ "$stall" != 0 ] && largs+=(--stall "$stall") &&
    hargs+=(--sndbuf-kb "${STALL_SNDBUF_KB:-64}" --max-queued-kb "${STALL_MAX_QUEUED_KB:-256}")
  wait_quiet "$key"
  start_host "${hargs[@]}"
  : >"$TMP/load.err1"
  "$LOAD_RUN" "${largs[@]}" --port "$HOST_PORT" >"$TMP/load.out" 2>"$TMP/load.err1" &
  LOAD_PID=$!
  # Busy CPU of the whole machine over the measured window: the window
  # starts WARMUP s after the generator has all connections open.
  b0='' b1=''
  for _ in $(seq 600); do
    grep -q 'connections open in' "$TMP/load.err1" && break
    kill -0 "$LOAD_PID" 2>/dev/null || break
    sleep 0.1
  done
  if grep -q 'connections open in' "$TMP/load.err1"; then
    sleep "$WARMUP"
    b0=$(busy_ticks)
    sleep "$dur"
    b1=$(busy_ticks)
  fi
  wait "$LOAD_PID"
  LOAD_PID=
  cat "$TMP/load.err1" >>"$TMP/load.err"
  wait_host $((${WARMUP%.*} + ${dur%.*} + 40))
  lj=$(cat "$TMP/load.out")
  hj=$(grep '^{' "$TMP/host.out" | head -n1)
  [ -n "$lj" ] || die "agentws-load printed nothing: $(tail -n3 "$TMP/load.err")"
  [ -n "$hj" ] || die "fanout-host printed no report: $(tail -n3 "$TMP/host.err")"
  echo "$lj" >>"$TMP/all.jsonl"
  echo "$hj" >>"$TMP/all.jsonl"
  [ "$key" = sat ] && SAT_HJ=$hj
  [ "$(jget "$hj" opened)" -ge "$CONNS" ] 2>/dev/null ||
    NOTES+=("$key: the host saw $(jget "$hj" opened) of $CONNS connections open")

  deliv=$(jget "$lj" messages)
  hcpu=$(jget "$hj" cpu_window_s)
  ccpu=$(jget "$lj" client_cpu)
  add "$key.dps" "$(jget "$lj" msg_per_s)"
  add "$key.eps" "$(jget "$hj" events_window_per_s)"
  add "$key.scpu" "$(awk -v c="$hcpu" -v d="$(jget "$hj" window_s)" 'BEGIN { if (d > 0) printf "%.2f", c / d }')"
  add "$key.cpu_per" "$(awk -v c="$hcpu" -v n="$deliv" 'BEGIN { if (n > 0) printf "%.3f", c / n * 1e6 }')"
  add "$key.loop_per" "$(awk -v c="$(jget "$hj" loop_cpu_window_s)" -v n="$deliv" 'BEGIN { if (n > 0) printf "%.3f", c / n * 1e6 }')"
  add "$key.emit_per" "$(awk -v c="$(jget "$hj" emit_cpu_window_s)" -v n="$(jget "$hj" events_window)" 'BEGIN { if (n > 0) printf "%.3f", c / n * 1e6 }')"
  add "$key.ccpu" "$ccpu"
  add "$key.p50" "$(jget "$lj" emit_p50_us)"
  add "$key.p99" "$(jget "$lj" emit_p99_us)"
  add "$key.max" "$(jget "$lj" emit_max_us)"
  add "$key.tsp50" "$(jget "$lj" p50_us)"
  add "$key.tsp99" "$(jget "$lj" p99_us)"
  add "$key.lag" "$(jget "$hj" loop_lag_window_max_us)"
  add "$key.err" "$(jget "$lj" errors)"
  add "$key.rssmax" "$(jget "$hj" rss_kb_max)"
  add "$key.rssfinal" "$(jget "$hj" rss_kb_final)"
  add "$key.avgbytes" "$(jget "$lj" avg_msg_bytes)"
  other=
  if [ -n "$b0" ] && [ -n "$b1" ]; then
    # Cores busy on the machine minus what the two programs reported.
    other=$(awk -v a="$b0" -v b="$b1" -v hz="$CLK_TCK" -v d="$dur" -v h="$hcpu" -v c="$ccpu" \
      'BEGIN { o = (b - a) / hz / d - h / d - c; if (o < 0) o = 0; printf "%.2f", o }')
    add "$key.other" "$other"
  fi
  if [ "$key" = stall ]; then
    local rss rssline growth
    rss=$(jarr "$hj" rss_kb)
    # Growth over the second half of the samples: max(second half) - max(first half).
    growth=$(awk '{ n = NF; h = int(n / 2); m1 = 0; m2 = 0
      for (i = 1; i <= n; i++) { if (i <= h) { if ($i > m1) m1 = $i } else if ($i > m2) m2 = $i }
      print m2 - m1 }' <<<"$rss")
    add stall.growth "$growth"
    add stall.rssstart "$(jget "$hj" rss_kb_start)"
    add stall.c1013 "$(jget "$hj" 1013)"
    add stall.cl1013 "$(jget "$lj" stalled_close_1013)"
    add stall.clother "$(jget "$lj" stalled_close_other)"
    add stall.clnone "$(jget "$lj" stalled_no_close)"
    add stall.zero "$(jget "$lj" active_zero)"
    add stall.minmsgs "$(jget "$lj" active_min_msgs)"
    add stall.errclosed "$(jget "$lj" err_closed)"
    rssline=" rss kB [$rss]"
    printf '  %-5s %8.0f deliveries/s  VmRSS max %s final %s kB, 2nd-half growth %s kB; closed 1013: host %s, stalled saw 1013 %s; active min msgs %s, zero %s%s\n' \
      "$key" "$(jget "$lj" msg_per_s)" "$(jget "$hj" rss_kb_max)" "$(jget "$hj" rss_kb_final)" \
      "$growth" "$(jget "$hj" 1013)" "$(jget "$lj" stalled_close_1013)" \
      "$(jget "$lj" active_min_msgs)" "$(jget "$lj" active_zero)" "$rssline"
  else
    printf '  %-5s %8.0f deliveries/s  %7.0f ev/s  emit->recv p50 %6.0f p99 %6.0f us (ts: %6.0f / %6.0f)  host %s cores, %s us/delivery  client %s  other %s  errors %s\n' \
      "$key" "$(jget "$lj" msg_per_s)" "$(jget "$hj" events_window_per_s)" \
      "$(jget "$lj" emit_p50_us)" "$(jget "$lj" emit_p99_us)" "$(jget "$lj" p50_us)" "$(jget "$lj" p99_us)" \
      "$(awk -v c="$hcpu" -v d="$(jget "$hj" window_s)" 'BEGIN { if (d > 0) printf "%.2f", c / d }')" \
      "$(awk -v c="$hcpu" -v n="$deliv" 'BEGIN { if (n > 0) printf "%.2f", c / n * 1e6 }')" \
      "$ccpu" "${other:-n/a}" "$(jget "$lj" errors)"
  fi
}

run_scenario() {
  case $1 in
  sat) run_case sat "$DURATION" 0 0 ;;
  r*) run_case "$1" "$DURATION" "${1#r}" 0 ;;
  stall) run_case stall "$STALL_DURATION" 0 "$STALL" ;;
  esac
}

# ---- run

build_tools
for _ in 1 2 3 4 5 6; do # a rebuild in progress leaves a short .so: wait for it
  snapshot && break
  echo "run-fanout: host snapshot does not start yet, retrying" >&2
  sleep 10
done
"$HOST_RUN" --help 2>&1 | grep -q usage || die "fanout-host does not start: $("$HOST_RUN" --help 2>&1 | head -n2)"
: >"$TMP/load.err"
: >"$TMP/host.err"
: >"$TMP/all.jsonl"
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
BUSY=$(top -bn1 -w 200 2>/dev/null | awk 'NR > 7 && $9 + 0 >= 20 { printf "%s%s (%s%% CPU)", sep, $12, $9; sep = ", " }')
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')

for rep in $(seq "$REPS"); do
  echo "repetition $rep/$REPS"
  if [ $((rep % 2)) -eq 1 ]; then
    order=("${SCENARIOS[@]}")
  else
    order=()
    for ((i = ${#SCENARIOS[@]} - 1; i >= 0; i--)); do order+=("${SCENARIOS[i]}"); done
  fi
  for s in "${order[@]}"; do
    run_scenario "$s"
  done
done

# ---- report

med() { printf '%s' "${R[$1]:-}" | stats | cut -d' ' -f1; }
row() { # row LABEL KEY FORMAT
  local s med lo hi
  s=$(printf '%s' "${R[$2]:-}" | stats)
  read -r med lo hi <<<"$s"
  if [ "$med" = n/a ]; then
    printf '| %s | n/a | n/a |\n' "$1"
  else
    printf "| %s | $3 | $3 – $3 |\n" "$1" "$med" "$lo" "$hi"
  fi
}
verdict() { # verdict AWK-EXPRESSION: met / missed (n/a when a value is missing)
  case $1 in *n/a*) echo n/a ;; *) awk "BEGIN { print ($1) ? \"met\" : \"missed\" }" ;; esac
}

FAN=$(awk -v c="$CONNS" -v u="$USERS" 'BEGIN { printf "%g", c / u }')
dps=$(med sat.dps)
p99r=$(med "r$RATE.p99")
p99rts=$(med "r$RATE.tsp99")
p99l=$(med "r$LOW_RATE.p99")
p99lts=$(med "r$LOW_RATE.tsp99")
rssmax=$(med stall.rssmax)
growth=$(med stall.growth)
c1013=$(med stall.c1013)
zero=$(printf '%s' "${R[stall.zero]:-}" | awk '{ s += $1 } END { print s + 0 }')
errclosed=$(printf '%s' "${R[stall.errclosed]:-}" | awk '{ s += $1 } END { print s + 0 }')
errs=$(for s in "${SCENARIOS[@]}"; do printf '%s' "${R[$s.err]:-}"; done | awk '{ s += $1 } END { print s + 0 }')
rss_bound=$(awk -v g="$growth" -v m="$rssmax" 'BEGIN { lim = m * 0.02; if (lim < 1024) lim = 1024; print g + 0 <= lim }')

{
  echo
  echo "## Fan-out run, $STARTED"
  echo
  echo "Machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)," \
       "kernel $(uname -r); load average at start $LOADAVG; NOFILE limit $(ulimit -n)."
  echo "Busy processes at start: ${BUSY:-none}."
  echo "Host: bench/fanout-host built $HOST_BUILT; libagentws $LIB_BUILT (both copied before the first run, with agentws-load)."
  echo "Each value: median of $REPS runs, min – max; scenarios alternate order between repetitions."
  echo "$CONNS connections over $USERS users ($FAN connections per user, so each event is $FAN deliveries)," \
       "custom events of ~$(printf "%.0f" "$(med sat.avgbytes)") bytes, threaded manager (dev_insecure, ping off, default max_queued_bytes)."
  echo "Saturation: $(jget "$SAT_HJ" threads) emitting thread(s), each with at most $(jget "$SAT_HJ" window) x $(jget "$SAT_HJ" batch)" \
       "events queued in emit (fanout-host waits for markers posted with agentws_manager_post, since emit itself never refuses;" \
       "--window 0 would emit unbounded)."
  echo "Latency: emit->receive from the event data's \"emit_us\" (wall clock, us, taken just before emit) to the read that" \
       "delivered it; the \"ts\" column uses the envelope's ms \"ts\", which is truncated and so overstates by up to 1 ms."
  echo "\"other\" is the CPU the rest of the machine used in the window (/proc/stat minus the two programs)."
  echo
  echo "Commands (PORT is the port the host printed; R in ${RATES[*]}):"
  echo
  echo '```'
  echo "fanout-host --port 0 --conns $CONNS --users $USERS --duration $DURATION --warmup $WARMUP --wait 60${HOST_ARGS:+ $HOST_ARGS}                  # (a)"
  echo "fanout-host --port 0 --conns $CONNS --users $USERS --duration $DURATION --warmup $WARMUP --wait 60${HOST_ARGS:+ $HOST_ARGS} --rate R         # (b)"
  echo "fanout-host --port 0 --conns $CONNS --users $USERS --duration $STALL_DURATION --warmup $WARMUP --wait 60${HOST_ARGS:+ $HOST_ARGS}                 # (c)"
  echo "agentws-load --mode fanout --port PORT --conns $CONNS --users $USERS --duration $DURATION --warmup $WARMUP                      # (a), (b)"
  echo "agentws-load --mode fanout --port PORT --conns $CONNS --users $USERS --duration $STALL_DURATION --warmup $WARMUP --stall $STALL            # (c)"
  echo '```'
  echo
  echo "| target | measured (median) | verdict |"
  echo "|---|---:|---|"
  echo "| (a) deliveries/s >= $TARGET_DPS, saturation | $(printf '%.0f' "$dps") | $(verdict "$dps >= $TARGET_DPS") |"
  echo "| (b) p99 emit->receive < 2 ms at $RATE events/s emitted ($(awk -v r="$RATE" -v f="$FAN" 'BEGIN { printf "%.0f", r * f }') deliveries/s) | $(printf '%.0f' "$p99r") us (ts: $(printf '%.0f' "$p99rts") us) | $(verdict "$p99r < $TARGET_P99_US") |"
  echo "| (b) p99 emit->receive < 2 ms at $LOW_RATE events/s emitted ($(awk -v r="$LOW_RATE" -v f="$FAN" 'BEGIN { printf "%.0f", r * f }') deliveries/s) | $(printf '%.0f' "$p99l") us (ts: $(printf '%.0f' "$p99lts") us) | $(verdict "$p99l < $TARGET_P99_US") |"
  echo "| (c) RSS bounded with $STALL stalled connections (growth over the 2nd half <= max(1 MiB, 2%)) | max $(printf '%.0f' "$rssmax") kB, growth $(printf '%.0f' "$growth") kB | $(verdict "$rss_bound") |"
  echo "| (c) stalled connections closed with 1013 (host on_close) | $(printf '%.0f' "$c1013") of $STALL | $(verdict "$c1013 >= $STALL") |"
  echo "| (c) the other connections kept receiving (none without messages, none closed by the server) | without messages $zero, closed $errclosed (all runs) | $(verdict "$zero == 0 && $errclosed == 0") |"
  echo
  echo "| measurement | median | min – max |"
  echo "|---|---:|---:|"
  row "(a) deliveries/s, saturation" sat.dps '%.0f'
  row "(a) events/s emitted, saturation" sat.eps '%.0f'
  row "(a) host CPU (cores: loop + emitting thread)" sat.scpu '%.2f'
  row "(a) host CPU per delivered event (us)" sat.cpu_per '%.2f'
  row "(a) loop thread CPU per delivered event (us)" sat.loop_per '%.2f'
  row "(a) emitting thread CPU per emitted event (us)" sat.emit_per '%.2f'
  row "(a) load generator CPU (cores)" sat.ccpu '%.2f'
  row "(a) other CPU on the machine (cores)" sat.other '%.2f'
  row "(a) p50 emit->receive at saturation (us)" sat.p50 '%.0f'
  row "(a) p99 emit->receive at saturation (us)" sat.p99 '%.0f'
  row "(a) host VmRSS max (kB)" sat.rssmax '%.0f'
  for r in "${RATES[@]}"; do
    k=r$r
    row "(b) deliveries/s at $r events/s emitted" "$k.dps" '%.0f'
    row "(b) p50 emit->receive at $r events/s (us)" "$k.p50" '%.0f'
    row "(b) p99 emit->receive at $r events/s (us)" "$k.p99" '%.0f'
    row "(b) max emit->receive at $r events/s (us)" "$k.max" '%.0f'
    row "(b) p99 from ms \"ts\" at $r events/s (us)" "$k.tsp99" '%.0f'
    row "(b) host CPU (cores) at $r events/s" "$k.scpu" '%.2f'
    row "(b) host CPU per delivered event (us) at $r events/s" "$k.cpu_per" '%.2f'
    row "(b) longest loop-thread delay of a no-op post in the window (us) at $r events/s" "$k.lag" '%.0f'
    row "(b) load generator CPU (cores) at $r events/s" "$k.ccpu" '%.2f'
    row "(b) other CPU on the machine (cores) at $r events/s" "$k.other" '%.2f'
  done
  row "(c) deliveries/s with $STALL stalled" stall.dps '%.0f'
  row "(c) host VmRSS at the start of emitting (kB)" stall.rssstart '%.0f'
  row "(c) host VmRSS max (kB)" stall.rssmax '%.0f'
  row "(c) host VmRSS final, after the linger (kB)" stall.rssfinal '%.0f'
  row "(c) VmRSS growth over the second half (kB)" stall.growth '%.0f'
  row "(c) connections closed with 1013 (host on_close)" stall.c1013 '%.0f'
  row "(c) stalled connections that read a 1013 close frame" stall.cl1013 '%.0f'
  row "(c) stalled connections that read another close code at the drain" stall.clother '%.0f'
  row "(c) fewest messages on one non-stalled connection" stall.minmsgs '%.0f'
  row "(c) other CPU on the machine (cores)" stall.other '%.2f'
  echo
  echo "Errors counted by the load generator over all runs: $errs."
  for n in "${NOTES[@]}"; do echo "Note: $n."; done | sort | uniq -c | sed 's/^ *\([0-9]*\) \(.*\)/\2 (x\1)/'
  echo
  echo "<details><summary>agentws-load and fanout-host output, one JSON line each per run</summary>"
  echo
  echo '```'
  cat "$TMP/all.jsonl"
  echo '```'
  echo "</details>"
} >"$TMP/section.md"

cat "$TMP/section.md"
cat "$TMP/section.md" >>"$RESULTS"
echo "run-fanout: appended to $RESULTS" >&2
if grep -qv -e 'connections open in' -e 'holding' "$TMP/load.err"; then
  echo "run-fanout: agentws-load stderr:" >&2
  grep -v -e 'connections open in' -e 'holding' "$TMP/load.err" | sort | uniq -c | head -n 20 >&2
fi
if grep -qv -e 'connections open, emitting' "$TMP/host.err"; then
  echo "run-fanout: fanout-host stderr:" >&2
  grep -v -e 'connections open, emitting' "$TMP/host.err" | sort | uniq -c | head -n 20 >&2
fi
