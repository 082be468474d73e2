package test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/authenticatord/asm"
	"github.com/fidoserver/hwfido/authenticatord/localapi"
	"github.com/fidoserver/hwfido/authenticatord/oob"
	"github.com/fidoserver/hwfido/test/harness"
	"github.com/fidoserver/hwfido/uaf"
)

// oobMoreStatus is the part of the Status Service answer these tests check.
type oobMoreStatus struct {
	Status          string `json:"status"`
	UserID          string `json:"userId"`
	UAFStatusCode   int    `json:"uafStatusCode"`
	ASMStatusCode   int    `json:"asmStatusCode"`
	ClientErrorCode int    `json:"clientErrorCode"`
	ResultToken     string `json:"resultToken"`
	Authenticators  []struct {
		AAID  string `json:"aaid"`
		KeyID string `json:"keyId"`
	} `json:"authenticators"`
}

func oobMoreStatusOf(t *testing.T, s *harness.Server, id string) oobMoreStatus {
	t.Helper()
	var st oobMoreStatus
	if code := devicePostJSON(t, s.URL+"/nevisfido/status", "", map[string]string{"sessionId": id}, &st); code != http.StatusOK {
		t.Fatalf("status: HTTP %d", code)
	}
	return st
}

// oobMoreQRFile writes the QR code PNG of a png-qr-code dispatch answer to a file.
func oobMoreQRFile(t *testing.T, dev *device, name string, d deviceDispatchAnswer) string {
	t.Helper()
	if d.DispatchResult != "dispatched" || d.DispatcherInformation.Name != "png-qr-code" {
		t.Fatalf("QR dispatch: %+v", d)
	}
	png, err := base64.StdEncoding.DecodeString(d.DispatcherInformation.Response)
	if err != nil {
		t.Fatalf("QR dispatcher response is not standard Base64: %v", err)
	}
	p := filepath.Join(dev.dir, name)
	if err := os.WriteFile(p, png, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// oobMoreDeviceKeys lists the KeyIDs the daemon holds (authenticatorctl list).
func oobMoreDeviceKeys(t *testing.T, dev *device) []string {
	t.Helper()
	var list asm.GetRegistrationsOut
	out := dev.mustCtl(ctlOK, "", "list").stdout
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("list: %v: %s", err, out)
	}
	var ids []string
	for _, r := range list.AppRegs {
		ids = append(ids, r.KeyIDs...)
	}
	slices.Sort(ids)
	return ids
}

// oobMoreServerKeys lists the user's KeyIDs in the server's database.
func oobMoreServerKeys(t *testing.T, s *harness.Server, user string) []string {
	t.Helper()
	var ids []string
	for _, r := range registrations(t, s, user) {
		ids = append(ids, r.keyID)
	}
	slices.Sort(ids)
	return ids
}

// oobMorePending waits (bounded) until exactly one operation is pending on
// the daemon and returns it.
func oobMorePending(t *testing.T, dev *device) localapi.OOBPending {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var pl localapi.OOBPendingList
		out := dev.mustCtl(ctlOK, "", "pending").stdout
		if err := json.Unmarshal([]byte(out), &pl); err != nil {
			t.Fatalf("pending: %v: %s", err, out)
		}
		if len(pl.Pending) == 1 {
			return pl.Pending[0]
		}
		if len(pl.Pending) > 1 || time.Now().After(deadline) {
			t.Fatalf("want one pending operation: %s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestDeviceOutOfBandMoreEndToEnd runs, with real swtpm, authenticatord,
// authenticatorctl and hwfido-server processes (one set-up for all steps):
// usernameless authentication by QR code and by link (the status names the
// user only once the device succeeded; usernameless push is refused), a push
// to all of the user's dispatch targets, and out-of-band deregistration by
// QR code (one key) and by push (all keys), after which neither the daemon
// nor the server holds the keys.
//
// Transactions with image/png content cannot be confirmed: authenticatord
// announces tcDisplayContentType text/plain; the test only checks that the
// device refuses such a transaction without signing.
func TestDeviceOutOfBandMoreEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts swtpm, authenticatord and hwfido-server")
	}
	start := time.Now()
	dev := startDevice(t, 4)
	statement := []byte(dev.mustCtl(ctlOK, "", "metadata").stdout)
	var meta struct {
		AAID string `json:"aaid"`
	}
	if err := json.Unmarshal(statement, &meta); err != nil || meta.AAID == "" {
		t.Fatalf("metadata statement: %v: %s", err, statement)
	}
	s := harness.StartServer(t, harness.ServerOptions{
		Metadata: [][]byte{statement},
		AppID:    "{{.URL}}/nevisfido/uaf/1.1/facets",
		Facets:   []string{deviceFacetID},
		ExtraYAML: `oob:
  dispatchers:
    - type: png-qr-code
    - type: link
      base-url: https://link.test/app
    - type: hwfido-stream
`,
	})
	// The daemon holds a stream open to the server: stop it first.
	t.Cleanup(dev.stop)
	const user = "erin"
	pin := dev.secretFile("pin", "731590-oob-more")
	// An empty PIN source: the user scanned but has not typed the PIN yet.
	noPIN := filepath.Join(dev.dir, "no-pin")
	if err := os.WriteFile(noPIN, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	caller := s.CallerToken(t, user)
	ctxJSON := func(m map[string]any) string {
		b, _ := json.Marshal(m)
		return string(b)
	}
	userCtx := ctxJSON(map[string]any{"username": user})
	nameless := ctxJSON(map[string]any{})

	// Registration by QR code, announcing the device's dispatch target.
	d := deviceOOBDispatch(t, s, "registration", caller, map[string]any{"dispatcher": "png-qr-code",
		"getUafRequest": deviceGetUAF("Reg", userCtx)})
	f := dev.mustCtl(ctlOK, pin, "oob", "-qr", oobMoreQRFile(t, dev, "reg1.png", d), "-target-name", "erin's TPM").finish(t)
	targetID := ""
	for _, tok := range f.ServerResponse.AdditionalTokens {
		if tok.Type == oob.TargetIDTokenType {
			targetID = tok.Value
		}
	}
	if targetID == "" {
		t.Fatalf("registration answer has no dispatchTargetId: %+v", f.ServerResponse)
	}
	keys := oobMoreDeviceKeys(t, dev)
	if len(keys) != 1 || !slices.Equal(keys, oobMoreServerKeys(t, s, user)) {
		t.Fatalf("after registration: device %v, server %v", keys, oobMoreServerKeys(t, s, user))
	}
	key1 := keys[0]

	t.Run("usernameless by QR code", func(t *testing.T) {
		// Anonymous: a QR code for usernameless authentication needs no caller.
		d := deviceOOBDispatch(t, s, "authentication", "", map[string]any{"dispatcher": "png-qr-code",
			"getUafRequest": deviceGetUAF("Auth", nameless)})
		qr := oobMoreQRFile(t, dev, "auth-nameless.png", d)
		if st := oobMoreStatusOf(t, s, d.SessionID); st.Status != "tokenCreated" || st.UserID != "" {
			t.Fatalf("after dispatch: %+v", st)
		}
		// Scanned, PIN not entered yet: the token is redeemed, the operation
		// waits on the device, and the server still does not know who it is.
		dev.mustCtl(1, noPIN, "oob", "-qr", qr) // exit 1: no PIN read
		p := oobMorePending(t, dev)
		if p.Source != "qr" || p.Op != "Auth" || p.HasTransaction || !slices.Contains(p.KeyIDs, key1) {
			t.Fatalf("pending %+v", p)
		}
		if st := oobMoreStatusOf(t, s, d.SessionID); st.Status != "clientAuthenticating" || st.UserID != "" {
			t.Fatalf("while the device decides: %+v", st)
		}
		dev.mustCtl(ctlOK, pin, "approve", p.ID)
		st := oobMoreStatusOf(t, s, d.SessionID)
		if st.Status != "succeeded" || st.UserID != user || st.ResultToken == "" || len(st.Authenticators) != 1 ||
			st.Authenticators[0].KeyID != key1 || st.Authenticators[0].AAID != meta.AAID {
			t.Fatalf("after the device: %+v", st)
		}
		// Single use.
		if r := dev.ctl(pin, "oob", "-qr", qr); r.code == ctlOK {
			t.Fatalf("QR code redeemed twice: %s", r.stdout)
		}
	})

	t.Run("usernameless by link", func(t *testing.T) {
		d := deviceOOBDispatch(t, s, "authentication", "", map[string]any{"dispatcher": "link",
			"getUafRequest": deviceGetUAF("Auth", nameless)})
		if d.DispatchResult != "dispatched" {
			t.Fatalf("link dispatch: %+v", d)
		}
		if st := oobMoreStatusOf(t, s, d.SessionID); st.Status != "tokenCreated" || st.UserID != "" {
			t.Fatalf("after dispatch: %+v", st)
		}
		dev.mustCtl(ctlOK, pin, "oob", "-link-file", dev.linkFile(d.DispatcherInformation.Response))
		if st := oobMoreStatusOf(t, s, d.SessionID); st.Status != "succeeded" || st.UserID != user ||
			len(st.Authenticators) != 1 || st.Authenticators[0].KeyID != key1 {
			t.Fatalf("after the device: %+v", st)
		}
	})

	t.Run("usernameless push refused", func(t *testing.T) {
		var a deviceDispatchAnswer
		for _, c := range []struct {
			bearer string
			req    map[string]any
			code   int
			result string
		}{
			{caller, map[string]any{"dispatcher": oob.Dispatcher, "getUafRequest": deviceGetUAF("Auth", nameless)}, 200, "dispatchTargetNotFound"},
			{caller, map[string]any{"dispatchTargetId": targetID, "getUafRequest": deviceGetUAF("Auth", nameless)}, 200, "userNotFound"},
			{"", map[string]any{"dispatchTargetId": targetID, "getUafRequest": deviceGetUAF("Auth", nameless)}, 401, ""},
		} {
			a = deviceDispatchAnswer{}
			code := devicePostJSON(t, s.URL+"/nevisfido/token/dispatch/authentication", c.bearer, c.req, &a)
			if code != c.code || a.DispatchResult != c.result || a.Token != "" || a.SessionID != "" {
				t.Fatalf("%v: HTTP %d %+v, want %d %q", c.req, code, a, c.code, c.result)
			}
		}
		// Nothing reached the device.
		time.Sleep(300 * time.Millisecond)
		var pl localapi.OOBPendingList
		if err := json.Unmarshal([]byte(dev.mustCtl(ctlOK, "", "pending").stdout), &pl); err != nil || len(pl.Pending) != 0 {
			t.Fatalf("pending after refused pushes: %+v %v", pl, err)
		}
	})

	t.Run("push to all targets", func(t *testing.T) {
		// No dispatchTargetId: the token goes to every hwfido-stream target
		// of the user (here the daemon's one).
		tx := "Sign in at the kiosk, terminal 7"
		req := map[string]any{"dispatcher": oob.Dispatcher,
			"getUafRequest": deviceGetUAF("Auth", ctxJSON(map[string]any{"username": user, "transaction": tx}))}
		var d deviceDispatchAnswer
		deadline := time.Now().Add(30 * time.Second)
		for { // the daemon connects its stream right after the registration
			d = deviceOOBDispatch(t, s, "authentication", caller, req)
			if d.DispatchResult == "dispatched" {
				break
			}
			if d.DispatchResult != "dispatchError" || time.Now().After(deadline) {
				t.Fatalf("push to all: %+v", d)
			}
			time.Sleep(100 * time.Millisecond)
		}
		p := oobMorePending(t, dev)
		if p.Source != "push" || p.TargetID != targetID || p.Transaction != tx {
			t.Fatalf("pending %+v", p)
		}
		dev.mustCtl(ctlOK, pin, "approve", p.ID, "-yes")
		if st := oobMoreStatusOf(t, s, d.SessionID); st.Status != "succeeded" || st.UserID != user {
			t.Fatalf("after the device: %+v", st)
		}
	})

	// authenticatord cannot render images (tcDisplayContentType text/plain),
	// so an image/png transaction is not confirmed end to end; the device
	// must refuse it without signing and report the refusal to the server,
	// whose session then ends failed with the device's codes at once.
	t.Run("image/png transaction refused by the device", func(t *testing.T) {
		var buf bytes.Buffer
		if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, 8, 8))); err != nil {
			t.Fatal(err)
		}
		tx := map[string]any{"contentType": "image/png", "content": base64.RawURLEncoding.EncodeToString(buf.Bytes())}
		d := deviceOOBDispatch(t, s, "authentication", caller, map[string]any{"dispatcher": "link",
			"getUafRequest": deviceGetUAF("Auth", ctxJSON(map[string]any{"username": user, "transaction": tx}))})
		if d.DispatchResult != "dispatched" {
			t.Fatalf("link dispatch: %+v", d)
		}
		counter := registrations(t, s, user)[0].signCounter
		r := dev.ctl(pin, "oob", "-link-file", dev.linkFile(d.DispatcherInformation.Response), "-yes")
		if r.code == ctlOK || !strings.Contains(r.stderr, "cannot render images") {
			t.Fatalf("image transaction: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
		}
		if st := oobMoreStatusOf(t, s, d.SessionID); st.Status != "failed" ||
			st.ClientErrorCode != int(uaf.ErrorInvalidTransactionContent) || st.ASMStatusCode != int(uaf.ASMCannotRenderTransactionContent) {
			t.Fatalf("image transaction session: %+v, want failed with clientErrorCode %d and asmStatusCode %d",
				st, uaf.ErrorInvalidTransactionContent, uaf.ASMCannotRenderTransactionContent)
		}
		if c := registrations(t, s, user)[0].signCounter; c != counter {
			t.Fatalf("sign counter moved %d → %d", counter, c)
		}
		var pl localapi.OOBPendingList
		if err := json.Unmarshal([]byte(dev.mustCtl(ctlOK, "", "pending").stdout), &pl); err != nil || len(pl.Pending) != 0 {
			t.Fatalf("pending after the refused image transaction: %+v %v", pl, err)
		}
	})

	// A second key, for another user of the same device (the server's
	// registration policy refuses a second key of this authenticator for
	// erin): out-of-band registration by link.
	const user2 = "erin.two"
	caller2 := s.CallerToken(t, user2)
	d = deviceOOBDispatch(t, s, "registration", caller2, map[string]any{"dispatcher": "link",
		"getUafRequest": deviceGetUAF("Reg", ctxJSON(map[string]any{"username": user2}))})
	dev.mustCtl(ctlOK, pin, "oob", "-link-file", dev.linkFile(d.DispatcherInformation.Response), "-no-target")
	if st := oobMoreStatusOf(t, s, d.SessionID); st.Status != "succeeded" {
		t.Fatalf("second registration: %+v", st)
	}
	key2 := ""
	if k := oobMoreServerKeys(t, s, user2); len(k) == 1 {
		key2 = k[0]
	}
	if keys = oobMoreDeviceKeys(t, dev); len(keys) != 2 || key2 == "" || !slices.Contains(keys, key2) || !slices.Contains(keys, key1) {
		t.Fatalf("after the second registration: device %v, server %v", keys, oobMoreServerKeys(t, s, user2))
	}

	t.Run("deregistration by QR code", func(t *testing.T) {
		one := ctxJSON(map[string]any{"username": user2, "aaid": meta.AAID, "keyID": key2})
		req := map[string]any{"dispatcher": "png-qr-code", "getUafRequest": deviceGetUAF("Dereg", one)}
		if code := devicePostJSON(t, s.URL+"/nevisfido/token/dispatch/deregistration", "", req, nil); code != http.StatusUnauthorized {
			t.Fatalf("anonymous deregistration dispatch: HTTP %d", code)
		}
		if code := devicePostJSON(t, s.URL+"/nevisfido/token/dispatch/deregistration", caller, req, nil); code != http.StatusForbidden {
			t.Fatalf("deregistration dispatch by another user's caller: HTTP %d", code)
		}
		d := deviceOOBDispatch(t, s, "deregistration", caller2, req)
		qr := oobMoreQRFile(t, dev, "dereg.png", d)
		if st := oobMoreStatusOf(t, s, d.SessionID); st.Status != "tokenCreated" {
			t.Fatalf("after dispatch: %+v", st)
		}
		// No PIN: a deregistration is applied without a prompt.
		out := dev.mustCtl(ctlOK, "", "oob", "-qr", qr).stdout
		var p localapi.OOBPending
		if err := json.Unmarshal([]byte(out), &p); err != nil || p.Op != "Dereg" || p.Deregistered != 1 {
			t.Fatalf("oob dereg output: %v: %s", err, out)
		}
		if st := oobMoreStatusOf(t, s, d.SessionID); st.Status != "succeeded" || st.ResultToken == "" {
			t.Fatalf("dereg session: %+v", st)
		}
		if got := oobMoreDeviceKeys(t, dev); !slices.Equal(got, []string{key1}) {
			t.Fatalf("device keys %v, want only %s", got, key1)
		}
		if got := oobMoreServerKeys(t, s, user2); len(got) != 0 {
			t.Fatalf("server keys of %s: %v", user2, got)
		}
		if got := oobMoreServerKeys(t, s, user); !slices.Equal(got, []string{key1}) {
			t.Fatalf("server keys of %s: %v", user, got)
		}
	})

	t.Run("deregistration by push", func(t *testing.T) {
		// Neither aaid nor keyID: all of the user's keys.
		d := deviceOOBDispatch(t, s, "deregistration", caller, map[string]any{"dispatcher": oob.Dispatcher,
			"dispatchTargetId": targetID, "getUafRequest": deviceGetUAF("Dereg", userCtx)})
		if d.DispatchResult != "dispatched" {
			t.Fatalf("pushed deregistration: %+v", d)
		}
		deadline := time.Now().Add(30 * time.Second)
		for dev.status().Keys != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("the daemon did not apply the pushed deregistration: %v", oobMoreDeviceKeys(t, dev))
			}
			time.Sleep(100 * time.Millisecond)
		}
		if got := oobMoreDeviceKeys(t, dev); len(got) != 0 {
			t.Fatalf("device keys after the pushed deregistration: %v", got)
		}
		if st := oobMoreStatusOf(t, s, d.SessionID); st.Status != "succeeded" || st.ResultToken == "" {
			t.Fatalf("dereg session: %+v", st)
		}
		if got := oobMoreServerKeys(t, s, user); len(got) != 0 {
			t.Fatalf("server keys after the pushed deregistration: %v", got)
		}
		// Nothing was left pending on the device.
		var pl localapi.OOBPendingList
		if err := json.Unmarshal([]byte(dev.mustCtl(ctlOK, "", "pending").stdout), &pl); err != nil || len(pl.Pending) != 0 {
			t.Fatalf("pending after the pushed deregistration: %+v %v", pl, err)
		}
	})

	for name, log := range map[string]string{"authenticatord": dev.Log(), "hwfido-server": s.Log()} {
		for _, secret := range []string{"731590-oob-more", caller, caller2} {
			if strings.Contains(log, secret) {
				t.Errorf("%s log contains a secret", name)
			}
		}
	}
	t.Logf("out-of-band device steps took %v", time.Since(start).Round(time.Millisecond))
}
