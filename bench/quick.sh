#!/usr/bin/env bash
# quick.sh: the regression guard CI runs (issue 8). A few seconds of each
# hot path, libagentws beside libwebsockets in the same run so the ratio
# means something on a noisy machine: per-user fan-out, room broadcast and
# echo (100 connections, depth 16, 64 B), one repetition of 2 s each.
# Prints the tables; never fails on the figures (only if it cannot run).
#   bench/quick.sh            (CI: .ci/run, "quick benchmark" stage)
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPS=1 DURATION=${DURATION:-2} WARMUP=0.5 CONNS=${CONNS:-500} \
ECHO_CONNS=100 PIPELINES=16 SIZES=64 SCENARIOS="fanout room echo" \
SERVERS="lws libagentws" QUIET_WAIT=0 RESULTS=/dev/null CHART= \
  bash "$ROOT/bench/run-peers.sh" | sed -n '/^### /,/^$/p;/^| /p;/may have set the pace/p'
