package attestation_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/attestation"
	"github.com/fidoserver/hwfido/metadata"
)

type emptySource struct{}

func (emptySource) ByAAGUID(metadata.AAGUID) (*metadata.Statement, bool) { return nil, false }
func (emptySource) ByKeyIdentifier(string) (*metadata.Statement, bool)   { return nil, false }

func reason(r attestation.FIDO2TrustReason) error { return &attestation.FIDO2TrustError{Reason: r} }

func TestMetadataAnchors(t *testing.T) {
	ctx := context.Background()
	p := newPKI(t, "Vendor")
	leaf := p.leaf(t, &mustKey(t).PublicKey)
	kid, err := attestation.KeyIdentifier(leaf)
	if err != nil {
		t.Fatal(err)
	}
	aaguid := metadata.AAGUID{1, 2, 3}
	bypassed := metadata.AAGUID{9}
	now := time.Now()
	st := &metadata.Statement{
		AAGUID: aaguid, ProtocolFamily: "fido2", AttestationRoots: []*x509.Certificate{p.root},
		AttestationTypes:         []uint16{0x3E07, 0x3E09, 0x3E0C},
		AuthenticationAlgorithms: []uint16{metadata.AlgSignSecp256r1ECDSASHA256Raw, metadata.AlgSignEd25519EdDSASHA512Raw},
		StatusReports:            []metadata.StatusReport{{Status: metadata.StatusFIDOCertifiedL1, EffectiveDate: now.Add(-48 * time.Hour)}},
	}
	u2f := &metadata.Statement{ProtocolFamily: "u2f", AttestationCertificateKeyIdentifiers: []string{kid},
		AttestationRoots: []*x509.Certificate{p.root}, AttestationTypes: []uint16{0x3E07}}
	bad := &metadata.Statement{AAGUID: bypassed, ProtocolFamily: "fido2", AttestationRoots: []*x509.Certificate{p.root},
		AttestationTypes: []uint16{0x3E07},
		StatusReports: []metadata.StatusReport{
			{Status: metadata.StatusFIDOCertified, EffectiveDate: now.Add(-72 * time.Hour)},
			{Status: metadata.StatusUserVerificationBypass, EffectiveDate: now.Add(-30 * time.Minute)},
		}}
	// A statement whose trust anchor is the intermediate that also travels in x5c.
	interAAGUID := metadata.AAGUID{4}
	interAnchored := &metadata.Statement{AAGUID: interAAGUID, ProtocolFamily: "fido2",
		AttestationRoots: []*x509.Certificate{p.inter}, AttestationTypes: []uint16{0x3E07}}
	// Self attestation of a model with one batch reported compromised: no batch
	// certificate is involved, so the report does not concern it.
	selfAAGUID := metadata.AAGUID{0x55}
	selfBatch := &metadata.Statement{AAGUID: selfAAGUID, ProtocolFamily: "fido2", AttestationTypes: []uint16{0x3E08},
		StatusReports: []metadata.StatusReport{{Status: metadata.StatusAttestationKeyCompromise,
			EffectiveDate: now.Add(-time.Hour), CertificateDER: leaf.Raw, Certificate: leaf}}}
	set := metadata.NewSet(st, u2f, bad, interAnchored, selfBatch)

	t.Run("conversion", func(t *testing.T) {
		m := attestation.NewMetadataAnchors(metadata.NewCatalog(set), attestation.MetadataAnchorsOptions{})
		a, err := m.FIDO2AnchorByAAGUID(ctx, aaguid)
		if err != nil || a == nil {
			t.Fatalf("%v %v", a, err)
		}
		if !slices.Equal(a.AttestationTypes, []string{"basic_full", "anonca"}) || !slices.Equal(a.Algorithms, []int64{-7, -8}) ||
			len(a.Roots) != 1 || !bytes.Equal(a.Roots[0].Raw, p.root.Raw) || a.Check == nil {
			t.Fatalf("anchor %+v", a)
		}
		if err := a.Check(now, []*x509.Certificate{leaf}); err != nil {
			t.Fatalf("certified statement refused: %v", err)
		}
		if a, err := m.FIDO2AnchorByAAGUID(ctx, [16]byte{7}); a != nil || err != nil {
			t.Fatalf("unknown AAGUID: %v %v", a, err)
		}
		if a, err := m.FIDO2AnchorByKeyIdentifier(ctx, kid); err != nil || a == nil || !slices.Equal(a.AttestationTypes, []string{"basic_full"}) {
			t.Fatalf("by key identifier: %+v %v", a, err)
		}
		if a, err := m.FIDO2AnchorByFormat(ctx, "apple"); a != nil || err != nil {
			t.Fatalf("format without roots: %v %v", a, err)
		}
		ecdaa := m.Anchor(&metadata.Statement{AttestationTypes: []uint16{0x3E09}})
		if len(ecdaa.AttestationTypes) != 1 || slices.Contains(ecdaa.AttestationTypes, "basic_full") {
			t.Fatalf("ECDAA-only statement allows %v", ecdaa.AttestationTypes)
		}
		// attestationTypes is mandatory: a statement without it allows no type (an empty
		// list would mean any).
		if untyped := m.Anchor(&metadata.Statement{}); len(untyped.AttestationTypes) != 1 ||
			slices.Contains(untyped.AttestationTypes, "basic_surrogate") {
			t.Fatalf("statement without attestationTypes allows %v", untyped.AttestationTypes)
		}
	})

	t.Run("verify", func(t *testing.T) {
		enforce := attestation.NewMetadataAnchors(set, attestation.MetadataAnchorsOptions{})
		monitor := attestation.NewMetadataAnchors(set, attestation.MetadataAnchorsOptions{StatusMode: attestation.StatusMonitor,
			Logger: slog.New(slog.DiscardHandler)})
		chain := [][]byte{leaf.Raw, p.inter.Raw}
		for _, tc := range []struct {
			name    string
			anchors attestation.FIDO2Anchors
			ev      attestation.FIDO2Evidence
			want    error
		}{
			{"basic full", enforce, attestation.FIDO2Evidence{Format: "packed", Type: "basic_full", AAGUID: aaguid, X5C: chain, Alg: -7}, nil},
			{"alg not listed", enforce, attestation.FIDO2Evidence{Format: "packed", Type: "basic_full", AAGUID: aaguid, X5C: chain, Alg: -257},
				reason(attestation.FIDO2AlgorithmNotAllowed)},
			{"type not listed", enforce, attestation.FIDO2Evidence{Format: "packed", Type: "attca", AAGUID: aaguid, X5C: chain, Alg: -7},
				reason(attestation.FIDO2TypeNotAllowed)},
			{"self not listed", enforce, attestation.FIDO2Evidence{Format: "packed", Type: "basic_surrogate", AAGUID: aaguid, Alg: -7},
				reason(attestation.FIDO2TypeNotAllowed)},
			{"root in chain", enforce, attestation.FIDO2Evidence{Format: "packed", Type: "basic_full", AAGUID: aaguid,
				X5C: [][]byte{leaf.Raw, p.inter.Raw, p.root.Raw}, Alg: -7}, reason(attestation.FIDO2RootInChain)},
			{"chain missing", enforce, attestation.FIDO2Evidence{Format: "packed", Type: "basic_full", AAGUID: aaguid, Alg: -7},
				reason(attestation.FIDO2MissingChain)},
			{"intermediate missing", enforce, attestation.FIDO2Evidence{Format: "packed", Type: "basic_full", AAGUID: aaguid,
				X5C: [][]byte{leaf.Raw}, Alg: -7}, reason(attestation.FIDO2ChainInvalid)},
			{"expired", enforce, attestation.FIDO2Evidence{Format: "packed", Type: "basic_full", AAGUID: aaguid, X5C: chain, Alg: -7,
				Now: now.Add(48 * time.Hour)}, reason(attestation.FIDO2ChainInvalid)},
			{"none", enforce, attestation.FIDO2Evidence{Format: "none", Type: "none", AAGUID: aaguid}, reason(attestation.FIDO2NoAttestation)},
			{"no metadata", enforce, attestation.FIDO2Evidence{Format: "packed", Type: "basic_full", AAGUID: [16]byte{5}, X5C: chain, Alg: -7},
				reason(attestation.FIDO2NoMetadata)},
			{"u2f by key identifier", enforce, attestation.FIDO2Evidence{Format: "fido-u2f", Type: "basic_full", X5C: chain}, nil},
			// The same key in a packed attestation with a zero AAGUID: the U2F statement does
			// not vouch for it.
			{"u2f statement, packed format", enforce, attestation.FIDO2Evidence{Format: "packed", Type: "basic_full", X5C: chain, Alg: -7},
				reason(attestation.FIDO2NoMetadata)},
			{"status refused (enforce)", enforce, attestation.FIDO2Evidence{Format: "packed", Type: "basic_full", AAGUID: bypassed, X5C: chain, Alg: -7},
				reason(attestation.FIDO2StatusRefused)},
			{"status refused (monitor)", monitor, attestation.FIDO2Evidence{Format: "packed", Type: "basic_full", AAGUID: bypassed, X5C: chain, Alg: -7}, nil},
			{"intermediate anchor inside x5c", enforce, attestation.FIDO2Evidence{Format: "packed", Type: "basic_full", AAGUID: interAAGUID,
				X5C: chain, Alg: -7}, nil},
			{"intermediate anchor, leaf alone", enforce, attestation.FIDO2Evidence{Format: "packed", Type: "basic_full", AAGUID: interAAGUID,
				X5C: [][]byte{leaf.Raw}, Alg: -7}, nil},
			{"self attestation, a batch compromised", enforce, attestation.FIDO2Evidence{Format: "packed", Type: "basic_surrogate",
				AAGUID: selfAAGUID, Alg: -7}, nil},
			{"status refused before the type check", enforce, attestation.FIDO2Evidence{Format: "packed", Type: "attca", AAGUID: bypassed, X5C: chain, Alg: -7},
				reason(attestation.FIDO2StatusRefused)},
			{"status before the bypass report", enforce, attestation.FIDO2Evidence{Format: "packed", Type: "basic_full", AAGUID: bypassed,
				X5C: chain, Alg: -7, Now: now.Add(-45 * time.Minute)}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err := attestation.VerifyFIDO2Trust(ctx, tc.anchors, tc.ev)
				if tc.want == nil && err != nil {
					t.Fatalf("refused: %v", err)
				}
				if tc.want != nil && !errors.Is(err, tc.want) {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
				if tc.want != nil && errors.Is(tc.want, reason(attestation.FIDO2StatusRefused)) && !errors.Is(err, metadata.ErrUnacceptableStatus) {
					t.Fatalf("status refusal does not wrap metadata.ErrUnacceptableStatus: %v", err)
				}
			})
		}
	})

	t.Run("authentication status", func(t *testing.T) {
		// The model-wide status at authentication time; a batch's compromise is left out.
		batchOnly := &metadata.Statement{AAGUID: metadata.AAGUID{6}, ProtocolFamily: "fido2",
			AttestationRoots: []*x509.Certificate{p.root}, AttestationTypes: []uint16{0x3E07},
			StatusReports: []metadata.StatusReport{{Status: metadata.StatusAttestationKeyCompromise,
				EffectiveDate: now.Add(-time.Hour), CertificateDER: leaf.Raw, Certificate: leaf}}}
		update := &metadata.Statement{AAGUID: metadata.AAGUID{8}, ProtocolFamily: "fido2", AuthenticatorVersion: 1,
			AttestationRoots: []*x509.Certificate{p.root}, AttestationTypes: []uint16{0x3E07},
			StatusReports: []metadata.StatusReport{{Status: metadata.StatusUpdateAvailable,
				EffectiveDate: now.Add(-time.Hour), AuthenticatorVersion: 2}}}
		src := metadata.NewSet(st, bad, batchOnly, update)
		enforce := attestation.NewMetadataAnchors(src, attestation.MetadataAnchorsOptions{})
		monitor := attestation.NewMetadataAnchors(src, attestation.MetadataAnchorsOptions{StatusMode: attestation.StatusMonitor,
			Logger: slog.New(slog.DiscardHandler)})
		chainOf := func(der ...[]byte) func(context.Context) ([][]byte, error) {
			return func(context.Context) ([][]byte, error) { return der, nil }
		}
		for _, tc := range []struct {
			name    string
			m       *attestation.MetadataAnchors
			aaguid  metadata.AAGUID
			at      time.Time
			refused bool
			chain   func(context.Context) ([][]byte, error)
		}{
			{"batch compromise, the credential's leaf", enforce, metadata.AAGUID{6}, now, true, chainOf(leaf.Raw, p.inter.Raw)},
			{"batch compromise, another batch", enforce, metadata.AAGUID{6}, now, false, chainOf(p.inter.Raw)},
			{"batch compromise, self attestation", enforce, metadata.AAGUID{6}, now, false, chainOf()},
			{"batch compromise, chain unreadable as certificates", enforce, metadata.AAGUID{6}, now, true, chainOf([]byte{1, 2})},
			{"batch compromise, chain not kept", enforce, metadata.AAGUID{6}, now, true,
				func(context.Context) ([][]byte, error) { return nil, attestation.ErrChainUnknown }},
			{"certified", enforce, aaguid, now, false, nil},
			{"user verification bypass", enforce, bypassed, now, true, nil},
			{"before the bypass report", enforce, bypassed, now.Add(-45 * time.Minute), false, nil},
			{"monitor", monitor, bypassed, now, false, nil},
			{"batch compromise left out (chain not known)", enforce, metadata.AAGUID{6}, now, false, nil},
			{"update available does not lock out keys in use", enforce, metadata.AAGUID{8}, now, false, nil},
			{"no statement", enforce, metadata.AAGUID{7}, now, false, nil},
			{"zero AAGUID", enforce, metadata.AAGUID{}, now, false, nil},
		} {
			err := tc.m.FIDO2AuthenticationStatus(ctx, tc.aaguid, tc.at, tc.chain)
			if tc.refused != (err != nil) || (err != nil && !errors.Is(err, metadata.ErrUnacceptableStatus)) {
				t.Errorf("%s: %v, want refused %v", tc.name, err, tc.refused)
			}
		}
		// The chain is asked for only when a batch report is in effect; a failure to read it
		// is an error of its own, not a status refusal.
		failing := func(context.Context) ([][]byte, error) { return nil, errors.New("store down") }
		if err := enforce.FIDO2AuthenticationStatus(ctx, metadata.AAGUID{6}, now, failing); err == nil ||
			errors.Is(err, metadata.ErrUnacceptableStatus) {
			t.Errorf("unreadable chain: %v", err)
		}
		if err := enforce.FIDO2AuthenticationStatus(ctx, aaguid, now, failing); err != nil {
			t.Errorf("chain read without a batch report: %v", err)
		}
	})
}
