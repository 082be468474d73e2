package callerauth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/fidoserver/hwfido/server/callerauth"
)

func key(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pemFile(t *testing.T, k *ecdsa.PrivateKey) string {
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "login.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCallerToken(t *testing.T) {
	login, other := key(t), key(t)
	keys, err := callerauth.LoadKeys(pemFile(t, login))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	a, err := callerauth.New(callerauth.Options{Issuers: []callerauth.Issuer{{Issuer: "https://login.example", Audience: "hwfido", Keys: keys, UsernameClaim: "preferred_username"}}})
	if err != nil {
		t.Fatal(err)
	}
	mint := func(k *ecdsa.PrivateKey, o callerauth.MintOptions) string {
		if o.Issuer == "" {
			o.Issuer = "https://login.example"
		}
		if o.Audience == "" {
			o.Audience = "hwfido"
		}
		if o.UsernameClaim == "" {
			o.UsernameClaim = "preferred_username"
		}
		tok, err := callerauth.Mint(k, o)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	call := func(auth string) (callerauth.Caller, error) {
		r := httptest.NewRequest("POST", "/x", nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		return a.Authenticate(r)
	}
	c, err := call("Bearer " + mint(login, callerauth.MintOptions{Username: "alice"}))
	if err != nil || c.Username != "alice" || c.Trusted || !c.MayActFor("alice") || c.MayActFor("bob") {
		t.Fatalf("good token: %+v, %v", c, err)
	}
	bad := map[string]string{
		"wrong key":      "Bearer " + mint(other, callerauth.MintOptions{Username: "alice"}),
		"wrong issuer":   "Bearer " + mint(login, callerauth.MintOptions{Username: "alice", Issuer: "https://evil"}),
		"wrong audience": "Bearer " + mint(login, callerauth.MintOptions{Username: "alice", Audience: "other"}),
		"expired":        "Bearer " + mint(login, callerauth.MintOptions{Username: "alice", Now: now.Add(-time.Hour), Lifetime: time.Minute}),
		"not yet valid":  "Bearer " + mint(login, callerauth.MintOptions{Username: "alice", Now: now.Add(time.Hour)}),
		"no username":    "Bearer " + mint(login, callerauth.MintOptions{Username: "alice", UsernameClaim: "sub"}),
		"basic auth":     "Basic YWxpY2U6cHc=",
		"too long-lived": "Bearer " + mint(login, callerauth.MintOptions{Username: "alice", Lifetime: 2 * time.Hour}),
		"garbage":        "Bearer not.a.jwt",
		"alg none":       "Bearer eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL2xvZ2luLmV4YW1wbGUiLCJzdWIiOiJhbGljZSJ9.",
	}
	// A token valid for up to the default bound of 1h is accepted.
	if c, err := call("Bearer " + mint(login, callerauth.MintOptions{Username: "alice", Lifetime: 59 * time.Minute})); err != nil || c.Username != "alice" {
		t.Fatalf("59-minute token: %+v, %v", c, err)
	}
	for name, h := range bad {
		t.Run(name, func(t *testing.T) {
			if c, err := call(h); !errors.Is(err, callerauth.ErrInvalid) {
				t.Fatalf("Authenticate = %+v, %v; want ErrInvalid", c, err)
			}
		})
	}
	if _, err := call(""); !errors.Is(err, callerauth.ErrNoCredentials) {
		t.Fatalf("anonymous: %v", err)
	}
}

func TestLoadKeysJWKS(t *testing.T) {
	k := key(t)
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: "k1", Algorithm: "ES256"}}}
	b, _ := json.Marshal(set)
	p := filepath.Join(t.TempDir(), "jwks.json")
	os.WriteFile(p, b, 0o644)
	got, err := callerauth.LoadKeys(p)
	if err != nil || len(got.Keys) != 1 || got.Keys[0].KeyID != "k1" {
		t.Fatalf("LoadKeys = %+v, %v", got, err)
	}
	priv := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k, KeyID: "k1"}}}
	b, _ = json.Marshal(priv)
	os.WriteFile(p, b, 0o644)
	if _, err := callerauth.LoadKeys(p); err == nil || !strings.Contains(err.Error(), "private") {
		t.Fatalf("a JWKS with a private key was accepted: %v", err)
	}
}

func TestClientCertificate(t *testing.T) {
	a, err := callerauth.New(callerauth.Options{TrustedSubjects: []string{"payments-backend"}})
	if err != nil {
		t.Fatal(err)
	}
	cert := func(cn string) *x509.Certificate { return &x509.Certificate{Subject: pkix.Name{CommonName: cn}} }
	r := httptest.NewRequest("POST", "/x", nil)
	r.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert("payments-backend")}}}
	c, err := a.Authenticate(r)
	if err != nil || !c.Trusted || !c.MayActFor("anyone") {
		t.Fatalf("trusted backend: %+v, %v", c, err)
	}
	r.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert("someone-else")}}}
	if _, err := a.Authenticate(r); !errors.Is(err, callerauth.ErrInvalid) {
		t.Fatalf("untrusted subject: %v", err)
	}
	// A certificate the TLS layer did not verify (no VerifiedChains) is no proof.
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert("payments-backend")}}
	if _, err := a.Authenticate(r); !errors.Is(err, callerauth.ErrNoCredentials) {
		t.Fatalf("unverified certificate: %v", err)
	}
}
