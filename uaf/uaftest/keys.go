package uaftest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"fmt"
	"io"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	k1ecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"

	"github.com/fidoserver/hwfido/uaf"
)

// Combination is one signature algorithm with one key encoding.
type Combination struct {
	Alg         uaf.Alg
	KeyEncoding uaf.KeyEncoding
}

// String returns "alg/encoding".
func (c Combination) String() string { return c.Alg.String() + "/" + c.KeyEncoding.String() }

// Combinations returns every algorithm and key encoding combination the test
// authenticator can produce (and the uaf package can verify).
func Combinations() []Combination {
	var out []Combination
	ec := []uaf.KeyEncoding{uaf.KeyECCX962Raw, uaf.KeyECCX962DER}
	rsaEnc := []uaf.KeyEncoding{uaf.KeyRSA2048Raw, uaf.KeyRSA2048DER}
	for _, a := range []uaf.Alg{uaf.AlgSECP256R1ECDSASHA256Raw, uaf.AlgSECP256R1ECDSASHA256DER,
		uaf.AlgSECP256K1ECDSASHA256Raw, uaf.AlgSECP256K1ECDSASHA256DER,
		uaf.AlgSECP384R1ECDSASHA384Raw, uaf.AlgSECP521R1ECDSASHA512Raw} {
		for _, e := range ec {
			out = append(out, Combination{a, e})
		}
	}
	for _, a := range []uaf.Alg{uaf.AlgRSASSAPSSSHA256Raw, uaf.AlgRSASSAPSSSHA256DER, uaf.AlgRSAEMSAPKCS1SHA256Raw,
		uaf.AlgRSAEMSAPKCS1SHA256DER, uaf.AlgRSASSAPSSSHA384Raw, uaf.AlgRSASSAPSSSHA512Raw,
		uaf.AlgRSASSAPKCSV15SHA256Raw, uaf.AlgRSASSAPKCSV15SHA384Raw, uaf.AlgRSASSAPKCSV15SHA512Raw,
		uaf.AlgRSASSAPKCSV15SHA1Raw} {
		for _, e := range rsaEnc {
			out = append(out, Combination{a, e})
		}
	}
	return append(out, Combination{uaf.AlgED25519EDDSASHA512Raw, uaf.KeyECCX962DER})
}

// DefaultKeyEncoding returns the encoding used when Options.KeyEncoding is 0.
func DefaultKeyEncoding(alg uaf.Alg) uaf.KeyEncoding {
	switch {
	case isRSA(alg):
		return uaf.KeyRSA2048Raw
	case alg == uaf.AlgED25519EDDSASHA512Raw:
		return uaf.KeyECCX962DER
	}
	return uaf.KeyECCX962Raw
}

func isRSA(alg uaf.Alg) bool {
	switch alg {
	case uaf.AlgRSASSAPSSSHA256Raw, uaf.AlgRSASSAPSSSHA256DER, uaf.AlgRSAEMSAPKCS1SHA256Raw,
		uaf.AlgRSAEMSAPKCS1SHA256DER, uaf.AlgRSASSAPSSSHA384Raw, uaf.AlgRSASSAPSSSHA512Raw,
		uaf.AlgRSASSAPKCSV15SHA256Raw, uaf.AlgRSASSAPKCSV15SHA384Raw, uaf.AlgRSASSAPKCSV15SHA512Raw,
		uaf.AlgRSASSAPKCSV15SHA1Raw:
		return true
	}
	return false
}

func isK1(alg uaf.Alg) bool {
	return alg == uaf.AlgSECP256K1ECDSASHA256Raw || alg == uaf.AlgSECP256K1ECDSASHA256DER
}

// generateKey creates a key pair fitting alg.
func generateKey(rand io.Reader, alg uaf.Alg) (crypto.Signer, error) {
	switch alg {
	case uaf.AlgSECP256R1ECDSASHA256Raw, uaf.AlgSECP256R1ECDSASHA256DER:
		return ecdsa.GenerateKey(elliptic.P256(), rand)
	case uaf.AlgSECP384R1ECDSASHA384Raw:
		return ecdsa.GenerateKey(elliptic.P384(), rand)
	case uaf.AlgSECP521R1ECDSASHA512Raw:
		return ecdsa.GenerateKey(elliptic.P521(), rand)
	case uaf.AlgED25519EDDSASHA512Raw:
		_, k, err := ed25519.GenerateKey(rand)
		return k, err
	case uaf.AlgSECP256K1ECDSASHA256Raw, uaf.AlgSECP256K1ECDSASHA256DER:
		k, err := secp256k1.GeneratePrivateKeyFromRand(rand)
		if err != nil {
			return nil, err
		}
		return k1Signer{k}, nil
	}
	if isRSA(alg) {
		return rsa.GenerateKey(rand, 2048)
	}
	return nil, fmt.Errorf("uaftest: algorithm %v not supported", alg)
}

// k1Signer adapts a secp256k1 key to crypto.Signer (ASN.1 DER signatures).
type k1Signer struct{ k *secp256k1.PrivateKey }

func (s k1Signer) Public() crypto.PublicKey { return s.k.PubKey() }

func (s k1Signer) Sign(_ io.Reader, digest []byte, _ crypto.SignerOpts) ([]byte, error) {
	return k1ecdsa.Sign(s.k, digest).Serialize(), nil
}
