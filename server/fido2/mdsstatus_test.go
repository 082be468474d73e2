package fido2_test

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/attestation"
	"github.com/fidoserver/hwfido/hsm/hsmtest"
	"github.com/fidoserver/hwfido/metadata"
	"github.com/fidoserver/hwfido/server/fido2"
	"github.com/fidoserver/hwfido/server/fido2/internal/softauthn"
	"github.com/fidoserver/hwfido/server/resulttoken"
)

// TestMetadataStatus runs the service on real metadata (attestation.MetadataAnchors over
// a metadata.Catalog that is replaced, as a SIGHUP reload does) under the default
// attestation policy (monitor). A status report that the status policy refuses
// (REVOKED) refuses, in status mode enforce, both a new registration and a login with a
// credential registered before the report, and changes nothing; in status mode monitor
// both go through.
func TestMetadataStatus(t *testing.T) {
	aaguid := [16]byte{0x5e, 0x7a, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}
	now := time.Now()
	statement := func(reports ...metadata.StatusReport) *metadata.Set {
		return metadata.NewSet(&metadata.Statement{AAGUID: metadata.AAGUID(aaguid), ProtocolFamily: "fido2",
			Description: "status test key", AttestationTypes: []uint16{0x3E08}, // basic_surrogate
			StatusReports: reports})
	}
	certified := metadata.StatusReport{Status: metadata.StatusFIDOCertifiedL1, EffectiveDate: now.Add(-72 * time.Hour)}
	revoked := metadata.StatusReport{Status: metadata.StatusRevoked, EffectiveDate: now.Add(-time.Hour)}
	for _, mode := range []attestation.StatusMode{attestation.StatusEnforce, attestation.StatusMonitor} {
		t.Run(string(mode), func(t *testing.T) {
			cat := metadata.NewCatalog(statement(certified))
			anchors := attestation.NewMetadataAnchors(cat, attestation.MetadataAnchorsOptions{StatusMode: mode})
			e := newEnvDeps(t, func(c *fido2.Config) { c.AttestationPolicy = fido2.AttestationMonitor },
				func(d *fido2.Deps) { d.Trust = anchors })
			att := softauthn.Attestation{Format: "packed", AAGUID: aaguid}
			cred, res := registerSoft(t, e, "alice", softauthn.ES256, att)
			if res["attestationTrust"] != "trusted" {
				t.Fatalf("registration with a certified statement: %v", res)
			}
			login := func() (int, map[string]any) {
				t.Helper()
				code, o := e.post("/assertion/options", map[string]any{"username": "alice"}, nil)
				if code != 200 {
					t.Fatalf("options %d %v", code, o)
				}
				body, err := softauthn.Get(cred, request(t, e, o, softauthn.FlagUP|softauthn.FlagUV), true)
				if err != nil {
					t.Fatal(err)
				}
				return e.post("/assertion/result", body, nil)
			}
			if code, res := login(); code != 200 || res["status"] != "ok" {
				t.Fatalf("login before the report: %d %v", code, res)
			}

			// The authenticator model is revoked; the metadata is reloaded.
			cat.Replace(statement(certified, revoked))
			before := snapshot(t, e, "alice", "bob")
			code, res := login()
			if mode == attestation.StatusMonitor {
				if code != 200 || res["status"] != "ok" {
					t.Fatalf("monitor: login refused: %d %v", code, res)
				}
			} else {
				msg, _ := res["errorMessage"].(string)
				if code != 400 || res["status"] != "failed" || !strings.Contains(msg, "REVOKED") {
					t.Fatalf("login with a revoked model: %d %v", code, res)
				}
				if after := snapshot(t, e, "alice", "bob"); after != before {
					t.Fatalf("refused login changed the store: %q -> %q", before, after)
				}
			}
			o := beginReg(t, e, "bob", map[string]any{"attestation": "direct"})
			c2, err := softauthn.NewCredential(softauthn.ES256)
			if err != nil {
				t.Fatal(err)
			}
			body, err := softauthn.Create(c2, att, request(t, e, o, softauthn.FlagUP|softauthn.FlagUV))
			if err != nil {
				t.Fatal(err)
			}
			code, res = e.post("/attestation/result", body, nil)
			if mode == attestation.StatusMonitor {
				if code != 200 || res["attestationTrust"] != "trusted" {
					t.Fatalf("monitor: registration: %d %v", code, res)
				}
				return
			}
			msg, _ := res["errorMessage"].(string)
			if code != 400 || !strings.Contains(msg, "authenticator status refused") || !strings.Contains(msg, "REVOKED") {
				t.Fatalf("registration of a revoked model under attestation policy monitor: %d %v", code, res)
			}
			if creds, _ := e.db.FIDO2Credentials(t.Context(), "bob", "localhost"); len(creds) != 0 {
				t.Fatalf("refused registration stored %d credentials", len(creds))
			}
		})
	}
}

// TestIssuerSignerUV: the production result token (resulttoken.Issuer, ES256 in SoftHSM)
// carries uv as this assertion showed it, for a credential registered with UV.
func TestIssuerSignerUV(t *testing.T) {
	tok := hsmtest.NewTokenWith(t, hsmtest.Options{Quiet: true, NoVendorCA: true})
	signer := fido2.IssuerSigner(resulttoken.New(hsmTokenSigner{tok.Token}, resulttoken.Options{Issuer: "test"}))
	e := newEnv(t, func(c *fido2.Config) { c.AttestationPolicy = fido2.AttestationNone }, signer)
	cred, _ := registerSoft(t, e, "uv", softauthn.ES256, softauthn.Attestation{Format: "none"})
	for _, uv := range []bool{false, true} {
		flags := byte(softauthn.FlagUP)
		if uv {
			flags |= softauthn.FlagUV
		}
		_, o := e.post("/assertion/options", map[string]any{"username": "uv"}, nil)
		body, err := softauthn.Get(cred, request(t, e, o, flags), true)
		if err != nil {
			t.Fatal(err)
		}
		code, res := e.post("/assertion/result", body, nil)
		if code != 200 {
			t.Fatalf("login %d %v", code, res)
		}
		parts := strings.Split(res["token"].(string), ".")
		if len(parts) != 3 {
			t.Fatalf("token %v", res["token"])
		}
		raw, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			t.Fatal(err)
		}
		var claims map[string]any
		if err := json.Unmarshal(raw, &claims); err != nil {
			t.Fatal(err)
		}
		if claims["op"] != "fido2-auth" || claims["uv"] != uv {
			t.Fatalf("UV %v: token claims %v", uv, claims)
		}
	}
}

// TestMetadataBatchStatusAtLogin: a report naming the CA of one batch, published after
// registration, stops logins with credentials attested by that batch (the chain is read
// from the credential's record), and not those of another batch or of self attestation
// of the same model.
func TestMetadataBatchStatusAtLogin(t *testing.T) {
	aaguid := [16]byte{0xba, 0x7c, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}
	ch := newChain(t, aaguid)
	now := time.Now()
	statement := func(reports ...metadata.StatusReport) *metadata.Set {
		return metadata.NewSet(&metadata.Statement{AAGUID: metadata.AAGUID(aaguid), ProtocolFamily: "fido2",
			Description: "batch test key", AttestationTypes: []uint16{0x3E07, 0x3E08}, // basic_full, basic_surrogate
			AttestationRoots: []*x509.Certificate{ch.root.cert}, StatusReports: reports})
	}
	certified := metadata.StatusReport{Status: metadata.StatusFIDOCertifiedL1, EffectiveDate: now.Add(-72 * time.Hour)}
	compromised := func(c *x509.Certificate) metadata.StatusReport {
		return metadata.StatusReport{Status: metadata.StatusAttestationKeyCompromise, EffectiveDate: now.Add(-time.Hour),
			CertificateDER: c.Raw, Certificate: c}
	}
	cat := metadata.NewCatalog(statement(certified))
	e := newEnvDeps(t, func(c *fido2.Config) { c.AttestationPolicy = fido2.AttestationEnforce },
		func(d *fido2.Deps) {
			d.Trust = attestation.NewMetadataAnchors(cat, attestation.MetadataAnchorsOptions{})
		})
	full, res := registerSoft(t, e, "full", softauthn.ES256, softauthn.Attestation{Format: "packed", AAGUID: aaguid,
		Key: ch.leaf.key, X5C: [][]byte{ch.leaf.cert.Raw, ch.inter.cert.Raw}})
	if res["attestationTrust"] != "trusted" {
		t.Fatalf("full attestation: %v", res)
	}
	self, _ := registerSoft(t, e, "self", softauthn.ES256, softauthn.Attestation{Format: "packed", AAGUID: aaguid})
	login := func(user string, c *softauthn.Credential) (int, map[string]any) {
		t.Helper()
		_, o := e.post("/assertion/options", map[string]any{"username": user}, nil)
		body, err := softauthn.Get(c, request(t, e, o, softauthn.FlagUP|softauthn.FlagUV), true)
		if err != nil {
			t.Fatal(err)
		}
		return e.post("/assertion/result", body, nil)
	}
	other := newChain(t, aaguid)
	for _, tc := range []struct {
		name       string
		reports    []metadata.StatusReport
		fullOK     bool
		selfOK     bool
		wantReason string
	}{
		{"certified", []metadata.StatusReport{certified}, true, true, ""},
		{"this batch's CA compromised", []metadata.StatusReport{certified, compromised(ch.inter.cert)}, false, true, "ATTESTATION_KEY_COMPROMISE"},
		{"another batch compromised", []metadata.StatusReport{certified, compromised(other.inter.cert)}, true, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cat.Replace(statement(tc.reports...))
			before := snapshot(t, e, "full")
			code, res := login("full", full)
			if (code == 200) != tc.fullOK {
				t.Fatalf("full attestation login: %d %v", code, res)
			}
			if !tc.fullOK {
				if msg, _ := res["errorMessage"].(string); code != 400 || !strings.Contains(msg, tc.wantReason) {
					t.Fatalf("refusal %d %v", code, res)
				}
				if after := snapshot(t, e, "full"); after != before {
					t.Fatalf("refused login changed the store: %q -> %q", before, after)
				}
				full.Counter-- // the refused assertion's counter was not stored
			}
			if code, res := login("self", self); (code == 200) != tc.selfOK {
				t.Fatalf("self attestation login: %d %v", code, res)
			}
		})
	}
}

// TestMetadataUVBypassAtLogin: once the metadata reports USER_VERIFICATION_BYPASS for an
// authenticator model, a login that does not require user verification goes through but
// reports uv false (the UV bit is not believed), and one that requires it is refused.
func TestMetadataUVBypassAtLogin(t *testing.T) {
	aaguid := [16]byte{0xb7, 0x9a, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}
	now := time.Now()
	statement := func(reports ...metadata.StatusReport) *metadata.Set {
		return metadata.NewSet(&metadata.Statement{AAGUID: metadata.AAGUID(aaguid), ProtocolFamily: "fido2",
			Description: "bypass test key", AttestationTypes: []uint16{0x3E08}, StatusReports: reports})
	}
	cat := metadata.NewCatalog(statement())
	e := newEnvDeps(t, func(c *fido2.Config) { c.AttestationPolicy = fido2.AttestationMonitor },
		func(d *fido2.Deps) {
			d.Trust = attestation.NewMetadataAnchors(cat, attestation.MetadataAnchorsOptions{})
		})
	cred, _ := registerSoft(t, e, "bob", softauthn.ES256, softauthn.Attestation{Format: "packed", AAGUID: aaguid})
	cat.Replace(statement(metadata.StatusReport{Status: metadata.StatusUserVerificationBypass, EffectiveDate: now.Add(-time.Hour)}))
	login := func(uv string) (int, map[string]any) {
		t.Helper()
		_, o := e.post("/assertion/options", map[string]any{"username": "bob", "userVerification": uv}, nil)
		body, err := softauthn.Get(cred, request(t, e, o, softauthn.FlagUP|softauthn.FlagUV), true)
		if err != nil {
			t.Fatal(err)
		}
		return e.post("/assertion/result", body, nil)
	}
	code, res := login("preferred")
	if code != 200 {
		t.Fatalf("preferred UV: %d %v", code, res)
	}
	checkUV(t, e, res, false)
	code, res = login("required")
	if msg, _ := res["errorMessage"].(string); code != 400 || !strings.Contains(msg, "USER_VERIFICATION_BYPASS") {
		t.Fatalf("required UV: %d %v", code, res)
	}
}
