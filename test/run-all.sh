#!/usr/bin/env bash
# Runs every test: unit (cmocka), api, abi, and end-to-end (Python
# websockets, Node ws, headless Chromium). Installs missing Debian packages
# and the e2e npm modules first.
#   test/run-all.sh              regular build in ./build
#   test/run-all.sh --sanitize   ASan+UBSan build in ./build-asan
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
builddir="$root/build"
setup_args=(--wrap-mode=nodownload)
if [ "${1:-}" = "--sanitize" ]; then
  builddir="$root/build-asan"
  setup_args+=(-Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug)
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
fi
bash "$root/.ci/deps.sh"
bash "$root/test/e2e/setup-node-deps.sh"
[ -f "$builddir/build.ninja" ] || meson setup "$builddir" "$root" "${setup_args[@]}"
ninja -C "$builddir"
meson test -C "$builddir" --print-errorlogs
