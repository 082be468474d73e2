package tpm

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"github.com/google/go-tpm/tpm2"
)

const (
	// SaltSize is the size in bytes of the per-key KDF salt.
	SaltSize = 32
	// authSize is the size of the TPM auth value derived from a PIN: the
	// digest size of the key's nameAlg (SHA-256), the maximum the TPM accepts.
	authSize = 32
	// kdfInfo binds the derived auth value to this use and version.
	kdfInfo = "hwfido authenticatord tpm: uaf key authValue v1"
	// DigestSize is the size of the digests [TPM.Sign] accepts (SHA-256).
	DigestSize = sha256.Size
)

// ErrEmptyPIN is returned when a UAF key operation is given an empty PIN.
var ErrEmptyPIN = errors.New("tpm: empty PIN")

// KeyBlob is a TPM key as the daemon stores it: the TPM-wrapped private
// area (encrypted and integrity-protected by the SRK, usable only inside
// this TPM) and the public area, both in TPM wire format, plus the salt of
// the PIN KDF. It is not secret in the sense that the private key never
// leaves the TPM, but it should be stored readable only by its user.
type KeyBlob struct {
	// Public is the marshalled TPM2B_PUBLIC.
	Public []byte `json:"public"`
	// Private is the marshalled TPM2B_PRIVATE (wrapped by the SRK).
	Private []byte `json:"private"`
	// Salt is the salt of the PIN→authValue KDF; nil for keys without a PIN
	// (the attestation key).
	Salt []byte `json:"salt,omitempty"`
}

func (b *KeyBlob) decode() (tpm2.TPM2BPublic, tpm2.TPM2BPrivate, error) {
	if b == nil {
		return tpm2.TPM2BPublic{}, tpm2.TPM2BPrivate{}, fmt.Errorf("%w: nil", ErrInvalidBlob)
	}
	pub, err := tpm2.Unmarshal[tpm2.TPM2BPublic](b.Public)
	if err != nil {
		return tpm2.TPM2BPublic{}, tpm2.TPM2BPrivate{}, fmt.Errorf("%w: public: %w", ErrInvalidBlob, err)
	}
	if _, err := pub.Contents(); err != nil {
		return tpm2.TPM2BPublic{}, tpm2.TPM2BPrivate{}, fmt.Errorf("%w: public: %w", ErrInvalidBlob, err)
	}
	priv, err := tpm2.Unmarshal[tpm2.TPM2BPrivate](b.Private)
	if err != nil {
		return tpm2.TPM2BPublic{}, tpm2.TPM2BPrivate{}, fmt.Errorf("%w: private: %w", ErrInvalidBlob, err)
	}
	// Decode only what we wrote: the encodings must round-trip exactly.
	if !bytes.Equal(tpm2.Marshal(pub), b.Public) || !bytes.Equal(tpm2.Marshal(priv), b.Private) ||
		len(priv.Buffer) == 0 {
		return tpm2.TPM2BPublic{}, tpm2.TPM2BPrivate{}, fmt.Errorf("%w: trailing or inconsistent data", ErrInvalidBlob)
	}
	return *pub, *priv, nil
}

// PublicKey returns the ECDSA P-256 public key of the blob.
func (b *KeyBlob) PublicKey() (*ecdsa.PublicKey, error) {
	pub, _, err := b.decode()
	if err != nil {
		return nil, err
	}
	tp, err := pub.Contents()
	if err != nil {
		return nil, fmt.Errorf("%w: public contents: %w", ErrInvalidBlob, err)
	}
	if tp.Type != tpm2.TPMAlgECC {
		return nil, fmt.Errorf("%w: not an ECC key", ErrInvalidBlob)
	}
	k, err := tpm2.Pub(*tp)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidBlob, err)
	}
	ek, ok := k.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: not an ECDSA key", ErrInvalidBlob)
	}
	return ek, nil
}

// deriveAuth turns a PIN into the key's 32-byte TPM authValue: the first 32
// non-zero bytes of HKDF-SHA256(ikm = PIN, salt = 32 random bytes per key,
// info = kdfInfo) expanded to 96 bytes.
//
// A fast KDF suffices because the TPM, not this KDF, limits guessing: the
// authValue is stored only inside the SRK-wrapped private blob (usable only
// in this TPM), it travels only inside salted HMAC sessions, and every wrong
// guess costs a dictionary-attack try. The KDF's jobs are a fixed 32-byte
// value (the TPM rejects longer ones and strips trailing zeros from raw
// PINs) and per-key separation via the salt.
//
// Zero bytes are skipped because go-tpm v0.9.8's HMAC session truncates the
// auth value at its first zero byte (hmacKeyFromAuthValue lacks a break),
// while the TPM strips only trailing zeros: an auth value with an inner zero
// byte (≈12% of random 32-byte values) would never authorise. The result
// has 32·log2(255) ≈ 255.8 bits.
func deriveAuth(pin, salt []byte) ([]byte, error) {
	if len(pin) == 0 {
		return nil, ErrEmptyPIN
	}
	if len(salt) != SaltSize {
		return nil, fmt.Errorf("%w: salt is %d bytes, want %d", ErrInvalidBlob, len(salt), SaltSize)
	}
	k, err := hkdf.Key(sha256.New, pin, salt, kdfInfo, 3*authSize)
	if err != nil {
		return nil, fmt.Errorf("tpm: kdf: %w", err)
	}
	defer clear32(k)
	out, err := nonZero(k)
	if err != nil {
		return nil, fmt.Errorf("tpm: kdf: %w", err)
	}
	return out, nil
}

// nonZero returns the first authSize non-zero bytes of b.
func nonZero(b []byte) ([]byte, error) {
	out := make([]byte, 0, authSize)
	for _, c := range b {
		if c != 0 {
			out = append(out, c)
			if len(out) == authSize {
				return out, nil
			}
		}
	}
	// Probability below 2^-300 for 96 random bytes.
	return nil, errors.New("too many zero bytes")
}

func clear32(b []byte) {
	for i := range b {
		b[i] = 0
	}
}

// uafKeyTemplate is the public template of a UAF authentication key: ECC
// P-256, ECDSA-SHA256, non-restricted signing, fixed to this TPM and parent,
// authorised by its authValue (UserWithAuth) and dictionary-attack protected
// (NoDA clear) so the TPM's lockout limits PIN guessing.
func uafKeyTemplate(noDA bool) tpm2.TPMTPublic {
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgECC,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			FixedTPM:            true,
			FixedParent:         true,
			SensitiveDataOrigin: true,
			UserWithAuth:        true,
			NoDA:                noDA,
			SignEncrypt:         true,
		},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Scheme: tpm2.TPMTECCScheme{
				Scheme: tpm2.TPMAlgECDSA,
				Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA,
					&tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256}),
			},
			CurveID: tpm2.TPMECCNistP256,
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{}),
	}
}

// CreateKey creates a new UAF authentication key (ECC P-256) under the SRK
// whose authValue is derived from pin with a fresh salt, and returns its
// blobs. The PIN is checked by the TPM on every later use.
func (t *TPM) CreateKey(pin []byte) (*KeyBlob, error) {
	salt := make([]byte, SaltSize)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("tpm: salt: %w", err)
	}
	auth, err := deriveAuth(pin, salt)
	if err != nil {
		return nil, err
	}
	defer clear32(auth)
	b, err := t.create(uafKeyTemplate(false), auth)
	if err != nil {
		return nil, err
	}
	b.Salt = salt
	return b, nil
}

func (t *TPM) create(tmpl tpm2.TPMTPublic, auth []byte) (*KeyBlob, error) {
	if err := t.lock(); err != nil {
		return nil, err
	}
	defer t.mu.Unlock()
	cmd := tpm2.Create{
		ParentHandle: t.srk(),
		InSensitive: tpm2.TPM2BSensitiveCreate{Sensitive: &tpm2.TPMSSensitiveCreate{
			UserAuth: tpm2.TPM2BAuth{Buffer: auth},
		}},
		InPublic: tpm2.New2B(tmpl),
	}
	rsp, err := cmd.Execute(t.tpm)
	if errors.Is(err, tpm2.TPMRCObjectMemory) || errors.Is(err, tpm2.TPMRCSessionMemory) {
		// Free what this layer keeps loaded (the cached key, the reusable
		// session) and try once more.
		t.dropCached()
		cmd.ParentHandle = t.srk()
		rsp, err = cmd.Execute(t.tpm)
	}
	if err != nil {
		return nil, classify("create key", err)
	}
	return &KeyBlob{Public: tpm2.Marshal(rsp.OutPublic), Private: tpm2.Marshal(rsp.OutPrivate)}, nil
}

// Sign signs a SHA-256 digest with the UAF key in b after the TPM has
// checked pin, and returns the signature as raw r‖s (64 bytes, each half
// left-padded), the UAF ALG_SIGN_SECP256R1_ECDSA_SHA256_RAW encoding; use
// [RawToDER] for the DER form. The data is hashed in software (it was not
// produced by the TPM), so TPM2_Sign gets the NULL hash-check ticket.
//
// A wrong PIN returns an error matching [ErrAccessDenied] and costs a
// dictionary-attack try; during lockout the error matches [ErrUserLockout].
func (t *TPM) Sign(b *KeyBlob, pin, digest []byte) ([]byte, error) {
	if b == nil {
		return nil, fmt.Errorf("%w: nil", ErrInvalidBlob)
	}
	auth, err := deriveAuth(pin, b.Salt)
	if err != nil {
		return nil, err
	}
	defer clear32(auth)
	return t.sign(b, auth, digest)
}

// SignMessage hashes msg with SHA-256 and signs it like [TPM.Sign]. Use it
// for the UAF KRD and SIGNED_DATA TLVs.
func (t *TPM) SignMessage(b *KeyBlob, pin, msg []byte) ([]byte, error) {
	d := sha256.Sum256(msg)
	return t.Sign(b, pin, d[:])
}

func (t *TPM) sign(b *KeyBlob, auth, digest []byte) ([]byte, error) {
	if len(digest) != DigestSize {
		return nil, fmt.Errorf("tpm: sign: digest is %d bytes, want %d", len(digest), DigestSize)
	}
	if err := t.lock(); err != nil {
		return nil, err
	}
	defer t.mu.Unlock()
	rsp, err := t.signCached(b, auth, digest)
	if errors.Is(err, errStale) {
		// A cached handle or the session vanished (the TPM was restarted
		// under us, or leftovers were flushed): start over once. Stale
		// handles fail before any authorisation check, so this costs no
		// dictionary-attack try.
		t.log.Info("tpm: cached key or session gone; reloading", "err", err)
		t.dropCached()
		rsp, err = t.signCached(b, auth, digest)
	}
	if err != nil {
		return nil, err
	}
	sig, err := rsp.Signature.Signature.ECDSA()
	if err != nil {
		return nil, fmt.Errorf("tpm: sign: %w", err)
	}
	r, s := sig.SignatureR.Buffer, sig.SignatureS.Buffer
	if len(r) > 32 || len(s) > 32 {
		return nil, errors.New("tpm: sign: signature component longer than 32 bytes")
	}
	out := make([]byte, 64)
	copy(out[32-len(r):32], r)
	copy(out[64-len(s):], s)
	return out, nil
}

// ChangePIN re-wraps the key in b for newPIN with TPM2_ObjectChangeAuth
// after the TPM has checked oldPIN, and returns the new blob (new private
// area and salt; same public key and KeyID). The caller must replace the
// stored blob atomically and discard the old one: the TPM cannot revoke the
// old private blob, which keeps working with the old PIN for as long as a
// copy of it exists.
func (t *TPM) ChangePIN(b *KeyBlob, oldPIN, newPIN []byte) (*KeyBlob, error) {
	if b == nil {
		return nil, fmt.Errorf("%w: nil", ErrInvalidBlob)
	}
	oldAuth, err := deriveAuth(oldPIN, b.Salt)
	if err != nil {
		return nil, err
	}
	defer clear32(oldAuth)
	salt := make([]byte, SaltSize)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("tpm: salt: %w", err)
	}
	newAuth, err := deriveAuth(newPIN, salt)
	if err != nil {
		return nil, err
	}
	defer clear32(newAuth)

	if err := t.lock(); err != nil {
		return nil, err
	}
	defer t.mu.Unlock()
	// The old blob must not stay usable in the TPM, and ObjectChangeAuth
	// needs the object slots.
	t.dropCached()
	h, err := t.load(b)
	if err != nil {
		return nil, err
	}
	defer t.flush(h.Handle)
	rsp, err := tpm2.ObjectChangeAuth{
		ObjectHandle: tpm2.AuthHandle{Handle: h.Handle, Name: h.Name, Auth: t.session(oldAuth)},
		ParentHandle: tpm2.NamedHandle{Handle: t.srkHandle, Name: t.srkName},
		NewAuth:      tpm2.TPM2BAuth{Buffer: newAuth},
	}.Execute(t.tpm)
	if err != nil {
		return nil, classify("change auth", err)
	}
	return &KeyBlob{
		Public:  append([]byte(nil), b.Public...),
		Private: tpm2.Marshal(rsp.OutPrivate),
		Salt:    salt,
	}, nil
}

// RawToDER converts a raw r‖s P-256 signature (64 bytes) to ASN.1 DER
// (ECDSA-Sig-Value), the UAF ALG_SIGN_SECP256R1_ECDSA_SHA256_DER encoding.
func RawToDER(raw []byte) ([]byte, error) {
	if len(raw) != 64 {
		return nil, fmt.Errorf("tpm: raw signature is %d bytes, want 64", len(raw))
	}
	der, err := asn1.Marshal(struct{ R, S *big.Int }{
		new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:]),
	})
	if err != nil {
		return nil, fmt.Errorf("tpm: der: %w", err)
	}
	return der, nil
}
