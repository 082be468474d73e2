package attestation

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fidoserver/hwfido/uaf"
)

// OIDFIDOGenCeAAID is id-fido-gen-ce-aaid: an OCTET STRING holding the AAID in
// a UAF attestation certificate.
var OIDFIDOGenCeAAID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 45724, 1, 1, 1}

// Sentinel reasons wrapped by the errors of [VerifyUAF].
var (
	// ErrType: the attestation type is not allowed or not implemented.
	ErrType = errors.New("attestation type not acceptable")
	// ErrNoRoots: Basic Full without any trust anchor.
	ErrNoRoots = errors.New("no trust anchors for basic full attestation")
	// ErrCertificate: an attestation certificate does not parse, or a
	// surrogate assertion carries certificates.
	ErrCertificate = errors.New("invalid attestation certificate")
	// ErrChain: the chain does not build to a trust anchor at the chosen time.
	ErrChain = errors.New("certificate chain not trusted")
	// ErrAAID: the leaf's AAID extension differs from the KRD's AAID.
	ErrAAID = errors.New("aaid extension mismatch")
	// ErrSignature: the attestation signature does not verify.
	ErrSignature = errors.New("attestation signature invalid")
	// ErrAlgorithm: the declared algorithm or key encoding is unsupported or
	// does not fit the attestation key.
	ErrAlgorithm = errors.New("attestation algorithm not acceptable")
)

// UAFOptions configures [VerifyUAF]. The zero value accepts Basic Full and
// Basic Surrogate, has no trust anchors (so Basic Full fails) and verifies at
// time.Now().
type UAFOptions struct {
	// Roots are the trust anchors: the metadata statement's
	// attestationRootCertificates. Each may be a root, an intermediate or the
	// attestation certificate itself.
	Roots []*x509.Certificate
	// AllowedTypes are the acceptable attestation types (the statement's
	// attestationTypes). Empty means Basic Full and Basic Surrogate. Basic
	// Surrogate is refused when Roots is not empty and AllowedTypes does not
	// list Basic Full (the statement expects another attestation method).
	AllowedTypes []uaf.AttestationType
	// CurrentTime is the verification time for certificate validity; zero
	// means time.Now().
	CurrentTime time.Time
}

// UAFResult describes a verified UAF attestation.
type UAFResult struct {
	Type uaf.AttestationType
	// Chain is the verified path, leaf first, ending at the anchor (Basic Full
	// only).
	Chain []*x509.Certificate
	// HasAAIDExtension reports whether the leaf carried (and matched) the AAID
	// extension.
	HasAAIDExtension bool
}

func attErr(sentinel error, format string, args ...any) error {
	return &uaf.Error{Code: uaf.StatusUnacceptableAttestation, Msg: "attestation: " + fmt.Sprintf(format, args...), Err: sentinel}
}

func algErr(cause error, format string, args ...any) error {
	return &uaf.Error{Code: uaf.StatusUnacceptableAlgorithm, Msg: "attestation: " + fmt.Sprintf(format, args...),
		Err: fmt.Errorf("%w: %w", ErrAlgorithm, cause)}
}

// VerifyUAF verifies the attestation of a parsed registration assertion (see
// the package documentation). It does not check the FinalChallengeHash or the
// policy; the caller does.
func VerifyUAF(a *uaf.RegAssertion, opts UAFOptions) (*UAFResult, error) {
	allowed := opts.AllowedTypes
	if len(allowed) == 0 {
		allowed = []uaf.AttestationType{uaf.AttestationBasicFull, uaf.AttestationBasicSurrogate}
	}
	if !slices.Contains(allowed, a.AttestationType) {
		return nil, attErr(ErrType, "type %v not allowed", a.AttestationType)
	}
	if !a.SignAlg.Supported() {
		return nil, algErr(uaf.ErrUnsupportedAlg, "algorithm %v", a.SignAlg)
	}
	switch a.AttestationType {
	case uaf.AttestationBasicSurrogate:
		// A statement with trust anchors expects another attestation method (UAF 1.1
		// protocol §3.4.6.5): surrogate is refused then, unless Basic Full is listed too
		// (real statements list both; reference metadata.md §7).
		if len(opts.Roots) > 0 && !slices.Contains(allowed, uaf.AttestationBasicFull) {
			return nil, attErr(ErrType, "basic surrogate, but the statement has attestation roots and no basic full")
		}
		return verifySurrogate(a)
	case uaf.AttestationBasicFull:
		return verifyFull(a, opts)
	}
	return nil, attErr(ErrType, "type %v not implemented", a.AttestationType)
}

func verifySurrogate(a *uaf.RegAssertion) (*UAFResult, error) {
	if len(a.Certificates) != 0 {
		return nil, attErr(ErrCertificate, "basic surrogate with certificates")
	}
	pub, err := uaf.ParsePublicKey(a.PubKeyEncoding, a.SignAlg, a.PubKey)
	if err != nil {
		if uaf.StatusOf(err) == uaf.StatusUnacceptableAlgorithm {
			return nil, algErr(err, "uauth key")
		}
		return nil, attErr(errors.Join(ErrSignature, err), "uauth key")
	}
	if err := uaf.VerifySignature(a.SignAlg, pub, a.RawKRD, a.Signature); err != nil {
		return nil, attErr(errors.Join(ErrSignature, err), "surrogate signature")
	}
	return &UAFResult{Type: uaf.AttestationBasicSurrogate}, nil
}

func verifyFull(a *uaf.RegAssertion, opts UAFOptions) (*UAFResult, error) {
	if len(opts.Roots) == 0 {
		return nil, attErr(ErrNoRoots, "basic full")
	}
	if len(a.Certificates) == 0 {
		return nil, attErr(ErrCertificate, "basic full without certificate")
	}
	certs := make([]*x509.Certificate, len(a.Certificates))
	for i, der := range a.Certificates {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, attErr(errors.Join(ErrCertificate, err), "certificate %d", i)
		}
		certs[i] = c
	}
	leaf := certs[0]
	res := &UAFResult{Type: uaf.AttestationBasicFull}
	// The AAID extension: checked here, so a critical one must not fail
	// Go's unhandled-critical-extension check.
	for _, ext := range leaf.Extensions {
		if !ext.Id.Equal(OIDFIDOGenCeAAID) {
			continue
		}
		var v []byte
		if rest, err := asn1.Unmarshal(ext.Value, &v); err != nil || len(rest) != 0 {
			return nil, attErr(ErrAAID, "aaid extension is not an OCTET STRING")
		}
		if !strings.EqualFold(string(v), a.AAID) {
			return nil, attErr(ErrAAID, "certificate aaid %q, assertion %q", v, a.AAID)
		}
		res.HasAAIDExtension = true
		leaf.UnhandledCriticalExtensions = slices.DeleteFunc(slices.Clone(leaf.UnhandledCriticalExtensions),
			func(o asn1.ObjectIdentifier) bool { return o.Equal(OIDFIDOGenCeAAID) })
	}
	roots := x509.NewCertPool()
	for _, r := range opts.Roots {
		roots.AddCert(r)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   opts.CurrentTime,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, attErr(errors.Join(ErrChain, err), "chain")
	}
	res.Chain = chains[0]
	if err := uaf.CheckKeyAlg(a.SignAlg, leaf.PublicKey); err != nil {
		return nil, algErr(err, "leaf key %T for %v", leaf.PublicKey, a.SignAlg)
	}
	if err := uaf.VerifySignature(a.SignAlg, leaf.PublicKey, a.RawKRD, a.Signature); err != nil {
		return nil, attErr(errors.Join(ErrSignature, err), "full signature")
	}
	return res, nil
}
