package daemon_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/authenticatord/localapi"
)

// browserRequest sends requests as a browser would (Origin, Referer, or a
// foreign Host) and reports whether all were refused with 403.
func browserRequest(t *testing.T, sock string) bool {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}}
	defer hc.CloseIdleConnections()
	cases := []struct{ host, header, value string }{
		{localapi.Host, "Origin", "https://evil.example"},
		{localapi.Host, "Referer", "https://evil.example/page"},
		{"evil.example", "", ""},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(http.MethodPost, "http://"+c.host+localapi.PathASM, strings.NewReader(`{"request":{"requestType":"GetRegistrations"}}`))
		if c.header != "" {
			req.Header.Set(c.header, c.value)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Logf("%+v → %d", c, resp.StatusCode)
			return false
		}
	}
	return true
}
