package server_test

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"image/png"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	devoob "github.com/fidoserver/hwfido/authenticatord/oob"
	"github.com/fidoserver/hwfido/server/oob"
	"github.com/fidoserver/hwfido/uaf"
)

// oobDispatchers configures every dispatcher that needs no outside service.
const oobDispatchers = `oob:
  token-lifetime: 2m
  dispatchers:
    - type: png-qr-code
    - type: link
      base-url: https://app.test/oob
    - type: link-png-qr-code
      link-base-url: https://app.test/qr
    - type: hwfido-stream
`

// oobEnv is a server with the out-of-band dispatchers and one authenticator known to it.
func oobEnv(t *testing.T, extra string) (*env, *authr) {
	t.Helper()
	a := newAuthr(t, testAAID, false)
	if extra == "" {
		extra = oobDispatchers
	}
	e := newEnv(t, envOptions{metadata: [][]byte{a.statement()}, extraYAML: extra})
	return e, a
}

// doJSON sends v as JSON.
func (e *env) doJSON(method, path, bearer string, v any) (int, []byte) {
	e.t.Helper()
	b, ok := v.([]byte)
	if !ok {
		b, _ = json.Marshal(v)
	}
	return e.do(method, path, "application/json", bearer, b)
}

func getUAF(op string, ctx any) map[string]any {
	c, _ := json.Marshal(ctx)
	return map[string]any{"op": op, "context": string(c)}
}

var opPath = map[string]string{"Reg": "registration", "Auth": "authentication", "Dereg": "deregistration"}

// dispatch calls the Dispatch Token Service.
func (e *env) dispatch(op, bearer string, req map[string]any) (int, *oob.DispatchResponse, []byte) {
	e.t.Helper()
	code, b := e.doJSON("POST", "/nevisfido/token/dispatch/"+opPath[op], bearer, req)
	var r oob.DispatchResponse
	if code == 200 {
		if err := json.Unmarshal(b, &r); err != nil {
			e.t.Fatalf("DispatchResponse: %v: %s", err, b)
		}
	}
	return code, &r, b
}

// redeem calls the Redeem Token Service.
func (e *env) redeem(op, token string) *uaf.ReturnUAFRequest {
	e.t.Helper()
	return redeemAt(e.t, e.http.URL, op, token)
}

func redeemAt(t testing.TB, base, op, token string) *uaf.ReturnUAFRequest {
	b, _ := json.Marshal(map[string]string{"token": token})
	resp, err := http.Post(base+"/nevisfido/token/redeem/"+opPath[op], "application/json", bytes.NewReader(b))
	if err != nil {
		t.Error(err)
		return nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Errorf("redeem: HTTP %d %s", resp.StatusCode, body)
		return nil
	}
	var r uaf.ReturnUAFRequest
	if err := json.Unmarshal(body, &r); err != nil {
		t.Errorf("redeem: %v %s", err, body)
		return nil
	}
	return &r
}

// status calls the Status Service.
func (e *env) status(sid string) *oob.StatusResponse {
	e.t.Helper()
	code, b := e.doJSON("POST", "/nevisfido/status", "", map[string]string{"sessionId": sid})
	if code != 200 {
		e.t.Fatalf("status: %d %s", code, b)
	}
	var r oob.StatusResponse
	if err := json.Unmarshal(b, &r); err != nil {
		e.t.Fatalf("status: %v %s", err, b)
	}
	return &r
}

// decodeQR reads the QR code in a standard-Base64 PNG the way the daemon does
// (devoob.DecodeQR: ZXing, with the pure-barcode fallback for the codes whose finder
// patterns the detector misplaces).
func decodeQR(t *testing.T, b64 string) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatalf("QR response is not base64: %v", err)
	}
	if _, err := png.DecodeConfig(bytes.NewReader(raw)); err != nil {
		t.Fatalf("QR response is not a PNG: %v", err)
	}
	text, err := devoob.DecodeQR(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("QR does not decode: %v", err)
	}
	return text
}

// oobPayload is the payload as a device sees it.
type oobPayload struct {
	NMAData     json.RawMessage `json:"nma_data"`
	ContentType string          `json:"nma_data_content_type"`
	Version     string          `json:"nma_data_version"`
}

// decodePayload decodes Base64URL(payload JSON).
func decodePayload(t *testing.T, enc string) *oobPayload {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		t.Fatalf("payload is not Base64URL: %v", err)
	}
	var p oobPayload
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("payload: %v: %s", err, b)
	}
	return &p
}

// clear returns the nma_data object of a clear payload.
func (p *oobPayload) clear(t *testing.T) map[string]any {
	t.Helper()
	if p.ContentType != "application/json" || p.Version != "1" {
		t.Fatalf("payload %s / %s", p.ContentType, p.Version)
	}
	var m map[string]any
	if err := json.Unmarshal(p.NMAData, &m); err != nil {
		t.Fatalf("nma_data: %v", err)
	}
	return m
}

// device is a phone with the key pairs of a dispatch target.
type device struct {
	sig, enc *ecdsa.PrivateKey
}

func newDevice(t *testing.T) *device {
	s, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return &device{sig: s, enc: c}
}

func jwkJSON(t *testing.T, pub *ecdsa.PublicKey) json.RawMessage {
	b, err := jose.JSONWebKey{Key: pub}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// target is the dispatch target of the device (encrypted when enc).
func (d *device) target(t *testing.T, name, dispatcher string, enc bool) map[string]any {
	m := map[string]any{"name": name, "deviceId": "dev-" + name, "dispatcher": dispatcher,
		"signatureKey": jwkJSON(t, &d.sig.PublicKey)}
	if enc {
		// As a string holding the JWK, the other accepted form.
		m["encryptionKey"] = string(jwkJSON(t, &d.enc.PublicKey))
	}
	return m
}

// sign makes a compact JWS of payload with key k for target id.
func sign(t *testing.T, k *ecdsa.PrivateKey, id string, payload any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k}, (&jose.SignerOptions{}).WithHeader("kid", id))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(payload)
	obj, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	c, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// signed returns the payload of a signed request with a fresh request id.
func signed(extra map[string]any) map[string]any {
	id := make([]byte, 12)
	rand.Read(id)
	m := map[string]any{"requestId": base64.RawURLEncoding.EncodeToString(id), "timestamp": time.Now().Unix()}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// decrypt opens a JWE nma_data with the device's encryption key.
func (d *device) decrypt(t *testing.T, p *oobPayload, kid string) map[string]any {
	t.Helper()
	if p.ContentType != "application/jose" {
		t.Fatalf("payload content type %q, want application/jose", p.ContentType)
	}
	var compact string
	if err := json.Unmarshal(p.NMAData, &compact); err != nil {
		t.Fatalf("nma_data is not a JWE string: %s", p.NMAData)
	}
	obj, err := jose.ParseEncrypted(compact, []jose.KeyAlgorithm{jose.ECDH_ES}, []jose.ContentEncryption{jose.A256GCM})
	if err != nil {
		t.Fatal(err)
	}
	if obj.Header.KeyID != kid {
		t.Fatalf("JWE kid %q, want %q", obj.Header.KeyID, kid)
	}
	plain, err := obj.Decrypt(d.enc)
	if err != nil {
		t.Fatalf("JWE does not decrypt with the device key: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(plain, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	name, data string
}

// statusEvents opens the Status Service's event stream of session id at base, checks that
// its first event is the status tokenCreated and returns the events that follow. The
// stream ends with the test.
func statusEvents(t *testing.T, base, id string) <-chan sseEvent {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", base+"/nevisfido/status/"+id+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status events: %v %+v", err, resp)
	}
	t.Cleanup(func() { resp.Body.Close() })
	events := sseReader(t, resp.Body)
	var st struct{ Status string }
	if ev := nextEvent(t, events); ev.name != "status" || json.Unmarshal([]byte(ev.data), &st) != nil || st.Status != "tokenCreated" {
		t.Fatalf("first status event %+v", ev)
	}
	return events
}

// sseReader reads events of a stream in the background.
func sseReader(t *testing.T, body io.ReadCloser) <-chan sseEvent {
	ch := make(chan sseEvent, 16)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" || ev.data != "" {
					ch <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data += strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return ch
}

func nextEvent(t *testing.T, ch <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("event stream closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return sseEvent{}
}
