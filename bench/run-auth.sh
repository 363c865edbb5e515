#!/usr/bin/env bash
# run-auth.sh: authenticated handshakes per second and the cost of JWT
# verification, with and without the verification cache.
#
#   - tokens for 1,000 users (sub u0..u999, exp now + 1 h) minted with the
#     Debian python3-jwt package: HS256 with a random 32-byte secret (64
#     hex characters), RS256 with a fresh 2048-bit key (python3-cryptography);
#   - agentws-demo (agent mode) with the HS256 secret and with the RS256
#     public key, each with the verification cache on (the default, 10,000
#     entries) and off (--jwt-cache-size 0);
#   - against each, agentws-load --mode reconnect: 1,000 clients, client i
#     sends token i, each connects, upgrades, reads the welcome, closes and
#     connects again; handshakes/s, connect -> welcome latency, the server's
#     CPU per handshake, and the CPU the rest of the machine used;
#   - jwt-verify: microseconds per verification (agentws__jwt_verify) and per
#     warm-cache check (agentws__jwt_check) for HS256, RS256 and ES256.
#
# The four servers run in turn, the order reversed every other repetition;
# REPS repetitions (default 3), medians and min - max. A Markdown section is
# printed and appended to bench/RESULTS.md. Target: >= 10,000 authenticated
# handshakes/s with HS256.
#
# Environment (all optional):
#   AGENTWS_BUILD  meson build directory            (default build)
#   AGENTWS_DEMO   demo server binary               (default $AGENTWS_BUILD/examples/agentws-demo)
#   AGENTWS_LOAD   load generator binary            (default $AGENTWS_BUILD/bench/agentws-load)
#   JWT_VERIFY     verification micro-benchmark     (default $AGENTWS_BUILD/bench/jwt-verify)
#   REPS DURATION WARMUP CONNS USERS RESULTS
#   QUIET_WAIT     seconds to wait before each run for the rest of the machine
#                  to use under QUIET_CORES (default 5, 0.25); then it runs anyway
#   VERIFY_ARGS    jwt-verify options (default --reps 5 --min-time 0.2)
# Stale or missing bench binaries are compiled with cc into a temporary
# directory (jwt-verify against $AGENTWS_BUILD/lib/libagentws.a).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${AGENTWS_BUILD:-$ROOT/build}
DEMO=${AGENTWS_DEMO:-$BUILD/examples/agentws-demo}
LOAD=${AGENTWS_LOAD:-$BUILD/bench/agentws-load}
VERIFY=${JWT_VERIFY:-$BUILD/bench/jwt-verify}
REPS=${REPS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-1000}
USERS=${USERS:-1000}
QUIET_WAIT=${QUIET_WAIT:-5}
QUIET_CORES=${QUIET_CORES:-0.25}
VERIFY_ARGS=${VERIFY_ARGS:---reps 5 --min-time 0.2}
read -r -a VERIFY_ARGV <<<"$VERIFY_ARGS"
RESULTS=${RESULTS:-$ROOT/bench/RESULTS.md}
PY=/usr/bin/python3
CASES=(hs-cache hs-nocache rs-cache rs-nocache)

TMP=$(mktemp -d /tmp/agentws-auth.XXXXXX)
SRV_PID=
LOAD_PID=

die() { echo "run-auth: $*" >&2; exit 1; }

cleanup() {
  [ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null
  [ -n "$SRV_PID" ] && kill -TERM "$SRV_PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

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

build_tools() {
  local src=$ROOT/bench
  local flags=(-std=c11 -O2 -Wall -Wextra)
  if [ -z "${AGENTWS_LOAD:-}" ] && stale "$LOAD" "$src"/agentws-load.c "$src"/load_conn.c \
      "$src"/load_hist.c "$src"/load.h "$src"/load_hist.h; then
    LOAD=$TMP/agentws-load
    echo "run-auth: building $LOAD" >&2
    # shellcheck disable=SC2046
    cc "${flags[@]}" -o "$LOAD" "$src/agentws-load.c" "$src/load_conn.c" "$src/load_hist.c" \
      $(pkg-config --cflags --libs libuv libcrypto) -lwslay -lm || die "build failed"
  fi
  if [ -z "${JWT_VERIFY:-}" ] && stale "$VERIFY" "$src"/jwt-verify.c "$BUILD"/lib/libagentws.a; then
    VERIFY=$TMP/jwt-verify
    echo "run-auth: building $VERIFY" >&2
    [ -f "$BUILD/lib/libagentws.a" ] || die "no $BUILD/lib/libagentws.a (meson compile -C $BUILD)"
    # The static library's objects carry the internal agentws__ symbols.
    # shellcheck disable=SC2046
    cc "${flags[@]}" -D_POSIX_C_SOURCE=200809L -I"$ROOT/include" -I"$BUILD/include" -I"$ROOT/lib" \
      -o "$VERIFY" "$src/jwt-verify.c" "$BUILD/lib/libagentws.a" \
      $(pkg-config --cflags --libs cjose jansson libuv libcrypto) -lwslay -pthread -lm ||
      die "build failed"
  fi
  [ -x "$LOAD" ] || die "no load generator at $LOAD"
  [ -x "$VERIFY" ] || die "no jwt-verify at $VERIFY"
}

# The library is rebuilt while others work: run a private copy of the demo
# and of the libagentws it loads, so every repetition measures one build.
snapshot_demo() {
  local lib soname
  DEMO_BUILT=$(date -u -r "$DEMO" '+%Y-%m-%d %H:%M UTC')
  lib=$(ldd "$DEMO" 2>/dev/null | awk '/libagentws/ { print $3 }')
  mkdir -p "$TMP/snap"
  cp "$DEMO" "$TMP/snap/" || die "cannot copy $DEMO"
  cp "$LOAD" "$TMP/snap/agentws-load" || die "cannot copy $LOAD"
  cp "$VERIFY" "$TMP/snap/jwt-verify" || die "cannot copy $VERIFY"
  DEMO_RUN=$TMP/snap/$(basename "$DEMO")
  LOAD_RUN=$TMP/snap/agentws-load
  VERIFY_RUN=$TMP/snap/jwt-verify
  LIB_BUILT="statically linked or not found"
  if [ -n "$lib" ] && [ -f "$lib" ]; then
    soname=$(ldd "$DEMO" | awk '/libagentws/ { print $1 }')
    cp -L "$lib" "$TMP/snap/$soname" || die "cannot copy $lib"
    LIB_BUILT="built $(date -u -r "$lib" '+%Y-%m-%d %H:%M UTC')"
    export LD_LIBRARY_PATH=$TMP/snap${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  fi
  "$DEMO_RUN" --help 2>&1 | grep -q usage
}

# mint_tokens: $TMP/hs.secret, $TMP/rs.pem (public), $TMP/{hs,rs}.tokens.
mint_tokens() {
  "$PY" - "$TMP" "$USERS" <<'EOF' || die "token minting failed (python3-jwt, python3-cryptography)"
import os, secrets, sys, time
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

tmp, users = sys.argv[1], int(sys.argv[2])
now = int(time.time())
secret = secrets.token_hex(32)  # 64 bytes of text; the demo drops a trailing newline
with open(os.path.join(tmp, "hs.secret"), "w") as f:
    f.write(secret)
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
with open(os.path.join(tmp, "rs.pem"), "wb") as f:
    f.write(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
for name, alg, k in (("hs", "HS256", secret.encode()), ("rs", "RS256", key)):
    with open(os.path.join(tmp, name + ".tokens"), "w") as f:
        for i in range(users):
            claims = {"sub": "u%d" % i, "iat": now, "exp": now + 3600}
            f.write(jwt.encode(claims, k, algorithm=alg) + "\n")
print("jwt %s, cryptography %s" % (jwt.__version__,
      __import__("cryptography").__version__))
EOF
}

# start_server CMD...: sets SRV_PID and SRV_PORT once it prints "listening on".
start_server() {
  local line
  : >"$TMP/srv.out"
  "$@" >"$TMP/srv.out" 2>>"$TMP/srv.err" &
  SRV_PID=$!
  for _ in $(seq 150); do
    line=$(grep -m1 '^listening on ' "$TMP/srv.out" 2>/dev/null)
    if [ -n "$line" ]; then
      SRV_PORT=${line##*:}
      return 0
    fi
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.1
  done
  tail -n5 "$TMP/srv.err" >&2
  die "the demo did not print 'listening on HOST:PORT'"
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
    NOTES+=("$name: the demo did not exit within 10 s of SIGTERM (killed)")
  fi
  wait "$SRV_PID"
  rc=$?
  [ "$rc" -ne 0 ] && NOTES+=("$name: the demo exited $rc after SIGTERM (expected 0)")
  SRV_PID=
}

# cpu_ticks PID: user+system clock ticks of a process.
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
# busy_ticks: user+nice+system+irq+softirq+steal jiffies of all CPUs.
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
CLK_TCK=$(getconf CLK_TCK)

# jget JSON FIELD: one numeric field of a flat JSON line (first match).
jget() { sed -n "s/.*\"$2\":\\([-0-9.e+]*\\).*/\\1/p" <<<"$1" | head -n1; }

# stats: numbers on stdin -> "median min max".
stats() {
  sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "n/a n/a n/a"; exit }
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    print m, v[1], v[NR] }'
}

declare -A R    # R[key] = newline-separated samples
declare -A LAST # LAST[case.field] = this repetition's value
NOTES=()
add() { [ -n "$2" ] && R[$1]+="$2"$'\n'; }

# wait_quiet KEY: give a burst of other work on the 2 CPUs (a build, a test
# suite) up to QUIET_WAIT s to pass before measuring.
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

server_args() { # server_args CASE: the demo's flags for it
  local a=(--mode agent --port 0)
  case $1 in
    hs-*) a+=(--jwt-hs256-secret-file "$TMP/hs.secret") ;;
    rs-*) a+=(--jwt-pem-file "$TMP/rs.pem") ;;
  esac
  [ "${1#*-}" = nocache ] && a+=(--jwt-cache-size 0)
  echo "${a[@]}"
}

run_case() { # run_case CASE
  local key=$1 tok j s0 s1 b0 b1 scpu ccpu hs other
  local -a sargs
  tok=$TMP/${key%%-*}.tokens
  read -r -a sargs <<<"$(server_args "$key")"
  wait_quiet "$key"
  start_server "$DEMO_RUN" "${sargs[@]}"
  : >"$TMP/load.err1"
  "$LOAD_RUN" --mode reconnect --port "$SRV_PORT" --conns "$CONNS" --token-file "$tok" \
    --duration "$DURATION" --warmup "$WARMUP" >"$TMP/load.out" 2>"$TMP/load.err1" &
  LOAD_PID=$!
  # The window starts WARMUP s after the clients start: sample the server's
  # and the machine's CPU over it.
  s0='' s1=''
  for _ in $(seq 100); do
    grep -q 'clients reconnecting' "$TMP/load.err1" && break
    kill -0 "$LOAD_PID" 2>/dev/null || break
    sleep 0.02
  done
  if grep -q 'clients reconnecting' "$TMP/load.err1"; then
    sleep "$WARMUP"
    s0=$(cpu_ticks "$SRV_PID")
    b0=$(busy_ticks)
    sleep "$DURATION"
    s1=$(cpu_ticks "$SRV_PID")
    b1=$(busy_ticks)
  fi
  wait "$LOAD_PID"
  LOAD_PID=
  cat "$TMP/load.err1" >>"$TMP/load.err"
  stop_server "$key"
  j=$(cat "$TMP/load.out")
  [ -n "$j" ] || die "agentws-load printed nothing: $(tail -n3 "$TMP/load.err")"
  echo "$j" >>"$TMP/all.jsonl"
  hs=$(jget "$j" hs_per_s)
  ccpu=$(jget "$j" client_cpu)
  scpu='' other=''
  if [ -n "$s0" ] && [ -n "$s1" ]; then
    scpu=$(awk -v a="$s0" -v b="$s1" -v hz="$CLK_TCK" -v d="$DURATION" \
      'BEGIN { printf "%.2f", (b - a) / hz / d }')
    other=$(awk -v a="$b0" -v b="$b1" -v hz="$CLK_TCK" -v d="$DURATION" -v s="$scpu" -v c="$ccpu" \
      'BEGIN { o = (b - a) / hz / d - s - c; if (o < 0) o = 0; printf "%.2f", o }')
    add "$key.scpu" "$scpu"
    add "$key.other" "$other"
    LAST[$key.cpu_per]=$(awk -v c="$scpu" -v r="$hs" 'BEGIN { if (r > 0) printf "%.2f", c / r * 1e6 }')
    add "$key.cpu_per" "${LAST[$key.cpu_per]}"
  fi
  LAST[$key.hs]=$hs
  add "$key.hs" "$hs"
  add "$key.p50" "$(jget "$j" p50_us)"
  add "$key.p99" "$(jget "$j" p99_us)"
  add "$key.max" "$(jget "$j" max_us)"
  add "$key.ccpu" "$ccpu"
  add "$key.err" "$(jget "$j" errors)"
  printf '  %-10s %8.0f handshakes/s  welcome p50 %7.0f p99 %7.0f us  server %s cores, %s us/handshake  client %s  other %s  errors %s\n' \
    "$key" "$hs" "$(jget "$j" p50_us)" "$(jget "$j" p99_us)" "${scpu:-n/a}" \
    "${LAST[$key.cpu_per]:-n/a}" "$ccpu" "${other:-n/a}" "$(jget "$j" errors)"
}

# ---- run

T_START=$(date +%s)
build_tools
[ -x "$DEMO" ] || die "demo server not found at $DEMO (set AGENTWS_DEMO or AGENTWS_BUILD)"
for _ in 1 2 3 4 5 6; do # a rebuild in progress leaves a short .so: wait for it
  snapshot_demo && break
  echo "run-auth: demo snapshot does not start yet, retrying" >&2
  sleep 10
done
"$DEMO_RUN" --help 2>&1 | grep -q usage || die "the demo does not start: $("$DEMO_RUN" --help 2>&1 | head -n2)"
: >"$TMP/load.err"
: >"$TMP/srv.err"
: >"$TMP/all.jsonl"
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
BUSY=$(top -bn1 -w 200 2>/dev/null | awk 'NR > 7 && $9 + 0 >= 20 { printf "%s%s (%s%% CPU)", sep, $12, $9; sep = ", " }')
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
BUILDTYPE=$("$PY" -c 'import json, sys
print(next(o["value"] for o in json.load(open(sys.argv[1])) if o["name"] == "buildtype"))' \
  "$BUILD/meson-info/intro-buildoptions.json" 2>/dev/null) || BUILDTYPE=unknown
PYVER=$(mint_tokens) || exit 1
echo "tokens: $USERS users, HS256 and RS256 ($PYVER)"

for rep in $(seq "$REPS"); do
  echo "repetition $rep/$REPS"
  # Reverse the order every other repetition so slow drift favours no case.
  if [ $((rep % 2)) -eq 1 ]; then order=("${CASES[@]}"); else
    order=(); for ((i = ${#CASES[@]} - 1; i >= 0; i--)); do order+=("${CASES[$i]}"); done
  fi
  for c in "${order[@]}"; do
    run_case "$c"
  done
  # Paired, seconds apart in the same repetition.
  for a in hs rs; do
    add "$a.ratio" "$(awk -v x="${LAST[$a-cache.hs]}" -v y="${LAST[$a-nocache.hs]}" \
      'BEGIN { if (y > 0) printf "%.3f", x / y }')"
    add "$a.saved" "$(awk -v x="${LAST[$a-nocache.cpu_per]:-}" -v y="${LAST[$a-cache.cpu_per]:-}" \
      'BEGIN { if (x != "" && y != "") printf "%.2f", x - y }')"
    add "$a.cpuratio" "$(awk -v x="${LAST[$a-nocache.cpu_per]:-}" -v y="${LAST[$a-cache.cpu_per]:-}" \
      'BEGIN { if (x != "" && y > 0) printf "%.3f", x / y }')"
  done
done

echo "jwt-verify ${VERIFY_ARGS}"
"$VERIFY_RUN" "${VERIFY_ARGV[@]}" >"$TMP/verify.jsonl" 2>>"$TMP/load.err" || die "jwt-verify failed: $(tail -n3 "$TMP/load.err")"
cat "$TMP/verify.jsonl"
ELAPSED=$(($(date +%s) - T_START))

# ---- report

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
med() { printf '%s' "${R[$1]:-}" | stats | cut -d' ' -f1; }
vget() { jget "$(grep "\"alg\":\"$1\"" "$TMP/verify.jsonl")" "$2"; }

hs_med=$(med hs-cache.hs)
hs_nc_med=$(med hs-nocache.hs)
verdict=$(awk -v r="$hs_med" 'BEGIN { print (r >= 10000) ? "meets" : "misses" }')
verdict_nc=$(awk -v r="$hs_nc_med" 'BEGIN { print (r >= 10000) ? "above" : "below" }')
errs=$(for c in "${CASES[@]}"; do printf '%s' "${R[$c.err]:-}"; done | awk '{ s += $1 } END { print s + 0 }')
label() {
  case $1 in
    hs-cache) echo "HS256, cache on" ;; hs-nocache) echo "HS256, cache off" ;;
    rs-cache) echo "RS256, cache on" ;; rs-nocache) echo "RS256, cache off" ;;
  esac
}

{
  echo
  echo "## Auth: handshakes/s and JWT verification cost, $STARTED"
  echo
  echo "Machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)," \
       "kernel $(uname -r); load average at start $LOADAVG; NOFILE limit $(ulimit -n)."
  echo "Busy processes at start: ${BUSY:-none}."
  echo "Demo: ${DEMO#"$ROOT"/}, built $DEMO_BUILT; libagentws $LIB_BUILT (both copied before the first run);" \
       "meson buildtype $BUILDTYPE."
  echo "Tokens: $USERS users (sub u0..u$((USERS - 1)), exp now + 1 h), minted with python3-jwt ($PYVER);" \
       "HS256 with a 64-character random secret, RS256 with a fresh 2048-bit key. Client i sends token i."
  echo "Each value: median of $REPS runs, min – max. The four servers run in turn, the order reversed every other repetition;" \
       "server and load generator share the machine, nothing pinned. The whole script took ${ELAPSED} s."
  echo
  echo "Commands (PORT is the port the server printed; the cache is on by default, 10,000 entries):"
  echo
  echo '```'
  echo "${AGENTWS_BUILD:+AGENTWS_BUILD=$AGENTWS_BUILD }bench/run-auth.sh            # REPS=$REPS DURATION=$DURATION WARMUP=$WARMUP CONNS=$CONNS USERS=$USERS"
  echo "$(basename "$DEMO") --mode agent --port 0 --jwt-hs256-secret-file hs.secret [--jwt-cache-size 0]"
  echo "$(basename "$DEMO") --mode agent --port 0 --jwt-pem-file rs.pem [--jwt-cache-size 0]"
  echo "agentws-load --mode reconnect --port PORT --conns $CONNS --token-file {hs,rs}.tokens --duration $DURATION --warmup $WARMUP"
  echo "jwt-verify ${VERIFY_ARGS}"
  echo '```'
  echo
  echo "A handshake: TCP connect, upgrade request with \`Authorization: Bearer\`, 101, the welcome message;" \
       "then the client closes (close frame, the server's FIN) and connects again. Latency: connect start to the welcome."
  echo "Server CPU per handshake: the demo's user+system CPU over the window / handshakes in it (kernel TCP work included)."
  echo "\"other\": CPU the rest of the machine used in the window (/proc/stat minus the two programs)."
  echo
  echo "| measurement | median | min – max |"
  echo "|---|---:|---:|"
  for c in "${CASES[@]}"; do row "handshakes/s, $(label "$c")" "$c.hs" '%.0f'; done
  row "handshakes/s, HS256 cache on / cache off (paired)" hs.ratio '%.2f'
  row "handshakes/s, RS256 cache on / cache off (paired)" rs.ratio '%.2f'
  for c in "${CASES[@]}"; do row "p50 connect -> welcome (us), $(label "$c")" "$c.p50" '%.0f'; done
  for c in "${CASES[@]}"; do row "p99 connect -> welcome (us), $(label "$c")" "$c.p99" '%.0f'; done
  for c in "${CASES[@]}"; do row "server CPU per handshake (us), $(label "$c")" "$c.cpu_per" '%.1f'; done
  row "server CPU per handshake saved by the cache (us), HS256 (paired)" hs.saved '%.1f'
  row "server CPU per handshake saved by the cache (us), RS256 (paired)" rs.saved '%.1f'
  row "server CPU per handshake, HS256 cache off / cache on (paired)" hs.cpuratio '%.2f'
  row "server CPU per handshake, RS256 cache off / cache on (paired)" rs.cpuratio '%.2f'
  for c in "${CASES[@]}"; do row "server CPU (cores), $(label "$c")" "$c.scpu" '%.2f'; done
  for c in "${CASES[@]}"; do row "load generator CPU (cores), $(label "$c")" "$c.ccpu" '%.2f'; done
  for c in "${CASES[@]}"; do row "other CPU on the machine (cores), $(label "$c")" "$c.other" '%.2f'; done
  echo
  echo "JWT verification alone (jwt-verify: fresh keys made with cjose, 1,000 tokens round-robin;" \
       "median of $(vget HS256 reps) timings of >= $(vget HS256 min_time_s) s each, min – max):"
  echo
  echo "| algorithm | verify, no cache (us) | warm cache hit (us) | no cache / cache | vs HS256 without cache |"
  echo "|---|---:|---:|---:|---:|"
  for a in HS256 RS256 ES256; do
    printf '| %s | %.2f (%.2f – %.2f) | %.2f (%.2f – %.2f) | %.1f | %.1f |\n' "$a" \
      "$(vget $a verify_us)" "$(vget $a verify_us_min)" "$(vget $a verify_us_max)" \
      "$(vget $a cached_us)" "$(vget $a cached_us_min)" "$(vget $a cached_us_max)" \
      "$(vget $a verify_per_cached)" \
      "$(awk -v a="$(vget $a verify_us)" -v h="$(vget HS256 verify_us)" 'BEGIN { if (h > 0) printf "%.1f", a / h }')"
  done
  echo
  echo "Target >= 10,000 authenticated handshakes/s with HS256: median $(printf '%.0f' "$hs_med") with the cache" \
       "(the default), which $verdict the target; without the cache the median is $(printf '%.0f' "$hs_nc_med"), $verdict_nc it." \
       "Errors counted by the load generator over all runs: $errs."
  read -r ccpu_hs _ _ <<<"$(printf '%s' "${R[hs-cache.ccpu]:-}" | stats)"
  read -r cpu_hs _ _ <<<"$(printf '%s' "${R[hs-cache.cpu_per]:-}" | stats)"
  if awk -v c="$ccpu_hs" 'BEGIN { exit !(c >= 0.9) }'; then
    echo "The load generator used $ccpu_hs of a core in the HS256 cache-on runs, so handshakes/s there is what" \
         "the generator could drive, a lower bound for the server; at $(printf '%.1f' "$cpu_hs") us of server CPU per handshake one" \
         "server core would sustain about $(awk -v u="$cpu_hs" 'BEGIN { if (u > 0) printf "%.0f", 1e6 / u }')/s."
  fi
  for n in "${NOTES[@]}"; do echo "Note: $n."; done | sort | uniq -c | sed 's/^ *\([0-9]*\) \(.*\)/\2 (x\1)/'
  echo
  echo "<details><summary>agentws-load and jwt-verify output, one JSON line per run</summary>"
  echo
  echo '```'
  cat "$TMP/all.jsonl" "$TMP/verify.jsonl"
  echo '```'
  echo "</details>"
} >"$TMP/section.md"

cat "$TMP/section.md"
cat "$TMP/section.md" >>"$RESULTS"
echo "run-auth: appended to $RESULTS" >&2
if [ -s "$TMP/load.err" ] && grep -qv -e 'clients reconnecting' "$TMP/load.err"; then
  echo "run-auth: agentws-load / jwt-verify stderr:" >&2
  grep -v -e 'clients reconnecting' "$TMP/load.err" | tail -n 20 >&2
fi
