package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"testing"

	"github.com/fidoserver/hwfido/hsm/hsmtest"
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
}
