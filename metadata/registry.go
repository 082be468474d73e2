package metadata

import (
	"sort"
	"strings"
)

// User verification method flags (FIDO Registry §3.1, USER_VERIFY_*), a
// 32-bit field. MDS3 statements spell them as the short names in
// [UserVerificationName]; UAF-era statements use the numbers.
const (
	UserVerifyPresenceInternal    uint32 = 0x00000001
	UserVerifyFingerprintInternal uint32 = 0x00000002
	UserVerifyPasscodeInternal    uint32 = 0x00000004
	UserVerifyVoiceprintInternal  uint32 = 0x00000008
	UserVerifyFaceprintInternal   uint32 = 0x00000010
	UserVerifyLocationInternal    uint32 = 0x00000020
	UserVerifyEyeprintInternal    uint32 = 0x00000040
	UserVerifyPatternInternal     uint32 = 0x00000080
	UserVerifyHandprintInternal   uint32 = 0x00000100
	UserVerifyNone                uint32 = 0x00000200
	UserVerifyAll                 uint32 = 0x00000400
	UserVerifyPasscodeExternal    uint32 = 0x00000800
	UserVerifyPatternExternal     uint32 = 0x00001000
)

// Key protection flags (FIDO Registry §3.2, KEY_PROTECTION_*), a 16-bit field.
const (
	KeyProtectionSoftware      uint16 = 0x0001
	KeyProtectionHardware      uint16 = 0x0002
	KeyProtectionTEE           uint16 = 0x0004
	KeyProtectionSecureElement uint16 = 0x0008
	KeyProtectionRemoteHandle  uint16 = 0x0010
)

// Matcher protection flags (FIDO Registry §3.3, MATCHER_PROTECTION_*), a
// 16-bit field.
const (
	MatcherProtectionSoftware uint16 = 0x0001
	MatcherProtectionTEE      uint16 = 0x0002
	MatcherProtectionOnChip   uint16 = 0x0004
)

// Attachment hint flags (FIDO Registry §3.4, ATTACHMENT_HINT_*), a 32-bit
// field.
const (
	AttachmentHintInternal   uint32 = 0x0001
	AttachmentHintExternal   uint32 = 0x0002
	AttachmentHintWired      uint32 = 0x0004
	AttachmentHintWireless   uint32 = 0x0008
	AttachmentHintNFC        uint32 = 0x0010
	AttachmentHintBluetooth  uint32 = 0x0020
	AttachmentHintNetwork    uint32 = 0x0040
	AttachmentHintReady      uint32 = 0x0080
	AttachmentHintWiFiDirect uint32 = 0x0100
)

// Transaction confirmation display flags (FIDO Registry §3.5,
// TRANSACTION_CONFIRMATION_DISPLAY_*), a 16-bit field.
const (
	TcDisplayAny                uint16 = 0x0001
	TcDisplayPrivilegedSoftware uint16 = 0x0002
	TcDisplayTEE                uint16 = 0x0004
	TcDisplayHardware           uint16 = 0x0008
	TcDisplayRemote             uint16 = 0x0010
)

// Authentication (signature) algorithms (FIDO Registry §3.6.1, ALG_SIGN_*).
const (
	AlgSignSecp256r1ECDSASHA256Raw uint16 = 0x0001
	AlgSignSecp256r1ECDSASHA256DER uint16 = 0x0002
	AlgSignRSASSAPSSSHA256Raw      uint16 = 0x0003
	AlgSignRSASSAPSSSHA256DER      uint16 = 0x0004
	AlgSignSecp256k1ECDSASHA256Raw uint16 = 0x0005
	AlgSignSecp256k1ECDSASHA256DER uint16 = 0x0006
	AlgSignSM2SM3Raw               uint16 = 0x0007
	AlgSignRSAEMSAPKCS1SHA256Raw   uint16 = 0x0008
	AlgSignRSAEMSAPKCS1SHA256DER   uint16 = 0x0009
	AlgSignRSASSAPSSSHA384Raw      uint16 = 0x000A
	AlgSignRSASSAPSSSHA512Raw      uint16 = 0x000B
	AlgSignRSASSAPKCSv15SHA256Raw  uint16 = 0x000C
	AlgSignRSASSAPKCSv15SHA384Raw  uint16 = 0x000D
	AlgSignRSASSAPKCSv15SHA512Raw  uint16 = 0x000E
	AlgSignRSASSAPKCSv15SHA1Raw    uint16 = 0x000F
	AlgSignSecp384r1ECDSASHA384Raw uint16 = 0x0010
	AlgSignSecp521r1ECDSASHA512Raw uint16 = 0x0011
	AlgSignEd25519EdDSASHA512Raw   uint16 = 0x0012
	AlgSignEd448EdDSASHA512Raw     uint16 = 0x0013
)

// Public key representation formats (FIDO Registry §3.6.2, ALG_KEY_*).
const (
	AlgKeyECCX962Raw uint16 = 0x0100
	AlgKeyECCX962DER uint16 = 0x0101
	AlgKeyRSA2048Raw uint16 = 0x0102
	AlgKeyRSA2048DER uint16 = 0x0103
	AlgKeyCOSE       uint16 = 0x0104
)

// Attestation types (FIDO Registry §3.7, TAG_ATTESTATION_* values).
const (
	AttestationBasicFull      uint16 = 0x3E07
	AttestationBasicSurrogate uint16 = 0x3E08
	AttestationECDAA          uint16 = 0x3E09
	AttestationAttCA          uint16 = 0x3E0A
	AttestationNone           uint16 = 0x3E0B
	AttestationAnonCA         uint16 = 0x3E0C
)

// table is a bidirectional name↔value map of one registry group.
type table struct {
	byName  map[string]uint32
	byValue map[uint32]string
}

func newTable(pairs map[string]uint32) table {
	t := table{byName: make(map[string]uint32, len(pairs)), byValue: make(map[uint32]string, len(pairs))}
	for n, v := range pairs {
		t.byName[n] = v
		t.byValue[v] = n
	}
	return t
}

func (t table) value(name string) (uint32, bool) {
	v, ok := t.byName[strings.ToLower(strings.TrimSpace(name))]
	return v, ok
}

// flagNames returns the names of the bits set in v, in ascending bit order.
// Unknown bits are dropped.
func (t table) flagNames(v uint32) []string {
	var out []string
	bits := make([]uint32, 0, len(t.byValue))
	for b := range t.byValue {
		bits = append(bits, b)
	}
	sort.Slice(bits, func(i, j int) bool { return bits[i] < bits[j] })
	for _, b := range bits {
		if v&b != 0 {
			out = append(out, t.byValue[b])
		}
	}
	return out
}

// The registry tables. They are package-level read-only values built once;
// nothing mutates them after initialisation.
var (
	userVerificationTable = newTable(map[string]uint32{
		"presence_internal":    0x1,
		"fingerprint_internal": 0x2,
		"passcode_internal":    0x4,
		"voiceprint_internal":  0x8,
		"faceprint_internal":   0x10,
		"location_internal":    0x20,
		"eyeprint_internal":    0x40,
		"pattern_internal":     0x80,
		"handprint_internal":   0x100,
		"none":                 0x200,
		"all":                  0x400,
		"passcode_external":    0x800,
		"pattern_external":     0x1000,
	})
	keyProtectionTable = newTable(map[string]uint32{
		"software": 0x1, "hardware": 0x2, "tee": 0x4, "secure_element": 0x8, "remote_handle": 0x10,
	})
	matcherProtectionTable = newTable(map[string]uint32{
		"software": 0x1, "tee": 0x2, "on_chip": 0x4,
	})
	attachmentHintTable = newTable(map[string]uint32{
		"internal": 0x1, "external": 0x2, "wired": 0x4, "wireless": 0x8, "nfc": 0x10,
		"bluetooth": 0x20, "network": 0x40, "ready": 0x80, "wifi_direct": 0x100,
	})
	tcDisplayTable = newTable(map[string]uint32{
		"any": 0x1, "privileged_software": 0x2, "tee": 0x4, "hardware": 0x8, "remote": 0x10,
	})
	algorithmTable = newTable(map[string]uint32{
		"secp256r1_ecdsa_sha256_raw": 0x0001,
		"secp256r1_ecdsa_sha256_der": 0x0002,
		"rsassa_pss_sha256_raw":      0x0003,
		"rsassa_pss_sha256_der":      0x0004,
		"secp256k1_ecdsa_sha256_raw": 0x0005,
		"secp256k1_ecdsa_sha256_der": 0x0006,
		"sm2_sm3_raw":                0x0007,
		"rsa_emsa_pkcs1_sha256_raw":  0x0008,
		"rsa_emsa_pkcs1_sha256_der":  0x0009,
		"rsassa_pss_sha384_raw":      0x000A,
		"rsassa_pss_sha512_raw":      0x000B,
		"rsassa_pkcsv15_sha256_raw":  0x000C,
		"rsassa_pkcsv15_sha384_raw":  0x000D,
		"rsassa_pkcsv15_sha512_raw":  0x000E,
		"rsassa_pkcsv15_sha1_raw":    0x000F,
		"secp384r1_ecdsa_sha384_raw": 0x0010,
		"secp521r1_ecdsa_sha512_raw": 0x0011,
		"ed25519_eddsa_sha512_raw":   0x0012,
		"ed448_eddsa_sha512_raw":     0x0013,
	})
	keyEncodingTable = newTable(map[string]uint32{
		"ecc_x962_raw": 0x0100,
		"ecc_x962_der": 0x0101,
		"rsa_2048_raw": 0x0102,
		"rsa_2048_der": 0x0103,
		"cose":         0x0104,
	})
	attestationTable = newTable(map[string]uint32{
		"basic_full":      0x3E07,
		"basic_surrogate": 0x3E08,
		"ecdaa":           0x3E09,
		"attca":           0x3E0A,
		"none":            0x3E0B,
		"anonca":          0x3E0C,
	})
)

// coseAlgorithms maps ALG_SIGN_* values to COSE algorithm identifiers
// (metadata.md §6). Algorithms without a COSE identifier are absent.
var coseAlgorithms = map[uint16]int64{
	AlgSignSecp256r1ECDSASHA256Raw: -7,
	AlgSignSecp256r1ECDSASHA256DER: -7,
	AlgSignRSASSAPSSSHA256Raw:      -37,
	AlgSignRSASSAPSSSHA256DER:      -37,
	AlgSignSecp256k1ECDSASHA256Raw: -47,
	AlgSignSecp256k1ECDSASHA256DER: -47,
	AlgSignRSAEMSAPKCS1SHA256Raw:   -257,
	AlgSignRSAEMSAPKCS1SHA256DER:   -257,
	AlgSignRSASSAPSSSHA384Raw:      -38,
	AlgSignRSASSAPSSSHA512Raw:      -39,
	AlgSignRSASSAPKCSv15SHA256Raw:  -257,
	AlgSignRSASSAPKCSv15SHA384Raw:  -258,
	AlgSignRSASSAPKCSv15SHA512Raw:  -259,
	AlgSignRSASSAPKCSv15SHA1Raw:    -65535,
	AlgSignSecp384r1ECDSASHA384Raw: -35,
	AlgSignSecp521r1ECDSASHA512Raw: -36,
	AlgSignEd25519EdDSASHA512Raw:   -8,
}

// COSEAlgorithm returns the COSE algorithm identifier (RFC 9053) that
// corresponds to the ALG_SIGN_* value alg, used to match a FIDO2 credential's
// algorithm against a statement's AuthenticationAlgorithms. ok is false when
// the algorithm has no COSE equivalent (SM2, Ed448) or is unknown.
func COSEAlgorithm(alg uint16) (cose int64, ok bool) {
	cose, ok = coseAlgorithms[alg]
	return cose, ok
}

// UserVerificationByName returns the USER_VERIFY_* flag for an MDS3 short
// name such as "fingerprint_internal" (case-insensitive).
func UserVerificationByName(name string) (uint32, bool) { return userVerificationTable.value(name) }

// UserVerificationNames returns the short names of the USER_VERIFY_* bits set
// in v, in ascending bit order.
func UserVerificationNames(v uint32) []string { return userVerificationTable.flagNames(v) }

// KeyProtectionByName returns the KEY_PROTECTION_* flag for an MDS3 short name
// such as "hardware".
func KeyProtectionByName(name string) (uint16, bool) {
	v, ok := keyProtectionTable.value(name)
	return uint16(v), ok
}

// KeyProtectionNames returns the short names of the bits set in v.
func KeyProtectionNames(v uint16) []string { return keyProtectionTable.flagNames(uint32(v)) }

// MatcherProtectionByName returns the MATCHER_PROTECTION_* flag for an MDS3
// short name such as "on_chip".
func MatcherProtectionByName(name string) (uint16, bool) {
	v, ok := matcherProtectionTable.value(name)
	return uint16(v), ok
}

// MatcherProtectionNames returns the short names of the bits set in v.
func MatcherProtectionNames(v uint16) []string { return matcherProtectionTable.flagNames(uint32(v)) }

// AttachmentHintByName returns the ATTACHMENT_HINT_* flag for an MDS3 short
// name such as "nfc".
func AttachmentHintByName(name string) (uint32, bool) { return attachmentHintTable.value(name) }

// AttachmentHintNames returns the short names of the bits set in v.
func AttachmentHintNames(v uint32) []string { return attachmentHintTable.flagNames(v) }

// TcDisplayByName returns the TRANSACTION_CONFIRMATION_DISPLAY_* flag for an
// MDS3 short name such as "privileged_software".
func TcDisplayByName(name string) (uint16, bool) {
	v, ok := tcDisplayTable.value(name)
	return uint16(v), ok
}

// TcDisplayNames returns the short names of the bits set in v.
func TcDisplayNames(v uint16) []string { return tcDisplayTable.flagNames(uint32(v)) }

// AlgorithmByName returns the ALG_SIGN_* value for an MDS3 short name such as
// "secp256r1_ecdsa_sha256_raw".
func AlgorithmByName(name string) (uint16, bool) {
	v, ok := algorithmTable.value(name)
	return uint16(v), ok
}

// AlgorithmName returns the MDS3 short name of an ALG_SIGN_* value, or "" if
// it is unknown.
func AlgorithmName(alg uint16) string { return algorithmTable.byValue[uint32(alg)] }

// KeyEncodingByName returns the ALG_KEY_* value for an MDS3 short name such as
// "ecc_x962_raw".
func KeyEncodingByName(name string) (uint16, bool) {
	v, ok := keyEncodingTable.value(name)
	return uint16(v), ok
}

// KeyEncodingName returns the MDS3 short name of an ALG_KEY_* value, or "".
func KeyEncodingName(enc uint16) string { return keyEncodingTable.byValue[uint32(enc)] }

// AttestationTypeByName returns the TAG_ATTESTATION_* value for an MDS3 short
// name such as "basic_full".
func AttestationTypeByName(name string) (uint16, bool) {
	v, ok := attestationTable.value(name)
	return uint16(v), ok
}

// AttestationTypeName returns the MDS3 short name of a TAG_ATTESTATION_*
// value, or "".
func AttestationTypeName(t uint16) string { return attestationTable.byValue[uint32(t)] }
