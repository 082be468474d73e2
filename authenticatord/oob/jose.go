package oob

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	jose "github.com/go-jose/go-jose/v4"
	josecipher "github.com/go-jose/go-jose/v4/cipher"
)

// JWE and JWS algorithms of the contract (docs/oob.md).
const (
	AlgECDHES = jose.ECDH_ES // "ECDH-ES": direct key agreement
	EncA256   = jose.A256GCM // "A256GCM"
	AlgES256  = jose.ES256   // JWS, P-256
	maxAPUAPV = 256          // bytes of apu / apv accepted
	cekSize   = 32           // A256GCM key
	zSize     = 32           // P-256 shared secret
)

// KeyAgreer computes the ECDH shared secret Z (x-coordinate, 32 bytes) of
// a P-256 private key it holds and peer. tpm.TPM.ECDH bound to a key blob
// is one: the private key stays in the TPM.
type KeyAgreer interface {
	ECDH(peer *ecdh.PublicKey) ([]byte, error)
}

// KeyAgreerFunc adapts a function to [KeyAgreer].
type KeyAgreerFunc func(peer *ecdh.PublicKey) ([]byte, error)

// ECDH calls f.
func (f KeyAgreerFunc) ECDH(peer *ecdh.PublicKey) ([]byte, error) { return f(peer) }

// JWEKeyID returns the kid of the compact JWE's protected header (the
// dispatch target id, which selects the decryption key) after checking
// that alg is ECDH-ES and enc is A256GCM.
func JWEKeyID(compact string) (string, error) {
	obj, err := parseJWE(compact)
	if err != nil {
		return "", err
	}
	return obj.Header.KeyID, nil
}

func parseJWE(compact string) (*jose.JSONWebEncryption, error) {
	if len(compact) > 2*MaxPayload {
		return nil, invalid("JWE too long")
	}
	obj, err := jose.ParseEncryptedCompact(compact,
		[]jose.KeyAlgorithm{AlgECDHES}, []jose.ContentEncryption{EncA256})
	if err != nil {
		return nil, invalid("jwe: %v", err)
	}
	return obj, nil
}

// Open returns the redeem data of p: directly for application/json, or by
// decrypting the JWE with ka for application/jose (ka may be nil for
// clear payloads). The plaintext must satisfy [ParseRedeemData].
func (p *Payload) Open(ka KeyAgreer) (*RedeemData, error) {
	switch p.ContentType {
	case ContentJSON:
		if p.Data == nil {
			return nil, invalid("no nma_data")
		}
		return p.Data, nil
	case ContentJOSE:
		if ka == nil {
			return nil, errors.New("oob: encrypted payload but no decryption key")
		}
		pt, err := DecryptJWE(p.JWE, ka)
		if err != nil {
			return nil, err
		}
		return ParseRedeemData(pt)
	}
	return nil, invalid("content type %q", p.ContentType)
}

// DecryptJWE decrypts a compact JWE (alg ECDH-ES, enc A256GCM, RFC 7518
// §4.6) whose key agreement runs in ka: go-jose parses and authenticates
// the JWE and calls our [jose.OpaqueKeyDecrypter], which takes the
// ephemeral public key from the epk header, has ka compute Z and derives
// the content key with the Concat KDF (NIST SP 800-56A §5.8.1, as RFC 7518
// §4.6.2 specifies: AlgorithmID = enc, PartyUInfo/PartyVInfo = apu/apv,
// SuppPubInfo = 256).
func DecryptJWE(compact string, ka KeyAgreer) ([]byte, error) {
	obj, err := parseJWE(compact)
	if err != nil {
		return nil, err
	}
	pt, err := obj.Decrypt(opaqueDecrypter{ka: ka})
	if err != nil {
		return nil, fmt.Errorf("%w: jwe decrypt: %w", ErrInvalid, err)
	}
	if len(pt) > MaxPayload {
		return nil, invalid("JWE plaintext larger than %d bytes", MaxPayload)
	}
	return pt, nil
}

type opaqueDecrypter struct{ ka KeyAgreer }

// DecryptKey implements [jose.OpaqueKeyDecrypter] for ECDH-ES.
func (d opaqueDecrypter) DecryptKey(encryptedKey []byte, h jose.Header) ([]byte, error) {
	if h.Algorithm != string(AlgECDHES) {
		return nil, invalid("jwe alg %q", h.Algorithm)
	}
	if len(encryptedKey) != 0 {
		return nil, invalid("ECDH-ES JWE must have an empty encrypted key")
	}
	enc, _ := h.ExtraHeaders[jose.HeaderKey("enc")].(string)
	if enc != string(EncA256) {
		return nil, invalid("jwe enc %q", enc)
	}
	epk, err := epkOf(h.ExtraHeaders["epk"])
	if err != nil {
		return nil, err
	}
	apu, err := b64Header(h.ExtraHeaders["apu"])
	if err != nil {
		return nil, err
	}
	apv, err := b64Header(h.ExtraHeaders["apv"])
	if err != nil {
		return nil, err
	}
	z, err := d.ka.ECDH(epk)
	if err != nil {
		return nil, fmt.Errorf("oob: jwe key agreement: %w", err)
	}
	if len(z) != zSize {
		return nil, errors.New("oob: jwe key agreement: Z is not 32 bytes")
	}
	return ConcatKDF(z, enc, apu, apv, cekSize), nil
}

// ConcatKDF derives size bytes from Z as RFC 7518 §4.6.2 specifies for
// ECDH-ES, using go-jose's Concat KDF.
func ConcatKDF(z []byte, algID string, apu, apv []byte, size int) []byte {
	supPub := binary.BigEndian.AppendUint32(nil, uint32(size)*8) //nolint:gosec // size is cekSize
	r := josecipher.NewConcatKDF(crypto.SHA256, z, lengthPrefixed([]byte(algID)),
		lengthPrefixed(apu), lengthPrefixed(apv), supPub, nil)
	key := make([]byte, size)
	_, _ = io.ReadFull(r, key) // the KDF reader never fails
	return key
}

func lengthPrefixed(b []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...) //nolint:gosec // bounded by maxAPUAPV
}

// epkOf converts the epk header (decoded by go-jose into a generic JSON
// value) to a validated P-256 public key.
func epkOf(v any) (*ecdh.PublicKey, error) {
	if v == nil {
		return nil, invalid("jwe epk missing")
	}
	b, err := json.Marshal(v)
	if err != nil || len(b) > 1024 {
		return nil, invalid("jwe epk")
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(b); err != nil {
		return nil, invalid("jwe epk: %v", err)
	}
	pub, ok := k.Key.(*ecdsa.PublicKey)
	if !ok || !k.IsPublic() || pub.Curve != elliptic.P256() {
		return nil, invalid("jwe epk is not a P-256 public key")
	}
	ep, err := pub.ECDH()
	if err != nil {
		return nil, invalid("jwe epk: %v", err)
	}
	return ep, nil
}

func b64Header(v any) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	s, ok := v.(string)
	if !ok || len(s) > 2*maxAPUAPV {
		return nil, invalid("jwe apu/apv")
	}
	b, err := decodeB64URL(s)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// DigestSigner signs a SHA-256 digest with a P-256 key it holds and returns
// raw r‖s (64 bytes). tpm.TPM.SignDevice bound to a key blob is one.
type DigestSigner interface {
	SignDigest(digest []byte) ([]byte, error)
}

// DigestSignerFunc adapts a function to [DigestSigner].
type DigestSignerFunc func(digest []byte) ([]byte, error)

// SignDigest calls f.
func (f DigestSignerFunc) SignDigest(digest []byte) ([]byte, error) { return f(digest) }

type opaqueSigner struct {
	pub *ecdsa.PublicKey
	s   DigestSigner
}

func (o opaqueSigner) Public() *jose.JSONWebKey {
	return &jose.JSONWebKey{Key: o.pub, Algorithm: string(AlgES256), Use: "sig"}
}
func (o opaqueSigner) Algs() []jose.SignatureAlgorithm { return []jose.SignatureAlgorithm{AlgES256} }
func (o opaqueSigner) SignPayload(payload []byte, alg jose.SignatureAlgorithm) ([]byte, error) {
	if alg != AlgES256 {
		return nil, fmt.Errorf("oob: jws: unsupported alg %s", alg)
	}
	d := sha256.Sum256(payload)
	sig, err := o.s.SignDigest(d[:])
	if err != nil {
		return nil, fmt.Errorf("oob: jws sign: %w", err)
	}
	if len(sig) != 64 {
		return nil, errors.New("oob: jws sign: signature is not 64 bytes")
	}
	return sig, nil
}

// SignCompact returns the compact JWS (ES256, header kid) of payload,
// signed by s, whose public key is pub (go-jose's [jose.OpaqueSigner]; the
// private key never leaves the signer).
func SignCompact(pub *ecdsa.PublicKey, s DigestSigner, kid string, payload []byte) (string, error) {
	if pub == nil || pub.Curve != elliptic.P256() {
		return "", errors.New("oob: jws: signing key is not P-256")
	}
	opts := (&jose.SignerOptions{}).WithHeader(jose.HeaderKey("kid"), kid)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: AlgES256, Key: opaqueSigner{pub: pub, s: s}}, opts)
	if err != nil {
		return "", fmt.Errorf("oob: jws: %w", err)
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("oob: jws: %w", err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("oob: jws: %w", err)
	}
	return out, nil
}

// PublicJWK returns the JWK JSON object of a P-256 public key (an
// *ecdsa.PublicKey or *ecdh.PublicKey) with use and alg set ("sig"/ES256
// for signature keys, "enc"/ECDH-ES for encryption keys).
func PublicJWK(pub crypto.PublicKey, use string) (json.RawMessage, error) {
	var k *ecdsa.PublicKey
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		k = p
	case *ecdh.PublicKey:
		if p.Curve() != ecdh.P256() {
			return nil, errors.New("oob: jwk: not P-256")
		}
		raw := p.Bytes()
		var err error
		k, err = ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
		if err != nil {
			return nil, fmt.Errorf("oob: jwk: %w", err)
		}
	default:
		return nil, errors.New("oob: jwk: unsupported key type")
	}
	if k.Curve != elliptic.P256() {
		return nil, errors.New("oob: jwk: not P-256")
	}
	alg := string(AlgES256)
	if use == "enc" {
		alg = string(AlgECDHES)
	}
	b, err := jose.JSONWebKey{Key: k, Use: use, Algorithm: alg}.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("oob: jwk: %w", err)
	}
	return b, nil
}
