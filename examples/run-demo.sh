#!/usr/bin/env bash
# Builds libagentws and runs the demo server on 127.0.0.1:8080 (Ctrl-C stops
# it). Installs the Debian packages it needs first if any are missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/.ci/deps.sh"
[ -f "$root/build/build.ninja" ] || meson setup "$root/build" "$root" --wrap-mode=nodownload
ninja -C "$root/build"
exec "$root/build/examples/agentws-demo" --host 127.0.0.1 --port "${PORT:-8080}" "$@"
