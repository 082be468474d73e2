package metadata

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

func loadStatementFile(t *testing.T, name string) *Statement {
	t.Helper()
	data, err := os.ReadFile("testdata/statements/" + name)
	if err != nil {
		t.Fatal(err)
	}
	st, err := ParseStatement(data)
	if err != nil {
		t.Fatalf("ParseStatement(%s): %v", name, err)
	}
	return st
}

func TestParseStatementUAFNumericForm(t *testing.T) {
	st := loadStatementFile(t, "uaf11-numeric.json")
	checks := []struct {
		name      string
		got, want any
	}{
		{"AAID", st.AAID, "4E4E#4005"},
		{"ProtocolFamily", st.ProtocolFamily, "uaf"},
		{"AssertionScheme", st.AssertionScheme, "UAFV1TLV"},
		{"AuthenticatorVersion", st.AuthenticatorVersion, uint32(2)},
		{"Upv", st.Upv, []Version{{1, 0}, {1, 1}}},
		{"AuthenticationAlgorithms", st.AuthenticationAlgorithms, []uint16{AlgSignSecp256r1ECDSASHA256Raw}},
		{"PublicKeyAlgAndEncodings", st.PublicKeyAlgAndEncodings, []uint16{AlgKeyECCX962Raw}},
		{"AttestationTypes", st.AttestationTypes, []uint16{AttestationBasicFull, AttestationBasicSurrogate}},
		{"KeyProtection", st.KeyProtection, KeyProtectionHardware | KeyProtectionTEE},
		{"MatcherProtection", st.MatcherProtection, MatcherProtectionTEE},
		{"AttachmentHint", st.AttachmentHint, AttachmentHintInternal},
		{"TcDisplay", st.TcDisplay, TcDisplayAny | TcDisplayTEE},
		{"TcDisplayContentType", st.TcDisplayContentType, "image/png"},
		{"PNG width", st.TcDisplayPNGCharacteristics[0].Width, uint32(320)},
		{"CryptoStrength", st.CryptoStrength, uint16(128)},
		{"IsKeyRestricted", st.IsKeyRestricted, true},
		{"IsFreshUserVerificationRequired default", st.IsFreshUserVerificationRequired, true},
		{"IsSecondFactorOnly", st.IsSecondFactorOnly, false},
		{"UV combos", st.UserVerificationCombinations(), []uint32{UserVerifyFingerprintInternal, UserVerifyPasscodeInternal | UserVerifyFaceprintInternal | UserVerifyAll}},
		{"baDesc.maxRetries", st.UserVerificationDetails[0][0].BaDesc.MaxRetries, uint16(5)},
		{"caDesc.minLength", st.UserVerificationDetails[1][0].CaDesc.MinLength, uint16(4)},
		{"roots", len(st.AttestationRoots), 1},
		{"warnings", len(st.Warnings), 0},
		{"has basic_full", st.HasAttestationType(AttestationBasicFull), true},
		{"has attca", st.HasAttestationType(AttestationAttCA), false},
		{"has alg 1", st.HasAuthenticationAlgorithm(1), true},
		{"has enc 0x100", st.HasPublicKeyAlgAndEncoding(0x100), true},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
	if want := readShared(t, "mds3-spec-example-attestation-root.der"); !bytes.Equal(st.AttestationRoots[0].Raw, want) {
		t.Error("attestation root differs from mds3-spec-example-attestation-root.der")
	}
}

// normalised strips the fields that legitimately differ between two
// dialects of the same statement.
func normalised(s *Statement) Statement {
	c := *s
	c.Raw, c.Description, c.Schema = nil, "", 0
	c.AttestationRoots = nil
	return c
}

func TestNumericAndStringFormsAgree(t *testing.T) {
	num := loadStatementFile(t, "uaf11-numeric.json")
	str := loadStatementFile(t, "mds3-strings.json")
	if !reflect.DeepEqual(normalised(num), normalised(str)) {
		t.Fatalf("numeric and string forms differ:\nnum %+v\nstr %+v", normalised(num), normalised(str))
	}
	if len(num.AttestationRoots) != 1 || !num.AttestationRoots[0].Equal(str.AttestationRoots[0]) {
		t.Fatal("roots differ")
	}
	if str.Schema != 3 || num.Schema != 0 {
		t.Fatalf("schema num=%d str=%d", num.Schema, str.Schema)
	}
}

// confUAFRoot is the first UAF attestation root of the 2022 conformance BLOB:
// its notBefore is the non-existent date 2017-02-29.
const confUAFRoot = "MIIB7DCCAZKgAwIBAgIBBDAKBggqhkjOPQQDAjBwMQswCQYDVQQGEwJOWjEjMCEGA1UEAwwaRklETyBDb25mb3JtYWNlIFRlc3QgVG9vbHMxFjAUBgNVBAoMDUZJRE8gQWxsaWFuY2UxJDAiBgNVBAsMG0NlcnRpZmljYXRpb24gV29ya2luZyBHcm91cDAeFw0xNzAyMjkxNDMxMTJaFw0yMjAyMjgxNDMxMTJaMHAxCzAJBgNVBAYTAk5aMSMwIQYDVQQDDBpGSURPIENvbmZvcm1hY2UgVGVzdCBUb29sczEWMBQGA1UECgwNRklETyBBbGxpYW5jZTEkMCIGA1UECwwbQ2VydGlmaWNhdGlvbiBXb3JraW5nIEdyb3VwMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEZaRKB92Abz8nqEZFf8Xz84ajfA7lLjt4O+i2wq1FnD/svIyTyEYm/QbOYJC0GUVE+L6V7OiD8K9Z4PfiBFRO+qMdMBswDAYDVR0TBAUwAwEB/zALBgNVHQ8EBAMCBsAwCgYIKoZIzj0EAwIDSAAwRQIgWDy1Oxu8PT6diGXycY0rxb1e16omexfQ+Iv9KOg5p9cCIQCFPPCArmDh3+EyxI/OaZFPvW2kG2hQBmi9PnC+bBrfYQ=="

func TestAttestationRootsDisabledIndividually(t *testing.T) {
	good := strings.TrimSpace(string(mustB64(t, readShared(t, "mds3-spec-example-attestation-root.der"))))
	tests := []struct {
		name       string
		roots      []string
		wantRoots  int
		wantReason []string // one per disabled root, substring
	}{
		{"good", []string{good}, 1, nil},
		{"whitespace trimmed", []string{" " + good + "\n ", "\n" + good}, 2, nil},
		{"bad base64", []string{"!!notbase64!!", good}, 1, []string{"base64"}},
		{"empty", []string{"", good}, 1, []string{"base64: empty"}},
		{"not a certificate", []string{"AAAA", good}, 1, []string{"x509"}},
		{"2017-02-29 UTCTime", []string{good, confUAFRoot}, 1, []string{"UTCTime"}},
		{"all bad", []string{confUAFRoot, "%%%"}, 0, []string{"UTCTime", "base64"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			js := `{"aaid":"ABCD#ABCD","attestationTypes":["basic_full"],"attestationRootCertificates":` + mustJSON(t, tc.roots) + `}`
			st, err := ParseStatement([]byte(js))
			if err != nil {
				t.Fatalf("statement must still load: %v", err)
			}
			if len(st.AttestationRoots) != tc.wantRoots {
				t.Errorf("roots = %d, want %d", len(st.AttestationRoots), tc.wantRoots)
			}
			if len(st.DisabledRoots) != len(tc.wantReason) || len(st.Warnings) != len(tc.wantReason) {
				t.Fatalf("disabled = %v, warnings = %v, want %d", st.DisabledRoots, st.Warnings, len(tc.wantReason))
			}
			for i, r := range tc.wantReason {
				if !strings.Contains(st.DisabledRoots[i].Reason, r) || !strings.Contains(st.Warnings[i].String(), r) {
					t.Errorf("disabled[%d] reason %q, want it to mention %q", i, st.DisabledRoots[i].Reason, r)
				}
				if !strings.HasPrefix(st.Warnings[i].Field, "attestationRootCertificates[") {
					t.Errorf("warning field %q", st.Warnings[i].Field)
				}
			}
		})
	}
}

func TestParseStatementErrors(t *testing.T) {
	tests := []struct {
		name, json string
	}{
		{"not json", `{`},
		{"array", `[{"aaid":"ABCD#ABCD"}]`},
		{"empty", ``},
		{"no identifier", `{"description":"x"}`},
		{"bad aaid", `{"aaid":"ABCD-ABCD"}`},
		{"bad aaid hex", `{"aaid":"ABCG#ABCD"}`},
		{"bad aaguid", `{"aaguid":"0132d110-bf4e-4208-a403"}`},
		{"bad acki", `{"attestationCertificateKeyIdentifiers":["abc"]}`},
		{"alg out of range", `{"aaid":"ABCD#ABCD","authenticationAlgorithms":[70000]}`},
		{"negative alg", `{"aaid":"ABCD#ABCD","authenticationAlgorithm":-1}`},
		{"keyProtection out of range", `{"aaid":"ABCD#ABCD","keyProtection":65536}`},
		{"flag object", `{"aaid":"ABCD#ABCD","keyProtection":{"a":1}}`},
		{"wrong type", `{"aaid":"ABCD#ABCD","upv":"1.0"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := ParseStatement([]byte(tc.json))
			if err == nil || st != nil {
				t.Fatalf("ParseStatement = %v, %v; want error", st, err)
			}
			if !errors.Is(err, ErrInvalidStatement) {
				t.Errorf("error %v is not ErrInvalidStatement", err)
			}
			if !strings.HasPrefix(err.Error(), "metadata: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestParseStatementLeniency(t *testing.T) {
	st, err := ParseStatement([]byte(`{"aaguid":"0132D110BF4E4208A403AB4F5F12EFE5","protocolFamily":"fido2",
		"authenticationAlgorithms":["secp256r1_ecdsa_sha256_raw","future_alg_9000"],
		"keyProtection":["hardware","quantum_vault"],"attestationTypes":["basic_full","basic_full"],
		"isFreshUserVerificationRequired":false,"userVerificationDetails":[[{"userVerificationMethod":"telepathy"}]]}`))
	if err != nil {
		t.Fatal(err)
	}
	if st.AAGUID.String() != "0132d110-bf4e-4208-a403-ab4f5f12efe5" {
		t.Errorf("AAGUID = %s", st.AAGUID)
	}
	if !reflect.DeepEqual(st.AuthenticationAlgorithms, []uint16{1}) || st.KeyProtection != KeyProtectionHardware {
		t.Errorf("algs %v keyProtection %#x", st.AuthenticationAlgorithms, st.KeyProtection)
	}
	if !reflect.DeepEqual(st.AttestationTypes, []uint16{AttestationBasicFull}) {
		t.Errorf("duplicates kept: %v", st.AttestationTypes)
	}
	if len(st.Warnings) != 4 {
		t.Errorf("want 4 warnings (3 unknown names, 1 empty method), got %v", st.Warnings)
	}
	if st.IsFreshUserVerificationRequired || st.AssertionScheme != "" || st.IsSecondFactorOnly {
		t.Errorf("fido2 defaults wrong: %+v", st)
	}
	if len(st.UserVerificationDetails) != 0 {
		t.Errorf("unknown-only combination kept: %v", st.UserVerificationDetails)
	}
	u2f, err := ParseStatement([]byte(`{"protocolFamily":"u2f","attestationCertificateKeyIdentifiers":["923881FE2F214EE465484371AEB72E97F5A58E0A"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if !u2f.IsSecondFactorOnly || u2f.AttestationCertificateKeyIdentifiers[0] != "923881fe2f214ee465484371aeb72e97f5a58e0a" {
		t.Errorf("u2f: %+v", u2f)
	}
}

func TestParseAAGUID(t *testing.T) {
	for _, bad := range []string{"", "xyz", "0132d110-bf4e-4208-a403-ab4f5f12efeZ", "0132d110xbf4e-4208-a403-ab4f5f12efe5"} {
		if _, err := ParseAAGUID(bad); err == nil {
			t.Errorf("ParseAAGUID(%q) succeeded", bad)
		}
	}
	g, err := ParseAAGUID(" 0132d110-bf4e-4208-a403-ab4f5f12efe5 ")
	if err != nil || g.String() != "0132d110-bf4e-4208-a403-ab4f5f12efe5" || g.IsZero() {
		t.Fatalf("ParseAAGUID = %v, %v", g, err)
	}
}

// TestStatementWithoutAttestationTypes: a statement that lists no known attestation type
// loads with a warning (FIDO2 and UAF trust then allow no type).
func TestStatementWithoutAttestationTypes(t *testing.T) {
	for _, js := range []string{`{"aaid":"ABCD#ABCD"}`, `{"aaid":"ABCD#ABCD","attestationTypes":["tag_attestation_unknown"]}`} {
		st, err := ParseStatement([]byte(js))
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, w := range st.Warnings {
			found = found || w.Field == "attestationTypes"
		}
		if len(st.AttestationTypes) != 0 || !found {
			t.Errorf("%s: types %v, warnings %v", js, st.AttestationTypes, st.Warnings)
		}
	}
}
