// Package hsmtest gives tests a real SoftHSM token with the server's keys:
// [NewToken] returns an open *hsm.Token plus everything needed to point a
// server process at the same token (SOFTHSM2_CONF, URI, PIN file).
//
// SoftHSM reads SOFTHSM2_CONF once, at C_Initialize, and a PKCS#11 module can
// be initialised only once per process. So all tokens of one test binary live
// in one shared token directory (created on first use, removed when the last
// token of the binary is cleaned up); each test gets its own token with a
// unique label and its own PIN files in t.TempDir(). Tokens created
// in-process with C_InitToken are visible at once; a token created by another
// process would only be seen after C_Finalize + C_Initialize (observed on
// SoftHSM 2.6.1), which is why hsmtest creates tokens in-process.
//
// A missing SoftHSM makes NewToken fail the test (never skip).
package hsmtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/hsm"
	softhsmsetup "github.com/fidoserver/hwfido/softhsm-setup"
)

// Options tunes NewTokenWith. The zero value is usable.
type Options struct {
	Sessions   int  // worker sessions; 0 = hsm default (4)
	NoVendorCA bool // skip the vendor CA key
	// Quiet stops hsm events from being written to the test log.
	Quiet bool
	// RecoveryBackoff is passed to hsm.Config; 0 means 20ms (fast tests).
	RecoveryBackoff time.Duration
	// NoSessionCopies is passed to hsm.Config.
	NoSessionCopies bool
}

// Token is an open token for one test. The embedded *hsm.Token is closed by
// t.Cleanup.
type Token struct {
	*hsm.Token
	// Config is the hsm.Config the token was opened with (URI, Sessions,
	// Logger); open a second handle or write a server config from it.
	Config hsm.Config
	// URI is the pkcs11: URI (module-path, token label, pin-source file).
	URI string
	// Label is the token label, unique in the test binary.
	Label string
	// PINFile and SOPINFile hold the user and SO PINs (mode 0600).
	PINFile, SOPINFile string
	// ConfPath is the SOFTHSM2_CONF for child processes; see Env.
	ConfPath   string
	ModulePath string
}

// Env returns os.Environ() with SOFTHSM2_CONF set for a child process that
// should use this token.
func (t *Token) Env() []string {
	env := []string{}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "SOFTHSM2_CONF=") {
			env = append(env, e)
		}
	}
	return append(env, "SOFTHSM2_CONF="+t.ConfPath)
}

var shared struct {
	mu   sync.Mutex
	dir  string
	refs int
}

var seq atomic.Uint64

// NewToken creates a token with token-signing, serverData MAC and vendor CA
// keys and opens it. It fails the test on any error.
func NewToken(tb testing.TB) *Token {
	tb.Helper()
	return NewTokenWith(tb, Options{})
}

// NewTokenWith is NewToken with options.
func NewTokenWith(tb testing.TB, opts Options) *Token {
	tb.Helper()
	tmp := tb.TempDir()
	soPIN, userPIN := randomPIN(tb), randomPIN(tb)
	soFile, userFile := filepath.Join(tmp, "so.pin"), filepath.Join(tmp, "user.pin")
	for f, v := range map[string]string{soFile: soPIN, userFile: userPIN} {
		if err := os.WriteFile(f, []byte(v+"\n"), 0o600); err != nil {
			tb.Fatalf("hsmtest: %v", err)
		}
	}
	label := fmt.Sprintf("t%d-%s", seq.Add(1), randomPIN(tb)[:8])
	var log *slog.Logger
	if opts.Quiet {
		log = slog.New(slog.DiscardHandler)
	} else {
		log = slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}

	shared.mu.Lock()
	if shared.refs == 0 {
		d, err := os.MkdirTemp("", "hwfido-softhsm-")
		if err != nil {
			shared.mu.Unlock()
			tb.Fatalf("hsmtest: %v", err)
		}
		shared.dir = d
	}
	shared.refs++
	dir := shared.dir
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := softhsmsetup.Setup(ctx, softhsmsetup.Options{
		Dir: dir, Label: label, SOPINFile: soFile, UserPINFile: userFile, NoVendorCA: opts.NoVendorCA, Logger: log,
	})
	var tok *hsm.Token
	cfg := hsm.Config{Sessions: opts.Sessions, Logger: log, RecoveryBackoff: opts.RecoveryBackoff, MaxRecoveryBackoff: time.Second,
		NoSessionCopies: opts.NoSessionCopies}
	if cfg.RecoveryBackoff == 0 {
		cfg.RecoveryBackoff = 20 * time.Millisecond
	}
	if err == nil {
		cfg.URI = res.URI
		tok, err = hsm.Open(ctx, cfg)
	}
	if err != nil {
		releaseShared()
		shared.mu.Unlock()
		tb.Fatalf("hsmtest: %v", err)
	}
	shared.mu.Unlock()
	tb.Cleanup(func() {
		tok.Close()
		shared.mu.Lock()
		releaseShared()
		shared.mu.Unlock()
	})
	return &Token{
		Token: tok, Config: cfg, URI: res.URI, Label: label, PINFile: userFile, SOPINFile: soFile,
		ConfPath: res.ConfPath, ModulePath: res.ModulePath,
	}
}

// releaseShared drops one reference; the last one removes the token dir.
// shared.mu is held.
func releaseShared() {
	shared.refs--
	if shared.refs == 0 {
		os.RemoveAll(shared.dir)
		shared.dir = ""
	}
}

func randomPIN(tb testing.TB) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		tb.Fatalf("hsmtest: %v", err)
	}
	return hex.EncodeToString(b)
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
