package test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	_ "github.com/mattn/go-sqlite3" // read the server's SQLite file

	"github.com/fidoserver/hwfido/authenticatord/localapi"
	"github.com/fidoserver/hwfido/authenticatord/localclient"
	"github.com/fidoserver/hwfido/authenticatord/tpm/swtpmtest"
	"github.com/fidoserver/hwfido/test/harness"
	"github.com/fidoserver/hwfido/uaf"
)

// device is a TPM-backed authenticator as it runs on a device: a real swtpm
// process (Unix socket, its own state), provisioned with `authenticatord
// provision`, and the authenticatord binary serving its local API socket.
// Tests drive it with the authenticatorctl binary.
type device struct {
	t        *testing.T
	sim      *swtpmtest.Sim
	dir      string // state, config, PIN files
	cfgPath  string
	socket   string
	facetID  string
	maxTries uint32
	links    int // link files written (linkFile)

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan error
	logs []*bytes.Buffer // one per daemon run
}

// deviceFacetID is the facet ID of the device's FIDO client.
const deviceFacetID = "https://device.test"

// startDevice starts swtpm, provisions DA maxTries (recovery 10 min, so no
// failure is forgotten during the test) and starts the daemon.
func startDevice(t *testing.T, maxTries uint32) *device {
	t.Helper()
	d := &device{t: t, dir: t.TempDir(), facetID: deviceFacetID, maxTries: maxTries}
	d.sim = swtpmtest.Start(t, swtpmtest.Options{Unix: true})
	// Unix socket paths are limited to 108 bytes; TempDir paths can be long.
	sockDir, err := os.MkdirTemp("", "authd-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(sockDir) })
	d.socket = filepath.Join(sockDir, "authd.sock")
	cfg := fmt.Sprintf(`{"version":1,"tpm":{"unix":%q},"stateDir":%q,"socket":{"path":%q},"facetID":%q,
  "da":{"maxTries":%d,"recoveryTime":"10m","lockoutRecovery":"1h"},"logLevel":"debug"}`,
		d.sim.Addr(), filepath.Join(d.dir, "state"), d.socket, d.facetID, maxTries)
	d.cfgPath = filepath.Join(d.dir, "authenticatord.json")
	if err := os.WriteFile(d.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(harness.Bin(t, "authenticatord"), "provision", "-config", d.cfgPath,
		"-lockout-auth-file", filepath.Join(d.dir, "lockout-auth")).CombinedOutput()
	if err != nil {
		t.Fatalf("authenticatord provision: %v\n%s", err, out)
	}
	// Registered after swtpm's cleanup, so it runs before it: swtpm serves
	// one client at a time and the daemon must have let go of it.
	t.Cleanup(func() {
		d.kill()
		if t.Failed() {
			t.Logf("authenticatord log:\n%s", d.Log())
		}
	})
	d.start()
	return d
}

// start starts the daemon and waits until its socket answers.
func (d *device) start() {
	d.t.Helper()
	d.mu.Lock()
	if d.cmd != nil {
		d.mu.Unlock()
		d.t.Fatal("authenticatord already running")
	}
	log := &bytes.Buffer{}
	d.logs = append(d.logs, log)
	cmd := exec.Command(harness.Bin(d.t, "authenticatord"), "-config", d.cfgPath)
	cmd.Stdout, cmd.Stderr = &lockedWriter{mu: &d.mu, w: log}, &lockedWriter{mu: &d.mu, w: log}
	if err := cmd.Start(); err != nil {
		d.mu.Unlock()
		d.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	d.cmd, d.done = cmd, done
	d.mu.Unlock()

	c := localclient.New(d.socket, 2*time.Second)
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-done:
			d.t.Fatalf("authenticatord exited: %v\n%s", err, d.Log())
		default:
		}
		if _, err := c.Status(context.Background()); err == nil {
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("authenticatord not ready after 30s\n%s", d.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM: the daemon closes the TPM with TPM2_Shutdown and
// exits 0.
func (d *device) stop() {
	d.t.Helper()
	d.mu.Lock()
	cmd, done := d.cmd, d.done
	d.cmd = nil
	d.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			d.t.Fatalf("authenticatord did not stop cleanly: %v\n%s", err, d.Log())
		}
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		d.t.Fatalf("authenticatord ignored SIGTERM for 15s")
	}
}

// kill stops the daemon with SIGKILL (no TPM2_Shutdown), as a crash would.
func (d *device) kill() {
	d.mu.Lock()
	cmd, done := d.cmd, d.done
	d.cmd = nil
	d.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Log returns everything the daemon runs wrote.
func (d *device) Log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var b strings.Builder
	for i, l := range d.logs {
		fmt.Fprintf(&b, "--- run %d\n%s", i+1, l.String())
	}
	return b.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// secretFile writes a secret (PIN, caller token) to a 0600 file.
func (d *device) secretFile(name, value string) string {
	d.t.Helper()
	p := filepath.Join(d.dir, name)
	if err := os.WriteFile(p, []byte(value+"\n"), 0o600); err != nil {
		d.t.Fatal(err)
	}
	return p
}

// linkFile writes an out-of-band link to a 0600 file for `authenticatorctl oob -link-file`
// (a link may carry the token in clear, so it never goes on a command line).
func (d *device) linkFile(link string) string {
	d.t.Helper()
	d.links++
	return d.secretFile(fmt.Sprintf("link-%d", d.links), link)
}

// ctlResult is one authenticatorctl run.
type ctlResult struct {
	code           int
	stdout, stderr string
}

// finish decodes the FinishResponse authenticatorctl prints.
func (r ctlResult) finish(t *testing.T) localapi.FinishResponse {
	t.Helper()
	var f localapi.FinishResponse
	if err := json.Unmarshal([]byte(r.stdout), &f); err != nil {
		t.Fatalf("authenticatorctl output is not a FinishResponse: %v\nstdout: %s\nstderr: %s", err, r.stdout, r.stderr)
	}
	return f
}

// ctl runs authenticatorctl against the daemon. With pinFile set, the PIN
// is passed on file descriptor 3 (-pin-fd 3), never on the command line.
func (d *device) ctl(pinFile string, args ...string) ctlResult {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	full := append([]string{"-socket", d.socket}, args...)
	cmd := exec.CommandContext(ctx, harness.Bin(d.t, "authenticatorctl"), full...)
	if pinFile != "" {
		f, err := os.Open(pinFile)
		if err != nil {
			d.t.Fatal(err)
		}
		defer f.Close()
		cmd.ExtraFiles = []*os.File{f}
		cmd.Args = append(cmd.Args, "-pin-fd", "3")
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Stdin = strings.NewReader("")
	err := cmd.Run()
	res := ctlResult{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	default:
		d.t.Fatalf("authenticatorctl %v: %v", args, err)
	}
	return res
}

// mustCtl runs authenticatorctl and requires exit code want.
func (d *device) mustCtl(want int, pinFile string, args ...string) ctlResult {
	d.t.Helper()
	r := d.ctl(pinFile, args...)
	if r.code != want {
		d.t.Fatalf("authenticatorctl %s: exit %d, want %d\nstdout: %s\nstderr: %s", args[0], r.code, want, r.stdout, r.stderr)
	}
	return r
}

// status asks the daemon for its status over the socket.
func (d *device) status() *localapi.StatusResponse {
	d.t.Helper()
	c := localclient.New(d.socket, 10*time.Second)
	defer c.Close()
	st, err := c.Status(context.Background())
	if err != nil {
		d.t.Fatalf("status: %v", err)
	}
	return st
}

// recorder is a loopback reverse proxy in front of the server that keeps
// the bodies of the SendUAFResponse messages passing through it, so a test
// can replay exactly what the daemon sent.
type recorder struct {
	URL string
	mu  sync.Mutex
	got map[string][][]byte // path → bodies
}

func newRecorder(t *testing.T, target string) *recorder {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{got: map[string][][]byte{}}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodPost {
			b, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			r.mu.Lock()
			r.got[req.URL.Path] = append(r.got[req.URL.Path], b)
			r.mu.Unlock()
			req.Body = io.NopCloser(bytes.NewReader(b))
			req.ContentLength = int64(len(b))
		}
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

// last returns the last body posted to path.
func (r *recorder) last(t *testing.T, path string) []byte {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.got[path]
	if len(l) == 0 {
		t.Fatalf("nothing was posted to %s", path)
	}
	return l[len(l)-1]
}

// resend posts body to the server as it is and decodes the ServerResponse.
func resend(t *testing.T, s *harness.Server, path string, body []byte) *uaf.ServerResponse {
	t.Helper()
	resp, err := http.Post(s.URL+path, "application/fido+uaf", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sr uaf.ServerResponse
	if err := json.Unmarshal(b, &sr); err != nil {
		t.Fatalf("%s: HTTP %d: %s", path, resp.StatusCode, b)
	}
	return &sr
}

// resultClaims are the result-token claims the tests check.
type resultClaims struct {
	Sub    string `json:"sub"`
	Op     string `json:"op"`
	AAID   string `json:"aaid"`
	KeyID  string `json:"keyid"`
	TxHash string `json:"tx_hash"`
	Iss    string `json:"iss"`
}

// verifyResult checks the result token in a ServerResponse against the
// server's published JWKS (ES256, kid in the set, not expired) and returns
// its claims.
func verifyResult(t *testing.T, s *harness.Server, sr *uaf.ServerResponse) resultClaims {
	t.Helper()
	if sr == nil || sr.StatusCode != uaf.StatusOK || len(sr.AdditionalTokens) != 1 {
		t.Fatalf("want statusCode 1200 with one result token, got %+v", sr)
	}
	resp, err := http.Get(s.URL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatalf("jwks: %v", err)
	}
	tok, err := jwt.ParseSigned(sr.AdditionalTokens[0].Value, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("result token: %v", err)
	}
	keys := set.Key(tok.Headers[0].KeyID)
	if len(keys) != 1 {
		t.Fatalf("result token kid %q not in the JWKS", tok.Headers[0].KeyID)
	}
	if _, ok := keys[0].Key.(*ecdsa.PublicKey); !ok {
		t.Fatalf("JWKS key is %T", keys[0].Key)
	}
	var std jwt.Claims
	var c resultClaims
	if err := tok.Claims(keys[0].Key, &std, &c); err != nil {
		t.Fatalf("result token signature: %v", err)
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Time: time.Now()}, time.Minute); err != nil {
		t.Fatalf("result token: %v", err)
	}
	return c
}

// registration is a row of the server's uaf_registrations table.
type registration struct {
	keyID           string
	signCounter     uint32
	attestationType int
	hasCert         bool
}

// registrations reads the user's UAF registrations from the server's
// SQLite file (read-only).
func registrations(t *testing.T, s *harness.Server, user string) []registration {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+s.DBPath+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT r.key_id, r.sign_counter, r.attestation_type, r.attestation_cert IS NOT NULL
		FROM uaf_registrations r JOIN users u ON u.id = r.user_id WHERE u.username = ?`, user)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []registration
	for rows.Next() {
		var r registration
		if err := rows.Scan(&r.keyID, &r.signCounter, &r.attestationType, &r.hasCert); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
