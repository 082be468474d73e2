package uaftest

import (
	"encoding/base64"
	"encoding/json"

	"github.com/fidoserver/hwfido/uaf"
)

// tinyPNG is a 1x1 PNG used as the statement icon.
const tinyPNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="

// MetadataStatement returns a UAF-era metadata statement (numeric
// constants, UAF Authenticator Metadata 1.1 / reference metadata.md §6) for
// the authenticator: its AAID, algorithm, key encoding, attestation type,
// fingerprint user verification, hardware|TEE key protection, TEE matcher,
// internal attachment, the configured tcDisplay with text/plain, and — for
// Basic Full — its CA as the only attestation root (empty for Basic
// Surrogate).
func (a *Authenticator) MetadataStatement() ([]byte, error) {
	roots := []string{}
	if a.opts.Attestation == uaf.AttestationBasicFull {
		roots = append(roots, base64.StdEncoding.EncodeToString(a.root.Raw))
	}
	type uvd struct {
		UserVerification uaf.UserVerify `json:"userVerification"`
	}
	st := map[string]any{
		"aaid":                            a.opts.AAID,
		"description":                     "hwfido uaftest authenticator " + a.opts.AAID,
		"authenticatorVersion":            a.opts.AuthenticatorVersion,
		"upv":                             []uaf.Version{uaf.Version11},
		"assertionScheme":                 uaf.AssertionSchemeUAFV1TLV,
		"authenticationAlgorithm":         a.opts.Alg,
		"publicKeyAlgAndEncoding":         a.opts.KeyEncoding,
		"attestationTypes":                []uaf.AttestationType{a.opts.Attestation},
		"userVerificationDetails":         [][]uvd{{{UserVerification: uaf.UserVerifyFingerprint}}},
		"keyProtection":                   uaf.KeyProtectionHardware | uaf.KeyProtectionTEE,
		"isKeyRestricted":                 true,
		"isFreshUserVerificationRequired": true,
		"matcherProtection":               uaf.MatcherProtectionTEE,
		"attachmentHint":                  uaf.AttachmentInternal,
		"isSecondFactorOnly":              false,
		"tcDisplay":                       a.opts.TCDisplay,
		"tcDisplayContentType":            "text/plain",
		"attestationRootCertificates":     roots,
		"icon":                            tinyPNG,
	}
	return json.MarshalIndent(st, "", "  ")
}
