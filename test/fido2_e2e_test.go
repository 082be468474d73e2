package test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	_ "github.com/mattn/go-sqlite3" // reads the server's store to check where rows went

	"github.com/fidoserver/hwfido/test/browser"
	"github.com/fidoserver/hwfido/test/harness"
	"github.com/fidoserver/hwfido/uaf"
	"github.com/fidoserver/hwfido/uaf/uaftest"
)

// fido2YAML enables FIDO2 on a harness server: RP ID localhost, the browser's origin
// http://localhost:<port>, the demo page the browser drives.
const fido2YAML = `fido2:
  enabled: true
  rp-id: localhost
  rp-name: hwfido e2e
  origins: ["http://localhost:{{.Port}}"]
  signature-algorithms: [ES256, EdDSA, RS256]
  attestation-policy: monitor
  registration-timeout: 2m
  authentication-timeout: 1m
  demo: true
`

// fido2Server starts hwfido-server with FIDO2 enabled and returns it with the base URL
// the browser uses (localhost, since go-webauthn refuses IP addresses as RP IDs).
func fido2Server(t *testing.T, uafMetadata ...[]byte) (*harness.Server, string) {
	t.Helper()
	s := harness.StartServer(t, harness.ServerOptions{ExtraYAML: fido2YAML, Metadata: uafMetadata})
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	return s, "http://localhost:" + u.Port()
}

func fido2Chromium(t *testing.T) *browser.Browser {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := browser.Start(ctx, browser.Options{})
	if err != nil {
		t.Fatalf("headless chromium is required (make deps installs it): %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func fido2Page(t *testing.T, b *browser.Browser, base string, a browser.Authenticator) *browser.Page {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := b.NewPage(ctx, base, a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func fido2Bearer(tok string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + tok}
}

// fido2OK returns a check that a ceremony succeeded, for fido2OK(t, what)(p.Register(…)).
func fido2OK(t *testing.T, what string) func(*browser.Result, error) *browser.Result {
	t.Helper()
	return func(r *browser.Result, err error) *browser.Result {
		t.Helper()
		return fido2Check(t, what, r, err)
	}
}

func fido2Check(t *testing.T, what string, r *browser.Result, err error) *browser.Result {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !r.OK() {
		t.Fatalf("%s: stage %s status %s HTTP %d: %s", what, r.Stage, r.Status, r.HTTPStatus, r.ErrorMessage)
	}
	return r
}

// fido2Failed checks the conformance error shape: status failed, a non-empty
// errorMessage and an HTTP 4xx, at the given stage.
func fido2Failed(t *testing.T, what, stage string, code int, r *browser.Result, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if r.Stage != stage || r.Status != "failed" || r.ErrorMessage == "" || r.HTTPStatus != code {
		t.Fatalf("%s: want stage %s, failed, HTTP %d with a message; got stage %s status %q HTTP %d %q",
			what, stage, code, r.Stage, r.Status, r.HTTPStatus, r.ErrorMessage)
	}
}

// fido2ResultClaims verifies a result token with the server's published JWKS (the key lives
// in the HSM) and returns its claims.
func fido2ResultClaims(t *testing.T, s *harness.Server, token string) map[string]any {
	t.Helper()
	resp, err := http.Get(s.URL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil || resp.StatusCode != 200 {
		t.Fatalf("jwks: HTTP %d %v: %s", resp.StatusCode, err, raw)
	}
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("result token: %v", err)
	}
	if len(tok.Headers) != 1 {
		t.Fatal("result token: want one signature")
	}
	keys := set.Key(tok.Headers[0].KeyID)
	if len(keys) != 1 {
		t.Fatalf("result token: kid %q is not in the JWKS", tok.Headers[0].KeyID)
	}
	var std jwt.Claims
	var claims map[string]any
	if err := tok.Claims(keys[0].Key, &std, &claims); err != nil {
		t.Fatalf("result token signature: %v", err)
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: s.URL, AnyAudience: jwt.Audience{"https://rp.test"},
		Time: time.Now()}, time.Second); err != nil {
		t.Fatalf("result token claims: %v", err)
	}
	return claims
}

// fido2Credentials lists a user's FIDO2 credentials through the API with the user's caller
// token.
func fido2Credentials(t *testing.T, s *harness.Server, user string) []map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/nevisfido/fido2/credentials", nil)
	req.Header.Set("Authorization", "Bearer "+s.CallerToken(t, user))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Status      string           `json:"status"`
		Credentials []map[string]any `json:"credentials"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 || out.Status != "ok" {
		t.Fatalf("credentials of %s: HTTP %d %v", user, resp.StatusCode, err)
	}
	return out.Credentials
}

// TestFIDO2EndToEnd drives headless Chromium's virtual authenticators through the FIDO2
// endpoints of a real hwfido-server process (SoftHSM token, SQLite file).
func TestFIDO2EndToEnd(t *testing.T) {
	uafAuth, err := uaftest.New(uaftest.Options{AAID: "FFFF#E0F2"})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := uafAuth.MetadataStatement()
	s, base := fido2Server(t, st)
	b := fido2Chromium(t)
	ctx := harness.Context(t)

	t.Run("ctap2 platform passkey: register, login, discoverable login, signed result", func(t *testing.T) {
		p := fido2Page(t, b, base, browser.Authenticator{Protocol: "ctap2", Transport: "internal", ResidentKey: true,
			UserVerification: true, UserVerified: true, BackupEligible: true, BackupState: true})
		reg := fido2OK(t, "register")(p.Register(ctx, browser.RegisterRequest{
			Username: "alice", Headers: fido2Bearer(s.CallerToken(t, "alice")), Extensions: map[string]any{"credProps": true},
			Attestation:            "direct",
			AuthenticatorSelection: map[string]any{"residentKey": "required", "userVerification": "required"},
		}))
		if reg.CredentialID == "" || reg.Username != "alice" {
			t.Fatalf("registration result %+v", reg)
		}
		for _, discoverable := range []bool{false, true} {
			lr := browser.LoginRequest{Username: "alice", UserVerification: "required"}
			if discoverable {
				lr.Username = ""
			}
			login := fido2OK(t, fmt.Sprintf("login (discoverable %v)", discoverable))(p.Login(ctx, lr))
			if login.Username != "alice" || login.CredentialID != reg.CredentialID || !login.UserVerified {
				t.Fatalf("login result %+v", login)
			}
			c := fido2ResultClaims(t, s, login.Token)
			if c["sub"] != "alice" || c["op"] != "fido2-auth" || c["keyid"] != reg.CredentialID ||
				c["session_id"] != login.Fido2SessionID || c["aaguid"] != "01020304-0506-0708-0102-030405060708" ||
				c["uv"] != true {
				t.Fatalf("result token claims %v", c)
			}
		}
		creds := fido2Credentials(t, s, "alice")
		if len(creds) != 1 || creds[0]["credentialId"] != reg.CredentialID || creds[0]["signCount"] != 3.0 ||
			creds[0]["backupEligible"] != true || creds[0]["backupState"] != true || creds[0]["discoverable"] != true ||
			creds[0]["attestationFormat"] != "packed" {
			t.Fatalf("stored credential %v", creds)
		}
		// A second registration for the same user lists the first one to exclude: the
		// authenticator that holds it refuses (InvalidStateError), nothing is stored.
		again, err := p.Register(ctx, browser.RegisterRequest{Username: "alice", Headers: fido2Bearer(s.CallerToken(t, "alice"))})
		if err != nil {
			t.Fatal(err)
		}
		if again.Stage != "browser" || !strings.Contains(again.ErrorMessage, "InvalidStateError") {
			t.Fatalf("re-registration on the same authenticator: %+v", again)
		}
		if n := len(fido2Credentials(t, s, "alice")); n != 1 {
			t.Fatalf("%d credentials after the refused re-registration", n)
		}
	})

	t.Run("u2f security key", func(t *testing.T) {
		p := fido2Page(t, b, base, browser.Authenticator{Protocol: "u2f", Transport: "usb"})
		reg := fido2OK(t, "register")(p.Register(ctx, browser.RegisterRequest{
			Username: "bob", Headers: fido2Bearer(s.CallerToken(t, "bob")), Attestation: "direct",
		}))
		login := fido2OK(t, "login")(p.Login(ctx, browser.LoginRequest{Username: "bob", UserVerification: "discouraged"}))
		if c := fido2ResultClaims(t, s, login.Token); c["sub"] != "bob" || c["keyid"] != reg.CredentialID {
			t.Fatalf("result token claims %v", c)
		}
		creds := fido2Credentials(t, s, "bob")
		if len(creds) != 1 || creds[0]["attestationFormat"] != "fido-u2f" {
			t.Fatalf("stored credential %v", creds)
		}
	})

	t.Run("negative", func(t *testing.T) {
		p := fido2Page(t, b, base, browser.Authenticator{Protocol: "ctap2", ResidentKey: true, UserVerification: true,
			UserVerified: true})
		r, err := p.Register(ctx, browser.RegisterRequest{Username: "carol"})
		fido2Failed(t, "registration options without a caller token", "options", http.StatusUnauthorized, r, err)
		r, err = p.Register(ctx, browser.RegisterRequest{Username: "carol", Headers: fido2Bearer(s.CallerToken(t, "mallory"))})
		fido2Failed(t, "registration options for another user", "options", http.StatusForbidden, r, err)
		r, err = p.Register(ctx, browser.RegisterRequest{Username: "carol", Headers: fido2Bearer("not.a.token")})
		fido2Failed(t, "registration options with a bad caller token", "options", http.StatusUnauthorized, r, err)

		fido2OK(t, "register")(p.Register(ctx, browser.RegisterRequest{Username: "carol",
			Headers: fido2Bearer(s.CallerToken(t, "carol"))}))
		before := fido2Credentials(t, s, "carol")
		if err := p.SetResponseOverride(ctx, browser.Override{BogusSignature: true}); err != nil {
			t.Fatal(err)
		}
		r, err = p.Login(ctx, browser.LoginRequest{Username: "carol"})
		fido2Failed(t, "login with a bogus signature", "result", http.StatusBadRequest, r, err)
		if r.Token != "" {
			t.Fatal("a failed login carries a token")
		}
		if err := p.SetResponseOverride(ctx, browser.Override{BadUV: true}); err != nil {
			t.Fatal(err)
		}
		r, err = p.Login(ctx, browser.LoginRequest{Username: "carol", UserVerification: "required"})
		fido2Failed(t, "login without UV where UV is required", "result", http.StatusBadRequest, r, err)
		after := fido2Credentials(t, s, "carol")
		if len(after) != 1 || after[0]["signCount"] != before[0]["signCount"] || after[0]["lastUsedAt"] != before[0]["lastUsedAt"] {
			t.Fatalf("failed logins changed the stored credential: %v -> %v", before, after)
		}
		r, err = p.Login(ctx, browser.LoginRequest{Username: "nobody"})
		fido2Failed(t, "login options for an unknown user", "options", http.StatusBadRequest, r, err)
	})

	t.Run("one user holds UAF registrations and FIDO2 credentials", func(t *testing.T) {
		uafRegister := func(user string) {
			t.Helper()
			r := request(t, s, "Reg", map[string]string{"username": user}, s.CallerToken(t, user))
			if sr := send(t, s, "Reg", answer(t, uafAuth, r)); sr.StatusCode != uaf.StatusOK {
				t.Fatalf("UAF registration of %s: %+v", user, sr)
			}
		}
		p := fido2Page(t, b, base, browser.Authenticator{Protocol: "ctap2", Transport: "internal", ResidentKey: true,
			UserVerification: true, UserVerified: true})
		// dave: UAF first (user created with a random handle), then a FIDO2 passkey, found
		// again by that handle in a discoverable login.
		uafRegister("dave")
		fido2OK(t, "register dave")(p.Register(ctx, browser.RegisterRequest{Username: "dave",
			Headers:                fido2Bearer(s.CallerToken(t, "dave")),
			AuthenticatorSelection: map[string]any{"residentKey": "required"}}))
		if l := fido2OK(t, "passkey login")(p.Login(ctx, browser.LoginRequest{})); l.Username != "dave" {
			t.Fatalf("passkey login as %q", l.Username)
		}
		// erin: FIDO2 first (the user is created by the registration result), then UAF.
		fido2OK(t, "register erin")(p.Register(ctx, browser.RegisterRequest{Username: "erin",
			Headers: fido2Bearer(s.CallerToken(t, "erin"))}))
		uafRegister("erin")
		db, err := sql.Open("sqlite3", "file:"+s.DBPath+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, u := range []string{"dave", "erin"} {
			var users, uafRegs, fido2Creds int
			err := db.QueryRow(`SELECT (SELECT count(*) FROM users WHERE username = ?),
				(SELECT count(*) FROM uaf_registrations r JOIN users u ON u.id = r.user_id WHERE u.username = ?),
				(SELECT count(*) FROM fido2_credentials c JOIN users u ON u.id = c.user_id WHERE u.username = ?)`,
				u, u, u).Scan(&users, &uafRegs, &fido2Creds)
			if err != nil || users != 1 || uafRegs != 1 || fido2Creds != 1 {
				t.Fatalf("%s: %v: %d user rows, %d UAF registrations, %d FIDO2 credentials", u, err, users, uafRegs, fido2Creds)
			}
		}
	})

	// The FIDO2 service leaves the server's other endpoints as they were.
	resp, err := http.Get(s.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/healthz: HTTP %d", resp.StatusCode)
	}
}
