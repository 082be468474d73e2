package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/internal/testutil"
	"github.com/fidoserver/hwfido/uaf"
)

// registerOOB runs an out-of-band registration of user through dispatcher (a QR or link
// dispatcher) and returns the registration response's additional tokens and the session.
func registerOOB(t *testing.T, e *env, a *authr, user, dispatcher string, respCtx any) (*uaf.ServerResponse, string) {
	t.Helper()
	code, d, b := e.dispatch("Reg", e.callerToken(user), map[string]any{"dispatcher": dispatcher,
		"getUafRequest": getUAF("Reg", map[string]string{"username": user})})
	if code != 200 || d.DispatchResult != "dispatched" || d.Token == "" || d.SessionID == "" ||
		d.DispatcherInformation == nil || d.DispatcherInformation.Name != dispatcher {
		t.Fatalf("dispatch: %d %s", code, b)
	}
	var enc string
	switch dispatcher {
	case "png-qr-code":
		enc = decodeQR(t, d.DispatcherInformation.Response)
	case "link", "link-png-qr-code":
		link := d.DispatcherInformation.Response
		if dispatcher == "link-png-qr-code" {
			link = decodeQR(t, link)
		}
		u, err := url.Parse(link)
		if err != nil {
			t.Fatal(err)
		}
		enc = u.Query().Get("dispatchTokenResponse")
	}
	nma := decodePayload(t, enc).clear(t)
	if nma["token"] != d.Token || nma["redeem_url"] != e.cfg.Server.PublicURL+"/nevisfido/token/redeem/registration" {
		t.Fatalf("nma_data %v", nma)
	}
	if st := e.status(d.SessionID); st.Status != "tokenCreated" || st.UserID != user ||
		st.TokenInformation == nil || st.TokenInformation.DispatcherInformation == nil ||
		st.TokenInformation.DispatcherInformation.Name != dispatcher || st.TokenInformation.DispatcherInformation.Response != "" {
		t.Fatalf("status after dispatch: %+v", st)
	}
	// The token is stored only as its hash: not in the database file nor its WAL, where
	// the QR code or link (which carry it) would otherwise sit.
	for _, f := range []string{e.dbPath, e.dbPath + "-wal"} {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte(d.Token)) || bytes.Contains(raw, []byte(d.DispatcherInformation.Response)) {
			t.Fatalf("%s holds the clear token or the dispatcher's response", filepath.Base(f))
		}
	}
	r := e.redeem("Reg", d.Token)
	if r == nil || r.StatusCode != uaf.StatusOK || r.Op != uaf.OpReg || r.LifetimeMillis <= 0 {
		t.Fatalf("redeem: %+v", r)
	}
	if st := e.status(d.SessionID); st.Status != "clientRegistering" || st.TokenInformation.TokenResult != "tokenRedeemed" {
		t.Fatalf("status after redeem: %+v", st)
	}
	// The device can read serverData; it must not learn the session id (which opens the
	// Status Service and its result token).
	req, _ := uaf.DecodeRequest([]byte(r.UAFRequest))
	sd, _ := base64.RawURLEncoding.DecodeString(req.Registration.Header.ServerData)
	if len(sd) == 0 || bytes.Contains(sd, []byte(d.SessionID)) || strings.Contains(r.UAFRequest, d.SessionID) {
		t.Fatal("the UAF request reveals the session id")
	}
	rc := ""
	if respCtx != nil {
		b, _ := json.Marshal(respCtx)
		rc = string(b)
	}
	return e.sendResponseCtx("Reg", a.register(r, mutations{}), rc), d.SessionID
}

// TestOOBRegistrationDispatchers: registration through each QR/link dispatcher; the payload
// decodes (the QR codes with an independent decoder), the session moves tokenCreated →
// clientRegistering → succeeded with a result token that verifies with the JWKS, and the
// token cannot be redeemed twice.
func TestOOBRegistrationDispatchers(t *testing.T) {
	e, a := oobEnv(t, "")
	for i, d := range []string{"png-qr-code", "link", "link-png-qr-code"} {
		t.Run(d, func(t *testing.T) {
			user := []string{"alice", "bob", "carol"}[i]
			sr, sid := registerOOB(t, e, a, user, d, nil)
			if sr.StatusCode != uaf.StatusOK || len(sr.AdditionalTokens) != 1 || sr.AdditionalTokens[0].Type != "JWT" {
				t.Fatalf("registration: %+v", sr)
			}
			if c := e.verifyResultToken(sr.AdditionalTokens[0].Value); c["sub"] != user || c["op"] != "Reg" {
				t.Fatalf("the device's registration token: %+v", c)
			}
			st := e.status(sid)
			if st.Status != "succeeded" || st.UserID != user || st.UAFStatusCode != 1200 || len(st.Authenticators) != 1 ||
				st.Authenticators[0].AAID != testAAID || st.Authenticators[0].KeyID != a.lastKey || st.ResultToken == "" {
				t.Fatalf("final status: %+v", st)
			}
			c := e.verifyResultToken(st.ResultToken)
			if c["sub"] != user || c["op"] != "Reg" || c["session_id"] != sid {
				t.Fatalf("result token claims %v", c)
			}
		})
	}
}

// TestOOBTokenRefusals: unknown, reused and other-operation tokens get 1401 and change
// nothing; a token of another operation stays redeemable at its own.
func TestOOBTokenRefusals(t *testing.T) {
	e, _ := oobEnv(t, "")
	code, b := e.do("POST", "/nevisfido/token/create/authentication", "application/fido+uaf", "",
		mustJSON(getUAF("Auth", map[string]string{"transaction": "Pay 5 EUR"})))
	var tr struct{ Token, SessionID string }
	if code != 200 || json.Unmarshal(b, &tr) != nil || len(tr.Token) != 43 || tr.SessionID == "" {
		t.Fatalf("create token: %d %s", code, b)
	}
	refused := func(op, tok string) {
		t.Helper()
		code, b := e.doJSON("POST", "/nevisfido/token/redeem/"+opPath[op]+"/", "", map[string]string{"token": tok})
		if code != 200 || strings.TrimSpace(string(b)) != `{"statusCode":1401}` {
			t.Fatalf("redeem %s %q: %d %s", op, tok, code, b)
		}
	}
	refused("Auth", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	refused("Auth", "not base64!")
	refused("Auth", "")
	refused("Reg", tr.Token)
	refused("Dereg", tr.Token)
	if st := e.status(tr.SessionID); st.Status != "tokenCreated" || st.TokenInformation != nil {
		t.Fatalf("status after wrong-operation redeems: %+v", st)
	}
	if r := e.redeem("Auth", tr.Token); r == nil || r.StatusCode != uaf.StatusOK {
		t.Fatalf("redeem at the right operation: %+v", r)
	}
	refused("Auth", tr.Token)
	if st := e.status(tr.SessionID); st.Status != "clientAuthenticating" {
		t.Fatalf("status: %+v", st)
	}
	// Bad bodies.
	for _, body := range []string{`{`, `{"token":"x","more":1}`, `{"token":"x"} {}`} {
		if code, b := e.do("POST", "/nevisfido/token/redeem/authentication", "application/json", "", []byte(body)); code != 400 {
			t.Fatalf("redeem body %q: %d %s", body, code, b)
		}
	}
	// Unknown session.
	if st := e.status("no-such-session"); st.Status != "unknown" {
		t.Fatalf("unknown session: %+v", st)
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// TestOOBTokenExpiry: an expired token is refused and the status reports tokenTimedOut.
func TestOOBTokenExpiry(t *testing.T) {
	e, _ := oobEnv(t, "oob:\n  token-lifetime: 1s\n  dispatchers:\n    - type: link\n")
	code, d, b := e.dispatch("Auth", "", map[string]any{"dispatcher": "link", "getUafRequest": getUAF("Auth", map[string]string{})})
	if code != 200 || d.DispatchResult != "dispatched" {
		t.Fatalf("dispatch: %d %s", code, b)
	}
	testutil.WaitFor(t, "the condition", 10*time.Second, func() bool { return e.status(d.SessionID).Status == "failed" })
	if r := e.redeem("Auth", d.Token); r == nil || r.StatusCode != uaf.StatusUnauthorized || r.UAFRequest != "" {
		t.Fatalf("expired token redeemed: %+v", r)
	}
	st := e.status(d.SessionID)
	if st.Status != "failed" || st.TokenInformation == nil || st.TokenInformation.TokenResult != "tokenTimedOut" {
		t.Fatalf("status of an expired token: %+v", st)
	}
}

// TestOOBAuthorization: registration and deregistration tokens need a caller for the user;
// a caller token acts only for its own user; refused requests create no session.
func TestOOBAuthorization(t *testing.T) {
	e, _ := oobEnv(t, "")
	reg := mustJSON(getUAF("Reg", map[string]string{"username": "alice"}))
	dereg := mustJSON(getUAF("Dereg", map[string]any{"username": "alice", "deregisterAll": true}))
	cases := []struct {
		name, path, bearer string
		body               []byte
		want               int
	}{
		{"anonymous registration token", "/nevisfido/token/create/registration", "", reg, 401},
		{"registration token for another user", "/nevisfido/token/create/registration", e.callerToken("bob"), reg, 403},
		{"anonymous deregistration token", "/nevisfido/token/create/deregistration", "", dereg, 401},
		{"deregistration token for another user", "/nevisfido/token/create/deregistration", e.callerToken("bob"), dereg, 403},
		{"bad caller token", "/nevisfido/token/create/registration", "x.y.z", reg, 401},
		{"op of another endpoint", "/nevisfido/token/create/registration", e.callerToken("alice"), dereg, 400},
		{"anonymous registration dispatch", "/nevisfido/token/dispatch/registration", "",
			mustJSON(map[string]any{"dispatcher": "link", "getUafRequest": getUAF("Reg", map[string]string{"username": "alice"})}), 401},
		{"step-up dispatch for another user", "/nevisfido/token/dispatch/authentication", e.callerToken("bob"),
			mustJSON(map[string]any{"dispatcher": "link", "getUafRequest": getUAF("Auth", map[string]string{"username": "alice"})}), 403},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ct := "application/fido+uaf"
			if strings.Contains(c.path, "dispatch") {
				ct = "application/json"
			}
			if code, b := e.do("POST", c.path, ct, c.bearer, c.body); code != c.want {
				t.Fatalf("HTTP %d, want %d: %s", code, c.want, b)
			}
		})
	}
	if n := countRows(t, e, "oob_sessions"); n != 0 {
		t.Fatalf("refused requests created %d sessions", n)
	}
	// The caller's own user works.
	if code, b := e.do("POST", "/nevisfido/token/create/registration", "application/fido+uaf", e.callerToken("alice"), reg); code != 200 {
		t.Fatalf("own registration token: %d %s", code, b)
	}
}

func countRows(t *testing.T, e *env, table string) int {
	t.Helper()
	var n int
	if err := e.db().Reader().QueryRowContext(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestOOBDispatchBadInput: malformed dispatchInformation, oversized transactions and
// unknown dispatchers are refused and create nothing.
func TestOOBDispatchBadInput(t *testing.T) {
	e, _ := oobEnv(t, "")
	auth := getUAF("Auth", map[string]string{})
	cases := []struct {
		name string
		body any
		want int
	}{
		{"dispatchInformation not JSON", map[string]any{"dispatcher": "link", "dispatchInformation": "{", "getUafRequest": auth}, 400},
		{"dispatchInformation unknown key", map[string]any{"dispatcher": "link", "dispatchInformation": `{"x":1}`, "getUafRequest": auth}, 400},
		{"dispatchInformation reserved data key", map[string]any{"dispatcher": "link", "dispatchInformation": `{"data":{"token":"mine"}}`, "getUafRequest": auth}, 400},
		{"dispatchInformation not a string", map[string]any{"dispatcher": "link", "dispatchInformation": map[string]any{}, "getUafRequest": auth}, 400},
		{"oversized transaction", map[string]any{"dispatcher": "link", "getUafRequest": getUAF("Auth", map[string]string{"transaction": strings.Repeat("x", 201)})}, 400},
		{"transaction that redraws a terminal", map[string]any{"dispatcher": "link", "getUafRequest": getUAF("Auth",
			map[string]string{"transaction": "Pay 9999 EUR\r\x1b[2KPay 10 EUR"})}, 400},
		{"unknown policy", map[string]any{"dispatcher": "link", "getUafRequest": getUAF("Auth", map[string]string{"policy": "nope"})}, 400},
		{"no getUafRequest", map[string]any{"dispatcher": "link"}, 400},
		{"unknown member", map[string]any{"dispatcher": "link", "getUafRequest": auth, "x": 1}, 400},
		{"op of another endpoint", map[string]any{"dispatcher": "link", "getUafRequest": getUAF("Reg", map[string]string{})}, 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if code, _, b := e.dispatch("Auth", "", c.body.(map[string]any)); code != c.want {
				t.Fatalf("HTTP %d, want %d: %s", code, c.want, b)
			}
		})
	}
	// The embedded GetUAFRequest is decoded as strictly as at the token services.
	for name, raw := range map[string]string{
		"getUafRequest key in another case": `{"dispatcher":"link","getUafRequest":{"OP":"Auth","context":"{}"}}`,
		"getUafRequest duplicate key":       `{"dispatcher":"link","getUafRequest":{"op":"Reg","op":"Auth","context":"{}"}}`,
	} {
		if code, b := e.doJSON("POST", "/nevisfido/token/dispatch/authentication", "", []byte(raw)); code != 400 {
			t.Fatalf("%s: HTTP %d, want 400: %s", name, code, b)
		}
	}
	// Well-formed but undeliverable: HTTP 200 with the dispatch result, no token.
	for _, c := range []struct {
		body map[string]any
		want string
	}{
		{map[string]any{"dispatcher": "carrier-pigeon", "getUafRequest": auth}, "dispatcherNotFound"},
		{map[string]any{"dispatcher": "hwfido-stream", "getUafRequest": auth}, "dispatchTargetNotFound"},
		{map[string]any{"dispatcher": "link", "getUafRequest": getUAF("Auth", map[string]string{"username": "nobody"})}, "userNotFound"},
	} {
		code, d, b := e.dispatch("Auth", "", c.body)
		if code != 200 || d.DispatchResult != c.want || d.Token != "" {
			t.Fatalf("%v: %d %s", c.body, code, b)
		}
	}
	// Too large a body: 413.
	big := map[string]any{"dispatcher": "link", "dispatchInformation": strings.Repeat(" ", 300<<10), "getUafRequest": auth}
	if code, _, _ := e.dispatch("Auth", "", big); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: %d", code)
	}
	if n := countRows(t, e, "oob_sessions"); n != 0 {
		t.Fatalf("refused dispatches created %d sessions", n)
	}
}
