#!/usr/bin/env bash
# run-connect.sh: the "connect" and "memory" scenarios (issue 8).
#
#   connect  agentws-load --mode connect opens CONNS (10,000) WebSocket
#            connections to a fresh server, at most MAX_PENDING (128)
#            connects/upgrades in flight (RATE conn/s if set): handshakes/s
#            (opened / open_ms) and the handshake latency per connection
#            (connect start -> the read that completed the 101; p50/p99
#            from bench/connect-lat.c, linked into a private copy of
#            agentws-load with -Wl,--wrap=load_on_open).
#   memory   the server's VmRSS (/proc/PID/status) before the first
#            connection and SETTLE s after the last one opened, while all
#            are held idle: (after - before) / N, at N = CONNS and at every
#            N in MEM_CONNS (default "10000 19000"; the 10,000 run is the
#            connect run).
#
# Servers (SERVERS, each run a fresh process under `timeout`):
#   agentws-dev    examples/agentws-demo --mode agent --dev-insecure: a real
#                  libagentws host (agentws.v1, monitor, validator, 4 idle
#                  worker threads) that emits nothing unless a client asks;
#                  ?user=u<i>: every connection its own user (default
#                  max-conns-per-user 5, max-conns 0 = no limit)
#   agentws-hs256  the same with --jwt-hs256-secret-file: client i sends an
#                  HS256 token for sub u<i> (python3-jwt, as run-auth.sh);
#                  the verification cache at its default (10,000 entries)
#   lws            bench/peers/lws-server --mode echo (libwebsockets 4.1):
#                  idle until a client sends
#   ws             node bench/peers/ws-server.mjs --mode echo (Node ws)
#   python         bench/python/pure_server.py (asyncio + websockets 10):
#                  --conns larger than any run and --wait past the hard
#                  timeout, so it only holds the connections (and sends the
#                  welcome, as libagentws does)
# The peers run in their cheapest idle mode (echo: no welcome, no per-user
# state), so the memory comparison is conservative for libagentws.
#
# REPS (3) repetitions; within one, every N runs on every server in turn,
# the order reversed every other repetition. Per run: the server's and the
# generator's CPU over the connect phase (/proc/PID/stat, cores = CPU s /
# open_ms; the generator runs one loop thread, so near 1.0 means it set the
# pace) and what the rest of the machine used meanwhile ("other"). Prints a
# Markdown section (medians, min - max, ratios to lws paired within a
# repetition, the target verdicts) and appends it to RESULTS (default
# bench/RESULTS.md; RESULTS=/dev/null to skip).
#
#   ninja -C build && bench/run-connect.sh
#   REPS=1 CONNS=200 MEM_CONNS=400 HOLD=2 QUIET_WAIT=0 RESULTS=/dev/null bench/run-connect.sh   # smoke
#
# Environment (all optional): AGENTWS_BUILD (build) REPS CONNS MEM_CONNS
#   SERVERS ("agentws-dev agentws-hs256 lws ws python") MAX_PENDING (128)
#   CONNECT_TIMEOUT (30 s per connection; the connect phase ends after 3x:
#   past ~14,000 connections to one address the kernel's search for a free
#   port (connect() takes one parity of ip_local_port_range first) makes
#   each connect slow, and 19,000 take ~20 s)
#   RATE (0: unpaced) HOLD (8 s the generator holds the connections; the
#   RSS is read SETTLE (3) s into it) PRE_SETTLE (1 s after "listening"
#   before the "before" RSS) SRV_TIMEOUT (180 s hard limit per server run)
#   NODE (node) QUIET_WAIT (30) QUIET_CORES (0.25: wait before each run, up
#   to QUIET_WAIT s, for the rest of the machine to use under QUIET_CORES,
#   niced work not counted) SOAK_WAIT (900: before each run, wait up to
#   this long for a running bench/run-soak.sh to end) RESULTS
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${AGENTWS_BUILD:-$ROOT/build}
REPS=${REPS:-3}
CONNS=${CONNS:-10000}
read -r -a MEM_N <<<"${MEM_CONNS:-10000 19000}"
read -r -a SERVERS <<<"${SERVERS:-agentws-dev agentws-hs256 lws ws python}"
MAX_PENDING=${MAX_PENDING:-128}
CONNECT_TIMEOUT=${CONNECT_TIMEOUT:-30}
RATE=${RATE:-0}
HOLD=${HOLD:-8}
SETTLE=${SETTLE:-3}
PRE_SETTLE=${PRE_SETTLE:-1}
SRV_TIMEOUT=${SRV_TIMEOUT:-180}
NODE=${NODE:-node}
QUIET_WAIT=${QUIET_WAIT:-30}
QUIET_CORES=${QUIET_CORES:-0.25}
SOAK_WAIT=${SOAK_WAIT:-900}
RESULTS=${RESULTS:-$ROOT/bench/RESULTS.md}
PY=/usr/bin/python3
PEERS=$ROOT/bench/peers

TMP=$(mktemp -d /tmp/agentws-connect.XXXXXX)
TO_PID='' SRV_PID='' LOAD_PID=''
NOTES=()

die() { echo "run-connect: $*" >&2; exit 1; }

cleanup() {
  [ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null
  [ -n "$SRV_PID" ] && kill -TERM "$SRV_PID" 2>/dev/null
  [ -n "$TO_PID" ] && kill -TERM "$TO_PID" 2>/dev/null
  [ -n "$LOAD_PID$SRV_PID$TO_PID" ] && sleep 1
  [ -n "$SRV_PID" ] && kill -KILL "$SRV_PID" 2>/dev/null
  [ -n "$TO_PID" ] && kill -KILL "$TO_PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

NMAX=$CONNS
for n in "${MEM_N[@]}"; do [ "$n" -gt "$NMAX" ] && NMAX=$n; done
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" || die "cannot raise the NOFILE soft limit"
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((NMAX + 64)) ] ||
  die "NOFILE limit $(ulimit -n) is below $NMAX connections + 64"

# ---- tools: private copies, so a rebuild during the run changes nothing

setup_tools() {
  local src=$ROOT/bench lib soname
  mkdir -p "$TMP/snap"
  LOAD=$TMP/snap/agentws-load-lat
  # shellcheck disable=SC2046
  cc -std=c11 -O2 -Wall -Wextra -o "$LOAD" "$src/agentws-load.c" "$src/load_conn.c" \
    "$src/load_hist.c" "$src/connect-lat.c" -Wl,--wrap=load_on_open \
    $(pkg-config --cflags --libs libuv libcrypto) -lwslay -lm 2>"$TMP/cc.log" ||
    die "building agentws-load + connect-lat failed: $(tail -n5 "$TMP/cc.log")"
  DEMO=$BUILD/examples/agentws-demo
  [ -x "$DEMO" ] || die "no $DEMO (ninja -C $BUILD)"
  cp "$DEMO" "$TMP/snap/" || die "cannot copy $DEMO"
  LIB_BUILT="statically linked or not found"
  lib=$(ldd "$DEMO" 2>/dev/null | awk '/libagentws/ { print $3 }')
  if [ -n "$lib" ] && [ -f "$lib" ]; then
    soname=$(ldd "$DEMO" | awk '/libagentws/ { print $1 }')
    cp -L "$lib" "$TMP/snap/$soname" || die "cannot copy $lib"
    LIB_BUILT="built $(date -u -r "$lib" '+%Y-%m-%d %H:%M UTC')"
    export LD_LIBRARY_PATH=$TMP/snap${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  fi
  [ -x "$BUILD/bench/lws-server" ] && cp "$BUILD/bench/lws-server" "$TMP/snap/"
}

check_servers() {
  local s ok=()
  for s in "${SERVERS[@]}"; do
    case $s in
    agentws-dev | agentws-hs256) ok+=("$s") ;;
    lws) [ -x "$TMP/snap/lws-server" ] && ok+=(lws) ||
      NOTES+=("lws left out: no $BUILD/bench/lws-server (apt-get install libwebsockets-dev, then meson setup --reconfigure)") ;;
    ws)
      [ -d "$PEERS/node_modules/ws" ] || bash "$PEERS/setup.sh" >"$TMP/npm.log" 2>&1
      if command -v "$NODE" >/dev/null && [ -d "$PEERS/node_modules/ws" ]; then ok+=(ws)
      else NOTES+=("ws left out: no $NODE or no bench/peers/node_modules/ws (bench/peers/setup.sh)"); fi ;;
    python)
      if "$PY" -c 'import websockets' 2>/dev/null; then ok+=(python)
      else NOTES+=("python left out: no python3-websockets"); fi ;;
    *) die "unknown server '$s' (agentws-dev agentws-hs256 lws ws python)" ;;
    esac
  done
  SERVERS=("${ok[@]}")
  [ ${#SERVERS[@]} -gt 0 ] || die "no server to measure"
}

# mint_tokens: $TMP/hs.secret and $TMP/hs.tokens (sub u0..u{NMAX-1}, 1 h).
mint_tokens() {
  "$PY" - "$TMP" "$NMAX" <<'EOF' || die "token minting failed (python3-jwt)"
import os, secrets, sys, time
import jwt
tmp, n = sys.argv[1], int(sys.argv[2])
now = int(time.time())
secret = secrets.token_hex(32)
with open(os.path.join(tmp, "hs.secret"), "w") as f:
    f.write(secret)
with open(os.path.join(tmp, "hs.tokens"), "w") as f:
    for i in range(n):
        f.write(jwt.encode({"sub": "u%d" % i, "iat": now, "exp": now + 3600},
                           secret.encode(), algorithm="HS256") + "\n")
EOF
}

# ---- helpers

jget() { sed -n "s/.*\"$2\":\\([-0-9.e+]*\\).*/\\1/p" <<<"$1" | head -n1; }
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }'; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
# all busy jiffies (user nice system irq softirq steal), and the same without nice
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
busy_unniced() { awk '/^cpu / { print $2 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
now_ns() { date +%s%N; }
CLK_TCK=$(getconf CLK_TCK)

stats() { # numbers on stdin -> "median min max"
  sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "n/a n/a n/a"; exit }
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    print m, v[1], v[NR] }'
}

BUSY_RUNS=0 RUNS=0
declare -A R    # R[key] = newline-separated samples
declare -A LAST # LAST[n.server.field] = this repetition's value
add() { [ -n "$2" ] && R[$1]+="$2"$'\n'; }

wait_quiet() {
  local a b waited=0
  # A soak (bench/run-soak.sh) loads the machine for minutes: let it end.
  while pgrep -f 'bench/run-soak\.sh' >/dev/null && [ "$waited" -lt "$SOAK_WAIT" ]; do
    [ "$waited" = 0 ] && echo "run-connect: waiting for bench/run-soak.sh to end (up to $SOAK_WAIT s)" >&2
    sleep 5
    waited=$((waited + 5))
  done
  [ "$waited" -gt 0 ] && NOTES+=("$1: waited ${waited} s for bench/run-soak.sh to end")
  waited=0
  while [ "$waited" -lt "$QUIET_WAIT" ]; do
    a=$(busy_unniced)
    sleep 1
    b=$(busy_unniced)
    awk -v a="$a" -v b="$b" -v hz="$CLK_TCK" -v q="$QUIET_CORES" \
      'BEGIN { exit !((b - a) / hz < q) }' && return 0
    waited=$((waited + 1))
  done
  [ "$QUIET_WAIT" -gt 0 ] && BUSY_RUNS=$((BUSY_RUNS + 1))
}

server_cmd() { # server_cmd SERVER: its command line into CMD
  local maxrun=$((SRV_TIMEOUT + 30))
  case $1 in
  agentws-dev) CMD=("$TMP/snap/agentws-demo" --mode agent --port 0 --dev-insecure) ;;
  agentws-hs256) CMD=("$TMP/snap/agentws-demo" --mode agent --port 0 --jwt-hs256-secret-file "$TMP/hs.secret") ;;
  lws) CMD=("$TMP/snap/lws-server" --mode echo --port 0 --max-run "$maxrun") ;;
  ws) CMD=("$NODE" "$PEERS/ws-server.mjs" --mode echo --port 0 --max-run "$maxrun") ;;
  python) CMD=("$PY" "$ROOT/bench/python/pure_server.py" --port 0 --conns 1000000 --users 1 --wait "$maxrun") ;;
  esac
}

# start_server: CMD under `timeout` (the hard limit); TO_PID is timeout,
# SRV_PID the server itself (timeout's child), SRV_PORT what it printed.
start_server() {
  local line
  : >"$TMP/srv.out"
  : >"$TMP/srv.err"
  timeout -k 5 "$SRV_TIMEOUT" "${CMD[@]}" >"$TMP/srv.out" 2>"$TMP/srv.err" &
  TO_PID=$!
  SRV_PID=
  for _ in $(seq 150); do
    [ -z "$SRV_PID" ] && SRV_PID=$(pgrep -P "$TO_PID" | head -n1)
    line=$(grep -m1 '^listening on ' "$TMP/srv.out")
    if [ -n "$line" ] && [ -n "$SRV_PID" ]; then
      SRV_PORT=${line##*:}
      return 0
    fi
    kill -0 "$TO_PID" 2>/dev/null || break
    sleep 0.1
  done
  tail -n5 "$TMP/srv.err" >&2
  die "${CMD[*]} did not print 'listening on HOST:PORT'"
}

stop_server() { # stop_server NAME
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
  wait "$TO_PID"
  rc=$?
  # 124: the hard timeout fired. The demo, lws and ws exit 0 on SIGTERM;
  # pure_server.py has no handler, so it dies of the signal (143).
  [ "$rc" -ne 0 ] && ! { [ "$1" = python ] && [ "$rc" = 143 ]; } &&
    NOTES+=("$1 exited $rc after SIGTERM (124: hard timeout)")
  TO_PID='' SRV_PID=''
  sed "s/^/[$1] /" "$TMP/srv.err" >>"$TMP/servers.err"
}

# run_one SERVER N: fresh server, RSS before, N connections, CPU over the
# connect phase, RSS SETTLE s after the last opened, then close and stop.
run_one() {
  local s=$1 n=$2 lj hj rss0 rss1 rss2 c0 c1 g1 b0 b1 t0 t1 held=0
  local open open_ms hs scpu gcpu other per kib
  local -a largs
  wait_quiet "$s N=$n"
  RUNS=$((RUNS + 1))
  server_cmd "$s"
  start_server
  sleep "$PRE_SETTLE"
  rss0=$(rss_kb "$SRV_PID")
  largs=(--mode connect --port "$SRV_PORT" --conns "$n" --hold "$HOLD" --max-pending "$MAX_PENDING"
    --connect-timeout "$CONNECT_TIMEOUT" --query 'user=u%d')
  [ "$RATE" != 0 ] && largs+=(--rate "$RATE")
  [ "$s" = agentws-hs256 ] && largs+=(--token-file "$TMP/hs.tokens")
  : >"$TMP/load.out"
  : >"$TMP/load.err1"
  c0=$(cpu_ticks "$SRV_PID") b0=$(busy_ticks) t0=$(now_ns)
  "$LOAD" "${largs[@]}" >"$TMP/load.out" 2>"$TMP/load.err1" &
  LOAD_PID=$!
  # agentws-load's own watchdog bounds it (3 x CONNECT_TIMEOUT + HOLD + 12 s)
  while kill -0 "$LOAD_PID" 2>/dev/null; do
    grep -q '^agentws-load: holding' "$TMP/load.err1" && { held=1; break; }
    sleep 0.02
  done
  if [ "$held" = 1 ]; then
    c1=$(cpu_ticks "$SRV_PID") g1=$(cpu_ticks "$LOAD_PID") b1=$(busy_ticks) t1=$(now_ns)
    sleep "$SETTLE"
    rss1=$(rss_kb "$SRV_PID")
  fi
  wait "$LOAD_PID"
  LOAD_PID=
  sleep 0.5
  rss2=$(rss_kb "$SRV_PID")
  cat "$TMP/load.err1" >>"$TMP/load.err"
  stop_server "$s"
  lj=$(grep -m1 '"mode":"connect"' "$TMP/load.out")
  hj=$(grep -m1 '"hs_lat_n"' "$TMP/load.out")
  hj=${hj:-'{"hs_lat_n":0}'}
  [ -n "$lj" ] || die "agentws-load printed nothing: $(tail -n3 "$TMP/load.err1")"
  open=$(jget "$lj" open) open_ms=$(jget "$lj" open_ms)
  hs='' scpu='' gcpu='' other='' per='' kib=''
  if [ "$held" = 1 ] && awk -v m="$open_ms" 'BEGIN { exit !(m > 0) }'; then
    hs=$(awk -v o="$open" -v m="$open_ms" 'BEGIN { printf "%.0f", o / m * 1000 }')
    scpu=$(awk -v a="$c0" -v b="$c1" -v hz="$CLK_TCK" -v m="$open_ms" 'BEGIN { printf "%.2f", (b - a) / hz / (m / 1000) }')
    gcpu=$(awk -v g="$g1" -v hz="$CLK_TCK" -v m="$open_ms" 'BEGIN { printf "%.2f", g / hz / (m / 1000) }')
    per=$(awk -v a="$c0" -v b="$c1" -v hz="$CLK_TCK" -v o="$open" 'BEGIN { if (o > 0) printf "%.1f", (b - a) / hz / o * 1e6 }')
    other=$(awk -v a="$b0" -v b="$b1" -v t0="$t0" -v t1="$t1" -v hz="$CLK_TCK" -v s0="$c0" -v s1="$c1" -v g="$g1" \
      'BEGIN { w = (t1 - t0) / 1e9; o = ((b - a) - (s1 - s0) - g) / hz / w; if (o < 0) o = 0; printf "%.2f", o }')
  fi
  if [ -n "${rss1:-}" ] && [ -n "$rss0" ] && [ "$open" -gt 0 ]; then
    kib=$(awk -v a="$rss0" -v b="$rss1" -v o="$open" 'BEGIN { printf "%.2f", (b - a) / o }')
  fi
  [ "$open" = "$n" ] || NOTES+=("$s N=$n: $open of $n connections opened ($(jget "$lj" errors) errors)")
  add "$n.$s.hs" "$hs"
  add "$n.$s.p50" "$(jget "$hj" hs_p50_us)"
  add "$n.$s.p99" "$(jget "$hj" hs_p99_us)"
  add "$n.$s.scpu" "$scpu"
  add "$n.$s.per" "$per"
  add "$n.$s.gcpu" "$gcpu"
  add "$n.$s.other" "$other"
  add "$n.$s.rss0" "$rss0"
  add "$n.$s.kib" "$kib"
  add "$n.$s.open" "$open"
  add "$n.$s.err" "$(jget "$lj" errors)"
  LAST[$n.$s.hs]=$hs
  LAST[$n.$s.kib]=$kib
  echo "{\"server\":\"$s\",\"n\":$n,\"cmd\":\"${CMD[*]##*/}\",\"rss_before_kb\":${rss0:-null},\"rss_held_kb\":${rss1:-null},\"rss_after_close_kb\":${rss2:-null},\"server_cpu\":${scpu:-null},\"load_cpu\":${gcpu:-null},\"other_cpu\":${other:-null},${lj#\{}" |
    sed 's/}$//' | { read -r l; echo "$l,${hj#\{}"; } >>"$TMP/all.jsonl"
  printf '  %-14s N=%-6s %7s hs/s  p50 %8s us  p99 %8s us  server %5s cores %6s us/hs  gen %5s  other %5s  RSS %7s -> %7s kB  %6s KiB/conn  open %s\n' \
    "$s" "$n" "${hs:-n/a}" "$(jget "$hj" hs_p50_us)" "$(jget "$hj" hs_p99_us)" "${scpu:-n/a}" "${per:-n/a}" \
    "${gcpu:-n/a}" "${other:-n/a}" "$rss0" "${rss1:-n/a}" "${kib:-n/a}" "$open"
}

# ---- run

setup_tools
check_servers
for s in "${SERVERS[@]}"; do [ "$s" = agentws-hs256 ] && mint_tokens; done
: >"$TMP/load.err"
: >"$TMP/servers.err"
: >"$TMP/all.jsonl"
NS=("$CONNS")
for n in "${MEM_N[@]}"; do [ "$n" != "$CONNS" ] && NS+=("$n"); done
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
BUSY=$(top -bn1 -w 300 2>/dev/null | awk 'NR > 7 && $9 + 0 >= 20 { printf "%s%s (%s%% CPU, nice %s)", sep, $12, $9, $4; sep = ", " }')
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')

for rep in $(seq "$REPS"); do
  echo "repetition $rep/$REPS"
  ORDER=()
  if [ $((rep % 2)) -eq 1 ]; then ORDER=("${SERVERS[@]}")
  else for ((i = ${#SERVERS[@]} - 1; i >= 0; i--)); do ORDER+=("${SERVERS[i]}"); done; fi
  for n in "${NS[@]}"; do
    for s in "${ORDER[@]}"; do run_one "$s" "$n"; done
    if [ -n "${LAST[$n.lws.hs]:-}" ]; then
      for s in "${ORDER[@]}"; do
        add "$n.$s.hsx" "$(awk -v x="${LAST[$n.$s.hs]:-}" -v l="${LAST[$n.lws.hs]}" 'BEGIN { if (x != "" && l > 0) printf "%.3f", x / l }')"
        add "$n.$s.kibx" "$(awk -v x="${LAST[$n.$s.kib]:-}" -v l="${LAST[$n.lws.kib]:-}" 'BEGIN { if (x != "" && l > 0) printf "%.3f", x / l }')"
      done
    fi
    for s in "${ORDER[@]}"; do unset "LAST[$n.$s.hs]" "LAST[$n.$s.kib]"; done
  done
done

# ---- report

# shellcheck disable=SC2059 # the formats are the callers' on purpose
cell() { # cell KEY FORMAT [SCALE]: "median (min – max)", each divided by SCALE
  local s med lo hi
  s=$(printf '%s' "${R[$1]:-}" | stats)
  read -r med lo hi <<<"$s"
  if [ "$med" = n/a ]; then printf 'n/a'; return; fi
  awk -v m="$med" -v a="$lo" -v b="$hi" -v f="$2" -v k="${3:-1}" 'BEGIN { printf f " (" f " – " f ")", m / k, a / k, b / k }'
}
med() { # med KEY
  local s
  s=$(printf '%s' "${R[$1]:-}" | stats)
  echo "${s%% *}"
}
medf() { # medf KEY FORMAT [SCALE]
  local m
  m=$(med "$1")
  if [ "$m" = n/a ]; then printf 'n/a'; else awk -v m="$m" -v f="$2" -v k="${3:-1}" 'BEGIN { printf f, m / k }'; fi
}
sum() { printf '%s' "${R[$1]:-}" | awk '{ s += $1 } END { print s + 0 }'; }
commas() { sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$1"; }

verdicts() {
  local x k m v v1 v2 peer_min best s
  x=$(med "$CONNS.agentws-dev.hsx")
  if [ "$x" != n/a ]; then
    awk -v x="$x" 'BEGIN { exit !(x >= 1.5) }' && v=met || v="not met"
    echo "- Connect rate, libagentws (dev mode) ≥ 1.5× libwebsockets: **$v** (median paired ratio $(awk -v x="$x" 'BEGIN { printf "%.2f", x }')×; HS256: $(medf "$CONNS.agentws-hs256.hsx" '%.2f')×)."
  fi
  for n in "${NS[@]}"; do
    k=$(med "$n.agentws-dev.kib")
    [ "$k" = n/a ] && continue
    peer_min='' best=''
    for s in "${SERVERS[@]}"; do
      case $s in agentws-*) continue ;; esac
      m=$(med "$n.$s.kib")
      [ "$m" = n/a ] && continue
      if [ -z "$peer_min" ] || awk -v a="$m" -v b="$peer_min" 'BEGIN { exit !(a < b) }'; then peer_min=$m best=$s; fi
    done
    awk -v k="$k" 'BEGIN { exit !(k <= 4) }' && v1=met || v1="not met"
    if [ -n "$peer_min" ]; then
      awk -v k="$k" -v p="$peer_min" 'BEGIN { exit !(k < p) }' && v2=met || v2="not met"
      v2="below every peer: **$v2** (lowest peer: $best, $(awk -v p="$peer_min" 'BEGIN { printf "%.2f", p }') KiB)"
    else v2="no peer measured"; fi
    echo "- RSS per idle connection at $(commas "$n"), libagentws (dev mode): $(awk -v k="$k" 'BEGIN { printf "%.2f", k }') KiB; ≤ 4 KiB: **$v1**; $v2."
  done
}

report() {
  local n s
  echo
  echo "## Connect and memory (issue 8): handshakes/s and RSS per idle connection, libagentws and peers, $STARTED"
  echo
  echo "Machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)," \
       "kernel $(uname -r), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM; load average at start $LOADAVG; NOFILE limit $(ulimit -n)."
  echo "Busy processes at start: ${BUSY:-none}."
  echo "libagentws $LIB_BUILT ($BUILD, $(git -C "$ROOT" rev-parse --short HEAD), copied before the first run);" \
       "libwebsockets $(pkg-config --modversion libwebsockets 2>/dev/null || echo n/a)," \
       "Node $("$NODE" --version 2>/dev/null || echo n/a) with ws $(sed -n 's/.*"version": "\(.*\)".*/\1/p' "$PEERS/node_modules/ws/package.json" 2>/dev/null | head -n1)," \
       "Python $("$PY" -c 'import sys; print(sys.version.split()[0])') with websockets $("$PY" -c 'import websockets; print(websockets.__version__)' 2>/dev/null)."
  echo "Each value: median of $REPS runs (min – max); × lws: ratios paired within a repetition (median of the per-repetition ratios)."
  echo "Every run is a fresh server; in a repetition each N runs on every server in turn, the order reversed every other repetition."
  echo
  echo "Commands (\`bench/run-connect.sh\`, REPS=$REPS CONNS=$CONNS MEM_CONNS=\"${MEM_N[*]}\" MAX_PENDING=$MAX_PENDING RATE=$RATE HOLD=$HOLD SETTLE=$SETTLE; PORT: what the server printed):"
  echo
  echo '```'
  echo "agentws-demo --mode agent --port 0 --dev-insecure                          # agentws-dev"
  echo "agentws-demo --mode agent --port 0 --jwt-hs256-secret-file SECRET          # agentws-hs256"
  echo "lws-server --mode echo --port 0 --max-run $((SRV_TIMEOUT + 30))                                # lws"
  echo "node bench/peers/ws-server.mjs --mode echo --port 0 --max-run $((SRV_TIMEOUT + 30))            # ws"
  echo "python3 bench/python/pure_server.py --port 0 --conns 1000000 --users 1 --wait $((SRV_TIMEOUT + 30))   # python (holds only)"
  echo "agentws-load --mode connect --port PORT --conns N --hold $HOLD --max-pending $MAX_PENDING --connect-timeout $CONNECT_TIMEOUT --query 'user=u%d'$([ "$RATE" != 0 ] && echo " --rate $RATE") [--token-file TOKENS]"
  echo '```'
  echo
  echo "agentws-load is a private build with bench/connect-lat.c linked in (\`-Wl,--wrap=load_on_open\`) for the per-connection latency;" \
       "TOKENS: HS256 tokens for sub u0..u$((NMAX - 1)), connection i sends token i. Each server runs under \`timeout $SRV_TIMEOUT\`."
  echo
  echo "### Connect: $(commas "$CONNS") connections, at most $MAX_PENDING connects/upgrades in flight$([ "$RATE" != 0 ] && echo ", $RATE/s")"
  echo
  echo "Handshakes/s: connections opened / open_ms (first connect to last 101). Latency: connect start to the 101, per connection;" \
       "unpaced with $MAX_PENDING in flight it is mostly queueing (≈ $MAX_PENDING / rate). CPU over the connect phase, in cores."
  echo
  echo "| server | handshakes/s | × lws | p50 (ms) | p99 (ms) | server CPU (cores) | server CPU per handshake (us) | load generator CPU (cores) | other CPU (cores) | errors |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  n=$CONNS
  for s in "${SERVERS[@]}"; do
    echo "| $s | $(cell "$n.$s.hs" '%.0f') | $(cell "$n.$s.hsx" '%.2f') | $(cell "$n.$s.p50" '%.1f' 1000) | $(cell "$n.$s.p99" '%.1f' 1000) | $(medf "$n.$s.scpu" '%.2f') | $(medf "$n.$s.per" '%.1f') | $(medf "$n.$s.gcpu" '%.2f') | $(medf "$n.$s.other" '%.2f') | $(sum "$n.$s.err") |"
  done
  echo
  for s in "${SERVERS[@]}"; do
    awk -v c="$(med "$n.$s.gcpu")" 'BEGIN { exit !(c != "n/a" && c >= 0.85) }' &&
      echo "$s: the load generator used $(medf "$n.$s.gcpu" '%.2f') of a core (server $(medf "$n.$s.scpu" '%.2f')), so the generator, not the server, set the pace: the figure is a lower bound."
  done
  local busy=()
  for s in "${SERVERS[@]}"; do
    awk -v g="$(med "$n.$s.gcpu")" -v c="$(med "$n.$s.scpu")" -v o="$(med "$n.$s.other")" \
      'BEGIN { exit !(g != "n/a" && g < 0.85 && c < 0.85 && o >= 0.5) }' && busy+=("$s")
  done
  [ ${#busy[@]} -gt 0 ] &&
    echo "${busy[*]}: neither the server nor the load generator used a whole core while other work used $(for s in "${busy[@]}"; do med "$n.$s.other"; done | stats | awk '{ printf "%.2f–%.2f", $2, $3 }') of the $(nproc) CPUs (the range of their medians), so these rates are what the two got of shared CPUs, lower than on an idle machine; the ratios are paired within a repetition."
  echo
  echo "### Memory: server RSS per idle connection"
  echo
  echo "(VmRSS $SETTLE s after the last connection opened, all held idle − VmRSS before the first) / N, from /proc/PID/status (user-space memory only; kernel socket buffers are not in RSS)." \
       "Runs past ~14,000 connections open slowly whatever the server: from one source address to one server address the kernel" \
       "tries one parity of ip_local_port_range ($(tr '\t' - </proc/sys/net/ipv4/ip_local_port_range)) first, and once those ports are taken every connect() scans them."
  echo
  local hdr="| server | RSS before (MiB)" sep="|---|---:"
  for n in "${NS[@]}"; do hdr+=" | KiB/conn at $(commas "$n") | × lws"; sep+="|---:|---:"; done
  echo "$hdr |"
  echo "$sep|"
  for s in "${SERVERS[@]}"; do
    local row
    row="| $s | $(medf "$CONNS.$s.rss0" '%.1f' 1024)"
    for n in "${NS[@]}"; do
      if [ "$(med "$n.$s.open")" = "$n" ] || [ "$(med "$n.$s.kib")" = n/a ]; then
        row+=" | $(cell "$n.$s.kib" '%.2f') | $(cell "$n.$s.kibx" '%.2f')"
      else
        row+=" | $(cell "$n.$s.kib" '%.2f') ($(medf "$n.$s.open" '%.0f') opened) | $(cell "$n.$s.kibx" '%.2f')"
      fi
    done
    echo "$row |"
  done
  echo
  echo "Targets:"
  echo
  verdicts
  echo
  [ "$BUSY_RUNS" -gt 0 ] &&
    echo "Note: before $BUSY_RUNS of the $RUNS runs the rest of the machine still used more than $QUIET_CORES cores (niced work not counted) after $QUIET_WAIT s of waiting; measured anyway."
  for x in "${NOTES[@]}"; do echo "Note: $x."; done | sort | uniq -c | sed 's/^ *\([0-9]*\) \(.*\)/\2 (x\1)/'
  echo
  echo "<details><summary>per run: the server's RSS (before, held, after the close) and CPU, agentws-load's JSON and the latency line, one JSON line each</summary>"
  echo
  echo '```'
  cat "$TMP/all.jsonl"
  echo '```'
  echo "</details>"
}

report | tee "$TMP/report.md"
[ "$RESULTS" = /dev/null ] || cat "$TMP/report.md" >>"$RESULTS"

if grep -qv -e 'connections open in' -e '^agentws-load: holding' "$TMP/load.err"; then
  echo "run-connect: agentws-load stderr (distinct lines, counted):" >&2
  grep -v -e 'connections open in' -e '^agentws-load: holding' "$TMP/load.err" | sort | uniq -c | head -n 20 >&2
fi
if [ -s "$TMP/servers.err" ]; then
  echo "run-connect: server stderr (distinct lines, counted):" >&2
  sed 's/[0-9][0-9]*/N/g' "$TMP/servers.err" | sort | uniq -c | sort -rn | head -n 30 >&2
fi
