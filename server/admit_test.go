package server

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestAdmit: at most n POSTs run at once, in arrival order; one that waits longer than the
// queue timeout gets 503; GETs and the dispatch service are never held.
func TestAdmit(t *testing.T) {
	release := map[string]chan struct{}{"a": make(chan struct{}), "b": make(chan struct{}), "c": make(chan struct{}), "d": make(chan struct{})}
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
			seq := r.Header.Get("X-Seq")
			mu.Lock()
			order = append(order, seq)
			mu.Unlock()
			<-release[seq]
			running.Add(-1)
		}
		w.WriteHeader(http.StatusNoContent)
	}), 2, 5*time.Second)
	// arrived records the requests that reached admit, so that each is sent only after the
	// previous one is waiting there (arrival order does not depend on scheduling).
	var arrived atomic.Int32
	outer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" && r.Method == http.MethodPost {
			arrived.Add(1)
		}
		h.ServeHTTP(w, r)
	})
	srv := httptest.NewServer(outer)
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
		deadline := time.Now().Add(5 * time.Second)
		for arrived.Load() < int32(i+1) {
			if time.Now().After(deadline) {
				t.Fatalf("request %s did not arrive", seq)
			}
			time.Sleep(2 * time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond) // it is now waiting in admit (or running)
	}
	// Two run; c and d wait. GETs and dispatches pass meanwhile.
	if resp, err := http.Get(srv.URL + "/slow"); err != nil || resp.StatusCode != 204 {
		t.Fatalf("GET held: %v %v", resp, err)
	}
	if code := post("/nevisfido/token/dispatch/authentication", "x"); code != 204 {
		t.Fatalf("dispatch held: %d", code)
	}
	started := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), order...)
	}
	waitFor := func(n int) []string {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for len(started()) < n {
			if time.Now().After(deadline) {
				t.Fatalf("started %v, want %d", started(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond) // nothing else may start meanwhile
		return started()
	}
	if got := waitFor(2); len(got) != 2 {
		t.Fatalf("running with two slots: %v", got)
	}
	// One slot frees: the first waiter (c) gets it, d still waits.
	close(release["a"])
	if got := waitFor(3); len(got) != 3 || got[2] != "c" {
		t.Fatalf("after one slot freed: %v, want c admitted first", got)
	}
	close(release["b"])
	close(release["c"])
	close(release["d"])
	wg.Wait()
	if peak.Load() != 2 {
		t.Fatalf("peak concurrency %d, want 2", peak.Load())
	}
	for i, c := range codes {
		if c != 204 {
			t.Fatalf("request %d: %d", i, c)
		}
	}
	if got := started(); len(got) != 4 || got[3] != "d" {
		t.Fatalf("admission order %v", got)
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

// TestWarnOpenSecretFile: a key file others can read is reported with the configuration
// key; an owner-only one and an unset path are not.
func TestWarnOpenSecretFile(t *testing.T) {
	var buf strings.Builder
	log := slog.New(slog.NewTextHandler(&buf, nil))
	dir := t.TempDir()
	open, closed := filepath.Join(dir, "open.key"), filepath.Join(dir, "closed.key")
	if err := os.WriteFile(open, []byte("k"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(closed, []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	if !warnOpenSecretFile(log, "server.tls.key-file", open) || !strings.Contains(buf.String(), "server.tls.key-file") {
		t.Fatalf("0644 key not reported: %q", buf.String())
	}
	if warnOpenSecretFile(log, "x", closed) || warnOpenSecretFile(log, "x", "") {
		t.Fatal("owner-only or unset file reported")
	}
}
