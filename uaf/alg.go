package uaf

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	_ "crypto/sha1" //nolint:gosec // G505: rsassa_pkcsv15_sha1_raw is a registered UAF algorithm.
	_ "crypto/sha256"
	_ "crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"io"
	"math/big"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	k1ecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

// Hash returns the hash function of a: the hash of the signature and of
// FinalChallengeHash / TransactionContentHash. It returns 0 for unknown
// algorithms and for SM3, which Go does not implement.
func (a Alg) Hash() crypto.Hash {
	switch a {
	case AlgSECP256R1ECDSASHA256Raw, AlgSECP256R1ECDSASHA256DER, AlgRSASSAPSSSHA256Raw, AlgRSASSAPSSSHA256DER,
		AlgSECP256K1ECDSASHA256Raw, AlgSECP256K1ECDSASHA256DER, AlgRSAEMSAPKCS1SHA256Raw, AlgRSAEMSAPKCS1SHA256DER,
		AlgRSASSAPKCSV15SHA256Raw:
		return crypto.SHA256
	case AlgRSASSAPSSSHA384Raw, AlgRSASSAPKCSV15SHA384Raw, AlgSECP384R1ECDSASHA384Raw:
		return crypto.SHA384
	case AlgRSASSAPSSSHA512Raw, AlgRSASSAPKCSV15SHA512Raw, AlgSECP521R1ECDSASHA512Raw, AlgED25519EDDSASHA512Raw:
		return crypto.SHA512
	case AlgRSASSAPKCSV15SHA1Raw:
		return crypto.SHA1
	}
	return 0
}

// Supported reports whether VerifySignature implements a (every registered
// algorithm except SM2/SM3 and Ed448).
func (a Alg) Supported() bool { return a.family() != famNone }

type family uint8

const (
	famNone family = iota
	famECDSA
	famK1
	famPSS
	famPKCS1
	famEd25519
)

func (a Alg) family() family {
	switch a {
	case AlgSECP256R1ECDSASHA256Raw, AlgSECP256R1ECDSASHA256DER, AlgSECP384R1ECDSASHA384Raw, AlgSECP521R1ECDSASHA512Raw:
		return famECDSA
	case AlgSECP256K1ECDSASHA256Raw, AlgSECP256K1ECDSASHA256DER:
		return famK1
	case AlgRSASSAPSSSHA256Raw, AlgRSASSAPSSSHA256DER, AlgRSASSAPSSSHA384Raw, AlgRSASSAPSSSHA512Raw:
		return famPSS
	case AlgRSAEMSAPKCS1SHA256Raw, AlgRSAEMSAPKCS1SHA256DER, AlgRSASSAPKCSV15SHA256Raw, AlgRSASSAPKCSV15SHA384Raw,
		AlgRSASSAPKCSV15SHA512Raw, AlgRSASSAPKCSV15SHA1Raw:
		return famPKCS1
	case AlgED25519EDDSASHA512Raw:
		return famEd25519
	}
	return famNone
}

// der reports whether a's signature is DER encoded.
func (a Alg) der() bool {
	switch a {
	case AlgSECP256R1ECDSASHA256DER, AlgRSASSAPSSSHA256DER, AlgSECP256K1ECDSASHA256DER, AlgRSAEMSAPKCS1SHA256DER:
		return true
	}
	return false
}

// curve returns the NIST curve of an ECDSA algorithm.
func (a Alg) curve() elliptic.Curve {
	switch a {
	case AlgSECP256R1ECDSASHA256Raw, AlgSECP256R1ECDSASHA256DER:
		return elliptic.P256()
	case AlgSECP384R1ECDSASHA384Raw:
		return elliptic.P384()
	case AlgSECP521R1ECDSASHA512Raw:
		return elliptic.P521()
	}
	return nil
}

func unsupported(format string, args ...any) *Error {
	return &Error{Code: StatusUnacceptableAlgorithm, Msg: fmt.Sprintf(format, args...), Err: ErrUnsupportedAlg}
}

func digest(alg Alg, msg []byte) ([]byte, error) {
	h := alg.Hash()
	if h == 0 || !h.Available() {
		return nil, unsupported("algorithm %v has no available hash", alg)
	}
	w := h.New()
	w.Write(msg)
	return w.Sum(nil), nil
}

// FinalChallengeHash returns H(fcParams) over the ASCII bytes of the fcParams
// string exactly as received, H being alg's hash (UAF Protocol §3.4.6.5).
func FinalChallengeHash(alg Alg, fcParams string) ([]byte, error) {
	return digest(alg, []byte(fcParams))
}

// TransactionContentHash returns H(content), content being the
// base64url-decoded Transaction.content, H being alg's hash.
func TransactionContentHash(alg Alg, content []byte) ([]byte, error) {
	return digest(alg, content)
}

var (
	oidECPublicKey = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidSecp256k1   = asn1.ObjectIdentifier{1, 3, 132, 0, 10}
)

type spki struct {
	Algorithm pkix.AlgorithmIdentifier
	PublicKey asn1.BitString
}

func keyErr(format string, args ...any) *Error {
	return contentErr(ErrKeyMismatch, format, args...)
}

// ParsePublicKey decodes a TAG_PUB_KEY value in encoding enc for use with
// algorithm alg. The result is *ecdsa.PublicKey (P-256/384/521),
// *secp256k1.PublicKey, *rsa.PublicKey or ed25519.PublicKey, and it fits alg
// ([CheckKeyAlg]). Raw X9.62 keys must be uncompressed points; RSA keys must
// have at least 2048 bits (exactly 2048 for rsa_2048_raw). COSE keys are not
// implemented (StatusUnacceptableAlgorithm).
func ParsePublicKey(enc KeyEncoding, alg Alg, raw []byte) (crypto.PublicKey, error) {
	if !alg.Supported() {
		return nil, unsupported("algorithm %v", alg)
	}
	var pub crypto.PublicKey
	switch enc {
	case KeyECCX962Raw:
		if len(raw) == 0 || raw[0] != 4 {
			return nil, keyErr("public key: not an uncompressed point")
		}
		switch alg.family() {
		case famECDSA:
			k, err := ecdsa.ParseUncompressedPublicKey(alg.curve(), raw)
			if err != nil {
				return nil, keyErr("public key: %v", err)
			}
			pub = k
		case famK1:
			if len(raw) != 65 {
				return nil, keyErr("public key: %d bytes, want 65", len(raw))
			}
			k, err := secp256k1.ParsePubKey(raw)
			if err != nil {
				return nil, keyErr("public key: %v", err)
			}
			pub = k
		default:
			return nil, keyErr("public key: %v key for %v", enc, alg)
		}
	case KeyECCX962DER:
		var s spki
		rest, err := asn1.Unmarshal(raw, &s)
		if err != nil || len(rest) != 0 {
			return nil, keyErr("public key: invalid SubjectPublicKeyInfo")
		}
		var curve asn1.ObjectIdentifier
		if s.Algorithm.Algorithm.Equal(oidECPublicKey) {
			if r, err := asn1.Unmarshal(s.Algorithm.Parameters.FullBytes, &curve); err != nil || len(r) != 0 {
				return nil, keyErr("public key: invalid curve parameter")
			}
		}
		if curve.Equal(oidSecp256k1) {
			b := s.PublicKey.RightAlign()
			if s.PublicKey.BitLength%8 != 0 || len(b) != 65 || b[0] != 4 {
				return nil, keyErr("public key: invalid secp256k1 point")
			}
			k, err := secp256k1.ParsePubKey(b)
			if err != nil {
				return nil, keyErr("public key: %v", err)
			}
			pub = k
			break
		}
		k, err := x509.ParsePKIXPublicKey(raw)
		if err != nil {
			return nil, keyErr("public key: %v", err)
		}
		if _, ok := k.(*rsa.PublicKey); ok {
			return nil, keyErr("public key: RSA key in %v", enc)
		}
		pub = k
	case KeyRSA2048Raw:
		if len(raw) < 257 || len(raw) > 256+4 || raw[0]&0x80 == 0 {
			return nil, keyErr("public key: rsa_2048_raw of %d bytes", len(raw))
		}
		e := new(big.Int).SetBytes(raw[256:])
		if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || e.Bit(0) == 0 {
			return nil, keyErr("public key: invalid RSA exponent")
		}
		pub = &rsa.PublicKey{N: new(big.Int).SetBytes(raw[:256]), E: int(e.Int64())}
	case KeyRSA2048DER:
		k, err := x509.ParsePKCS1PublicKey(raw)
		if err != nil {
			return nil, keyErr("public key: %v", err)
		}
		if k.N.BitLen() < 2048 || k.N.BitLen() > 8192 {
			return nil, keyErr("public key: %d-bit RSA key", k.N.BitLen())
		}
		pub = k
	case KeyCOSE:
		return nil, unsupported("key encoding %v", enc)
	default:
		return nil, unsupported("key encoding %v", enc)
	}
	if err := CheckKeyAlg(alg, pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// CheckKeyAlg reports whether pub can verify signatures of algorithm alg
// (key type and curve).
func CheckKeyAlg(alg Alg, pub crypto.PublicKey) error {
	ok := false
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		ok = alg.family() == famECDSA && k.Curve == alg.curve()
	case *secp256k1.PublicKey:
		ok = alg.family() == famK1
	case *rsa.PublicKey:
		ok = alg.family() == famPSS || alg.family() == famPKCS1
	case ed25519.PublicKey:
		ok = alg.family() == famEd25519
	}
	if !alg.Supported() {
		return unsupported("algorithm %v", alg)
	}
	if !ok {
		return keyErr("%T does not fit algorithm %v", pub, alg)
	}
	return nil
}

// EncodePublicKey encodes pub in encoding enc (the TAG_PUB_KEY value).
func EncodePublicKey(enc KeyEncoding, pub crypto.PublicKey) ([]byte, error) {
	switch enc {
	case KeyECCX962Raw:
		switch k := pub.(type) {
		case *ecdsa.PublicKey:
			return k.Bytes()
		case *secp256k1.PublicKey:
			return k.SerializeUncompressed(), nil
		}
	case KeyECCX962DER:
		switch k := pub.(type) {
		case *secp256k1.PublicKey:
			params, err := asn1.Marshal(oidSecp256k1)
			if err != nil {
				return nil, err
			}
			p := k.SerializeUncompressed()
			return asn1.Marshal(spki{
				Algorithm: pkix.AlgorithmIdentifier{Algorithm: oidECPublicKey, Parameters: asn1.RawValue{FullBytes: params}},
				PublicKey: asn1.BitString{Bytes: p, BitLength: 8 * len(p)},
			})
		case *ecdsa.PublicKey, ed25519.PublicKey:
			return x509.MarshalPKIXPublicKey(k)
		}
	case KeyRSA2048Raw:
		if k, ok := pub.(*rsa.PublicKey); ok {
			if k.N.BitLen() != 2048 {
				return nil, fmt.Errorf("uaf: rsa_2048_raw needs a 2048-bit key, have %d: %w", k.N.BitLen(), ErrKeyMismatch)
			}
			out := k.N.FillBytes(make([]byte, 256))
			return append(out, big.NewInt(int64(k.E)).Bytes()...), nil
		}
	case KeyRSA2048DER:
		if k, ok := pub.(*rsa.PublicKey); ok {
			return x509.MarshalPKCS1PublicKey(k), nil
		}
	default:
		return nil, fmt.Errorf("uaf: key encoding %v: %w", enc, ErrUnsupportedAlg)
	}
	return nil, fmt.Errorf("uaf: %T cannot be encoded as %v: %w", pub, enc, ErrKeyMismatch)
}

type ecdsaSig struct{ R, S *big.Int }

// parseDERSig decodes a canonical DER Ecdsa-Sig-Value.
func parseDERSig(sig []byte) (r, s *big.Int, ok bool) {
	var v ecdsaSig
	rest, err := asn1.Unmarshal(sig, &v)
	if err != nil || len(rest) != 0 || v.R.Sign() <= 0 || v.S.Sign() <= 0 {
		return nil, nil, false
	}
	return v.R, v.S, true
}

func sigErr(alg Alg, why string) *Error {
	return contentErr(ErrBadSignature, "%v signature: %s", alg, why)
}

// scalarLen is the byte length of r and s in a raw ECDSA signature.
func (a Alg) scalarLen() int {
	if a.family() == famK1 {
		return 32
	}
	if c := a.curve(); c != nil {
		return (c.Params().BitSize + 7) / 8
	}
	return 0
}

// ecdsaRS decodes an ECDSA signature in alg's encoding.
func ecdsaRS(alg Alg, sig []byte) (r, s *big.Int, err error) {
	if alg.der() {
		r, s, ok := parseDERSig(sig)
		if !ok {
			return nil, nil, sigErr(alg, "invalid DER")
		}
		return r, s, nil
	}
	n := alg.scalarLen()
	if len(sig) != 2*n {
		return nil, nil, sigErr(alg, fmt.Sprintf("%d bytes, want %d", len(sig), 2*n))
	}
	return new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:]), nil
}

// rsaSig decodes an RSA signature in alg's encoding (DER: OCTET STRING).
func rsaSig(alg Alg, sig []byte) ([]byte, error) {
	if !alg.der() {
		return sig, nil
	}
	var s []byte
	rest, err := asn1.Unmarshal(sig, &s)
	if err != nil || len(rest) != 0 {
		return nil, sigErr(alg, "not a DER OCTET STRING")
	}
	return s, nil
}

// VerifySignature verifies sig, in the encoding of alg, over signedData (the
// complete KRD or SIGNED_DATA TLV) with pub. It returns an [*Error]: 1495 for
// an unsupported algorithm, 1498 for a key that does not fit or a signature
// that does not verify (errors.Is ErrBadSignature). RSASSA-PSS uses MGF1 with
// the same hash and a salt as long as the hash.
func VerifySignature(alg Alg, pub crypto.PublicKey, signedData, sig []byte) error {
	if err := CheckKeyAlg(alg, pub); err != nil {
		return err
	}
	if alg.family() == famEd25519 {
		if len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub.(ed25519.PublicKey), signedData, sig) {
			return sigErr(alg, "does not verify")
		}
		return nil
	}
	d, err := digest(alg, signedData)
	if err != nil {
		return err
	}
	switch alg.family() {
	case famECDSA:
		r, s, err := ecdsaRS(alg, sig)
		if err != nil {
			return err
		}
		if !ecdsa.Verify(pub.(*ecdsa.PublicKey), d, r, s) {
			return sigErr(alg, "does not verify")
		}
	case famK1:
		r, s, err := ecdsaRS(alg, sig)
		if err != nil {
			return err
		}
		var rs, ss secp256k1.ModNScalar
		if r.BitLen() > 256 || s.BitLen() > 256 || rs.SetByteSlice(r.Bytes()) || ss.SetByteSlice(s.Bytes()) ||
			rs.IsZero() || ss.IsZero() {
			return sigErr(alg, "r or s out of range")
		}
		if !k1ecdsa.NewSignature(&rs, &ss).Verify(d, pub.(*secp256k1.PublicKey)) {
			return sigErr(alg, "does not verify")
		}
	case famPSS, famPKCS1:
		s, err := rsaSig(alg, sig)
		if err != nil {
			return err
		}
		k := pub.(*rsa.PublicKey)
		if alg.family() == famPSS {
			err = rsa.VerifyPSS(k, alg.Hash(), d, s, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		} else {
			err = rsa.VerifyPKCS1v15(k, alg.Hash(), d, s)
		}
		if err != nil {
			return sigErr(alg, "does not verify")
		}
	}
	return nil
}

// EncodeSignature converts a signature in Go's form (ASN.1 DER for ECDSA as
// crypto.Signer returns it, the raw value for RSA and Ed25519) into the
// encoding of alg (r‖s for RAW ECDSA, an OCTET STRING for the DER RSA
// variants).
func EncodeSignature(alg Alg, sig []byte) ([]byte, error) {
	switch alg.family() {
	case famECDSA, famK1:
		r, s, ok := parseDERSig(sig)
		if !ok {
			return nil, fmt.Errorf("uaf: EncodeSignature: invalid ASN.1 ECDSA signature: %w", ErrValue)
		}
		return EncodeECDSASignature(alg, r, s)
	case famPSS, famPKCS1:
		if alg.der() {
			return asn1.Marshal(sig)
		}
		return sig, nil
	case famEd25519:
		return sig, nil
	}
	return nil, fmt.Errorf("uaf: EncodeSignature %v: %w", alg, ErrUnsupportedAlg)
}

// EncodeECDSASignature encodes (r, s) in the encoding of the ECDSA algorithm
// alg: r‖s left-padded to the curve size, or DER.
func EncodeECDSASignature(alg Alg, r, s *big.Int) ([]byte, error) {
	if f := alg.family(); f != famECDSA && f != famK1 {
		return nil, fmt.Errorf("uaf: %v is not ECDSA: %w", alg, ErrUnsupportedAlg)
	}
	if alg.der() {
		return asn1.Marshal(ecdsaSig{R: r, S: s})
	}
	n := alg.scalarLen()
	if r.Sign() < 0 || s.Sign() < 0 || r.BitLen() > 8*n || s.BitLen() > 8*n {
		return nil, fmt.Errorf("uaf: EncodeECDSASignature: r or s too large: %w", ErrValue)
	}
	out := make([]byte, 2*n)
	r.FillBytes(out[:n])
	s.FillBytes(out[n:])
	return out, nil
}

// Sign hashes msg with alg's hash (Ed25519: signs msg itself), signs it with
// signer and returns the signature in alg's encoding. signer must return
// ASN.1 DER for ECDSA keys (as *ecdsa.PrivateKey does).
func Sign(rand io.Reader, signer crypto.Signer, alg Alg, msg []byte) ([]byte, error) {
	if err := CheckKeyAlg(alg, signer.Public()); err != nil {
		return nil, err
	}
	var (
		sig []byte
		err error
	)
	switch alg.family() {
	case famEd25519:
		sig, err = signer.Sign(rand, msg, crypto.Hash(0))
	default:
		d, derr := digest(alg, msg)
		if derr != nil {
			return nil, derr
		}
		var opts crypto.SignerOpts = alg.Hash()
		if alg.family() == famPSS {
			opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: alg.Hash()}
		}
		sig, err = signer.Sign(rand, d, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("uaf: sign %v: %w", alg, err)
	}
	return EncodeSignature(alg, sig)
}

// SignatureHash is a convenience for signers that take a digest (TPM, HSM):
// it returns alg's hash of msg.
func SignatureHash(alg Alg, msg []byte) ([]byte, error) { return digest(alg, msg) }
