package authr

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/fidoserver/hwfido/authenticatord/tpm"
	"github.com/fidoserver/hwfido/authenticatord/vendorca"
	"github.com/fidoserver/hwfido/internal/atomicfile"
)

// attestation is the installed Basic Full material.
type attestation struct {
	key      *tpm.KeyBlob
	leaf     *x509.Certificate
	root     *x509.Certificate
	chainDER [][]byte // TAG_ATTESTATION_CERT values: the leaf only
}

// Files in <StateDir>/attestation.
const (
	akFile   = "key.json" // the TPM attestation key blob
	certFile = "cert.pem" // the leaf certificate
	rootFile = "root.pem" // the vendor root (metadata attestationRootCertificates)
)

func (a *Authenticator) attPath(name string) string { return filepath.Join(a.dir, "attestation", name) }

// loadAttestation reads the attestation key and, if installed, its
// certificate and root.
func (a *Authenticator) loadAttestation() error {
	b, err := os.ReadFile(a.attPath(akFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("authr: attestation key: %w", err)
	}
	var kb tpm.KeyBlob
	if err := json.Unmarshal(b, &kb); err != nil {
		return fmt.Errorf("authr: attestation key: %w", err)
	}
	a.akPend = &kb
	cb, err := os.ReadFile(a.attPath(certFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("authr: attestation certificate: %w", err)
	}
	rb, err := os.ReadFile(a.attPath(rootFile))
	if err != nil {
		return fmt.Errorf("authr: attestation root: %w", err)
	}
	att, err := a.checkChain(&kb, cb, rb)
	if err != nil {
		return err
	}
	a.att = att
	return nil
}

func (a *Authenticator) checkChain(kb *tpm.KeyBlob, certPEM, rootPEM []byte) (*attestation, error) {
	pub, err := kb.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("authr: attestation key: %w", err)
	}
	leaves, err := vendorca.ParsePEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("authr: attestation certificate: %w", err)
	}
	roots, err := vendorca.ParsePEM(rootPEM)
	if err != nil {
		return nil, fmt.Errorf("authr: attestation root: %w", err)
	}
	if err := vendorca.CheckLeaf(leaves[0], vendorca.CheckOptions{AAID: a.aaid, PublicKey: pub, Root: roots[0], Now: a.now()}); err != nil {
		return nil, fmt.Errorf("authr: attestation certificate: %w", err)
	}
	return &attestation{key: kb, leaf: leaves[0], root: roots[0], chainDER: [][]byte{leaves[0].Raw}}, nil
}

// CreateAttestationKey creates the TPM attestation key (replacing any
// earlier one and uninstalling its certificate) and returns its public key
// for the vendor CA to certify (`fidoctl vendor certify`).
func (a *Authenticator) CreateAttestationKey() (*ecdsa.PublicKey, error) {
	kb, pub, err := a.tpm.CreateAttestationKey()
	if err != nil {
		return nil, fmt.Errorf("authr: create attestation key: %w", err)
	}
	b, err := json.Marshal(kb)
	if err != nil {
		return nil, fmt.Errorf("authr: create attestation key: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, f := range []string{certFile, rootFile} {
		if err := os.Remove(a.attPath(f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("authr: create attestation key: %w", err)
		}
	}
	if err := atomicfile.Write(a.attPath(akFile), b, 0o600); err != nil {
		return nil, fmt.Errorf("authr: attestation key: %w", err)
	}
	a.akPend, a.att = kb, nil
	a.audit.Info("attestation key created")
	return pub, nil
}

// AttestationPublicKey returns the current attestation key's public key,
// or nil if none was created.
func (a *Authenticator) AttestationPublicKey() (*ecdsa.PublicKey, error) {
	a.mu.Lock()
	kb := a.akPend
	a.mu.Unlock()
	if kb == nil {
		return nil, nil
	}
	return kb.PublicKey()
}

// InstallCertificate checks that certPEM's first certificate certifies the
// attestation key for this AAID under rootPEM's first certificate, stores
// both and enables Basic Full attestation.
func (a *Authenticator) InstallCertificate(certPEM, rootPEM []byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.akPend == nil {
		return errors.New("authr: no attestation key: create one first")
	}
	att, err := a.checkChain(a.akPend, certPEM, rootPEM)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(a.attPath(rootFile), vendorca.EncodePEM(att.root), 0o644); err != nil {
		return fmt.Errorf("authr: attestation root: %w", err)
	}
	if err := atomicfile.Write(a.attPath(certFile), vendorca.EncodePEM(att.leaf), 0o644); err != nil {
		return fmt.Errorf("authr: attestation certificate: %w", err)
	}
	a.att = att
	a.audit.Info("attestation certificate installed", "subject", att.leaf.Subject.String(), "notAfter", att.leaf.NotAfter)
	return nil
}
