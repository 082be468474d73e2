package callerauth_test

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/fidoserver/hwfido/server/callerauth"
)

// fuzzNow is the fixed clock of FuzzAuthenticate, so that the seed tokens in
// testdata/fuzz/FuzzAuthenticate (minted at fuzzNow with the test-only key in testdata)
// stay valid and the fuzzer mutates tokens that pass every check.
var fuzzNow = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func fuzzKey(tb testing.TB) crypto.Signer {
	b, err := os.ReadFile("testdata/fuzz-login-test-only.key")
	if err != nil {
		tb.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		tb.Fatal("test key is not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	return k.(crypto.Signer)
}

// FuzzAuthenticate feeds arbitrary Authorization header values to the caller-token check.
// Whatever the input: no panic; a refusal is ErrInvalid (a header was present); an
// acceptance names the user and issuer of a token the test key signed — a mutation can
// change only bits the signature does not cover, never the claims.
func FuzzAuthenticate(f *testing.F) {
	key := fuzzKey(f)
	a, err := callerauth.New(callerauth.Options{
		Issuers: []callerauth.Issuer{{Issuer: "https://login.example", Audience: "hwfido",
			Keys: jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), Algorithm: string(jose.ES256), Use: "sig"}}}}},
		Now: func() time.Time { return fuzzNow },
	})
	if err != nil {
		f.Fatal(err)
	}
	good, err := callerauth.Mint(key, callerauth.MintOptions{Issuer: "https://login.example", Audience: "hwfido", Username: "alice", Now: fuzzNow})
	if err != nil {
		f.Fatal(err)
	}
	r := httptest.NewRequest("POST", "/x", nil)
	r.Header.Set("Authorization", "Bearer "+good)
	if c, err := a.Authenticate(r); err != nil || c.Username != "alice" {
		f.Fatalf("the seed token is refused: %v", err)
	}
	f.Add("Bearer " + good)
	f.Add("Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0.")
	f.Add("Bearer a.b.c")
	f.Add("Basic YWxpY2U6cGFzcw==")
	f.Fuzz(func(t *testing.T, h string) {
		if h == "" {
			return // no header: not a caller token
		}
		r := httptest.NewRequest("POST", "/x", nil)
		r.Header.Set("Authorization", h)
		c, err := a.Authenticate(r)
		if err != nil {
			if !errors.Is(err, callerauth.ErrInvalid) {
				t.Fatalf("refusal is not ErrInvalid: %v", err)
			}
			return
		}
		if c.Username != "alice" || c.Subject != "https://login.example" || c.Trusted {
			t.Fatalf("accepted %q as %+v", h, c)
		}
	})
}
