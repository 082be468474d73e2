package attestation

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/fidoserver/hwfido/metadata"
)

// FIDO2StatementSource looks statements up; *metadata.Set and *metadata.Catalog
// implement it (a Catalog sees hot reloads).
type FIDO2StatementSource interface {
	ByAAGUID(id metadata.AAGUID) (*metadata.Statement, bool)
	ByKeyIdentifier(hexID string) (*metadata.Statement, bool)
}

// StatusMode says what a refused MDS status does.
type StatusMode string

// Status modes.
const (
	// StatusEnforce refuses the attestation (the zero value).
	StatusEnforce StatusMode = "enforce"
	// StatusMonitor logs the refusal and accepts.
	StatusMonitor StatusMode = "monitor"
)

// MetadataAnchorsOptions configures [NewMetadataAnchors]. The zero value of every
// field is usable.
type MetadataAnchorsOptions struct {
	// Status is the MDS status policy (default: the zero metadata.StatusPolicy).
	Status metadata.StatusPolicy
	// StatusMode is enforce (default) or monitor.
	StatusMode StatusMode
	// FormatRoots are roots for formats whose authenticators report no AAGUID
	// ("apple": Apple's WebAuthn root), keyed by attestation format.
	FormatRoots map[string][]*x509.Certificate
	// Logger receives status refusals accepted under monitor (default: discard).
	Logger *slog.Logger
}

// MetadataAnchors implements [FIDO2Anchors] and [FIDO2FormatAnchors] over metadata
// statements: roots from attestationRootCertificates, attestation types from the
// TAG_ATTESTATION_* values, algorithms from authenticationAlgorithms (as COSE
// identifiers), and an MDS status check (metadata.StatusPolicy) run at verification
// time with the presented attestation certificate. It is safe for concurrent use.
type MetadataAnchors struct {
	src  FIDO2StatementSource
	opts MetadataAnchorsOptions
	log  *slog.Logger
}

// NewMetadataAnchors returns anchors over src.
func NewMetadataAnchors(src FIDO2StatementSource, opts MetadataAnchorsOptions) *MetadataAnchors {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.StatusMode == "" {
		opts.StatusMode = StatusEnforce
	}
	return &MetadataAnchors{src: src, opts: opts, log: log}
}

// fido2AttestationTypes maps TAG_ATTESTATION_* values to go-webauthn's names (FIDO
// Registry §3.6.3). ECDAA has no FIDO2 verifier and maps to nothing.
var fido2AttestationTypes = map[uint16]string{
	0x3E07: "basic_full",
	0x3E08: "basic_surrogate",
	0x3E0A: "attca",
	0x3E0B: "none",
	0x3E0C: "anonca",
}

// Anchor converts one statement (nil gives nil). A statement that lists no attestation
// type FIDO2 knows (none, or ECDAA only) yields an anchor that allows no type.
func (m *MetadataAnchors) Anchor(st *metadata.Statement) *FIDO2Anchor {
	if st == nil {
		return nil
	}
	a := &FIDO2Anchor{Roots: st.AttestationRoots, U2F: st.ProtocolFamily == "u2f"}
	for _, t := range st.AttestationTypes {
		if name, ok := fido2AttestationTypes[t]; ok {
			a.AttestationTypes = append(a.AttestationTypes, name)
		}
	}
	if len(a.AttestationTypes) == 0 {
		// attestationTypes is mandatory in MDS3: a statement without (or with only ECDAA)
		// vouches for no FIDO2 attestation type.
		a.AttestationTypes = []string{"-"}
	}
	for _, alg := range st.AuthenticationAlgorithms {
		if cose, ok := metadata.COSEAlgorithm(alg); ok {
			a.Algorithms = append(a.Algorithms, cose)
		}
	}
	a.Check = func(now time.Time, chain []*x509.Certificate) error {
		// Without a chain (self attestation) no report naming a batch's certificate
		// concerns the authenticator.
		c := metadata.StatusCheck{Time: now, ModelOnly: len(chain) == 0}
		if len(chain) > 0 {
			c.AttestationCertificate, c.Intermediates = chain[0], chain[1:]
		}
		return m.status(st, c, m.opts.Status.Check)
	}
	return a
}

// status applies check (the status policy's Check or CheckInUse) to st; in monitor mode
// a refusal is logged and accepted.
func (m *MetadataAnchors) status(st *metadata.Statement, c metadata.StatusCheck,
	check func(*metadata.Statement, metadata.StatusCheck) error) error {
	err := check(st, c)
	if err != nil && m.opts.StatusMode == StatusMonitor {
		m.log.Warn("attestation: metadata status refused (monitor: accepted)", "aaguid", st.AAGUID.String(),
			"description", st.Description, "err", err)
		return nil
	}
	return err
}

// ErrChainUnknown is returned by the chain function of
// [MetadataAnchors.FIDO2AuthenticationStatus] when the credential's attestation chain
// was not kept: reports naming a batch then apply (fail closed).
var ErrChainUnknown = errors.New("attestation: attestation chain not known")

// FIDO2AuthenticationStatus checks, for an authentication with a credential of the
// authenticator model aaguid, the model's MDS status at now with the status policy's
// CheckInUse: the latest model-wide report in effect other than UPDATE_AVAILABLE (an
// update does not undo an earlier report for keys that exist, and a FIDO2 assertion does
// not tell the firmware version) must not make registered keys untrustworthy (REVOKED,
// USER_VERIFICATION_BYPASS, ATTESTATION_KEY_COMPROMISE, USER_KEY_*_COMPROMISE, or denied
// by the policy); UPDATE_AVAILABLE, RETIRED and unknown statuses do not lock out keys in
// use by themselves. When a report naming a batch's certificate is in
// effect, chain (nil: not known) is asked for the credential's attestation chain (leaf
// first, DER; empty for self or no attestation) and the batch's latest report must be
// acceptable too; a chain that is not known ([ErrChainUnknown]) or does not parse counts
// as any batch, another error of chain is returned. No statement, or a zero AAGUID
// (U2F), is nil; in monitor mode a refusal is logged and accepted. A refusal is a
// *metadata.StatusError matching metadata.ErrUnacceptableStatus.
func (m *MetadataAnchors) FIDO2AuthenticationStatus(ctx context.Context, aaguid [16]byte, now time.Time,
	chain func(context.Context) ([][]byte, error)) error {
	if aaguid == ([16]byte{}) {
		return nil
	}
	st, ok := m.src.ByAAGUID(metadata.AAGUID(aaguid))
	if !ok {
		return nil
	}
	c := metadata.StatusCheck{Time: now, ModelOnly: true}
	if chain != nil && st.HasBatchReports(now) {
		der, err := chain(ctx)
		switch {
		case errors.Is(err, ErrChainUnknown):
			c = metadata.StatusCheck{Time: now} // any batch (fail closed)
		case err != nil:
			return fmt.Errorf("attestation: the credential's attestation chain: %w", err)
		case len(der) > 0:
			c = metadata.StatusCheck{Time: now} // without a parsed leaf: any batch (fail closed)
			var certs []*x509.Certificate
			for _, d := range der {
				cert, err := x509.ParseCertificate(d)
				if err != nil {
					certs = nil
					break
				}
				certs = append(certs, cert)
			}
			if len(certs) > 0 {
				c.AttestationCertificate, c.Intermediates = certs[0], certs[1:]
			}
		}
	}
	return m.status(st, c, m.opts.Status.CheckInUse)
}

// FIDO2AnchorByAAGUID implements [FIDO2Anchors].
func (m *MetadataAnchors) FIDO2AnchorByAAGUID(_ context.Context, aaguid [16]byte) (*FIDO2Anchor, error) {
	st, _ := m.src.ByAAGUID(metadata.AAGUID(aaguid))
	return m.Anchor(st), nil
}

// FIDO2AnchorByKeyIdentifier implements [FIDO2Anchors].
func (m *MetadataAnchors) FIDO2AnchorByKeyIdentifier(_ context.Context, keyIdentifier string) (*FIDO2Anchor, error) {
	st, _ := m.src.ByKeyIdentifier(keyIdentifier)
	return m.Anchor(st), nil
}

// FIDO2AnchorByFormat implements [FIDO2FormatAnchors] with opts.FormatRoots: the anchor
// allows the format's usual type (anonca for apple, any otherwise) and has no status.
func (m *MetadataAnchors) FIDO2AnchorByFormat(_ context.Context, format string) (*FIDO2Anchor, error) {
	roots := m.opts.FormatRoots[format]
	if len(roots) == 0 {
		return nil, nil
	}
	a := &FIDO2Anchor{Roots: roots}
	if format == "apple" {
		a.AttestationTypes = []string{"anonca"}
	}
	return a, nil
}

var (
	_ FIDO2Anchors       = (*MetadataAnchors)(nil)
	_ FIDO2FormatAnchors = (*MetadataAnchors)(nil)
)
