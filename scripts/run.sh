#!/usr/bin/env bash
# run.sh — starts the server in the foreground with the local development state in var/dev
# (created on first use). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
setup_env var/dev 9080
echo "config: $HWFIDO_CONFIG — caller tokens: $BIN/fidoctl caller token -key var/dev/secrets/login.key -iss https://login.example -user alice"
exec "$BIN/hwfido-server" -config "$HWFIDO_CONFIG"
