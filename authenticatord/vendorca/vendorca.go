package vendorca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // RFC 5280 §4.2.1.2 method 1 key identifier
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/fidoserver/hwfido/uaf"
)

// OIDAAID is id-fido-gen-ce-aaid (FIDO Metadata Statement §3.1, UAF
// Protocol §3.4.6.5 / FIDO Authenticator Attestation).
var OIDAAID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 45724, 1, 1, 1}

// Errors callers branch on.
var (
	// ErrInvalid: an input (AAID, key, certificate) is malformed.
	ErrInvalid = errors.New("vendorca: invalid input")
	// ErrMismatch: a certificate does not belong to the expected key, AAID
	// or root.
	ErrMismatch = errors.New("vendorca: certificate mismatch")
)

// AAIDExtension returns the non-critical id-fido-gen-ce-aaid extension for aaid.
func AAIDExtension(aaid string) (pkix.Extension, error) {
	if !uaf.ValidAAID(aaid) {
		return pkix.Extension{}, fmt.Errorf("%w: AAID %q", ErrInvalid, aaid)
	}
	v, err := asn1.Marshal([]byte(aaid))
	if err != nil {
		return pkix.Extension{}, fmt.Errorf("vendorca: aaid extension: %w", err)
	}
	return pkix.Extension{Id: OIDAAID, Value: v}, nil
}

// CertAAID returns the AAID in cert's id-fido-gen-ce-aaid extension, or ""
// when it has none.
func CertAAID(cert *x509.Certificate) (string, error) {
	for _, e := range cert.Extensions {
		if !e.Id.Equal(OIDAAID) {
			continue
		}
		var b []byte
		rest, err := asn1.Unmarshal(e.Value, &b)
		if err != nil || len(rest) != 0 {
			return "", fmt.Errorf("%w: aaid extension is not an OCTET STRING", ErrInvalid)
		}
		return string(b), nil
	}
	return "", nil
}

// RootOptions configures [NewRoot]. The zero value is usable except for Signer.
type RootOptions struct {
	// Subject of the root; zero means O=hwfido, CN=hwfido Vendor Attestation Root.
	Subject pkix.Name
	// NotBefore defaults to now − 1 h; Validity defaults to 20 years.
	NotBefore time.Time
	Validity  time.Duration
}

// LeafOptions configures [IssueLeaf].
type LeafOptions struct {
	// AAID goes into the id-fido-gen-ce-aaid extension. Required.
	AAID string
	// PublicKey is the device attestation key (ECDSA P-256). Required.
	PublicKey crypto.PublicKey
	// Subject; zero means O=hwfido, OU=Authenticator Attestation,
	// CN=hwfido TPM attestation <AAID>.
	Subject pkix.Name
	// NotBefore defaults to now − 1 h; Validity defaults to 10 years.
	NotBefore time.Time
	Validity  time.Duration
}

func serial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("vendorca: serial: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}

func keyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: public key: %w", ErrInvalid, err)
	}
	var spki struct {
		Alg asn1.RawValue
		Key asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, fmt.Errorf("vendorca: key id: %w", err)
	}
	h := sha1.Sum(spki.Key.Bytes) //nolint:gosec // key identifier, not a signature
	return h[:], nil
}

// NewRoot makes the self-signed vendor root certificate of signer's key
// (signature ECDSA-SHA256; the signer must accept SHA-256 digests).
func NewRoot(signer crypto.Signer, opts RootOptions) (*x509.Certificate, error) {
	if signer == nil {
		return nil, fmt.Errorf("%w: nil signer", ErrInvalid)
	}
	if opts.Subject.CommonName == "" {
		opts.Subject = pkix.Name{Organization: []string{"hwfido"}, CommonName: "hwfido Vendor Attestation Root"}
	}
	nb, validity := opts.NotBefore, opts.Validity
	if nb.IsZero() {
		nb = time.Now().Add(-time.Hour)
	}
	if validity == 0 {
		validity = 20 * 365 * 24 * time.Hour
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	ski, err := keyID(signer.Public())
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: sn, Subject: opts.Subject, NotBefore: nb.UTC(), NotAfter: nb.Add(validity).UTC(),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true,
		MaxPathLen: 0, MaxPathLenZero: true, SubjectKeyId: ski, SignatureAlgorithm: x509.ECDSAWithSHA256}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("vendorca: create root: %w", err)
	}
	return x509.ParseCertificate(der)
}

// IssueLeaf certifies a device attestation key under root, signing with
// signer (the root's key).
func IssueLeaf(signer crypto.Signer, root *x509.Certificate, opts LeafOptions) (*x509.Certificate, error) {
	if signer == nil || root == nil {
		return nil, fmt.Errorf("%w: signer and root are required", ErrInvalid)
	}
	if !publicEqual(signer.Public(), root.PublicKey) {
		return nil, fmt.Errorf("%w: signer key is not the root's key", ErrMismatch)
	}
	ec, ok := opts.PublicKey.(*ecdsa.PublicKey)
	if !ok || ec.Curve.Params().Name != "P-256" {
		return nil, fmt.Errorf("%w: attestation key must be ECDSA P-256", ErrInvalid)
	}
	ext, err := AAIDExtension(opts.AAID)
	if err != nil {
		return nil, err
	}
	if opts.Subject.CommonName == "" {
		opts.Subject = pkix.Name{Organization: []string{"hwfido"}, OrganizationalUnit: []string{"Authenticator Attestation"},
			CommonName: "hwfido TPM attestation " + opts.AAID}
	}
	nb, validity := opts.NotBefore, opts.Validity
	if nb.IsZero() {
		nb = time.Now().Add(-time.Hour)
	}
	if validity == 0 {
		validity = 10 * 365 * 24 * time.Hour
	}
	if na := nb.Add(validity); na.After(root.NotAfter) {
		validity = root.NotAfter.Sub(nb)
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	ski, err := keyID(ec)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: sn, Subject: opts.Subject, NotBefore: nb.UTC(), NotAfter: nb.Add(validity).UTC(),
		KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: false,
		SubjectKeyId: ski, AuthorityKeyId: root.SubjectKeyId, ExtraExtensions: []pkix.Extension{ext},
		SignatureAlgorithm: x509.ECDSAWithSHA256}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, ec, signer)
	if err != nil {
		return nil, fmt.Errorf("vendorca: issue leaf: %w", err)
	}
	return x509.ParseCertificate(der)
}

func publicEqual(a, b crypto.PublicKey) bool {
	x, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && x.Equal(b)
}

// CheckOptions configures [CheckLeaf].
type CheckOptions struct {
	// AAID the leaf must name. Required.
	AAID string
	// PublicKey the leaf must certify. Required.
	PublicKey crypto.PublicKey
	// Root the leaf must chain to (directly). Required.
	Root *x509.Certificate
	// Now is the verification time; zero means time.Now().
	Now time.Time
}

// CheckLeaf verifies that leaf is a valid attestation certificate for
// opts.PublicKey and opts.AAID issued by opts.Root.
func CheckLeaf(leaf *x509.Certificate, opts CheckOptions) error {
	if leaf == nil || opts.Root == nil {
		return fmt.Errorf("%w: leaf and root are required", ErrInvalid)
	}
	if !publicEqual(opts.PublicKey, leaf.PublicKey) {
		return fmt.Errorf("%w: certificate is not for this attestation key", ErrMismatch)
	}
	got, err := CertAAID(leaf)
	if err != nil {
		return err
	}
	if !bytes.EqualFold([]byte(got), []byte(opts.AAID)) {
		return fmt.Errorf("%w: certificate AAID %q, want %q", ErrMismatch, got, opts.AAID)
	}
	pool := x509.NewCertPool()
	pool.AddCert(opts.Root)
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	// The AAID extension is not critical, so x509 accepts it; any EKU is fine.
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("%w: %w", ErrMismatch, err)
	}
	return nil
}

// EncodePEM returns the PEM "CERTIFICATE" blocks of certs.
func EncodePEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// ParsePEM parses every "CERTIFICATE" block of data (at least one).
func ParsePEM(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no CERTIFICATE block", ErrInvalid)
	}
	return out, nil
}

// EncodePublicKeyPEM returns pub as a PEM "PUBLIC KEY" (SPKI) block.
func EncodePublicKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePublicKeyPEM parses a PEM "PUBLIC KEY" block holding an ECDSA P-256 key.
func ParsePublicKeyPEM(data []byte) (*ecdsa.PublicKey, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("%w: no PUBLIC KEY block", ErrInvalid)
	}
	k, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	ec, ok := k.(*ecdsa.PublicKey)
	if !ok || ec.Curve.Params().Name != "P-256" {
		return nil, fmt.Errorf("%w: not an ECDSA P-256 key", ErrInvalid)
	}
	return ec, nil
}
