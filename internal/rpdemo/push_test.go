package rpdemo

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/fidoserver/hwfido/authenticatord/oob"
	"github.com/fidoserver/hwfido/internal/testutil"
	"github.com/fidoserver/hwfido/server/callerauth"
	"github.com/fidoserver/hwfido/test/harness"
	"github.com/fidoserver/hwfido/uaf"
	"github.com/fidoserver/hwfido/uaf/uaftest"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and a client certificate for the
// bank's backend, as PEM files in dir.
type testPKI struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
	pool                                             *x509.CertPool
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func newPKI(t *testing.T, dir string) *testPKI {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rpdemo test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p := &testPKI{CA: filepath.Join(dir, "ca.pem"), ServerCert: filepath.Join(dir, "server.pem"), ServerKey: filepath.Join(dir, "server.key"),
		ClientCert: filepath.Join(dir, "client.pem"), ClientKey: filepath.Join(dir, "client.key"), pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	writePEM(t, p.CA, "CERTIFICATE", caDER)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP, certPath, keyPath string) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{usage},
			KeyUsage: x509.KeyUsageDigitalSignature, IPAddresses: ips}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		writePEM(t, certPath, "CERTIFICATE", der)
		kder, _ := x509.MarshalPKCS8PrivateKey(k)
		writePEM(t, keyPath, "PRIVATE KEY", kder)
	}
	issue(2, "127.0.0.1", x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)}, p.ServerCert, p.ServerKey)
	issue(3, "bank-backend", x509.ExtKeyUsageClientAuth, nil, p.ClientCert, p.ClientKey)
	return p
}

// startTLSServer runs hwfido-server on https with client certificates, trusting the subject
// "bank-backend" as a backend (the harness serves plain http only).
func startTLSServer(t *testing.T, dir string, p *testPKI, statement []byte, loginPub string) string {
	t.Helper()
	tok := harness.NewToken(t, dir)
	md := filepath.Join(dir, "metadata")
	if err := os.MkdirAll(md, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(md, "statement.json"), statement, 0o644); err != nil {
		t.Fatal(err)
	}
	port := harness.FreePort(t)
	base := fmt.Sprintf("https://127.0.0.1:%d", port)
	cfg := fmt.Sprintf(`version: 1
server:
  listen: 127.0.0.1:%d
  tls:
    cert-file: %s
    key-file: %s
    client-ca-file: %s
hsm:
  uri: %q
store:
  path: %s
fido-uaf:
  app-id: https://app.test/nevisfido/uaf/1.1/facets
  facets: ["%s"]
  metadata:
    path: %s
  policies:
    default:
      accepted:
        - - assertionSchemes: [UAFV1TLV]
            authenticationAlgorithms: [1]
caller-auth:
  tokens:
    - issuer: %s
      audience: %s
      keys-file: %s
  trusted-subjects: [bank-backend]
result-token:
  issuer: %s
  audience: https://rp.test
oob:
  dispatchers:
    - type: link-png-qr-code
      link-base-url: https://bank.test/oob
    - type: hwfido-stream
`, port, p.ServerCert, p.ServerKey, p.CA, tok.URI, filepath.Join(dir, "hwfido.db"), harness.DefaultFacet, md,
		harness.Issuer, harness.Audience, loginPub, base)
	cfgPath := filepath.Join(dir, "hwfido.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	log := &testutil.SyncBuffer{}
	cmd := exec.Command(harness.Bin(t, "hwfido-server"), "-config", cfgPath)
	cmd.Env, cmd.Stdout, cmd.Stderr = tok.Env(), log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("hwfido-server log:\n%s", log.String())
		}
	})
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.pool}}}
	for deadline := time.Now().Add(60 * time.Second); ; {
		select {
		case err := <-done:
			t.Fatalf("hwfido-server exited: %v\n%s", err, log.String())
		default:
		}
		if resp, err := hc.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("hwfido-server not healthy after 60s\n%s", log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pushDevice is a phone on hwfido's push channel (docs/oob.md "Our own push channel"): a
// dispatch target with a P-256 signature key, holding the target's event stream.
type pushDevice struct {
	id   string
	msgs chan []byte
	stop context.CancelFunc
	done chan struct{}
}

func newPushDevice(t *testing.T, hc *http.Client, base, callerToken string) *pushDevice {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwk, _ := jose.JSONWebKey{Key: &key.PublicKey}.MarshalJSON()
	body, _ := json.Marshal(map[string]any{"name": "test phone", "signatureKey": json.RawMessage(jwk)})
	req, _ := http.NewRequest(http.MethodPost, base+"/nevisfido/token/dispatch/targets", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+callerToken)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		ID string `json:"id"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || created.ID == "" {
		t.Fatalf("create dispatch target: HTTP %d %+v", resp.StatusCode, created)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", created.ID))
	if err != nil {
		t.Fatal(err)
	}
	claims, _ := json.Marshal(map[string]any{"requestId": randomID(), "timestamp": time.Now().Unix(), "aud": "stream"})
	jws, err := sig.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	bearer, _ := jws.CompactSerialize()
	ctx, cancel := context.WithCancel(context.Background())
	d := &pushDevice{id: created.ID, msgs: make(chan []byte, 4), stop: cancel, done: make(chan struct{})}
	sreq, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/nevisfido/token/dispatch/targets/"+url.PathEscape(created.ID)+"/stream", nil)
	sreq.Header.Set("Authorization", "Bearer "+bearer)
	sreq.Header.Set("Accept", "text/event-stream")
	sc := &http.Client{Transport: hc.Transport}
	sresp, err := sc.Do(sreq)
	if err != nil || sresp.StatusCode != http.StatusOK {
		cancel()
		t.Fatalf("open stream: %v %v", err, sresp)
	}
	go func() {
		defer close(d.done)
		defer sresp.Body.Close()
		_ = readSSE(bufio.NewReader(sresp.Body), func(ev string, data []byte) error {
			if ev == "dispatch" {
				d.msgs <- append([]byte(nil), data...)
			}
			return nil
		})
	}()
	t.Cleanup(d.close)
	return d
}

func (d *pushDevice) close() {
	d.stop()
	<-d.done
}

// TestPaymentPushAsTrustedBackend runs the bank as a trusted backend (mutual TLS, the seed's
// recommendation for payment backends) against an https hwfido-server: it lists the user's
// dispatch targets and pushes the payment to the phone's stream; the phone redeems the
// pushed token and confirms. With the phone offline the push fails and the bank falls back
// to the QR code.
func TestPaymentPushAsTrustedBackend(t *testing.T) {
	if testing.Short() {
		t.Skip("starts hwfido-server")
	}
	t.Parallel()
	a, err := uaftest.New(uaftest.Options{AAID: "FFFF#E104"})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := a.MetadataStatement()
	dir := t.TempDir()
	p := newPKI(t, dir)
	loginKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pder, _ := x509.MarshalPKIXPublicKey(&loginKey.PublicKey)
	kder, _ := x509.MarshalPKCS8PrivateKey(loginKey)
	loginPub, loginPriv := filepath.Join(dir, "login.pem"), filepath.Join(dir, "login.key")
	writePEM(t, loginPub, "PUBLIC KEY", pder)
	writePEM(t, loginPriv, "PRIVATE KEY", kder)
	base := startTLSServer(t, dir, p, st, loginPub)
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.pool}}}

	f := serveAppConfig(t, loginPriv, `"server":"`+base+`","resultToken":{"audience":"https://rp.test"},
		"backendTLS":{"caFile":"`+p.CA+`","certFile":"`+p.ClientCert+`","keyFile":"`+p.ClientKey+`"}`)
	c, csrf := loggedIn(t, f.base)

	// Register the phone by QR code, then it announces its push target.
	var reg startResponse
	if code := api(t, c, f.base+"/api/registration", csrf, "{}", &reg); code != http.StatusOK || reg.Via != "qr" {
		t.Fatalf("registration start: %d %+v", code, reg)
	}
	done := make(chan []OpState, 1)
	go func() { done <- events(t, c, f.base, reg.Op) }()
	if sr := phoneAt(t, hc, base, a, reg.QR); sr.StatusCode != uaf.StatusOK {
		t.Fatalf("phone registration: %+v", sr)
	}
	if tr := <-done; tr[len(tr)-1].Outcome != "succeeded" {
		t.Fatalf("registration: %+v", tr[len(tr)-1])
	}
	key, _ := LoadKey(loginPriv)
	tok, err := callerauth.Mint(key, callerauth.MintOptions{Issuer: harness.Issuer, Audience: harness.Audience, Username: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	dev := newPushDevice(t, hc, base, tok)

	// The payment is pushed to the phone.
	var pay startResponse
	if code := api(t, c, f.base+"/api/payment", csrf, `{"amount":"55.00","payee":"ACME AG"}`, &pay); code != http.StatusOK {
		t.Fatalf("payment start: %d", code)
	}
	if pay.Via != "push" || pay.QR != "" {
		t.Fatalf("payment went %q, want push (qr %d bytes)", pay.Via, len(pay.QR))
	}
	done = make(chan []OpState, 1)
	go func() { done <- events(t, c, f.base, pay.Op) }()
	var msg []byte
	select {
	case msg = <-dev.msgs:
	case <-time.After(30 * time.Second):
		t.Fatal("no push reached the phone in 30s")
	}
	payload, err := oob.ParsePayload(msg)
	if err != nil || payload.Data == nil {
		t.Fatalf("pushed payload: %v %s", err, msg)
	}
	if sr := redeemAndAnswer(t, hc, base, a, payload.Data); sr.StatusCode != uaf.StatusOK {
		t.Fatalf("phone confirmation: %+v", sr)
	}
	last := (<-done)
	if got := last[len(last)-1]; got.Outcome != "succeeded" || !got.Verified || got.TxHash != TxHash("Pay 55.00 EUR to ACME AG") || got.Via != "push" {
		t.Fatalf("pushed payment: %+v", got)
	}

	// Phone offline: the push cannot be delivered and the QR code is the fallback.
	dev.close()
	var fb startResponse
	for i := 0; ; i++ {
		if code := api(t, c, f.base+"/api/payment", csrf, `{"amount":"56.00","payee":"ACME AG"}`, &fb); code != http.StatusOK {
			t.Fatalf("payment start: %d", code)
		}
		if fb.Via == "qr" || i == 20 {
			break
		}
		time.Sleep(100 * time.Millisecond) // the server notices the closed stream
	}
	if fb.Via != "qr" || !strings.HasPrefix(fb.QR, "data:image/png;base64,") {
		t.Fatalf("payment with the phone offline: %+v", fb)
	}
	if !strings.Contains(f.log.String(), "dispatchResult=dispatchError") {
		t.Fatalf("no failed push attempt in the log:\n%s", f.log.String())
	}
}
