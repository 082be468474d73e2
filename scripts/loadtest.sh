#!/usr/bin/env bash
# loadtest.sh [CLIENTS] [DURATION] — starts a real server on a fresh SoftHSM token and
# SQLite file under var/loadtest and runs fidobench against it over loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
clients=${1:-64} duration=${2:-10s}
dir=var/loadtest
rm -rf "$dir"
setup_env "$dir" 19180 >/dev/null
trap stop_server EXIT
start_server "$dir/server.log"
"$BIN/fidobench" run -url http://127.0.0.1:19180 -facet https://app.example -login-key "$dir/secrets/login.key" \
  -iss https://login.example -aud hwfido -clients "$clients" -duration "$duration"
