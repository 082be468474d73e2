package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/uaf"
)

// TestOOBStatusWatchAcrossProcesses: the relying party watches a session's status stream
// at the first server instance while the device redeems the token and answers at a second
// instance sharing the database (as a second process would). Every change reaches the
// watcher within about the poll interval (1s; 3s allowed here), through the first
// instance's change poller, and the stream ends after the final state.
func TestOOBStatusWatchAcrossProcesses(t *testing.T) {
	e, a := oobEnv(t, "")
	e2 := e.sharing()
	registerOOB(t, e, a, "alice", "link", nil)

	code, d, b := e.dispatch("Auth", "", map[string]any{"dispatcher": "link",
		"getUafRequest": getUAF("Auth", map[string]string{"username": "alice"})})
	if code != 200 || d.SessionID == "" {
		t.Fatalf("dispatch: %d %s", code, b)
	}
	statuses := statusEvents(t, e.http.URL, d.SessionID)

	within := func(what string, start time.Time, want string) sseEvent {
		t.Helper()
		select {
		case ev, ok := <-statuses:
			if !ok || ev.name != "status" || !strings.Contains(ev.data, want) {
				t.Fatalf("%s: event %+v (open %v), want %s", what, ev, ok, want)
			}
			return ev
		case <-time.After(3*time.Second - time.Since(start)):
			t.Fatalf("%s: no status event within 3s", what)
		}
		return sseEvent{}
	}

	start := time.Now()
	r := redeemAt(t, e2.http.URL, "Auth", d.Token)
	if r == nil || r.StatusCode != uaf.StatusOK {
		t.Fatalf("redeem at the second instance: %+v", r)
	}
	within("redeem at the second instance", start, `"clientAuthenticating"`)
	t.Logf("redeem seen after %v", time.Since(start))

	start = time.Now()
	body, _ := json.Marshal(uaf.SendUAFResponse{UAFResponse: a.authenticate(r, mutations{})})
	hr, err := http.Post(e2.http.URL+"/nevisfido/uaf/1.1/authentication", "application/fido+uaf", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := io.ReadAll(hr.Body)
	hr.Body.Close()
	var sr uaf.ServerResponse
	if hr.StatusCode != 200 || json.Unmarshal(rb, &sr) != nil || sr.StatusCode != uaf.StatusOK {
		t.Fatalf("authentication at the second instance: %d %s", hr.StatusCode, rb)
	}
	ev := within("outcome at the second instance", start, `"succeeded"`)
	t.Logf("outcome seen after %v", time.Since(start))
	var final struct{ Status, UserID, ResultToken string }
	if err := json.Unmarshal([]byte(ev.data), &final); err != nil || final.UserID != "alice" || final.ResultToken == "" {
		t.Fatalf("final status event %+v", ev)
	}
	select {
	case _, ok := <-statuses:
		if ok {
			t.Fatal("event after the final state")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("status stream not closed after the final state")
	}
}
