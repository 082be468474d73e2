package fido2_test

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestMediaTypeAndSlash: the JSON endpoints refuse other content types with 415 (and
// the conformance error shape) and answer with and without a trailing slash.
func TestMediaTypeAndSlash(t *testing.T) {
	e := newEnv(t, nil)
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin1", ""} {
		code, r := e.post("/nevisfido/fido2/assertion/options", map[string]any{"username": ""}, map[string]string{"Content-Type": ct})
		if code != 415 || r["status"] != "failed" || r["errorMessage"] == "" {
			t.Errorf("Content-Type %q: %d %v, want 415", ct, code, r)
		}
	}
	if code, r := e.post("/nevisfido/fido2/assertion/options", map[string]any{"username": ""},
		map[string]string{"Content-Type": "application/json; charset=UTF-8"}); code != 200 {
		t.Errorf("application/json; charset=UTF-8: %d %v", code, r)
	}
	if code, r := e.post("/nevisfido/fido2/assertion/options/", map[string]any{"username": ""}, nil); code != 200 || r["challenge"] == nil {
		t.Errorf("trailing slash: %d %v", code, r)
	}
}

// TestExtensionsBounded: an options request's extensions object (stored with the ceremony
// when it cannot be sealed into the challenge) is bounded: 400 and no session beyond 2 KiB.
func TestExtensionsBounded(t *testing.T) {
	e := newEnv(t, nil)
	big := map[string]any{"example.extension": strings.Repeat("x", 4096)}
	code, r := e.post("/nevisfido/fido2/assertion/options", map[string]any{"username": "", "extensions": big}, nil)
	if code != 400 || r["status"] != "failed" || r["fido2SessionId"] != nil {
		t.Fatalf("large extensions: %d %v", code, r)
	}
	// Nothing was stored: purging every session ever created finds none.
	far := time.Now().Add(100 * 365 * 24 * time.Hour)
	if n, err := e.db.PurgeFIDO2Sessions(context.Background(), far); err != nil || n != 0 {
		t.Fatalf("sessions stored by the refused request: %d %v", n, err)
	}
	small := map[string]any{"example.extension": "x"}
	if code, r := e.post("/nevisfido/fido2/assertion/options", map[string]any{"username": "", "extensions": small}, nil); code != 200 {
		t.Fatalf("small extensions: %d %v", code, r)
	}
	// The accepted one (an extension that cannot be sealed into the challenge) is stored.
	if n, err := e.db.PurgeFIDO2Sessions(context.Background(), far); err != nil || n != 1 {
		t.Fatalf("sessions stored by the accepted request: %d %v", n, err)
	}
}
