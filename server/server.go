package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/fidoserver/hwfido/hsm"
	"github.com/fidoserver/hwfido/metadata"
	"github.com/fidoserver/hwfido/server/config"
	"github.com/fidoserver/hwfido/server/fido2"
	"github.com/fidoserver/hwfido/server/oob"
	"github.com/fidoserver/hwfido/server/store/sqlite"
	"github.com/fidoserver/hwfido/server/uafsvc"
)

// NewLogger returns the slog logger configured by c.
func NewLogger(c config.Log) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// Run builds the server from cfg and serves until ctx is done, then shuts down gracefully.
func Run(ctx context.Context, cfg *config.Config, version string) error {
	log := NewLogger(cfg.Log)
	if cfg.Server.GCPercent != 0 {
		prev := debug.SetGCPercent(cfg.Server.GCPercent)
		log.Info("gc target set", "gc_percent", cfg.Server.GCPercent, "was", prev)
	}
	s, err := New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer s.Close()
	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("server: listen: %w", err)
	}
	log.Info("hwfido-server listening", "addr", ln.Addr().String(), "version", version, "tls", cfg.Server.TLS.CertFile != "")
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: reloading keys and metadata")
				rctx, cancel := context.WithTimeout(ctx, time.Minute)
				if s.Reload(rctx) == nil {
					log.Info("reload done")
				}
				cancel()
			}
		}
	}()
	return s.Serve(ctx, ln)
}

// Server is the running FIDO server.
type Server struct {
	cfg     *config.Config
	log     *slog.Logger
	token   *hsm.Token
	db      *sqlite.DB
	handler http.Handler
	uaf     *uafsvc.Service
	oob     *oob.Service
	fido2   *fido2.Service // nil when fido2.enabled is false
	// uafMD and fido2MD hold the metadata in use; Reload replaces them (fido2MD is nil
	// when fido2.enabled is false).
	uafMD, fido2MD *metadata.Catalog
}

// Reload re-reads what may change while the server runs, each part on its own: the HSM
// token's keys (after `fidoctl hsm rotate` or a new key imported by another process), the
// UAF metadata statements, and the FIDO2 metadata (statement files, a new MDS3 BLOB
// verified against the pinned roots). A part that fails keeps what it had, and its error
// is returned (joined with the others); requests are served throughout. Run calls it on
// SIGHUP.
func (s *Server) Reload(ctx context.Context) error {
	var errs []error
	if err := s.token.Reload(ctx); err != nil {
		errs = append(errs, fmt.Errorf("server: reload: hsm: %w", err))
	}
	if md, err := loadMetadata(s.cfg.UAF.Metadata); err != nil {
		errs = append(errs, fmt.Errorf("server: reload: %w", err))
	} else {
		for _, w := range md.Warnings() {
			s.log.Warn("metadata warning", "warning", w)
		}
		s.uafMD.Replace(md)
		s.log.Info("uaf metadata reloaded", "statements", md.Len())
	}
	if s.fido2MD != nil {
		if set, err := fido2Statements(s.cfg.FIDO2, s.token, s.log); err != nil {
			errs = append(errs, fmt.Errorf("server: reload: %w", err))
		} else {
			s.fido2MD.Replace(set)
			s.log.Info("fido2 metadata reloaded", "statements", set.Len())
		}
	}
	err := errors.Join(errs...)
	if err != nil {
		s.log.Error("reload failed; the parts that failed keep their previous state", "err", err)
	}
	return err
}

// New opens the HSM token and the store and builds every service. On error nothing stays
// open.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger) (_ *Server, err error) {
	s := &Server{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	s.token, err = hsm.Open(ctx, hsm.Config{URI: cfg.HSM.URI, Sessions: cfg.HSM.Sessions,
		AcquireTimeout: cfg.HSM.AcquireTimeout.D(), NoSessionCopies: cfg.HSM.KeyCopies == "none", Logger: log.With("component", "hsm")})
	if err != nil {
		return nil, fmt.Errorf("server: hsm: %w", err)
	}
	s.db, err = sqlite.Open(ctx, sqlite.Options{Path: cfg.Store.Path})
	if err != nil {
		return nil, fmt.Errorf("server: store: %w", err)
	}
	if mode, open := sqlite.OpenMode(cfg.Store.Path); open {
		log.Warn("store: the database file is readable or writable by other users; chmod 600 it", "path", cfg.Store.Path, "mode", mode.String())
	}
	// Private keys the server must read from files (outside the HSM by nature): the TLS
	// key and FCM service-account keys.
	warnOpenSecretFile(log, "server.tls.key-file", cfg.Server.TLS.KeyFile)
	for i, d := range cfg.OOB.Dispatchers {
		warnOpenSecretFile(log, fmt.Sprintf("oob.dispatchers[%d].service-account-json", i), d.ServiceAccountJSON)
	}
	api, err := s.routes()
	if err != nil {
		return nil, err
	}
	s.handler = api.Router()
	if n := cfg.Server.MaxConcurrentRequests; n > 0 {
		s.handler = admit(s.handler, n, cfg.Server.QueueTimeout.D())
	}
	return s, nil
}

// warnOpenSecretFile logs a warning, naming the configuration key, when the secret file at
// path (if any) can be read by users other than its owner; it reports whether it did.
func warnOpenSecretFile(log *slog.Logger, key, path string) bool {
	if path == "" {
		return false
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o077 == 0 {
		return false
	}
	log.Warn("a private key file is readable by other users; chmod 600 it", "key", key, "path", path, "mode", fi.Mode().Perm().String())
	return true
}

// admit lets at most n ceremony requests (POST, except the dispatch service, which may wait
// on outside services such as FCM) run at once; the others wait, in arrival order (blocked
// channel senders are queued first in, first out), at most wait, then get 503. GETs (health,
// JWKS, facets, event streams) are never held.
func admit(next http.Handler, n int, wait time.Duration) http.Handler {
	slots := make(chan struct{}, n)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || strings.HasPrefix(r.URL.Path, "/nevisfido/token/dispatch/") {
			next.ServeHTTP(w, r)
			return
		}
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case slots <- struct{}{}:
		case <-t.C:
			w.Header().Set("Retry-After", "1")
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":503,"error":"Service Unavailable","errorMessage":"server busy: too many requests in progress"}` + "\n"))
			return
		case <-r.Context().Done():
			return
		}
		defer func() { <-slots }()
		next.ServeHTTP(w, r)
	})
}

// Handler returns the HTTP handler of every endpoint.
func (s *Server) Handler() http.Handler { return s.handler }

// Close releases the store and the HSM token.
func (s *Server) Close() {
	if s.db != nil {
		s.db.Close()
	}
	if s.token != nil {
		s.token.Close()
	}
}

// Serve serves on ln until ctx is done; it also purges expired single-use records.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	// Long-lived event streams (status events, device push streams) would hold Shutdown
	// until its deadline: they are ended as soon as shutdown begins; ordinary requests
	// finish normally.
	streams, endStreams := context.WithCancel(context.Background())
	defer endStreams()
	hs := &http.Server{
		Handler:           endOnShutdown(streams, s.handler),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       s.cfg.Server.ReadTimeout.D(),
		WriteTimeout:      s.cfg.Server.WriteTimeout.D(),
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	if t := s.cfg.Server.TLS; t.CertFile != "" {
		tc, err := tlsConfig(t)
		if err != nil {
			return err
		}
		hs.TLSConfig = tc
		ln = tls.NewListener(ln, tc)
	}
	hs.RegisterOnShutdown(endStreams)
	go s.purgeLoop(ctx)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("server: shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("server: %w", err)
	}
	return nil
}

// endOnShutdown cancels the context of event-stream requests (GET …/events, GET …/stream)
// when streams is done.
func endOnShutdown(streams context.Context, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && (strings.HasSuffix(r.URL.Path, "/events") || strings.HasSuffix(r.URL.Path, "/stream")) {
			ctx, cancel := context.WithCancel(r.Context())
			defer cancel()
			stop := context.AfterFunc(streams, cancel)
			defer stop()
			r = r.WithContext(ctx)
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Server) purgeLoop(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if n, err := s.db.PurgeExpired(ctx, now); err != nil {
				s.log.Warn("purge of expired records failed", "err", err)
			} else if n > 0 {
				s.log.Debug("purged expired records", "count", n)
			}
			s.purgeOOB(ctx, now)
			s.purgeFIDO2(ctx)
		}
	}
}

func tlsConfig(t config.TLS) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("server: tls: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if t.ClientCAFile != "" {
		pem, err := os.ReadFile(t.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("server: tls: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("server: tls: %s holds no certificate", t.ClientCAFile)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return tc, nil
}

// tokenSigner adapts the HSM token to resulttoken.Signer.
type tokenSigner struct{ t *hsm.Token }

func (ts tokenSigner) SignES256(ctx context.Context, msg []byte) ([]byte, string, error) {
	return ts.t.SignES256(ctx, msg)
}
func (ts tokenSigner) ActiveKeyID() string { return ts.t.ActiveKID(hsm.PurposeTokenSigning) }
