package uafclient

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/fidoserver/hwfido/uaf"
)

func TestCheckFacet(t *testing.T) {
	const me = "https://device.example"
	list := func(body string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/redirect" {
				http.Redirect(w, r, "/ok", http.StatusFound)
				return
			}
			_, _ = w.Write([]byte(body))
		}))
		t.Cleanup(s.Close)
		return s
	}
	ok := list(`{"trustedFacets":[{"version":{"major":1,"minor":1},"ids":["https://device.example"]}]}`)
	other := list(`{"trustedFacets":[{"version":{"major":1,"minor":1},"ids":["https://evil.example"]}]}`)
	oldVersion := list(`{"trustedFacets":[{"version":{"major":1,"minor":0},"ids":["https://device.example"]}]}`)
	garbage := list(`not json`)
	c, err := New(Options{FacetID: me})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, appID string
		want        uaf.ErrorCode
	}{
		{"our facet as AppID", me, uaf.ErrorNoError},
		{"listed", ok.URL + "/ok", uaf.ErrorNoError},
		{"not listed", other.URL, uaf.ErrorUntrustedFacetID},
		{"only 1.0 entry", oldVersion.URL, uaf.ErrorUntrustedFacetID},
		{"garbage list", garbage.URL, uaf.ErrorUntrustedFacetID},
		{"redirect refused", ok.URL + "/redirect", uaf.ErrorUntrustedFacetID},
		{"plain http off loopback", "http://example.com/facets", uaf.ErrorInsecureTransport},
		{"not a URL", "android:apk-key-hash:abc", uaf.ErrorUntrustedFacetID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := CodeOf(c.checkFacet(context.Background(), tc.appID)); got != tc.want {
				t.Fatalf("code = 0x%02x, want 0x%02x", int(got), int(tc.want))
			}
		})
	}
}

func TestServerURL(t *testing.T) {
	for _, tc := range []struct {
		base string
		ok   bool
	}{
		{"https://fido.example", true}, {"http://127.0.0.1:8080/", true}, {"http://localhost:1", true},
		{"http://[::1]:9", true}, {"http://fido.example", false}, {"ftp://127.0.0.1", false},
	} {
		_, err := serverURL(tc.base, PathRegistration)
		if (err == nil) != tc.ok {
			t.Errorf("serverURL(%q) err = %v", tc.base, err)
		}
	}
}

func TestPickTransaction(t *testing.T) {
	var p Prepared
	err := pickTransaction(&p, []uaf.Transaction{{ContentType: "image/png", Content: "AAAA"}})
	if CodeOf(err) != uaf.ErrorInvalidTransactionContent {
		t.Fatalf("png only: %v", err)
	}
	err = pickTransaction(&p, []uaf.Transaction{{ContentType: "text/plain", Content: uaf.EncodeBase64URL([]byte("Pay 1 EUR"))}})
	if err != nil || p.TransactionText != "Pay 1 EUR" {
		t.Fatalf("text: %v %q", err, p.TransactionText)
	}
	// A text that would redraw itself on a terminal (what is shown is not what is signed)
	// or reorder itself (bidirectional override) is refused before anything is signed.
	for _, bad := range []string{"Pay 9999 EUR to Mallory\r\x1b[2K\x1b[1APay 10 EUR to Alice", "Pay 10 EUR \u202E00001"} {
		var q Prepared
		err = pickTransaction(&q, []uaf.Transaction{{ContentType: "text/plain", Content: uaf.EncodeBase64URL([]byte(bad))}})
		if CodeOf(err) != uaf.ErrorInvalidTransactionContent || q.Transaction != nil {
			t.Fatalf("%q: %v", bad, err)
		}
	}
}

// TestRedeemRefusals: a redeem URL off loopback without TLS, an unknown operation and a
// server refusal end the redeem before any request is prepared; the token is posted as
// JSON to the redeem URL.
func TestRedeemRefusals(t *testing.T) {
	var got struct{ ct, body string }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.ct, got.body = r.Header.Get("Content-Type"), string(b)
		_, _ = w.Write([]byte(`{"statusCode":1491,"uafRequest":"","op":"Auth","lifetimeMillis":0}`))
	}))
	t.Cleanup(srv.Close)
	c, err := New(Options{FacetID: "https://device.example"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		o    RedeemOptions
		want uaf.ErrorCode
	}{
		{"plain http off loopback", RedeemOptions{Server: srv.URL, RedeemURL: "http://fido.example/nevisfido/token/redeem/authentication", Token: "t", Op: uaf.OpAuth}, uaf.ErrorInsecureTransport},
		{"unknown operation", RedeemOptions{Server: srv.URL, RedeemURL: srv.URL, Token: "t", Op: "Sign"}, uaf.ErrorProtocolError},
		{"response server off loopback without TLS", RedeemOptions{Server: "http://fido.example", RedeemURL: srv.URL + "/x", Token: "t", Op: uaf.OpAuth}, uaf.ErrorInsecureTransport},
		{"server refuses the token", RedeemOptions{Server: srv.URL, RedeemURL: srv.URL + "/nevisfido/token/redeem/authentication", Token: "tok-1", Op: uaf.OpAuth}, uaf.ErrorProtocolError},
	} {
		pr, err := c.Redeem(ctx, nil, tc.o)
		if pr != nil || CodeOf(err) != tc.want {
			t.Errorf("%s: %v, code 0x%02x, want 0x%02x", tc.name, err, int(CodeOf(err)), int(tc.want))
		}
	}
	if got.ct != "application/json" || got.body != `{"token":"tok-1"}` {
		t.Fatalf("redeem request: %q %s", got.ct, got.body)
	}
}

// TestSameSite: a request's AppID must be on the server's host or registrable domain; a
// server that sends no AppID (which would default to the daemon's facet ID, shared by
// every server) is refused.
func TestSameSite(t *testing.T) {
	for _, tc := range []struct {
		server, appID string
		ok            bool
	}{
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080/nevisfido/uaf/1.1/facets", true},
		{"http://127.0.0.1:8080", "http://127.0.0.1:9090/facets", true},
		{"https://api.bank.example", "https://login.bank.example/facets", true},
		{"https://Fido.Bank.example", "https://fido.bank.example/facets", true},
		{"https://fido.bank.co.uk", "https://login.bank.co.uk/facets", true},
		{"https://evil.co.uk", "https://bank.co.uk/facets", false},
		{"https://fido.bank.example", "https://fido.bank.example.evil.net/facets", false},
		{"https://fido.bank.example", "", false},
		{"https://fido.bank.example", "https://device.example", false},
		{"https://fido.bank.example", "android:apk-key-hash:abc", false},
		{"http://127.0.0.1:8080", "http://127.0.0.2:8080/facets", false},
		{"http://localhost:8080", "http://127.0.0.1:8080/facets", false},
	} {
		err := sameSite(tc.server, tc.appID)
		if (err == nil) != tc.ok {
			t.Errorf("sameSite(%q, %q) = %v, want ok %v", tc.server, tc.appID, err, tc.ok)
		}
		if err != nil && CodeOf(err) != uaf.ErrorUntrustedFacetID {
			t.Errorf("sameSite(%q, %q): code 0x%02x", tc.server, tc.appID, int(CodeOf(err)))
		}
	}
}

// TestDeregisterBoundToServer: a deregistration from a server that sends no appID is
// refused before anything is deleted (it would have named every key registered under the
// daemon's facet ID); one with an AppID on the server's own host goes through.
func TestDeregisterBoundToServer(t *testing.T) {
	var appID string
	mux := http.NewServeMux()
	mux.HandleFunc("/facets", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"trustedFacets":[{"version":{"major":1,"minor":1},"ids":["https://device.example"]}]}`))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		hdr := `{"upv":{"major":1,"minor":1},"op":"Dereg"}`
		if appID != "" {
			hdr = `{"upv":{"major":1,"minor":1},"op":"Dereg","appID":"` + appID + `"}`
		}
		msg := `[{"header":` + hdr + `,"authenticators":[{"aaid":"FFFF#FC01","keyID":""}]}]`
		b, _ := json.Marshal(uaf.ReturnUAFRequest{StatusCode: uaf.StatusOK, UAFRequest: msg, Op: uaf.OpDereg})
		_, _ = w.Write(b)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c, err := New(Options{FacetID: "https://device.example"})
	if err != nil {
		t.Fatal(err)
	}
	fetch := func() (*Prepared, error) {
		return c.Fetch(context.Background(), nil, FetchOptions{Server: srv.URL, Op: uaf.OpDereg, Context: `{"username":"alice"}`})
	}
	if pr, err := fetch(); pr != nil || CodeOf(err) != uaf.ErrorUntrustedFacetID {
		t.Fatalf("dereg without appID: %+v %v", pr, err)
	}
	appID = srv.URL + "/facets"
	if pr, err := fetch(); err != nil || pr.AppID != appID || len(pr.Deregister) != 1 {
		t.Fatalf("dereg with the server's appID: %+v %v", pr, err)
	}
}
