package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fidoserver/hwfido/hsm/hsmtest"
	"github.com/fidoserver/hwfido/server"
	"github.com/fidoserver/hwfido/server/callerauth"
	"github.com/fidoserver/hwfido/server/config"
	"github.com/fidoserver/hwfido/server/store/sqlite"
	"github.com/fidoserver/hwfido/uaf"
)

const (
	appID   = "https://app.test/nevisfido/uaf/1.1/facets"
	facetID = "https://app.test"
	issuer  = "https://login.test"
)

// env is one in-process server on a real SoftHSM token and a real SQLite file.
type env struct {
	t        testing.TB
	srv      *server.Server
	http     *httptest.Server
	token    *hsmtest.Token
	dbPath   string
	loginKey *ecdsa.PrivateKey
	cfg      *config.Config
}

type envOptions struct {
	metadata      [][]byte
	counterPolicy string
	conformance   bool
	maxBody       int
	extraYAML     string // appended to the configuration (sections of later features)
}

func newEnv(t *testing.T, o envOptions) *env { return newEnvTB(t, o) }

// newEnvTB is newEnv for tests and benchmarks.
func newEnvTB(t testing.TB, o envOptions) *env {
	t.Helper()
	dir := t.TempDir()
	tok := hsmtest.NewTokenWith(t, hsmtest.Options{Quiet: true})
	mdDir := filepath.Join(dir, "metadata")
	os.MkdirAll(mdDir, 0o755)
	if len(o.metadata) == 0 {
		o.metadata = [][]byte{[]byte(`{"aaid":"FFFF#0001","description":"placeholder","authenticatorVersion":1,"upv":[{"major":1,"minor":1}],
			"assertionScheme":"UAFV1TLV","authenticationAlgorithm":1,"publicKeyAlgAndEncoding":256,"attestationTypes":[15880],
			"userVerificationDetails":[[{"userVerification":4}]],"keyProtection":2,"matcherProtection":4,"attachmentHint":1,
			"isSecondFactorOnly":false,"tcDisplay":0,"attestationRootCertificates":[]}`)}
	}
	for i, m := range o.metadata {
		os.WriteFile(filepath.Join(mdDir, fmt.Sprintf("s%d.json", i)), m, 0o644)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	pub := filepath.Join(dir, "login.pem")
	os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
	if o.counterPolicy == "" {
		o.counterPolicy = "reject"
	}
	if o.maxBody == 0 {
		o.maxBody = 262144
	}
	dbPath := filepath.Join(dir, "hwfido.db")
	yaml := fmt.Sprintf(`version: 1
server:
  conformance-api: %v
  max-body-bytes: %d
hsm:
  uri: %q
store:
  path: %s
fido-uaf:
  app-id: %s
  facets: ["%s", "ios:bundle-id:org.example.app"]
  metadata:
    path: %s
  policies:
    default:
      accepted:
        - - assertionSchemes: [UAFV1TLV]
            authenticationAlgorithms: [1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]
    fc01-only:
      accepted:
        - - aaid: ["FFFF#FC01"]
  counter-policy: %s
caller-auth:
  tokens:
    - issuer: %s
      audience: hwfido
      keys-file: %s
result-token:
  audience: https://rp.test
`, o.conformance, o.maxBody, tok.URI, dbPath, appID, facetID, mdDir, o.counterPolicy, issuer, pub) + o.extraYAML
	cfg, err := config.Parse([]byte(yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := server.New(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &env{t: t, srv: srv, http: hs, token: tok, dbPath: dbPath, loginKey: k, cfg: cfg}
}

// sharing starts a second server instance with e's configuration: the same SQLite file
// and HSM token, as a second process sharing them would.
func (e *env) sharing() *env {
	e.t.Helper()
	srv, err := server.New(context.Background(), e.cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(srv.Close)
	hs := httptest.NewServer(srv.Handler())
	e.t.Cleanup(hs.Close)
	return &env{t: e.t, srv: srv, http: hs, token: e.token, dbPath: e.dbPath, loginKey: e.loginKey, cfg: e.cfg}
}

func (e *env) callerToken(user string) string {
	tok, err := callerauth.Mint(e.loginKey, callerauth.MintOptions{Issuer: issuer, Audience: "hwfido", Username: user})
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// do sends a request and returns the status and body.
func (e *env) do(method, path, contentType, bearer string, body []byte) (int, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.http.URL+path, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// getRequest asks for a UAF request of op with the given context.
func (e *env) getRequest(op string, ctxJSON any, bearer string) (int, *uaf.ReturnUAFRequest, []byte) {
	e.t.Helper()
	c, _ := json.Marshal(ctxJSON)
	body, _ := json.Marshal(uaf.GetUAFRequest{Op: uaf.Operation(op), Context: string(c)})
	path := map[string]string{"Reg": "registration", "Auth": "authentication", "Dereg": "deregistration"}[op]
	code, b := e.do("POST", "/nevisfido/uaf/1.1/request/"+path, "application/fido+uaf;charset=UTF-8", bearer, body)
	var r uaf.ReturnUAFRequest
	if code == 200 {
		if err := json.Unmarshal(b, &r); err != nil {
			e.t.Fatalf("ReturnUAFRequest: %v: %s", err, b)
		}
	}
	return code, &r, b
}

// sendResponse posts a SendUAFResponse and returns the ServerResponse.
func (e *env) sendResponse(op, uafResponse string) *uaf.ServerResponse {
	e.t.Helper()
	return e.sendResponseCtx(op, uafResponse, "")
}

// sendResponseCtx is sendResponse with a response context.
func (e *env) sendResponseCtx(op, uafResponse, respCtx string) *uaf.ServerResponse {
	e.t.Helper()
	body, _ := json.Marshal(uaf.SendUAFResponse{UAFResponse: uafResponse, Context: respCtx})
	path := map[string]string{"Reg": "registration", "Auth": "authentication"}[op]
	code, b := e.do("POST", "/nevisfido/uaf/1.1/"+path, "application/fido+uaf", "", body)
	if code != 200 {
		e.t.Fatalf("POST %s: HTTP %d %s", path, code, b)
	}
	var r uaf.ServerResponse
	if err := json.Unmarshal(b, &r); err != nil {
		e.t.Fatalf("ServerResponse: %v: %s", err, b)
	}
	return &r
}

// db opens a second handle on the server's database, to check what was stored.
func (e *env) db() *sqlite.DB {
	db, err := sqlite.Open(context.Background(), sqlite.Options{Path: e.dbPath})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { db.Close() })
	return db
}

func TestHealthFacetsJWKS(t *testing.T) {
	e := newEnv(t, envOptions{})
	code, b := e.do("GET", "/healthz", "", "", nil)
	if code != 200 || !strings.Contains(string(b), `"hsm":"ok"`) || !strings.Contains(string(b), `"store":"ok"`) {
		t.Fatalf("healthz: %d %s", code, b)
	}
	req, _ := http.NewRequest("GET", e.http.URL+"/nevisfido/uaf/1.1/facets", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/fido.trusted-apps+json" {
		t.Fatalf("facets content type %q", ct)
	}
	var tf uaf.TrustedFacetList
	if err := json.Unmarshal(b, &tf); err != nil || len(tf.TrustedFacets) != 1 || tf.TrustedFacets[0].Version != uaf.Version11 ||
		len(tf.TrustedFacets[0].IDs) != 2 || tf.TrustedFacets[0].IDs[0] != facetID {
		t.Fatalf("facets: %s", b)
	}
	// Trailing slash, as the Nevis SDK sends it.
	if code, _ := e.do("GET", "/nevisfido/uaf/1.1/facets/", "", "", nil); code != 200 {
		t.Fatalf("facets with trailing slash: %d", code)
	}
	code, b = e.do("GET", "/.well-known/jwks.json", "", "", nil)
	var set struct {
		Keys []struct {
			Kid, Kty, Crv string
		} `json:"keys"`
	}
	if code != 200 || json.Unmarshal(b, &set) != nil || len(set.Keys) == 0 || set.Keys[0].Crv != "P-256" || set.Keys[0].Kid == "" {
		t.Fatalf("jwks: %d %s", code, b)
	}
}

func TestTransportErrors(t *testing.T) {
	e := newEnv(t, envOptions{maxBody: 8192})
	good, _ := json.Marshal(uaf.GetUAFRequest{Op: "Reg", Context: `{"username":"alice"}`})
	tok := e.callerToken("alice")
	cases := []struct {
		name, method, path, ct, bearer string
		body                           []byte
		want                           int
	}{
		{"anonymous registration", "POST", "/nevisfido/uaf/1.1/request/registration", "application/fido+uaf", "", good, 401},
		{"bad caller token", "POST", "/nevisfido/uaf/1.1/request/registration", "application/fido+uaf", "x.y.z", good, 401},
		{"token for another user", "POST", "/nevisfido/uaf/1.1/request/registration", "application/fido+uaf", e.callerToken("bob"), good, 403},
		{"anonymous deregistration", "POST", "/nevisfido/uaf/1.1/request/deregistration", "application/fido+uaf", "", good, 401},
		{"wrong content type", "POST", "/nevisfido/uaf/1.1/request/registration", "text/plain", tok, good, 415},
		{"GET on a POST path", "GET", "/nevisfido/uaf/1.1/request/authentication", "", "", nil, 405},
		{"not JSON", "POST", "/nevisfido/uaf/1.1/request/registration", "application/fido+uaf", tok, []byte("{"), 400},
		{"unknown member", "POST", "/nevisfido/uaf/1.1/request/registration", "application/fido+uaf", tok, []byte(`{"op":"Reg","context":"{}","x":1}`), 400},
		{"op of another endpoint", "POST", "/nevisfido/uaf/1.1/request/registration", "application/fido+uaf", tok, []byte(`{"op":"Auth"}`), 400},
		{"too large", "POST", "/nevisfido/uaf/1.1/registration", "application/fido+uaf", "", bytes.Repeat([]byte("a"), 9000), 413},
		{"unknown path", "GET", "/nevisfido/nothing", "", "", nil, 404},
		{"conformance API off", "POST", "/get", "application/json", "", good, 404},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, b := e.do(c.method, c.path, c.ct, c.bearer, c.body)
			if code != c.want {
				t.Fatalf("HTTP %d, want %d: %s", code, c.want, b)
			}
			if !strings.Contains(string(b), "errorMessage") {
				t.Fatalf("no error body: %s", b)
			}
		})
	}
	// Nothing was created by the refused requests.
	if _, err := e.db().UserByName(context.Background(), "alice"); err == nil {
		t.Fatal("a refused request created a user")
	}
}

func TestRequests(t *testing.T) {
	e := newEnv(t, envOptions{})
	// Registration request for the caller's own user.
	code, r, b := e.getRequest("Reg", map[string]string{"username": "alice"}, e.callerToken("alice"))
	if code != 200 || r.StatusCode != uaf.StatusOK || r.Op != uaf.OpReg || r.LifetimeMillis != 300000 {
		t.Fatalf("registration request: %d %s", code, b)
	}
	req, err := uaf.DecodeRequest([]byte(r.UAFRequest))
	if err != nil {
		t.Fatalf("the server's own request does not decode: %v", err)
	}
	reg := req.Registration
	if reg == nil || reg.Username != "alice" || reg.Header.AppID != appID || reg.Header.UPV != uaf.Version11 ||
		len(reg.Header.ServerData) == 0 || len(reg.Header.ServerData) > 1536 {
		t.Fatalf("registration request: %+v", reg)
	}
	chal, err := uaf.DecodeBase64URL(reg.Challenge)
	if err != nil || len(chal) != 32 {
		t.Fatalf("challenge %q: %d bytes, %v", reg.Challenge, len(chal), err)
	}
	// A second request has a fresh challenge and serverData.
	_, r2, _ := e.getRequest("Reg", map[string]string{"username": "alice"}, e.callerToken("alice"))
	req2, _ := uaf.DecodeRequest([]byte(r2.UAFRequest))
	if req2.Registration.Challenge == reg.Challenge || req2.Registration.Header.ServerData == reg.Header.ServerData {
		t.Fatal("challenge or serverData reused")
	}
	// Unknown policy → 400.
	if code, _, b := e.getRequest("Reg", map[string]string{"username": "alice", "policy": "nope"}, e.callerToken("alice")); code != 400 {
		t.Fatalf("unknown policy: %d %s", code, b)
	}
	// Step-up for a user without registrations → 1404 in-band.
	code, r, b = e.getRequest("Auth", map[string]string{"username": "nobody"}, "")
	if code != 200 || r.StatusCode != uaf.StatusNotFound || r.UAFRequest != "" {
		t.Fatalf("step-up without keys: %d %s", code, b)
	}
	// Usernameless with a transaction.
	code, r, b = e.getRequest("Auth", map[string]any{"transaction": "Pay 10 EUR to Bob"}, "")
	if code != 200 || r.StatusCode != uaf.StatusOK {
		t.Fatalf("usernameless: %d %s", code, b)
	}
	areq, err := uaf.DecodeRequest([]byte(r.UAFRequest))
	if err != nil || areq.Authentication == nil || len(areq.Authentication.Transaction) != 1 {
		t.Fatalf("auth request: %v %+v", err, areq)
	}
	if tx := areq.Authentication.Transaction[0]; tx.ContentType != "text/plain" || tx.Content != uaf.EncodeBase64URL([]byte("Pay 10 EUR to Bob")) {
		t.Fatalf("transaction %+v", tx)
	}
	// Transaction limits.
	long := strings.Repeat("é", 201)
	if code, _, _ := e.getRequest("Auth", map[string]any{"transaction": long}, ""); code != 400 {
		t.Fatalf("201-character transaction: %d", code)
	}
	if code, _, _ := e.getRequest("Auth", map[string]any{"transaction": map[string]string{"contentType": "image/png", "content": "bm90IGEgcG5n"}}, ""); code != 400 {
		t.Fatalf("non-PNG image: %d", code)
	}
	// Deregistration of everything for a user with no keys: 1404, no request (a wildcard
	// would make a shared device delete other users' keys).
	code, r, b = e.getRequest("Dereg", map[string]any{"username": "alice", "deregisterAll": true}, e.callerToken("alice"))
	if code != 200 || r.StatusCode != uaf.StatusNotFound || r.UAFRequest != "" {
		t.Fatalf("dereg with nothing registered: %d %s", code, b)
	}
}
