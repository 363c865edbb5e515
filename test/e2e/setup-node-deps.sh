#!/bin/sh
# Installs the npm modules of the end-to-end tests (ws, playwright-core) into
# test/e2e/node/node_modules from the committed package-lock.json.
# Chromium itself comes from Debian: apt-get install -y chromium
set -eu
cd "$(dirname "$0")/node"
if [ -f package-lock.json ]; then
  npm ci --no-audit --no-fund
else
  npm install --no-audit --no-fund
fi
