package hsm_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/fidoserver/hwfido/hsm"
	"github.com/fidoserver/hwfido/hsm/hsmtest"
)

var benchSessions = []int{1, 2, 4}

// 96 bytes: serverData-sized (reference §4).
var benchData = make([]byte, 96)

// BenchmarkPoolES256 measures SignES256 through the pool with 2×sessions
// parallel callers (queueing included).
func BenchmarkPoolES256(b *testing.B) {
	for _, n := range benchSessions {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			tok := hsmtest.NewTokenWith(b, hsmtest.Options{Sessions: n, NoVendorCA: true, Quiet: true})
			runParallel(b, 2*n, func() error { _, _, err := tok.SignES256(context.Background(), benchData); return err })
		})
	}
}

// BenchmarkPoolES256Callers1x is SignES256 with as many callers as sessions:
// the pool's own overhead without queueing, comparable 1:1 to the raw loop.
func BenchmarkPoolES256Callers1x(b *testing.B) {
	for _, n := range benchSessions {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			tok := hsmtest.NewTokenWith(b, hsmtest.Options{Sessions: n, NoVendorCA: true, Quiet: true})
			runParallel(b, n, func() error { _, _, err := tok.SignES256(context.Background(), benchData); return err })
		})
	}
}

// BenchmarkPoolHMAC measures MAC through the pool with 2×sessions callers.
func BenchmarkPoolHMAC(b *testing.B) {
	for _, n := range benchSessions {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			tok := hsmtest.NewTokenWith(b, hsmtest.Options{Sessions: n, NoVendorCA: true, Quiet: true})
			runParallel(b, 2*n, func() error { _, _, err := tok.MAC(context.Background(), benchData); return err })
		})
	}
}

// BenchmarkRawES256 is the baseline: n goroutines, each with its own
// session, looping SHA-256 + C_SignInit + C_Sign (CKM_ECDSA) on the same key
// handle the pool uses (the key's session copy).
func BenchmarkRawES256(b *testing.B) {
	benchRaw(b, hsm.PurposeTokenSigning, pkcs11.CKM_ECDSA, true, false)
}

// BenchmarkRawHMAC: the same with CKM_SHA256_HMAC over 96 bytes.
func BenchmarkRawHMAC(b *testing.B) {
	benchRaw(b, hsm.PurposeServerDataMAC, pkcs11.CKM_SHA256_HMAC, false, false)
}

// BenchmarkRawES256TokenObject is BenchmarkRawES256 on the persistent token
// object instead of its session copy (hsm.key-copies: none).
func BenchmarkRawES256TokenObject(b *testing.B) {
	benchRaw(b, hsm.PurposeTokenSigning, pkcs11.CKM_ECDSA, true, true)
}

// BenchmarkRawHMACTokenObject is BenchmarkRawHMAC on the token object.
func BenchmarkRawHMACTokenObject(b *testing.B) {
	benchRaw(b, hsm.PurposeServerDataMAC, pkcs11.CKM_SHA256_HMAC, false, true)
}

func benchRaw(b *testing.B, p hsm.Purpose, mech uint, hash, tokenObject bool) {
	for _, n := range benchSessions {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			tok := hsmtest.NewTokenWith(b, hsmtest.Options{Sessions: 1, NoVendorCA: true, Quiet: true})
			ctx := hsm.RawCtx(tok.Token)
			h := hsm.UseHandle(tok.Token, p)
			if tokenObject {
				h = hsm.KeyHandle(tok.Token, p)
			}
			m := []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}
			var left atomic.Int64
			left.Store(int64(b.N))
			var wg sync.WaitGroup
			var failed atomic.Value
			b.ResetTimer()
			for range n {
				sh, err := ctx.OpenSession(hsm.Slot(tok.Token), pkcs11.CKF_SERIAL_SESSION)
				if err != nil {
					b.Fatal(err)
				}
				wg.Go(func() {
					defer ctx.CloseSession(sh)
					for left.Add(-1) >= 0 {
						in := benchData
						if hash {
							d := sha256.Sum256(benchData)
							in = d[:]
						}
						if err := ctx.SignInit(sh, m, h); err != nil {
							failed.Store(err)
							return
						}
						if _, err := ctx.Sign(sh, in); err != nil {
							failed.Store(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			if err := failed.Load(); err != nil {
				b.Fatal(err)
			}
			report(b)
		})
	}
}

// BenchmarkGoECDSA is in-process crypto/ecdsa P-256 (SHA-256 + SignASN1).
func BenchmarkGoECDSA(b *testing.B) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, n := range benchSessions {
		b.Run(fmt.Sprintf("goroutines=%d", n), func(b *testing.B) {
			runParallel(b, n, func() error {
				d := sha256.Sum256(benchData)
				_, err := ecdsa.SignASN1(rand.Reader, k, d[:])
				return err
			})
		})
	}
}

// BenchmarkGoHMAC is in-process crypto/hmac SHA-256 over 96 bytes.
func BenchmarkGoHMAC(b *testing.B) {
	key := make([]byte, 32)
	b.Run("goroutines=1", func(b *testing.B) {
		runParallel(b, 1, func() error { m := hmac.New(sha256.New, key); m.Write(benchData); m.Sum(nil); return nil })
	})
}

// runParallel runs b.N calls of f over g goroutines and reports ops/s.
func runParallel(b *testing.B, g int, f func() error) {
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ResetTimer()
	for range g {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				if err := f(); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(err)
	}
	report(b)
}

func report(b *testing.B) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "ops/s")
	}
}
