package fido2

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzParseCredential feeds untrusted result bodies to the structural parser. Invariants:
// no panic; a failure is an *Error with a 4xx code and a message; a success has an id, a
// challenge of at least one byte, and normalised JSON go-webauthn can read (rawId == id).
func FuzzParseCredential(f *testing.F) {
	f.Add([]byte(`{"id":"AQID","type":"public-key","response":{"clientDataJSON":"eyJ0eXBlIjoid2ViYXV0aG4uZ2V0IiwiY2hhbGxlbmdlIjoiQVFJRCIsIm9yaWdpbiI6Imh0dHA6Ly9sb2NhbGhvc3QifQ","authenticatorData":"AQ","signature":"AQ"}}`), false)
	f.Add([]byte(`{"id":"AQID","rawId":"AQID","type":"public-key","response":{"clientDataJSON":"eyJ0eXBlIjoid2ViYXV0aG4uY3JlYXRlIiwiY2hhbGxlbmdlIjoiQVFJRCIsIm9yaWdpbiI6Imh0dHA6Ly9sb2NhbGhvc3QifQ","attestationObject":"oA","transports":["usb"]},"clientExtensionResults":{}}`), true)
	f.Add([]byte(`{"id":1}`), true)
	f.Add([]byte(`null`), false)
	f.Fuzz(func(t *testing.T, body []byte, create bool) {
		ceremony := "webauthn.get"
		if create {
			ceremony = "webauthn.create"
		}
		pc, err := parseCredential(body, ceremony)
		if err != nil {
			fe, ok := err.(*Error)
			if !ok || fe.Code < 400 || fe.Code > 499 || fe.Msg == "" {
				t.Fatalf("error %T %v is not a 4xx *Error", err, err)
			}
			if pc != nil {
				t.Fatal("result with error")
			}
			return
		}
		if len(pc.id) == 0 || len(pc.challenge) == 0 {
			t.Fatalf("empty id or challenge: %+v", pc)
		}
		var norm struct {
			ID    string `json:"id"`
			RawID string `json:"rawId"`
		}
		if err := json.Unmarshal(pc.normal, &norm); err != nil || norm.ID != norm.RawID || norm.ID == "" {
			t.Fatalf("normalised JSON %q: %v", pc.normal, err)
		}
		if !bytes.Contains(pc.normal, []byte(`"clientExtensionResults"`)) {
			t.Fatal("normalised JSON lacks clientExtensionResults")
		}
	})
}

// FuzzExtensionOptions checks the extensions-object parser never panics and only fails
// with a 4xx *Error.
func FuzzExtensionOptions(f *testing.F) {
	f.Add([]byte(`{"example.extension":true}`))
	f.Add([]byte(`{"credProps":true,"uvm":true,"appid":"https://x","credentialProtectionPolicy":"userVerificationRequired","enforceCredentialProtectionPolicy":true}`))
	f.Add([]byte(`[1]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if _, err := extensionOptions(raw, "webauthn.create"); err != nil {
			if fe, ok := err.(*Error); !ok || fe.Code != 400 {
				t.Fatalf("error %T %v", err, err)
			}
		}
	})
}
