package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/hsm/hsmtest"
	"github.com/fidoserver/hwfido/uaf"
	"github.com/fidoserver/hwfido/uaf/uaftest"
)

// BenchmarkCryptoFloor measures the cryptography one UAF authentication cannot avoid: the
// HSM HMAC that seals serverData, the HSM HMAC verify when it comes back, one ECDSA P-256
// verify of the assertion, and the HSM ES256 signature of the result token. The ceremony
// rate of fidobench divided by this rate is the ceremony/floor ratio in BENCHMARKS.md.
func BenchmarkCryptoFloor(b *testing.B) {
	tok := hsmtest.NewTokenWith(b, hsmtest.Options{Quiet: true})
	ctx := context.Background()
	sd := make([]byte, 200) // a sealed serverData payload is about this long
	uauth, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signedData := make([]byte, 146) // the SIGNED_DATA TLV of the spec example
	h := sha256.Sum256(signedData)
	sig, _ := ecdsa.SignASN1(rand.Reader, uauth, h[:])
	claims := make([]byte, 300)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tag, v, err := tok.MAC(ctx, sd)
			if err != nil {
				b.Fatal(err)
			}
			if err := tok.VerifyMAC(ctx, v, sd, tag); err != nil {
				b.Fatal(err)
			}
			h := sha256.Sum256(signedData)
			if !ecdsa.VerifyASN1(&uauth.PublicKey, h[:], sig) {
				b.Fatal("verify failed")
			}
			if _, _, err := tok.SignES256(ctx, claims); err != nil {
				b.Fatal(err)
			}
		}
	})
	cpu.report(b)
}

// BenchmarkAuthenticationCeremony runs complete step-up authentications (request +
// response over HTTP to an in-process server on SoftHSM and SQLite) from parallel clients,
// each with its own authenticator and user (a device does not race its own counter).
func BenchmarkAuthenticationCeremony(b *testing.B) {
	a0, err := uaftest.New(uaftest.Options{AAID: "FFFF#FB02", Attestation: uaf.AttestationBasicSurrogate})
	if err != nil {
		b.Fatal(err)
	}
	st, _ := a0.MetadataStatement()
	e := newEnvTB(b, envOptions{metadata: [][]byte{st}})
	// 8×GOMAXPROCS clients (the in-process analogue of fidobench -clients 16), registered
	// before the timer starts: RunParallel starts exactly that many goroutines.
	const par = 8
	clients := make(chan benchClient, par*runtime.GOMAXPROCS(0))
	for i := range cap(clients) {
		a, err := uaftest.New(uaftest.Options{AAID: "FFFF#FB02", Attestation: uaf.AttestationBasicSurrogate})
		if err != nil {
			b.Fatal(err)
		}
		user := fmt.Sprintf("bench%d", i)
		_, r, _ := e.getRequest("Reg", map[string]string{"username": user}, e.callerToken(user))
		resp, err := a.Respond(r.UAFRequest, facetID)
		if err != nil {
			b.Fatal(err)
		}
		if sr := e.sendResponse("Reg", resp); sr.StatusCode != uaf.StatusOK {
			b.Fatal(sr)
		}
		clients <- benchClient{a, user}
	}
	b.SetParallelism(par)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		c := <-clients
		a, user := c.a, c.user
		for pb.Next() {
			_, r, _ := e.getRequest("Auth", map[string]string{"username": user}, "")
			resp, err := a.Respond(r.UAFRequest, facetID)
			if err != nil {
				b.Error(err)
				return
			}
			if sr := e.sendResponse("Auth", resp); sr.StatusCode != uaf.StatusOK {
				b.Error(sr)
				return
			}
		}
	})
	cpu.report(b)
}

type benchClient struct {
	a    *uaftest.Authenticator
	user string
}

// cpuClock measures the process's CPU time (user+system, all threads, C code included)
// over a benchmark: on a shared, noisy machine CPU per operation is steadier than
// wall-clock rates, and 2 cores divided by it bounds the achievable rate.
type cpuClock struct{ start time.Duration }

func startCPU(b *testing.B) cpuClock {
	b.Helper()
	return cpuClock{processCPU()}
}

// report adds cpu-µs/op and ops/s (wall clock) to the benchmark's result.
func (c cpuClock) report(b *testing.B) {
	b.Helper()
	if b.N > 0 {
		b.ReportMetric(float64(processCPU()-c.start)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
	}
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "ops/s")
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
