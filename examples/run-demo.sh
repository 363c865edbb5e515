#!/usr/bin/env bash
# Builds libagentws and runs the demo agent server on 127.0.0.1:8080 (Ctrl-C
# stops it). Installs the Debian packages it needs first if any are missing.
# Runs in the INSECURE development mode (user id from ?user=) until JWT auth
# lands; extra arguments are passed on (e.g. --mode echo).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/.ci/deps.sh"
[ -f "$root/build/build.ninja" ] || meson setup "$root/build" "$root" --wrap-mode=nodownload
ninja -C "$root/build"
echo "try: /usr/bin/python3 $root/examples/agent-client.py --user alice 'hello'" >&2
echo "or open http://127.0.0.1:${PORT:-8080}/chat?user=alice and /dashboard" >&2
exec "$root/build/examples/agentws-demo" --host 127.0.0.1 --port "${PORT:-8080}" \
  --dev-insecure "$@"
