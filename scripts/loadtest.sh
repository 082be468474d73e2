#!/usr/bin/env bash
# loadtest.sh [CLIENTS] [DURATION] [ROUNDS] — starts one real server on a fresh SoftHSM token
# and SQLite file under var/loadtest and runs fidobench against it over loopback.
# CLIENTS may be a comma-separated list (e.g. 16,64): each round runs every client count
# once, so rounds interleave and see similar machine load. For every run it prints
# fidobench's summary and one line
#   RESULT clients=N auth=… per_s=… p50_ms=… p99_ms=… client_cpu_s=… server_cpu_s=… load1=…
# where server_cpu_s is the server process's user+system CPU time during the run (from
# /proc/PID/stat) and client_cpu_s fidobench's own; scripts/bench.sh takes medians.
# Every run is bounded by DURATION and fidobench's -max count. SERVER_GOGC and
# SERVER_GOMAXPROCS, when set, become the server's GOGC/GOMAXPROCS (not fidobench's);
# SERVER_GC_PERCENT sets server.gc-percent (through HWFIDO_SERVER_GC_PERCENT).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
clients=${1:-64} duration=${2:-10s} rounds=${3:-1}
dir=var/loadtest
rm -rf "$dir"
mkdir -p var
# The first free port from 19180 (another script or engineer may hold one).
port=
for p in $(seq 19180 19199); do
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || { echo "loadtest: no free port in 19180-19199"; exit 1; }
setup_env "$dir" "$port" >/dev/null 2>var/loadtest-setup.log || { cat var/loadtest-setup.log; exit 1; }
trap stop_server EXIT
[ -n "${SERVER_GC_PERCENT:-}" ] && export HWFIDO_SERVER_GC_PERCENT=$SERVER_GC_PERCENT
GOGC=${SERVER_GOGC:-${GOGC:-}} GOMAXPROCS=${SERVER_GOMAXPROCS:-${GOMAXPROCS:-}} start_server "$dir/server.log"
tck=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' "/proc/$SERVER_PID/stat"; }
for r in $(seq 1 "$rounds"); do
  for n in ${clients//,/ }; do
    c0=$(cpu)
    out=$("$BIN/fidobench" run -url "http://127.0.0.1:$port" -facet https://app.example \
      -login-key "$dir/secrets/login.key" -iss https://login.example -aud hwfido \
      -clients "$n" -duration "$duration" -line)
    c1=$(cpu)
    echo "$out" | grep -v '^RESULT'
    echo "$(echo "$out" | grep '^RESULT') round=$r server_cpu_s=$(awk -v d=$((c1 - c0)) -v t="$tck" 'BEGIN{printf "%.2f", d/t}') load1=$(cut -d' ' -f1 /proc/loadavg)"
  done
done
