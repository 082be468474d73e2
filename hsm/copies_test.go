package hsm_test

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"errors"
	"math/big"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/fidoserver/hwfido/hsm"
	"github.com/fidoserver/hwfido/hsm/hsmtest"
)

// sessionKeys returns the session objects (CKA_TOKEN false) among the token's
// private and secret keys, seen from a fresh session of the same application.
func sessionKeys(t *testing.T, tok *hsmtest.Token) []pkcs11.ObjectHandle {
	t.Helper()
	p := hsm.RawCtx(tok.Token)
	sh, err := p.OpenSession(hsm.Slot(tok.Token), pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		t.Fatal(err)
	}
	defer p.CloseSession(sh)
	var out []pkcs11.ObjectHandle
	for _, class := range []uint{pkcs11.CKO_PRIVATE_KEY, pkcs11.CKO_SECRET_KEY} {
		if err := p.FindObjectsInit(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false)}); err != nil {
			t.Fatal(err)
		}
		hs, _, err := p.FindObjects(sh, 100)
		p.FindObjectsFinal(sh)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, hs...)
	}
	return out
}

// TestSessionCopies: every key is operated through a session copy that keeps
// the key's protection; reloads reuse the copies, a rotation copies only the
// new key, and the copies sign and MAC like the token objects.
func TestSessionCopies(t *testing.T) {
	tok := hsmtest.NewTokenWith(t, hsmtest.Options{NoVendorCA: true, Sessions: 2})
	ctx := ctxT(t)
	copies := sessionKeys(t, tok)
	if len(copies) != len(tok.Keys()) {
		t.Fatalf("%d session copies for %d keys", len(copies), len(tok.Keys()))
	}
	p := hsm.RawCtx(tok.Token)
	sh, err := p.OpenSession(hsm.Slot(tok.Token), pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		t.Fatal(err)
	}
	defer p.CloseSession(sh)
	for _, purpose := range []hsm.Purpose{hsm.PurposeTokenSigning, hsm.PurposeServerDataMAC} {
		use, obj := hsm.UseHandle(tok.Token, purpose), hsm.KeyHandle(tok.Token, purpose)
		if use == obj {
			t.Fatalf("%s: operations use the token object, want its session copy", purpose)
		}
		if _, err := p.GetAttributeValue(sh, use, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)}); !errors.Is(err, pkcs11.Error(pkcs11.CKR_ATTRIBUTE_SENSITIVE)) {
			t.Errorf("%s copy: reading CKA_VALUE: %v, want CKR_ATTRIBUTE_SENSITIVE", purpose, err)
		}
		a, err := p.GetAttributeValue(sh, use, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, nil),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil), pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, nil)})
		if err != nil {
			t.Fatal(err)
		}
		if want := []byte{0, 1, 0, 1}; a[0].Value[0] != want[0] || a[1].Value[0] != want[1] || a[2].Value[0] != want[2] || a[3].Value[0] != want[3] {
			t.Errorf("%s copy: token/sensitive/extractable/private = %v %v %v %v, want %v", purpose, a[0].Value, a[1].Value, a[2].Value, a[3].Value, want)
		}
	}
	// Pooled sessions operate on the anchor's copies.
	msg := []byte("signed through a copy")
	raw, kid, err := tok.SignES256(ctx, msg)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := tok.PublicKey(kid)
	if !verifyRaw(pub, msg, raw) {
		t.Fatal("signature of the copy does not verify with the token key's public key")
	}
	tag, v, err := tok.MAC(ctx, msg)
	if err != nil {
		t.Fatal(err)
	}
	// Reloads keep the copies; they neither leak nor duplicate keys.
	for range 3 {
		if err := tok.Reload(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(sessionKeys(t, tok)); n != len(copies) {
		t.Fatalf("after reloads: %d session copies, want %d", n, len(copies))
	}
	// A token object without copies (another handle) gives the same tag.
	direct, err := hsm.Open(ctx, func() hsm.Config { c := tok.Config; c.NoSessionCopies = true; return c }())
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	if hsm.UseHandle(direct, hsm.PurposeServerDataMAC) != hsm.KeyHandle(direct, hsm.PurposeServerDataMAC) {
		t.Fatal("NoSessionCopies: operations do not use the token object")
	}
	if err := direct.VerifyMAC(ctx, v, msg, tag); err != nil {
		t.Fatalf("tag of the copy does not verify with the token object: %v", err)
	}
	if n := len(sessionKeys(t, tok)); n != len(copies) {
		t.Fatalf("NoSessionCopies handle made copies: %d, want %d", n, len(copies))
	}
	// Rotation copies the new key only.
	k, err := tok.GenerateKey(ctx, hsm.PurposeTokenSigning)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(sessionKeys(t, tok)); n != len(copies)+1 {
		t.Fatalf("after rotation: %d session copies, want %d", n, len(copies)+1)
	}
	if hsm.UseHandle(tok.Token, hsm.PurposeTokenSigning) == hsm.KeyHandle(tok.Token, hsm.PurposeTokenSigning) {
		t.Fatal("the rotated key is not used through a copy")
	}
	if _, kid, err := tok.SignES256(ctx, msg); err != nil || kid != k.KID {
		t.Fatalf("sign after rotation: kid %q err %v, want %q", kid, err, k.KID)
	}
}

// TestSessionCopyRefused: a token that refuses C_CopyObject (CKA_COPYABLE false,
// or no support) is used through its token objects.
func TestSessionCopyRefused(t *testing.T) {
	tok := hsmtest.NewTokenWith(t, hsmtest.Options{NoVendorCA: true, Quiet: true})
	var f hsm.Faults
	f.FailCopies(pkcs11.Error(pkcs11.CKR_ACTION_PROHIBITED), pkcs11.Error(pkcs11.CKR_ACTION_PROHIBITED))
	tok2, err := hsm.Open(ctxT(t), hsm.WithFaults(tok.Config, &f))
	if err != nil {
		t.Fatal(err)
	}
	defer tok2.Close()
	if f.Copies.Load() != 2 {
		t.Fatalf("C_CopyObject called %d times, want 2 (one per key)", f.Copies.Load())
	}
	for _, p := range []hsm.Purpose{hsm.PurposeTokenSigning, hsm.PurposeServerDataMAC} {
		if hsm.UseHandle(tok2, p) != hsm.KeyHandle(tok2, p) {
			t.Fatalf("%s: a refused copy left a copy handle in use", p)
		}
	}
	if _, _, err := tok2.SignES256(ctxT(t), []byte("m")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tok2.MAC(ctxT(t), []byte("m")); err != nil {
		t.Fatal(err)
	}
}

func verifyRaw(pub *ecdsa.PublicKey, msg, raw []byte) bool {
	if pub == nil || len(raw) != 64 {
		return false
	}
	d := sha256.Sum256(msg)
	return ecdsa.Verify(pub, d[:], new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:]))
}

// TestReloginKeepsLiveCopies: a handle error makes the token log in again and re-find its
// keys; the session copies are still live on the same anchor, so they are kept (operations
// holding the previous key set keep working) and none leak.
func TestReloginKeepsLiveCopies(t *testing.T) {
	base := hsmtest.NewTokenWith(t, hsmtest.Options{NoVendorCA: true, Quiet: true})
	var f hsm.Faults
	tok, err := hsm.Open(ctxT(t), hsm.WithFaults(base.Config, &f))
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	before := hsm.UseHandle(tok, hsm.PurposeTokenSigning)
	n := len(sessionKeys(t, base))
	f.FailSigns(pkcs11.Error(pkcs11.CKR_KEY_HANDLE_INVALID))
	logins := f.Logins.Load()
	if _, _, err := tok.SignES256(ctxT(t), []byte("m")); err != nil {
		t.Fatalf("sign after a handle error: %v", err)
	}
	if f.Logins.Load() != logins+1 {
		t.Fatalf("no re-login after the handle error (%d logins)", f.Logins.Load()-logins)
	}
	if hsm.UseHandle(tok, hsm.PurposeTokenSigning) != before {
		t.Fatal("a live copy was replaced after the re-login")
	}
	if got := len(sessionKeys(t, base)); got != n {
		t.Fatalf("session copies %d after the re-login, want %d", got, n)
	}
	if err := tok.Healthy(); err != nil {
		t.Fatal(err)
	}
}
