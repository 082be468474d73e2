package fido2_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/fidoserver/hwfido/server/fido2/internal/softauthn"
	"github.com/fidoserver/hwfido/server/store"
)

// TestNewUserRegistrationWrites checks where a first registration writes: for a short
// username nothing is written at options (the user is created by the result's single
// transaction, with the handle the options announced); a username too long to seal is
// created at options, with that same handle. Discoverable login then finds the user by
// the handle the authenticator stored.
func TestNewUserRegistrationWrites(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	for _, tc := range []struct {
		user          string
		existsAtStart bool
	}{
		{"short-user", false},
		{strings.Repeat("x", 27), false}, // the longest username sealed into a challenge
		{strings.Repeat("y", 28), true},
		{strings.Repeat("long-user-", 4), true},
	} {
		t.Run(tc.user, func(t *testing.T) {
			code, o := e.post("/attestation/options", map[string]any{"username": tc.user, "displayName": tc.user,
				"authenticatorSelection": map[string]any{"residentKey": "required"}}, userHdr(tc.user))
			if code != 200 {
				t.Fatalf("options: %d %v", code, o)
			}
			handle, err := base64.RawURLEncoding.DecodeString(o["user"].(map[string]any)["id"].(string))
			if err != nil || len(handle) != 32 {
				t.Fatalf("user.id %v: %v", o["user"], err)
			}
			_, err = e.db.UserByName(ctx, tc.user)
			if exists := err == nil; exists != tc.existsAtStart || (err != nil && !errors.Is(err, store.ErrNotFound)) {
				t.Fatalf("user after options: %v (want exists %v)", err, tc.existsAtStart)
			}
			ch, _ := softauthn.ParseChallenge(o)
			cred, err := softauthn.NewCredential(softauthn.ES256)
			if err != nil {
				t.Fatal(err)
			}
			body, err := softauthn.Create(cred, softauthn.Attestation{Format: "none"},
				softauthn.Request{RPID: "localhost", Origin: e.origin, Challenge: ch, Flags: softauthn.FlagUP})
			if err != nil {
				t.Fatal(err)
			}
			if code, r := e.post("/attestation/result", body, nil); code != 200 || r["username"] != tc.user {
				t.Fatalf("result: %d %v", code, r)
			}
			u, err := e.db.UserByName(ctx, tc.user)
			if err != nil || string(u.Handle) != string(handle) {
				t.Fatalf("user after result: %v, handle equals options' user.id: %v", err, err == nil && string(u.Handle) == string(handle))
			}
			// A replay of the result creates nothing and is refused.
			if code, r := e.post("/attestation/result", body, nil); code != 400 || r["status"] != "failed" {
				t.Fatalf("replayed result: %d %v", code, r)
			}
			// A passkey login resolves the user through the stored handle.
			code, lo := e.post("/assertion/options", map[string]any{"username": ""}, nil)
			if code != 200 {
				t.Fatalf("discoverable options: %d %v", code, lo)
			}
			lch, _ := softauthn.ParseChallenge(lo)
			cred.UserHandle = handle
			ab, err := softauthn.Get(cred, softauthn.Request{RPID: "localhost", Origin: e.origin, Challenge: lch,
				Flags: softauthn.FlagUP}, true)
			if err != nil {
				t.Fatal(err)
			}
			if code, r := e.post("/assertion/result", ab, nil); code != 200 || r["username"] != tc.user {
				t.Fatalf("discoverable login: %d %v", code, r)
			}
		})
	}
}

// TestCredentialDeletedDuringLogin checks that the credentials the options call read (and
// the result reuses) do not outlive a deletion: the result is refused and signs nothing.
func TestCredentialDeletedDuringLogin(t *testing.T) {
	e := newEnv(t, nil)
	cred, _ := registerSoft(t, e, "gina", softauthn.ES256, softauthn.Attestation{Format: "none"})
	code, lo := e.post("/assertion/options", map[string]any{"username": "gina"}, nil)
	if code != 200 {
		t.Fatalf("login options: %d %v", code, lo)
	}
	req, _ := http.NewRequest(http.MethodDelete, e.base+"/nevisfido/fido2/credentials?id="+
		base64.RawURLEncoding.EncodeToString(cred.ID), nil)
	req.Header.Set("X-Test-User", "gina")
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	lch, _ := softauthn.ParseChallenge(lo)
	ab, err := softauthn.Get(cred, softauthn.Request{RPID: "localhost", Origin: e.origin, Challenge: lch, Flags: softauthn.FlagUP}, true)
	if err != nil {
		t.Fatal(err)
	}
	code, r := e.post("/assertion/result", ab, nil)
	if code != 400 || r["status"] != "failed" || r["errorMessage"] == "" || r["token"] != nil {
		t.Fatalf("login with a deleted credential: %d %v", code, r)
	}
}
