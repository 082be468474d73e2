package server_test

import (
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/internal/testutil"
	"github.com/fidoserver/hwfido/uaf"
)

// TestOOBConcurrentRedeem: 100 concurrent redeems of one token, spread over two server
// instances that share the SQLite file (as two processes would): exactly one gets the
// request.
func TestOOBConcurrentRedeem(t *testing.T) {
	e, _ := oobEnv(t, "")
	e2 := e.sharing()
	for round := 0; round < 3; round++ {
		code, b := e.do("POST", "/nevisfido/token/create/authentication", "application/json", "",
			mustJSON(getUAF("Auth", map[string]string{})))
		var tr struct{ Token, SessionID string }
		if code != 200 || json.Unmarshal(b, &tr) != nil {
			t.Fatalf("create: %d %s", code, b)
		}
		var ok, refused atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := 0; i < 100; i++ {
			wg.Add(1)
			base := e.http.URL
			if i%2 == 1 {
				base = e2.http.URL
			}
			go func() {
				defer wg.Done()
				<-start
				r := redeemAt(t, base, "Auth", tr.Token)
				switch {
				case r == nil:
				case r.StatusCode == uaf.StatusOK && r.UAFRequest != "":
					ok.Add(1)
				case r.StatusCode == uaf.StatusUnauthorized && r.UAFRequest == "":
					refused.Add(1)
				}
			}()
		}
		close(start)
		wg.Wait()
		if ok.Load() != 1 || refused.Load() != 99 {
			t.Fatalf("round %d: %d redeemed, %d refused; want 1 and 99", round, ok.Load(), refused.Load())
		}
	}
}

// TestOOBPushAcrossProcesses: the device's stream is open at a second server instance
// sharing the database; a dispatch handled by the first reaches it through the store's push
// queue. Once the stream is closed, the dispatch fails.
func TestOOBPushAcrossProcesses(t *testing.T) {
	e, a := oobEnv(t, "")
	e2 := e.sharing()
	dev := newDevice(t)
	id := registerWithTarget(t, e, a, "alice", dev.target(t, "phone", "hwfido-stream", false))

	req, _ := http.NewRequest("GET", e2.http.URL+"/nevisfido/token/dispatch/targets/"+id+"/stream", nil)
	req.Header.Set("Authorization", "Bearer "+sign(t, dev.sig, id, signed(map[string]any{"aud": "stream"})))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("stream at the second instance: %v %v", err, resp)
	}
	events := sseReader(t, resp.Body)
	push := map[string]any{"dispatchTargetId": id, "getUafRequest": getUAF("Auth", map[string]string{"username": "alice"})}
	code, d, b := e.dispatch("Auth", e.callerToken("alice"), push)
	if code != 200 || d.DispatchResult != "dispatched" {
		t.Fatalf("dispatch at the first instance: %d %s", code, b)
	}
	ev := nextEvent(t, events)
	var p oobPayload
	if err := json.Unmarshal([]byte(ev.data), &p); err != nil || ev.name != "dispatch" {
		t.Fatalf("event %+v", ev)
	}
	if nma := p.clear(t); nma["token"] != d.Token {
		t.Fatalf("pushed %v, dispatched token %s", nma, d.Token)
	}
	resp.Body.Close()
	testutil.WaitFor(t, "the condition", 10*time.Second, func() bool {
		_, d, _ := e.dispatch("Auth", e.callerToken("alice"), push)
		return d.DispatchResult == "dispatchError"
	})
}
