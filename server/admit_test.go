package server

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestAdmit: at most n POSTs run at once, in arrival order; one that waits longer than the
// queue timeout gets 503; GETs and the dispatch service are never held.
func TestAdmit(t *testing.T) {
	release := make(chan struct{})
	var running, peak atomic.Int32
	var mu sync.Mutex
	var order []string
	h := admit(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/slow" {
			n := running.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			mu.Lock()
			order = append(order, r.Header.Get("X-Seq"))
			mu.Unlock()
			<-release
			running.Add(-1)
		}
		w.WriteHeader(http.StatusNoContent)
	}), 2, 5*time.Second)
	srv := httptest.NewServer(h)
	defer srv.Close()
	post := func(path, seq string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, nil)
		req.Header.Set("X-Seq", seq)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	codes := make([]int, 4)
	var wg sync.WaitGroup
	for i, seq := range []string{"a", "b", "c", "d"} {
		wg.Add(1)
		go func() { defer wg.Done(); codes[i] = post("/slow", seq) }()
		time.Sleep(60 * time.Millisecond) // arrival order a, b, c, d
	}
	// Two run; c and d wait. GETs and dispatches pass meanwhile.
	if resp, err := http.Get(srv.URL + "/slow"); err != nil || resp.StatusCode != 204 {
		t.Fatalf("GET held: %v %v", resp, err)
	}
	if code := post("/nevisfido/token/dispatch/authentication", "x"); code != 204 {
		t.Fatalf("dispatch held: %d", code)
	}
	time.Sleep(100 * time.Millisecond)
	close(release) // a and b finish within c's and d's wait: c, d run in that order
	wg.Wait()
	if peak.Load() != 2 {
		t.Fatalf("peak concurrency %d, want 2", peak.Load())
	}
	for i, c := range codes {
		if c != 204 {
			t.Fatalf("request %d: %d", i, c)
		}
	}
	if len(order) != 4 || order[2] != "c" || order[3] != "d" {
		t.Fatalf("admission order %v", order)
	}

	// With both slots held longer than the queue timeout, a waiting request gets 503.
	block := make(chan struct{})
	h2 := admit(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }), 1, 100*time.Millisecond)
	srv2 := httptest.NewServer(h2)
	defer srv2.Close()
	defer close(block)
	go http.Post(srv2.URL+"/x", "application/json", nil) //nolint:errcheck // holds the slot
	time.Sleep(50 * time.Millisecond)
	resp, err := http.Post(srv2.URL+"/y", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("queued beyond the timeout: %d", resp.StatusCode)
	}
}
