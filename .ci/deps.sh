#!/usr/bin/env bash
# Installs the Debian packages in .ci/packages.txt that are missing.
# Idempotent and quiet when everything is there already.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
missing=()
for p in $(cat "$here/packages.txt"); do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
# npm: Debian's package, unless a nodejs build that bundles npm is there
# (NodeSource's conflicts with Debian's npm).
command -v npm >/dev/null 2>&1 || missing+=(npm)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
