package authr

import (
	"encoding/base64"
	"encoding/json"

	"github.com/fidoserver/hwfido/uaf"
)

// KeyProtection is the metadata keyProtection of this authenticator:
// KEY_PROTECTION_HARDWARE | KEY_PROTECTION_TEE (0x6). The UAuth private keys
// are generated inside the TPM and are only ever outside it wrapped by the
// TPM's storage key (hardware); the TPM is an isolated execution
// environment whose firmware, not the OS, performs every use of the key and
// the PIN check (the role the registry gives TEE). It is not
// SECURE_ELEMENT, which the registry reserves for certified SEs.
const KeyProtection = uaf.KeyProtectionHardware | uaf.KeyProtectionTEE

// Description is the metadata description.
const Description = "hwfido TPM 2.0 UAF authenticator (authenticatord)"

// statement is a UAF 1.1 metadata statement (FIDO UAF Authenticator
// Metadata Statements 1.1 §4) with the MDS3 plural algorithm fields too.
type statement struct {
	AAID                        string                `json:"aaid"`
	Description                 string                `json:"description"`
	AuthenticatorVersion        uint16                `json:"authenticatorVersion"`
	ProtocolFamily              string                `json:"protocolFamily"`
	Upv                         []uaf.Version         `json:"upv"`
	AssertionScheme             string                `json:"assertionScheme"`
	AuthenticationAlgorithm     uaf.Alg               `json:"authenticationAlgorithm"`
	AuthenticationAlgorithms    []uaf.Alg             `json:"authenticationAlgorithms"`
	PublicKeyAlgAndEncoding     uaf.KeyEncoding       `json:"publicKeyAlgAndEncoding"`
	PublicKeyAlgAndEncodings    []uaf.KeyEncoding     `json:"publicKeyAlgAndEncodings"`
	AttestationTypes            []uaf.AttestationType `json:"attestationTypes"`
	UserVerificationDetails     [][]uvMethod          `json:"userVerificationDetails"`
	KeyProtection               uaf.KeyProtection     `json:"keyProtection"`
	IsKeyRestricted             bool                  `json:"isKeyRestricted"`
	IsFreshUserVerificationReq  bool                  `json:"isFreshUserVerificationRequired"`
	MatcherProtection           uaf.MatcherProtection `json:"matcherProtection"`
	AttachmentHint              uaf.AttachmentHint    `json:"attachmentHint"`
	IsSecondFactorOnly          bool                  `json:"isSecondFactorOnly"`
	TCDisplay                   uaf.TCDisplay         `json:"tcDisplay"`
	TCDisplayContentType        string                `json:"tcDisplayContentType"`
	AttestationRootCertificates []string              `json:"attestationRootCertificates"`
}

type uvMethod struct {
	UserVerification uaf.UserVerify `json:"userVerification"`
}

// Metadata returns the authenticator's UAF metadata statement as indented
// JSON for the server to load: AAID, passcode user verification (0x4),
// keyProtection 0x6 ([KeyProtection]), matcherProtection on_chip (0x4; the
// TPM compares the PIN-derived authValue and enforces the retry limit),
// tcDisplay any (0x1, text/plain: the client shows the text, there is no
// secure display), ECDSA P-256 raw signatures (0x0001) with X9.62 raw keys
// (0x0100), and the attestation types it can produce now: basic_full
// (0x3E07) with the vendor root as attestationRootCertificates once a
// certificate is installed, and basic_surrogate (0x3E08). Without a
// certificate the roots list is empty, as the statement rules require for
// surrogate-only authenticators.
func (a *Authenticator) Metadata() ([]byte, error) {
	a.mu.Lock()
	att := a.att
	a.mu.Unlock()
	s := statement{
		AAID: a.aaid, Description: Description, AuthenticatorVersion: AuthenticatorVersion, ProtocolFamily: "uaf",
		Upv: []uaf.Version{uaf.Version11}, AssertionScheme: uaf.AssertionSchemeUAFV1TLV,
		AuthenticationAlgorithm: uaf.AlgSECP256R1ECDSASHA256Raw, AuthenticationAlgorithms: []uaf.Alg{uaf.AlgSECP256R1ECDSASHA256Raw},
		PublicKeyAlgAndEncoding: uaf.KeyECCX962Raw, PublicKeyAlgAndEncodings: []uaf.KeyEncoding{uaf.KeyECCX962Raw},
		AttestationTypes:        []uaf.AttestationType{uaf.AttestationBasicSurrogate},
		UserVerificationDetails: [][]uvMethod{{{UserVerification: uaf.UserVerifyPasscode}}},
		KeyProtection:           KeyProtection, IsKeyRestricted: true, IsFreshUserVerificationReq: true,
		MatcherProtection: uaf.MatcherProtectionOnChip, AttachmentHint: uaf.AttachmentInternal,
		TCDisplay: uaf.TCDisplayAny, TCDisplayContentType: "text/plain", AttestationRootCertificates: []string{},
	}
	if att != nil {
		s.AttestationTypes = []uaf.AttestationType{uaf.AttestationBasicFull, uaf.AttestationBasicSurrogate}
		s.AttestationRootCertificates = []string{base64.StdEncoding.EncodeToString(att.root.Raw)}
	}
	return json.MarshalIndent(s, "", "  ")
}
