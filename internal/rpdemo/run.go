package rpdemo

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"
)

// LoadKey reads the login service's private key: a PEM PKCS#8 (fidoctl caller keygen) or
// SEC 1 ("EC PRIVATE KEY") P-256 key, so its caller tokens are ES256.
func LoadKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rpdemo: login key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("rpdemo: login key %s: not PEM", path)
	}
	var k any
	switch blk.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		err = fmt.Errorf("PEM block %q is not a private key", blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("rpdemo: login key %s: %w", path, err)
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, fmt.Errorf("rpdemo: login key %s: want an ECDSA P-256 key (ES256)", path)
	}
	return ec, nil
}

// backendTLS builds the TLS client configuration of a trusted backend.
func backendTLS(t *BackendTLSConfig) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("rpdemo: backendTLS: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		b, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("rpdemo: backendTLS: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("rpdemo: backendTLS: %s holds no certificate", t.CAFile)
		}
	}
	return tc, nil
}

// Run serves the app described by cfg until ctx ends, then shuts down gracefully. ready,
// when not nil, is called with the listening address.
func Run(ctx context.Context, cfg *Config, log *slog.Logger, ready func(addr string)) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	users, err := LoadUsers(cfg.UsersFile)
	if err != nil {
		return err
	}
	key, err := LoadKey(cfg.Login.KeyFile)
	if err != nil {
		return err
	}
	app, err := New(Options{Config: cfg, Users: users, Key: key, Logger: log})
	if err != nil {
		return err
	}
	defer app.Close()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("rpdemo: listen: %w", err)
	}
	srv := &http.Server{Handler: app.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("rp-demo listening", "addr", ln.Addr().String(), "server", cfg.Server, "publicURL", cfg.PublicURL)
	if ready != nil {
		ready(ln.Addr().String())
	}
	select {
	case err := <-errc:
		return fmt.Errorf("rpdemo: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	app.cancel() // end the background watches, which also ends the browser streams
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("rpdemo: shutdown: %w", err)
	}
	return nil
}
