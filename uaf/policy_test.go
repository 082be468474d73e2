package uaf

import (
	"errors"
	"strings"
	"testing"
)

func TestMatchCriteria(t *testing.T) {
	kid := EncodeBase64URL(kid32)
	info := AuthenticatorInfo{
		AAID: "ffff#fc01", KeyID: kid,
		UserVerification:         []UserVerify{UserVerifyFingerprint, UserVerificationCombination(UserVerifyFingerprint, UserVerifyFaceprint)},
		KeyProtection:            KeyProtectionHardware | KeyProtectionTEE,
		MatcherProtection:        MatcherProtectionTEE,
		AttachmentHint:           AttachmentInternal,
		TCDisplay:                TCDisplayAny,
		AuthenticationAlgorithms: []Alg{AlgSECP256R1ECDSASHA256Raw},
		AssertionSchemes:         []string{AssertionSchemeUAFV1TLV},
		AttestationTypes:         []AttestationType{AttestationBasicFull},
		AuthenticatorVersion:     2,
	}
	fp := info
	fp.UserVerification = []UserVerify{UserVerifyFingerprint}
	both := info
	both.UserVerification = []UserVerify{UserVerificationCombination(UserVerifyFingerprint, UserVerifyFaceprint)}
	tests := []struct {
		name string
		m    MatchCriteria
		info AuthenticatorInfo
		want bool
	}{
		{"empty matches", MatchCriteria{}, info, true},
		{"aaid case-insensitive", MatchCriteria{AAID: []string{"FFFF#FC01"}}, info, true},
		{"aaid other", MatchCriteria{AAID: []string{"FFFF#FC02"}}, info, false},
		{"vendor", MatchCriteria{VendorID: []string{"FFFF"}}, info, true},
		{"vendor other", MatchCriteria{VendorID: []string{"ABCD"}}, info, false},
		{"keyID", MatchCriteria{KeyIDs: []string{kid}}, info, true},
		{"keyID padded", MatchCriteria{KeyIDs: []string{kid + "="}}, info, true},
		{"keyID other", MatchCriteria{KeyIDs: []string{"AAAA"}}, info, false},
		{"uv fingerprint", MatchCriteria{UserVerification: Ptr(UserVerifyFingerprint)}, fp, true},
		{"uv fp or face (18)", MatchCriteria{UserVerification: Ptr(UserVerify(18))}, fp, true},
		{"uv face only", MatchCriteria{UserVerification: Ptr(UserVerifyFaceprint)}, fp, false},
		{"uv fp and face (1042) vs fp", MatchCriteria{UserVerification: Ptr(UserVerify(1042))}, fp, false},
		{"uv fp and face (1042) vs both", MatchCriteria{UserVerification: Ptr(UserVerify(1042))}, both, true},
		{"uv fp vs ALL combination only", MatchCriteria{UserVerification: Ptr(UserVerifyFingerprint)}, both, false},
		{"keyProtection shares flag", MatchCriteria{KeyProtection: Ptr(KeyProtectionTEE | KeyProtectionSecureElement)}, info, true},
		{"keyProtection software", MatchCriteria{KeyProtection: Ptr(KeyProtectionSoftware)}, info, false},
		{"matcher", MatchCriteria{MatcherProtection: Ptr(MatcherProtectionOnChip)}, info, false},
		{"attachment external", MatchCriteria{AttachmentHint: Ptr(AttachmentExternal)}, info, false},
		{"tcDisplay", MatchCriteria{TCDisplay: Ptr(TCDisplayAny | TCDisplayTEE)}, info, true},
		{"alg", MatchCriteria{AuthenticationAlgorithms: []Alg{AlgSECP256R1ECDSASHA256DER, AlgSECP256R1ECDSASHA256Raw}}, info, true},
		{"alg other", MatchCriteria{AuthenticationAlgorithms: []Alg{AlgRSASSAPSSSHA256Raw}}, info, false},
		{"scheme other", MatchCriteria{AssertionSchemes: []string{"UAFV2"}}, info, false},
		{"attestation surrogate", MatchCriteria{AttestationTypes: []AttestationType{AttestationBasicSurrogate}}, info, false},
		{"version lower ok", MatchCriteria{AuthenticatorVersion: Ptr(uint16(2))}, info, true},
		{"version higher", MatchCriteria{AuthenticatorVersion: Ptr(uint16(3))}, info, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.m.Matches(&tc.info); got != tc.want {
				t.Fatalf("Matches = %v", got)
			}
		})
	}
}

func TestPolicyCovers(t *testing.T) {
	a := AuthenticatorInfo{AAID: "FFFF#0001", KeyID: "k1"}
	b := AuthenticatorInfo{AAID: "FFFF#0002", KeyID: "k2"}
	p := Policy{Accepted: [][]MatchCriteria{
		{{AAID: []string{"FFFF#0001"}}, {AAID: []string{"FFFF#0002"}}},
		{{AAID: []string{"FFFF#0003"}}},
	}}
	if _, ok := p.Covers([]AuthenticatorInfo{a}); ok {
		t.Fatal("half a set accepted")
	}
	if alt, ok := p.Covers([]AuthenticatorInfo{b, a}); !ok || alt != 0 {
		t.Fatal("full set refused")
	}
	dup := Policy{Accepted: [][]MatchCriteria{{{VendorID: []string{"FFFF"}}, {VendorID: []string{"FFFF"}}}}}
	if _, ok := dup.Covers([]AuthenticatorInfo{a}); ok {
		t.Fatal("one authenticator used twice")
	}
	if _, ok := dup.Covers([]AuthenticatorInfo{a, b}); !ok {
		t.Fatal("two distinct refused")
	}
	p.Disallowed = []MatchCriteria{{AAID: []string{"FFFF#0002"}, KeyIDs: []string{"k2"}}}
	if !p.Disallows(&b) || p.Disallows(&a) {
		t.Fatal("Disallows")
	}
	if _, ok := p.Covers([]AuthenticatorInfo{a, b}); ok {
		t.Fatal("disallowed authenticator accepted")
	}
}

func TestPolicyValidate(t *testing.T) {
	kid := EncodeBase64URL(kid32)
	good := Policy{
		Accepted: [][]MatchCriteria{
			{{AAID: []string{"FFFF#FC01"}, KeyIDs: []string{kid}, AttachmentHint: Ptr(AttachmentInternal), AuthenticatorVersion: Ptr(uint16(1))}},
			{{UserVerification: Ptr(UserVerifyFingerprint), AuthenticationAlgorithms: []Alg{1}, AssertionSchemes: []string{"UAFV1TLV"}}},
		},
		Disallowed: []MatchCriteria{{AAID: []string{"FFFF#FC01"}, KeyIDs: []string{kid}}},
	}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		p    Policy
		path string
	}{
		"no accepted":     {Policy{}, "accepted"},
		"empty inner":     {Policy{Accepted: [][]MatchCriteria{{}}}, "accepted[0]"},
		"aaid with uv":    {Policy{Accepted: [][]MatchCriteria{{{AAID: []string{"FFFF#FC01"}, UserVerification: Ptr(UserVerify(2))}}}}, "accepted[0][0]"},
		"no aaid no algs": {Policy{Accepted: [][]MatchCriteria{{{AssertionSchemes: []string{"UAFV1TLV"}}}}}, "accepted[0][0]"},
		"bad aaid":        {Policy{Accepted: [][]MatchCriteria{{{AAID: []string{"FFFF-FC01"}}}}}, "accepted[0][0].aaid[0]"},
		"short keyID":     {Policy{Accepted: [][]MatchCriteria{{{AAID: []string{"FFFF#FC01"}, KeyIDs: []string{"AAAA"}}}}}, "accepted[0][0].keyIDs[0]"},
		"bad scheme":      {Policy{Accepted: [][]MatchCriteria{{{AuthenticationAlgorithms: []Alg{1}, AssertionSchemes: []string{"X"}}}}}, "accepted[0][0].assertionSchemes[0]"},
		"bad disallowed":  {Policy{Accepted: good.Accepted, Disallowed: []MatchCriteria{{KeyIDs: []string{kid}}}}, "disallowed[0]"},
		"bad vendor":      {Policy{Accepted: [][]MatchCriteria{{{VendorID: []string{"FFF"}, AuthenticationAlgorithms: []Alg{1}, AssertionSchemes: []string{"UAFV1TLV"}}}}}, "accepted[0][0].vendorID[0]"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var pe *PolicyError
			if err := tc.p.Validate(); !errors.As(err, &pe) || pe.Path != tc.path || !strings.HasPrefix(err.Error(), "uaf: policy") {
				t.Fatalf("err %v, want path %s", err, tc.path)
			}
		})
	}
}
