package fido2_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/mux"

	"github.com/fidoserver/hwfido/attestation"
	"github.com/fidoserver/hwfido/hsm/hsmtest"
	"github.com/fidoserver/hwfido/server/fido2"
	"github.com/fidoserver/hwfido/server/store/sqlite"
)

// headerCallers authenticates callers by the X-Test-User header; X-Test-Trusted: 1 marks
// a trusted backend. Test-only: production wiring uses mTLS / signed caller tokens.
type headerCallers struct{}

func (headerCallers) Authenticate(r *http.Request) (fido2.Caller, error) {
	u := r.Header.Get("X-Test-User")
	if u == "" {
		return fido2.Caller{}, errors.New("no X-Test-User header")
	}
	return fido2.Caller{Username: u, Trusted: r.Header.Get("X-Test-Trusted") == "1"}, nil
}

// memSigner is an ES256 JWT signer with an in-memory key (the HSM signer is tested in
// hsm/; here only the claims matter).
type memSigner struct{ key *ecdsa.PrivateKey }

func newMemSigner(t testing.TB) *memSigner {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &memSigner{key: k}
}

func (s *memSigner) SignResult(_ context.Context, claims map[string]any) (string, error) {
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256","typ":"JWT"}`))
	p, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	in := h + "." + base64.RawURLEncoding.EncodeToString(p)
	d := sha256.Sum256([]byte(in))
	r, sv, err := ecdsa.Sign(rand.Reader, s.key, d[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	sv.FillBytes(sig[32:])
	return in + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// verify checks a token's signature and returns its claims.
func (s *memSigner) verify(t testing.TB, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWS", tok)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		t.Fatalf("bad signature encoding: %v", err)
	}
	d := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(&s.key.PublicKey, d[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		t.Fatal("token signature does not verify")
	}
	p, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	if err := json.Unmarshal(p, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

// memTrust is an in-memory attestation.FIDO2Anchors.
type memTrust struct {
	mu       sync.Mutex
	byAAG    map[[16]byte]*attestation.FIDO2Anchor
	byKeyID  map[string]*attestation.FIDO2Anchor
	byFormat map[string]*attestation.FIDO2Anchor
}

func newMemTrust() *memTrust {
	return &memTrust{byAAG: map[[16]byte]*attestation.FIDO2Anchor{}, byKeyID: map[string]*attestation.FIDO2Anchor{},
		byFormat: map[string]*attestation.FIDO2Anchor{}}
}

func (m *memTrust) FIDO2AnchorByAAGUID(_ context.Context, a [16]byte) (*attestation.FIDO2Anchor, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.byAAG[a], nil
}

func (m *memTrust) FIDO2AnchorByKeyIdentifier(_ context.Context, k string) (*attestation.FIDO2Anchor, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.byKeyID[k], nil
}

// FIDO2AnchorByFormat implements attestation.FIDO2FormatAnchors.
func (m *memTrust) FIDO2AnchorByFormat(_ context.Context, f string) (*attestation.FIDO2Anchor, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.byFormat[f], nil
}

func (m *memTrust) addFormat(f string, roots ...*x509.Certificate) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.byFormat[f] = &attestation.FIDO2Anchor{Roots: roots}
}

func (m *memTrust) addAAGUID(a [16]byte, types []string, roots ...*x509.Certificate) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.byAAG[a] = &attestation.FIDO2Anchor{Roots: roots, AttestationTypes: types}
}

func (m *memTrust) addKeyID(k string, types []string, roots ...*x509.Certificate) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.byKeyID[k] = &attestation.FIDO2Anchor{Roots: roots, AttestationTypes: types}
}

// env is a running FIDO2 service on loopback with a real SQLite store.
type env struct {
	t      testing.TB
	db     *sqlite.DB
	signer *memSigner
	trust  *memTrust
	srv    *httptest.Server
	base   string // http://localhost:port
	origin string
	cfg    fido2.Config
}

// newEnv starts the service. mod may adjust the config (RPID and Origins are set); a
// signer replaces the in-memory one (e.g. the HSM-backed one of the benchmarks).
func newEnv(t testing.TB, mod func(*fido2.Config), signer ...fido2.ResultSigner) *env {
	t.Helper()
	return newEnvDeps(t, mod, func(d *fido2.Deps) {
		if len(signer) > 0 {
			d.Signer = signer[0]
		}
	})
}

// newEnvDeps is newEnv with deps adjusting the service's collaborators (e.g. a real
// metadata trust source instead of the in-memory one).
func newEnvDeps(t testing.TB, mod func(*fido2.Config), deps func(*fido2.Deps)) *env {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	origin := fmt.Sprintf("http://localhost:%d", port)
	db, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(t.TempDir(), "fido.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cfg := fido2.Config{RPID: "localhost", RPName: "hwfido test", Origins: []string{origin},
		Algorithms: fido2.ConformanceAlgorithms, ConformancePaths: true, Demo: true}
	if mod != nil {
		mod(&cfg)
	}
	e := &env{t: t, db: db, signer: newMemSigner(t), trust: newMemTrust(), base: origin, origin: origin, cfg: cfg}
	// Sealed sessions are authenticated by a real SoftHSM token's serverData MAC key.
	mac := hsmtest.NewTokenWith(t, hsmtest.Options{Quiet: true})
	d := fido2.Deps{Store: db, Callers: headerCallers{}, Signer: e.signer, Trust: e.trust, MAC: mac}
	if deps != nil {
		deps(&d)
	}
	svc, err := fido2.New(cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	r := mux.NewRouter()
	svc.Register(r)
	e.srv = httptest.NewUnstartedServer(r)
	e.srv.Listener.Close()
	e.srv.Listener = ln
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	return e
}

// post sends body (any JSON value or []byte) to path with optional headers and decodes
// the JSON answer.
func (e *env) post(path string, body any, hdr map[string]string) (int, map[string]any) {
	e.t.Helper()
	var b []byte
	switch v := body.(type) {
	case []byte:
		b = v
	case string:
		b = []byte(v)
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			e.t.Fatal(err)
		}
	}
	req, err := http.NewRequest(http.MethodPost, e.base+path, bytes.NewReader(b))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		e.t.Fatalf("POST %s: non-JSON answer %d %q", path, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

var _ crypto.Signer = (*ecdsa.PrivateKey)(nil)
