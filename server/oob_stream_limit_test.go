package server_test

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// TestStatusStreamLimit: at most 8 status streams per session are open at once; the ninth
// is refused with 429 while they are, and accepted once one has closed.
func TestStatusStreamLimit(t *testing.T) {
	e, _ := oobEnv(t, "")
	_, d, b := e.dispatch("Auth", "", map[string]any{"dispatcher": "link", "getUafRequest": getUAF("Auth", map[string]string{})}) // usernameless
	if d.SessionID == "" {
		t.Fatalf("dispatch: %s", b)
	}
	open := func(ctx context.Context) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", e.http.URL+"/nevisfido/status/"+d.SessionID+"/events", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	var cancels []context.CancelFunc
	defer func() {
		for _, c := range cancels {
			c()
		}
	}()
	for i := range 8 {
		ctx, cancel := context.WithCancel(context.Background())
		cancels = append(cancels, cancel)
		resp := open(ctx)
		if resp.StatusCode != 200 {
			t.Fatalf("stream %d: HTTP %d", i+1, resp.StatusCode)
		}
		ev := nextEvent(t, sseReader(t, resp.Body)) // the stream is open at the server
		if ev.name != "status" {
			t.Fatalf("stream %d: first event %+v", i+1, ev)
		}
	}
	resp := open(context.Background())
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("ninth stream: HTTP %d, want 429", resp.StatusCode)
	}
	cancels[0]()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithCancel(context.Background())
		cancels = append(cancels, cancel)
		resp := open(ctx)
		if resp.StatusCode == 200 {
			break
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatalf("no stream accepted after one closed: HTTP %d", resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPushStreamLimitKeepsRequest: a device's fifth push stream to one target is refused
// with 429 without spending its signed request, which opens the stream once one of the
// others has closed.
func TestPushStreamLimitKeepsRequest(t *testing.T) {
	e, a := oobEnv(t, "")
	dev := newDevice(t)
	id := registerWithTarget(t, e, a, "alice", dev.target(t, "phone", "hwfido-stream", true))
	open := func(ctx context.Context, bearer string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", e.http.URL+"/nevisfido/token/dispatch/targets/"+id+"/stream", nil)
		req.Header.Set("Authorization", "Bearer "+bearer)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	var cancels []context.CancelFunc
	defer func() {
		for _, c := range cancels {
			c()
		}
	}()
	for i := range 4 {
		ctx, cancel := context.WithCancel(context.Background())
		cancels = append(cancels, cancel)
		if resp := open(ctx, sign(t, dev.sig, id, signed(map[string]any{"aud": "stream"}))); resp.StatusCode != 200 {
			t.Fatalf("stream %d: HTTP %d", i+1, resp.StatusCode)
		}
	}
	fifth := sign(t, dev.sig, id, signed(map[string]any{"aud": "stream"}))
	resp := open(context.Background(), fifth)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("fifth stream: HTTP %d, want 429", resp.StatusCode)
	}
	cancels[0]()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithCancel(context.Background())
		cancels = append(cancels, cancel)
		resp := open(ctx, fifth)
		if resp.StatusCode == 200 {
			break
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("the refused request after a stream closed: HTTP %d", resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
