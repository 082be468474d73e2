package fido2

import "testing"

// TestSerializedOrigin: configured origins are compared with clientDataJSON.origin in
// the form browsers serialize them (RFC 6454 §6.2).
func TestSerializedOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"https://login.example.com":       "https://login.example.com",
		"https://login.example.com/":      "https://login.example.com",
		"HTTPS://Login.Example.COM":       "https://login.example.com",
		"https://login.example.com:443":   "https://login.example.com",
		"https://login.example.com:8443/": "https://login.example.com:8443",
		"http://localhost:8080":           "http://localhost:8080",
		"http://localhost:80":             "http://localhost",
		"http://[::1]:8080":               "http://[::1]:8080",
		"http://[0:0::1]:8080":            "http://[::1]:8080",
		"https://[2001:DB8::1]":           "https://[2001:db8::1]",
		"https://:443":                    "",
		"https://bücher.example":          "",
		"https://xn--bcher-kva.example":   "https://xn--bcher-kva.example",
		"https://example.com/path":        "",
		"https://user@example.com":        "",
		"https://example.com?q=1":         "",
		"https://example.com#f":           "",
		"ftp://example.com":               "",
		"https://":                        "",
		"android:apk-key-hash:abc":        "",
	} {
		got, err := serializedOrigin(in)
		if want == "" {
			if err == nil {
				t.Errorf("%q accepted as %q", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("%q: %q, %v; want %q", in, got, err, want)
		}
	}
}
