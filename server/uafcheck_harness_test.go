package server_test

// The harness of the UAF 1.1 server-check audit (docs/uaf-checks.md): a uafsvc.Service
// built directly on a real SQLite store, with an HMAC serverData sealer, an in-memory result
// token signer, a metadata set the test can change between steps and a clock it can move.
// Tests that need none of that use the HTTP env of server_test.go instead.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/metadata"
	"github.com/fidoserver/hwfido/server/callerauth"
	"github.com/fidoserver/hwfido/server/resulttoken"
	"github.com/fidoserver/hwfido/server/serverdata"
	"github.com/fidoserver/hwfido/server/store"
	"github.com/fidoserver/hwfido/server/store/sqlite"
	"github.com/fidoserver/hwfido/server/uafsvc"
	"github.com/fidoserver/hwfido/uaf"
	"github.com/fidoserver/hwfido/uaf/uaftest"
)

var errCheckBadMAC = errors.New("uafcheck: bad mac")

// checkMAC is an HMAC-SHA256 serverData key (version 1).
type checkMAC struct{ key []byte }

func (m checkMAC) MAC(_ context.Context, data []byte) ([]byte, uint32, error) {
	h := hmac.New(sha256.New, m.key)
	h.Write(data)
	return h.Sum(nil), 1, nil
}

func (m checkMAC) VerifyMAC(_ context.Context, version uint32, data, tag []byte) error {
	want, _, _ := m.MAC(context.Background(), data)
	if version != 1 || !hmac.Equal(want, tag) {
		return errCheckBadMAC
	}
	return nil
}

// checkSigner signs result tokens with a software P-256 key.
type checkSigner struct{ k *ecdsa.PrivateKey }

func (s checkSigner) SignES256(_ context.Context, msg []byte) ([]byte, string, error) {
	d := sha256.Sum256(msg)
	r, ss, err := ecdsa.Sign(rand.Reader, s.k, d[:])
	if err != nil {
		return nil, "", err
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	ss.FillBytes(out[32:])
	return out, "k1", nil
}

func (s checkSigner) ActiveKeyID() string { return "k1" }

// checkMetadata is a metadata set keyed by lowercase AAID that tests may change.
type checkMetadata struct {
	mu sync.Mutex
	m  map[string]*metadata.Statement
}

func (c *checkMetadata) ByAAID(aaid string) (*metadata.Statement, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.m[strings.ToLower(aaid)]
	return st, ok
}

// set parses a statement (JSON) and puts it under its AAID, optionally edited first.
func (c *checkMetadata) set(t *testing.T, statement []byte, edit func(map[string]any)) *metadata.Statement {
	t.Helper()
	if edit != nil {
		var m map[string]any
		if err := json.Unmarshal(statement, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		statement, _ = json.Marshal(m)
	}
	st, err := metadata.ParseStatement(statement)
	if err != nil {
		t.Fatalf("statement: %v", err)
	}
	c.mu.Lock()
	c.m[strings.ToLower(st.AAID)] = st
	c.mu.Unlock()
	return st
}

// update changes the loaded statement of aaid in place (a copy replaces it).
func (c *checkMetadata) update(aaid string, f func(*metadata.Statement)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cp := *c.m[strings.ToLower(aaid)]
	f(&cp)
	c.m[strings.ToLower(aaid)] = &cp
}

// remove unloads the statement of aaid.
func (c *checkMetadata) remove(aaid string) {
	c.mu.Lock()
	delete(c.m, strings.ToLower(aaid))
	c.mu.Unlock()
}

const androidFacet = "android:apk-key-hash:LK84ci82ruA6u8SyF26cghsVwZg="

// checkEnv is one directly built uafsvc.Service.
type checkEnv struct {
	t   *testing.T
	svc *uafsvc.Service
	db  *sqlite.DB
	md  *checkMetadata
	mu  sync.Mutex
	now time.Time
}

func (e *checkEnv) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *checkEnv) advance(d time.Duration) {
	e.mu.Lock()
	e.now = e.now.Add(d)
	e.mu.Unlock()
}

var checkPolicies = map[string]uaf.Policy{
	"default": {Accepted: [][]uaf.MatchCriteria{{{AssertionSchemes: []string{uaf.AssertionSchemeUAFV1TLV},
		AuthenticationAlgorithms: []uaf.Alg{1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18}}}}},
	"fc01-only": {Accepted: [][]uaf.MatchCriteria{{{AAID: []string{"FFFF#FC01"}}}}},
	// the default policy without one model
	"no-fc03": {Accepted: [][]uaf.MatchCriteria{{{AssertionSchemes: []string{uaf.AssertionSchemeUAFV1TLV},
		AuthenticationAlgorithms: []uaf.Alg{1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18}}}},
		Disallowed: []uaf.MatchCriteria{{AAID: []string{"FFFF#FC03"}}}},
	// two authenticators: one with fingerprint verification and one with a hardware key
	"fp-and-hw": {Accepted: [][]uaf.MatchCriteria{{
		{UserVerification: uaf.Ptr(uaf.UserVerifyFingerprint), AssertionSchemes: []string{uaf.AssertionSchemeUAFV1TLV},
			AuthenticationAlgorithms: []uaf.Alg{uaf.AlgSECP256R1ECDSASHA256Raw}},
		{KeyProtection: uaf.Ptr(uaf.KeyProtectionHardware), AssertionSchemes: []string{uaf.AssertionSchemeUAFV1TLV},
			AuthenticationAlgorithms: []uaf.Alg{uaf.AlgSECP256R1ECDSASHA256Raw}}}}},
}

// newCheckEnv builds the service with the given statements loaded.
func newCheckEnv(t *testing.T, statements ...[]byte) *checkEnv {
	t.Helper()
	ctx := context.Background()
	e := &checkEnv{t: t, md: &checkMetadata{m: map[string]*metadata.Statement{}}, now: time.Now()}
	for _, st := range statements {
		e.md.set(t, st, nil)
	}
	db, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(t.TempDir(), "uafcheck.db"), Now: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e.db = db
	key := make([]byte, 32)
	rand.Read(key)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	svc, err := uafsvc.New(uafsvc.Options{AppID: appID, Facets: []string{facetID, "ios:bundle-id:org.example.app", androidFacet},
		Policies: checkPolicies, DefaultPolicy: "default", Lifetime: 5 * time.Minute,
		Sealer: serverdata.NewSealer(checkMAC{key}, errCheckBadMAC), Store: db, Metadata: e.md,
		Results: resulttoken.New(checkSigner{k}, resulttoken.Options{Issuer: issuer, Audience: "rp", Now: e.clock}),
		Now:     e.clock})
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	return e
}

// request asks for a request of op; ctxJSON is the GetUAFRequest context.
func (e *checkEnv) request(op string, ctxJSON any) *uaf.ReturnUAFRequest {
	e.t.Helper()
	c, _ := json.Marshal(ctxJSON)
	body, _ := json.Marshal(uaf.GetUAFRequest{Op: uaf.Operation(op), Context: string(c)})
	r, err := e.svc.Request(context.Background(), op, body, &callerauth.Caller{Trusted: true, Subject: "uafcheck"})
	if err != nil {
		e.t.Fatalf("%s request: %v", op, err)
	}
	rr := r.(*uaf.ReturnUAFRequest)
	if rr.StatusCode != uaf.StatusOK {
		e.t.Fatalf("%s request: status %d", op, rr.StatusCode)
	}
	return rr
}

// respond sends a uafResponse for op and returns the ServerResponse.
func (e *checkEnv) respond(op, uafResponse string) *uaf.ServerResponse {
	e.t.Helper()
	body, _ := json.Marshal(uaf.SendUAFResponse{UAFResponse: uafResponse})
	r, err := e.svc.Respond(context.Background(), op, body)
	if err != nil {
		e.t.Fatalf("%s response: %v", op, err)
	}
	return r.(*uaf.ServerResponse)
}

// regs returns the stored registrations of user.
func (e *checkEnv) regs(user string) []store.UAFRegistration {
	e.t.Helper()
	r, err := e.db.UAFRegistrations(context.Background(), user)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// uafAnswer lets a uaftest authenticator answer r from facet, with faults.
func uafAnswer(t *testing.T, a *uaftest.Authenticator, r *uaf.ReturnUAFRequest, facet string, faults ...uaftest.Fault) string {
	t.Helper()
	out, err := a.Respond(r.UAFRequest, facet, faults...)
	if err != nil {
		t.Fatalf("uaftest: %v", err)
	}
	return out
}

// editMessage decodes a one-message uafResponse, lets f change it and encodes it again.
func editMessage(t *testing.T, uafResponse string, f func(msg map[string]any)) string {
	t.Helper()
	var msgs []map[string]any
	if err := json.Unmarshal([]byte(uafResponse), &msgs); err != nil || len(msgs) != 1 {
		t.Fatalf("uafResponse %q: %v", uafResponse, err)
	}
	f(msgs[0])
	b, _ := json.Marshal(msgs)
	return string(b)
}

// newCheckAuthr returns a uaftest authenticator and its statement.
func newCheckAuthr(t *testing.T, o uaftest.Options) (*uaftest.Authenticator, []byte) {
	t.Helper()
	return newUAFTest(t, o)
}

// wantRefused asserts the status code of a refusal.
func wantRefused(t *testing.T, sr *uaf.ServerResponse, want uaf.StatusCode, descPart string) {
	t.Helper()
	if sr.StatusCode != want {
		t.Fatalf("status %d (%s), want %d", sr.StatusCode, sr.Description, want)
	}
	if descPart != "" && !strings.Contains(sr.Description, descPart) {
		t.Fatalf("status %d with description %q, want it to mention %q", sr.StatusCode, sr.Description, descPart)
	}
}
