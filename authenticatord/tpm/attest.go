package tpm

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"fmt"
)

// CreateAttestationKey creates the authenticator's attestation signing key
// (ECC P-256, ECDSA-SHA256) under the SRK and returns its blob and public
// key; a vendor CA certifies the public key (see attestation/).
//
// The key is unrestricted so that it can sign the UAF KRD directly, as UAF
// Basic Full attestation requires (a restricted key would need a TPM2_Hash
// ticket per registration and cannot sign data over MAX_DIGEST_BUFFER). The
// price is that it could sign a digest of a forged TPMS_ATTEST structure, so
// its certificate must be used only to verify UAF KRDs, never TPM quotes or
// TPM2_Certify output. It has an empty authValue and NoDA set: it is not
// user-gated, and using it must not consume dictionary-attack tries.
func (t *TPM) CreateAttestationKey() (*KeyBlob, *ecdsa.PublicKey, error) {
	b, err := t.create(uafKeyTemplate(true), nil)
	if err != nil {
		return nil, nil, err
	}
	pub, err := b.PublicKey()
	if err != nil {
		return nil, nil, err
	}
	return b, pub, nil
}

// AttestationSign signs a SHA-256 digest with the attestation key in b and
// returns raw r‖s (64 bytes).
func (t *TPM) AttestationSign(b *KeyBlob, digest []byte) ([]byte, error) {
	if b == nil {
		return nil, fmt.Errorf("%w: nil", ErrInvalidBlob)
	}
	if len(b.Salt) != 0 {
		// A PIN-gated key would cost a dictionary-attack try on every registration.
		return nil, fmt.Errorf("%w: a PIN-gated key is not an attestation key", ErrInvalidBlob)
	}
	return t.sign(b, nil, digest)
}

// AttestationSignMessage hashes msg (e.g. the KRD TLV) with SHA-256 and
// signs it with the attestation key.
func (t *TPM) AttestationSignMessage(b *KeyBlob, msg []byte) ([]byte, error) {
	d := sha256.Sum256(msg)
	return t.AttestationSign(b, d[:])
}
