package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/gorilla/mux"

	"github.com/fidoserver/hwfido/hsm"
	"github.com/fidoserver/hwfido/metadata"
	"github.com/fidoserver/hwfido/server/callerauth"
	"github.com/fidoserver/hwfido/server/config"
	"github.com/fidoserver/hwfido/server/httpapi"
	"github.com/fidoserver/hwfido/server/resulttoken"
	"github.com/fidoserver/hwfido/server/serverdata"
	"github.com/fidoserver/hwfido/server/uafsvc"
	"github.com/fidoserver/hwfido/uaf"
)

// routes builds the services and the HTTP API.
func (s *Server) routes() (*httpapi.API, error) {
	cfg := s.cfg
	callers, err := callerAuthenticator(cfg.CallerAuth)
	if err != nil {
		return nil, err
	}
	md, err := loadMetadata(cfg.UAF.Metadata)
	if err != nil {
		return nil, err
	}
	for _, w := range md.Warnings() {
		s.log.Warn("metadata warning", "warning", w)
	}
	s.uafMD = metadata.NewCatalog(md)
	policies, err := policies(cfg.UAF.Policies)
	if err != nil {
		return nil, err
	}
	results := resulttoken.New(tokenSigner{s.token}, resulttoken.Options{Issuer: cfg.ResultToken.Issuer,
		Audience: cfg.ResultToken.Audience, Lifetime: cfg.ResultToken.Lifetime.D()})
	oobSvc, err := s.oobService(results)
	if err != nil {
		return nil, err
	}
	svc, err := uafsvc.New(uafsvc.Options{Sessions: oobSvc, Targets: oobSvc,
		AppID: cfg.UAF.AppID, Facets: cfg.UAF.Facets, Policies: policies, DefaultPolicy: cfg.UAF.DefaultPolicy,
		Lifetime: cfg.UAF.RequestLifetime.D(), RecordOnlyCounters: cfg.UAF.CounterPolicy == "record",
		Sealer: serverdata.NewSealer(s.token, hsm.ErrBadMAC, hsm.ErrUnknownKey),
		Store:  s.db, Metadata: s.uafMD, Results: results, Log: s.log.With("component", "uaf"),
	})
	if err != nil {
		return nil, err
	}
	s.uaf = svc
	oobSvc.Attach(svc)
	fido2Mount, err := s.fido2Mount(callers, results)
	if err != nil {
		return nil, err
	}
	var mounts []func(*mux.Router)
	if fido2Mount != nil {
		mounts = append(mounts, fido2Mount)
	}
	return &httpapi.API{
		Log:     s.log.With("component", "http"),
		MaxBody: cfg.Server.MaxBodyBytes,
		Health: []httpapi.HealthChecker{
			httpapi.CheckFunc{N: "hsm", F: func(context.Context) error { return s.token.Healthy() }},
			httpapi.CheckFunc{N: "store", F: s.db.Ping},
		},
		JWKS:        s.token.JWKS,
		Unavailable: isOutage,
		Callers:     callers,
		UAF:         svc,
		OOB:         oobSvc,
		Conformance: cfg.Server.ConformanceAPI,
		Mounts:      mounts,
	}, nil
}

// isOutage classifies errors that mean "a dependency is down": 503, not 500.
func isOutage(err error) bool {
	return errors.Is(err, hsm.ErrUnavailable) || errors.Is(err, hsm.ErrBusy) || errors.Is(err, hsm.ErrClosed) ||
		errors.Is(err, context.DeadlineExceeded)
}

func callerAuthenticator(c config.CallerAuth) (*callerauth.Authenticator, error) {
	var issuers []callerauth.Issuer
	for i, t := range c.Tokens {
		keys, err := callerauth.LoadKeys(t.KeysFile)
		if err != nil {
			return nil, fmt.Errorf("config: caller-auth.tokens[%d].keys-file: %w", i, err)
		}
		issuers = append(issuers, callerauth.Issuer{Issuer: t.Issuer, Audience: t.Audience, Keys: keys, UsernameClaim: t.UsernameClaim,
			MaxLifetime: t.MaxLifetime.D()})
	}
	return callerauth.New(callerauth.Options{Issuers: issuers, TrustedSubjects: c.TrustedSubjects})
}

// policies converts the configured policies (YAML) to UAF policies and checks their
// structure, naming the bad one.
func policies(in map[string]any) (map[string]uaf.Policy, error) {
	out := map[string]uaf.Policy{}
	for name, v := range in {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("config: fido-uaf.policies.%s: %w", name, err)
		}
		var p uaf.Policy
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, fmt.Errorf("config: fido-uaf.policies.%s: %w", name, err)
		}
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("config: fido-uaf.policies.%s: %w", name, err)
		}
		out[name] = p
	}
	return out, nil
}

// addMetadataPath adds path (a statement file or a folder of them; "" adds nothing) to opts;
// key names the configuration key in errors.
func addMetadataPath(opts *metadata.LoadOptions, path, key string) error {
	if path == "" {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("config: %s: %w", key, err)
	}
	if fi.IsDir() {
		opts.Dirs = append(opts.Dirs, path)
	} else {
		opts.Files = append(opts.Files, path)
	}
	return nil
}

// loadMetadata loads the UAF statements named by the configuration: inline statements take
// precedence over files, files over folders.
func loadMetadata(c config.Metadata) (*metadata.Set, error) {
	var opts metadata.LoadOptions
	if c.Value != "" {
		opts.Inline = []json.RawMessage{json.RawMessage(c.Value)}
	}
	if err := addMetadataPath(&opts, c.Path, "fido-uaf.metadata.path"); err != nil {
		return nil, err
	}
	st, err := metadata.Load(opts)
	if err != nil {
		return nil, fmt.Errorf("config: fido-uaf.metadata: %w", err)
	}
	return metadata.NewSet(st...), nil
}
