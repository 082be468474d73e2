// Package harness runs the project's real binaries for end-to-end tests: it builds the
// commands once per test binary, prepares a SoftHSM token with the real softhsm-setup
// binary (PINs in 0600 files, never on a command line), and starts hwfido-server as a child
// process on a loopback port with its own SQLite file, stopping it when the test ends.
// Nothing is mocked: tests talk HTTP to the process.
package harness

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/internal/testutil"
	"github.com/fidoserver/hwfido/server/callerauth"
)

// Issuer and Audience of the caller tokens the harness's login service issues.
const (
	Issuer   = "https://login.test"
	Audience = "hwfido"
)

var build struct {
	mu   sync.Mutex
	dir  string
	done map[string]error
}

// root returns the repository root (two levels above this file).
func root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Bin returns the path of the command built from ./cmd/<name>, building it on first use
// in this test binary (with -race when the test binary has it, so child processes are
// checked too).
func Bin(tb testing.TB, name string) string {
	tb.Helper()
	build.mu.Lock()
	defer build.mu.Unlock()
	if build.dir == "" {
		d, err := os.MkdirTemp("", "hwfido-bin-")
		if err != nil {
			tb.Fatal(err)
		}
		build.dir, build.done = d, map[string]error{}
	}
	err, ok := build.done[name]
	if !ok {
		args := []string{"build", "-o", filepath.Join(build.dir, name)}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./cmd/"+name)...)
		cmd.Dir = root()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, berr := cmd.CombinedOutput(); berr != nil {
			err = fmt.Errorf("go build ./cmd/%s: %v\n%s", name, berr, out)
		}
		build.done[name] = err
	}
	if err != nil {
		tb.Fatal(err)
	}
	return filepath.Join(build.dir, name)
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// writeSecret writes a random PIN-like secret to a 0600 file.
func writeSecret(tb testing.TB, path string) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(hex.EncodeToString(b)), 0o600); err != nil {
		tb.Fatal(err)
	}
}

// Token is a SoftHSM token prepared by the softhsm-setup binary.
type Token struct {
	Dir      string // holds softhsm2.conf and tokens/
	ConfPath string // SOFTHSM2_CONF for processes using the token
	URI      string // pkcs11: URI with pin-source=file:
	PINFile  string
}

// Env returns the environment of a child process that uses the token.
func (t *Token) Env() []string { return append(os.Environ(), "SOFTHSM2_CONF="+t.ConfPath) }

// NewToken creates a token with the server's keys in dir using the softhsm-setup binary.
func NewToken(tb testing.TB, dir string) *Token {
	tb.Helper()
	hsmDir := filepath.Join(dir, "softhsm")
	so, user := filepath.Join(dir, "so-pin"), filepath.Join(dir, "user-pin")
	writeSecret(tb, so)
	writeSecret(tb, user)
	cmd := exec.Command(Bin(tb, "softhsm-setup"), "-dir", hsmDir, "-label", "e2e", "-so-pin-file", so, "-user-pin-file", user)
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("softhsm-setup: %v\n%s", err, out)
	}
	t := &Token{Dir: hsmDir, ConfPath: filepath.Join(hsmDir, "softhsm2.conf"), PINFile: user}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "URI="); ok {
			t.URI = u
		}
	}
	if t.URI == "" {
		tb.Fatalf("softhsm-setup printed no URI:\n%s", out)
	}
	return t
}

// ServerOptions configures StartServer.
type ServerOptions struct {
	// Metadata are UAF metadata statements (JSON) written into the server's metadata folder.
	Metadata [][]byte
	// Facets are trusted facet IDs besides the defaults.
	Facets []string
	// Conformance mounts the conformance test API.
	Conformance bool
	// CounterPolicy is "reject" (default) or "record".
	CounterPolicy string
	// Token reuses a token (for several servers sharing one HSM); nil creates one.
	Token *Token
	// DBPath reuses a database (for several servers sharing one store); "" creates one.
	DBPath string
	// AppID replaces the default UAF AppID; it may use {{.URL}} (e.g.
	// "{{.URL}}/nevisfido/uaf/1.1/facets", so a real FIDO client can fetch the facets).
	AppID string
	// ExtraYAML is appended to the generated configuration (top-level sections such as
	// fido2: or oob:); it may use {{.URL}}, {{.Dir}} and {{.Port}}, replaced by the server's
	// base URL, folder and port (FIDO2 origins need http://localhost:{{.Port}}).
	ExtraYAML string
}

// DefaultFacet is the facet ID trusted by every harness server.
const DefaultFacet = "https://app.test"

// Server is a running hwfido-server process.
type Server struct {
	URL      string
	AppID    string
	Dir      string
	Token    *Token
	DBPath   string
	loginKey *ecdsa.PrivateKey
	cmd      *exec.Cmd
	log      *testutil.SyncBuffer
	done     chan error
}

// StartServer starts hwfido-server and waits until /healthz answers 200.
func StartServer(tb testing.TB, o ServerOptions) *Server {
	tb.Helper()
	dir := tb.TempDir()
	s := &Server{Dir: dir, Token: o.Token, DBPath: o.DBPath}
	if s.Token == nil {
		s.Token = NewToken(tb, dir)
	}
	if s.DBPath == "" {
		s.DBPath = filepath.Join(dir, "hwfido.db")
	}
	mdDir := filepath.Join(dir, "metadata")
	if err := os.MkdirAll(mdDir, 0o755); err != nil {
		tb.Fatal(err)
	}
	for i, m := range o.Metadata {
		if err := os.WriteFile(filepath.Join(mdDir, fmt.Sprintf("statement-%02d.json", i)), m, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	s.loginKey = k
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	loginPub := filepath.Join(dir, "login.pem")
	if err := os.WriteFile(loginPub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		tb.Fatal(err)
	}
	if o.CounterPolicy == "" {
		o.CounterPolicy = "reject"
	}
	port := FreePort(tb)
	s.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
	s.AppID = "https://app.test/nevisfido/uaf/1.1/facets"
	if o.AppID != "" {
		s.AppID = strings.ReplaceAll(o.AppID, "{{.URL}}", s.URL)
	}
	facets := append([]string{DefaultFacet}, o.Facets...)
	cfg := fmt.Sprintf(`version: 1
server:
  listen: 127.0.0.1:%d
  conformance-api: %v
hsm:
  uri: %q
  sessions: 4
store:
  path: %s
fido-uaf:
  app-id: %s
  facets: [%s]
  metadata:
    path: %s
  policies:
    default:
      accepted:
        - - assertionSchemes: [UAFV1TLV]
            authenticationAlgorithms: [1, 2, 3, 4, 5, 6, 8, 9]
  counter-policy: %s
caller-auth:
  tokens:
    - issuer: %s
      audience: %s
      keys-file: %s
result-token:
  issuer: %s
  audience: https://rp.test
log:
  level: debug
`, port, o.Conformance, s.Token.URI, s.DBPath, s.AppID, quoteList(facets), mdDir, o.CounterPolicy, Issuer, Audience, loginPub, s.URL)
	cfg += strings.NewReplacer("{{.URL}}", s.URL, "{{.Dir}}", dir, "{{.Port}}", fmt.Sprint(port)).Replace(o.ExtraYAML)
	cfgPath := filepath.Join(dir, "hwfido.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		tb.Fatal(err)
	}
	s.log = &testutil.SyncBuffer{}
	s.cmd = exec.Command(Bin(tb, "hwfido-server"), "-config", cfgPath)
	s.cmd.Env = s.Token.Env()
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	s.done = make(chan error, 1)
	go func() { s.done <- s.cmd.Wait() }()
	tb.Cleanup(func() {
		s.Stop(tb)
		if tb.Failed() {
			tb.Logf("hwfido-server log:\n%s", s.Log())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-s.done:
			tb.Fatalf("hwfido-server exited: %v\n%s", err, s.Log())
		default:
		}
		resp, err := http.Get(s.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("hwfido-server not healthy after 60s\n%s", s.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// Stop sends SIGTERM and waits for the process (killing it after 10 s). It is idempotent.
func (s *Server) Stop(tb testing.TB) {
	if s.cmd == nil || s.cmd.Process == nil || s.done == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if err != nil {
			tb.Errorf("hwfido-server did not stop cleanly: %v", err)
		}
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		tb.Errorf("hwfido-server ignored SIGTERM for 10s")
	}
	s.done = nil
}

// Log returns what the server process wrote so far.
func (s *Server) Log() string { return s.log.String() }

// Reload sends the server SIGHUP and waits (at most 30 s) until its log reports the
// outcome of that reload; it returns the log line ("reload done" or the failure).
func (s *Server) Reload(tb testing.TB) string {
	tb.Helper()
	count := func() int {
		l := s.log.String()
		return strings.Count(l, "reload done") + strings.Count(l, "reload failed")
	}
	n := count()
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		tb.Fatalf("SIGHUP: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for count() == n {
		if time.Now().After(deadline) {
			tb.Fatalf("no reload outcome in the server log within 30s:\n%s", s.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	lines := strings.Split(strings.TrimSpace(s.log.String()), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], "reload done") || strings.Contains(lines[i], "reload failed") {
			return lines[i]
		}
	}
	return ""
}

// CallerToken issues a caller token for user from the harness's login service.
func (s *Server) CallerToken(tb testing.TB, user string) string {
	tb.Helper()
	tok, err := callerauth.Mint(s.loginKey, callerauth.MintOptions{Issuer: Issuer, Audience: Audience, Username: user})
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// LoginKeyFile writes the harness login service's private key (PKCS#8 PEM, mode 0600) into
// the server's folder and returns its path, for a relying party that signs its own caller
// tokens (cmd/rp-demo) with Issuer and Audience.
func (s *Server) LoginKeyFile(tb testing.TB) string {
	tb.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(s.loginKey)
	if err != nil {
		tb.Fatal(err)
	}
	p := filepath.Join(s.Dir, "login.key")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// Context returns a context bounded by the test's deadline (or 2 minutes).
func Context(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	tb.Cleanup(cancel)
	return ctx
}
