package loadgen

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestConnTransport checks that the per-client transport reuses its connection, reads whole
// responses (fixed length and chunked), and redials after the server closes.
func TestConnTransport(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/chunked":
			w.Write([]byte("a"))
			w.(http.Flusher).Flush()
			w.Write([]byte("b"))
		case "/close":
			w.Header().Set("Connection", "close")
			w.Write(b)
		default:
			w.Write(b)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	tr := &connTransport{addr: strings.TrimPrefix(srv.URL, "http://"), timeout: 5 * time.Second}
	defer tr.close()
	hc := &http.Client{Transport: tr}
	get := func(path, body string) string {
		t.Helper()
		resp, err := hc.Post(srv.URL+path, "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	for i, c := range []struct{ path, body, want string }{
		{"/", "one", "one"}, {"/", "two", "two"}, {"/chunked", "", "ab"}, {"/", "three", "three"},
		{"/close", "four", "four"}, {"/", "five", "five"},
	} {
		if got := get(c.path, c.body); got != c.want {
			t.Fatalf("request %d: %q, want %q", i, got, c.want)
		}
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2 (one reused for four requests, one after Connection: close)", n)
	}
}
