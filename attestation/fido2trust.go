package attestation

import (
	"bytes"
	"context"
	"crypto/sha1" //nolint:gosec // FIDO key identifiers are defined as SHA-1 (RFC 5280 §4.2.1.2 method 1).
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"
)

// FIDO2Anchor is what attestation trust needs from one metadata statement (FIDO MDS3
// §3.2 "attestationRootCertificates", "attestationTypes").
type FIDO2Anchor struct {
	// Roots are the statement's attestation root certificates.
	Roots []*x509.Certificate
	// AttestationTypes are the statement's attestation types as go-webauthn names them
	// ("basic_full", "basic_surrogate", "attca", "anonca", "none"); empty means any.
	AttestationTypes []string
	// Algorithms are the COSE algorithm identifiers the statement lists
	// ("authenticationAlgorithms"); empty means any.
	Algorithms []int64
	// U2F marks a statement of the "u2f" protocol family: it vouches only for fido-u2f
	// attestations, not for another format that happens to carry a zero AAGUID and the
	// same attestation key.
	U2F bool
	// Check, when set, is called as soon as the statement is found, with the verification
	// time and the presented attestation chain (leaf first; empty for self attestation);
	// an error refuses the attestation (the MDS status check of FIDO MDS3 §3.1.4). It runs
	// before the other checks, so that a refused status is reported as such whatever else
	// is wrong with the attestation.
	Check func(now time.Time, chain []*x509.Certificate) error
}

// FIDO2Anchors looks up metadata for FIDO2 attestation trust: FIDO2 authenticators by
// AAGUID, U2F authenticators (zero AAGUID) by attestation certificate key identifier
// (lower-case hex SHA-1 of the subjectPublicKey). Both return (nil, nil) when no statement
// matches. Implementations are safe for concurrent use.
type FIDO2Anchors interface {
	FIDO2AnchorByAAGUID(ctx context.Context, aaguid [16]byte) (*FIDO2Anchor, error)
	FIDO2AnchorByKeyIdentifier(ctx context.Context, keyIdentifier string) (*FIDO2Anchor, error)
}

// FIDO2FormatAnchors is an optional interface of a [FIDO2Anchors] for attestation
// formats whose authenticators report no AAGUID and use a vendor-wide chain ("apple"):
// it returns the anchor configured for the format, or (nil, nil).
type FIDO2FormatAnchors interface {
	FIDO2AnchorByFormat(ctx context.Context, format string) (*FIDO2Anchor, error)
}

// FIDO2TrustReason says why [VerifyFIDO2Trust] refused an attestation.
type FIDO2TrustReason int

// Reasons for [FIDO2TrustError].
const (
	// FIDO2NoAttestation: the authenticator sent no attestation (fmt "none").
	FIDO2NoAttestation FIDO2TrustReason = iota + 1
	// FIDO2NoMetadata: no metadata statement matches the AAGUID or key identifier.
	FIDO2NoMetadata
	// FIDO2TypeNotAllowed: the statement does not list the attestation type.
	FIDO2TypeNotAllowed
	// FIDO2RootInChain: x5c contains a self-signed (root) certificate.
	FIDO2RootInChain
	// FIDO2ChainInvalid: x5c does not chain to the statement's roots at the given time.
	FIDO2ChainInvalid
	// FIDO2MissingChain: a certificate-based attestation type came without x5c.
	FIDO2MissingChain
	// FIDO2AlgorithmNotAllowed: the statement does not list the attestation's alg.
	FIDO2AlgorithmNotAllowed
	// FIDO2StatusRefused: the anchor's Check (MDS status) refused the authenticator.
	FIDO2StatusRefused
)

var fido2ReasonText = map[FIDO2TrustReason]string{
	FIDO2NoAttestation:       "no attestation",
	FIDO2NoMetadata:          "no metadata statement for the authenticator",
	FIDO2TypeNotAllowed:      "attestation type not listed in the metadata statement",
	FIDO2RootInChain:         "attestation chain contains a root certificate",
	FIDO2ChainInvalid:        "attestation chain does not verify to the metadata roots",
	FIDO2MissingChain:        "attestation certificate chain missing",
	FIDO2AlgorithmNotAllowed: "attestation algorithm not listed in the metadata statement",
	FIDO2StatusRefused:       "authenticator status refused",
}

// FIDO2TrustError reports a refused attestation.
type FIDO2TrustError struct {
	Reason FIDO2TrustReason
	Err    error // underlying error, may be nil
}

func (e *FIDO2TrustError) Error() string {
	if e.Err != nil {
		return "attestation: " + fido2ReasonText[e.Reason] + ": " + e.Err.Error()
	}
	return "attestation: " + fido2ReasonText[e.Reason]
}

// Unwrap returns the underlying error.
func (e *FIDO2TrustError) Unwrap() error { return e.Err }

// Is matches another *FIDO2TrustError with the same Reason.
func (e *FIDO2TrustError) Is(target error) bool {
	t, ok := target.(*FIDO2TrustError)
	return ok && t.Reason == e.Reason
}

// FIDO2Evidence is the verified attestation of one registration, as go-webauthn's format
// handlers report it.
type FIDO2Evidence struct {
	// Format is the attestation statement format ("packed", "fido-u2f", …).
	Format string
	// Type is the attestation type ("basic_full", "basic_surrogate", "attca", "anonca",
	// "none").
	Type string
	// AAGUID from the attested credential data.
	AAGUID [16]byte
	// X5C is the attestation certificate chain, leaf first, as sent (DER).
	X5C [][]byte
	// Alg is the attestation statement's "alg" (COSE), 0 when the format has none.
	Alg int64
	// Now is the verification time (default time.Now).
	Now time.Time
}

// KeyIdentifier returns the FIDO attestation certificate key identifier of cert: the
// lower-case hex SHA-1 of its subjectPublicKey BIT STRING (RFC 5280 §4.2.1.2 method 1,
// FIDO MDS3 "attestationCertificateKeyIdentifiers").
func KeyIdentifier(cert *x509.Certificate) (string, error) {
	var spki struct {
		Algorithm asn1.RawValue
		Key       asn1.BitString
	}
	if _, err := asn1.Unmarshal(cert.RawSubjectPublicKeyInfo, &spki); err != nil {
		return "", fmt.Errorf("attestation: subjectPublicKeyInfo: %w", err)
	}
	sum := sha1.Sum(spki.Key.Bytes) //nolint:gosec // identifier, not a signature
	return hex.EncodeToString(sum[:]), nil
}

// VerifyFIDO2Trust decides whether ev chains to the metadata in anchors (FIDO MDS3 §3.1.5
// / WebAuthn L3 §7.1 steps 23–24): it finds the statement (by key identifier for
// fido-u2f and zero AAGUIDs, by AAGUID otherwise), checks that the anchor's Check (MDS
// status) accepts, that the statement lists the attestation type and the statement's
// algorithms ev.Alg, that x5c carries no self-signed certificate, and that x5c[0]
// verifies to the statement's anchors with x5c[1:] as intermediates at ev.Now. Zero-AAGUID formats other than fido-u2f
// without a key-identifier statement fall back to [FIDO2FormatAnchors] when anchors
// implements it ("apple"). A nil error means trusted; refusals are *[FIDO2TrustError].
func VerifyFIDO2Trust(ctx context.Context, anchors FIDO2Anchors, ev FIDO2Evidence) error {
	if ev.Format == "none" || ev.Type == "none" || ev.Type == "" {
		return &FIDO2TrustError{Reason: FIDO2NoAttestation}
	}
	if anchors == nil {
		return &FIDO2TrustError{Reason: FIDO2NoMetadata}
	}
	if ev.Now.IsZero() {
		ev.Now = time.Now()
	}
	certs := make([]*x509.Certificate, 0, len(ev.X5C))
	for i, der := range ev.X5C {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return &FIDO2TrustError{Reason: FIDO2ChainInvalid, Err: fmt.Errorf("x5c[%d]: %w", i, err)}
		}
		certs = append(certs, c)
	}
	var (
		anchor *FIDO2Anchor
		err    error
	)
	if ev.AAGUID == ([16]byte{}) || ev.Format == "fido-u2f" {
		if len(certs) > 0 {
			kid, kerr := KeyIdentifier(certs[0])
			if kerr != nil {
				return &FIDO2TrustError{Reason: FIDO2ChainInvalid, Err: kerr}
			}
			anchor, err = anchors.FIDO2AnchorByKeyIdentifier(ctx, kid)
		}
	} else {
		anchor, err = anchors.FIDO2AnchorByAAGUID(ctx, ev.AAGUID)
	}
	if fa, ok := anchors.(FIDO2FormatAnchors); ok && err == nil && anchor == nil && ev.Format != "fido-u2f" {
		anchor, err = fa.FIDO2AnchorByFormat(ctx, ev.Format)
	}
	if err != nil {
		return fmt.Errorf("attestation: metadata lookup: %w", err)
	}
	if anchor != nil && anchor.U2F && ev.Format != "fido-u2f" {
		anchor = nil
	}
	if anchor == nil {
		if len(certs) == 0 && (ev.AAGUID == ([16]byte{}) || ev.Format == "fido-u2f") {
			return &FIDO2TrustError{Reason: FIDO2MissingChain}
		}
		return &FIDO2TrustError{Reason: FIDO2NoMetadata}
	}
	if anchor.Check != nil {
		if err := anchor.Check(ev.Now, certs); err != nil {
			return &FIDO2TrustError{Reason: FIDO2StatusRefused, Err: err}
		}
	}
	if len(anchor.AttestationTypes) > 0 && !slices.Contains(anchor.AttestationTypes, ev.Type) {
		return &FIDO2TrustError{Reason: FIDO2TypeNotAllowed, Err: fmt.Errorf("type %q", ev.Type)}
	}
	if ev.Alg != 0 && len(anchor.Algorithms) > 0 && !slices.Contains(anchor.Algorithms, ev.Alg) {
		return &FIDO2TrustError{Reason: FIDO2AlgorithmNotAllowed, Err: fmt.Errorf("alg %d", ev.Alg)}
	}
	if ev.Type == "basic_surrogate" || ev.Type == "self" {
		// Self attestation: the statement listing the type is the whole trust decision.
		return nil
	}
	if len(certs) == 0 {
		return &FIDO2TrustError{Reason: FIDO2MissingChain}
	}
	// A root never travels in x5c. A statement's trust anchor may be an intermediate or
	// the attestation certificate itself (FIDO MDS3 "attestationRootCertificates"), and
	// such an anchor may be part of the chain: verification then ends at it.
	for i, c := range certs {
		if isSelfSigned(c) {
			return &FIDO2TrustError{Reason: FIDO2RootInChain, Err: fmt.Errorf("x5c[%d] is self-signed", i)}
		}
	}
	for i := 1; i < len(certs); i++ {
		if err := certs[i-1].CheckSignatureFrom(certs[i]); err != nil {
			return &FIDO2TrustError{Reason: FIDO2ChainInvalid, Err: fmt.Errorf("x5c[%d] is not signed by x5c[%d]: %w", i-1, i, err)}
		}
	}
	if len(anchor.Roots) == 0 {
		return &FIDO2TrustError{Reason: FIDO2ChainInvalid, Err: errors.New("statement has no roots")}
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range anchor.Roots {
		roots.AddCert(r)
	}
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   ev.Now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return &FIDO2TrustError{Reason: FIDO2ChainInvalid, Err: err}
	}
	return nil
}

func isSelfSigned(c *x509.Certificate) bool {
	if !bytes.Equal(c.RawIssuer, c.RawSubject) {
		return false
	}
	return c.CheckSignatureFrom(c) == nil
}
