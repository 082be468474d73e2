package test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/test/harness"
	"github.com/fidoserver/hwfido/uaf"
	"github.com/fidoserver/hwfido/uaf/uaftest"
)

const oobServerYAML = `oob:
  token-lifetime: 2m
  dispatchers:
    - type: link
      base-url: https://app.test/oob
`

func oobServerPost(t *testing.T, u, bearer string, body, out any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", u, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 && out != nil {
		if err := json.Unmarshal(rb, out); err != nil {
			t.Errorf("%s: %v: %s", u, err, rb)
		}
	}
	return resp.StatusCode
}

type oobServerDispatch struct {
	Token, SessionID, DispatchResult string
	DispatcherInformation            struct{ Name, Response string }
}

type oobServerStatus struct {
	Status, UserID, ResultToken string
}

// TestOOBServerProcesses: two hwfido-server processes share one SQLite file and one HSM
// token. A registration dispatched (as a link) at the first is redeemed at the second and
// answered at the first; the second's status stream sees it succeed. 100 concurrent
// redeems of one token split between both processes: exactly one wins.
func TestOOBServerProcesses(t *testing.T) {
	a, err := uaftest.New(uaftest.Options{AAID: "FFFF#E0B1"})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := a.MetadataStatement()
	s1 := harness.StartServer(t, harness.ServerOptions{Metadata: [][]byte{st}, ExtraYAML: oobServerYAML})
	s2 := harness.StartServer(t, harness.ServerOptions{Metadata: [][]byte{st}, ExtraYAML: oobServerYAML, Token: s1.Token, DBPath: s1.DBPath})

	ctx, _ := json.Marshal(map[string]string{"username": "alice"})
	var d oobServerDispatch
	if code := oobServerPost(t, s1.URL+"/nevisfido/token/dispatch/registration", s1.CallerToken(t, "alice"),
		map[string]any{"dispatcher": "link", "getUafRequest": map[string]any{"op": "Reg", "context": string(ctx)}}, &d); code != 200 || d.DispatchResult != "dispatched" {
		t.Fatalf("dispatch: %d %+v", code, d)
	}
	link, err := url.Parse(d.DispatcherInformation.Response)
	if err != nil || !strings.HasPrefix(d.DispatcherInformation.Response, "https://app.test/oob?dispatchTokenResponse=") {
		t.Fatalf("link %q", d.DispatcherInformation.Response)
	}
	raw, err := base64.RawURLEncoding.DecodeString(link.Query().Get("dispatchTokenResponse"))
	if err != nil {
		t.Fatal(err)
	}
	var payload struct {
		NMAData struct {
			Token     string `json:"token"`
			RedeemURL string `json:"redeem_url"`
		} `json:"nma_data"`
	}
	if err := json.Unmarshal(raw, &payload); err != nil || payload.NMAData.Token != d.Token ||
		payload.NMAData.RedeemURL != s1.URL+"/nevisfido/token/redeem/registration" {
		t.Fatalf("payload %s", raw)
	}

	// The relying party watches the session at the second process.
	resp, err := http.Get(s2.URL + "/nevisfido/status/" + d.SessionID + "/events")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("events: %v", err)
	}
	defer resp.Body.Close()
	events := make(chan oobServerStatus, 8)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var s oobServerStatus
				_ = json.Unmarshal([]byte(data), &s)
				events <- s
			}
		}
	}()
	next := func() oobServerStatus {
		select {
		case s, ok := <-events:
			if !ok {
				t.Fatal("status stream closed")
			}
			return s
		case <-time.After(15 * time.Second):
			t.Fatal("no status event")
		}
		return oobServerStatus{}
	}
	if s := next(); s.Status != "tokenCreated" {
		t.Fatalf("first event %+v", s)
	}

	var r uaf.ReturnUAFRequest
	if code := oobServerPost(t, s2.URL+"/nevisfido/token/redeem/registration", "", map[string]string{"token": d.Token}, &r); code != 200 || r.StatusCode != uaf.StatusOK {
		t.Fatalf("redeem at the second process: %d %+v", code, r)
	}
	if s := next(); s.Status != "clientRegistering" {
		t.Fatalf("event %+v", s)
	}
	if sr := send(t, s1, "Reg", answer(t, a, &r)); sr.StatusCode != uaf.StatusOK {
		t.Fatalf("registration at the first process: %+v", sr)
	}
	if s := next(); s.Status != "succeeded" || s.UserID != "alice" || s.ResultToken == "" {
		t.Fatalf("final event %+v", s)
	}

	// Single use across processes.
	var tr struct{ Token string }
	if code := oobServerPost(t, s1.URL+"/nevisfido/token/create/authentication", "", map[string]any{"op": "Auth", "context": "{}"}, &tr); code != 200 {
		t.Fatalf("create: %d", code)
	}
	var won, refused atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		base := s1.URL
		if i%2 == 1 {
			base = s2.URL
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var rr uaf.ReturnUAFRequest
			if oobServerPost(t, base+"/nevisfido/token/redeem/authentication", "", map[string]string{"token": tr.Token}, &rr) != 200 {
				return
			}
			switch {
			case rr.StatusCode == uaf.StatusOK && rr.UAFRequest != "":
				won.Add(1)
			case rr.StatusCode == uaf.StatusUnauthorized:
				refused.Add(1)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 || refused.Load() != 99 {
		t.Fatalf("%d redeemed, %d refused across two processes", won.Load(), refused.Load())
	}
}
