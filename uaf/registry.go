package uaf

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// Tag is a UAF TLV tag (UAF Authenticator Commands §5.1).
type Tag uint16

// TLV tags that reach the server.
const (
	TagRegAssertion              Tag = 0x3E01
	TagAuthAssertion             Tag = 0x3E02
	TagKRD                       Tag = 0x3E03
	TagSignedData                Tag = 0x3E04
	TagAttestationCert           Tag = 0x2E05
	TagSignature                 Tag = 0x2E06
	TagAttestationBasicFull      Tag = 0x3E07
	TagAttestationBasicSurrogate Tag = 0x3E08
	TagAttestationECDAA          Tag = 0x3E09
	TagKeyID                     Tag = 0x2E09
	TagFinalChallengeHash        Tag = 0x2E0A
	TagAAID                      Tag = 0x2E0B
	TagPubKey                    Tag = 0x2E0C
	TagCounters                  Tag = 0x2E0D
	TagAssertionInfo             Tag = 0x2E0E
	TagAuthenticatorNonce        Tag = 0x2E0F
	TagTransactionContentHash    Tag = 0x2E10
	TagExtension                 Tag = 0x3E11
	TagExtensionNonCritical      Tag = 0x3E12
	TagExtensionID               Tag = 0x2E13
	TagExtensionData             Tag = 0x2E14
)

var tagNames = map[Tag]string{
	TagRegAssertion: "TAG_UAFV1_REG_ASSERTION", TagAuthAssertion: "TAG_UAFV1_AUTH_ASSERTION",
	TagKRD: "TAG_UAFV1_KRD", TagSignedData: "TAG_UAFV1_SIGNED_DATA",
	TagAttestationCert: "TAG_ATTESTATION_CERT", TagSignature: "TAG_SIGNATURE",
	TagAttestationBasicFull: "TAG_ATTESTATION_BASIC_FULL", TagAttestationBasicSurrogate: "TAG_ATTESTATION_BASIC_SURROGATE",
	TagAttestationECDAA: "TAG_ATTESTATION_ECDAA", TagKeyID: "TAG_KEYID",
	TagFinalChallengeHash: "TAG_FINAL_CHALLENGE_HASH", TagAAID: "TAG_AAID", TagPubKey: "TAG_PUB_KEY",
	TagCounters: "TAG_COUNTERS", TagAssertionInfo: "TAG_ASSERTION_INFO",
	TagAuthenticatorNonce: "TAG_AUTHENTICATOR_NONCE", TagTransactionContentHash: "TAG_TRANSACTION_CONTENT_HASH",
	TagExtension: "TAG_EXTENSION", TagExtensionNonCritical: "TAG_EXTENSION_NON_CRITICAL",
	TagExtensionID: "TAG_EXTENSION_ID", TagExtensionData: "TAG_EXTENSION_DATA",
}

// String returns the specification name ("TAG_KEYID") or the hex value.
func (t Tag) String() string {
	if n, ok := tagNames[t]; ok {
		return n
	}
	return fmt.Sprintf("0x%04X", uint16(t))
}

// Composite reports whether t holds nested TLVs (bit 0x1000).
func (t Tag) Composite() bool { return t&0x1000 != 0 }

// AttestationType is an attestation type; its value is the TLV tag of the
// attestation block (FIDO Registry §3.7).
type AttestationType uint16

// Attestation types.
const (
	AttestationBasicFull      AttestationType = 0x3E07
	AttestationBasicSurrogate AttestationType = 0x3E08
	AttestationECDAA          AttestationType = 0x3E09
	AttestationAttCA          AttestationType = 0x3E0A
	AttestationNone           AttestationType = 0x3E0B
	AttestationAnonCA         AttestationType = 0x3E0C
)

// Alg is a signature algorithm and encoding, ALG_SIGN_* (FIDO Registry §3.6.1).
type Alg uint16

// Signature algorithms.
const (
	AlgSECP256R1ECDSASHA256Raw Alg = 0x0001
	AlgSECP256R1ECDSASHA256DER Alg = 0x0002
	AlgRSASSAPSSSHA256Raw      Alg = 0x0003
	AlgRSASSAPSSSHA256DER      Alg = 0x0004
	AlgSECP256K1ECDSASHA256Raw Alg = 0x0005
	AlgSECP256K1ECDSASHA256DER Alg = 0x0006
	AlgSM2SM3Raw               Alg = 0x0007
	AlgRSAEMSAPKCS1SHA256Raw   Alg = 0x0008
	AlgRSAEMSAPKCS1SHA256DER   Alg = 0x0009
	AlgRSASSAPSSSHA384Raw      Alg = 0x000A
	AlgRSASSAPSSSHA512Raw      Alg = 0x000B
	AlgRSASSAPKCSV15SHA256Raw  Alg = 0x000C
	AlgRSASSAPKCSV15SHA384Raw  Alg = 0x000D
	AlgRSASSAPKCSV15SHA512Raw  Alg = 0x000E
	AlgRSASSAPKCSV15SHA1Raw    Alg = 0x000F
	AlgSECP384R1ECDSASHA384Raw Alg = 0x0010
	AlgSECP521R1ECDSASHA512Raw Alg = 0x0011
	AlgED25519EDDSASHA512Raw   Alg = 0x0012
	AlgED448EDDSASHA512Raw     Alg = 0x0013
)

// KeyEncoding is a public key encoding, ALG_KEY_* (FIDO Registry §3.6.2).
type KeyEncoding uint16

// Public key encodings.
const (
	KeyECCX962Raw KeyEncoding = 0x0100
	KeyECCX962DER KeyEncoding = 0x0101
	KeyRSA2048Raw KeyEncoding = 0x0102
	KeyRSA2048DER KeyEncoding = 0x0103
	KeyCOSE       KeyEncoding = 0x0104
)

// UserVerify is a USER_VERIFY_* bit set (FIDO Registry §3.1).
type UserVerify uint32

// User verification methods.
const (
	UserVerifyPresence         UserVerify = 0x01
	UserVerifyFingerprint      UserVerify = 0x02
	UserVerifyPasscode         UserVerify = 0x04
	UserVerifyVoiceprint       UserVerify = 0x08
	UserVerifyFaceprint        UserVerify = 0x10
	UserVerifyLocation         UserVerify = 0x20
	UserVerifyEyeprint         UserVerify = 0x40
	UserVerifyPattern          UserVerify = 0x80
	UserVerifyHandprint        UserVerify = 0x100
	UserVerifyNone             UserVerify = 0x200
	UserVerifyAll              UserVerify = 0x400
	UserVerifyPasscodeExternal UserVerify = 0x800
	UserVerifyPatternExternal  UserVerify = 0x1000
)

// KeyProtection is a KEY_PROTECTION_* bit set (FIDO Registry §3.2).
type KeyProtection uint16

// Key protection types.
const (
	KeyProtectionSoftware      KeyProtection = 0x01
	KeyProtectionHardware      KeyProtection = 0x02
	KeyProtectionTEE           KeyProtection = 0x04
	KeyProtectionSecureElement KeyProtection = 0x08
	KeyProtectionRemoteHandle  KeyProtection = 0x10
)

// MatcherProtection is a MATCHER_PROTECTION_* bit set (FIDO Registry §3.3).
type MatcherProtection uint16

// Matcher protection types.
const (
	MatcherProtectionSoftware MatcherProtection = 0x01
	MatcherProtectionTEE      MatcherProtection = 0x02
	MatcherProtectionOnChip   MatcherProtection = 0x04
)

// AttachmentHint is an ATTACHMENT_HINT_* bit set (FIDO Registry §3.4).
type AttachmentHint uint32

// Attachment hints.
const (
	AttachmentInternal   AttachmentHint = 0x01
	AttachmentExternal   AttachmentHint = 0x02
	AttachmentWired      AttachmentHint = 0x04
	AttachmentWireless   AttachmentHint = 0x08
	AttachmentNFC        AttachmentHint = 0x10
	AttachmentBluetooth  AttachmentHint = 0x20
	AttachmentNetwork    AttachmentHint = 0x40
	AttachmentReady      AttachmentHint = 0x80
	AttachmentWifiDirect AttachmentHint = 0x100
)

// TCDisplay is a TRANSACTION_CONFIRMATION_DISPLAY_* bit set (FIDO Registry §3.5).
type TCDisplay uint16

// Transaction confirmation display types.
const (
	TCDisplayAny                TCDisplay = 0x01
	TCDisplayPrivilegedSoftware TCDisplay = 0x02
	TCDisplayTEE                TCDisplay = 0x04
	TCDisplayHardware           TCDisplay = 0x08
	TCDisplayRemote             TCDisplay = 0x10
)

type entry[T ~uint16 | ~uint32] struct {
	v T
	n string
}

var (
	algNames = []entry[Alg]{
		{AlgSECP256R1ECDSASHA256Raw, "secp256r1_ecdsa_sha256_raw"}, {AlgSECP256R1ECDSASHA256DER, "secp256r1_ecdsa_sha256_der"},
		{AlgRSASSAPSSSHA256Raw, "rsassa_pss_sha256_raw"}, {AlgRSASSAPSSSHA256DER, "rsassa_pss_sha256_der"},
		{AlgSECP256K1ECDSASHA256Raw, "secp256k1_ecdsa_sha256_raw"}, {AlgSECP256K1ECDSASHA256DER, "secp256k1_ecdsa_sha256_der"},
		{AlgSM2SM3Raw, "sm2_sm3_raw"},
		{AlgRSAEMSAPKCS1SHA256Raw, "rsa_emsa_pkcs1_sha256_raw"}, {AlgRSAEMSAPKCS1SHA256DER, "rsa_emsa_pkcs1_sha256_der"},
		{AlgRSASSAPSSSHA384Raw, "rsassa_pss_sha384_raw"}, {AlgRSASSAPSSSHA512Raw, "rsassa_pss_sha512_raw"},
		{AlgRSASSAPKCSV15SHA256Raw, "rsassa_pkcsv15_sha256_raw"}, {AlgRSASSAPKCSV15SHA384Raw, "rsassa_pkcsv15_sha384_raw"},
		{AlgRSASSAPKCSV15SHA512Raw, "rsassa_pkcsv15_sha512_raw"}, {AlgRSASSAPKCSV15SHA1Raw, "rsassa_pkcsv15_sha1_raw"},
		{AlgSECP384R1ECDSASHA384Raw, "secp384r1_ecdsa_sha384_raw"}, {AlgSECP521R1ECDSASHA512Raw, "secp521r1_ecdsa_sha512_raw"},
		{AlgED25519EDDSASHA512Raw, "ed25519_eddsa_sha512_raw"}, {AlgED448EDDSASHA512Raw, "ed448_eddsa_sha512_raw"},
	}
	keyNames = []entry[KeyEncoding]{
		{KeyECCX962Raw, "ecc_x962_raw"}, {KeyECCX962DER, "ecc_x962_der"},
		{KeyRSA2048Raw, "rsa_2048_raw"}, {KeyRSA2048DER, "rsa_2048_der"}, {KeyCOSE, "cose"},
	}
	attNames = []entry[AttestationType]{
		{AttestationBasicFull, "basic_full"}, {AttestationBasicSurrogate, "basic_surrogate"},
		{AttestationECDAA, "ecdaa"}, {AttestationAttCA, "attca"}, {AttestationNone, "none"}, {AttestationAnonCA, "anonca"},
	}
	uvNames = []entry[UserVerify]{
		{UserVerifyPresence, "presence_internal"}, {UserVerifyFingerprint, "fingerprint_internal"},
		{UserVerifyPasscode, "passcode_internal"}, {UserVerifyVoiceprint, "voiceprint_internal"},
		{UserVerifyFaceprint, "faceprint_internal"}, {UserVerifyLocation, "location_internal"},
		{UserVerifyEyeprint, "eyeprint_internal"}, {UserVerifyPattern, "pattern_internal"},
		{UserVerifyHandprint, "handprint_internal"}, {UserVerifyNone, "none"}, {UserVerifyAll, "all"},
		{UserVerifyPasscodeExternal, "passcode_external"}, {UserVerifyPatternExternal, "pattern_external"},
	}
	kpNames = []entry[KeyProtection]{
		{KeyProtectionSoftware, "software"}, {KeyProtectionHardware, "hardware"}, {KeyProtectionTEE, "tee"},
		{KeyProtectionSecureElement, "secure_element"}, {KeyProtectionRemoteHandle, "remote_handle"},
	}
	mpNames = []entry[MatcherProtection]{
		{MatcherProtectionSoftware, "software"}, {MatcherProtectionTEE, "tee"}, {MatcherProtectionOnChip, "on_chip"},
	}
	ahNames = []entry[AttachmentHint]{
		{AttachmentInternal, "internal"}, {AttachmentExternal, "external"}, {AttachmentWired, "wired"},
		{AttachmentWireless, "wireless"}, {AttachmentNFC, "nfc"}, {AttachmentBluetooth, "bluetooth"},
		{AttachmentNetwork, "network"}, {AttachmentReady, "ready"}, {AttachmentWifiDirect, "wifi_direct"},
	}
	tcNames = []entry[TCDisplay]{
		{TCDisplayAny, "any"}, {TCDisplayPrivilegedSoftware, "privileged_software"}, {TCDisplayTEE, "tee"},
		{TCDisplayHardware, "hardware"}, {TCDisplayRemote, "remote"},
	}
)

func nameOf[T ~uint16 | ~uint32](tab []entry[T], v T) string {
	for _, e := range tab {
		if e.v == v {
			return e.n
		}
	}
	return "0x" + strconv.FormatUint(uint64(v), 16)
}

func valueOf[T ~uint16 | ~uint32](tab []entry[T], kind, name string) (T, error) {
	for _, e := range tab {
		if e.n == name {
			return e.v, nil
		}
	}
	return 0, fmt.Errorf("uaf: unknown %s name %q: %w", kind, name, ErrValue)
}

// flagNames splits a bit set into the names of its single flags.
func flagNames[T ~uint16 | ~uint32](tab []entry[T], v T) []string {
	var out []string
	for v != 0 {
		b := T(1) << bits.TrailingZeros64(uint64(v))
		out = append(out, nameOf(tab, b))
		v &^= b
	}
	return out
}

func flagsOf[T ~uint16 | ~uint32](tab []entry[T], kind string, names []string) (T, error) {
	var v T
	for _, n := range names {
		f, err := valueOf(tab, kind, n)
		if err != nil {
			return 0, err
		}
		v |= f
	}
	return v, nil
}

// String returns the registry short name ("secp256r1_ecdsa_sha256_raw"), or
// the hex value for an unknown algorithm.
func (a Alg) String() string { return nameOf(algNames, a) }

// ParseAlg returns the algorithm with the registry short name name.
func ParseAlg(name string) (Alg, error) { return valueOf(algNames, "algorithm", name) }

// String returns the registry short name ("ecc_x962_raw").
func (k KeyEncoding) String() string { return nameOf(keyNames, k) }

// ParseKeyEncoding returns the key encoding with the registry short name name.
func ParseKeyEncoding(name string) (KeyEncoding, error) {
	return valueOf(keyNames, "key encoding", name)
}

// String returns the registry short name ("basic_full").
func (a AttestationType) String() string { return nameOf(attNames, a) }

// ParseAttestationType returns the attestation type with the short name name.
func ParseAttestationType(name string) (AttestationType, error) {
	return valueOf(attNames, "attestation type", name)
}

// Names returns the short names of the flags set in u ("fingerprint_internal").
func (u UserVerify) Names() []string { return flagNames(uvNames, u) }

// String returns the flag names joined by "|".
func (u UserVerify) String() string { return strings.Join(u.Names(), "|") }

// ParseUserVerify ORs the flags with the given short names.
func ParseUserVerify(names ...string) (UserVerify, error) {
	return flagsOf(uvNames, "user verification", names)
}

// Names returns the short names of the flags set in k ("hardware").
func (k KeyProtection) Names() []string { return flagNames(kpNames, k) }

// String returns the flag names joined by "|".
func (k KeyProtection) String() string { return strings.Join(k.Names(), "|") }

// ParseKeyProtection ORs the flags with the given short names.
func ParseKeyProtection(names ...string) (KeyProtection, error) {
	return flagsOf(kpNames, "key protection", names)
}

// Names returns the short names of the flags set in m ("on_chip").
func (m MatcherProtection) Names() []string { return flagNames(mpNames, m) }

// String returns the flag names joined by "|".
func (m MatcherProtection) String() string { return strings.Join(m.Names(), "|") }

// ParseMatcherProtection ORs the flags with the given short names.
func ParseMatcherProtection(names ...string) (MatcherProtection, error) {
	return flagsOf(mpNames, "matcher protection", names)
}

// Names returns the short names of the flags set in a ("internal").
func (a AttachmentHint) Names() []string { return flagNames(ahNames, a) }

// String returns the flag names joined by "|".
func (a AttachmentHint) String() string { return strings.Join(a.Names(), "|") }

// ParseAttachmentHint ORs the flags with the given short names.
func ParseAttachmentHint(names ...string) (AttachmentHint, error) {
	return flagsOf(ahNames, "attachment hint", names)
}

// Names returns the short names of the flags set in t ("privileged_software").
func (t TCDisplay) Names() []string { return flagNames(tcNames, t) }

// String returns the flag names joined by "|".
func (t TCDisplay) String() string { return strings.Join(t.Names(), "|") }

// ParseTCDisplay ORs the flags with the given short names.
func ParseTCDisplay(names ...string) (TCDisplay, error) {
	return flagsOf(tcNames, "tc display", names)
}
