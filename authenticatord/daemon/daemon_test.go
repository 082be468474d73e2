package daemon_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/authenticatord/asm"
	"github.com/fidoserver/hwfido/authenticatord/daemon"
	"github.com/fidoserver/hwfido/authenticatord/localapi"
	"github.com/fidoserver/hwfido/authenticatord/localclient"
	"github.com/fidoserver/hwfido/authenticatord/tpm/swtpmtest"
	"github.com/fidoserver/hwfido/authenticatord/vendorca"
	"github.com/fidoserver/hwfido/internal/testutil"
	"github.com/fidoserver/hwfido/metadata"
	"github.com/fidoserver/hwfido/uaf"
)

const (
	facetID   = "https://device.example.test"
	otherUID  = 65534 // nobody
	helperEnv = "AUTHENTICATORD_TEST_HELPER_SOCKET"
)

var (
	pin      = []byte("482916-correct")
	wrongPIN = []byte("000000-wrong")
	newPIN   = []byte("917364-new")
)

// TestMain runs the peer helper when re-executed as another uid.
func TestMain(m *testing.M) {
	if sock := os.Getenv(helperEnv); sock != "" {
		os.Exit(peerHelper(sock))
	}
	os.Exit(m.Run())
}

// peerResult is what the helper process (another uid) observed.
type peerResult struct {
	UID           int    `json:"uid"`
	Registrations int    `json:"registrations"`
	AuthStatus    int    `json:"authStatus"`
	AdminErr      string `json:"adminErr"`
}

func peerHelper(sock string) int {
	ctx := context.Background()
	c := localclient.New(sock, 30*time.Second)
	res := peerResult{UID: os.Getuid()}
	regs, err := c.GetRegistrations(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, r := range regs.AppRegs {
		res.Registrations += len(r.KeyIDs)
	}
	_, err = c.Authenticate(ctx, asm.AuthenticateIn{AppID: os.Getenv("AUTHENTICATORD_TEST_APPID"), FinalChallenge: "x"}, pin)
	var se *localclient.ASMStatusError
	if errors.As(err, &se) {
		res.AuthStatus = int(se.Status)
	} else {
		res.AuthStatus = -1
	}
	if _, err := c.CreateAttestationKey(ctx); err != nil {
		res.AdminErr = err.Error()
	}
	_ = json.NewEncoder(os.Stdout).Encode(res)
	return 0
}

type harness struct {
	t    testing.TB
	cfg  *daemon.Config
	log  *testutil.SyncBuffer
	stop func()
	c    *localclient.Client
}

// newHarness starts swtpm, provisions it (DA maxTries 4) and writes the config.
func newHarness(t testing.TB) *harness {
	t.Helper()
	sim := swtpmtest.Start(t, swtpmtest.Options{})
	if sim.Network() != "tcp" {
		t.Fatalf("swtpm network %q", sim.Network())
	}
	// The socket lives in a world-traversable folder so another uid can reach it.
	pub, err := os.MkdirTemp("", "authd-sock-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(pub) })
	if err := os.Chmod(pub, 0o755); err != nil { //nolint:gosec // test socket folder
		t.Fatal(err)
	}
	gid := otherUID
	raw := fmt.Sprintf(`{"version":1,"tpm":{"tcp":%q},"stateDir":%q,"socket":{"path":%q,"mode":"0660","gid":%d},
		"facetID":%q,"da":{"maxTries":4,"recoveryTime":"10m","lockoutRecovery":"1h"},"logLevel":"debug"}`,
		sim.Addr(), filepath.Join(t.TempDir(), "state"), filepath.Join(pub, "authd.sock"), gid, facetID)
	cfg, err := daemon.ParseConfig([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, cfg: cfg, log: &testutil.SyncBuffer{}}
	if err := daemon.Provision(cfg, filepath.Join(t.TempDir(), "lockout-auth"), nil, slog.New(slog.NewTextHandler(h.log, nil))); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	t.Cleanup(func() {
		if h.stop != nil {
			h.stop()
		}
	})
	return h
}

// start runs the daemon until h.stop.
func (h *harness) start() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	log := slog.New(slog.NewJSONHandler(h.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	go func() { done <- daemon.Run(ctx, h.cfg, daemon.Options{Logger: log, Ready: func() { close(ready) }}) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		h.t.Fatalf("daemon.Run: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		h.t.Fatal("daemon not ready after 30s")
	}
	h.c = localclient.New(h.cfg.Socket.Path, 60*time.Second)
	h.stop = func() {
		h.c.Close()
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("daemon.Run: %v", err)
		}
		h.stop = nil
	}
}

// run performs begin+finish.
func (h *harness) run(op uaf.Operation, s *uafServer, ctxJSON string, confirm bool, p []byte) (*localapi.BeginResponse, *localapi.FinishResponse) {
	h.t.Helper()
	ctx := context.Background()
	b, err := h.c.Begin(ctx, localapi.BeginRequest{Op: op, Server: s.URL(), Context: ctxJSON, BearerToken: s.token})
	if err != nil {
		h.t.Fatalf("Begin %s: %v", op, err)
	}
	if op == uaf.OpDereg {
		return b, nil
	}
	f, err := h.c.Finish(ctx, b.Session, confirm, p)
	if err != nil {
		h.t.Fatalf("Finish %s: %v", op, err)
	}
	return b, f
}

func wantOK(t *testing.T, f *localapi.FinishResponse, token string) {
	t.Helper()
	if f.Error != "" || f.ServerResponse == nil || f.ServerResponse.StatusCode != uaf.StatusOK {
		t.Fatalf("finish: %+v (server %+v)", f, f.ServerResponse)
	}
	if len(f.ServerResponse.AdditionalTokens) != 1 || f.ServerResponse.AdditionalTokens[0].Value != token {
		t.Fatalf("additionalTokens = %+v, want %q", f.ServerResponse.AdditionalTokens, token)
	}
}

func TestDaemonEndToEnd(t *testing.T) {
	h := newHarness(t)
	h.start()
	srv := newUAFServer(t, facetID)
	ctx := context.Background()

	t.Run("register surrogate", func(t *testing.T) {
		b, f := h.run(uaf.OpReg, srv, `{"username":"alice"}`, true, pin)
		if b.AppID != srv.appID() || b.Username != "alice" || b.AttestationType != uaf.AttestationBasicSurrogate {
			t.Fatalf("begin = %+v", b)
		}
		wantOK(t, f, "reg-result-alice")
	})
	t.Run("register again is disallowed by policy", func(t *testing.T) {
		_, err := h.c.Begin(ctx, localapi.BeginRequest{Op: uaf.OpReg, Server: srv.URL(), Context: `{"username":"alice"}`, BearerToken: srv.token})
		var le *localclient.Error
		if !errors.As(err, &le) || le.ClientErrorCode != uaf.ErrorNoSuitableAuthenticator {
			t.Fatalf("err = %v, want NO_SUITABLE_AUTHENTICATOR", err)
		}
	})
	t.Run("registration needs the caller token", func(t *testing.T) {
		_, err := h.c.Begin(ctx, localapi.BeginRequest{Op: uaf.OpReg, Server: srv.URL(), Context: `{"username":"carol"}`})
		if err == nil || !strings.Contains(err.Error(), "401") {
			t.Fatalf("err = %v, want HTTP 401 reported", err)
		}
	})
	t.Run("authenticate", func(t *testing.T) {
		for i := range 2 {
			_, f := h.run(uaf.OpAuth, srv, `{"username":"alice"}`, true, pin)
			wantOK(t, f, "auth-result-alice")
			if got := srv.counterOf("alice"); got != uint32(i+1) {
				t.Fatalf("counter = %d, want %d", got, i+1)
			}
		}
	})
	t.Run("confirm transaction", func(t *testing.T) {
		b, f := h.run(uaf.OpAuth, srv, `{"username":"alice","transaction":"Pay 10 EUR to Bob"}`, true, pin)
		if !b.HasTransaction || b.Transaction != "Pay 10 EUR to Bob" {
			t.Fatalf("begin = %+v", b)
		}
		wantOK(t, f, "auth-result-alice")
		if srv.lastTx != "Pay 10 EUR to Bob" {
			t.Fatalf("server verified transaction %q", srv.lastTx)
		}
	})
	t.Run("reject transaction", func(t *testing.T) {
		before := srv.counterOf("alice")
		_, f := h.run(uaf.OpAuth, srv, `{"username":"alice","transaction":"Pay 9999 EUR to Mallory"}`, false, nil)
		if f.ClientErrorCode != uaf.ErrorUserCancelled || f.ASMStatusCode != uaf.ASMUserCancelled {
			t.Fatalf("finish = %+v", f)
		}
		if got := srv.lastReport(); got != `{"asmStatusCode":3,"clientErrorCode":3}` {
			t.Fatalf("server got context %q", got)
		}
		if srv.counterOf("alice") != before {
			t.Fatal("a rejected transaction was signed")
		}
	})
	t.Run("wrong PIN is ACCESS_DENIED", func(t *testing.T) {
		_, f := h.run(uaf.OpAuth, srv, `{"username":"alice"}`, true, wrongPIN)
		if f.ASMStatusCode != uaf.ASMAccessDenied || f.ClientErrorCode != uaf.ErrorAuthenticatorAccessDenied {
			t.Fatalf("finish = %+v", f)
		}
		if got := srv.lastReport(); got != `{"asmStatusCode":2,"clientErrorCode":12}` {
			t.Fatalf("server got context %q", got)
		}
		st, err := h.c.Status(ctx)
		if err != nil || st.DAFailures < 1 || st.DARemaining != st.DAMaxTries-st.DAFailures {
			t.Fatalf("status = %+v, %v", st, err)
		}
	})
	t.Run("basic full", func(t *testing.T) {
		akPEM, err := h.c.CreateAttestationKey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ak, err := vendorca.ParsePublicKeyPEM([]byte(akPEM))
		if err != nil {
			t.Fatal(err)
		}
		caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		root, err := vendorca.NewRoot(caKey, vendorca.RootOptions{})
		if err != nil {
			t.Fatal(err)
		}
		otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		wrongLeaf, _ := vendorca.IssueLeaf(caKey, root, vendorca.LeafOptions{AAID: "4857#0001", PublicKey: &otherKey.PublicKey})
		if err := h.c.InstallCertificate(ctx, vendorca.EncodePEM(wrongLeaf), vendorca.EncodePEM(root)); err == nil {
			t.Fatal("a certificate for another key was installed")
		}
		wrongAAID, _ := vendorca.IssueLeaf(caKey, root, vendorca.LeafOptions{AAID: "4857#0002", PublicKey: ak})
		if err := h.c.InstallCertificate(ctx, vendorca.EncodePEM(wrongAAID), vendorca.EncodePEM(root)); err == nil {
			t.Fatal("a certificate for another AAID was installed")
		}
		leaf, err := vendorca.IssueLeaf(caKey, root, vendorca.LeafOptions{AAID: "4857#0001", PublicKey: ak})
		if err != nil {
			t.Fatal(err)
		}
		if err := h.c.InstallCertificate(ctx, vendorca.EncodePEM(leaf), vendorca.EncodePEM(root)); err != nil {
			t.Fatal(err)
		}
		srv.mu.Lock()
		srv.root = root
		srv.mu.Unlock()
		b, f := h.run(uaf.OpReg, srv, `{"username":"bob"}`, true, pin)
		if b.AttestationType != uaf.AttestationBasicFull {
			t.Fatalf("attestation type %v", b.AttestationType)
		}
		wantOK(t, f, "reg-result-bob")
		// The metadata statement now lists basic_full with the vendor root.
		md, err := h.c.Metadata(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st, err := metadata.ParseStatement(md)
		if err != nil {
			t.Fatalf("ParseStatement: %v\n%s", err, md)
		}
		if !st.HasAttestationType(0x3E07) || !st.HasAttestationType(0x3E08) || len(st.AttestationRoots) != 1 ||
			!st.AttestationRoots[0].Equal(root) || st.KeyProtection != 0x6 || st.MatcherProtection != 0x4 ||
			st.TcDisplay != 0x1 || st.TcDisplayContentType != "text/plain" || !st.HasAuthenticationAlgorithm(1) ||
			!st.HasPublicKeyAlgAndEncoding(0x100) || st.AAID != "4857#0001" || st.AssertionScheme != "UAFV1TLV" {
			t.Fatalf("statement = %+v", st)
		}
		if uv := st.UserVerificationCombinations(); len(uv) != 1 || uv[0] != 0x4 {
			t.Fatalf("userVerification = %v", uv)
		}
	})
	t.Run("restart keeps registrations and counters", func(t *testing.T) {
		before := srv.counterOf("alice")
		h.stop()
		h.start()
		_, f := h.run(uaf.OpAuth, srv, `{"username":"alice"}`, true, pin)
		wantOK(t, f, "auth-result-alice")
		if got := srv.counterOf("alice"); got <= before {
			t.Fatalf("counter %d after restart, before %d", got, before)
		}
		_, f = h.run(uaf.OpAuth, srv, `{"username":"bob"}`, true, pin)
		wantOK(t, f, "auth-result-bob")
	})
	t.Run("pending operations per user are bounded", func(t *testing.T) {
		var sessions []string
		for i := range 8 {
			b, err := h.c.Begin(ctx, localapi.BeginRequest{Op: uaf.OpAuth, Server: srv.URL(), Context: `{"username":"alice"}`})
			if err != nil {
				t.Fatalf("begin %d: %v", i+1, err)
			}
			sessions = append(sessions, b.Session)
		}
		_, err := h.c.Begin(ctx, localapi.BeginRequest{Op: uaf.OpAuth, Server: srv.URL(), Context: `{"username":"alice"}`})
		var le *localclient.Error
		if !errors.As(err, &le) || le.HTTPStatus != 429 {
			t.Fatalf("ninth pending operation of one user: %v, want 429", err)
		}
		for _, id := range sessions {
			if _, err := h.c.Finish(ctx, id, false, nil); err != nil {
				t.Fatalf("reject: %v", err)
			}
		}
		_, f := h.run(uaf.OpAuth, srv, `{"username":"alice"}`, true, pin)
		wantOK(t, f, "auth-result-alice")
	})
	t.Run("peer isolation", func(t *testing.T) {
		res := runAsOtherUID(t, h.cfg.Socket.Path, srv.appID())
		if res.UID != otherUID || res.Registrations != 0 || res.AuthStatus != int(uaf.ASMAccessDenied) ||
			!strings.Contains(res.AdminErr, "403") {
			t.Fatalf("other uid saw %+v", res)
		}
		regs, err := h.c.GetRegistrations(ctx)
		if err != nil || len(regs.AppRegs) != 1 || len(regs.AppRegs[0].KeyIDs) != 2 {
			t.Fatalf("root registrations = %+v, %v", regs, err)
		}
	})
	t.Run("browser requests refused", func(t *testing.T) {
		refused := browserRequest(t, h.cfg.Socket.Path)
		if !refused {
			t.Fatal("request with Origin was served")
		}
	})
	t.Run("change PIN", func(t *testing.T) {
		if _, err := h.c.ChangePIN(ctx, wrongPIN, newPIN); err == nil {
			t.Fatal("PIN changed with the wrong old PIN")
		}
		n, err := h.c.ChangePIN(ctx, pin, newPIN)
		if err != nil || n != 2 {
			t.Fatalf("ChangePIN = %d, %v", n, err)
		}
		_, f := h.run(uaf.OpAuth, srv, `{"username":"alice"}`, true, newPIN)
		wantOK(t, f, "auth-result-alice")
		_, f = h.run(uaf.OpAuth, srv, `{"username":"alice"}`, true, pin)
		if f.ASMStatusCode != uaf.ASMAccessDenied {
			t.Fatalf("old PIN after change: %+v", f)
		}
	})
	t.Run("deregister", func(t *testing.T) {
		b, _ := h.run(uaf.OpDereg, srv, `{"username":"bob"}`, true, nil)
		if b.Deregistered != 1 {
			t.Fatalf("deregistered %d", b.Deregistered)
		}
		regs, err := h.c.GetRegistrations(ctx)
		if err != nil || len(regs.AppRegs) != 1 || len(regs.AppRegs[0].KeyIDs) != 1 {
			t.Fatalf("registrations after dereg = %+v, %v", regs, err)
		}
	})
	t.Run("lockout is USER_LOCKOUT", func(t *testing.T) {
		var last uaf.ASMStatus
		for range 6 { // maxTries is 4; bounded
			_, f := h.run(uaf.OpAuth, srv, `{"username":"alice"}`, true, wrongPIN)
			last = f.ASMStatusCode
			if last == uaf.ASMUserLockout {
				break
			}
			if last != uaf.ASMAccessDenied {
				t.Fatalf("status %v", last)
			}
		}
		if last != uaf.ASMUserLockout {
			t.Fatalf("no lockout, last status %v", last)
		}
		_, f := h.run(uaf.OpAuth, srv, `{"username":"alice"}`, true, newPIN)
		if f.ASMStatusCode != uaf.ASMUserLockout || f.ClientErrorCode != uaf.ErrorUserLockout {
			t.Fatalf("correct PIN during lockout: %+v", f)
		}
		st, err := h.c.Status(ctx)
		if err != nil || !st.InLockout || st.RetryAfterSecs <= 0 {
			t.Fatalf("status = %+v, %v", st, err)
		}
	})
	h.stop()
	t.Run("no secrets in the log", func(t *testing.T) {
		log := h.log.String()
		if !strings.Contains(log, "local api request") || !strings.Contains(log, "uaf assertion signed") {
			t.Fatalf("log lacks the expected events:\n%s", log)
		}
		for _, s := range [][]byte{pin, wrongPIN, newPIN, []byte(srv.token)} {
			if strings.Contains(log, string(s)) {
				t.Fatalf("log contains secret %q", s)
			}
		}
	})
}

func runAsOtherUID(t *testing.T, sock, appID string) peerResult {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "authd-helper-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	_ = os.Chmod(dir, 0o755) //nolint:gosec // helper binary folder
	bin := filepath.Join(dir, "helper")
	src, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755) //nolint:gosec // executable for the helper uid
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(dst, src)
	_ = src.Close()
	if cerr := dst.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = []string{helperEnv + "=" + sock, "AUTHENTICATORD_TEST_APPID=" + appID}
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: otherUID, Gid: otherUID}}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper as uid %d: %v\n%s", otherUID, err, stderr.String())
	}
	var res peerResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("helper output %q: %v", out, err)
	}
	return res
}
