package server

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/gorilla/mux"

	"github.com/fidoserver/hwfido/attestation"
	"github.com/fidoserver/hwfido/hsm"
	"github.com/fidoserver/hwfido/metadata"
	"github.com/fidoserver/hwfido/server/callerauth"
	"github.com/fidoserver/hwfido/server/config"
	"github.com/fidoserver/hwfido/server/fido2"
	"github.com/fidoserver/hwfido/server/resulttoken"
)

// fido2Mount builds the FIDO2 relying party from cfg.FIDO2 (nil when it is disabled) and
// returns the function that mounts its routes. Registration options and credential
// management authenticate the caller with the same callerauth as UAF; a successful
// authentication answers a result token from results (signed in the HSM).
func (s *Server) fido2Mount(callers *callerauth.Authenticator, results *resulttoken.Issuer) (func(*mux.Router), error) {
	c := s.cfg.FIDO2
	if !c.Enabled {
		return nil, nil
	}
	trust, md, err := fido2Trust(c, s.token, s.log)
	if err != nil {
		return nil, err
	}
	s.fido2MD = md
	svc, err := fido2.New(fido2.Config{
		RPID: c.RPID, RPName: c.RPName, Origins: c.Origins, Algorithms: c.SignatureAlgorithms,
		AttestationPolicy: fido2.AttestationPolicy(c.AttestationPolicy), UserVerification: c.UserVerification,
		Timeout: c.RegistrationTimeout.D(), AuthenticationTimeout: c.AuthenticationTimeout.D(),
		StatusRetention: c.StatusRetention.D(), MaxBodyBytes: s.cfg.Server.MaxBodyBytes,
		ConformancePaths: c.ConformancePaths, Demo: c.Demo,
	}, fido2.Deps{
		Store: s.db, Callers: fido2Callers{callers}, Signer: fido2.IssuerSigner(results), Trust: trust,
		Logger: s.log.With("component", "fido2"), Unavailable: isOutage, MAC: s.token,
	})
	if err != nil {
		return nil, fmt.Errorf("config: fido2: %w", err)
	}
	s.fido2 = svc
	return svc.Register, nil
}

// tokenCertificates lists the certificate objects of the HSM token (hsm.Token), where
// pinned trust anchors may be kept.
type tokenCertificates interface {
	Certificates(ctx context.Context) ([]hsm.Certificate, error)
}

// pinnedRoots reads trust anchors from file (PEM or DER) or, when label is set, from the
// certificate objects with that label in the HSM token; key names the configuration keys
// (without -file/-label) in errors. Neither set: nil.
func pinnedRoots(file, label string, tok tokenCertificates, key string) ([]*x509.Certificate, error) {
	if label != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		certs, err := tok.Certificates(ctx)
		if err != nil {
			return nil, fmt.Errorf("config: %s-label: %w", key, err)
		}
		var roots []*x509.Certificate
		for _, c := range certs {
			if c.Label == label {
				roots = append(roots, c.Cert)
			}
		}
		if len(roots) == 0 {
			return nil, fmt.Errorf("config: %s-label: no certificate labelled %q in the HSM token (import one with fidoctl hsm import-cert)", key, label)
		}
		return roots, nil
	}
	if file == "" {
		return nil, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("config: %s-file: %w", key, err)
	}
	roots, err := metadata.ParseAnchors(b)
	if err != nil {
		return nil, fmt.Errorf("config: %s-file: %w", key, err)
	}
	return roots, nil
}

// fido2Trust builds the FIDO2 attestation anchors: the metadata of fido2Statements in a
// catalog (returned, so that Reload can replace it) and the pinned roots of the apple
// format. Pinned roots come from files or from certificate objects in the HSM token (tok).
func fido2Trust(c config.FIDO2, tok tokenCertificates, log interface {
	Warn(msg string, args ...any)
	Info(msg string, args ...any)
}) (*attestation.MetadataAnchors, *metadata.Catalog, error) {
	opts := attestation.MetadataAnchorsOptions{StatusMode: attestation.StatusEnforce}
	if c.Metadata.StatusMode == "monitor" {
		opts.StatusMode = attestation.StatusMonitor
	}
	apple, err := pinnedRoots(c.AppleRootsFile, c.AppleRootsLabel, tok, "fido2.apple-roots")
	if err != nil {
		return nil, nil, err
	}
	if len(apple) > 0 {
		opts.FormatRoots = map[string][]*x509.Certificate{"apple": apple}
		log.Info("fido2: apple attestation roots pinned", "roots", len(apple), "subject", apple[0].Subject.String())
	}
	set, err := fido2Statements(c, tok, log)
	if err != nil {
		return nil, nil, err
	}
	md := metadata.NewCatalog(set)
	return attestation.NewMetadataAnchors(md, opts), md, nil
}

// fido2Statements loads the FIDO2 metadata: statement files and an MDS3 BLOB verified
// against its pinned roots. Without any configured, an empty set: every attestation with an
// AAGUID is then untrusted (stored as such under monitor, refused under enforce).
func fido2Statements(c config.FIDO2, tok tokenCertificates, log interface {
	Warn(msg string, args ...any)
	Info(msg string, args ...any)
}) (*metadata.Set, error) {
	m := c.Metadata
	if m.Path == "" && m.BLOBFile == "" {
		if c.AttestationPolicy != "none" {
			log.Warn("fido2: no metadata configured; every attestation is untrusted (policy " + c.AttestationPolicy + ")")
		}
		return metadata.NewSet(), nil
	}
	var sts []*metadata.Statement
	if m.Path != "" {
		var lo metadata.LoadOptions
		if err := addMetadataPath(&lo, m.Path, "fido2.metadata.path"); err != nil {
			return nil, err
		}
		var err error
		if sts, err = metadata.Load(lo); err != nil {
			return nil, fmt.Errorf("config: fido2.metadata.path: %w", err)
		}
	}
	if m.BLOBFile != "" {
		roots, err := pinnedRoots(m.BLOBRootsFile, m.BLOBRootsLabel, tok, "fido2.metadata.blob-roots")
		if err != nil {
			return nil, err
		}
		data, err := os.ReadFile(m.BLOBFile)
		if err != nil {
			return nil, fmt.Errorf("config: fido2.metadata.blob-file: %w", err)
		}
		blob, err := metadata.VerifyBLOB(data, metadata.VerifyOptions{Roots: roots})
		if err != nil {
			return nil, fmt.Errorf("config: fido2.metadata.blob-file: %w", err)
		}
		if blob.Stale(time.Now()) {
			log.Warn("fido2: metadata BLOB is past its nextUpdate; download a fresh one", "no", blob.No,
				"nextUpdate", blob.NextUpdate.Format(time.DateOnly))
		}
		sts = append(sts, blob.Statements()...)
		log.Info("fido2: metadata BLOB verified", "no", blob.No, "entries", len(blob.Entries))
	}
	set := metadata.NewSet(sts...)
	for _, w := range set.Warnings() {
		log.Warn("fido2 metadata warning", "warning", w.String())
	}
	return set, nil
}

// fido2Callers adapts callerauth to fido2.CallerAuthenticator.
type fido2Callers struct{ a *callerauth.Authenticator }

func (f fido2Callers) Authenticate(r *http.Request) (fido2.Caller, error) {
	c, err := f.a.Authenticate(r)
	if err != nil {
		return fido2.Caller{}, err
	}
	return fido2.Caller{Username: c.Username, Trusted: c.Trusted}, nil
}

// purgeFIDO2 deletes expired FIDO2 sessions (called by the purge loop).
func (s *Server) purgeFIDO2(ctx context.Context) {
	if s.fido2 == nil {
		return
	}
	if n, err := s.fido2.Purge(ctx); err != nil {
		s.log.Warn("purge of expired fido2 sessions failed", "err", err)
	} else if n > 0 {
		s.log.Debug("purged expired fido2 sessions", "count", n)
	}
}
