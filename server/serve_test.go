package server_test

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestServeShutdownEndsStreams: an open status event stream does not hold shutdown; Serve
// returns promptly and without error, and the stream ends.
func TestServeShutdownEndsStreams(t *testing.T) {
	e, _ := oobEnv(t, "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- e.srv.Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()

	code, d, b := e.dispatch("Auth", "", map[string]any{"dispatcher": "link", "getUafRequest": getUAF("Auth", map[string]any{})})
	if code != 200 || d.SessionID == "" {
		t.Fatalf("dispatch: %d %s", code, b)
	}
	events := statusEvents(t, base, d.SessionID)

	start := time.Now()
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("Serve did not return within 8s of shutdown with an open stream")
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("shutdown took %v", el)
	}
	for range events { // the stream ends: the reader's channel closes
	}
}

// TestMethodNotAllowedNamesMethods: a 405 lists the methods the path serves.
func TestMethodNotAllowedNamesMethods(t *testing.T) {
	e, _ := oobEnv(t, "")
	for _, c := range []struct{ method, path, allow string }{
		{"GET", "/nevisfido/uaf/1.1/request/authentication", "POST"},
		{"PUT", "/nevisfido/token/dispatch/targets", "GET, POST"},
		{"POST", "/nevisfido/token/dispatch/targets/abc", "PATCH, DELETE"},
		{"POST", "/nevisfido/status/abc/events", "GET"},
	} {
		req, _ := http.NewRequest(c.method, e.http.URL+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != c.allow {
			t.Errorf("%s %s: %d Allow %q, want 405 Allow %q", c.method, c.path, resp.StatusCode, resp.Header.Get("Allow"), c.allow)
		}
	}
}
