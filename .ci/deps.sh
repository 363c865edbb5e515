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
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
