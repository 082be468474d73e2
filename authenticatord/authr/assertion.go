package authr

import (
	"crypto/ecdsa"

	"github.com/fidoserver/hwfido/uaf"
)

// krdFields are the variable parts of a KRD; the rest is fixed by this
// authenticator (version, mode 0x01, ECDSA raw, X9.62 raw key).
type krdFields struct {
	AAID                    string
	FinalChallengeHash      []byte
	KeyID                   []byte
	SignCounter, RegCounter uint32
	PublicKey               *ecdsa.PublicKey
}

func buildKRD(f krdFields) ([]byte, error) {
	pub, err := f.PublicKey.Bytes() // uncompressed 04‖X‖Y = ALG_KEY_ECC_X962_RAW
	if err != nil {
		return nil, err
	}
	k := uaf.KeyRegistrationData{AAID: f.AAID, AuthenticatorVersion: AuthenticatorVersion,
		AuthenticationMode: uaf.ModeUserVerified, SignAlg: uaf.AlgSECP256R1ECDSASHA256Raw,
		PubKeyEncoding: uaf.KeyECCX962Raw, FinalChallengeHash: f.FinalChallengeHash, KeyID: f.KeyID,
		SignCounter: f.SignCounter, RegCounter: f.RegCounter, PubKey: pub}
	return k.Marshal()
}

type signedDataFields struct {
	AAID                   string
	Mode                   byte
	Nonce                  []byte
	FinalChallengeHash     []byte
	TransactionContentHash []byte
	KeyID                  []byte
	SignCounter            uint32
}

func buildSignedData(f signedDataFields) ([]byte, error) {
	s := uaf.SignedData{AAID: f.AAID, AuthenticatorVersion: AuthenticatorVersion, AuthenticationMode: f.Mode,
		SignAlg: uaf.AlgSECP256R1ECDSASHA256Raw, Nonce: f.Nonce, FinalChallengeHash: f.FinalChallengeHash,
		TransactionContentHash: f.TransactionContentHash, KeyID: f.KeyID, SignCounter: f.SignCounter}
	if s.TransactionContentHash == nil {
		s.TransactionContentHash = []byte{}
	}
	return s.Marshal()
}

func assembleReg(krd []byte, typ uaf.AttestationType, sig []byte, certs [][]byte) ([]byte, error) {
	return uaf.AssembleRegAssertion(krd, typ, sig, certs)
}

func assembleAuth(sd, sig []byte) ([]byte, error) {
	return uaf.AssembleAuthAssertion(sd, sig)
}
