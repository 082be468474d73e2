package uaf

import (
	"fmt"
	"slices"
	"strings"
)

// AuthenticatorInfo describes one authenticator for policy evaluation (UAF
// Protocol §3.4.7). A server derives the capability fields from the metadata
// statement of the AAID and takes AAID, KeyID, algorithm and attestation type
// from the verified assertion (reference uaf-protocol.md §4).
type AuthenticatorInfo struct {
	AAID string
	// KeyID is base64url; "" when unknown.
	KeyID string
	// UserVerification holds one value per AND-combination of the
	// statement's userVerificationDetails (see [UserVerificationCombination]);
	// the authenticator matches if any combination matches.
	UserVerification         []UserVerify
	KeyProtection            KeyProtection
	MatcherProtection        MatcherProtection
	AttachmentHint           AttachmentHint
	TCDisplay                TCDisplay
	AuthenticationAlgorithms []Alg
	AssertionSchemes         []string
	AttestationTypes         []AttestationType
	AuthenticatorVersion     uint16
}

// UserVerificationCombination returns the userVerification value of an
// AND-combination of methods: their OR, plus UserVerifyAll when more than
// one method is required.
func UserVerificationCombination(methods ...UserVerify) UserVerify {
	var v UserVerify
	for _, m := range methods {
		v |= m
	}
	if len(methods) > 1 {
		v |= UserVerifyAll
	}
	return v
}

// uvMatches implements the userVerification rule of UAF Protocol §3.4.7:
// equal, or neither has USER_VERIFY_ALL and they share a method.
func uvMatches(crit, info UserVerify) bool {
	if crit == info {
		return true
	}
	return crit&UserVerifyAll == 0 && info&UserVerifyAll == 0 && crit&info != 0
}

func keyIDEqual(a, b string) bool {
	return strings.TrimRight(a, "=") == strings.TrimRight(b, "=")
}

// Matches reports whether info satisfies every field present in m (UAF
// Protocol §3.4.7): list fields match when any element equals; vendorID
// compares with the first four AAID characters; AAIDs compare
// case-insensitively; bit fields match when they share a flag;
// authenticatorVersion matches when info's version is not lower. Extensions
// are not evaluated.
func (m *MatchCriteria) Matches(info *AuthenticatorInfo) bool {
	if m.AAID != nil && !slices.ContainsFunc(m.AAID, func(a string) bool { return strings.EqualFold(a, info.AAID) }) {
		return false
	}
	if m.VendorID != nil && (len(info.AAID) < 4 ||
		!slices.ContainsFunc(m.VendorID, func(v string) bool { return strings.EqualFold(v, info.AAID[:4]) })) {
		return false
	}
	if m.KeyIDs != nil && (info.KeyID == "" ||
		!slices.ContainsFunc(m.KeyIDs, func(k string) bool { return keyIDEqual(k, info.KeyID) })) {
		return false
	}
	if m.UserVerification != nil &&
		!slices.ContainsFunc(info.UserVerification, func(u UserVerify) bool { return uvMatches(*m.UserVerification, u) }) {
		return false
	}
	if m.KeyProtection != nil && *m.KeyProtection&info.KeyProtection == 0 {
		return false
	}
	if m.MatcherProtection != nil && *m.MatcherProtection&info.MatcherProtection == 0 {
		return false
	}
	if m.AttachmentHint != nil && *m.AttachmentHint&info.AttachmentHint == 0 {
		return false
	}
	if m.TCDisplay != nil && *m.TCDisplay&info.TCDisplay == 0 {
		return false
	}
	if m.AuthenticationAlgorithms != nil && !intersects(m.AuthenticationAlgorithms, info.AuthenticationAlgorithms) {
		return false
	}
	if m.AssertionSchemes != nil && !intersects(m.AssertionSchemes, info.AssertionSchemes) {
		return false
	}
	if m.AttestationTypes != nil && !intersects(m.AttestationTypes, info.AttestationTypes) {
		return false
	}
	if m.AuthenticatorVersion != nil && info.AuthenticatorVersion < *m.AuthenticatorVersion {
		return false
	}
	return true
}

func intersects[T comparable](a, b []T) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// Disallows reports whether info matches any entry of p.Disallowed.
func (p *Policy) Disallows(info *AuthenticatorInfo) bool {
	for i := range p.Disallowed {
		if p.Disallowed[i].Matches(info) {
			return true
		}
	}
	return false
}

// Covers reports whether the verified authenticators infos satisfy one
// complete inner array of p.Accepted: every MatchCriteria of that array is
// matched by a distinct authenticator. It returns the index of the first such
// alternative. No authenticator of infos may be disallowed; authenticators not
// needed by the alternative are tolerated.
func (p *Policy) Covers(infos []AuthenticatorInfo) (int, bool) {
	for i := range infos {
		if p.Disallows(&infos[i]) {
			return -1, false
		}
	}
	for alt, set := range p.Accepted {
		if len(set) > 0 && assign(set, infos, make([]bool, len(infos))) {
			return alt, true
		}
	}
	return -1, false
}

// assign finds a distinct authenticator for every criteria (backtracking;
// sets are small).
func assign(set []MatchCriteria, infos []AuthenticatorInfo, used []bool) bool {
	if len(set) == 0 {
		return true
	}
	for i := range infos {
		if used[i] || !set[0].Matches(&infos[i]) {
			continue
		}
		used[i] = true
		if assign(set[1:], infos, used) {
			return true
		}
		used[i] = false
	}
	return false
}

// PolicyError names the entry of a Policy that breaks a structural rule.
type PolicyError struct {
	// Path is like "accepted[0][1].keyIDs[0]".
	Path   string
	Reason string
}

// Error implements error.
func (e *PolicyError) Error() string { return "uaf: policy " + e.Path + ": " + e.Reason }

// Validate checks the structure of p as the conformance tool does (UAF
// Protocol §3.4.8 and reference uaf-protocol.md §4): accepted is non-empty and
// so is each inner array; an entry with aaid may additionally hold only
// keyIDs, attachmentHint, authenticatorVersion and exts; an entry without aaid
// must hold both authenticationAlgorithms and assertionSchemes; AAIDs, vendor
// IDs and KeyIDs are well formed. It returns a [*PolicyError].
func (p *Policy) Validate() error {
	if len(p.Accepted) == 0 {
		return &PolicyError{Path: "accepted", Reason: "empty"}
	}
	for i, set := range p.Accepted {
		if len(set) == 0 {
			return &PolicyError{Path: fmt.Sprintf("accepted[%d]", i), Reason: "empty"}
		}
		for j := range set {
			if err := set[j].validate(fmt.Sprintf("accepted[%d][%d]", i, j)); err != nil {
				return err
			}
		}
	}
	for j := range p.Disallowed {
		if err := p.Disallowed[j].validate(fmt.Sprintf("disallowed[%d]", j)); err != nil {
			return err
		}
	}
	return nil
}

func (m *MatchCriteria) validate(path string) error {
	if m.AAID != nil {
		if len(m.AAID) == 0 {
			return &PolicyError{Path: path + ".aaid", Reason: "empty list"}
		}
		for i, a := range m.AAID {
			if !ValidAAID(a) {
				return &PolicyError{Path: fmt.Sprintf("%s.aaid[%d]", path, i), Reason: "not VVVV#MMMM"}
			}
		}
		if m.VendorID != nil || m.UserVerification != nil || m.KeyProtection != nil || m.MatcherProtection != nil ||
			m.TCDisplay != nil || m.AuthenticationAlgorithms != nil || m.AssertionSchemes != nil ||
			m.AttestationTypes != nil {
			return &PolicyError{Path: path, Reason: "an entry with aaid may only add keyIDs, attachmentHint, authenticatorVersion, exts"}
		}
	} else if len(m.AuthenticationAlgorithms) == 0 || len(m.AssertionSchemes) == 0 {
		return &PolicyError{Path: path, Reason: "an entry without aaid needs authenticationAlgorithms and assertionSchemes"}
	}
	for i, v := range m.VendorID {
		if len(v) != 4 || !ValidAAID(v+"#0000") {
			return &PolicyError{Path: fmt.Sprintf("%s.vendorID[%d]", path, i), Reason: "not 4 hex digits"}
		}
	}
	for i, k := range m.KeyIDs {
		b, err := DecodeBase64URL(k)
		if err != nil || len(b) < MinKeyIDLen || len(b) > MaxKeyIDLen {
			return &PolicyError{Path: fmt.Sprintf("%s.keyIDs[%d]", path, i), Reason: "not base64url of 32..2048 bytes"}
		}
	}
	for i, s := range m.AssertionSchemes {
		if s != AssertionSchemeUAFV1TLV {
			return &PolicyError{Path: fmt.Sprintf("%s.assertionSchemes[%d]", path, i), Reason: "unknown scheme"}
		}
	}
	for i, e := range m.Exts {
		if e.ID == "" || len(e.ID) > 32 {
			return &PolicyError{Path: fmt.Sprintf("%s.exts[%d]", path, i), Reason: "id must be 1..32 characters"}
		}
	}
	return nil
}
