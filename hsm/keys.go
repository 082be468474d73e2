package hsm

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"strconv"

	"github.com/miekg/pkcs11"
)

// Purpose is what a key is for. It is encoded in the key's CKA_ID.
type Purpose uint8

// Key purposes.
const (
	// PurposeTokenSigning is an ECDSA P-256 key signing JWS (ES256) tokens.
	PurposeTokenSigning Purpose = 1
	// PurposeServerDataMAC is an HMAC-SHA256 key protecting serverData.
	PurposeServerDataMAC Purpose = 2
	// PurposeVendorCA is an ECDSA P-256 key certifying TPM attestation keys.
	PurposeVendorCA Purpose = 3
)

const numPurposes = 4

// Purposes lists every purpose in CKA_ID order.
var Purposes = []Purpose{PurposeTokenSigning, PurposeServerDataMAC, PurposeVendorCA}

// String returns the purpose's name as used in labels and the CLI.
func (p Purpose) String() string {
	switch p {
	case PurposeTokenSigning:
		return "token-signing"
	case PurposeServerDataMAC:
		return "serverdata-mac"
	case PurposeVendorCA:
		return "vendor-ca"
	}
	return "purpose-" + strconv.Itoa(int(p))
}

// ParsePurpose is the inverse of Purpose.String.
func ParsePurpose(s string) (Purpose, error) {
	for _, p := range Purposes {
		if p.String() == s {
			return p, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown key purpose %q", ErrConfig, s)
}

// IsEC reports whether keys of this purpose are ECDSA P-256 key pairs.
func (p Purpose) IsEC() bool { return p == PurposeTokenSigning || p == PurposeVendorCA }

// KeyID returns the CKA_ID of a key: idPrefix || purpose (1 byte) ||
// version (4 bytes, big-endian). The private (or secret) key and the public
// key of a pair share it.
func KeyID(idPrefix []byte, p Purpose, version uint32) []byte {
	id := make([]byte, 0, len(idPrefix)+5)
	id = append(id, idPrefix...)
	id = append(id, byte(p))
	return binary.BigEndian.AppendUint32(id, version)
}

// KeyLabel returns the CKA_LABEL of a key: "<prefix>-<purpose>-v<version>",
// e.g. "hwfido-token-signing-v1".
func KeyLabel(labelPrefix string, p Purpose, version uint32) string {
	return labelPrefix + "-" + p.String() + "-v" + strconv.FormatUint(uint64(version), 10)
}

func parseKeyID(idPrefix, id []byte) (Purpose, uint32, bool) {
	if len(id) != len(idPrefix)+5 || !bytes.HasPrefix(id, idPrefix) {
		return 0, 0, false
	}
	p := Purpose(id[len(idPrefix)])
	if p == 0 || p >= numPurposes {
		return 0, 0, false
	}
	v := binary.BigEndian.Uint32(id[len(idPrefix)+1:])
	if v == 0 {
		return 0, 0, false
	}
	return p, v, true
}

// KeyInfo describes one key of the token.
type KeyInfo struct {
	Purpose Purpose
	Version uint32 // from CKA_ID; MAC'd data names the key by it
	Label   string // CKA_LABEL
	ID      []byte // CKA_ID
	// KID is the RFC 7638 JWK thumbprint for EC keys and
	// "<purpose>-v<version>" for MAC keys.
	KID    string
	Active bool             // the highest version of its purpose
	Public *ecdsa.PublicKey // nil for MAC keys
}

// key is a loaded key with its cached handles.
type key struct {
	KeyInfo
	handle pkcs11.ObjectHandle // private or secret key: the token object
	// use is the handle operations use: the key's session copy on the anchor
	// session (copied is true), or handle.
	use    pkcs11.ObjectHandle
	copied bool
}

// keySet is an immutable snapshot of the token's keys; it is replaced as a
// whole after re-finding handles.
type keySet struct {
	gen uint64
	// anchor is the session holding the keys' session copies.
	anchor    pkcs11.SessionHandle
	byPurpose [numPurposes][]*key // ascending version; the last one is active
	byKID     map[string]*key
	jwks      []byte
}

func (ks *keySet) active(p Purpose) *key {
	if ks == nil || int(p) >= numPurposes {
		return nil
	}
	l := ks.byPurpose[p]
	if len(l) == 0 {
		return nil
	}
	return l[len(l)-1]
}

func (ks *keySet) version(p Purpose, v uint32) *key {
	for _, k := range ks.byPurpose[p] {
		if k.Version == v {
			return k
		}
	}
	return nil
}

// jwk is an RFC 7517 EC public key.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
}

func coords(pub *ecdsa.PublicKey) (x, y string) {
	b, _ := pub.Bytes() // 04 || X || Y, fixed length; cannot fail for a valid P-256 key
	if len(b) != 65 {
		return "", ""
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(b[1:33]), enc.EncodeToString(b[33:])
}

// Thumbprint returns the RFC 7638 JWK thumbprint (SHA-256, base64url without
// padding) of a P-256 public key: the hash of the JSON object with the
// required members crv, kty, x, y in lexicographic order and no whitespace.
func Thumbprint(pub *ecdsa.PublicKey) string {
	x, y := coords(pub)
	h := sha256.Sum256([]byte(`{"crv":"P-256","kty":"EC","x":"` + x + `","y":"` + y + `"}`))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// JWK returns the public key as a JSON Web Key with kid, use "sig" and alg
// "ES256".
func JWK(pub *ecdsa.PublicKey) ([]byte, error) {
	x, y := coords(pub)
	return json.Marshal(jwk{Kty: "EC", Crv: "P-256", X: x, Y: y, Kid: Thumbprint(pub), Use: "sig", Alg: "ES256"})
}

func buildJWKS(keys []*key) ([]byte, error) {
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	for _, k := range keys {
		x, y := coords(k.Public)
		set.Keys = append(set.Keys, jwk{Kty: "EC", Crv: "P-256", X: x, Y: y, Kid: k.KID, Use: "sig", Alg: "ES256"})
	}
	return json.Marshal(set)
}

var oidP256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}

// p256Params is the DER OID of prime256v1 (CKA_EC_PARAMS).
var p256Params = []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}

// ParseECPoint parses a CKA_EC_POINT value of a P-256 key: a DER OCTET
// STRING wrapping the uncompressed point 04||X||Y, or (from older HSMs) the
// raw point. The point must be on the curve.
func ParseECPoint(v []byte) (*ecdsa.PublicKey, error) {
	raw := v
	var inner []byte
	if rest, err := asn1.Unmarshal(v, &inner); err == nil && len(rest) == 0 && len(inner) == 65 {
		raw = inner
	}
	if len(raw) != 65 || raw[0] != 4 {
		return nil, fmt.Errorf("hsm: CKA_EC_POINT is not an uncompressed P-256 point (%d bytes)", len(raw))
	}
	if _, err := ecdh.P256().NewPublicKey(raw); err != nil {
		return nil, fmt.Errorf("hsm: CKA_EC_POINT: %w", err)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
	if err != nil {
		return nil, fmt.Errorf("hsm: CKA_EC_POINT: %w", err)
	}
	return pub, nil
}

// ECDSASignatureDER converts a raw PKCS#11 ECDSA P-256 signature r||s
// (64 bytes, the JWS ES256 form) to ASN.1 DER (the X.509/crypto.Signer form).
func ECDSASignatureDER(raw []byte) ([]byte, error) {
	if len(raw) != 64 {
		return nil, fmt.Errorf("hsm: ecdsa signature has %d bytes, want 64", len(raw))
	}
	return asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])})
}

// attribute helpers

func attrBool(a *pkcs11.Attribute) (bool, bool) {
	if a == nil || len(a.Value) == 0 {
		return false, false
	}
	for _, b := range a.Value {
		if b != 0 {
			return true, true
		}
	}
	return false, true
}

func attrUint(a *pkcs11.Attribute) uint {
	if a == nil {
		return 0
	}
	var v uint64
	switch len(a.Value) {
	case 8:
		v = binary.NativeEndian.Uint64(a.Value)
	case 4:
		v = uint64(binary.NativeEndian.Uint32(a.Value))
	case 1:
		v = uint64(a.Value[0])
	}
	return uint(v)
}

// checkPolicy enforces the custody policy on a private or secret key from
// its attributes (indexed by type).
func checkPolicy(label string, id []byte, attrs map[uint]*pkcs11.Attribute, warn func(string)) error {
	must := []struct {
		typ  uint
		want bool
		name string
	}{
		{pkcs11.CKA_SENSITIVE, true, "CKA_SENSITIVE"},
		{pkcs11.CKA_EXTRACTABLE, false, "CKA_EXTRACTABLE"},
		{pkcs11.CKA_ALWAYS_SENSITIVE, true, "CKA_ALWAYS_SENSITIVE"},
		{pkcs11.CKA_NEVER_EXTRACTABLE, true, "CKA_NEVER_EXTRACTABLE"},
		{pkcs11.CKA_TOKEN, true, "CKA_TOKEN"},
		{pkcs11.CKA_PRIVATE, true, "CKA_PRIVATE"},
		{pkcs11.CKA_SIGN, true, "CKA_SIGN"},
	}
	for _, m := range must {
		v, ok := attrBool(attrs[m.typ])
		if !ok {
			return &PolicyError{Label: label, ID: slices.Clone(id), Reason: m.name + " is not readable"}
		}
		if v != m.want {
			return &PolicyError{Label: label, ID: slices.Clone(id), Reason: fmt.Sprintf("%s is %v", m.name, v)}
		}
	}
	for _, extra := range []struct {
		typ  uint
		name string
	}{{pkcs11.CKA_DECRYPT, "CKA_DECRYPT"}, {pkcs11.CKA_UNWRAP, "CKA_UNWRAP"}, {pkcs11.CKA_DERIVE, "CKA_DERIVE"}, {pkcs11.CKA_WRAP, "CKA_WRAP"}, {pkcs11.CKA_ENCRYPT, "CKA_ENCRYPT"}} {
		if v, _ := attrBool(attrs[extra.typ]); v {
			warn(extra.name)
		}
	}
	return nil
}

func bigInt(b []byte) *big.Int { return new(big.Int).SetBytes(b) }

func asn1Marshal(v any) ([]byte, error) { return asn1.Marshal(v) }
