package fido2

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/hsm/hsmtest"
	"github.com/fidoserver/hwfido/server/fido2/record"
)

// TestSealedSessionIntegrity: a sealed challenge opens only unchanged, only on a token with
// the same MAC key, and only for the RP it was sealed for; a closed token is an error, not
// "not sealed".
func TestSealedSessionIntegrity(t *testing.T) {
	ctx := context.Background()
	tok := hsmtest.NewTokenWith(t, hsmtest.Options{Quiet: true})
	s, err := newSealer(tok, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	st := sealedState{ceremony: record.CeremonyRegistration, uv: "required", username: "alice",
		expires: time.UnixMilli(1 << 41).UTC()}
	ch, err := s.seal(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.open(ctx, ch)
	if err != nil || got.username != "alice" || got.keyVersion != 1 || got.uv != "required" {
		t.Fatalf("open = %+v, %v", got, err)
	}
	for i := range ch {
		bad := append([]byte(nil), ch...)
		bad[i] ^= 0x01
		if _, err := s.open(ctx, bad); !errors.Is(err, errNotSealed) {
			t.Fatalf("byte %d flipped: %v, want errNotSealed", i, err)
		}
	}
	other, _ := newSealer(hsmtest.NewTokenWith(t, hsmtest.Options{Quiet: true}), "localhost")
	if _, err := other.open(ctx, ch); !errors.Is(err, errNotSealed) {
		t.Fatalf("another token's key opened it: %v", err)
	}
	otherRP, _ := newSealer(tok, "example.com")
	if _, err := otherRP.open(ctx, ch); !errors.Is(err, errNotSealed) {
		t.Fatalf("another RP opened it: %v", err)
	}
	tok.Close()
	if _, err := s.open(ctx, ch); err == nil || errors.Is(err, errNotSealed) {
		t.Fatalf("closed token: %v, want an outage error", err)
	}
}
