package rpdemo

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/authenticatord/oob"
	"github.com/fidoserver/hwfido/server/callerauth"
	"github.com/fidoserver/hwfido/test/harness"
	"github.com/fidoserver/hwfido/uaf"
	"github.com/fidoserver/hwfido/uaf/uaftest"
)

// redeemDereg plays the phone reading a deregistration QR code: it redeems the token and
// applies the DeregistrationRequest to a (there is no response to send).
func redeemDereg(t *testing.T, base string, a *uaftest.Authenticator, qrDataURI string) {
	t.Helper()
	png, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(qrDataURI, "data:image/png;base64,"))
	if err != nil {
		t.Fatal(err)
	}
	text, err := oob.DecodeQR(bytes.NewReader(png))
	if err != nil {
		t.Fatal(err)
	}
	p, err := oob.ParseText(text)
	if err != nil || p.Data == nil || !strings.HasPrefix(p.Data.RedeemURL, base+"/") {
		t.Fatalf("QR payload: %+v %v", p, err)
	}
	body, _ := json.Marshal(map[string]string{"token": p.Data.Token})
	resp, err := http.Post(p.Data.RedeemURL, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r uaf.ReturnUAFRequest
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.StatusCode != uaf.StatusOK || r.Op != uaf.OpDereg {
		t.Fatalf("redeem: %+v %v", r, err)
	}
	if _, err := a.Respond(r.UAFRequest, harness.DefaultFacet); err != nil {
		t.Fatal(err)
	}
}

// TestPhoneLoginAndDeregistration: "log in with your phone" (usernameless authentication by
// QR code from the anonymous login page) logs the browser in as the user the verified
// result token names — and the trail names no user before success; a user without an
// account, an unfinished and a reused login are refused. "Remove your phone"
// (deregistration by QR code) ends succeeded and the server has no registration left.
func TestPhoneLoginAndDeregistration(t *testing.T) {
	if testing.Short() {
		t.Skip("starts hwfido-server")
	}
	t.Parallel() // each test has its own server process, token and database
	a, err := uaftest.New(uaftest.Options{AAID: "FFFF#E105"})
	if err != nil {
		t.Fatal(err)
	}
	dora, err := uaftest.New(uaftest.Options{AAID: "FFFF#E106"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := uaftest.New(uaftest.Options{AAID: "FFFF#E107"})
	if err != nil {
		t.Fatal(err)
	}
	sa, _ := a.MetadataStatement()
	sd, _ := dora.MetadataStatement()
	so, _ := other.MetadataStatement()
	f := newFixture(t, harness.ServerOptions{Metadata: [][]byte{sa, sd, so}, ExtraYAML: oobYAML})

	// alice registers her phone by QR code (password login first).
	c, csrf := loggedIn(t, f.base)
	var reg startResponse
	if code := api(t, c, f.base+"/api/registration", csrf, "{}", &reg); code != http.StatusOK {
		t.Fatalf("registration start: %d", code)
	}
	rdone := make(chan []OpState, 1)
	go func() { rdone <- events(t, c, f.base, reg.Op) }()
	phone(t, f.srv, a, reg.QR)
	if tr := <-rdone; tr[len(tr)-1].Outcome != "succeeded" || len(tr[len(tr)-1].TrailUserIDs) != len(tr[len(tr)-1].Trail) ||
		slices.ContainsFunc(tr[len(tr)-1].TrailUserIDs, func(u string) bool { return u != "alice" }) {
		t.Fatalf("registration: the status names alice from the start: %+v", tr[len(tr)-1])
	}
	// alice has another authenticator; dora has a phone but no account at the bank.
	inBand(t, f.srv, other, "Reg", map[string]string{"username": "alice"}, f.srv.CallerToken(t, "alice"))
	inBand(t, f.srv, dora, "Reg", map[string]string{"username": "dora"}, f.srv.CallerToken(t, "dora"))

	// phoneLogin starts a login from a new, anonymous browser and answers it with the phone.
	phoneLogin := func(ph *uaftest.Authenticator) (*http.Client, string, string, OpState) {
		t.Helper()
		b := browserClient(t)
		b.Timeout = 0
		html, csrf := page(t, b, f.base)
		if !strings.Contains(html, `id="ul-start"`) {
			t.Fatal("the login page has no phone login")
		}
		var s startResponse
		if code := api(t, b, f.base+"/api/login/qr", csrf, "{}", &s); code != http.StatusOK || s.Via != "qr" || s.QR == "" {
			t.Fatalf("phone login start: %d %+v", code, s)
		}
		// Not final yet: it cannot log the session in.
		if code := api(t, b, f.base+"/api/ops/"+url.PathEscape(s.Op)+"/login", csrf, "{}", nil); code != http.StatusConflict {
			t.Fatalf("unfinished login: %d", code)
		}
		done := make(chan []OpState, 1)
		go func() { done <- events(t, b, f.base, s.Op) }()
		if sr := phone(t, f.srv, ph, s.QR); sr.StatusCode != uaf.StatusOK {
			t.Fatalf("phone: %+v", sr)
		}
		select {
		case tr := <-done:
			return b, csrf, s.Op, tr[len(tr)-1]
		case <-time.After(60 * time.Second):
			t.Fatal("phone login not final after 60s")
		}
		return nil, "", "", OpState{}
	}
	b, bcsrf, op, st := phoneLogin(a)
	if st.Outcome != "succeeded" || !st.Verified || st.VerifiedUser != "alice" || st.UserID != "alice" || st.Kind != "login" {
		t.Fatalf("phone login: %+v", st)
	}
	// The server's stream may skip clientAuthenticating when the phone answers at once
	// (it sends the status it reads after a change); the user is named only on succeeded.
	full := slices.Equal(st.Trail, []string{"tokenCreated", "clientAuthenticating", "succeeded"}) &&
		slices.Equal(st.TrailUserIDs, []string{"", "", "alice"})
	short := slices.Equal(st.Trail, []string{"tokenCreated", "succeeded"}) && slices.Equal(st.TrailUserIDs, []string{"", "alice"})
	if !full && !short {
		t.Fatalf("phone login trail %v users %q", st.Trail, st.TrailUserIDs)
	}
	if code := api(t, b, f.base+"/api/ops/"+url.PathEscape(op)+"/login", "", "{}", nil); code != http.StatusForbidden {
		t.Fatalf("login without CSRF token: %d", code)
	}
	var who struct{ User, CSRF string }
	if code := api(t, b, f.base+"/api/ops/"+url.PathEscape(op)+"/login", bcsrf, "{}", &who); code != http.StatusOK || who.User != "alice" || who.CSRF == "" {
		t.Fatalf("phone login finish: %d %+v", code, who)
	}
	if html, _ := page(t, b, f.base); !strings.Contains(html, `<strong id="whoami">alice</strong>`) {
		t.Fatal("the browser is not logged in as alice")
	}
	// The session was rotated: the operation (of the anonymous session) is gone.
	if code := api(t, b, f.base+"/api/ops/"+url.PathEscape(op)+"/login", who.CSRF, "{}", nil); code != http.StatusNotFound {
		t.Fatalf("reused login: %d", code)
	}
	// A phone of a user without an account here does not log in.
	d, dcsrf, dop, dst := phoneLogin(dora)
	if dst.Outcome != "succeeded" || dst.VerifiedUser != "dora" {
		t.Fatalf("dora's phone login: %+v", dst)
	}
	if code := api(t, d, f.base+"/api/ops/"+url.PathEscape(dop)+"/login", dcsrf, "{}", nil); code != http.StatusForbidden {
		t.Fatalf("login of a user without account: %d", code)
	}
	if html, _ := page(t, d, f.base); strings.Contains(html, `id="whoami"`) {
		t.Fatal("logged in as a user without account")
	}

	// Remove the phone: anonymous sessions may not, alice (logged in by phone) may.
	if code := api(t, d, f.base+"/api/deregistration", dcsrf, "{}", nil); code != http.StatusUnauthorized {
		t.Fatalf("anonymous deregistration: %d", code)
	}
	key, err := LoadKey(f.srv.LoginKeyFile(t))
	if err != nil {
		t.Fatal(err)
	}
	fc := &Client{Base: f.srv.URL, HTTP: http.DefaultClient, Key: key, Mint: callerauth.MintOptions{Issuer: harness.Issuer, Audience: harness.Audience}}
	before, err := fc.Keys(context.Background(), "alice")
	if err != nil || len(before) != 2 || !slices.Contains(before, Key{AAID: "FFFF#E105", KeyID: st.KeyID}) {
		t.Fatalf("alice's keys before: %+v %v (phone key %s)", before, err, st.KeyID)
	}
	var dr startResponse
	if code := api(t, b, f.base+"/api/deregistration", who.CSRF, "{}", &dr); code != http.StatusOK || dr.Via != "qr" {
		t.Fatalf("deregistration start: %d %+v", code, dr)
	}
	ddone := make(chan []OpState, 1)
	go func() { ddone <- events(t, b, f.base, dr.Op) }()
	redeemDereg(t, f.srv.URL, a, dr.QR)
	var last OpState
	select {
	case tr := <-ddone:
		last = tr[len(tr)-1]
	case <-time.After(60 * time.Second):
		t.Fatal("deregistration not final after 60s")
	}
	if last.Outcome != "succeeded" || !last.Removed || last.RemovedKeyID != st.KeyID || last.Kind != "deregistration" ||
		last.Trail[len(last.Trail)-1] != "succeeded" {
		t.Fatalf("deregistration: %+v", last)
	}
	// Only the phone's key is gone: alice's other authenticator and dora keep theirs.
	after, err := fc.Keys(context.Background(), "alice")
	if err != nil || len(after) != 1 || after[0].AAID != "FFFF#E107" {
		t.Fatalf("alice's keys after: %+v %v", after, err)
	}
	if k, err := fc.Keys(context.Background(), "dora"); err != nil || len(k) != 1 {
		t.Fatalf("dora's keys after: %+v %v", k, err)
	}
	if k, err := fc.Keys(context.Background(), "nobody"); err != nil || k != nil {
		t.Fatalf("keys of an unknown user: %+v %v", k, err)
	}
	// The phone applied the DeregistrationRequest (aaid + keyID of its key).
	if regs := a.Registrations(); len(regs) != 0 {
		t.Fatalf("the phone still holds %d keys", len(regs))
	}
}
