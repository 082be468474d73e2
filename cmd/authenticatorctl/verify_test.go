package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/fidoserver/hwfido/uaf"
)

func signToken(t *testing.T, k *ecdsa.PrivateKey, kid string, exp time.Time, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k},
		(&jose.SignerOptions{}).WithHeader(jose.HeaderKey("kid"), kid).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(jwt.Claims{Issuer: "https://server.test", Expiry: jwt.NewNumericDate(exp),
		IssuedAt: jwt.NewNumericDate(time.Now())}).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestVerifyResults checks -verify against a loopback JWKS: a good token is
// described; a token signed by a key outside the set, with an unknown kid
// or expired is refused; an authentication answer without a token is an
// error, a registration answer without one is not.
func TestVerifyResults(t *testing.T) {
	good, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &good.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != jwksPath {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(set)
	}))
	defer srv.Close()
	ctx := context.Background()
	claims := map[string]any{"sub": "alice", "op": "Auth", "aaid": "4857#0001", "tx_hash": "abc"}
	answer := func(tok string) *uaf.ServerResponse {
		return &uaf.ServerResponse{StatusCode: uaf.StatusOK, AdditionalTokens: []uaf.Token{{Type: "JWT", Value: tok}}}
	}

	var out bytes.Buffer
	if err := verifyResults(ctx, &out, srv.URL, answer(signToken(t, good, "k1", time.Now().Add(time.Minute), claims)), true); err != nil {
		t.Fatalf("good token: %v", err)
	}
	if !strings.Contains(out.String(), "result token verified") || !strings.Contains(out.String(), "sub=alice") ||
		!strings.Contains(out.String(), "tx_hash=abc") {
		t.Fatalf("output: %s", out.String())
	}
	for name, tok := range map[string]string{
		"foreign key": signToken(t, other, "k1", time.Now().Add(time.Minute), claims),
		"unknown kid": signToken(t, good, "k2", time.Now().Add(time.Minute), claims),
		"expired":     signToken(t, good, "k1", time.Now().Add(-time.Hour), claims),
		"not a JWS":   "abc.def",
	} {
		if err := verifyResults(ctx, &bytes.Buffer{}, srv.URL, answer(tok), true); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	empty := &uaf.ServerResponse{StatusCode: uaf.StatusOK}
	if err := verifyResults(ctx, &bytes.Buffer{}, srv.URL, empty, true); err == nil {
		t.Error("authentication answer without a token accepted")
	}
	if err := verifyResults(ctx, &bytes.Buffer{}, srv.URL, empty, false); err != nil {
		t.Errorf("registration answer without a token: %v", err)
	}
}
