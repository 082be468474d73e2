package hsm_test

import (
	"context"
	"crypto"
	"encoding/base64"
	"testing"

	"github.com/fidoserver/hwfido/hsm"
)

func crypto256() crypto.Hash { return crypto.SHA256 }

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// signCompact makes a compact JWS (RFC 7515 §7.1) with SignES256.
func signCompact(t testing.TB, tok *hsm.Token, payload []byte) string {
	t.Helper()
	kid := tok.ActiveKID(hsm.PurposeTokenSigning)
	in := b64([]byte(`{"alg":"ES256","kid":"`+kid+`"}`)) + "." + b64(payload)
	sig, gotKID, err := tok.SignES256(context.Background(), []byte(in))
	if err != nil || gotKID != kid {
		t.Fatalf("SignES256: %v (kid %q want %q)", err, gotKID, kid)
	}
	return in + "." + b64(sig)
}
