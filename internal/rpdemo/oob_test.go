package rpdemo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/authenticatord/oob"
	"github.com/fidoserver/hwfido/server/callerauth"
	"github.com/fidoserver/hwfido/test/harness"
	"github.com/fidoserver/hwfido/uaf"
	"github.com/fidoserver/hwfido/uaf/uaftest"
)

// oobYAML configures the QR dispatcher the app uses.
const oobYAML = `oob:
  dispatchers:
    - type: link-png-qr-code
      link-base-url: https://bank.test/oob
`

// phone plays the device with the software authenticator: it decodes the QR code as a
// camera app would, redeems the token and answers the UAF request.
func phone(t *testing.T, s *harness.Server, a *uaftest.Authenticator, qrDataURI string, faults ...uaftest.Fault) *uaf.ServerResponse {
	t.Helper()
	return phoneAt(t, http.DefaultClient, s.URL, a, qrDataURI, faults...)
}

// phoneAt is phone for the server at base, reached with hc.
func phoneAt(t *testing.T, hc *http.Client, base string, a *uaftest.Authenticator, qrDataURI string, faults ...uaftest.Fault) *uaf.ServerResponse {
	t.Helper()
	b64, ok := strings.CutPrefix(qrDataURI, "data:image/png;base64,")
	if !ok {
		t.Fatalf("QR is not a PNG data URI: %.40q", qrDataURI)
	}
	png, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	text, err := oob.DecodeQR(bytes.NewReader(png))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(text, "https://bank.test/oob?dispatchTokenResponse=") {
		t.Fatalf("QR text %.60q is not a link", text)
	}
	p, err := oob.ParseText(text)
	if err != nil || p.Data == nil {
		t.Fatalf("QR payload: %+v %v", p, err)
	}
	return redeemAndAnswer(t, hc, base, a, p.Data, faults...)
}

// redeemAndAnswer redeems the token of d and answers the UAF request with a.
func redeemAndAnswer(t *testing.T, hc *http.Client, base string, a *uaftest.Authenticator, d *oob.RedeemData, faults ...uaftest.Fault) *uaf.ServerResponse {
	t.Helper()
	var r uaf.ReturnUAFRequest
	if !strings.HasPrefix(d.RedeemURL, base+"/") {
		t.Fatalf("redeem_url %q is not at %s", d.RedeemURL, base)
	}
	body, _ := json.Marshal(map[string]string{"token": d.Token})
	req, _ := http.NewRequest(http.MethodPost, d.RedeemURL, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != http.StatusOK || r.StatusCode != uaf.StatusOK {
		t.Fatalf("redeem: HTTP %d %+v %v", resp.StatusCode, r, err)
	}
	resp.Body.Close()
	out, err := a.Respond(r.UAFRequest, harness.DefaultFacet, faults...)
	if err != nil {
		t.Fatal(err)
	}
	path := map[uaf.Operation]string{uaf.OpReg: "registration", uaf.OpAuth: "authentication"}[r.Op]
	var sr uaf.ServerResponse
	uafPost(t, hc, base, "/nevisfido/uaf/1.1/"+path, "", uaf.SendUAFResponse{UAFResponse: out}, &sr)
	return &sr
}

// events reads the app's event stream of op until it is final.
func events(t *testing.T, c *http.Client, base, op string) []OpState {
	t.Helper()
	// It runs on its own goroutine, where t.Fatal would not end the test but leave the
	// caller waiting: a failure is reported with t.Errorf and a zero (non-final) state.
	fail := func(format string, args ...any) []OpState {
		t.Errorf("events of %s: "+format, append([]any{op}, args...)...)
		return []OpState{{}}
	}
	// The stream ends with the test, so that a test that failed meanwhile does not leave
	// it open and the server's Close waiting for it.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/api/ops/"+url.PathEscape(op)+"/events", nil)
	resp, err := c.Do(req)
	if err != nil {
		return fail("%v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return fail("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var out []OpState
	err = readSSE(bufio.NewReader(resp.Body), func(ev string, data []byte) error {
		var st OpState
		if err := json.Unmarshal(data, &st); err != nil {
			return err
		}
		out = append(out, st)
		return nil
	})
	if err != nil {
		return fail("%v (after %+v)", err, out)
	}
	if len(out) == 0 || !out[len(out)-1].Final {
		return fail("stream ended without a final state: %+v", out)
	}
	return out
}

// TestOutOfBandFlows runs the app's registration and payment against hwfido-server's
// out-of-band services, with the software authenticator as the phone: the outcome the app
// reports comes from the server's status stream and a verified result token.
func TestOutOfBandFlows(t *testing.T) {
	if testing.Short() {
		t.Skip("starts hwfido-server")
	}
	t.Parallel() // each test has its own server process, token and database
	a, err := uaftest.New(uaftest.Options{AAID: "FFFF#E102"})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := a.MetadataStatement()
	f := newFixture(t, harness.ServerOptions{Metadata: [][]byte{st}, ExtraYAML: oobYAML})
	c, csrf := loggedIn(t, f.base)

	var reg startResponse
	if code := api(t, c, f.base+"/api/registration", csrf, "{}", &reg); code != http.StatusOK {
		t.Fatalf("registration start: %d", code)
	}
	if reg.Via != "qr" || reg.DispatchResult != "dispatched" || reg.Op == "" {
		t.Fatalf("registration start: %+v", reg)
	}
	done := make(chan []OpState, 1)
	go func() { done <- events(t, c, f.base, reg.Op) }()
	if sr := phone(t, f.srv, a, reg.QR); sr.StatusCode != uaf.StatusOK {
		t.Fatalf("phone registration: %+v", sr)
	}
	var trail []OpState
	select {
	case trail = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("registration not final after 60s")
	}
	last := trail[len(trail)-1]
	if last.Outcome != "succeeded" || !last.Verified || last.AAID != "FFFF#E102" || last.TxHash != "" {
		t.Fatalf("registration outcome: %+v", last)
	}
	if !slices.Equal(last.Trail, []string{"tokenCreated", "clientRegistering", "succeeded"}) {
		t.Fatalf("registration trail %v", last.Trail)
	}

	pay := func(amount string, faults ...uaftest.Fault) OpState {
		t.Helper()
		var p startResponse
		if code := api(t, c, f.base+"/api/payment", csrf, `{"amount":"`+amount+`","payee":"Bob's Books"}`, &p); code != http.StatusOK {
			t.Fatalf("payment start: %d", code)
		}
		want := "Pay " + amount + " EUR to Bob's Books"
		if p.Via != "qr" || p.Transaction != want {
			t.Fatalf("payment start: %+v", p)
		}
		done := make(chan []OpState, 1)
		go func() { done <- events(t, c, f.base, p.Op) }()
		phone(t, f.srv, a, p.QR, faults...)
		select {
		case tr := <-done:
			return tr[len(tr)-1]
		case <-time.After(60 * time.Second):
			t.Fatal("payment not final after 60s")
		}
		return OpState{}
	}
	ok := pay("10.00")
	if ok.Outcome != "succeeded" || !ok.Verified || ok.TxHash != TxHash("Pay 10.00 EUR to Bob's Books") {
		t.Fatalf("payment outcome: %+v", ok)
	}
	if !slices.Equal(ok.Trail, []string{"tokenCreated", "clientAuthenticating", "succeeded"}) {
		t.Fatalf("payment trail %v", ok.Trail)
	}
	bad := pay("20.00", uaftest.BadSignature())
	if bad.Outcome != "failed" || bad.Verified || bad.UAFStatusCode == 0 || bad.UAFStatusCode == int(uaf.StatusOK) {
		t.Fatalf("payment with a bad signature: %+v", bad)
	}
	// A bank expecting another result-token audience (a token meant for someone else, or
	// another server) does not count the operation as a success.
	wrong := serveApp(t, f.srv, "https://other-bank.test")
	wc, wcsrf := loggedIn(t, wrong.base)
	var wp startResponse
	if code := api(t, wc, wrong.base+"/api/payment", wcsrf, `{"amount":"30.00","payee":"Bob's Books"}`, &wp); code != http.StatusOK {
		t.Fatalf("payment start: %d", code)
	}
	wdone := make(chan []OpState, 1)
	go func() { wdone <- events(t, wc, wrong.base, wp.Op) }()
	phone(t, f.srv, a, wp.QR)
	wtr := <-wdone
	if w := wtr[len(wtr)-1]; w.Outcome != "error" || w.Verified || w.Status != "succeeded" || w.Error != "the FIDO server's result token did not verify" {
		t.Fatalf("payment with a token for another audience: %+v", w)
	}
	if !strings.Contains(wrong.log.String(), "rpdemo: result token rejected") {
		t.Fatalf("the cause is not logged:\n%s", wrong.log.String())
	}

	// The state endpoint agrees with the stream.
	resp, err := c.Get(f.base + "/api/ops/" + url.PathEscape(reg.Op))
	if err != nil {
		t.Fatal(err)
	}
	var got OpState
	_ = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if got.Outcome != "succeeded" || !got.Final {
		t.Fatalf("GET op: %+v", got)
	}
	// Another browser session cannot see the operation.
	other := browserClient(t)
	page(t, other, f.base)
	if resp, err := other.Get(f.base + "/api/ops/" + url.PathEscape(reg.Op)); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("foreign session: %v %v", resp.StatusCode, err)
	}
}

// TestWatchPollsWithoutStream follows a session through a proxy that hides the status
// stream, as a server without GET /nevisfido/status/<id>/events would: Watch falls back to
// polling POST /nevisfido/status and still reaches the final state.
func TestWatchPollsWithoutStream(t *testing.T) {
	if testing.Short() {
		t.Skip("starts hwfido-server")
	}
	t.Parallel() // each test has its own server process, token and database
	a, err := uaftest.New(uaftest.Options{AAID: "FFFF#E103"})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := a.MetadataStatement()
	s := harness.StartServer(t, harness.ServerOptions{Metadata: [][]byte{st}, ExtraYAML: oobYAML})
	target, _ := url.Parse(s.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	var streams, polls atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/events"):
			streams.Add(1)
			http.NotFound(w, r)
			return
		case r.URL.Path == "/nevisfido/status":
			polls.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	key, err := LoadKey(s.LoginKeyFile(t))
	if err != nil {
		t.Fatal(err)
	}
	c := &Client{Base: proxy.URL, HTTP: http.DefaultClient, Key: key,
		Mint: callerauth.MintOptions{Issuer: harness.Issuer, Audience: harness.Audience}}
	ctxJSON := `{"username":"dora"}`
	res, err := c.Dispatch(context.Background(), "registration", "dora", DispatchRequest{Dispatcher: "link-png-qr-code",
		GetUAFRequest: GetUAFRequest{Op: "Reg", Context: ctxJSON}})
	if err != nil || res.DispatchResult != "dispatched" {
		t.Fatalf("dispatch: %+v %v", res, err)
	}
	type result struct {
		last  Status
		trail []string
		err   error
	}
	done := make(chan result, 1)
	go func() {
		var trail []string
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		last, err := c.Watch(ctx, res.SessionID, func(s Status) {
			if len(trail) == 0 || trail[len(trail)-1] != s.Status {
				trail = append(trail, s.Status)
			}
		})
		done <- result{last, trail, err}
	}()
	if sr := phone(t, s, a, "data:image/png;base64,"+res.DispatcherInformation.Response); sr.StatusCode != uaf.StatusOK {
		t.Fatalf("phone: %+v", sr)
	}
	r := <-done
	if r.err != nil || r.last.Status != "succeeded" || r.last.ResultToken == "" || r.trail[len(r.trail)-1] != "succeeded" {
		t.Fatalf("watch: %+v %v %v", r.last, r.trail, r.err)
	}
	if streams.Load() != 1 || polls.Load() < 2 {
		t.Fatalf("stream attempts %d, polls %d: want one refused stream, then polling", streams.Load(), polls.Load())
	}
	v := &Verifier{Client: c, Issuer: s.URL, Audience: "https://rp.test"}
	if cl, err := v.Verify(context.Background(), r.last.ResultToken, Expect{Username: "dora", Operation: "Reg", SessionID: res.SessionID}); err != nil {
		t.Fatalf("registration result token: %+v %v", cl, err)
	}
}
