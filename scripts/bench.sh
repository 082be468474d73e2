#!/usr/bin/env bash
# bench.sh COUNT — runs the Go benchmarks COUNT times and summarises medians with benchstat,
# then the end-to-end load generator against a real server process. Results go to
# var/bench/; BENCHMARKS.md explains the method and quotes one run.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-6}
out=var/bench
mkdir -p "$out"
if ! command -v benchstat >/dev/null 2>&1 && [ ! -x "$(go env GOPATH)/bin/benchstat" ]; then
  go install golang.org/x/perf/cmd/benchstat@v0.0.0-20250414155627-6e5e2a1bd3e7 >/dev/null 2>&1 || go install golang.org/x/perf/cmd/benchstat@latest
fi
BENCHSTAT=$(command -v benchstat || echo "$(go env GOPATH)/bin/benchstat")

run() { # name package pattern [benchtime]
  local name=$1 pkg=$2 pat=$3 bt=${4:-1s}
  echo "== $name ($pkg, $pat, -count $count, -benchtime $bt)"
  go test -run '^$' -bench "$pat" -benchtime "$bt" -count "$count" "$pkg" | tee "$out/$name.txt" | grep -E '^(Benchmark|ok|FAIL)' || true
  "$BENCHSTAT" "$out/$name.txt" > "$out/$name.stat" || true
}

run hsm ./hsm/ . 1s
[ -d server/uafsvc ] && run uaf-floor ./server/ 'BenchmarkCryptoFloor' 1s
[ -d authenticatord/tpm ] && run tpm ./authenticatord/tpm/ . 200x
echo "== end-to-end load (cmd/fidobench)"
if [ -x scripts/loadtest.sh ]; then scripts/loadtest.sh | tee "$out/load.txt"; fi
echo "medians: $out/*.stat"
