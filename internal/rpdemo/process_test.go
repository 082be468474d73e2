package rpdemo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/internal/testutil"
	"github.com/fidoserver/hwfido/test/harness"
	"github.com/fidoserver/hwfido/uaf"
	"github.com/fidoserver/hwfido/uaf/uaftest"
)

// These tests run against a real hwfido-server process (SoftHSM, SQLite) started by
// test/harness.

// uafPost sends a UAF JSON body to the server and decodes the answer.
func uafPost(t *testing.T, hc *http.Client, base, path, bearer string, in, out any) {
	t.Helper()
	b, _ := json.Marshal(in)
	req, _ := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/fido+uaf;charset=UTF-8")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: HTTP %d %s", path, resp.StatusCode, rb)
	}
	if err := json.Unmarshal(rb, out); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// inBand runs one in-band UAF operation with the software authenticator and returns the
// result token.
func inBand(t *testing.T, s *harness.Server, a *uaftest.Authenticator, op string, ctx map[string]string, bearer string) string {
	t.Helper()
	c, _ := json.Marshal(ctx)
	path := map[string]string{"Reg": "registration", "Auth": "authentication"}[op]
	var r uaf.ReturnUAFRequest
	uafPost(t, http.DefaultClient, s.URL, "/nevisfido/uaf/1.1/request/"+path, bearer, uaf.GetUAFRequest{Op: uaf.Operation(op), Context: string(c)}, &r)
	if r.StatusCode != uaf.StatusOK {
		t.Fatalf("%s request: %d", op, r.StatusCode)
	}
	resp, err := a.Respond(r.UAFRequest, harness.DefaultFacet)
	if err != nil {
		t.Fatal(err)
	}
	var sr uaf.ServerResponse
	uafPost(t, http.DefaultClient, s.URL, "/nevisfido/uaf/1.1/"+path, "", uaf.SendUAFResponse{UAFResponse: resp}, &sr)
	if sr.StatusCode != uaf.StatusOK {
		t.Fatalf("%s: %+v", op, sr)
	}
	if len(sr.AdditionalTokens) == 0 {
		return "" // in-band registrations carry no result token
	}
	return sr.AdditionalTokens[0].Value
}

// TestVerifierWithServerTokens verifies result tokens the server signed in its HSM, and
// refuses them for another user, operation, transaction, audience or issuer.
func TestVerifierWithServerTokens(t *testing.T) {
	if testing.Short() {
		t.Skip("starts hwfido-server")
	}
	t.Parallel() // each test has its own server process, token and database
	a, err := uaftest.New(uaftest.Options{AAID: "FFFF#E101"})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := a.MetadataStatement()
	s := harness.StartServer(t, harness.ServerOptions{Metadata: [][]byte{st}})
	inBand(t, s, a, "Reg", map[string]string{"username": "alice"}, s.CallerToken(t, "alice"))
	plain := inBand(t, s, a, "Auth", map[string]string{"username": "alice"}, "")
	const tx = "Pay 10.00 EUR to Bob's Books"
	auth := inBand(t, s, a, "Auth", map[string]string{"username": "alice", "transaction": tx}, "")

	key, err := LoadKey(s.LoginKeyFile(t))
	if err != nil {
		t.Fatal(err)
	}
	fc := &Client{Base: s.URL, HTTP: http.DefaultClient, Key: key}
	v := &Verifier{Client: fc, Issuer: s.URL, Audience: "https://rp.test"}
	ctx := context.Background()
	if c, err := v.Verify(ctx, plain, Expect{Username: "alice", Operation: "Auth"}); err != nil || c.AAID != "FFFF#E101" || c.TxHash != "" {
		t.Fatalf("authentication token: %+v %v", c, err)
	}
	c, err := v.Verify(ctx, auth, Expect{Username: "alice", Operation: "Auth", Transaction: tx})
	if err != nil || c.TxHash != TxHash(tx) {
		t.Fatalf("transaction token: %+v %v", c, err)
	}
	bad := []struct {
		name string
		v    *Verifier
		tok  string
		want Expect
	}{
		{"other user", v, auth, Expect{Username: "bob", Operation: "Auth", Transaction: tx}},
		{"other op", v, auth, Expect{Username: "alice", Operation: "Reg", Transaction: tx}},
		{"other transaction", v, auth, Expect{Username: "alice", Operation: "Auth", Transaction: "Pay 9999.00 EUR to Mallory"}},
		{"transaction missing", v, plain, Expect{Username: "alice", Operation: "Auth", Transaction: tx}},
		{"tx_hash unexpected", v, auth, Expect{Username: "alice", Operation: "Auth"}},
		{"other session", v, auth, Expect{Username: "alice", Operation: "Auth", Transaction: tx, SessionID: "x"}},
		{"audience", &Verifier{Client: fc, Issuer: s.URL, Audience: "https://other.test"}, auth, Expect{Username: "alice", Operation: "Auth", Transaction: tx}},
		{"issuer", &Verifier{Client: fc, Issuer: "https://evil.test", Audience: "https://rp.test"}, auth, Expect{Username: "alice", Operation: "Auth", Transaction: tx}},
		{"tampered", v, auth[:len(auth)-4] + "AAAA", Expect{Username: "alice", Operation: "Auth", Transaction: tx}},
		{"expired", &Verifier{Client: fc, Issuer: s.URL, Audience: "https://rp.test", Now: func() time.Time { return time.Now().Add(time.Hour) }}, auth, Expect{Username: "alice", Operation: "Auth", Transaction: tx}},
	}
	for _, b := range bad {
		if _, err := b.v.Verify(ctx, b.tok, b.want); !errors.Is(err, ErrResultToken) {
			t.Errorf("%s: %v", b.name, err)
		}
	}
}

// browserClient is a cookie-keeping HTTP client that does not follow redirects.
func browserClient(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var csrfRE = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)

// loggedIn logs a new browser client in to the app at base as alice with her password and
// returns it with the CSRF token of the new session. The client has no overall timeout:
// it also follows event streams, which end with their test.
func loggedIn(t *testing.T, base string) (*http.Client, string) {
	t.Helper()
	c := browserClient(t)
	c.Timeout = 0
	_, csrf := page(t, c, base)
	if r := form(t, c, base+"/login", url.Values{"username": {"alice"}, "password": {"correct horse"}, "csrf": {csrf}}, nil); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d", r.StatusCode)
	}
	_, csrf = page(t, c, base)
	return c, csrf
}

// page GETs / and returns the page and its CSRF token.
func page(t *testing.T, c *http.Client, base string) (string, string) {
	t.Helper()
	resp, err := c.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := csrfRE.FindSubmatch(b)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("GET /: %d %s", resp.StatusCode, b)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Fatalf("CSP %q", csp)
	}
	return string(b), string(m[1])
}

func form(t *testing.T, c *http.Client, u string, v url.Values, hdr map[string]string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, x := range hdr {
		req.Header.Set(k, x)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func api(t *testing.T, c *http.Client, u, csrf, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if csrf != "" {
		req.Header.Set(csrfHeader, csrf)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: %v: %s", u, err, b)
		}
	}
	return resp.StatusCode
}

// rpFixture is an App served by httptest in front of a real hwfido-server.
type rpFixture struct {
	srv  *harness.Server
	app  *App
	base string
	log  *testutil.SyncBuffer
}

func newFixture(t *testing.T, o harness.ServerOptions) *rpFixture {
	t.Helper()
	return serveApp(t, harness.StartServer(t, o), "https://rp.test")
}

// serveApp serves an App for s; audience is the result-token audience it expects.
func serveApp(t *testing.T, s *harness.Server, audience string) *rpFixture {
	t.Helper()
	f := serveAppConfig(t, s.LoginKeyFile(t), `"server":"`+s.URL+`","resultToken":{"audience":"`+audience+`"}`)
	f.srv = s
	return f
}

// serveAppConfig serves an App whose config has the given server-side keys (server,
// resultToken, …), signing caller tokens with the key in keyFile.
func serveAppConfig(t *testing.T, keyFile, serverKeys string) *rpFixture {
	t.Helper()
	users, err := ParseUsers([]byte("alice:" + hashFor(t, "correct horse") + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := LoadKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(nil)
	base := "http://" + hs.Listener.Addr().String()
	cfg, err := ParseConfig([]byte(`{"version":1,"publicURL":"` + base + `","usersFile":"unused",
		"login":{"issuer":"` + harness.Issuer + `","audience":"` + harness.Audience + `","keyFile":"unused"},
		"operationTimeout":"90s",` + serverKeys + `}`))
	if err != nil {
		t.Fatal(err)
	}
	logBuf := &testutil.SyncBuffer{}
	app, err := New(Options{Config: cfg, Users: users, Key: key, Logger: slog.New(slog.NewTextHandler(logBuf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = app.Handler()
	hs.Start()
	t.Cleanup(func() { hs.Close(); app.Close() })
	return &rpFixture{app: app, base: base, log: logBuf}
}

// TestLoginAndCSRF covers the password login, session rotation, CSRF and cross-origin
// refusals and body limits.
func TestLoginAndCSRF(t *testing.T) {
	if testing.Short() {
		t.Skip("starts hwfido-server")
	}
	t.Parallel() // each test has its own server process, token and database
	f := newFixture(t, harness.ServerOptions{})
	c := browserClient(t)
	_, csrf := page(t, c, f.base)
	u, _ := url.Parse(f.base)
	anon := c.Jar.Cookies(u)

	good := url.Values{"username": {"alice"}, "password": {"correct horse"}, "csrf": {csrf}}
	if r := form(t, c, f.base+"/login", url.Values{"username": {"alice"}, "password": {"correct horse"}}, nil); r.StatusCode != http.StatusForbidden {
		t.Fatalf("login without CSRF token: %d", r.StatusCode)
	}
	if r := form(t, c, f.base+"/login", good, map[string]string{"Origin": "http://evil.test"}); r.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin login: %d", r.StatusCode)
	}
	if r := form(t, c, f.base+"/login", good, map[string]string{"Sec-Fetch-Site": "cross-site"}); r.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site login: %d", r.StatusCode)
	}
	huge := url.Values{"username": {"alice"}, "password": {strings.Repeat("x", maxBody)}, "csrf": {csrf}}
	if r := form(t, c, f.base+"/login", huge, nil); r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("login form over the bound: %d, want 413", r.StatusCode)
	}
	bad := url.Values{"username": {"alice"}, "password": {"wrong"}, "csrf": {csrf}}
	if r := form(t, c, f.base+"/login", bad, nil); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", r.StatusCode)
	}
	if api(t, c, f.base+"/api/registration", csrf, "{}", nil) != http.StatusUnauthorized {
		t.Fatal("registration before login")
	}
	r := form(t, c, f.base+"/login", good, map[string]string{"Origin": f.base})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d", r.StatusCode)
	}
	var sc *http.Cookie
	for _, k := range r.Cookies() {
		if k.Name == sessionCookie {
			sc = k
		}
	}
	if sc == nil || !sc.HttpOnly || sc.SameSite != http.SameSiteStrictMode || sc.Value == anon[0].Value {
		t.Fatalf("session cookie after login: %+v (anonymous %v)", sc, anon)
	}
	body, csrf2 := page(t, c, f.base)
	if !strings.Contains(body, `id="whoami">alice<`) || csrf2 == csrf {
		t.Fatalf("logged-in page / CSRF rotation: %q %q", csrf2, csrf)
	}
	// The old anonymous cookie no longer names a session.
	old := browserClient(t)
	old.Jar.SetCookies(u, anon)
	if api(t, old, f.base+"/api/registration", csrf, "{}", nil) != http.StatusUnauthorized {
		t.Fatal("pre-login cookie still works")
	}
	if api(t, c, f.base+"/api/registration", "", "{}", nil) != http.StatusForbidden {
		t.Fatal("registration without CSRF token")
	}
	if api(t, c, f.base+"/api/registration", csrf, "{}", nil) != http.StatusForbidden {
		t.Fatal("registration with the pre-login CSRF token")
	}
	big := `{"amount":"1.00","payee":"` + strings.Repeat("x", maxBody) + `"}`
	if code := api(t, c, f.base+"/api/payment", csrf2, big, nil); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: %d", code)
	}
	for _, b := range []string{`{"amount":"1e9","payee":"Bob"}`, `{"amount":"1.00","payee":"<script>"}`, `{"amount":"1.00","payee":"Bob","x":1}`, `{"amount":"1.00","payee":"Bob"}{}`} {
		if code := api(t, c, f.base+"/api/payment", csrf2, b, nil); code != http.StatusBadRequest {
			t.Errorf("payment %s: %d", b, code)
		}
	}
	resp, err := c.Get(f.base + "/api/ops/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown op: %d", resp.StatusCode)
	}
	if r := form(t, c, f.base+"/logout", url.Values{"csrf": {csrf2}}, nil); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", r.StatusCode)
	}
	if api(t, c, f.base+"/api/registration", csrf2, "{}", nil) != http.StatusUnauthorized {
		t.Fatal("registration after logout")
	}
	for _, secret := range []string{"correct horse", csrf, csrf2, sc.Value} {
		if strings.Contains(f.log.String(), secret) {
			t.Fatalf("the log contains a secret")
		}
	}
	_ = os.Stderr
}
