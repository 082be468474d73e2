package metadata

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// dateLayout is the ISO 8601 date format MDS uses for effectiveDate,
// nextUpdate and timeOfLastStatusChange.
const dateLayout = "2006-01-02"

// maxStatementSize bounds one statement's JSON (icons make them large; the
// biggest in the 2022 conformance BLOB is well below this).
const maxStatementSize = 4 << 20

// Version is a protocol version (UAF Protocol §3.1.1 Version, also used for
// the statement's upv list).
type Version struct {
	Major uint16 `json:"major"`
	Minor uint16 `json:"minor"`
}

// CodeAccuracyDescriptor describes a PIN/passcode verifier (Metadata
// Statement §3.1).
type CodeAccuracyDescriptor struct {
	Base          uint16 `json:"base"`
	MinLength     uint16 `json:"minLength"`
	MaxRetries    uint16 `json:"maxRetries,omitempty"`
	BlockSlowdown uint16 `json:"blockSlowdown,omitempty"`
}

// BiometricAccuracyDescriptor describes a biometric verifier (Metadata
// Statement §3.2).
type BiometricAccuracyDescriptor struct {
	SelfAttestedFRR float64 `json:"selfAttestedFRR,omitempty"`
	SelfAttestedFAR float64 `json:"selfAttestedFAR,omitempty"`
	MaxTemplates    uint32  `json:"maxTemplates,omitempty"`
	MaxRetries      uint16  `json:"maxRetries,omitempty"`
	BlockSlowdown   uint16  `json:"blockSlowdown,omitempty"`
}

// PatternAccuracyDescriptor describes a pattern verifier (Metadata Statement
// §3.3).
type PatternAccuracyDescriptor struct {
	MinComplexity uint64 `json:"minComplexity"`
	MaxRetries    uint16 `json:"maxRetries,omitempty"`
	BlockSlowdown uint16 `json:"blockSlowdown,omitempty"`
}

// VerificationMethod is one VerificationMethodDescriptor (Metadata Statement
// §3.4). UserVerificationMethod is the USER_VERIFY_* flag, whichever dialect
// the statement used (UAF `userVerification` number or MDS3
// `userVerificationMethod` string).
type VerificationMethod struct {
	UserVerificationMethod uint32
	CaDesc                 *CodeAccuracyDescriptor
	BaDesc                 *BiometricAccuracyDescriptor
	PaDesc                 *PatternAccuracyDescriptor
}

// DisplayPNGCharacteristics is one DisplayPNGCharacteristicsDescriptor
// (Metadata Statement §3.8), kept as in the JSON.
type DisplayPNGCharacteristics struct {
	Width       uint32          `json:"width"`
	Height      uint32          `json:"height"`
	BitDepth    uint8           `json:"bitDepth"`
	ColorType   uint8           `json:"colorType"`
	Compression uint8           `json:"compression"`
	Filter      uint8           `json:"filter"`
	Interlace   uint8           `json:"interlace"`
	Plte        json.RawMessage `json:"plte,omitempty"`
}

// DisabledRoot is an attestationRootCertificates element that could not be
// used. DER holds the decoded bytes when base64 decoding succeeded (so a
// caller may still extract a raw SubjectPublicKeyInfo), else nil.
type DisabledRoot struct {
	Index  int
	DER    []byte
	Reason string
}

// Statement is a normalised metadata statement (FIDO Metadata Statement
// 3.x, or the UAF 1.1 form). Registry values are numeric whichever dialect
// the JSON used; flag sets are OR-ed into one bit field.
//
// A Statement is immutable once returned by this package: it may be shared by
// concurrent readers and must not be modified.
type Statement struct {
	// AAID is the UAF authenticator identifier "VVVV#MMMM" in its original
	// case; compare case-insensitively (see [Set.ByAAID]).
	AAID string
	// AAGUID is the FIDO2 authenticator model GUID; zero when absent.
	AAGUID AAGUID
	// AttestationCertificateKeyIdentifiers are lowercase hex SHA-1 key
	// identifiers of U2F (and some FIDO2) attestation certificates.
	AttestationCertificateKeyIdentifiers []string

	Description             string
	AlternativeDescriptions map[string]string
	LegalHeader             string
	// AuthenticatorVersion is the earliest trustworthy firmware version.
	AuthenticatorVersion uint32
	// ProtocolFamily is "uaf", "u2f" or "fido2"; UAF-era statements
	// without the field default to "uaf".
	ProtocolFamily string
	Schema         uint16
	Upv            []Version
	// AssertionScheme is the UAF-era `assertionScheme` ("UAFV1TLV"); MDS3
	// dropped it, in which case it is "UAFV1TLV" for protocolFamily uaf and
	// "" otherwise.
	AssertionScheme string

	// AuthenticationAlgorithms are ALG_SIGN_* values.
	AuthenticationAlgorithms []uint16
	// PublicKeyAlgAndEncodings are ALG_KEY_* values.
	PublicKeyAlgAndEncodings []uint16
	// AttestationTypes are TAG_ATTESTATION_* values (0x3E07 basic_full …).
	AttestationTypes []uint16
	// UserVerificationDetails is an OR of AND-combinations.
	UserVerificationDetails [][]VerificationMethod
	// KeyProtection, MatcherProtection, AttachmentHint and TcDisplay are
	// flag sets (OR of the listed flags).
	KeyProtection               uint16
	MatcherProtection           uint16
	CryptoStrength              uint16
	AttachmentHint              uint32
	TcDisplay                   uint16
	TcDisplayContentType        string
	TcDisplayPNGCharacteristics []DisplayPNGCharacteristics

	IsKeyRestricted bool
	// IsFreshUserVerificationRequired defaults to true when absent.
	IsFreshUserVerificationRequired bool
	// IsSecondFactorOnly comes from the UAF-era field; for MDS3 statements
	// (which dropped it) it is true for protocolFamily "u2f", else false.
	IsSecondFactorOnly bool
	Icon               string

	// AttestationRoots are the parsed attestationRootCertificates trust
	// anchors, in JSON order, without the disabled ones.
	AttestationRoots []*x509.Certificate
	// DisabledRoots lists the anchors that failed to decode or parse; each
	// also has a [Warning].
	DisabledRoots []DisabledRoot

	// AuthenticatorGetInfo, SupportedExtensions and EcdaaTrustAnchors are
	// kept as raw JSON (nil when absent).
	AuthenticatorGetInfo json.RawMessage
	SupportedExtensions  json.RawMessage
	EcdaaTrustAnchors    json.RawMessage

	// StatusReports and TimeOfLastStatusChange come from the MDS BLOB entry
	// the statement was taken from; they are empty for local statements.
	StatusReports          []StatusReport
	TimeOfLastStatusChange time.Time

	// Source says where the statement came from: "file:<path>", "inline",
	// "blob:<no>" or "" when parsed from bytes directly.
	Source string
	// Warnings lists the non-fatal problems found while parsing.
	Warnings []Warning
	// Raw is the statement's JSON exactly as received.
	Raw json.RawMessage
}

// HasAttestationType reports whether t (a TAG_ATTESTATION_* value) is listed.
func (s *Statement) HasAttestationType(t uint16) bool { return containsU16(s.AttestationTypes, t) }

// HasAuthenticationAlgorithm reports whether alg (ALG_SIGN_*) is listed.
func (s *Statement) HasAuthenticationAlgorithm(alg uint16) bool {
	return containsU16(s.AuthenticationAlgorithms, alg)
}

// HasPublicKeyAlgAndEncoding reports whether enc (ALG_KEY_*) is listed.
func (s *Statement) HasPublicKeyAlgAndEncoding(enc uint16) bool {
	return containsU16(s.PublicKeyAlgAndEncodings, enc)
}

// UserVerificationCombinations returns one USER_VERIFY_* value per
// AND-combination of UserVerificationDetails: the OR of its methods, plus
// [UserVerifyAll] when it has more than one method (uaf-protocol.md §4).
func (s *Statement) UserVerificationCombinations() []uint32 {
	out := make([]uint32, 0, len(s.UserVerificationDetails))
	for _, combo := range s.UserVerificationDetails {
		var v uint32
		for _, m := range combo {
			v |= m.UserVerificationMethod
		}
		if len(combo) > 1 {
			v |= UserVerifyAll
		}
		out = append(out, v)
	}
	return out
}

func containsU16(list []uint16, v uint16) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// rawStatement is the union of the UAF 1.1 and MDS3 JSON fields. Registry
// fields are json.RawMessage because their type differs between dialects.
type rawStatement struct {
	LegalHeader                          string            `json:"legalHeader"`
	AAID                                 string            `json:"aaid"`
	AAGUID                               string            `json:"aaguid"`
	AttestationCertificateKeyIdentifiers []string          `json:"attestationCertificateKeyIdentifiers"`
	Description                          string            `json:"description"`
	AlternativeDescriptions              map[string]string `json:"alternativeDescriptions"`
	AuthenticatorVersion                 uint32            `json:"authenticatorVersion"`
	ProtocolFamily                       string            `json:"protocolFamily"`
	Schema                               uint16            `json:"schema"`
	Upv                                  []Version         `json:"upv"`
	AssertionScheme                      string            `json:"assertionScheme"`

	AuthenticationAlgorithm  json.RawMessage `json:"authenticationAlgorithm"`
	AuthenticationAlgorithms json.RawMessage `json:"authenticationAlgorithms"`
	PublicKeyAlgAndEncoding  json.RawMessage `json:"publicKeyAlgAndEncoding"`
	PublicKeyAlgAndEncodings json.RawMessage `json:"publicKeyAlgAndEncodings"`
	AttestationTypes         json.RawMessage `json:"attestationTypes"`
	UserVerificationDetails  [][]rawMethod   `json:"userVerificationDetails"`
	KeyProtection            json.RawMessage `json:"keyProtection"`
	MatcherProtection        json.RawMessage `json:"matcherProtection"`
	CryptoStrength           uint16          `json:"cryptoStrength"`
	AttachmentHint           json.RawMessage `json:"attachmentHint"`
	TcDisplay                json.RawMessage `json:"tcDisplay"`

	TcDisplayContentType            string                      `json:"tcDisplayContentType"`
	TcDisplayPNGCharacteristics     []DisplayPNGCharacteristics `json:"tcDisplayPNGCharacteristics"`
	IsKeyRestricted                 *bool                       `json:"isKeyRestricted"`
	IsFreshUserVerificationRequired *bool                       `json:"isFreshUserVerificationRequired"`
	IsSecondFactorOnly              *bool                       `json:"isSecondFactorOnly"`
	AttestationRootCertificates     []string                    `json:"attestationRootCertificates"`
	EcdaaTrustAnchors               json.RawMessage             `json:"ecdaaTrustAnchors"`
	Icon                            string                      `json:"icon"`
	SupportedExtensions             json.RawMessage             `json:"supportedExtensions"`
	AuthenticatorGetInfo            json.RawMessage             `json:"authenticatorGetInfo"`
}

type rawMethod struct {
	UserVerification       json.RawMessage              `json:"userVerification"`
	UserVerificationMethod json.RawMessage              `json:"userVerificationMethod"`
	CaDesc                 *CodeAccuracyDescriptor      `json:"caDesc"`
	BaDesc                 *BiometricAccuracyDescriptor `json:"baDesc"`
	PaDesc                 *PatternAccuracyDescriptor   `json:"paDesc"`
}

// ParseStatement decodes one metadata statement in either dialect (UAF 1.1
// numeric or MDS3 string form). It fails with [ErrInvalidStatement] when the
// JSON is malformed, a registry value is out of range, an identifier is
// malformed, or the statement has no identifier (aaid, aaguid or
// attestationCertificateKeyIdentifiers). Attestation roots that fail to
// decode or parse do not fail the statement: they are listed in
// DisabledRoots and Warnings.
func ParseStatement(data []byte) (*Statement, error) {
	return parseStatement(data, entryKeys{})
}

// entryKeys are identifiers an MDS BLOB entry carries next to its statement;
// they fill in identifiers the statement omits.
type entryKeys struct {
	aaid   string
	aaguid string
	ackis  []string
}

func parseStatement(data []byte, keys entryKeys) (*Statement, error) {
	if len(data) > maxStatementSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds the %d byte limit", ErrInvalidStatement, len(data), maxStatementSize)
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, fmt.Errorf("%w: not a JSON object", ErrInvalidStatement)
	}
	var r rawStatement
	if err := json.Unmarshal(trimmed, &r); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidStatement, err)
	}
	s := &Statement{
		Description:                     r.Description,
		AlternativeDescriptions:         r.AlternativeDescriptions,
		LegalHeader:                     r.LegalHeader,
		AuthenticatorVersion:            r.AuthenticatorVersion,
		ProtocolFamily:                  strings.ToLower(strings.TrimSpace(r.ProtocolFamily)),
		Schema:                          r.Schema,
		Upv:                             r.Upv,
		AssertionScheme:                 r.AssertionScheme,
		CryptoStrength:                  r.CryptoStrength,
		TcDisplayContentType:            r.TcDisplayContentType,
		TcDisplayPNGCharacteristics:     r.TcDisplayPNGCharacteristics,
		IsFreshUserVerificationRequired: true,
		Icon:                            r.Icon,
		AuthenticatorGetInfo:            nonNull(r.AuthenticatorGetInfo),
		SupportedExtensions:             nonNull(r.SupportedExtensions),
		EcdaaTrustAnchors:               nonNull(r.EcdaaTrustAnchors),
		Raw:                             append(json.RawMessage(nil), trimmed...),
	}
	if r.IsKeyRestricted != nil {
		s.IsKeyRestricted = *r.IsKeyRestricted
	}
	if r.IsFreshUserVerificationRequired != nil {
		s.IsFreshUserVerificationRequired = *r.IsFreshUserVerificationRequired
	}
	if s.ProtocolFamily == "" {
		// UAF 1.1 statements predate protocolFamily; its absence means uaf.
		s.ProtocolFamily = "uaf"
	}
	if r.IsSecondFactorOnly != nil {
		s.IsSecondFactorOnly = *r.IsSecondFactorOnly
	} else {
		s.IsSecondFactorOnly = s.ProtocolFamily == "u2f"
	}
	if s.AssertionScheme == "" && s.ProtocolFamily == "uaf" {
		s.AssertionScheme = "UAFV1TLV"
	}

	// Identifiers: the statement's own, else the BLOB entry's.
	aaid := strings.TrimSpace(r.AAID)
	if entryAAID := strings.TrimSpace(keys.aaid); aaid == "" {
		aaid = entryAAID
	} else if entryAAID != "" && !strings.EqualFold(aaid, entryAAID) {
		s.warn("aaid", fmt.Sprintf("entry aaid %q differs from the statement's; statement value used", truncate(entryAAID)))
	}
	if aaid != "" {
		if !validAAID(aaid) {
			return nil, fmt.Errorf("%w: aaid %q is not VVVV#MMMM hex", ErrInvalidStatement, truncate(aaid))
		}
		s.AAID = aaid
	}
	guid := strings.TrimSpace(r.AAGUID)
	if guid == "" {
		guid = strings.TrimSpace(keys.aaguid)
	}
	if guid != "" {
		g, err := ParseAAGUID(guid)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidStatement, err)
		}
		s.AAGUID = g
		if eg, err := ParseAAGUID(keys.aaguid); err == nil && eg != g {
			s.warn("aaguid", fmt.Sprintf("entry aaguid %s differs from the statement's; statement value used", eg))
		}
	}
	for i, k := range r.AttestationCertificateKeyIdentifiers {
		norm, err := normaliseKeyIdentifier(k)
		if err != nil {
			return nil, fmt.Errorf("%w: attestationCertificateKeyIdentifiers[%d]: %w", ErrInvalidStatement, i, err)
		}
		s.AttestationCertificateKeyIdentifiers = appendUniqueString(s.AttestationCertificateKeyIdentifiers, norm)
	}
	// The entry's identifiers (already normalised) are added to the
	// statement's: both are lookup keys (metadata.md §13 rule 6).
	for _, k := range keys.ackis {
		s.AttestationCertificateKeyIdentifiers = appendUniqueString(s.AttestationCertificateKeyIdentifiers, k)
	}
	if s.AAID == "" && s.AAGUID.IsZero() && len(s.AttestationCertificateKeyIdentifiers) == 0 {
		return nil, fmt.Errorf("%w: no aaid, aaguid or attestationCertificateKeyIdentifiers", ErrInvalidStatement)
	}

	var err error
	// Registry values: UAF-era singular numbers, MDS2 arrays of numbers,
	// MDS3 arrays of strings. Plural wins when both are present.
	algs := r.AuthenticationAlgorithms
	if len(nonNull(algs)) == 0 {
		algs = r.AuthenticationAlgorithm
	}
	if s.AuthenticationAlgorithms, err = s.decodeList("authenticationAlgorithms", algs, algorithmTable); err != nil {
		return nil, err
	}
	encs := r.PublicKeyAlgAndEncodings
	if len(nonNull(encs)) == 0 {
		encs = r.PublicKeyAlgAndEncoding
	}
	if s.PublicKeyAlgAndEncodings, err = s.decodeList("publicKeyAlgAndEncodings", encs, keyEncodingTable); err != nil {
		return nil, err
	}
	if s.AttestationTypes, err = s.decodeList("attestationTypes", r.AttestationTypes, attestationTable); err != nil {
		return nil, err
	}
	if len(s.AttestationTypes) == 0 {
		s.warn("attestationTypes", "none known: the statement vouches for no attestation type")
	}
	var v uint32
	if v, err = s.decodeFlags("keyProtection", r.KeyProtection, keyProtectionTable, 0xFFFF); err != nil {
		return nil, err
	}
	s.KeyProtection = uint16(v)
	if v, err = s.decodeFlags("matcherProtection", r.MatcherProtection, matcherProtectionTable, 0xFFFF); err != nil {
		return nil, err
	}
	s.MatcherProtection = uint16(v)
	if s.AttachmentHint, err = s.decodeFlags("attachmentHint", r.AttachmentHint, attachmentHintTable, 0xFFFFFFFF); err != nil {
		return nil, err
	}
	if v, err = s.decodeFlags("tcDisplay", r.TcDisplay, tcDisplayTable, 0xFFFF); err != nil {
		return nil, err
	}
	s.TcDisplay = uint16(v)
	if s.TcDisplay != 0 && s.TcDisplayContentType == "" {
		s.warn("tcDisplayContentType", "missing although tcDisplay is set")
	}

	for i, combo := range r.UserVerificationDetails {
		methods := make([]VerificationMethod, 0, len(combo))
		for j, m := range combo {
			field := fmt.Sprintf("userVerificationDetails[%d][%d]", i, j)
			raw := m.UserVerificationMethod
			if len(nonNull(raw)) == 0 {
				raw = m.UserVerification
			}
			uv, err := s.decodeFlags(field, raw, userVerificationTable, 0xFFFFFFFF)
			if err != nil {
				return nil, err
			}
			if uv == 0 {
				s.warn(field, "no known user verification method")
				continue
			}
			methods = append(methods, VerificationMethod{
				UserVerificationMethod: uv, CaDesc: m.CaDesc, BaDesc: m.BaDesc, PaDesc: m.PaDesc,
			})
		}
		if len(methods) > 0 {
			s.UserVerificationDetails = append(s.UserVerificationDetails, methods)
		}
	}

	s.parseRoots(r.AttestationRootCertificates)
	return s, nil
}

// parseRoots decodes each anchor on its own; a bad one is disabled with a
// warning and never affects the others (metadata.md §9).
func (s *Statement) parseRoots(roots []string) {
	for i, enc := range roots {
		field := fmt.Sprintf("attestationRootCertificates[%d]", i)
		der, err := decodeBase64(enc)
		if err != nil {
			s.disableRoot(i, nil, field, "base64: "+err.Error())
			continue
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			s.disableRoot(i, der, field, err.Error())
			continue
		}
		s.AttestationRoots = append(s.AttestationRoots, cert)
	}
}

func (s *Statement) disableRoot(i int, der []byte, field, reason string) {
	s.DisabledRoots = append(s.DisabledRoots, DisabledRoot{Index: i, DER: der, Reason: reason})
	s.warn(field, "root disabled: "+reason)
}

func (s *Statement) warn(field, reason string) {
	s.Warnings = append(s.Warnings, Warning{Field: field, Reason: reason})
}

// decodeBase64 trims surrounding whitespace (real statements have leading
// spaces and trailing newlines) and accepts padded or unpadded standard
// base64, the alphabet the spec mandates.
func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("empty")
	}
	if b, err := base64.StdEncoding.Strict().DecodeString(s); err == nil {
		return b, nil
	}
	b, err := base64.RawStdEncoding.Strict().DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, err
	}
	return b, nil
}

// flexValue is one registry value in either dialect.
type flexValue struct {
	num   uint64
	isNum bool
	str   string
}

// decodeFlex accepts null, a number, a string, or an array of numbers and
// strings.
func decodeFlex(raw json.RawMessage) ([]flexValue, error) {
	raw = nonNull(raw)
	if len(raw) == 0 {
		return nil, nil
	}
	var elems []json.RawMessage
	if raw[0] == '[' {
		if err := json.Unmarshal(raw, &elems); err != nil {
			return nil, err
		}
	} else {
		elems = []json.RawMessage{raw}
	}
	out := make([]flexValue, 0, len(elems))
	for _, e := range elems {
		e = bytes.TrimSpace(e)
		if len(e) == 0 {
			continue
		}
		switch {
		case e[0] == '"':
			var str string
			if err := json.Unmarshal(e, &str); err != nil {
				return nil, err
			}
			out = append(out, flexValue{str: str})
		default:
			n, err := strconv.ParseUint(string(e), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("value %s is neither a registry name nor an unsigned integer", truncate(string(e)))
			}
			out = append(out, flexValue{num: n, isNum: true})
		}
	}
	return out, nil
}

// decodeList decodes a list of 16-bit registry values. Unknown names are
// dropped with a warning (the registry grows; parsing stays lenient);
// numbers are kept as given when they fit in 16 bits.
func (s *Statement) decodeList(field string, raw json.RawMessage, t table) ([]uint16, error) {
	vals, err := decodeFlex(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidStatement, field, err)
	}
	var out []uint16
	for i, fv := range vals {
		if fv.isNum {
			if fv.num > 0xFFFF {
				return nil, fmt.Errorf("%w: %s[%d]: %d does not fit in 16 bits", ErrInvalidStatement, field, i, fv.num)
			}
			out = appendUnique(out, uint16(fv.num))
			continue
		}
		v, ok := t.value(fv.str)
		if !ok {
			s.warn(fmt.Sprintf("%s[%d]", field, i), fmt.Sprintf("unknown value %q ignored", truncate(fv.str)))
			continue
		}
		out = appendUnique(out, uint16(v))
	}
	return out, nil
}

// decodeFlags decodes a flag set: a number (UAF: already OR-ed), a name, or
// an array of either, OR-ed together.
func (s *Statement) decodeFlags(field string, raw json.RawMessage, t table, limit uint64) (uint32, error) {
	vals, err := decodeFlex(raw)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %w", ErrInvalidStatement, field, err)
	}
	var out uint32
	for _, fv := range vals {
		if fv.isNum {
			if fv.num > limit {
				return 0, fmt.Errorf("%w: %s: %d out of range", ErrInvalidStatement, field, fv.num)
			}
			out |= uint32(fv.num)
			continue
		}
		v, ok := t.value(fv.str)
		if !ok {
			s.warn(field, fmt.Sprintf("unknown value %q ignored", truncate(fv.str)))
			continue
		}
		out |= v
	}
	return out, nil
}

func appendUniqueString(list []string, v string) []string {
	for _, x := range list {
		if x == v {
			return list
		}
	}
	return append(list, v)
}

func appendUnique(list []uint16, v uint16) []uint16 {
	if containsU16(list, v) {
		return list
	}
	return append(list, v)
}

func nonNull(raw json.RawMessage) json.RawMessage {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	return raw
}

// validAAID reports whether s is "VVVV#MMMM" with hex digits of either case
// (UAF Protocol §3.1.4).
func validAAID(s string) bool {
	if len(s) != 9 || s[4] != '#' {
		return false
	}
	for i := 0; i < 9; i++ {
		if i == 4 {
			continue
		}
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// normaliseKeyIdentifier checks a hex key identifier (SHA-1, 20 bytes) and
// returns it in lowercase.
func normaliseKeyIdentifier(k string) (string, error) {
	k = strings.ToLower(strings.TrimSpace(k))
	b, err := hex.DecodeString(k)
	if err != nil || len(b) != 20 {
		return "", fmt.Errorf("key identifier %q is not 40 hex digits", truncate(k))
	}
	return k, nil
}

// truncate keeps untrusted input short in error messages.
func truncate(s string) string {
	const limit = 64
	if len(s) > limit {
		return strings.ToValidUTF8(s[:limit], "") + "…"
	}
	return s
}
