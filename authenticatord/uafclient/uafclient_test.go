package uafclient

import (
	"context"
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
}
