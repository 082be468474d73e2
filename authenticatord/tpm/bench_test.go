package tpm

import (
	"slices"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/authenticatord/tpm/swtpmtest"
	"github.com/google/go-tpm/tpm2"
)

// BenchmarkBareLoadSignFlush is the floor: raw go-tpm TPM2_Load + TPM2_Sign
// (password session) + TPM2_FlushContext on swtpm over TCP, no KDF, no
// salted session, no mutex.
func BenchmarkBareLoadSignFlush(b *testing.B) {
	sim := swtpmtest.Start(b, swtpmtest.Options{})
	tp := openSim(b, sim)
	kb, err := tp.CreateKey(pin1)
	if err != nil {
		b.Fatal(err)
	}
	auth, _ := deriveAuth(pin1, kb.Salt)
	pub, priv, _ := kb.decode()
	d := digest("x")
	var lat []time.Duration
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		l, err := tpm2.Load{
			ParentHandle: tpm2.AuthHandle{Handle: tp.srkHandle, Name: tp.srkName, Auth: tpm2.PasswordAuth(nil)},
			InPrivate:    priv, InPublic: pub,
		}.Execute(tp.tpm)
		if err != nil {
			b.Fatal(err)
		}
		_, err = tpm2.Sign{
			KeyHandle:  tpm2.AuthHandle{Handle: l.ObjectHandle, Name: l.Name, Auth: tpm2.PasswordAuth(auth)},
			Digest:     tpm2.TPM2BDigest{Buffer: d},
			InScheme:   tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
			Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck, Hierarchy: tpm2.TPMRHNull},
		}.Execute(tp.tpm)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := (tpm2.FlushContext{FlushHandle: l.ObjectHandle}).Execute(tp.tpm); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	reportLatency(b, lat)
}

// BenchmarkBareSign is the warm floor: raw go-tpm TPM2_Sign (password
// session, NULL ticket) with the key loaded once before the loop — the
// least any signer can send per assertion.
func BenchmarkBareSign(b *testing.B) {
	sim := swtpmtest.Start(b, swtpmtest.Options{})
	tp := openSim(b, sim)
	kb, err := tp.CreateKey(pin1)
	if err != nil {
		b.Fatal(err)
	}
	auth, _ := deriveAuth(pin1, kb.Salt)
	pub, priv, _ := kb.decode()
	l, err := tpm2.Load{
		ParentHandle: tpm2.AuthHandle{Handle: tp.srkHandle, Name: tp.srkName, Auth: tpm2.PasswordAuth(nil)},
		InPrivate:    priv, InPublic: pub,
	}.Execute(tp.tpm)
	if err != nil {
		b.Fatal(err)
	}
	d := digest("x")
	var lat []time.Duration
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		_, err = tpm2.Sign{
			KeyHandle:  tpm2.AuthHandle{Handle: l.ObjectHandle, Name: l.Name, Auth: tpm2.PasswordAuth(auth)},
			Digest:     tpm2.TPM2BDigest{Buffer: d},
			InScheme:   tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
			Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck, Hierarchy: tpm2.TPMRHNull},
		}.Execute(tp.tpm)
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, lat)
	if _, err := (tpm2.FlushContext{FlushHandle: l.ObjectHandle}).Execute(tp.tpm); err != nil {
		b.Fatal(err)
	}
}

// reportLatency adds the p50 and p99 of per-op durations (ms), for the
// comparison with the daemon path (authenticatord/daemon
// BenchmarkDaemonAuthenticate).
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

// BenchmarkSign is the layer's path: KDF, then TPM2_Sign in the reusable
// salted HMAC session with parameter encryption, the key loaded on the
// first call and kept loaded (see cache.go).
func BenchmarkSign(b *testing.B) {
	sim := swtpmtest.Start(b, swtpmtest.Options{})
	tp := openSim(b, sim)
	kb, err := tp.CreateKey(pin1)
	if err != nil {
		b.Fatal(err)
	}
	d := digest("x")
	var lat []time.Duration
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		if _, err := tp.Sign(kb, pin1, d); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	reportLatency(b, lat)
}

// BenchmarkCreateKey measures creating one UAF key (registration cost).
func BenchmarkCreateKey(b *testing.B) {
	sim := swtpmtest.Start(b, swtpmtest.Options{})
	tp := openSim(b, sim)
	for b.Loop() {
		if _, err := tp.CreateKey(pin1); err != nil {
			b.Fatal(err)
		}
	}
}
