#!/bin/sh
# Installs the npm modules of the Node peer (ws) into bench/peers/node_modules
# from the committed package-lock.json. libwebsockets comes from Debian:
# apt-get install -y libwebsockets-dev (then meson builds bench/lws-server).
set -eu
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
