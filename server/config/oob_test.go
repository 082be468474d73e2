package config

import (
	"strings"
	"testing"
)

func TestOOBConfig(t *testing.T) {
	cases := []struct {
		yaml, err string
	}{
		{"", ""},
		{"oob:\n  token-lifetime: 10s\n  dispatchers:\n    - type: png-qr-code\n    - type: link\n    - type: hwfido-stream\n", ""},
		{"oob:\n  dispatchers:\n    - type: firebase-cloud-messaging\n      service-account-json: /sa.json\n      token-uri: http://127.0.0.1:1/token\n", ""},
		{"oob:\n  token-lifetime: 0s\n  session-retention: 10m\n", ""},
		{"oob:\n  token-lifetime: 10m\n  session-retention: 1m\n", "oob.session-retention"},
		{"oob:\n  token-lifetime: 500ms\n", "oob.token-lifetime"},
		{"oob:\n  dispatchers:\n    - type: carrier-pigeon\n", "oob.dispatchers[0].type"},
		{"oob:\n  dispatchers:\n    - type: link\n    - type: link\n", "oob.dispatchers[1].type"},
		{"oob:\n  dispatchers:\n    - type: firebase-cloud-messaging\n", "oob.dispatchers[0].service-account-json"},
		{"oob:\n  dispatchers:\n    - type: png-qr-code\n      base-url: https://x\n", "oob.dispatchers[0]"},
		{"oob:\n  dispatchers:\n    - type: link\n      base-url: not a url\n", "oob.dispatchers[0].base-url"},
		{"oob:\n  dispatchers:\n    - type: link\n      registration-redeem-url: /relative\n", "oob.dispatchers[0].registration-redeem-url"},
		{"oob:\n  dispatchers:\n    - type: link\n      unknown-key: 1\n", "unknown-key"},
	}
	for _, c := range cases {
		_, err := Parse([]byte(minimal+c.yaml), nil)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%q: %v", c.yaml, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q: error %v, want one naming %s", c.yaml, err, c.err)
		}
	}
	cfg, err := Parse([]byte(minimal+"oob:\n  dispatchers:\n    - type: link\n    - type: firebase-cloud-messaging\n      service-account-json: /sa.json\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := cfg.OOB.Dispatchers; d[0].BaseURL != "https://link" || d[1].EndpointBaseURL != "https://fcm.googleapis.com" ||
		d[1].RemoveUnregisteredClients == nil || !*d[1].RemoveUnregisteredClients || cfg.OOB.TokenLifetime.D().Minutes() != 5 {
		t.Fatalf("defaults: %+v %+v", cfg.OOB, d)
	}
}

const minimal = `version: 1
hsm:
  uri: "pkcs11:token=t?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=env:PIN"
store:
  path: /tmp/x.db
fido-uaf:
  app-id: https://app.example.com/facets
  facets: ["https://app.example.com"]
  metadata:
    value: "{}"
  policies:
    default:
      accepted: []
`
