#!/usr/bin/env bash
# bench.sh [ROUNDS] — the benchmarks behind BENCHMARKS.md and docs/bench/*.md, in interleaved
# rounds so that every measurement of one round sees similar machine load (the build machine
# is shared and noisy). One round runs, in this order:
#   1. hsm: the HSM custody benchmarks (pool vs raw C_SignInit+C_Sign, in-process crypto);
#   2. uaf in-process: BenchmarkCryptoFloor (HSM HMAC seal + HSM HMAC verify + ECDSA verify +
#      HSM ES256 result token: the cryptography one UAF authentication cannot avoid) and
#      BenchmarkAuthenticationCeremony (complete request+response over HTTP in one process);
#   3. uaf end-to-end: scripts/loadtest.sh — a real hwfido-server process on a fresh SoftHSM
#      token and SQLite file, fidobench at 16 and then 64 clients over loopback.
# Medians over the rounds: benchstat for the Go benchmarks, var/bench/uaf-load.stat for the
# load runs, and var/bench/uaf-summary.txt with the ceremony/floor ratios. Results and raw
# output go to var/bench/. Bounded: ROUNDS × (~10 s hsm + ~6 s in-process + ~20 s load),
# about 4 minutes for the default 6 rounds; every load run stops after LOAD_DURATION.
# The server under load runs with server.gc-percent 400 (SERVER_GC_PERCENT; empty = Go
# default), the setting docs/bench/uaf.md recommends; fidobench uses -gogc 400 for itself.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-6}
load_duration=${LOAD_DURATION:-4s}
hsm_benchtime=${HSM_BENCHTIME:-0.2s}
out=var/bench
mkdir -p "$out"
if ! command -v benchstat >/dev/null 2>&1 && [ ! -x "$(go env GOPATH)/bin/benchstat" ]; then
  go install golang.org/x/perf/cmd/benchstat@v0.0.0-20250414155627-6e5e2a1bd3e7 >/dev/null 2>&1 || go install golang.org/x/perf/cmd/benchstat@latest
fi
BENCHSTAT=$(command -v benchstat || echo "$(go env GOPATH)/bin/benchstat")

echo "== build (test binaries, server, fidobench)"
go build -o bin/ ./cmd/hwfido-server ./cmd/fidobench ./cmd/softhsm-setup ./cmd/fidoctl
go test -c -o "$out/hsm.test" ./hsm/
go test -c -o "$out/server.test" ./server/
: > "$out/hsm.txt"; : > "$out/uaf-inproc.txt"; : > "$out/uaf-load.txt"
abs=$(pwd)
for r in $(seq 1 "$rounds"); do
  echo "== round $r/$rounds (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  (cd hsm && "$abs/$out/hsm.test" -test.run '^$' -test.bench . -test.benchtime "$hsm_benchtime" -test.count 1) >> "$out/hsm.txt"
  # Fixed counts (bounded, and b.N cannot collapse to 1 when the machine is slow).
  (cd server && "$abs/$out/server.test" -test.run '^$' -test.bench 'BenchmarkCryptoFloor' -test.benchtime 1000x -test.count 1 &&
     "$abs/$out/server.test" -test.run '^$' -test.bench 'BenchmarkAuthenticationCeremony' -test.benchtime 400x -test.count 1) \
    | tee -a "$out/uaf-inproc.txt" | grep '^Benchmark' || true
  SERVER_GC_PERCENT=${SERVER_GC_PERCENT-400} scripts/loadtest.sh 16,64 "$load_duration" 1 | tee -a "$out/uaf-load.txt" | grep '^RESULT' || true
done
"$BENCHSTAT" -filter '.unit:ops/s' "$out/hsm.txt" > "$out/hsm.stat" || true
"$BENCHSTAT" "$out/uaf-inproc.txt" > "$out/uaf-inproc.stat" || true
[ -d authenticatord/tpm ] && go test -run '^$' -bench . -benchtime 200x -count "$rounds" ./authenticatord/tpm/ \
  | tee "$out/tpm.txt" | grep -E '^(Benchmark|ok|FAIL)' && { "$BENCHSTAT" "$out/tpm.txt" > "$out/tpm.stat" || true; }

# Medians of the load runs, per client count, and the ceremony/floor ratios.
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) {print "nan"} else if (NR%2) {print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }
field() { # field CLIENTS KEY — one value per run of the load RESULT lines
  grep "^RESULT clients=$1 " "$out/uaf-load.txt" | tr ' ' '\n' | sed -n "s/^$2=//p"
}
per_op() { # per_op CLIENTS CPUKEY — CPU µs per ceremony, per run
  paste <(field "$1" "$2") <(field "$1" auth) | awk '$2>0 {printf "%.0f\n", 1e6*$1/$2}'
}
bench_median() { # bench_median NAME UNIT
  grep "^$1-" "$out/uaf-inproc.txt" | awk -v u="$2" '{for(i=3;i<=NF;i++) if ($(i+1)==u) print $i}' | median
}
floor_ops=$(bench_median BenchmarkCryptoFloor ops/s)
floor_cpu=$(bench_median BenchmarkCryptoFloor cpu-µs/op)
inproc_ops=$(bench_median BenchmarkAuthenticationCeremony ops/s)
inproc_cpu=$(bench_median BenchmarkAuthenticationCeremony cpu-µs/op)
{
  echo "UAF authentication benchmarks, $rounds interleaved rounds, medians ($(date -u +%FT%TZ), $(nproc) CPUs, GOMAXPROCS default)"
  printf "crypto floor (BenchmarkCryptoFloor, RunParallel): %.0f ops/s, %.0f CPU-µs/op\n" "$floor_ops" "$floor_cpu"
  printf "in-process ceremony (16 clients, server+client in one process): %.0f ceremonies/s, %.0f CPU-µs/ceremony\n" "$inproc_ops" "$inproc_cpu"
  for n in 16 64; do
    ps=$(field $n per_s | median); p50=$(field $n p50_ms | median); p99=$(field $n p99_ms | median)
    scpu=$(per_op $n server_cpu_s | median); ccpu=$(per_op $n client_cpu_s | median)
    load=$(field $n load1 | median); fails=$(field $n failures | awk '{s+=$1} END {print s+0}')
    printf "fidobench %2d clients: %.0f ceremonies/s, p50 %.1f ms, p99 %.1f ms, server %s CPU-µs/ceremony, load generator %s CPU-µs/ceremony, failures %s, load average %s\n" \
      "$n" "$ps" "$p50" "$p99" "$scpu" "$ccpu" "$fails" "$load"
    awk -v f="$floor_ops" -v c="$ps" -v fc="$floor_cpu" -v sc="$scpu" -v cc="$ccpu" -v n="$n" 'BEGIN {
      printf "  ratios at %d clients: floor rate / ceremony rate %.2f; server CPU per ceremony / floor CPU %.2f; load generator share of CPU %.0f%%; 2 cores / (server+client CPU) = %.0f ceremonies/s upper bound\n",
        n, f/c, sc/fc, 100*cc/(sc+cc), 2e6/(sc+cc) }'
  done
} | tee "$out/uaf-summary.txt"
{ for n in 16 64; do for k in per_s p50_ms p99_ms; do echo "clients=$n $k $(field $n $k | tr '\n' ' ')"; done; done; } > "$out/uaf-load.stat"
echo "medians: $out/*.stat, $out/uaf-summary.txt"
# Out-of-band benchmarks (docs/bench/oob.md), opt-in: BENCH_OOB=1 adds ≈ 1 minute per round.
if [ -n "${BENCH_OOB:-}" ]; then
  : > "$out/oob.txt"
  for r in $(seq 1 "$rounds"); do
    (cd server && "$abs/$out/server.test" -test.run '^$' -test.bench '^BenchmarkOOB' -test.benchtime 2s -test.count 1) \
      | tee -a "$out/oob.txt" | grep '^Benchmark' || true
  done
  "$BENCHSTAT" "$out/oob.txt" > "$out/oob.stat" || true
fi
