package test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/authenticatord/asm"
	"github.com/fidoserver/hwfido/test/harness"
	"github.com/fidoserver/hwfido/uaf"
)

// Exit codes of authenticatorctl (docs/authenticatord.md).
const (
	ctlOK       = 0
	ctlRejected = 3
	ctlDenied   = 4
	ctlLockout  = 5
	ctlRefused  = 6
)

const (
	tpmUser    = "alice"
	tpmAAID    = "4857#0001"
	devicePIN  = "482916-tpm-e2e"
	wrongPIN   = "000000-not-it"
	maxDATries = 4
)

// TestTPMAuthenticatorEndToEnd runs the TPM-backed UAF authenticator as
// real processes — swtpm, authenticatord (provisioned with DA maxTries 4),
// the vendor CA in a SoftHSM token (fidoctl vendor certify), hwfido-server
// with the daemon's metadata statement — and drives them with the
// authenticatorctl binary: Basic Full registration, authentication,
// transaction confirmation confirmed and rejected, replay, wrong PIN,
// daemon and TPM restart (orderly and not), DA lockout and deregistration.
// The steps share one device and server and run in order.
func TestTPMAuthenticatorEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts swtpm, authenticatord, SoftHSM and hwfido-server (make test runs it)")
	}
	dev := startDevice(t, maxDATries)

	// Basic Full provisioning: the TPM makes the attestation key, the vendor
	// CA key in its own SoftHSM token certifies it, the daemon installs the
	// certificate and its metadata statement then names the vendor root.
	vendorDir := filepath.Join(dev.dir, "vendor")
	if err := os.MkdirAll(vendorDir, 0o700); err != nil {
		t.Fatal(err)
	}
	vendor := harness.NewToken(t, vendorDir)
	akPEM, certPEM, rootPEM := filepath.Join(dev.dir, "ak.pem"), filepath.Join(dev.dir, "ak-cert.pem"), filepath.Join(dev.dir, "vendor-root.pem")
	dev.mustCtl(ctlOK, "", "attestation-key", "-create", "-out", akPEM)
	certify := exec.Command(harness.Bin(t, "fidoctl"), "vendor", "certify", "-uri", vendor.URI,
		"-pubkey", akPEM, "-aaid", tpmAAID, "-root", rootPEM, "-out", certPEM)
	certify.Env = vendor.Env()
	if out, err := certify.CombinedOutput(); err != nil {
		t.Fatalf("fidoctl vendor certify: %v\n%s", err, out)
	}
	dev.mustCtl(ctlOK, "", "install-cert", "-cert", certPEM, "-root", rootPEM)
	statement := []byte(dev.mustCtl(ctlOK, "", "metadata").stdout)
	var st struct {
		AAID             string   `json:"aaid"`
		AttestationTypes []int    `json:"attestationTypes"`
		Roots            []string `json:"attestationRootCertificates"`
	}
	if err := json.Unmarshal(statement, &st); err != nil {
		t.Fatalf("metadata statement: %v\n%s", err, statement)
	}
	if st.AAID != tpmAAID || len(st.Roots) != 1 || !containsInt(st.AttestationTypes, int(uaf.AttestationBasicFull)) {
		t.Fatalf("statement after install-cert: aaid %q, %d roots, attestation types %v", st.AAID, len(st.Roots), st.AttestationTypes)
	}

	s := harness.StartServer(t, harness.ServerOptions{
		Metadata: [][]byte{statement},
		AppID:    "{{.URL}}/nevisfido/uaf/1.1/facets", // fetched by the daemon's FIDO client
		Facets:   []string{deviceFacetID},
	})
	// The daemon talks to the server through a recording proxy so a test can
	// replay exactly what it sent.
	rec := newRecorder(t, s.URL)
	pin := dev.secretFile("pin", devicePIN)
	badPIN := dev.secretFile("wrong-pin", wrongPIN)
	callerToken := s.CallerToken(t, tpmUser)
	tokenFile := dev.secretFile("caller-token", callerToken)
	const authPath = "/nevisfido/uaf/1.1/authentication"

	// The steps build on each other: stop at the first that fails.
	step := func(name string, f func(t *testing.T)) {
		t.Helper()
		if !t.Run(name, f) {
			t.FailNow()
		}
	}
	var keyID string
	var counter uint32
	authenticate := func(t *testing.T) resultClaims {
		t.Helper()
		r := dev.mustCtl(ctlOK, pin, "authenticate", "-server", rec.URL, "-username", tpmUser)
		c := verifyResult(t, s, r.finish(t).ServerResponse)
		if c.Sub != tpmUser || c.Op != "Auth" || c.AAID != tpmAAID || c.KeyID != keyID || c.TxHash != "" {
			t.Fatalf("authentication result claims %+v", c)
		}
		regs := registrations(t, s, tpmUser)
		if len(regs) != 1 || regs[0].signCounter <= counter {
			t.Fatalf("sign counter after authentication: %+v, before %d (must grow)", regs, counter)
		}
		counter = regs[0].signCounter
		return c
	}

	step("register basic full", func(t *testing.T) {
		r := dev.mustCtl(ctlOK, pin, "register", "-server", rec.URL, "-username", tpmUser, "-token-file", tokenFile)
		rc := verifyResult(t, s, r.finish(t).ServerResponse)
		regs := registrations(t, s, tpmUser)
		if len(regs) != 1 || regs[0].signCounter != 0 {
			t.Fatalf("server registrations %+v, want one new key", regs)
		}
		keyID = regs[0].keyID
		if rc.Sub != tpmUser || rc.Op != "Reg" || rc.AAID != tpmAAID || rc.KeyID != keyID {
			t.Fatalf("registration result claims %+v", rc)
		}
		// The server verified the chain leaf → vendor root from the statement.
		if regs[0].attestationType != int(uaf.AttestationBasicFull) || !regs[0].hasCert {
			t.Fatalf("registration stored with attestation type 0x%X (certificate %v), want Basic Full 0x3E07",
				regs[0].attestationType, regs[0].hasCert)
		}
		if n := dev.status().Keys; n != 1 {
			t.Fatalf("daemon has %d keys, want 1", n)
		}
	})

	step("authenticate", func(t *testing.T) { authenticate(t) })

	step("replayed response refused", func(t *testing.T) {
		body := rec.last(t, authPath) // the daemon's SendUAFResponse of the last authentication
		if sr := resend(t, s, authPath, body); sr.StatusCode != uaf.StatusRequestInvalid {
			t.Fatalf("replayed authentication response: %+v, want %d", sr, uaf.StatusRequestInvalid)
		}
	})

	step("transaction confirmed", func(t *testing.T) {
		const text = "Pay 120.00 EUR to ACME AG"
		r := dev.mustCtl(ctlOK, pin, "confirm", "-server", rec.URL, "-username", tpmUser, "-transaction", text, "-yes", "-verify")
		if !strings.Contains(r.stderr, text) || !strings.Contains(r.stderr, "result token verified") {
			t.Fatalf("confirm did not show the transaction and the verified result token:\n%s", r.stderr)
		}
		c := verifyResult(t, s, r.finish(t).ServerResponse)
		want := sha256.Sum256([]byte(text))
		if c.TxHash != base64.RawURLEncoding.EncodeToString(want[:]) || c.Op != "Auth" || c.Sub != tpmUser {
			t.Fatalf("confirmation result claims %+v, want tx_hash of %q", c, text)
		}
		regs := registrations(t, s, tpmUser)
		if len(regs) != 1 || regs[0].signCounter <= counter {
			t.Fatalf("sign counter after confirmation: %+v, before %d", regs, counter)
		}
		counter = regs[0].signCounter
	})

	step("transaction rejected", func(t *testing.T) {
		r := dev.mustCtl(ctlRejected, "", "confirm", "-server", rec.URL, "-username", tpmUser, "-transaction", "Pay 9999 EUR", "-reject")
		f := r.finish(t)
		if f.ASMStatusCode != uaf.ASMUserCancelled || f.ClientErrorCode != uaf.ErrorUserCancelled {
			t.Fatalf("rejection reported as asm 0x%x / client 0x%x, want USER_CANCELLED", f.ASMStatusCode, f.ClientErrorCode)
		}
		if f.ServerResponse == nil || f.ServerResponse.StatusCode != uaf.StatusOK || len(f.ServerResponse.AdditionalTokens) != 0 {
			t.Fatalf("server answer to the failure report: %+v", f.ServerResponse)
		}
		// The report consumed the request: sending it again is refused.
		report := rec.last(t, authPath)
		if !strings.Contains(string(report), `\"assertions\":[]`) {
			t.Fatalf("the daemon's report carries assertions: %s", report)
		}
		if sr := resend(t, s, authPath, report); sr.StatusCode != uaf.StatusRequestInvalid {
			t.Fatalf("request still open after the rejection: %+v", sr)
		}
	})

	step("basic full chain to another root refused", func(t *testing.T) {
		// A server whose statement names a different vendor root must refuse
		// the registration (the chain is really checked), and the daemon must
		// not keep the key the server refused.
		var m map[string]any
		if err := json.Unmarshal(statement, &m); err != nil {
			t.Fatal(err)
		}
		m["attestationRootCertificates"] = []string{otherRoot(t)}
		forged, _ := json.Marshal(m)
		s2 := harness.StartServer(t, harness.ServerOptions{Metadata: [][]byte{forged},
			AppID: "{{.URL}}/nevisfido/uaf/1.1/facets", Facets: []string{deviceFacetID}})
		keysBefore := dev.status().Keys
		tok := dev.secretFile("caller-token-2", s2.CallerToken(t, "mallory"))
		r := dev.mustCtl(ctlRefused, pin, "register", "-server", s2.URL, "-username", "mallory", "-token-file", tok)
		if sr := r.finish(t).ServerResponse; sr == nil || sr.StatusCode != uaf.StatusUnacceptableAttestation {
			t.Fatalf("registration with a chain to an unknown root: %+v, want %d", sr, uaf.StatusUnacceptableAttestation)
		}
		if regs := registrations(t, s2, "mallory"); len(regs) != 0 {
			t.Fatalf("server stored %+v", regs)
		}
		if n := dev.status().Keys; n != keysBefore {
			t.Fatalf("daemon keys %d → %d: the refused key was kept", keysBefore, n)
		}
	})

	step("wrong PIN refused by the TPM", func(t *testing.T) {
		before := dev.status().DAFailures
		r := dev.mustCtl(ctlDenied, badPIN, "authenticate", "-server", rec.URL, "-username", tpmUser)
		f := r.finish(t)
		if f.ASMStatusCode != uaf.ASMAccessDenied || f.ServerResponse == nil || f.ServerResponse.StatusCode != uaf.StatusOK {
			t.Fatalf("wrong PIN: %+v", f)
		}
		if after := dev.status().DAFailures; after != before+1 {
			t.Fatalf("TPM DA counter %d → %d, want +1", before, after)
		}
		if regs := registrations(t, s, tpmUser); regs[0].signCounter != counter {
			t.Fatalf("sign counter moved on a refused PIN: %d → %d", counter, regs[0].signCounter)
		}
	})

	step("restart keeps registrations and the TPM shuts down cleanly", func(t *testing.T) {
		before := dev.status().DAFailures
		dev.stop()     // SIGTERM: the daemon sends TPM2_Shutdown(CLEAR)
		dev.sim.Kill() // no second Shutdown from the test: only the daemon's counts
		dev.sim.Restart()
		dev.start()
		st := dev.status()
		if st.DAFailures != before {
			t.Fatalf("DA counter %d after an orderly restart, was %d: the shutdown was not orderly", st.DAFailures, before)
		}
		if st.Keys != 1 {
			t.Fatalf("daemon has %d keys after restart, want 1", st.Keys)
		}
		authenticate(t) // same key, counter strictly larger than before the restart
	})

	step("crash without shutdown costs a DA try", func(t *testing.T) {
		// The control for the test above: the same restart without the
		// daemon's TPM2_Shutdown is a non-orderly shutdown.
		before := dev.status().DAFailures
		dev.kill()
		dev.sim.Kill()
		dev.sim.Restart()
		dev.start()
		if after := dev.status().DAFailures; after != before+1 {
			t.Fatalf("DA counter %d → %d after a crash, want +1", before, after)
		}
		authenticate(t)
	})

	step("lockout", func(t *testing.T) {
		st := dev.status()
		if st.DAMaxTries != maxDATries || st.InLockout || st.DARemaining != maxDATries-st.DAFailures {
			t.Fatalf("status before lockout: %+v", st)
		}
		denied := 0
		for range maxDATries + 1 { // bounded: the TPM must lock within maxTries failures
			r := dev.ctl(badPIN, "authenticate", "-server", rec.URL, "-username", tpmUser)
			if r.code == ctlLockout {
				break
			}
			if r.code != ctlDenied {
				t.Fatalf("wrong PIN: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			denied++
		}
		if denied != int(st.DARemaining) {
			t.Fatalf("%d wrong PINs refused before lockout, want the %d remaining tries", denied, st.DARemaining)
		}
		st = dev.status()
		if !st.InLockout || st.DARemaining != 0 || st.RetryAfterSecs <= 0 {
			t.Fatalf("status in lockout: %+v", st)
		}
		// The right PIN is refused too, and the server hears USER_LOCKOUT.
		f := dev.mustCtl(ctlLockout, pin, "authenticate", "-server", rec.URL, "-username", tpmUser).finish(t)
		if f.ASMStatusCode != uaf.ASMUserLockout || f.ClientErrorCode != uaf.ErrorUserLockout ||
			f.ServerResponse == nil || f.ServerResponse.StatusCode != uaf.StatusOK {
			t.Fatalf("right PIN during lockout: %+v", f)
		}
		if !strings.Contains(string(rec.last(t, authPath)), `\"asmStatusCode\":16`) {
			t.Fatalf("the server was not told USER_LOCKOUT: %s", rec.last(t, authPath))
		}
		if regs := registrations(t, s, tpmUser); regs[0].signCounter != counter {
			t.Fatalf("sign counter moved during lockout: %d → %d", counter, regs[0].signCounter)
		}
	})

	step("deregister", func(t *testing.T) {
		// Deregistration needs no PIN, so it works during lockout.
		dev.mustCtl(ctlOK, "", "deregister", "-server", rec.URL, "-username", tpmUser, "-token-file", tokenFile)
		if regs := registrations(t, s, tpmUser); len(regs) != 0 {
			t.Fatalf("server still has %+v", regs)
		}
		var list asm.GetRegistrationsOut
		if err := json.Unmarshal([]byte(dev.mustCtl(ctlOK, "", "list").stdout), &list); err != nil {
			t.Fatal(err)
		}
		if len(list.AppRegs) != 0 || dev.status().Keys != 0 {
			t.Fatalf("daemon still has keys: %+v", list)
		}
		if r := dev.ctl(pin, "authenticate", "-server", rec.URL, "-username", tpmUser); r.code == ctlOK {
			t.Fatalf("authentication after deregistration succeeded:\n%s", r.stdout)
		}
	})

	// Secrets never reach a log.
	for name, log := range map[string]string{"authenticatord": dev.Log(), "hwfido-server": s.Log()} {
		for _, secret := range []string{devicePIN, wrongPIN, callerToken} {
			if strings.Contains(log, secret) {
				t.Errorf("%s log contains a secret", name)
			}
		}
	}
	_ = filepath.WalkDir(filepath.Join(dev.dir, "state"), func(p string, e os.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			if b, rerr := os.ReadFile(p); rerr == nil && strings.Contains(string(b), devicePIN) {
				t.Errorf("%s contains the PIN", p)
			}
		}
		return nil
	})
}

func containsInt(l []int, v int) bool {
	for _, x := range l {
		if x == v {
			return true
		}
	}
	return false
}

// otherRoot returns a fresh self-signed P-256 CA certificate (base64 DER)
// that did not issue the device's attestation certificate.
func otherRoot(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Other Vendor Root"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}
