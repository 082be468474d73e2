package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"sync/atomic"
	"testing"

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
	var n atomic.Int32
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		a, err := uaftest.New(uaftest.Options{AAID: "FFFF#FB02", Attestation: uaf.AttestationBasicSurrogate})
		if err != nil {
			b.Error(err)
			return
		}
		user := fmt.Sprintf("bench%d", n.Add(1))
		_, r, _ := e.getRequest("Reg", map[string]string{"username": user}, e.callerToken(user))
		resp, err := a.Respond(r.UAFRequest, facetID)
		if err != nil {
			b.Error(err)
			return
		}
		if sr := e.sendResponse("Reg", resp); sr.StatusCode != uaf.StatusOK {
			b.Error(sr)
			return
		}
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
}
