#!/usr/bin/env bash
# run-fuzz.sh FUZZER SEED_DIR SECONDS: runs a libFuzzer target for a bounded
# time; new inputs go to a temp dir so the committed seed corpus stays small.
set -euo pipefail
fuzzer="$1"; seeds="$2"; secs="${3:-30}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$fuzzer" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 "$work" "$seeds" 2>"$work/log" || { tail -50 "$work/log"; exit 1; }
grep -E "stat::number_of_executed_units|stat::average_exec_per_sec|Done" "$work/log" | tail -3
