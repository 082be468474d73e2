package fido2

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/hsm/hsmtest"

	"github.com/fidoserver/hwfido/server/fido2/record"
)

// FuzzParseCredential feeds untrusted result bodies to the structural parser. Invariants:
// no panic; a failure is an *Error with a 4xx code and a message; a success has an id, a
// challenge of at least one byte, and the members go-webauthn needs for the ceremony.
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
		if pc.idText == "" || (create && len(pc.attObj) == 0) || (!create && (len(pc.authData) == 0 || len(pc.sig) == 0)) ||
			len(pc.cdj) == 0 {
			t.Fatalf("incomplete parse: %+v", pc)
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

// FuzzSealedSession checks that opening any challenge never panics, and that a sealed
// state (a user row id, or a new user's username) opens to what was sealed.
func FuzzSealedSession(f *testing.F) {
	s, err := newSealer(hsmtest.NewTokenWith(f, hsmtest.Options{Quiet: true}), "localhost")
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte{sealVersion, 1, 2, 3}, "alice", int64(0), true)
	f.Add(make([]byte, sealMaxSize), "", int64(42), false)
	f.Fuzz(func(t *testing.T, challenge []byte, username string, userID int64, auth bool) {
		ctx := context.Background()
		if _, err := s.open(ctx, challenge); err != nil && !errors.Is(err, errNotSealed) {
			t.Fatalf("open: %v", err)
		}
		st := sealedState{ceremony: record.CeremonyRegistration, uv: "preferred", userID: userID,
			expires: time.UnixMilli(1 << 40).UTC()}
		if auth {
			st.ceremony = record.CeremonyAuthentication
		}
		if userID <= 0 {
			st.userID, st.username = 0, username
		}
		ch, err := s.seal(ctx, st)
		if err != nil {
			return // negative ids, long usernames, a new user in an authentication
		}
		if len(ch) > sealMaxSize || len(ch) < sealMinSize {
			t.Fatalf("challenge of %d bytes", len(ch))
		}
		got, err := s.open(ctx, ch)
		st.keyVersion = 1 // open reports the version of the key that sealed: the token's only MAC key
		if err != nil || got != st {
			t.Fatalf("open(seal(%+v)) = %+v, %v", st, got, err)
		}
	})
}
