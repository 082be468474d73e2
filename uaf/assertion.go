package uaf

import (
	"bytes"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
)

// TLV length rules (UAF Authenticator Commands §4, UAF Protocol §3.4.6.5).
const (
	AAIDLen              = 9
	RegAssertionInfoLen  = 7
	AuthAssertionInfoLen = 5
	RegCountersLen       = 8
	AuthCountersLen      = 4
	MinNonceLen          = 8
	// MinKeyIDLen is the smallest KeyID accepted; the specification allows
	// 32..2048 bytes and the conformance authenticators use 32.
	MinKeyIDLen = 32
	// MaxKeyIDLen is the largest KeyID accepted.
	MaxKeyIDLen = 2048
	// MaxCertificates bounds the TAG_ATTESTATION_CERT elements of one assertion.
	MaxCertificates = 8
	// MaxExtensions bounds the extensions of one KRD or SIGNED_DATA.
	MaxExtensions = 16
)

// Authentication modes of ASSERTION_INFO.
const (
	// ModeUserVerified: the user was verified (registration, plain login).
	ModeUserVerified uint8 = 0x01
	// ModeTransactionConfirmed: the user was verified and saw the transaction.
	ModeTransactionConfirmed uint8 = 0x02
)

// TLVExtension is a TAG_EXTENSION (Critical) or TAG_EXTENSION_NON_CRITICAL
// found in a KRD or SIGNED_DATA. A server must reject an assertion carrying a
// critical extension it does not understand.
type TLVExtension struct {
	ID       string
	Data     []byte
	Critical bool
}

// KeyRegistrationData is the content of TAG_UAFV1_KRD (UAF Authenticator
// Commands §4.2.1). Marshal it, sign the result, then call
// [AssembleRegAssertion].
type KeyRegistrationData struct {
	AAID                 string
	AuthenticatorVersion uint16
	AuthenticationMode   uint8
	SignAlg              Alg
	PubKeyEncoding       KeyEncoding
	FinalChallengeHash   []byte
	KeyID                []byte
	SignCounter          uint32
	RegCounter           uint32
	PubKey               []byte
	Extensions           []TLVExtension
}

// SignedData is the content of TAG_UAFV1_SIGNED_DATA (UAF Authenticator
// Commands §4.3.1). TransactionContentHash is empty without a transaction.
type SignedData struct {
	AAID                   string
	AuthenticatorVersion   uint16
	AuthenticationMode     uint8
	SignAlg                Alg
	Nonce                  []byte
	FinalChallengeHash     []byte
	TransactionContentHash []byte
	KeyID                  []byte
	SignCounter            uint32
	Extensions             []TLVExtension
}

// RegAssertion is a parsed TAG_UAFV1_REG_ASSERTION.
type RegAssertion struct {
	KeyRegistrationData
	// Raw is the complete assertion TLV.
	Raw []byte
	// RawKRD is the complete TAG_UAFV1_KRD TLV (tag, length, value): the
	// attestation signature input.
	RawKRD []byte
	// AttestationType is the tag of the attestation block.
	AttestationType AttestationType
	// Signature is the TAG_SIGNATURE of the attestation block.
	Signature []byte
	// Certificates are the DER TAG_ATTESTATION_CERT values, leaf first
	// (Basic Full only).
	Certificates [][]byte
}

// AuthAssertion is a parsed TAG_UAFV1_AUTH_ASSERTION.
type AuthAssertion struct {
	SignedData
	// Raw is the complete assertion TLV.
	Raw []byte
	// RawSignedData is the complete TAG_UAFV1_SIGNED_DATA TLV: the signature
	// input.
	RawSignedData []byte
	// Signature is the TAG_SIGNATURE.
	Signature []byte
}

func tlvErr(sentinel error, format string, args ...any) *Error {
	return contentErr(sentinel, "tlv: "+format, args...)
}

// fields indexes the children of a composite TLV, refusing duplicates of
// single tags and tags outside allowed.
type fields struct {
	single map[Tag][]byte
	multi  map[Tag][]element
}

func collect(parent Tag, children []element, allowed map[Tag]bool, repeatable map[Tag]bool) (*fields, error) {
	f := &fields{single: map[Tag][]byte{}, multi: map[Tag][]element{}}
	for _, c := range children {
		if !allowed[c.tag] {
			return nil, tlvErr(ErrUnexpectedTag, "%v inside %v", c.tag, parent)
		}
		if repeatable[c.tag] {
			f.multi[c.tag] = append(f.multi[c.tag], c)
			continue
		}
		if _, dup := f.single[c.tag]; dup {
			return nil, tlvErr(ErrDuplicateTag, "%v twice inside %v", c.tag, parent)
		}
		f.single[c.tag] = c.value
	}
	return f, nil
}

// need returns the value of a mandatory single tag with a length in [min,max]
// (max 0: unbounded).
func (f *fields) need(t Tag, min, max int) ([]byte, error) {
	v, ok := f.single[t]
	if !ok {
		return nil, tlvErr(ErrMissingTag, "%v missing", t)
	}
	if len(v) < min || (max > 0 && len(v) > max) {
		if min == max {
			return nil, tlvErr(ErrLength, "%v has %d bytes, want %d", t, len(v), min)
		}
		return nil, tlvErr(ErrLength, "%v has %d bytes, want %d..%d", t, len(v), min, max)
	}
	return v, nil
}

func (f *fields) extensions() ([]TLVExtension, error) {
	var out []TLVExtension
	n := len(f.multi[TagExtension]) + len(f.multi[TagExtensionNonCritical])
	if n > MaxExtensions {
		return nil, tlvErr(ErrTooLarge, "%d extensions", n)
	}
	for _, t := range []Tag{TagExtension, TagExtensionNonCritical} {
		for _, e := range f.multi[t] {
			ch, err := readAll(e.value)
			if err != nil {
				return nil, err
			}
			ef, err := collect(t, ch, map[Tag]bool{TagExtensionID: true, TagExtensionData: true}, nil)
			if err != nil {
				return nil, err
			}
			id, err := ef.need(TagExtensionID, 1, 32)
			if err != nil {
				return nil, err
			}
			data, err := ef.need(TagExtensionData, 0, 0)
			if err != nil {
				return nil, err
			}
			out = append(out, TLVExtension{ID: string(id), Data: data, Critical: t == TagExtension})
		}
	}
	return out, nil
}

func validAAID(a []byte) bool {
	if len(a) != AAIDLen || a[4] != '#' {
		return false
	}
	for i, c := range a {
		if i == 4 {
			continue
		}
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// ValidAAID reports whether s has the AAID form "VVVV#MMMM" (hex digits).
func ValidAAID(s string) bool { return validAAID([]byte(s)) }

func aaidOf(f *fields) (string, error) {
	v, err := f.need(TagAAID, AAIDLen, AAIDLen)
	if err != nil {
		return "", err
	}
	if !validAAID(v) {
		return "", tlvErr(ErrValue, "%v %q is not VVVV#MMMM", TagAAID, v)
	}
	return string(v), nil
}

var (
	regOuterTags = map[Tag]bool{TagKRD: true, TagAttestationBasicFull: true, TagAttestationBasicSurrogate: true, TagAttestationECDAA: true}
	krdTags      = map[Tag]bool{TagAAID: true, TagAssertionInfo: true, TagFinalChallengeHash: true, TagKeyID: true,
		TagCounters: true, TagPubKey: true, TagExtension: true, TagExtensionNonCritical: true}
	extTags    = map[Tag]bool{TagExtension: true, TagExtensionNonCritical: true}
	certTags   = map[Tag]bool{TagAttestationCert: true}
	sigOnly    = map[Tag]bool{TagSignature: true}
	fullTags   = map[Tag]bool{TagSignature: true, TagAttestationCert: true}
	authTags   = map[Tag]bool{TagSignedData: true, TagSignature: true}
	signedTags = map[Tag]bool{TagAAID: true, TagAssertionInfo: true, TagAuthenticatorNonce: true,
		TagFinalChallengeHash: true, TagTransactionContentHash: true, TagKeyID: true, TagCounters: true,
		TagExtension: true, TagExtensionNonCritical: true}
)

// ParseRegAssertion parses a TAG_UAFV1_REG_ASSERTION strictly: exact lengths,
// no leftover bytes, every mandatory tag present (AAID 9 bytes, ASSERTION_INFO
// 7 with mode 0x01, FINAL_CHALLENGE_HASH and PUB_KEY non-empty, KEYID
// [MinKeyIDLen]..[MaxKeyIDLen], COUNTERS 8), no duplicate or unknown tags,
// exactly one attestation block (Basic Full: SIGNATURE and 1..MaxCertificates
// certificates; Basic Surrogate and ECDAA: SIGNATURE only). It does not verify
// signatures. Errors are [*Error] with StatusUnacceptableContent.
func ParseRegAssertion(b []byte) (*RegAssertion, error) {
	outer, err := readOuter(b, TagRegAssertion)
	if err != nil {
		return nil, err
	}
	ch, err := readAll(outer.value)
	if err != nil {
		return nil, err
	}
	var krd, att *element
	for i := range ch {
		c := &ch[i]
		if !regOuterTags[c.tag] {
			return nil, tlvErr(ErrUnexpectedTag, "%v inside %v", c.tag, TagRegAssertion)
		}
		if c.tag == TagKRD {
			if krd != nil {
				return nil, tlvErr(ErrDuplicateTag, "%v twice", TagKRD)
			}
			krd = c
			continue
		}
		if att != nil {
			return nil, tlvErr(ErrDuplicateTag, "two attestation blocks")
		}
		att = c
	}
	if krd == nil {
		return nil, tlvErr(ErrMissingTag, "%v missing", TagKRD)
	}
	if att == nil {
		return nil, tlvErr(ErrMissingTag, "attestation block missing")
	}
	a := &RegAssertion{Raw: outer.raw, RawKRD: krd.raw, AttestationType: AttestationType(att.tag)}
	if err := parseKRD(krd.value, &a.KeyRegistrationData); err != nil {
		return nil, err
	}
	ach, err := readAll(att.value)
	if err != nil {
		return nil, err
	}
	allowed := sigOnly
	if att.tag == TagAttestationBasicFull {
		allowed = fullTags
	}
	af, err := collect(att.tag, ach, allowed, certTags)
	if err != nil {
		return nil, err
	}
	if a.Signature, err = af.need(TagSignature, 1, 0); err != nil {
		return nil, err
	}
	if att.tag == TagAttestationBasicFull {
		certs := af.multi[TagAttestationCert]
		if len(certs) == 0 {
			return nil, tlvErr(ErrMissingTag, "%v missing", TagAttestationCert)
		}
		if len(certs) > MaxCertificates {
			return nil, tlvErr(ErrTooLarge, "%d certificates", len(certs))
		}
		for _, c := range certs {
			if len(c.value) == 0 {
				return nil, tlvErr(ErrLength, "empty %v", TagAttestationCert)
			}
			a.Certificates = append(a.Certificates, c.value)
		}
	}
	return a, nil
}

func parseKRD(v []byte, k *KeyRegistrationData) error {
	ch, err := readAll(v)
	if err != nil {
		return err
	}
	f, err := collect(TagKRD, ch, krdTags, extTags)
	if err != nil {
		return err
	}
	if k.AAID, err = aaidOf(f); err != nil {
		return err
	}
	info, err := f.need(TagAssertionInfo, RegAssertionInfoLen, RegAssertionInfoLen)
	if err != nil {
		return err
	}
	k.AuthenticatorVersion = binary.LittleEndian.Uint16(info)
	k.AuthenticationMode = info[2]
	k.SignAlg = Alg(binary.LittleEndian.Uint16(info[3:]))
	k.PubKeyEncoding = KeyEncoding(binary.LittleEndian.Uint16(info[5:]))
	if k.AuthenticationMode != ModeUserVerified {
		return tlvErr(ErrValue, "registration authentication mode 0x%02x, want 0x01", k.AuthenticationMode)
	}
	if k.FinalChallengeHash, err = f.need(TagFinalChallengeHash, 1, 0); err != nil {
		return err
	}
	if k.KeyID, err = f.need(TagKeyID, MinKeyIDLen, MaxKeyIDLen); err != nil {
		return err
	}
	c, err := f.need(TagCounters, RegCountersLen, RegCountersLen)
	if err != nil {
		return err
	}
	k.SignCounter = binary.LittleEndian.Uint32(c)
	k.RegCounter = binary.LittleEndian.Uint32(c[4:])
	if k.PubKey, err = f.need(TagPubKey, 1, 0); err != nil {
		return err
	}
	k.Extensions, err = f.extensions()
	return err
}

// ParseAuthAssertion parses a TAG_UAFV1_AUTH_ASSERTION strictly: SIGNED_DATA
// (AAID 9, ASSERTION_INFO 5 with mode 0x01 or 0x02, NONCE ≥ 8,
// FINAL_CHALLENGE_HASH non-empty, TRANSACTION_CONTENT_HASH present (may be
// empty), KEYID [MinKeyIDLen]..[MaxKeyIDLen], COUNTERS 4) and a non-empty
// SIGNATURE, no duplicates, no unknown tags, no leftover bytes. It does not
// verify the signature.
func ParseAuthAssertion(b []byte) (*AuthAssertion, error) {
	outer, err := readOuter(b, TagAuthAssertion)
	if err != nil {
		return nil, err
	}
	ch, err := readAll(outer.value)
	if err != nil {
		return nil, err
	}
	a := &AuthAssertion{Raw: outer.raw}
	var sd *element
	for i := range ch {
		if ch[i].tag == TagSignedData && sd == nil {
			sd = &ch[i]
		}
	}
	f, err := collect(TagAuthAssertion, ch, authTags, nil)
	if err != nil {
		return nil, err
	}
	if _, err := f.need(TagSignedData, 0, 0); err != nil {
		return nil, err
	}
	if a.Signature, err = f.need(TagSignature, 1, 0); err != nil {
		return nil, err
	}
	a.RawSignedData = sd.raw
	if err := parseSignedData(sd.value, &a.SignedData); err != nil {
		return nil, err
	}
	return a, nil
}

func parseSignedData(v []byte, s *SignedData) error {
	ch, err := readAll(v)
	if err != nil {
		return err
	}
	f, err := collect(TagSignedData, ch, signedTags, extTags)
	if err != nil {
		return err
	}
	if s.AAID, err = aaidOf(f); err != nil {
		return err
	}
	info, err := f.need(TagAssertionInfo, AuthAssertionInfoLen, AuthAssertionInfoLen)
	if err != nil {
		return err
	}
	s.AuthenticatorVersion = binary.LittleEndian.Uint16(info)
	s.AuthenticationMode = info[2]
	s.SignAlg = Alg(binary.LittleEndian.Uint16(info[3:]))
	if s.AuthenticationMode != ModeUserVerified && s.AuthenticationMode != ModeTransactionConfirmed {
		return tlvErr(ErrValue, "authentication mode 0x%02x", s.AuthenticationMode)
	}
	if s.Nonce, err = f.need(TagAuthenticatorNonce, MinNonceLen, 0); err != nil {
		return err
	}
	if s.FinalChallengeHash, err = f.need(TagFinalChallengeHash, 1, 0); err != nil {
		return err
	}
	if s.TransactionContentHash, err = f.need(TagTransactionContentHash, 0, 0); err != nil {
		return err
	}
	if s.KeyID, err = f.need(TagKeyID, MinKeyIDLen, MaxKeyIDLen); err != nil {
		return err
	}
	c, err := f.need(TagCounters, AuthCountersLen, AuthCountersLen)
	if err != nil {
		return err
	}
	s.SignCounter = binary.LittleEndian.Uint32(c)
	s.Extensions, err = f.extensions()
	return err
}

func appendExtensions(w *TLVWriter, exts []TLVExtension) {
	for _, e := range exts {
		var in TLVWriter
		in.Add(TagExtensionID, []byte(e.ID))
		in.Add(TagExtensionData, e.Data)
		b, err := in.Bytes()
		if err != nil {
			w.err = err
			return
		}
		t := TagExtensionNonCritical
		if e.Critical {
			t = TagExtension
		}
		w.Add(t, b)
	}
}

// Marshal returns the complete TAG_UAFV1_KRD TLV in the canonical order
// (AAID, ASSERTION_INFO, FINAL_CHALLENGE_HASH, KEYID, COUNTERS, PUB_KEY,
// extensions): the bytes the attestation key signs. It checks only that every
// value fits a TLV, so tests can build invalid content.
func (k *KeyRegistrationData) Marshal() ([]byte, error) {
	var w TLVWriter
	w.Add(TagAAID, []byte(k.AAID))
	info := binary.LittleEndian.AppendUint16(nil, k.AuthenticatorVersion)
	info = append(info, k.AuthenticationMode)
	info = binary.LittleEndian.AppendUint16(info, uint16(k.SignAlg))
	info = binary.LittleEndian.AppendUint16(info, uint16(k.PubKeyEncoding))
	w.Add(TagAssertionInfo, info)
	w.Add(TagFinalChallengeHash, k.FinalChallengeHash)
	w.Add(TagKeyID, k.KeyID)
	c := binary.LittleEndian.AppendUint32(nil, k.SignCounter)
	w.Add(TagCounters, binary.LittleEndian.AppendUint32(c, k.RegCounter))
	w.Add(TagPubKey, k.PubKey)
	appendExtensions(&w, k.Extensions)
	return wrap(&w, TagKRD)
}

// Marshal returns the complete TAG_UAFV1_SIGNED_DATA TLV in the canonical
// order (AAID, ASSERTION_INFO, NONCE, FINAL_CHALLENGE_HASH,
// TRANSACTION_CONTENT_HASH, KEYID, COUNTERS, extensions): the bytes the UAuth
// key signs.
func (s *SignedData) Marshal() ([]byte, error) {
	var w TLVWriter
	w.Add(TagAAID, []byte(s.AAID))
	info := binary.LittleEndian.AppendUint16(nil, s.AuthenticatorVersion)
	info = append(info, s.AuthenticationMode)
	w.Add(TagAssertionInfo, binary.LittleEndian.AppendUint16(info, uint16(s.SignAlg)))
	w.Add(TagAuthenticatorNonce, s.Nonce)
	w.Add(TagFinalChallengeHash, s.FinalChallengeHash)
	w.Add(TagTransactionContentHash, s.TransactionContentHash)
	w.Add(TagKeyID, s.KeyID)
	w.Add(TagCounters, binary.LittleEndian.AppendUint32(nil, s.SignCounter))
	appendExtensions(&w, s.Extensions)
	return wrap(&w, TagSignedData)
}

func wrap(w *TLVWriter, tag Tag) ([]byte, error) {
	b, err := w.Bytes()
	if err != nil {
		return nil, err
	}
	var out TLVWriter
	out.Add(tag, b)
	return out.Bytes()
}

// AssembleRegAssertion builds a TAG_UAFV1_REG_ASSERTION from a complete KRD
// TLV (from [KeyRegistrationData.Marshal]), the attestation type, the
// signature over the KRD TLV and, for Basic Full, the DER certificates (leaf
// first).
func AssembleRegAssertion(krd []byte, typ AttestationType, sig []byte, certs [][]byte) ([]byte, error) {
	switch typ {
	case AttestationBasicFull:
		if len(certs) == 0 {
			return nil, fmt.Errorf("uaf: basic full attestation without certificate: %w", ErrMissingTag)
		}
	case AttestationBasicSurrogate, AttestationECDAA:
		if len(certs) != 0 {
			return nil, fmt.Errorf("uaf: %v attestation with certificates: %w", typ, ErrUnexpectedTag)
		}
	default:
		return nil, fmt.Errorf("uaf: attestation type %v: %w", typ, ErrValue)
	}
	var att TLVWriter
	att.Add(TagSignature, sig)
	for _, c := range certs {
		att.Add(TagAttestationCert, c)
	}
	ab, err := att.Bytes()
	if err != nil {
		return nil, err
	}
	var w TLVWriter
	w.buf = append(w.buf, krd...)
	w.Add(Tag(typ), ab)
	return wrap(&w, TagRegAssertion)
}

// AssembleAuthAssertion builds a TAG_UAFV1_AUTH_ASSERTION from a complete
// SIGNED_DATA TLV and the signature over it.
func AssembleAuthAssertion(signedData, sig []byte) ([]byte, error) {
	var w TLVWriter
	w.buf = append(w.buf, signedData...)
	w.Add(TagSignature, sig)
	return wrap(&w, TagAuthAssertion)
}

// CheckFinalChallenge compares the FinalChallengeHash with the hash of the
// fcParams string as received, using the hash of a's algorithm.
func (a *RegAssertion) CheckFinalChallenge(fcParams string) error {
	return checkFCH(a.SignAlg, fcParams, a.FinalChallengeHash)
}

// CheckFinalChallenge compares the FinalChallengeHash with the hash of the
// fcParams string as received, using the hash of a's algorithm.
func (a *AuthAssertion) CheckFinalChallenge(fcParams string) error {
	return checkFCH(a.SignAlg, fcParams, a.FinalChallengeHash)
}

func checkFCH(alg Alg, fcParams string, got []byte) error {
	want, err := FinalChallengeHash(alg, fcParams)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(want, got) != 1 {
		return contentErr(ErrHashMismatch, "final challenge hash does not match fcParams")
	}
	return nil
}

// CheckTransaction enforces the mode/transaction rules of UAF Protocol
// §3.5.6: without a transaction (content nil) the mode must be 0x01 and
// TRANSACTION_CONTENT_HASH empty; with one, the mode must be 0x02 and the hash
// equal to H(content), content being the base64url-decoded Transaction.content
// shown to this authenticator.
func (a *AuthAssertion) CheckTransaction(content []byte) error {
	if content == nil {
		if a.AuthenticationMode != ModeUserVerified {
			return contentErr(ErrValue, "authentication mode 0x%02x without transaction", a.AuthenticationMode)
		}
		if len(a.TransactionContentHash) != 0 {
			return contentErr(ErrHashMismatch, "transaction content hash without transaction")
		}
		return nil
	}
	if a.AuthenticationMode != ModeTransactionConfirmed {
		return contentErr(ErrValue, "authentication mode 0x%02x with transaction", a.AuthenticationMode)
	}
	want, err := TransactionContentHash(a.SignAlg, content)
	if err != nil {
		return err
	}
	if !bytes.Equal(want, a.TransactionContentHash) {
		return contentErr(ErrHashMismatch, "transaction content hash does not match")
	}
	return nil
}

// HasUnknownCritical returns the ID of the first critical extension not in
// known, or "" if there is none.
func HasUnknownCritical(exts []TLVExtension, known ...string) string {
outer:
	for _, e := range exts {
		if !e.Critical {
			continue
		}
		for _, k := range known {
			if e.ID == k {
				continue outer
			}
		}
		return e.ID
	}
	return ""
}
