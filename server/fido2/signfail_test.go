package fido2_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/fidoserver/hwfido/server/fido2/internal/softauthn"
)

// flakySigner fails while down is set, like the HSM during an outage.
type flakySigner struct {
	inner *memSigner
	down  atomic.Bool
}

func (f *flakySigner) SignResult(ctx context.Context, claims map[string]any) (string, error) {
	if f.down.Load() {
		return "", errors.New("hsm: token unavailable")
	}
	return f.inner.SignResult(ctx, claims)
}

// TestLoginSignFailureLeavesCeremonyOpen: when the result token cannot be signed (HSM
// outage), the login answers an error, the ceremony is not recorded (neither succeeded nor
// failed), the sign counter does not move, and the same assertion succeeds once the HSM is
// back.
func TestLoginSignFailureLeavesCeremonyOpen(t *testing.T) {
	signer := &flakySigner{inner: newMemSigner(t)}
	e := newEnv(t, nil, signer)
	cred, _ := registerSoft(t, e, "hugo", softauthn.ES256, softauthn.Attestation{Format: "none"})
	counter := func() uint32 {
		c, err := e.db.FIDO2CredentialByID(context.Background(), "localhost", cred.ID)
		if err != nil {
			t.Fatal(err)
		}
		return c.SignCount
	}
	before := counter()

	code, lo := e.post("/assertion/options", map[string]any{"username": "hugo"}, nil)
	if code != 200 {
		t.Fatalf("login options: %d %v", code, lo)
	}
	sid, _ := lo["fido2SessionId"].(string)
	lch, _ := softauthn.ParseChallenge(lo)
	ab, err := softauthn.Get(cred, softauthn.Request{RPID: "localhost", Origin: e.origin, Challenge: lch, Flags: softauthn.FlagUP}, true)
	if err != nil {
		t.Fatal(err)
	}
	signer.down.Store(true)
	code, r := e.post("/assertion/result", ab, nil)
	if code < 500 || r["status"] != "failed" || r["token"] != nil {
		t.Fatalf("login while the signer is down: %d %v", code, r)
	}
	if code, st := e.post("/nevisfido/fido2/status", map[string]string{"fido2SessionId": sid}, nil); code != 200 || st["status"] != "initialized" {
		t.Fatalf("status after the outage: %d %v", code, st)
	}
	if c := counter(); c != before {
		t.Fatalf("sign counter moved %d → %d without a result", before, c)
	}

	signer.down.Store(false)
	code, r = e.post("/assertion/result", ab, nil)
	if code != 200 || r["token"] == nil || r["token"] == "" {
		t.Fatalf("the same assertion after the outage: %d %v", code, r)
	}
	if code, st := e.post("/nevisfido/fido2/status", map[string]string{"fido2SessionId": sid}, nil); code != 200 || st["status"] != "succeeded" {
		t.Fatalf("status after the login: %d %v", code, st)
	}
}
