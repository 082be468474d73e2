package hsmcli_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/fidoserver/hwfido/hsm/hsmcli"
	"github.com/fidoserver/hwfido/hsm/hsmtest"
)

func TestSelfTestAndJWS(t *testing.T) {
	tok := hsmtest.NewToken(t)
	var out bytes.Buffer
	if err := hsmcli.SelfTest(context.Background(), &out, tok.Token); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"verify:   ok", "token-signing", "serverdata-mac", "vendor-ca", tok.Label} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	jws, err := hsmcli.SignJWS(context.Background(), tok.Token, []byte(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := tok.JWKS()
	// A signature with one bit flipped (replacing its last characters could leave it
	// unchanged: they may already be those, or carry only padding bits).
	parts := strings.Split(jws, ".")
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	sig[0] ^= 1
	badSig := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
	tests := []struct {
		name string
		jws  string
		ok   bool
	}{
		{"valid", jws, true},
		{"tampered payload", strings.Replace(jws, ".", ".x", 1), false},
		{"tampered signature", badSig, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := hsmcli.VerifyJWS(tc.jws, jwks)
			if (err == nil) != tc.ok {
				t.Fatalf("VerifyJWS err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	// Another token's JWKS does not verify it.
	other := hsmtest.NewTokenWith(t, hsmtest.Options{NoVendorCA: true, Quiet: true})
	otherJWKS, _ := other.JWKS()
	if _, err := hsmcli.VerifyJWS(jws, otherJWKS); err == nil {
		t.Fatal("verified with a foreign JWKS")
	}
}
