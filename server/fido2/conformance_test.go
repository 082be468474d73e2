package fido2_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/attestation"
	"github.com/fidoserver/hwfido/server/fido2"
	"github.com/fidoserver/hwfido/server/fido2/internal/softauthn"
)

var testAAGUID = [16]byte{0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}

type testCert struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// newCert issues a certificate; parent nil makes a self-signed root.
func newCert(t testing.TB, cn string, parent *testCert, ca bool, aaguid *[16]byte, notAfter time.Time) *testCert {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{CommonName: cn, Country: []string{"CH"}, Organization: []string{"hwfido test"},
			OrganizationalUnit: []string{"Authenticator Attestation"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter,
		BasicConstraintsValid: true, IsCA: ca,
	}
	if ca {
		tmpl.KeyUsage = x509.KeyUsageCertSign
	}
	if aaguid != nil {
		v, _ := asn1.Marshal(aaguid[:])
		tmpl.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 45724, 1, 1, 4}, Value: v}}
	}
	pc, pk := tmpl, crypto.Signer(k)
	if parent != nil {
		pc, pk = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, pc, k.Public(), pk)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCert{cert: c, key: k}
}

// chain is root -> intermediate -> leaf (AAGUID extension set).
type chain struct{ root, inter, leaf *testCert }

func newChain(t testing.TB, aaguid [16]byte) chain {
	year := time.Now().Add(365 * 24 * time.Hour)
	root := newCert(t, "root", nil, true, nil, year)
	inter := newCert(t, "intermediate", root, true, nil, year)
	leaf := newCert(t, "leaf", inter, false, &aaguid, year)
	return chain{root, inter, leaf}
}

// beginReg calls attestation/options and returns the response.
func beginReg(t *testing.T, e *env, user string, extra map[string]any) map[string]any {
	t.Helper()
	req := map[string]any{"username": user, "displayName": user + " display"}
	for k, v := range extra {
		req[k] = v
	}
	code, o := e.post("/attestation/options", req, userHdr(user))
	if code != 200 || o["status"] != "ok" || o["errorMessage"] != "" {
		t.Fatalf("options: %d %v", code, o)
	}
	return o
}

func request(t *testing.T, e *env, o map[string]any, flags byte) softauthn.Request {
	t.Helper()
	ch, err := softauthn.ParseChallenge(o)
	if err != nil || len(ch) < 16 {
		t.Fatalf("challenge %v %v", o["challenge"], err)
	}
	return softauthn.Request{RPID: "localhost", Origin: e.origin, Challenge: ch, Flags: flags}
}

// registerSoft registers a new credential of alg with att for user and asserts success.
func registerSoft(t *testing.T, e *env, user string, alg int64, att softauthn.Attestation) (*softauthn.Credential, map[string]any) {
	t.Helper()
	o := beginReg(t, e, user, map[string]any{"attestation": "direct"})
	c, err := softauthn.NewCredential(alg)
	if err != nil {
		t.Fatal(err)
	}
	body, err := softauthn.Create(c, att, request(t, e, o, softauthn.FlagUP|softauthn.FlagUV))
	if err != nil {
		t.Fatal(err)
	}
	code, res := e.post("/attestation/result", body, nil)
	if code != 200 || res["status"] != "ok" {
		t.Fatalf("register: %d %v", code, res)
	}
	u := o["user"].(map[string]any)
	c.UserHandle, _ = base64.RawURLEncoding.DecodeString(u["id"].(string))
	return c, res
}

func TestCreationOptionsConformance(t *testing.T) {
	e := newEnv(t, nil)
	sel := map[string]any{"requireResidentKey": false, "authenticatorAttachment": "cross-platform", "userVerification": "preferred"}
	ext := map[string]any{"example.extension": true}
	o1 := beginReg(t, e, "opt", map[string]any{"authenticatorSelection": sel, "attestation": "direct", "extensions": ext})
	o2 := beginReg(t, e, "opt", map[string]any{"authenticatorSelection": sel, "attestation": "direct", "extensions": ext})
	if !reflect.DeepEqual(o1["authenticatorSelection"], sel) || o1["attestation"] != "direct" || !reflect.DeepEqual(o1["extensions"], ext) {
		t.Fatalf("echo: sel %v att %v ext %v", o1["authenticatorSelection"], o1["attestation"], o1["extensions"])
	}
	if o1["challenge"] == o2["challenge"] {
		t.Fatal("challenge repeated")
	}
	u := o1["user"].(map[string]any)
	id, err := base64.RawURLEncoding.DecodeString(u["id"].(string))
	if err != nil || len(id) == 0 || len(id) > 64 || u["name"] != "opt" || u["displayName"] != "opt display" {
		t.Fatalf("user %v", u)
	}
	rp := o1["rp"].(map[string]any)
	if rp["name"] == "" || rp["id"] != "localhost" {
		t.Fatalf("rp %v", rp)
	}
	var algs []float64
	for _, p := range o1["pubKeyCredParams"].([]any) {
		algs = append(algs, p.(map[string]any)["alg"].(float64))
	}
	for _, want := range []float64{-7, -257, -65535, -8} {
		found := false
		for _, a := range algs {
			found = found || a == want
		}
		if !found {
			t.Errorf("alg %v not offered: %v", want, algs)
		}
	}
	if to, _ := o1["timeout"].(float64); to <= 0 {
		t.Fatalf("timeout %v", o1["timeout"])
	}
}

func TestRegistrationAlgorithmsAndTrust(t *testing.T) {
	ch := newChain(t, testAAGUID)
	u2f := newChain(t, [16]byte{})
	u2fKID, err := attestation.KeyIdentifier(u2f.leaf.cert)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		policy  fido2.AttestationPolicy
		alg     int64
		att     softauthn.Attestation
		trust   func(*memTrust)
		wantErr string // empty = success
		trusted string
	}{
		{name: "packed-self-ES256", policy: fido2.AttestationEnforce, alg: softauthn.ES256,
			att: softauthn.Attestation{Format: "packed", AAGUID: testAAGUID}, trusted: "trusted",
			trust: func(m *memTrust) { m.addAAGUID(testAAGUID, []string{"basic_surrogate"}) }},
		{name: "packed-self-RS256", policy: fido2.AttestationEnforce, alg: softauthn.RS256,
			att: softauthn.Attestation{Format: "packed", AAGUID: testAAGUID}, trusted: "trusted",
			trust: func(m *memTrust) { m.addAAGUID(testAAGUID, []string{"basic_surrogate"}) }},
		{name: "packed-self-RS1", policy: fido2.AttestationEnforce, alg: softauthn.RS1,
			att: softauthn.Attestation{Format: "packed", AAGUID: testAAGUID}, trusted: "trusted",
			trust: func(m *memTrust) { m.addAAGUID(testAAGUID, []string{"basic_surrogate"}) }},
		{name: "packed-self-EdDSA", policy: fido2.AttestationEnforce, alg: softauthn.EdDSA,
			att: softauthn.Attestation{Format: "packed", AAGUID: testAAGUID}, trusted: "trusted",
			trust: func(m *memTrust) { m.addAAGUID(testAAGUID, []string{"basic_surrogate"}) }},
		{name: "packed-self-not-in-statement-types", policy: fido2.AttestationEnforce, alg: softauthn.ES256,
			att:     softauthn.Attestation{Format: "packed", AAGUID: testAAGUID},
			trust:   func(m *memTrust) { m.addAAGUID(testAAGUID, []string{"basic_full"}, ch.root.cert) },
			wantErr: "not listed"},
		{name: "packed-self-no-metadata-enforce", policy: fido2.AttestationEnforce, alg: softauthn.ES256,
			att: softauthn.Attestation{Format: "packed", AAGUID: testAAGUID}, wantErr: "no metadata"},
		{name: "packed-self-no-metadata-monitor", policy: fido2.AttestationMonitor, alg: softauthn.ES256,
			att: softauthn.Attestation{Format: "packed", AAGUID: testAAGUID}, trusted: "untrusted"},
		{name: "none-monitor", policy: fido2.AttestationMonitor, alg: softauthn.ES256,
			att: softauthn.Attestation{Format: "none"}, trusted: "untrusted"},
		{name: "none-policy-none", policy: fido2.AttestationNone, alg: softauthn.ES256,
			att: softauthn.Attestation{Format: "none"}, trusted: "not-checked"},
		{name: "none-enforce", policy: fido2.AttestationEnforce, alg: softauthn.ES256,
			att: softauthn.Attestation{Format: "none"}, wantErr: "no attestation"},
		{name: "packed-full-chain", policy: fido2.AttestationEnforce, alg: softauthn.ES256, trusted: "trusted",
			att: softauthn.Attestation{Format: "packed", AAGUID: testAAGUID, Key: ch.leaf.key,
				X5C: [][]byte{ch.leaf.cert.Raw, ch.inter.cert.Raw}},
			trust: func(m *memTrust) { m.addAAGUID(testAAGUID, []string{"basic_full"}, ch.root.cert) }},
		{name: "packed-full-root-in-x5c", policy: fido2.AttestationEnforce, alg: softauthn.ES256,
			att: softauthn.Attestation{Format: "packed", AAGUID: testAAGUID, Key: ch.leaf.key,
				X5C: [][]byte{ch.leaf.cert.Raw, ch.inter.cert.Raw, ch.root.cert.Raw}},
			trust:   func(m *memTrust) { m.addAAGUID(testAAGUID, []string{"basic_full"}, ch.root.cert) },
			wantErr: "root"},
		{name: "packed-full-wrong-order", policy: fido2.AttestationEnforce, alg: softauthn.ES256,
			att: softauthn.Attestation{Format: "packed", AAGUID: testAAGUID, Key: ch.leaf.key,
				X5C: [][]byte{ch.leaf.cert.Raw, u2f.inter.cert.Raw, ch.inter.cert.Raw}},
			trust:   func(m *memTrust) { m.addAAGUID(testAAGUID, []string{"basic_full"}, ch.root.cert) },
			wantErr: "not signed by"},
		{name: "packed-full-other-root", policy: fido2.AttestationEnforce, alg: softauthn.ES256,
			att: softauthn.Attestation{Format: "packed", AAGUID: testAAGUID, Key: ch.leaf.key,
				X5C: [][]byte{ch.leaf.cert.Raw, ch.inter.cert.Raw}},
			trust:   func(m *memTrust) { m.addAAGUID(testAAGUID, []string{"basic_full"}, u2f.root.cert) },
			wantErr: "does not verify"},
		{name: "packed-full-signed-by-credential-key", policy: fido2.AttestationMonitor, alg: softauthn.ES256,
			att: softauthn.Attestation{Format: "packed", AAGUID: testAAGUID, Key: u2f.leaf.key,
				X5C: [][]byte{ch.leaf.cert.Raw, ch.inter.cert.Raw}},
			wantErr: "ignature"},
		{name: "fido-u2f-keyid", policy: fido2.AttestationEnforce, alg: softauthn.ES256, trusted: "trusted",
			att:   softauthn.Attestation{Format: "fido-u2f", Key: u2f.leaf.key, X5C: [][]byte{u2f.leaf.cert.Raw}},
			trust: func(m *memTrust) { m.addKeyID(u2fKID, []string{"basic_full", "attca"}, u2f.inter.cert) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *fido2.Config) { c.AttestationPolicy = tc.policy })
			if tc.trust != nil {
				tc.trust(e.trust)
			}
			o := beginReg(t, e, "u", map[string]any{"attestation": "direct"})
			c, err := softauthn.NewCredential(tc.alg)
			if err != nil {
				t.Fatal(err)
			}
			body, err := softauthn.Create(c, tc.att, request(t, e, o, softauthn.FlagUP))
			if err != nil {
				t.Fatal(err)
			}
			code, res := e.post("/attestation/result", body, nil)
			creds, _ := e.db.FIDO2Credentials(context.Background(), "u", "localhost")
			if tc.wantErr != "" {
				msg, _ := res["errorMessage"].(string)
				if code != 400 || res["status"] != "failed" || !strings.Contains(msg, tc.wantErr) || len(creds) != 0 {
					t.Fatalf("want failure %q: %d %v, %d stored", tc.wantErr, code, res, len(creds))
				}
				return
			}
			if code != 200 || res["status"] != "ok" || res["attestationTrust"] != tc.trusted || len(creds) != 1 {
				t.Fatalf("want success (%s): %d %v, %d stored", tc.trusted, code, res, len(creds))
			}
			// And the credential logs in.
			code, ao := e.post("/assertion/options", map[string]any{"username": "u"}, nil)
			if code != 200 {
				t.Fatalf("assertion options %d %v", code, ao)
			}
			ab, err := softauthn.Get(c, request(t, e, ao, softauthn.FlagUP), true)
			if err != nil {
				t.Fatal(err)
			}
			if code, res := e.post("/assertion/result", ab, nil); code != 200 || res["status"] != "ok" {
				t.Fatalf("assertion: %d %v", code, res)
			}
		})
	}
}

// snapshot captures everything a failed result must not change.
func snapshot(t *testing.T, e *env, users ...string) string {
	t.Helper()
	var b strings.Builder
	for _, u := range users {
		cs, err := e.db.FIDO2Credentials(context.Background(), u, "localhost")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			b.WriteString(base64.RawURLEncoding.EncodeToString(c.CredentialID))
			b.WriteString(":" + string(rune('0'+c.Flags.Bits())) + ":")
			b.WriteString(big.NewInt(int64(c.SignCount)).String() + c.LastUsedAt.String() + ";")
		}
	}
	return b.String()
}

func set(path string, v any) func(map[string]any) {
	return func(m map[string]any) {
		parts := strings.Split(path, ".")
		for _, p := range parts[:len(parts)-1] {
			m = m[p].(map[string]any)
		}
		if v == nil {
			delete(m, parts[len(parts)-1])
		} else {
			m[parts[len(parts)-1]] = v
		}
	}
}

type jsonNull struct{}

func (jsonNull) MarshalJSON() ([]byte, error) { return []byte("null"), nil }

func TestBadInputConformance(t *testing.T) {
	e := newEnv(t, func(c *fido2.Config) { c.AttestationPolicy = fido2.AttestationNone })
	cred, _ := registerSoft(t, e, "victim", softauthn.ES256, softauthn.Attestation{Format: "packed", AAGUID: testAAGUID})
	u2f := newChain(t, [16]byte{})
	type mut struct {
		name string
		body func(map[string]any)
		req  func(*softauthn.Request)
		att  *softauthn.Attestation
		raw  string
	}
	common := []mut{
		{name: "id-missing", body: set("id", nil)},
		{name: "id-number", body: set("id", 12)},
		{name: "id-not-base64url", body: set("id", "ab+/cd==")},
		{name: "id-empty", body: set("id", "")},
		{name: "rawId-mismatch", body: set("rawId", "AAAA")},
		{name: "type-missing", body: set("type", nil)},
		{name: "type-number", body: set("type", 1)},
		{name: "type-wrong", body: set("type", "private-key")},
		{name: "response-missing", body: set("response", nil)},
		{name: "response-string", body: set("response", "x")},
		{name: "clientDataJSON-missing", body: set("response.clientDataJSON", nil)},
		{name: "clientDataJSON-number", body: set("response.clientDataJSON", 5)},
		{name: "clientDataJSON-empty", body: set("response.clientDataJSON", "")},
		{name: "clientDataJSON-not-json", body: set("response.clientDataJSON", "bm90IGpzb24")},
		{name: "unknown-field", body: set("surprise", true)},
		{name: "cd-type-missing", req: func(r *softauthn.Request) { r.ClientData = set("type", nil) }},
		{name: "cd-type-number", req: func(r *softauthn.Request) { r.ClientData = set("type", 3) }},
		{name: "cd-type-empty", req: func(r *softauthn.Request) { r.ClientData = set("type", "") }},
		{name: "cd-challenge-missing", req: func(r *softauthn.Request) { r.ClientData = set("challenge", nil) }},
		{name: "cd-challenge-number", req: func(r *softauthn.Request) { r.ClientData = set("challenge", 7) }},
		{name: "cd-challenge-empty", req: func(r *softauthn.Request) { r.ClientData = set("challenge", "") }},
		{name: "cd-challenge-not-b64", req: func(r *softauthn.Request) { r.ClientData = set("challenge", "a+b/c") }},
		{name: "cd-challenge-other", req: func(r *softauthn.Request) { r.Challenge = make([]byte, 32) }},
		{name: "cd-origin-missing", req: func(r *softauthn.Request) { r.ClientData = set("origin", nil) }},
		{name: "cd-origin-number", req: func(r *softauthn.Request) { r.ClientData = set("origin", 1) }},
		{name: "cd-origin-empty", req: func(r *softauthn.Request) { r.ClientData = set("origin", "") }},
		{name: "cd-origin-wrong", req: func(r *softauthn.Request) { r.Origin = "https://evil.example" }},
		// go-webauthn compares the parsed scheme and host[:port] only; the origin must be
		// exactly one configured (other-port is refused by go-webauthn as well).
		{name: "cd-origin-path", req: func(r *softauthn.Request) { r.Origin = e.origin + "/login?next=1" }},
		{name: "cd-origin-userinfo", req: func(r *softauthn.Request) {
			r.Origin = strings.Replace(e.origin, "//", "//attacker@", 1)
		}},
		{name: "cd-origin-other-port", req: func(r *softauthn.Request) { r.Origin = "http://localhost:1" }},
		{name: "cd-tokenBinding-present", req: func(r *softauthn.Request) {
			r.ClientData = set("tokenBinding", map[string]any{"status": "present", "id": "AAAA"})
		}},
		{name: "cd-tokenBinding-string", req: func(r *softauthn.Request) { r.ClientData = set("tokenBinding", "present") }},
		{name: "cd-tokenBinding-no-status", req: func(r *softauthn.Request) { r.ClientData = set("tokenBinding", map[string]any{}) }},
		{name: "cd-tokenBinding-bad-status", req: func(r *softauthn.Request) {
			r.ClientData = set("tokenBinding", map[string]any{"status": "bogus"})
		}},
		{name: "authData-rpIdHash", req: func(r *softauthn.Request) { r.RPID = "example.org" }},
		{name: "no-UP", req: func(r *softauthn.Request) { r.Flags = 0 }},
		{name: "trailing-json", raw: "trailing"},
	}
	attOnly := []mut{
		{name: "cd-type-get", req: func(r *softauthn.Request) { r.ClientData = set("type", "webauthn.get") }},
		{name: "attestationObject-missing", body: set("response.attestationObject", nil)},
		{name: "attestationObject-number", body: set("response.attestationObject", 1)},
		{name: "attestationObject-empty", body: set("response.attestationObject", "")},
		{name: "attestationObject-not-cbor-map", body: set("response.attestationObject", "gQE")}, // CBOR [1]
		{name: "fmt-unknown", att: &softauthn.Attestation{Format: "packed"}, req: func(r *softauthn.Request) {
			r.AttStmt = func(m map[string]any) {}
		}, body: func(m map[string]any) {}},
		{name: "packed-alg-missing", req: func(r *softauthn.Request) { r.AttStmt = set("alg", nil) }},
		{name: "packed-alg-mismatch", req: func(r *softauthn.Request) { r.AttStmt = set("alg", int64(-257)) }},
		{name: "packed-alg-string", req: func(r *softauthn.Request) { r.AttStmt = set("alg", "ES256") }},
		{name: "packed-sig-missing", req: func(r *softauthn.Request) { r.AttStmt = set("sig", nil) }},
		{name: "packed-sig-string", req: func(r *softauthn.Request) { r.AttStmt = set("sig", "sig") }},
		{name: "packed-sig-empty", req: func(r *softauthn.Request) { r.AttStmt = set("sig", []byte{}) }},
		{name: "packed-sig-bad", req: func(r *softauthn.Request) {
			r.AttStmt = func(m map[string]any) { s := m["sig"].([]byte); s[len(s)-1] ^= 1 }
		}},
		{name: "authData-leftover", req: func(r *softauthn.Request) {
			r.AuthData = func(b []byte) []byte { return append(b, 0xf6) }
		}},
		{name: "authData-AT-flag-missing", req: func(r *softauthn.Request) {
			r.AuthData = func(b []byte) []byte { b[32] &^= softauthn.FlagAT; return b }
		}},
		{name: "none-with-attStmt", att: &softauthn.Attestation{Format: "none"}, req: func(r *softauthn.Request) {
			r.AttStmt = set("sig", []byte{1})
		}},
		// A self attestation with an x5c that is not an array (go-webauthn takes it as self).
		{name: "packed-x5c-not-array", req: func(r *softauthn.Request) { r.AttStmt = set("x5c", []byte{1, 2, 3}) }},
		{name: "packed-x5c-empty", req: func(r *softauthn.Request) { r.AttStmt = set("x5c", []any{}) }},
		{name: "fido-u2f-aaguid-not-zero", att: &softauthn.Attestation{Format: "fido-u2f", Key: u2f.leaf.key,
			X5C: [][]byte{u2f.leaf.cert.Raw}}, req: func(r *softauthn.Request) {
			r.AuthData = func(b []byte) []byte { b[37] = 0x42; return b }
		}},
	}
	for _, m := range append(append([]mut{}, common...), attOnly...) {
		t.Run("attestation/"+m.name, func(t *testing.T) {
			before := snapshot(t, e, "victim", "newbie")
			o := beginReg(t, e, "newbie", nil)
			r := request(t, e, o, softauthn.FlagUP)
			if m.req != nil {
				m.req(&r)
			}
			att := softauthn.Attestation{Format: "packed", AAGUID: testAAGUID}
			if m.att != nil {
				att = *m.att
			}
			c, _ := softauthn.NewCredential(softauthn.ES256)
			body, err := softauthn.Create(c, att, r)
			if err != nil {
				t.Fatal(err)
			}
			if m.name == "fmt-unknown" {
				body = recode(t, body, "fmt", "unknown-fmt")
			}
			if m.body != nil {
				m.body(body)
			}
			var payload any = body
			if m.raw == "trailing" {
				b, _ := json.Marshal(body)
				payload = append(b, []byte(` {}`)...)
			}
			code, res := e.post("/attestation/result", payload, nil)
			msg, _ := res["errorMessage"].(string)
			if code < 400 || code > 499 || res["status"] != "failed" || msg == "" {
				t.Fatalf("want 4xx failed with message, got %d %v", code, res)
			}
			t.Logf("refused: %s", msg)
			if after := snapshot(t, e, "victim", "newbie"); after != before {
				t.Fatalf("store changed: %q -> %q", before, after)
			}
		})
	}
	getOnly := []mut{
		{name: "cd-type-create", req: func(r *softauthn.Request) { r.ClientData = set("type", "webauthn.create") }},
		{name: "authenticatorData-missing", body: set("response.authenticatorData", nil)},
		{name: "authenticatorData-number", body: set("response.authenticatorData", 1)},
		{name: "authenticatorData-empty", body: set("response.authenticatorData", "")},
		{name: "signature-missing", body: set("response.signature", nil)},
		{name: "signature-number", body: set("response.signature", 1)},
		{name: "signature-empty", body: set("response.signature", "")},
		{name: "signature-bad", req: func(r *softauthn.Request) {
			r.AuthData = func(b []byte) []byte { return b } // signed over these bytes; flip after
		}, body: func(m map[string]any) {
			resp := m["response"].(map[string]any)
			s, _ := base64.RawURLEncoding.DecodeString(resp["signature"].(string))
			s[len(s)-1] ^= 1
			resp["signature"] = base64.RawURLEncoding.EncodeToString(s)
		}},
		{name: "userHandle-number", body: set("response.userHandle", 1)},
		{name: "userHandle-other-user", body: set("response.userHandle", base64.RawURLEncoding.EncodeToString(make([]byte, 32)))},
		{name: "authData-leftover", req: func(r *softauthn.Request) {
			r.AuthData = func(b []byte) []byte { return append(b, 0) }
		}},
		{name: "clientDataHash-mismatch", body: func(m map[string]any) {
			resp := m["response"].(map[string]any)
			cd, _ := base64.RawURLEncoding.DecodeString(resp["clientDataJSON"].(string))
			resp["clientDataJSON"] = base64.RawURLEncoding.EncodeToString(append(cd, ' '))
		}},
		{name: "unknown-credential", body: set("id", base64.RawURLEncoding.EncodeToString(make([]byte, 32)))},
	}
	for _, m := range append(append([]mut{}, common...), getOnly...) {
		if m.name == "rawId-mismatch" || m.name == "id-missing" {
			// Also valid for assertions; run as is.
		}
		t.Run("assertion/"+m.name, func(t *testing.T) {
			before := snapshot(t, e, "victim")
			code, o := e.post("/assertion/options", map[string]any{"username": "victim"}, nil)
			if code != 200 {
				t.Fatalf("options %d %v", code, o)
			}
			r := request(t, e, o, softauthn.FlagUP)
			if m.req != nil {
				m.req(&r)
			}
			saved := cred.Counter
			body, err := softauthn.Get(cred, r, true)
			if err != nil {
				t.Fatal(err)
			}
			if m.body != nil {
				m.body(body)
			}
			var payload any = body
			if m.raw == "trailing" {
				b, _ := json.Marshal(body)
				payload = append(b, []byte(` {}`)...)
			}
			code, res := e.post("/assertion/result", payload, nil)
			msg, _ := res["errorMessage"].(string)
			if code < 400 || code > 499 || res["status"] != "failed" || msg == "" || res["token"] != nil {
				t.Fatalf("want 4xx failed with message, got %d %v", code, res)
			}
			t.Logf("refused: %s", msg)
			if after := snapshot(t, e, "victim"); after != before {
				t.Fatalf("store changed: %q -> %q", before, after)
			}
			cred.Counter = saved
		})
	}
}

// recode rewrites one top-level key of the attestation object in body.
func recode(t *testing.T, body map[string]any, key string, v any) map[string]any {
	t.Helper()
	resp := body["response"].(map[string]any)
	raw, _ := base64.RawURLEncoding.DecodeString(resp["attestationObject"].(string))
	var obj map[string]any
	if err := cborUnmarshal(raw, &obj); err != nil {
		t.Fatal(err)
	}
	obj[key] = v
	b, err := cborMarshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	resp["attestationObject"] = base64.RawURLEncoding.EncodeToString(b)
	return body
}

// checkUV asserts that a login result and its token report user verification as want:
// what the assertion's authenticator data showed, not what the credential's registration did.
func checkUV(t *testing.T, e *env, res map[string]any, want bool) {
	t.Helper()
	claims := e.signer.verify(t, res["token"].(string))
	if res["userVerified"] != want || claims["uv"] != want {
		t.Fatalf("userVerified %v, token uv %v; want %v", res["userVerified"], claims["uv"], want)
	}
}

func TestAssertionPolicies(t *testing.T) {
	e := newEnv(t, func(c *fido2.Config) { c.AttestationPolicy = fido2.AttestationNone })
	cred, _ := registerSoft(t, e, "pol", softauthn.ES256, softauthn.Attestation{Format: "none"})
	login := func(uv string, flags byte, countUp bool) (int, map[string]any) {
		t.Helper()
		req := map[string]any{"username": "pol"}
		if uv != "" {
			req["userVerification"] = uv
		}
		code, o := e.post("/assertion/options", req, nil)
		if code != 200 || o["userVerification"] != map[string]string{"": "preferred"}[uv]+uv {
			t.Fatalf("options %d %v", code, o)
		}
		allow := o["allowCredentials"].([]any)
		if len(allow) != 1 || allow[0].(map[string]any)["id"] != base64.RawURLEncoding.EncodeToString(cred.ID) {
			t.Fatalf("allowCredentials %v", allow)
		}
		body, err := softauthn.Get(cred, request(t, e, o, flags), countUp)
		if err != nil {
			t.Fatal(err)
		}
		return e.post("/assertion/result", body, nil)
	}
	up, uv := byte(softauthn.FlagUP), byte(softauthn.FlagUP|softauthn.FlagUV)
	for _, tc := range []struct {
		name   string
		uv     string
		flags  byte
		up     bool
		wantOK bool
	}{
		{"required-UP-only", "required", up, true, false},
		{"required-UV", "required", uv, true, true},
		// The credential was registered with UV; this assertion did not verify the user,
		// and the result must say so.
		{"preferred-UP-only", "preferred", up, true, true},
		{"discouraged-UV", "discouraged", uv, true, true},
		{"counter-not-increasing", "preferred", up, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, res := login(tc.uv, tc.flags, tc.up)
			if (code == 200 && res["status"] == "ok") != tc.wantOK {
				t.Fatalf("got %d %v, want ok=%v", code, res, tc.wantOK)
			}
			if tc.wantOK {
				checkUV(t, e, res, tc.flags&softauthn.FlagUV != 0)
			}
		})
	}
	// An authenticator without a counter (always 0) is accepted every time.
	e2 := newEnv(t, func(c *fido2.Config) { c.AttestationPolicy = fido2.AttestationNone })
	zero, _ := softauthn.NewCredential(softauthn.ES256)
	o := beginReg(t, e2, "zero", nil)
	body, _ := softauthn.Create(zero, softauthn.Attestation{Format: "none"}, request(t, e2, o, softauthn.FlagUP))
	if code, res := e2.post("/attestation/result", body, nil); code != 200 {
		t.Fatalf("register %d %v", code, res)
	}
	for i := 0; i < 2; i++ {
		// The second login verifies the user of a credential registered without UV.
		flags := byte(softauthn.FlagUP)
		if i == 1 {
			flags |= softauthn.FlagUV
		}
		_, ao := e2.post("/assertion/options", map[string]any{"username": "zero"}, nil)
		ab, _ := softauthn.Get(zero, request(t, e2, ao, flags), false)
		code, res := e2.post("/assertion/result", ab, nil)
		if code != 200 || res["status"] != "ok" {
			t.Fatalf("zero-counter login %d: %d %v", i, code, res)
		}
		checkUV(t, e2, res, i == 1)
	}
	// Replaying a used assertion is refused (challenge single use).
	_, ao := e2.post("/assertion/options", map[string]any{"username": "zero"}, nil)
	ab, _ := softauthn.Get(zero, request(t, e2, ao, softauthn.FlagUP), false)
	if code, _ := e2.post("/assertion/result", ab, nil); code != 200 {
		t.Fatal("first use refused")
	}
	if code, res := e2.post("/assertion/result", ab, nil); code != 400 || !strings.Contains(res["errorMessage"].(string), "already used") {
		t.Fatalf("replay: %d %v", code, res)
	}
	// Unknown user.
	if code, res := e2.post("/assertion/options", map[string]any{"username": "nobody"}, nil); code != 400 || res["status"] != "failed" {
		t.Fatalf("unknown user options: %d %v", code, res)
	}
}
