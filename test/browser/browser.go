package browser

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// DemoPath is where the FIDO2 service serves its demo page.
const DemoPath = "/nevisfido/fido2/demo/"

// ErrNoChromium reports that no Chromium executable was found.
var ErrNoChromium = errors.New("browser: chromium not found (apt-get install chromium)")

// Options configures [Start]. The zero value is usable.
type Options struct {
	// ExecPath is the Chromium binary (default: $CHROMIUM, else chromium on $PATH).
	ExecPath string
	// Logger receives browser start/stop events (default: discard).
	Logger *slog.Logger
	// Output, when set, receives Chromium's stdout/stderr.
	Output io.Writer
}

// Browser is one headless Chromium process with its own profile directory. Pages may be
// used from different goroutines, each page by one goroutine at a time.
type Browser struct {
	ctx         context.Context
	cancel      context.CancelFunc
	allocCancel context.CancelFunc
	dir         string
	log         *slog.Logger
}

// Start launches Chromium headless with the flags the project uses as root (no sandbox,
// no GPU, no QUIC, no background networking, a fresh --user-data-dir). The browser lives
// until [Browser.Close]; ctx only bounds the start.
func Start(ctx context.Context, opts Options) (*Browser, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	path := opts.ExecPath
	if path == "" {
		path = os.Getenv("CHROMIUM")
	}
	if path == "" {
		p, err := exec.LookPath("chromium")
		if err != nil {
			return nil, ErrNoChromium
		}
		path = p
	}
	dir, err := os.MkdirTemp("", "hwfido-chromium-*")
	if err != nil {
		return nil, fmt.Errorf("browser: profile dir: %w", err)
	}
	aopts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("mute-audio", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.UserDataDir(dir),
	}
	if opts.Output != nil {
		aopts = append(aopts, chromedp.CombinedOutput(opts.Output))
	}
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), aopts...)
	bctx, cancel := chromedp.NewContext(allocCtx)
	b := &Browser{ctx: bctx, cancel: cancel, allocCancel: allocCancel, dir: dir, log: opts.Logger}
	startCtx, stop := context.WithCancel(bctx)
	defer stop()
	go func() {
		select {
		case <-ctx.Done():
			stop()
		case <-startCtx.Done():
		}
	}()
	// Running an empty action starts the browser and its first tab.
	if err := chromedp.Do(bctx); err != nil {
		b.Close()
		return nil, fmt.Errorf("browser: start %s: %w", path, err)
	}
	b.log.Info("chromium started", "path", path, "profile", dir)
	return b, nil
}

// Close stops Chromium and removes its profile directory.
func (b *Browser) Close() error {
	b.cancel()
	b.allocCancel()
	err := os.RemoveAll(b.dir)
	b.log.Info("chromium stopped")
	if err != nil {
		return fmt.Errorf("browser: remove profile: %w", err)
	}
	return nil
}

// Authenticator describes the virtual authenticator of a page (CDP
// WebAuthn.VirtualAuthenticatorOptions). The zero value is a CTAP2 USB key without
// resident keys or user verification.
type Authenticator struct {
	// Protocol is "ctap2" (default) or "u2f" (fido-u2f attestation, no AAGUID).
	Protocol string
	// Transport is usb (default), nfc, ble, internal, hybrid.
	Transport string
	// ResidentKey lets it store discoverable credentials.
	ResidentKey bool
	// UserVerification gives it a user-verification method.
	UserVerification bool
	// UserVerified makes user verification succeed.
	UserVerified bool
	// BackupEligible and BackupState set BE/BS on new credentials.
	BackupEligible bool
	BackupState    bool
}

// Page is a tab on the demo page with a virtual authenticator. Not safe for concurrent
// use.
type Page struct {
	ctx    context.Context
	cancel context.CancelFunc
	auth   webauthn.AuthenticatorID
	rpID   string
}

// NewPage opens baseURL+[DemoPath] in a new tab and attaches a virtual authenticator.
func (b *Browser) NewPage(ctx context.Context, baseURL string, a Authenticator) (*Page, error) {
	pctx, cancel := chromedp.NewContext(b.ctx)
	p := &Page{ctx: pctx, cancel: cancel}
	// The first action on a chromedp context creates its tab, bound to the context it
	// runs with, so it must run on pctx itself and not on a shorter-lived child.
	if err := chromedp.Do(pctx); err != nil {
		cancel()
		return nil, fmt.Errorf("browser: new tab: %w", err)
	}
	err := p.run(ctx, 30*time.Second, func(c context.Context) error {
		if err := chromedp.Do(c, chromedp.Navigate(strings.TrimRight(baseURL, "/")+DemoPath)); err != nil {
			return fmt.Errorf("navigate: %w", err)
		}
		if _, err := chromedp.Call(c, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			return fmt.Errorf("WebAuthn.enable: %w", err)
		}
		proto := webauthn.AuthenticatorProtocolCtap2
		if a.Protocol == "u2f" {
			proto = webauthn.AuthenticatorProtocolU2f
		}
		tr := webauthn.AuthenticatorTransport(a.Transport)
		if tr == "" {
			tr = webauthn.AuthenticatorTransportUsb
		}
		res, err := chromedp.Call(c, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
			Options: &webauthn.VirtualAuthenticatorOptions{
				Protocol: proto, Transport: tr, HasResidentKey: a.ResidentKey, HasUserVerification: a.UserVerification,
				IsUserVerified: a.UserVerified, DefaultBackupEligibility: a.BackupEligible,
				DefaultBackupState: a.BackupState,
				// Must be true: false leaves create()/get() waiting for a touch forever.
				AutomaticPresenceSimulation: true,
			},
		})
		if err != nil {
			return fmt.Errorf("WebAuthn.addVirtualAuthenticator: %w", err)
		}
		p.auth = res.AuthenticatorID
		return nil
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("browser: new page: %w", err)
	}
	return p, nil
}

// Close closes the tab.
func (p *Page) Close() { p.cancel() }

// run calls fn with a chromedp context bounded by ctx and d.
func (p *Page) run(ctx context.Context, d time.Duration, fn func(context.Context) error) error {
	c, cancel := context.WithTimeout(p.ctx, d)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	return fn(c)
}

// RegisterRequest is the input of [Page.Register]; it becomes the body of
// attestation/options (Headers are sent with both calls).
type RegisterRequest struct {
	Username               string            `json:"username"`
	DisplayName            string            `json:"displayName,omitempty"`
	AuthenticatorSelection map[string]any    `json:"authenticatorSelection,omitempty"`
	Attestation            string            `json:"attestation,omitempty"`
	Extensions             map[string]any    `json:"extensions,omitempty"`
	UserFriendlyName       string            `json:"userFriendlyName,omitempty"`
	Headers                map[string]string `json:"headers,omitempty"`
}

// LoginRequest is the input of [Page.Login]; an empty Username is a discoverable login.
type LoginRequest struct {
	Username         string            `json:"username,omitempty"`
	UserVerification string            `json:"userVerification,omitempty"`
	Extensions       map[string]any    `json:"extensions,omitempty"`
	Headers          map[string]string `json:"headers,omitempty"`
}

// Result is what the page reports: Stage is "options" (the options call failed),
// "browser" (navigator.credentials refused; ErrorMessage holds the DOMException) or
// "result" (the server's answer to the result call).
type Result struct {
	Stage            string          `json:"stage"`
	Status           string          `json:"status"`
	ErrorMessage     string          `json:"errorMessage"`
	HTTPStatus       int             `json:"httpStatus"`
	Fido2SessionID   string          `json:"fido2SessionId"`
	OptionsSessionID string          `json:"optionsSessionId"`
	CredentialID     string          `json:"credentialId"`
	Username         string          `json:"username"`
	Token            string          `json:"token"`
	UserVerified     bool            `json:"userVerified"`
	AttestationTrust string          `json:"attestationTrust"`
	Options          json.RawMessage `json:"options"`
}

// OK reports whether the ceremony succeeded at the server.
func (r *Result) OK() bool { return r.Stage == "result" && r.Status == "ok" }

func (p *Page) call(ctx context.Context, fn string, arg any) (*Result, error) {
	b, err := json.Marshal(arg)
	if err != nil {
		return nil, fmt.Errorf("browser: %s: %w", fn, err)
	}
	var res Result
	err = p.run(ctx, 60*time.Second, func(c context.Context) error {
		var err error
		res, err = chromedp.Run(c, chromedp.Evaluate[Result]("window.hwfido."+fn+"("+string(b)+")", chromedp.EvalAwaitPromise))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("browser: %s: %w", fn, err)
	}
	return &res, nil
}

// Register runs a registration ceremony on the page.
func (p *Page) Register(ctx context.Context, req RegisterRequest) (*Result, error) {
	return p.call(ctx, "register", req)
}

// Login runs an authentication ceremony on the page.
func (p *Page) Login(ctx context.Context, req LoginRequest) (*Result, error) {
	return p.call(ctx, "login", req)
}

// Override selects faults the virtual authenticator injects into its responses
// (CDP WebAuthn.setResponseOverrideBits).
type Override struct {
	BogusSignature bool // the signature is zeroed
	BadUV          bool // the UV flag is cleared
	BadUP          bool // the UP flag is cleared
}

// SetResponseOverride sets (or with the zero Override clears) injected faults.
func (p *Page) SetResponseOverride(ctx context.Context, o Override) error {
	return p.run(ctx, 10*time.Second, func(c context.Context) error {
		_, err := chromedp.Call(c, webauthn.SetResponseOverrideBits, webauthn.SetResponseOverrideBitsParams{
			AuthenticatorID: p.auth, IsBogusSignature: &o.BogusSignature, IsBadUV: &o.BadUV, IsBadUP: &o.BadUP,
		})
		if err != nil {
			return fmt.Errorf("browser: setResponseOverrideBits: %w", err)
		}
		return nil
	})
}

// SetUserVerified makes the authenticator's user verification succeed or fail.
func (p *Page) SetUserVerified(ctx context.Context, v bool) error {
	return p.run(ctx, 10*time.Second, func(c context.Context) error {
		_, err := chromedp.Call(c, webauthn.SetUserVerified, webauthn.SetUserVerifiedParams{AuthenticatorID: p.auth, IsUserVerified: v})
		if err != nil {
			return fmt.Errorf("browser: setUserVerified: %w", err)
		}
		return nil
	})
}

// VirtualCredential is a credential held by the virtual authenticator.
type VirtualCredential struct {
	ID          []byte
	Resident    bool
	RPID        string
	UserHandle  []byte
	SignCount   int64
	PrivateKey  []byte // PKCS#8; test material only
	BackupElig  bool
	BackupState bool
}

// Credentials lists the authenticator's credentials.
func (p *Page) Credentials(ctx context.Context) ([]VirtualCredential, error) {
	var out []VirtualCredential
	err := p.run(ctx, 10*time.Second, func(c context.Context) error {
		res, err := chromedp.Call(c, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: p.auth})
		if err != nil {
			return fmt.Errorf("browser: getCredentials: %w", err)
		}
		for _, vc := range res.Credentials {
			out = append(out, VirtualCredential{
				ID: vc.CredentialID, Resident: vc.IsResidentCredential, RPID: vc.RpID, UserHandle: vc.UserHandle,
				SignCount: int64(vc.SignCount), PrivateKey: vc.PrivateKey, BackupElig: vc.BackupEligibility,
				BackupState: vc.BackupState,
			})
		}
		return nil
	})
	return out, err
}

// addCredentialRaw is WebAuthn.addCredential with a hand-built parameter object:
// cdproto's Credential type always sends fields Chromium 156 refuses.
var addCredentialRaw = cdp.Command[map[string]any, cdp.Empty]{Method: "WebAuthn.addCredential"}

// SetSignCount replaces credential id by a copy whose counter is n (CDP has no
// "update counter", so the credential is removed and re-added with the same key).
func (p *Page) SetSignCount(ctx context.Context, id []byte, n int64) error {
	creds, err := p.Credentials(ctx)
	if err != nil {
		return err
	}
	var vc *VirtualCredential
	for i := range creds {
		if string(creds[i].ID) == string(id) {
			vc = &creds[i]
		}
	}
	if vc == nil {
		return errors.New("browser: no such virtual credential")
	}
	return p.run(ctx, 10*time.Second, func(c context.Context) error {
		if _, err := chromedp.Call(c, webauthn.RemoveCredential, webauthn.RemoveCredentialParams{
			AuthenticatorID: p.auth, CredentialID: vc.ID}); err != nil {
			return fmt.Errorf("browser: removeCredential: %w", err)
		}
		cred := map[string]any{
			"credentialId":         base64.StdEncoding.EncodeToString(vc.ID),
			"isResidentCredential": vc.Resident,
			"rpId":                 vc.RPID,
			"privateKey":           base64.StdEncoding.EncodeToString(vc.PrivateKey),
			"signCount":            n,
		}
		if len(vc.UserHandle) > 0 {
			cred["userHandle"] = base64.StdEncoding.EncodeToString(vc.UserHandle)
		}
		if vc.BackupElig {
			cred["backupEligibility"] = true
			cred["backupState"] = vc.BackupState
		}
		if _, err := chromedp.Call(c, addCredentialRaw, map[string]any{"authenticatorId": string(p.auth), "credential": cred}); err != nil {
			return fmt.Errorf("browser: addCredential: %w", err)
		}
		return nil
	})
}

// Ceremony configures [RunCeremony].
type Ceremony struct {
	// Username registers and logs in (required).
	Username string
	// Headers are sent with every request (e.g. the caller authentication the server
	// expects for registration).
	Headers map[string]string
	// Authenticator is the virtual authenticator (default: CTAP2 internal platform
	// authenticator with resident keys and user verification).
	Authenticator *Authenticator
	// Discoverable logs in without a username (passkey).
	Discoverable bool
	// Browser is the Start options.
	Browser Options
}

// CeremonyResult holds both ceremonies' results.
type CeremonyResult struct {
	Registration *Result
	Login        *Result
}

// RunCeremony starts a browser, registers c.Username at baseURL (e.g.
// "http://localhost:8443") through the demo page and logs in with the new credential.
// It fails unless both ceremonies succeed.
func RunCeremony(ctx context.Context, baseURL string, c Ceremony) (*CeremonyResult, error) {
	if c.Username == "" {
		return nil, errors.New("browser: ceremony username is required")
	}
	a := Authenticator{Protocol: "ctap2", Transport: "internal", ResidentKey: true, UserVerification: true, UserVerified: true}
	if c.Authenticator != nil {
		a = *c.Authenticator
	}
	b, err := Start(ctx, c.Browser)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	p, err := b.NewPage(ctx, baseURL, a)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	out := &CeremonyResult{}
	rk := "discouraged"
	if c.Discoverable {
		rk = "required"
	}
	out.Registration, err = p.Register(ctx, RegisterRequest{
		Username: c.Username, Headers: c.Headers, Extensions: map[string]any{"credProps": true},
		AuthenticatorSelection: map[string]any{"residentKey": rk, "userVerification": "preferred"},
	})
	if err != nil {
		return out, err
	}
	if !out.Registration.OK() {
		return out, fmt.Errorf("browser: registration failed at %s: %s", out.Registration.Stage, out.Registration.ErrorMessage)
	}
	lr := LoginRequest{Username: c.Username, Headers: c.Headers}
	if c.Discoverable {
		lr.Username = ""
	}
	out.Login, err = p.Login(ctx, lr)
	if err != nil {
		return out, err
	}
	if !out.Login.OK() {
		return out, fmt.Errorf("browser: login failed at %s: %s", out.Login.Stage, out.Login.ErrorMessage)
	}
	return out, nil
}
