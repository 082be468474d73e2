package fido2_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/server/store"
	"github.com/fidoserver/hwfido/test/browser"
)

// One Chromium per test binary; each test opens its own tab and authenticator.
var (
	chromeOnce sync.Once
	chrome     *browser.Browser
	chromeErr  error
)

func sharedBrowser(t *testing.T) *browser.Browser {
	t.Helper()
	chromeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		chrome, chromeErr = browser.Start(ctx, browser.Options{})
	})
	if chromeErr != nil {
		t.Fatalf("headless chromium is required: %v", chromeErr)
	}
	return chrome
}

func TestMain(m *testing.M) {
	code := m.Run()
	if chrome != nil {
		chrome.Close()
	}
	os.Exit(code)
}

func userHdr(u string) map[string]string { return map[string]string{"X-Test-User": u} }

func newPage(t *testing.T, e *env, a browser.Authenticator) *browser.Page {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := sharedBrowser(t).NewPage(ctx, e.base, a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func mustOK(t *testing.T, what string) func(*browser.Result, error) *browser.Result {
	t.Helper()
	return func(r *browser.Result, err error) *browser.Result {
		t.Helper()
		return checkOK(t, what, r, err)
	}
}

func checkOK(t *testing.T, what string, r *browser.Result, err error) *browser.Result {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !r.OK() {
		t.Fatalf("%s: stage %s status %s http %d: %s", what, r.Stage, r.Status, r.HTTPStatus, r.ErrorMessage)
	}
	return r
}

func TestBrowserCeremonies(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	tests := []struct {
		name       string
		auth       browser.Authenticator
		rk, uv     string
		wantFormat string
		wantUV     bool
		wantDisc   bool
		wantBE     bool
		passkey    bool
	}{
		{name: "ctap2-nonresident-noUV", auth: browser.Authenticator{Protocol: "ctap2", Transport: "usb"},
			rk: "discouraged", uv: "discouraged", wantFormat: "packed"},
		{name: "ctap2-resident-UV-passkey", auth: browser.Authenticator{Protocol: "ctap2", Transport: "internal",
			ResidentKey: true, UserVerification: true, UserVerified: true, BackupEligible: true, BackupState: true},
			rk: "required", uv: "required", wantFormat: "packed", wantUV: true, wantDisc: true, wantBE: true, passkey: true},
		{name: "ctap2-resident-UV-username", auth: browser.Authenticator{Protocol: "ctap2", Transport: "usb", ResidentKey: true,
			UserVerification: true, UserVerified: true},
			rk: "required", uv: "preferred", wantFormat: "packed", wantDisc: true, wantUV: true},
		{name: "u2f", auth: browser.Authenticator{Protocol: "u2f", Transport: "usb"},
			rk: "discouraged", uv: "discouraged", wantFormat: "fido-u2f"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			user := "user" + string(rune('a'+i))
			p := newPage(t, e, tc.auth)
			reg := mustOK(t, "register")(p.Register(ctx, browser.RegisterRequest{
				Username: user, Headers: userHdr(user), Attestation: "direct", UserFriendlyName: "key " + tc.name,
				AuthenticatorSelection: map[string]any{"residentKey": tc.rk, "userVerification": tc.uv},
				Extensions:             map[string]any{"credProps": true},
			}))
			if reg.Fido2SessionID == "" || reg.Fido2SessionID != reg.OptionsSessionID {
				t.Fatalf("fido2SessionId %q, options session %q", reg.Fido2SessionID, reg.OptionsSessionID)
			}
			if reg.AttestationTrust != "untrusted" {
				t.Errorf("trust = %q, want untrusted (Chromium's batch root is in no statement; policy monitor)", reg.AttestationTrust)
			}
			creds, err := e.db.FIDO2Credentials(ctx, user, "localhost")
			if err != nil || len(creds) != 1 {
				t.Fatalf("stored credentials = %d, %v", len(creds), err)
			}
			c := creds[0]
			if c.AttestationFormat != tc.wantFormat || c.Flags.UserVerified != tc.wantUV || c.Discoverable != tc.wantDisc ||
				c.Flags.BackupEligible != tc.wantBE || c.Flags.BackupState != tc.wantBE || !c.Flags.UserPresent {
				t.Fatalf("stored credential %+v", c)
			}
			if c.Name != "key "+tc.name || base64.RawURLEncoding.EncodeToString(c.CredentialID) != reg.CredentialID {
				t.Fatalf("stored name %q id %x, result id %s", c.Name, c.CredentialID, reg.CredentialID)
			}
			lr := browser.LoginRequest{Username: user, UserVerification: tc.uv}
			if tc.passkey {
				lr.Username = ""
			}
			login := mustOK(t, "login")(p.Login(ctx, lr))
			if login.Username != user {
				t.Fatalf("login resolved user %q, want %q", login.Username, user)
			}
			claims := e.signer.verify(t, login.Token)
			if claims["sub"] != user || claims["fido2SessionId"] != login.Fido2SessionID || claims["uv"] != tc.wantUV {
				t.Fatalf("claims %v", claims)
			}
			after, err := e.db.FIDO2CredentialByID(ctx, "localhost", c.CredentialID)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantFormat == "packed" && after.SignCount <= c.SignCount {
				t.Fatalf("sign count %d -> %d did not increase", c.SignCount, after.SignCount)
			}
			code, st := e.post("/nevisfido/fido2/status", map[string]string{"sessionId": login.Fido2SessionID}, nil)
			if code != 200 || st["status"] != "succeeded" || st["username"] != user || st["ceremony"] != "authentication" {
				t.Fatalf("status %d %v", code, st)
			}
			// A second registration on the same authenticator is excluded by the browser.
			again, err := p.Register(ctx, browser.RegisterRequest{Username: user, Headers: userHdr(user),
				AuthenticatorSelection: map[string]any{"residentKey": tc.rk, "userVerification": tc.uv}})
			if err != nil {
				t.Fatal(err)
			}
			var opts struct {
				Exclude []struct{ ID string } `json:"excludeCredentials"`
			}
			_ = json.Unmarshal(again.Options, &opts)
			if again.Stage != "browser" || !strings.Contains(again.ErrorMessage, "InvalidStateError") ||
				len(opts.Exclude) != 1 || opts.Exclude[0].ID != reg.CredentialID {
				t.Fatalf("re-registration: stage %s %q, exclude %+v", again.Stage, again.ErrorMessage, opts.Exclude)
			}
		})
	}
}

func TestBrowserNegative(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	p := newPage(t, e, browser.Authenticator{Protocol: "ctap2", Transport: "internal", ResidentKey: true,
		UserVerification: true, UserVerified: true})
	reg := mustOK(t, "register")(p.Register(ctx, browser.RegisterRequest{Username: "neg", Headers: userHdr("neg"),
		AuthenticatorSelection: map[string]any{"residentKey": "required", "userVerification": "required"}}))
	credID, _ := base64.RawURLEncoding.DecodeString(reg.CredentialID)
	stored := func() uint32 {
		c, err := e.db.FIDO2CredentialByID(ctx, "localhost", credID)
		if err != nil {
			t.Fatal(err)
		}
		return c.SignCount
	}
	refused := func(t *testing.T, r *browser.Result, err error, want string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if r.Stage != "result" || r.Status != "failed" || r.HTTPStatus != 400 || !strings.Contains(r.ErrorMessage, want) || r.Token != "" {
			t.Fatalf("want refusal containing %q, got stage %s status %s http %d: %q", want, r.Stage, r.Status, r.HTTPStatus, r.ErrorMessage)
		}
		code, st := e.post("/nevisfido/fido2/status", map[string]string{"fido2SessionId": r.OptionsSessionID}, nil)
		if code != 200 || st["status"] != "failed" {
			t.Fatalf("status after refusal: %d %v", code, st)
		}
	}

	t.Run("bogus-signature", func(t *testing.T) {
		before := stored()
		if err := p.SetResponseOverride(ctx, browser.Override{BogusSignature: true}); err != nil {
			t.Fatal(err)
		}
		defer p.SetResponseOverride(ctx, browser.Override{})
		r, err := p.Login(ctx, browser.LoginRequest{Username: "neg"})
		refused(t, r, err, "ignature")
		if stored() != before {
			t.Fatal("counter changed on a refused assertion")
		}
	})
	t.Run("missing-UV-when-required", func(t *testing.T) {
		if err := p.SetResponseOverride(ctx, browser.Override{BadUV: true}); err != nil {
			t.Fatal(err)
		}
		defer p.SetResponseOverride(ctx, browser.Override{})
		r, err := p.Login(ctx, browser.LoginRequest{Username: "neg", UserVerification: "required"})
		refused(t, r, err, "erif") // "User verification required but flag not set"
	})
	t.Run("missing-UV-registration", func(t *testing.T) {
		if err := p.SetResponseOverride(ctx, browser.Override{BadUV: true}); err != nil {
			t.Fatal(err)
		}
		defer p.SetResponseOverride(ctx, browser.Override{})
		n, _ := e.db.FIDO2Credentials(ctx, "neg2", "localhost")
		r, err := p.Register(ctx, browser.RegisterRequest{Username: "neg2", Headers: userHdr("neg2"),
			AuthenticatorSelection: map[string]any{"residentKey": "required", "userVerification": "required"}})
		refused(t, r, err, "erif")
		if m, _ := e.db.FIDO2Credentials(ctx, "neg2", "localhost"); len(m) != len(n) {
			t.Fatal("credential stored despite missing UV")
		}
	})
	t.Run("missing-UP", func(t *testing.T) {
		if err := p.SetResponseOverride(ctx, browser.Override{BadUP: true}); err != nil {
			t.Fatal(err)
		}
		defer p.SetResponseOverride(ctx, browser.Override{})
		r, err := p.Login(ctx, browser.LoginRequest{Username: "neg"})
		refused(t, r, err, "resen")
	})
	t.Run("counter-regression", func(t *testing.T) {
		mustOK(t, "login")(p.Login(ctx, browser.LoginRequest{Username: "neg"}))
		if stored() < 2 {
			t.Fatalf("stored counter %d", stored())
		}
		if err := p.SetSignCount(ctx, credID, 1); err != nil {
			t.Fatal(err)
		}
		before := stored()
		r, err := p.Login(ctx, browser.LoginRequest{Username: "neg"})
		refused(t, r, err, "counter")
		if stored() != before {
			t.Fatal("counter changed on a regression")
		}
		ev, err := e.db.SecurityEvents(ctx, store.EventPossibleClone)
		if err != nil || len(ev) == 0 || ev[0].Username != "neg" {
			t.Fatalf("security events %v %v", ev, err)
		}
	})
	t.Run("caller-auth", func(t *testing.T) {
		r, err := p.Register(ctx, browser.RegisterRequest{Username: "mallory"})
		if err != nil || r.Stage != "options" || r.HTTPStatus != 401 {
			t.Fatalf("unauthenticated: %+v %v", r, err)
		}
		r, err = p.Register(ctx, browser.RegisterRequest{Username: "victim", Headers: userHdr("mallory")})
		if err != nil || r.Stage != "options" || r.HTTPStatus != 403 {
			t.Fatalf("other user: %+v %v", r, err)
		}
		if _, err := e.db.UserByName(ctx, "victim"); err == nil {
			t.Fatal("refused options call created a user")
		}
	})
}

// TestRunCeremony exercises the demo helper the lead's demo script uses.
func TestRunCeremony(t *testing.T) {
	e := newEnv(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	res, err := browser.RunCeremony(ctx, e.base, browser.Ceremony{Username: "demo", Headers: userHdr("demo"), Discoverable: true})
	if err != nil {
		t.Fatal(err)
	}
	e.signer.verify(t, res.Login.Token)
	if res.Login.Username != "demo" {
		t.Fatalf("login %+v", res.Login)
	}
}
