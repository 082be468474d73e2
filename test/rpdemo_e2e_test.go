package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/fidoserver/hwfido/internal/rpdemo"
	"github.com/fidoserver/hwfido/test/browser"
	"github.com/fidoserver/hwfido/test/harness"
)

// rpDemo is a running cmd/rp-demo process (Example Bank) in front of a hwfido-server.
type rpDemo struct {
	URL  string
	mu   sync.Mutex
	log  bytes.Buffer
	cmd  *exec.Cmd
	done chan error
}

func (r *rpDemo) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.Write(p)
}

func (r *rpDemo) Log() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.String()
}

// startRPDemo starts rp-demo for user/password against s: the users file is made with
// `rp-demo hash-password` (password on fd 3), the login-service key is the harness's, so
// the server accepts the caller tokens the app signs.
func startRPDemo(t *testing.T, s *harness.Server, user, password string) *rpDemo {
	t.Helper()
	bin := harness.Bin(t, "rp-demo")
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "password")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pw, err := os.Open(pwFile)
	if err != nil {
		t.Fatal(err)
	}
	hash := exec.Command(bin, "hash-password", "-user", user, "-password-fd", "3")
	hash.ExtraFiles = []*os.File{pw}
	line, err := hash.Output()
	pw.Close()
	if err != nil || !strings.HasPrefix(string(line), user+":$2") {
		t.Fatalf("rp-demo hash-password: %v %q", err, line)
	}
	usersFile := filepath.Join(dir, "users")
	if err := os.WriteFile(usersFile, line, 0o600); err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
	cfg, _ := json.Marshal(map[string]any{
		"version": 1, "listen": listen, "server": s.URL, "usersFile": usersFile,
		"login":            map[string]any{"issuer": harness.Issuer, "audience": harness.Audience, "keyFile": s.LoginKeyFile(t)},
		"resultToken":      map[string]any{"audience": "https://rp.test"},
		"operationTimeout": "2m",
	})
	cfgPath := filepath.Join(dir, "rp-demo.json")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	r := &rpDemo{URL: "http://" + listen, done: make(chan error, 1)}
	r.cmd = exec.Command(bin, "-config", cfgPath, "-log-level", "debug")
	r.cmd.Stdout, r.cmd.Stderr = r, r
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	t.Cleanup(func() {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("rp-demo did not stop cleanly: %v", err)
			}
		case <-time.After(10 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.done
			t.Errorf("rp-demo ignored SIGTERM for 10s")
		}
		if t.Failed() || os.Getenv("DEBUGLOG") != "" {
			t.Logf("rp-demo log:\n%s", r.Log())
		}
		for _, secret := range []string{password, strings.TrimSpace(strings.SplitN(string(line), ":", 2)[1])} {
			if strings.Contains(r.Log(), secret) {
				t.Errorf("the rp-demo log contains a secret")
			}
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-r.done:
			t.Fatalf("rp-demo exited: %v\n%s", err, r.Log())
		default:
		}
		if resp, err := http.Get(r.URL + "/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("rp-demo not answering after 30s\n%s", r.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rpScanQR takes what the page shows as the QR code — a screenshot of the <img>, as a
// phone camera would see it — and writes it to a PNG file for `authenticatorctl oob -qr`.
func rpScanQR(t *testing.T, ctx context.Context, tab *browser.Tab, id, dir string) string {
	t.Helper()
	if err := tab.Do(ctx, 30*time.Second, chromedp.WaitVisible(chromedp.ID(id))); err != nil {
		t.Fatalf("QR code %s not shown: %v", id, err)
	}
	// Visible is not loaded: the <img> gets its data: URL and is unhidden in the same task,
	// so wait until the browser has decoded and laid out the image before the screenshot.
	_, err := browser.Get(ctx, tab, 30*time.Second, chromedp.Poll[bool](
		`(() => { const i = document.getElementById("`+id+`");
		  return i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width >= i.naturalWidth / 2; })()`,
		chromedp.WithPollingTimeout(20*time.Second)))
	if err != nil {
		t.Fatalf("QR code %s not loaded: %v", id, err)
	}
	png, err := browser.Get(ctx, tab, 30*time.Second, chromedp.Screenshot(chromedp.ID(id)))
	if err != nil {
		t.Fatalf("screenshot of %s: %v", id, err)
	}
	p := filepath.Join(dir, id+".png")
	if err := os.WriteFile(p, png, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// outcome waits until the page shows the outcome of the operation under prefix and
// returns it with the status trail the page listed.
func rpOutcome(t *testing.T, ctx context.Context, tab *browser.Tab, prefix string) (string, []string) {
	t.Helper()
	out, err := browser.Get(ctx, tab, 100*time.Second, chromedp.Poll[string](
		`document.getElementById("`+prefix+`-outcome").dataset.outcome`, chromedp.WithPollingTimeout(90*time.Second)))
	if err != nil {
		t.Fatalf("%s outcome not shown: %v", prefix, err)
	}
	trail, err := browser.Get(ctx, tab, 10*time.Second, chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("#`+prefix+`-trail li")).map(li => li.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	return out, trail
}

func rpText(t *testing.T, ctx context.Context, tab *browser.Tab, id string) string {
	t.Helper()
	s, err := browser.Get(ctx, tab, 10*time.Second, chromedp.Evaluate[string](`document.getElementById("`+id+`").textContent`))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRPDemoBrowser is the relying-party demo end to end with real processes: hwfido-server
// (SoftHSM, SQLite, link-png-qr-code dispatcher), rp-demo, swtpm + authenticatord, and
// headless Debian Chromium. The page logs in with a password, shows the registration QR
// code, the test hands a screenshot of it to `authenticatorctl oob -qr` (PIN on fd 3) and
// the page shows success from the server's status stream, relayed and verified by the
// bank's backend. Then a payment: confirmed (the page shows the transaction hash from the
// verified result token) and rejected on the device (the page shows the failure).
func TestRPDemoBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts swtpm, authenticatord, hwfido-server, rp-demo and Chromium")
	}
	ctx := harness.Context(t)
	dev := startDevice(t, 4)
	statement := []byte(dev.mustCtl(0, "", "metadata").stdout)
	s := harness.StartServer(t, harness.ServerOptions{
		Metadata: [][]byte{statement},
		AppID:    "{{.URL}}/nevisfido/uaf/1.1/facets",
		Facets:   []string{deviceFacetID},
		// hwfido-stream: the device announces a push target in its registration.
		ExtraYAML: `oob:
  dispatchers:
    - type: link-png-qr-code
      link-base-url: https://bank.test/oob
    - type: hwfido-stream
`,
	})
	// The daemon holds its push stream (hwfido-stream) open to the server; stop it before
	// the server (cleanups run last-in first-out) so the server's shutdown is not held up.
	t.Cleanup(dev.stop)
	const user, password = "alice", "correct horse battery staple"
	rp := startRPDemo(t, s, user, password)
	pin := dev.secretFile("pin", "731904-rp-demo")

	b, err := browser.Start(ctx, browser.Options{})
	if errors.Is(err, browser.ErrNoChromium) {
		t.Fatal(err) // real components: a missing browser fails the run
	}
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tab, err := b.NewTab(ctx, rp.URL+"/")
	if err != nil {
		t.Fatal(err)
	}
	defer tab.Close()

	// 1. Password login.
	err = tab.Do(ctx, 30*time.Second,
		chromedp.WaitVisible(chromedp.ID("login-form")),
		chromedp.SendKeys(chromedp.ID("username"), user),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.ID("login-submit")),
		chromedp.WaitVisible(chromedp.ID("reg-start")))
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	if who := rpText(t, ctx, tab, "whoami"); who != user {
		t.Fatalf("logged in as %q", who)
	}

	// 2. Register the phone: QR code on the page → authenticatorctl oob.
	if err := tab.Do(ctx, 30*time.Second, chromedp.Click(chromedp.ID("reg-start"))); err != nil {
		t.Fatal(err)
	}
	qr := rpScanQR(t, ctx, tab, "reg-qr", dev.dir)
	r := dev.mustCtl(0, pin, "oob", "-qr", qr)
	if sr := r.finish(t).ServerResponse; sr == nil || sr.StatusCode != 1200 {
		t.Fatalf("device registration: %s", r.stdout)
	}
	got, trail := rpOutcome(t, ctx, tab, "reg")
	if got != "succeeded" || !slices.Equal(trail, []string{"tokenCreated", "clientRegistering", "succeeded"}) {
		t.Fatalf("registration on the page: %q, trail %v (%s)", got, trail, rpText(t, ctx, tab, "reg-outcome"))
	}
	t.Logf("registration status trail: %v", trail)

	// 3. Confirm a payment on the device.
	pay := func(amount string, confirm bool) (string, []string) {
		t.Helper()
		err := tab.Do(ctx, 30*time.Second,
			chromedp.SetValue(chromedp.ID("pay-amount"), amount),
			chromedp.Click(chromedp.ID("pay-start")))
		if err != nil {
			t.Fatal(err)
		}
		qr := rpScanQR(t, ctx, tab, "pay-qr", dev.dir)
		if confirm {
			r := dev.mustCtl(0, pin, "oob", "-qr", qr, "-yes")
			if !strings.Contains(r.stderr, "Pay "+amount+" EUR to Bob's Books") {
				t.Fatalf("the device did not show the transaction: %s", r.stderr)
			}
		} else {
			dev.mustCtl(3, "", "oob", "-qr", qr, "-reject")
		}
		return rpOutcome(t, ctx, tab, "pay")
	}
	const tx = "Pay 10.00 EUR to Bob's Books"
	got, trail = pay("10.00", true)
	if got != "succeeded" || !slices.Equal(trail, []string{"tokenCreated", "clientAuthenticating", "succeeded"}) {
		t.Fatalf("payment on the page: %q, trail %v (%s)", got, trail, rpText(t, ctx, tab, "pay-outcome"))
	}
	if h := rpText(t, ctx, tab, "pay-txhash"); h != rpdemo.TxHash(tx) {
		t.Fatalf("page shows transaction hash %q, want SHA-256 of %q = %q", h, tx, rpdemo.TxHash(tx))
	}
	if a := rpText(t, ctx, tab, "pay-aaid"); a != "4857#0001" {
		t.Fatalf("page shows authenticator %q", a)
	}
	t.Logf("payment status trail: %v, tx_hash %s", trail, rpdemo.TxHash(tx))

	got, trail = pay("9999.00", false)
	if got != "failed" || !slices.Equal(trail, []string{"tokenCreated", "clientAuthenticating", "failed"}) {
		t.Fatalf("rejected payment on the page: %q, trail %v (%s)", got, trail, rpText(t, ctx, tab, "pay-outcome"))
	}
	if msg := rpText(t, ctx, tab, "pay-outcome"); !strings.Contains(msg, "client error 3") {
		t.Fatalf("rejected payment: page says %q, want client error 3 (USER_CANCELLED)", msg)
	}
}
