#!/usr/bin/env bash
# run-peers.sh: libagentws side by side with its peers, libwebsockets
# (bench/peers/lws-server.c), Node ws (bench/peers/ws-server.mjs) and
# Python websockets (bench/peers/py-server.py), each measured by
# agentws-load on this machine over loopback, in the same run:
#
#   fanout  CONNS connections, each its own user stream, at full speed:
#           deliveries/s (lws/ws/py --mode fanout; fanout-host --users CONNS)
#   room    one stream to CONNS connections at full speed: deliveries/s
#           (lws/ws/py --mode room; fanout-host --users 1 --room all: every
#           connection joins room "all", every event is a room event)
#   paced   one event to CONNS connections every INTERVAL_MS: p50/p99
#           emit->receive (lws/ws/py --mode paced; fanout-host --users 1
#           --room all --rate 1000/INTERVAL_MS)
#   echo    ECHO_CONNS x PIPELINES x SIZES, round trips/s (lws/ws/py
#           --mode echo; agentws-demo --mode echo)
#   connect 10,000 handshakes (dev mode and HS256 for libagentws) and RSS
#           per idle connection at 10,000 and 19,000: bench/run-connect.sh,
#           run after the other scenarios with the same REPS, SERVERS
#           (py is its "python", libagentws its agentws-dev and
#           agentws-hs256), BUILD and RESULTS; it appends its own section
#           ("memory" is another name for it)
#
# Every run is one fresh server process and one agentws-load. Within a
# repetition each case runs on every server in turn, the order reversed
# every other repetition. Per run: the server's CPU over the measured
# window (/proc/PID/stat utime+stime), the load generator's client_cpu
# (near 1.0: the generator, not the server, set the pace) and the CPU the
# rest of the machine used meanwhile ("other", /proc/stat minus both).
# Prints one Markdown table per scenario (median, min - max, ratio to lws
# paired within each repetition) and the raw JSON lines, and appends the
# same section to RESULTS (default bench/RESULTS.md; RESULTS=/dev/null to
# write nothing) and draws the medians as ratios to lws into CHART
# (bench/chart.py; default bench/peers.svg, CHART= for none). JSONL=path:
# the raw lines, to merge with other runs.
#
# Environment (all optional):
#   REPS (3) DURATION (5) WARMUP (1) CONNS (1000) INTERVAL_MS (10)
#   ECHO_CONNS ("100 1000") PIPELINES ("1 16") SIZES ("64 512")
#   SCENARIOS ("fanout room paced echo connect") SERVERS ("lws ws py libagentws")
#   CONNECT_REPS, CONNECT_CONNS  repetitions and connections of the connect
#                 scenario (default REPS, 10000; MEM_CONNS, HOLD ... as run-connect.sh)
#   BUILD         release build dir (default build-peers; set up and built
#                 here with meson/ninja when needed, SKIP_BUILD=1 to not)
#   NODE          node binary (default node); npm deps via bench/peers/setup.sh
#   PYTHON        python for py-server.py (default /usr/bin/python3, which
#                 has Debian's python3-websockets; a pyenv python may not)
#   HOST_ARGS     extra fanout-host flags (e.g. '--validation warn')
#   FANOUT_ARGS   fanout-host flags of the fanout scenario only (default
#                 '--window 64 --backlog-events 64': at most 4,096 events in
#                 flight, so a connection has several per loop turn to
#                 write at once; a 64-event backlog per user is full within
#                 the warm-up, so the run measures the steady state, not
#                 1,000 backlogs of 1,000 events each being filled)
#   QUIET_WAIT    seconds to wait before each run for the rest of the machine
#                 to use under QUIET_CORES (default 30, 0.25); then it runs anyway
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-peers}
NODE=${NODE:-node}
PYTHON=${PYTHON:-/usr/bin/python3}
REPS=${REPS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-1000}
INTERVAL_MS=${INTERVAL_MS:-10}
read -r -a ECHO_CONNS <<<"${ECHO_CONNS:-100 1000}"
read -r -a PIPELINES <<<"${PIPELINES:-1 16}"
read -r -a SIZES <<<"${SIZES:-64 512}"
read -r -a SCEN <<<"${SCENARIOS:-fanout room paced echo connect}"
read -r -a SERVERS <<<"${SERVERS:-lws ws py libagentws}"
HOST_ARGS=${HOST_ARGS:-}
read -r -a HOST_ARGV <<<"$HOST_ARGS"
FANOUT_ARGS=${FANOUT_ARGS---window 64 --backlog-events 64}
read -r -a FANOUT_ARGV <<<"$FANOUT_ARGS"
QUIET_WAIT=${QUIET_WAIT:-30}
RESULTS=${RESULTS:-$ROOT/bench/RESULTS.md}
CHART=${CHART-$ROOT/bench/peers.svg}
QUIET_CORES=${QUIET_CORES:-0.25}
PEERS=$ROOT/bench/peers
PACE_RATE=$(awk -v i="$INTERVAL_MS" 'BEGIN { printf "%g", 1000 / i }')
MAX_RUN=$((${WARMUP%.*} + ${DURATION%.*} + 180)) # peers exit by themselves past this

TMP=$(mktemp -d /tmp/agentws-peers.XXXXXX)
SRV_PID=
LOAD_PID=
NOTES=()

die() { echo "run-peers: $*" >&2; exit 1; }

cleanup() {
  [ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null
  [ -n "$SRV_PID" ] && kill -TERM "$SRV_PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

ulimit -n "$(ulimit -Hn)" || die "cannot raise the NOFILE soft limit"
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((CONNS + 64)) ] ||
  die "NOFILE limit $(ulimit -n) is below $CONNS connections"

# ---- tools

build() {
  [ "${SKIP_BUILD:-0}" = 1 ] && return 0
  if [ ! -f "$BUILD/build.ninja" ]; then
    meson setup "$BUILD" --wrap-mode=nodownload -Dbuildtype=release >"$TMP/meson.log" 2>&1 ||
      die "meson setup $BUILD failed: $(tail -n5 "$TMP/meson.log")"
  fi
  ninja -C "$BUILD" >"$TMP/ninja.log" 2>&1 || die "ninja -C $BUILD failed: $(tail -n5 "$TMP/ninja.log")"
}

# The build dir may be rebuilt during a long run: measure private copies of
# the programs and of the libagentws they load, so every run measures one build.
snapshot() {
  local lib soname b
  mkdir -p "$TMP/snap"
  for b in bench/agentws-load bench/fanout-host examples/agentws-demo bench/lws-server; do
    [ -x "$BUILD/$b" ] && cp "$BUILD/$b" "$TMP/snap/"
  done
  LOAD=$TMP/snap/agentws-load
  [ -x "$LOAD" ] || die "no agentws-load in $BUILD/bench"
  lib=$(ldd "$BUILD/bench/fanout-host" 2>/dev/null | awk '/libagentws/ { print $3 }')
  LIB_BUILT="not found"
  if [ -n "$lib" ] && [ -f "$lib" ]; then
    soname=$(ldd "$BUILD/bench/fanout-host" | awk '/libagentws/ { print $1 }')
    cp -L "$lib" "$TMP/snap/$soname" || die "cannot copy $lib"
    LIB_BUILT="built $(date -u -r "$lib" '+%Y-%m-%d %H:%M UTC')"
    export LD_LIBRARY_PATH=$TMP/snap${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  fi
}

check_servers() {
  local s ok=()
  for s in "${SERVERS[@]}"; do
    case $s in
    lws) [ -x "$TMP/snap/lws-server" ] && ok+=(lws) ||
      NOTES+=("lws left out: no $BUILD/bench/lws-server (apt-get install libwebsockets-dev, then meson setup --reconfigure)") ;;
    ws)
      if [ ! -d "$PEERS/node_modules/ws" ]; then
        bash "$PEERS/setup.sh" >"$TMP/npm.log" 2>&1 || NOTES+=("ws: bench/peers/setup.sh failed")
      fi
      if command -v "$NODE" >/dev/null && [ -d "$PEERS/node_modules/ws" ]; then ok+=(ws)
      else NOTES+=("ws left out: no $NODE or no bench/peers/node_modules/ws"); fi ;;
    py) "$PYTHON" -c 'import websockets' 2>/dev/null && ok+=(py) ||
      NOTES+=("py left out: $PYTHON cannot import websockets (apt-get install python3-websockets)") ;;
    libagentws)
      if [ -x "$TMP/snap/fanout-host" ] && [ -x "$TMP/snap/agentws-demo" ]; then ok+=(libagentws)
      else NOTES+=("libagentws left out: no fanout-host or agentws-demo in $BUILD"); fi ;;
    *) die "unknown server '$s' (lws, ws, py, libagentws)" ;;
    esac
  done
  SERVERS=("${ok[@]}")
  [ ${#SERVERS[@]} -gt 0 ] || die "no server to measure"
}

# ---- helpers

jget() { sed -n "s/.*\"$2\":\\([-0-9.e+]*\\).*/\\1/p" <<<"$1" | head -n1; }
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }'; }
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
CLK_TCK=$(getconf CLK_TCK)

stats() { # numbers on stdin -> "median min max"
  sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "n/a n/a n/a"; exit }
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    print m, v[1], v[NR] }'
}

declare -A R    # R[key] = newline-separated samples
declare -A LAST # LAST[case.server] = this repetition's main figure
add() { [ -n "$2" ] && R[$1]+="$2"$'\n'; }

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
  [ "$QUIET_WAIT" -gt 0 ] && NOTES+=("$1: the machine was still busy after ${QUIET_WAIT} s of waiting; measured anyway")
}

# server_cmd SERVER SCENARIO [CONNS]: the server's command line, into CMD.
server_cmd() {
  local s=$1 sc=$2 peer_mode
  case $sc in echo*) peer_mode="echo" ;; *) peer_mode=$sc ;; esac
  local peer=(--mode "$peer_mode" --port 0 --max-run "$MAX_RUN")
  [ "$peer_mode" != echo ] && peer+=(--conns "$CONNS" --interval-ms "$INTERVAL_MS")
  local host=(--port 0 --conns "$CONNS" --duration "$DURATION" --warmup "$WARMUP" --wait 60 "${HOST_ARGV[@]}")
  case $s in
  lws) CMD=("$TMP/snap/lws-server" "${peer[@]}") ;;
  ws) CMD=("$NODE" "$PEERS/ws-server.mjs" "${peer[@]}") ;;
  py) CMD=("$PYTHON" "$PEERS/py-server.py" "${peer[@]}") ;;
  libagentws)
    case $sc in
    fanout) CMD=("$TMP/snap/fanout-host" "${host[@]}" "${FANOUT_ARGV[@]}" --users "$CONNS") ;;
    room) CMD=("$TMP/snap/fanout-host" "${host[@]}" --users 1 --room all) ;;
    paced) CMD=("$TMP/snap/fanout-host" "${host[@]}" --users 1 --room all --rate "$PACE_RATE") ;;
    echo*) CMD=("$TMP/snap/agentws-demo" --mode echo --port 0) ;;
    esac ;;
  esac
}

# start_server: runs CMD, sets SRV_PID and SRV_PORT once it prints "listening on".
start_server() {
  local line
  : >"$TMP/srv.out"
  : >"$TMP/srv.err"
  "${CMD[@]}" >"$TMP/srv.out" 2>"$TMP/srv.err" &
  SRV_PID=$!
  for _ in $(seq 150); do
    line=$(grep -m1 '^listening on ' "$TMP/srv.out")
    if [ -n "$line" ]; then
      SRV_PORT=${line##*:}
      return 0
    fi
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.1
  done
  tail -n5 "$TMP/srv.err" >&2
  die "${CMD[*]} did not print 'listening on HOST:PORT'"
}

# stop_server NAME: SIGTERM (fanout-host too: its emitting outlasts the
# generator's window by --tail), up to 10 s, then KILL.
stop_server() {
  local rc
  kill -TERM "$SRV_PID" 2>/dev/null
  for _ in $(seq 100); do
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$SRV_PID" 2>/dev/null; then
    kill -KILL "$SRV_PID" 2>/dev/null
    NOTES+=("$1 did not exit within 10 s of SIGTERM (killed)")
  fi
  wait "$SRV_PID"
  rc=$?
  [ "$rc" -ne 0 ] && NOTES+=("$1 exited $rc after SIGTERM")
  SRV_PID=
  cat "$TMP/srv.err" >>"$TMP/servers.err"
}

# run_one SERVER CASE LOAD-ARGS...: one server, one load run; records the
# generator's JSON and the CPU of server, generator and the rest in the window.
run_one() {
  local s=$1 key=$2 lj c0 c1 b0 b1 scpu other ccpu n per
  shift 2
  wait_quiet "$key $s"
  server_cmd "$s" "$key"
  start_server
  : >"$TMP/load.out"
  : >"$TMP/load.err1"
  "$LOAD" "$@" --port "$SRV_PORT" --duration "$DURATION" --warmup "$WARMUP" \
    >"$TMP/load.out" 2>"$TMP/load.err1" &
  LOAD_PID=$!
  # The window starts WARMUP s after the generator has every connection open.
  c0='' c1=''
  for _ in $(seq 1200); do
    grep -q 'connections open in' "$TMP/load.err1" && break
    kill -0 "$LOAD_PID" 2>/dev/null || break
    sleep 0.05
  done
  if grep -q 'connections open in' "$TMP/load.err1"; then
    sleep "$WARMUP"
    c0=$(cpu_ticks "$SRV_PID") b0=$(busy_ticks)
    sleep "$DURATION"
    c1=$(cpu_ticks "$SRV_PID") b1=$(busy_ticks)
  fi
  wait "$LOAD_PID"
  LOAD_PID=
  cat "$TMP/load.err1" >>"$TMP/load.err"
  stop_server "$s"
  lj=$(cat "$TMP/load.out")
  [ -n "$lj" ] || die "agentws-load printed nothing: $(tail -n3 "$TMP/load.err1")"
  echo "{\"server\":\"$s\",\"case\":\"$key\",\"cmd\":\"${CMD[*]##*/}\",${lj#\{}" >>"$TMP/all.jsonl"
  grep -m1 '^{' "$TMP/srv.out" >>"$TMP/all.jsonl" # fanout-host's own report
  ccpu=$(jget "$lj" client_cpu)
  scpu='' other=''
  if [ -n "$c0" ] && [ -n "$c1" ]; then
    scpu=$(awk -v a="$c0" -v b="$c1" -v hz="$CLK_TCK" -v d="$DURATION" 'BEGIN { printf "%.2f", (b - a) / hz / d }')
    other=$(awk -v a="$b0" -v b="$b1" -v hz="$CLK_TCK" -v d="$DURATION" -v s="$scpu" -v c="$ccpu" \
      'BEGIN { o = (b - a) / hz / d - s - c; if (o < 0) o = 0; printf "%.2f", o }')
  fi
  if grep -q '"mode":"echo"' <<<"$lj"; then n=$(jget "$lj" rt_per_s); else n=$(jget "$lj" msg_per_s); fi
  per=$(awk -v c="$scpu" -v n="$n" 'BEGIN { if (c != "" && n > 0) printf "%.3f", c / n * 1e6 }')
  add "$key.$s.rate" "$n"
  add "$key.$s.scpu" "$scpu"
  add "$key.$s.per" "$per"
  add "$key.$s.ccpu" "$ccpu"
  add "$key.$s.other" "$other"
  add "$key.$s.p50" "$(jget "$lj" emit_p50_us)"
  add "$key.$s.p99" "$(jget "$lj" emit_p99_us)"
  add "$key.$s.rtp99" "$(jget "$lj" p99_us)"
  add "$key.$s.err" "$(jget "$lj" errors)"
  add "$key.$s.open" "$(jget "$lj" open)"
  if [ "$key" = paced ]; then LAST[$key.$s]=$(jget "$lj" emit_p99_us); else LAST[$key.$s]=$n; fi
  [ "$(jget "$lj" open)" = "$(jget "$lj" conns)" ] ||
    NOTES+=("$key $s: $(jget "$lj" open) of $(jget "$lj" conns) connections opened")
  # Latency: emit->receive (fanout modes), round trip (echo).
  local lat=emit_
  [[ $key == echo.* ]] && lat=
  printf '  %-22s %-10s %12.0f /s  p50 %8.0f us  p99 %8.0f us  server %5s cores %7s us/msg  client %s  other %s  errors %s\n' \
    "$key" "$s" "$n" "$(jget "$lj" "${lat}p50_us")" "$(jget "$lj" "${lat}p99_us")" "${scpu:-n/a}" "${per:-n/a}" \
    "$ccpu" "${other:-n/a}" "$(jget "$lj" errors)"
}

# run_case CASE LOAD-ARGS...: CASE on every server, in this repetition's order.
run_case() {
  local key=$1 s
  shift
  for s in "${ORDER[@]}"; do
    run_one "$s" "$key" "$@"
  done
  if [ -n "${LAST[$key.lws]:-}" ]; then
    for s in "${ORDER[@]}"; do
      add "$key.$s.ratio" "$(awk -v x="${LAST[$key.$s]:-}" -v l="${LAST[$key.lws]}" \
        'BEGIN { if (x != "" && l > 0) printf "%.3f", x / l }')"
    done
  fi
  unset 'LAST[$key.lws]'
}

CASES=()
WANT_CONNECT=0
run_scenario() {
  local c p z
  case $1 in
  fanout) CASES+=(fanout); run_case fanout --mode fanout --conns "$CONNS" --users "$CONNS" ;;
  room) CASES+=(room); run_case room --mode fanout --conns "$CONNS" --users 1 ;;
  paced) CASES+=(paced); run_case paced --mode fanout --conns "$CONNS" --users 1 ;;
  echo)
    for c in "${ECHO_CONNS[@]}"; do
      for p in "${PIPELINES[@]}"; do
        for z in "${SIZES[@]}"; do
          CASES+=("echo.c$c.p$p.s$z")
          run_case "echo.c$c.p$p.s$z" --mode echo --conns "$c" --pipeline "$p" --size "$z" --query 'user=u%d'
        done
      done
    done ;;
  connect | memory) WANT_CONNECT=1 ;;
  *) die "unknown scenario '$1' (fanout, room, paced, echo, connect)" ;;
  esac
}

# ---- run

build
snapshot
check_servers
: >"$TMP/load.err"
: >"$TMP/servers.err"
: >"$TMP/all.jsonl"
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
BUSY=$(top -bn1 -w 200 2>/dev/null | awk 'NR > 7 && $9 + 0 >= 20 { printf "%s%s (%s%% CPU)", sep, $12, $9; sep = ", " }')
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')

for rep in $(seq "$REPS"); do
  echo "repetition $rep/$REPS"
  ORDER=()
  if [ $((rep % 2)) -eq 1 ]; then ORDER=("${SERVERS[@]}")
  else for ((i = ${#SERVERS[@]} - 1; i >= 0; i--)); do ORDER+=("${SERVERS[i]}"); done; fi
  CASES=()
  for sc in "${SCEN[@]}"; do run_scenario "$sc"; done
done

# ---- report

# shellcheck disable=SC2059 # the formats are the callers' on purpose
cell() { # cell KEY FORMAT: "median (min – max)"
  local s med lo hi
  s=$(printf '%s' "${R[$1]:-}" | stats)
  read -r med lo hi <<<"$s"
  if [ "$med" = n/a ]; then printf 'n/a'; else printf "$2 ($2 – $2)" "$med" "$lo" "$hi"; fi
}
# shellcheck disable=SC2059
med() { # med KEY FORMAT
  local s
  s=$(printf '%s' "${R[$1]:-}" | stats)
  if [ "${s%% *}" = n/a ]; then printf 'n/a'; else printf "$2" "${s%% *}"; fi
}
sum() { printf '%s' "${R[$1]:-}" | awk '{ s += $1 } END { print s + 0 }'; }

table() { # table CASE
  local k=$1 s title unit
  case $k in
  fanout) title="Fan-out at full speed: $CONNS connections, each its own user stream"; unit="deliveries/s" ;;
  room) title="Room broadcast at full speed: one stream to $CONNS connections"; unit="deliveries/s" ;;
  paced) title="Paced broadcast: one event to $CONNS connections every $INTERVAL_MS ms"; unit="p99 emit->receive (us)" ;;
  echo.*) # echo.cC.pP.sS
    local f
    IFS=. read -r -a f <<<"$k"
    title="Echo: ${f[1]#c} connections, pipeline ${f[2]#p}, ${f[3]#s}-byte text messages"
    unit="round trips/s" ;;
  esac
  local per="server CPU per delivery (us)"
  [[ $k == echo.* ]] && per="server CPU per round trip (us)"
  echo
  echo "### $title"
  echo
  if [ "$k" = paced ]; then
    echo "| server | p99 emit->receive (us) | p50 (us) | p99 / lws p99 | deliveries/s | server CPU (cores) | load generator CPU (cores) | other CPU (cores) | errors |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for s in "${SERVERS[@]}"; do
      echo "| $s | $(cell "$k.$s.p99" '%.0f') | $(cell "$k.$s.p50" '%.0f') | $(cell "$k.$s.ratio" '%.2f') | $(med "$k.$s.rate" '%.0f') | $(med "$k.$s.scpu" '%.2f') | $(med "$k.$s.ccpu" '%.2f') | $(med "$k.$s.other" '%.2f') | $(sum "$k.$s.err") |"
    done
  else
    echo "| server | $unit | × lws | server CPU (cores) | $per | load generator CPU (cores) | other CPU (cores) | errors |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    for s in "${SERVERS[@]}"; do
      echo "| $s | $(cell "$k.$s.rate" '%.0f') | $(cell "$k.$s.ratio" '%.2f') | $(med "$k.$s.scpu" '%.2f') | $(med "$k.$s.per" '%.3f') | $(med "$k.$s.ccpu" '%.2f') | $(med "$k.$s.other" '%.2f') | $(sum "$k.$s.err") |"
    done
  fi
  for s in "${SERVERS[@]}"; do
    awk -v c="$(med "$k.$s.ccpu" '%.2f')" 'BEGIN { exit !(c >= 0.9) }' &&
      echo "$s: the load generator used $(med "$k.$s.ccpu" '%.2f') of a core, so it may have set the pace (run more generators)."
  done
  :
}

report() {
  echo
  echo "## Peers: libagentws, libwebsockets, Node ws, Python websockets, $STARTED"
  echo
  echo "Machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)," \
       "kernel $(uname -r); load average at start $LOADAVG; NOFILE limit $(ulimit -n)."
  echo "Busy processes at start: ${BUSY:-none}."
  echo "Peers: libwebsockets $(pkg-config --modversion libwebsockets 2>/dev/null || echo n/a)," \
       "Node $("$NODE" --version 2>/dev/null || echo n/a) with ws $(sed -n 's/.*"version": "\(.*\)".*/\1/p' "$PEERS/node_modules/ws/package.json" 2>/dev/null | head -n1)," \
       "Python $("$PYTHON" -c 'import sys, websockets; print(sys.version.split()[0], "with websockets", websockets.__version__)' 2>/dev/null || echo n/a);" \
       "libagentws $LIB_BUILT ($BUILD, copied before the first run)."
  echo "Each value: median of $REPS runs (min – max); × lws and p99 / lws p99 are ratios paired within a repetition" \
       "(median of the per-repetition ratios). Server CPU: /proc/PID/stat over the $DURATION s window;" \
       "load generator CPU: agentws-load's client_cpu; other: the rest of the machine in the same window."
  echo
  echo "Commands (PORT: the port the server printed):"
  echo
  echo '```'
  echo "lws-server --mode fanout|room|paced --port 0 --max-run $MAX_RUN --conns $CONNS --interval-ms $INTERVAL_MS"
  echo "node bench/peers/ws-server.mjs --mode fanout|room|paced --port 0 --max-run $MAX_RUN --conns $CONNS --interval-ms $INTERVAL_MS"
  echo "$PYTHON bench/peers/py-server.py --mode fanout|room|paced --port 0 --max-run $MAX_RUN --conns $CONNS --interval-ms $INTERVAL_MS"
  echo "lws-server --mode echo --port 0 --max-run $MAX_RUN;  node bench/peers/ws-server.mjs --mode echo --port 0 --max-run $MAX_RUN"
  echo "$PYTHON bench/peers/py-server.py --mode echo --port 0 --max-run $MAX_RUN"
  echo "fanout-host --port 0 --conns $CONNS --duration $DURATION --warmup $WARMUP --wait 60${HOST_ARGS:+ $HOST_ARGS}${FANOUT_ARGS:+ $FANOUT_ARGS} --users $CONNS  # fanout"
  echo "fanout-host --port 0 --conns $CONNS --duration $DURATION --warmup $WARMUP --wait 60${HOST_ARGS:+ $HOST_ARGS} --users 1 --room all         # room"
  echo "fanout-host --port 0 --conns $CONNS --duration $DURATION --warmup $WARMUP --wait 60${HOST_ARGS:+ $HOST_ARGS} --users 1 --room all --rate $PACE_RATE  # paced"
  echo "agentws-demo --mode echo --port 0"
  echo "agentws-load --mode fanout --conns $CONNS --users $CONNS --port PORT --duration $DURATION --warmup $WARMUP   # fanout"
  echo "agentws-load --mode fanout --conns $CONNS --users 1 --port PORT --duration $DURATION --warmup $WARMUP       # room, paced"
  echo "agentws-load --mode echo --conns C --pipeline P --size S --query 'user=u%d' --port PORT --duration $DURATION --warmup $WARMUP"
  echo '```'
  done_cases=" "
  for k in "${CASES[@]}"; do
    [[ $done_cases == *" $k "* ]] && continue
    done_cases+="$k "
    table "$k"
  done
  echo
  for n in "${NOTES[@]}"; do echo "Note: $n."; done | sort | uniq -c | sed 's/^ *\([0-9]*\) \(.*\)/\2 (x\1)/'
  echo
  echo "<details><summary>agentws-load output per run (with the server, case and command) and fanout-host's own report, one JSON line each</summary>"
  echo
  echo '```'
  cat "$TMP/all.jsonl"
  echo '```'
  echo "</details>"
}

if [ ${#CASES[@]} -gt 0 ]; then
  report | tee -a "$RESULTS"
  [ "${PIPESTATUS[1]}" = 0 ] || echo "run-peers: cannot append to $RESULTS" >&2
fi

if [ -n "${JSONL:-}" ]; then cp "$TMP/all.jsonl" "$JSONL" || echo "run-peers: cannot write $JSONL" >&2; fi
if [ -n "$CHART" ] && [ ${#CASES[@]} -gt 0 ]; then
  /usr/bin/python3 "$ROOT/bench/chart.py" "$TMP/all.jsonl" >"$CHART" || echo "run-peers: no chart" >&2
fi
if grep -qv -e 'connections open in' "$TMP/load.err"; then
  echo "run-peers: agentws-load stderr:" >&2
  grep -v -e 'connections open in' "$TMP/load.err" | sort | uniq -c | head -n 20 >&2
fi
if [ -s "$TMP/servers.err" ]; then
  echo "run-peers: server stderr (distinct lines, counted):" >&2
  sed 's/[0-9][0-9]*/N/g' "$TMP/servers.err" | sort | uniq -c | sort -rn | head -n 30 >&2
fi

# connect and memory: run-connect.sh measures them (its own alternation,
# ratios, targets and RESULTS section), with this run's servers.
if [ "$WANT_CONNECT" = 1 ]; then
  CSERVERS=()
  for s in "${SERVERS[@]}"; do
    case $s in
    libagentws) CSERVERS+=(agentws-dev agentws-hs256) ;;
    py) CSERVERS+=(python) ;;
    *) CSERVERS+=("$s") ;;
    esac
  done
  echo "connect and memory: bench/run-connect.sh (SERVERS=\"${CSERVERS[*]}\")"
  trap - EXIT
  cleanup
  AGENTWS_BUILD=$BUILD REPS=${CONNECT_REPS:-$REPS} CONNS=${CONNECT_CONNS:-10000} SERVERS="${CSERVERS[*]}" RESULTS=$RESULTS \
    QUIET_WAIT=$QUIET_WAIT QUIET_CORES=$QUIET_CORES NODE=$NODE \
    exec bash "$ROOT/bench/run-connect.sh"
fi
