package daemon_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/authenticatord/asm"
	"github.com/fidoserver/hwfido/uaf"
)

// reportLatency adds p50/p99 (ms) of the per-op durations.
func reportLatency(b *testing.B, d []time.Duration) {
	b.Helper()
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	q := func(p float64) float64 { return float64(d[int(p*float64(len(d)-1))]) / float64(time.Millisecond) }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}

// BenchmarkDaemonAuthenticate measures one assertion through the daemon:
// an ASM Authenticate request over the Unix socket (HTTP/JSON, SO_PEERCRED,
// key lookup, sign counter from the reserved block — one fsync per 32 —,
// SIGNED_DATA built, TPM2_Sign in the reusable salted session on the cached
// key, assertion assembled) until the signed assertion is back in the
// caller. Compare with authenticatord/tpm BenchmarkBareLoadSignFlush (the
// floor) and BenchmarkBareSign (the warm floor); see docs/bench/tpm.md.
func BenchmarkDaemonAuthenticate(b *testing.B) {
	h := newHarness(b)
	h.start()
	ctx := context.Background()
	const appID = "https://bench.example/app"
	if _, err := h.c.Register(ctx, asm.RegisterIn{AppID: appID, Username: "bench", FinalChallenge: "fc",
		AttestationType: uaf.AttestationBasicSurrogate}, pin); err != nil {
		b.Fatal(err)
	}
	in := asm.AuthenticateIn{AppID: appID, FinalChallenge: "fc"}
	var d []time.Duration
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		out, err := h.c.Authenticate(ctx, in, pin)
		d = append(d, time.Since(t0))
		if err != nil || out.Assertion == "" {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportLatency(b, d)
	h.stop()
}
