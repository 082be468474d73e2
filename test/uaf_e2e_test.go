package test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fidoserver/hwfido/test/harness"
	"github.com/fidoserver/hwfido/uaf"
	"github.com/fidoserver/hwfido/uaf/uaftest"
)

func post(t *testing.T, url, bearer string, body any, out any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/fido+uaf;charset=UTF-8")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 && out != nil {
		if err := json.Unmarshal(rb, out); err != nil {
			t.Fatalf("%s: %v: %s", url, err, rb)
		}
	}
	return resp.StatusCode
}

func request(t *testing.T, s *harness.Server, op string, ctx any, bearer string) *uaf.ReturnUAFRequest {
	t.Helper()
	c, _ := json.Marshal(ctx)
	path := map[string]string{"Reg": "registration", "Auth": "authentication", "Dereg": "deregistration"}[op]
	var r uaf.ReturnUAFRequest
	if code := post(t, s.URL+"/nevisfido/uaf/1.1/request/"+path, bearer, uaf.GetUAFRequest{Op: uaf.Operation(op), Context: string(c)}, &r); code != 200 {
		t.Fatalf("%s request: HTTP %d", op, code)
	}
	return &r
}

func send(t *testing.T, s *harness.Server, op, uafResponse string) *uaf.ServerResponse {
	t.Helper()
	path := map[string]string{"Reg": "registration", "Auth": "authentication"}[op]
	var r uaf.ServerResponse
	if code := post(t, s.URL+"/nevisfido/uaf/1.1/"+path, "", uaf.SendUAFResponse{UAFResponse: uafResponse}, &r); code != 200 {
		t.Fatalf("%s response: HTTP %d", op, code)
	}
	return &r
}

func answer(t *testing.T, a *uaftest.Authenticator, r *uaf.ReturnUAFRequest, faults ...uaftest.Fault) string {
	t.Helper()
	if r.StatusCode != uaf.StatusOK {
		t.Fatalf("request status %d", r.StatusCode)
	}
	out, err := a.Respond(r.UAFRequest, harness.DefaultFacet, faults...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestUAFServerProcess runs registration, step-up and usernameless authentication,
// transaction confirmation and deregistration against the hwfido-server binary.
func TestUAFServerProcess(t *testing.T) {
	a, err := uaftest.New(uaftest.Options{AAID: "FFFF#E001"})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := a.MetadataStatement()
	s := harness.StartServer(t, harness.ServerOptions{Metadata: [][]byte{st}})
	if sr := send(t, s, "Reg", answer(t, a, request(t, s, "Reg", map[string]string{"username": "alice"}, s.CallerToken(t, "alice")))); sr.StatusCode != uaf.StatusOK {
		t.Fatalf("registration: %+v", sr)
	}
	for _, ctx := range []map[string]any{{"username": "alice"}, {}, {"username": "alice", "transaction": "Pay 10 EUR"}} {
		sr := send(t, s, "Auth", answer(t, a, request(t, s, "Auth", ctx, "")))
		if sr.StatusCode != uaf.StatusOK || len(sr.AdditionalTokens) != 1 {
			t.Fatalf("authentication %v: %+v", ctx, sr)
		}
	}
	// A response made before the deregistration is refused after it: the key is gone.
	late := answer(t, a, request(t, s, "Auth", map[string]any{}, ""))
	d := request(t, s, "Dereg", map[string]any{"username": "alice", "deregisterAll": true}, s.CallerToken(t, "alice"))
	answer(t, a, d)
	if sr := send(t, s, "Auth", late); sr.StatusCode != uaf.StatusUnknownKeyID {
		t.Fatalf("after deregistration: %+v", sr)
	}
}

// TestTwoProcessesOneStore starts two server processes on one token and one database: a
// request issued by one is accepted by the other, and a response raced to both is accepted
// exactly once.
func TestTwoProcessesOneStore(t *testing.T) {
	a, err := uaftest.New(uaftest.Options{AAID: "FFFF#E002"})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := a.MetadataStatement()
	s1 := harness.StartServer(t, harness.ServerOptions{Metadata: [][]byte{st}})
	s2 := harness.StartServer(t, harness.ServerOptions{Metadata: [][]byte{st}, Token: s1.Token, DBPath: s1.DBPath})
	if sr := send(t, s2, "Reg", answer(t, a, request(t, s1, "Reg", map[string]string{"username": "bob"}, s1.CallerToken(t, "bob")))); sr.StatusCode != uaf.StatusOK {
		t.Fatalf("registration across processes: %+v", sr)
	}
	resp := answer(t, a, request(t, s1, "Auth", map[string]any{"username": "bob"}, ""))
	var ok, replay atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(s *harness.Server) {
			defer wg.Done()
			switch sr := send(t, s, "Auth", resp); sr.StatusCode {
			case uaf.StatusOK:
				ok.Add(1)
			case uaf.StatusRequestInvalid:
				replay.Add(1)
			default:
				t.Errorf("unexpected %+v", sr)
			}
		}([]*harness.Server{s1, s2}[i%2])
	}
	wg.Wait()
	if ok.Load() != 1 || replay.Load() != 19 {
		t.Fatalf("one response sent 20 times to two processes: %d accepted, %d refused as replays", ok.Load(), replay.Load())
	}
}

// TestConformanceAPI drives the FIDO conformance test API (/get, /respond).
func TestConformanceAPI(t *testing.T) {
	a, err := uaftest.New(uaftest.Options{AAID: "FFFF#E003"})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := a.MetadataStatement()
	s := harness.StartServer(t, harness.ServerOptions{Metadata: [][]byte{st}, Conformance: true})
	get := func(op string, ctx any) *uaf.ReturnUAFRequest {
		c, _ := json.Marshal(ctx)
		var r uaf.ReturnUAFRequest
		if code := post(t, s.URL+"/get", "", uaf.GetUAFRequest{Op: uaf.Operation(op), Context: string(c)}, &r); code != 200 {
			t.Fatalf("/get %s: %d", op, code)
		}
		return &r
	}
	respond := func(resp string) *uaf.ServerResponse {
		var r uaf.ServerResponse
		if code := post(t, s.URL+"/respond", "", uaf.SendUAFResponse{UAFResponse: resp}, &r); code != 200 {
			t.Fatalf("/respond: %d", code)
		}
		return &r
	}
	if sr := respond(answer(t, a, get("Reg", map[string]string{"username": "conf"}))); sr.StatusCode != uaf.StatusOK {
		t.Fatalf("conformance registration: %+v", sr)
	}
	if sr := respond(answer(t, a, get("Auth", map[string]string{"username": "conf"}))); sr.StatusCode != uaf.StatusOK {
		t.Fatalf("conformance authentication: %+v", sr)
	}
	if sr := respond(answer(t, a, get("Auth", map[string]string{"username": "conf"}), uaftest.UPV(1, 0))); sr.StatusCode != uaf.StatusUnacceptableContent {
		t.Fatalf("conformance negative: %+v", sr)
	}
	if r := get("Reg", map[string]string{}); r.StatusCode != uaf.StatusUnauthorized {
		t.Fatalf("/get without username: %+v", r)
	}
}
