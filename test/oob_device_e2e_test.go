package test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/authenticatord/localapi"
	"github.com/fidoserver/hwfido/authenticatord/oob"
	"github.com/fidoserver/hwfido/test/harness"
)

// deviceDispatchAnswer is the Dispatch Token Service answer (docs/oob.md).
type deviceDispatchAnswer struct {
	Token                 string `json:"token"`
	SessionID             string `json:"sessionId"`
	DispatchResult        string `json:"dispatchResult"`
	DispatcherInformation struct {
		Name     string `json:"name"`
		Response string `json:"response"`
	} `json:"dispatcherInformation"`
}

// deviceSessionStatus is the part of the Status Service answer the test checks.
type deviceSessionStatus struct {
	Status          string `json:"status"`
	ASMStatusCode   int    `json:"asmStatusCode"`
	ClientErrorCode int    `json:"clientErrorCode"`
}

func devicePostJSON(t *testing.T, url, bearer string, body, out any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.Unmarshal(rb, out); err != nil {
			t.Fatalf("%s: %v: %s", url, err, rb)
		}
	}
	if resp.StatusCode != http.StatusOK {
		t.Logf("%s: HTTP %d: %s", url, resp.StatusCode, rb)
	}
	return resp.StatusCode
}

// deviceOOBDispatch calls POST /nevisfido/token/dispatch/<op>.
func deviceOOBDispatch(t *testing.T, s *harness.Server, op, bearer string, req map[string]any) deviceDispatchAnswer {
	t.Helper()
	var r deviceDispatchAnswer
	if code := devicePostJSON(t, s.URL+"/nevisfido/token/dispatch/"+op, bearer, req, &r); code != http.StatusOK {
		t.Fatalf("dispatch %s: HTTP %d", op, code)
	}
	return r
}

func deviceOOBStatus(t *testing.T, s *harness.Server, id string) deviceSessionStatus {
	t.Helper()
	var st deviceSessionStatus
	if code := devicePostJSON(t, s.URL+"/nevisfido/status", "", map[string]string{"sessionId": id}, &st); code != http.StatusOK {
		t.Fatalf("status: HTTP %d", code)
	}
	return st
}

func deviceGetUAF(op, ctx string) map[string]string {
	return map[string]string{"op": op, "context": ctx}
}

// TestDeviceOutOfBandEndToEnd runs the out-of-band flows with real processes:
// swtpm, authenticatord (TPM-held dispatch target keys), hwfido-server with
// the png-qr-code, link and hwfido-stream dispatchers, and the
// authenticatorctl binary (PINs on a file descriptor). Registration from
// the server's QR code PNG creates the dispatch target; the daemon then
// holds its push stream, receives a pushed transaction (approved, then one
// rejected), opens an encrypted link (JWE to the target's TPM key), renames
// the target and deletes it with device-signed requests.
func TestDeviceOutOfBandEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts swtpm, authenticatord and hwfido-server")
	}
	dev := startDevice(t, 4)
	statement := []byte(dev.mustCtl(ctlOK, "", "metadata").stdout)
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
	// The daemon holds a stream open to the server: stop it first (cleanups
	// run last-in first-out).
	t.Cleanup(dev.stop)
	const user = "dora"
	pin := dev.secretFile("pin", "604817-oob-e2e")
	wrong := dev.secretFile("wrong-pin", "111111-not-it")
	caller := s.CallerToken(t, user)
	userCtx, _ := json.Marshal(map[string]string{"username": user})

	// 1. Registration from the QR code PNG the server rendered.
	d := deviceOOBDispatch(t, s, "registration", caller, map[string]any{"dispatcher": "png-qr-code",
		"getUafRequest": deviceGetUAF("Reg", string(userCtx))})
	if d.DispatchResult != "dispatched" {
		t.Fatalf("QR dispatch: %+v", d)
	}
	png, err := base64.StdEncoding.DecodeString(d.DispatcherInformation.Response)
	if err != nil {
		t.Fatalf("QR dispatcher response is not standard Base64: %v", err)
	}
	qrFile := filepath.Join(dev.dir, "registration.png")
	if err := os.WriteFile(qrFile, png, 0o600); err != nil {
		t.Fatal(err)
	}
	r := dev.mustCtl(ctlOK, pin, "oob", "-qr", qrFile, "-target-name", "dora's TPM device")
	f := r.finish(t)
	targetID := ""
	for _, tok := range f.ServerResponse.AdditionalTokens {
		if tok.Type == oob.TargetIDTokenType {
			targetID = tok.Value
		}
	}
	if targetID == "" {
		t.Fatalf("registration answer has no dispatchTargetId: %+v", f.ServerResponse)
	}
	if st := deviceOOBStatus(t, s, d.SessionID); st.Status != "succeeded" {
		t.Fatalf("registration session: %+v", st)
	}
	// The QR token is single use.
	if r := dev.ctl(pin, "oob", "-qr", qrFile); r.code == ctlOK {
		t.Fatalf("QR code redeemed twice: %s", r.stdout)
	}

	// 2. Pushed transactions on the device's stream: approve one, reject one.
	pushTx := func(text string) (string, localapi.OOBPending) {
		t.Helper()
		txCtx, _ := json.Marshal(map[string]string{"username": user, "transaction": text})
		var d deviceDispatchAnswer
		deadline := time.Now().Add(30 * time.Second)
		for { // the daemon connects its stream right after the registration
			d = deviceOOBDispatch(t, s, "authentication", caller, map[string]any{"dispatcher": oob.Dispatcher,
				"dispatchTargetId": targetID, "getUafRequest": deviceGetUAF("Auth", string(txCtx))})
			if d.DispatchResult == "dispatched" {
				break
			}
			if d.DispatchResult != "dispatchError" || time.Now().After(deadline) {
				t.Fatalf("stream dispatch: %+v", d)
			}
			time.Sleep(100 * time.Millisecond)
		}
		var pl localapi.OOBPendingList
		deadline = time.Now().Add(30 * time.Second)
		for {
			out := dev.mustCtl(ctlOK, "", "pending").stdout
			if err := json.Unmarshal([]byte(out), &pl); err != nil {
				t.Fatalf("pending: %v: %s", err, out)
			}
			if len(pl.Pending) == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("pushed operation not pending: %s", out)
			}
			time.Sleep(100 * time.Millisecond)
		}
		p := pl.Pending[0]
		if p.Transaction != text || p.Source != "push" || p.TargetID != targetID {
			t.Fatalf("pending %+v", p)
		}
		return d.SessionID, p
	}
	sid, p := pushTx("Pay 42.00 CHF to Kiosk AG")
	r = dev.mustCtl(ctlOK, pin, "approve", p.ID, "-yes")
	if !strings.Contains(r.stderr, "Pay 42.00 CHF to Kiosk AG") {
		t.Fatalf("the transaction was not shown: %s", r.stderr)
	}
	if st := deviceOOBStatus(t, s, sid); st.Status != "succeeded" {
		t.Fatalf("approved push: %+v", st)
	}
	sid, p = pushTx("Pay 9999.00 CHF to Mallory")
	dev.mustCtl(ctlRejected, "", "reject", p.ID)
	if st := deviceOOBStatus(t, s, sid); st.Status != "failed" || st.ASMStatusCode != 3 || st.ClientErrorCode != 3 {
		t.Fatalf("rejected push: %+v", st)
	}

	// 3. Link to the target: nma_data is a JWE to the target's TPM key;
	// a wrong PIN is refused by the TPM and reported, then it is redone.
	for _, tc := range []struct {
		pin    string
		code   int
		status string
	}{{wrong, ctlDenied, "failed"}, {pin, ctlOK, "succeeded"}} {
		d := deviceOOBDispatch(t, s, "authentication", caller, map[string]any{"dispatcher": "link",
			"dispatchTargetId": targetID, "getUafRequest": deviceGetUAF("Auth", string(userCtx))})
		link := d.DispatcherInformation.Response
		lp, err := oob.ParseLink(link)
		if err != nil || lp.ContentType != oob.ContentJOSE {
			t.Fatalf("link %q: %v (content type %q, want application/jose)", link, err, lp.ContentType)
		}
		dev.mustCtl(tc.code, tc.pin, "oob", "-link-file", dev.linkFile(link))
		if st := deviceOOBStatus(t, s, d.SessionID); st.Status != tc.status {
			t.Fatalf("link session: %+v, want %s", st, tc.status)
		}
	}

	// 4. Device-signed PATCH (rename) and DELETE; afterwards the server no
	// longer knows the target.
	r = dev.mustCtl(ctlOK, "", "targets", "-rename", targetID, "-name", "dora's desk")
	if !strings.Contains(r.stdout, "dora's desk") {
		t.Fatalf("rename: %s", r.stdout)
	}
	r = dev.mustCtl(ctlOK, "", "targets", "-delete", targetID)
	if !strings.Contains(r.stdout, `"targets": []`) {
		t.Fatalf("delete: %s", r.stdout)
	}
	d = deviceOOBDispatch(t, s, "authentication", caller, map[string]any{"dispatcher": oob.Dispatcher,
		"dispatchTargetId": targetID, "getUafRequest": deviceGetUAF("Auth", string(userCtx))})
	if d.DispatchResult != "dispatchTargetNotFound" {
		t.Fatalf("dispatch to the deleted target: %+v", d)
	}

	// Nothing secret in the daemon's log.
	log := dev.Log()
	for _, secret := range []string{"604817-oob-e2e", "111111-not-it", caller} {
		if strings.Contains(log, secret) {
			t.Fatalf("daemon log contains a secret")
		}
	}
}
