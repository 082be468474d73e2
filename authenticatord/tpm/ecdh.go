package tpm

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// This file holds the device-level keys of the out-of-band channel
// (authenticatord/oob): a signing key that authenticates the device to the
// server (dispatch target PATCH/DELETE, stream bearer tokens) and a
// key-agreement key to which the server encrypts out-of-band payloads. Both
// are P-256, created in and never leaving the TPM, with an empty authValue
// and NoDA set: they are not user-gated (the out-of-band payload only
// starts an operation that still needs the user's PIN-gated UAF key), and
// using them must not consume dictionary-attack tries.

// ecdhKeyTemplate is an unrestricted ECC P-256 decryption key with the
// NULL scheme, the key type TPM2_ECDH_ZGen needs (Part 3 §14.5: decrypt
// set, sign clear, not restricted).
func ecdhKeyTemplate() tpm2.TPMTPublic {
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgECC,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			FixedTPM:            true,
			FixedParent:         true,
			SensitiveDataOrigin: true,
			UserWithAuth:        true,
			NoDA:                true,
			Decrypt:             true,
		},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Scheme:  tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgNull},
			CurveID: tpm2.TPMECCNistP256,
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{}),
	}
}

// CreateDeviceKey creates a device-level P-256 ECDSA signing key under the
// SRK (empty authValue, NoDA) and returns its blob and public key. Sign
// with [TPM.SignDevice].
func (t *TPM) CreateDeviceKey() (*KeyBlob, *ecdsa.PublicKey, error) {
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

// SignDevice signs a SHA-256 digest with a key from [TPM.CreateDeviceKey]
// and returns raw r‖s (64 bytes), the JWS ES256 signature encoding
// (RFC 7518 §3.4).
func (t *TPM) SignDevice(b *KeyBlob, digest []byte) ([]byte, error) {
	if b == nil {
		return nil, fmt.Errorf("%w: nil", ErrInvalidBlob)
	}
	if len(b.Salt) != 0 {
		return nil, fmt.Errorf("%w: a PIN-gated key is not a device key", ErrInvalidBlob)
	}
	return t.sign(b, nil, digest)
}

// CreateDecryptionKey creates a device-level P-256 key-agreement key under
// the SRK (decrypt attribute, empty authValue, NoDA) and returns its blob
// and public key. Use it with [TPM.ECDH].
func (t *TPM) CreateDecryptionKey() (*KeyBlob, *ecdh.PublicKey, error) {
	b, err := t.create(ecdhKeyTemplate(), nil)
	if err != nil {
		return nil, nil, err
	}
	pub, err := b.PublicKey()
	if err != nil {
		return nil, nil, err
	}
	ep, err := pub.ECDH()
	if err != nil {
		return nil, nil, fmt.Errorf("tpm: decryption key: %w", err)
	}
	return b, ep, nil
}

// ErrNotP256 is returned by [TPM.ECDH] for a peer key on another curve.
var ErrNotP256 = errors.New("tpm: ecdh: peer key is not P-256")

// ECDH computes the ECDH shared secret Z (the x-coordinate of d·peer, 32
// bytes; SP 800-56A §5.7.1.2) inside the TPM with TPM2_ECDH_ZGen, using the
// key in b from [TPM.CreateDecryptionKey]. The private scalar never leaves
// the TPM. peer was validated as a P-256 point by crypto/ecdh.
func (t *TPM) ECDH(b *KeyBlob, peer *ecdh.PublicKey) ([]byte, error) {
	if b == nil {
		return nil, fmt.Errorf("%w: nil", ErrInvalidBlob)
	}
	if peer == nil || peer.Curve() != ecdh.P256() {
		return nil, ErrNotP256
	}
	raw := peer.Bytes() // 0x04 ‖ X ‖ Y
	if len(raw) != 65 || raw[0] != 4 {
		return nil, ErrNotP256
	}
	if err := t.lock(); err != nil {
		return nil, err
	}
	defer t.mu.Unlock()
	h, err := t.load(b)
	if err != nil {
		return nil, err
	}
	defer t.flush(h.Handle)
	rsp, err := tpm2.ECDHZGen{
		// The shared point is the secret: the response is encrypted on the bus too.
		KeyHandle: tpm2.AuthHandle{Handle: h.Handle, Name: h.Name, Auth: t.sessionInOut(nil)},
		InPoint: tpm2.New2B(tpm2.TPMSECCPoint{
			X: tpm2.TPM2BECCParameter{Buffer: raw[1:33]},
			Y: tpm2.TPM2BECCParameter{Buffer: raw[33:]},
		}),
	}.Execute(t.tpm)
	if err != nil {
		return nil, classify("ecdh zgen", err)
	}
	pt, err := rsp.OutPoint.Contents()
	if err != nil {
		return nil, fmt.Errorf("tpm: ecdh zgen: %w", err)
	}
	x := pt.X.Buffer
	if len(x) > 32 {
		return nil, errors.New("tpm: ecdh zgen: x-coordinate longer than 32 bytes")
	}
	z := make([]byte, 32)
	copy(z[32-len(x):], x)
	return z, nil
}
