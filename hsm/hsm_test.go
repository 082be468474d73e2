package hsm_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/miekg/pkcs11"

	"github.com/fidoserver/hwfido/hsm"
	"github.com/fidoserver/hwfido/hsm/hsmtest"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSignES256VerifiesWithExportedKey(t *testing.T) {
	tok := hsmtest.NewToken(t)
	ctx := ctxT(t)
	msg := []byte("header.payload")
	sig, kid, err := tok.SignES256(ctx, msg)
	if err != nil {
		t.Fatal(err)
	}
	if len(sig) != 64 {
		t.Fatalf("signature has %d bytes, want 64", len(sig))
	}
	pub, ok := tok.PublicKey(kid)
	if !ok {
		t.Fatalf("PublicKey(%q) not found", kid)
	}
	d := sha256.Sum256(msg)
	if !ecdsa.Verify(pub, d[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		t.Fatal("signature does not verify with crypto/ecdsa")
	}
	d2 := sha256.Sum256([]byte("other"))
	if ecdsa.Verify(pub, d2[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		t.Fatal("signature verifies for another message")
	}
	der, err := hsm.ECDSASignatureDER(sig)
	if err != nil || !ecdsa.VerifyASN1(pub, d[:], der) {
		t.Fatalf("DER form does not verify: %v", err)
	}
	if _, _, err := tok.SignDigest(ctx, hsm.PurposeTokenSigning, d[:5]); err == nil {
		t.Fatal("short digest accepted")
	}
}

func TestJWKSAndThumbprint(t *testing.T) {
	tok := hsmtest.NewToken(t)
	raw, err := tok.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatalf("go-jose cannot parse our JWKS: %v\n%s", err, raw)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("JWKS has %d keys, want 1 (only token-signing keys)", len(set.Keys))
	}
	k := set.Keys[0]
	// Independent thumbprint computation (go-jose, RFC 7638).
	tp, err := k.Thumbprint(crypto256())
	if err != nil {
		t.Fatal(err)
	}
	want := b64(tp)
	if k.KeyID != want || tok.ActiveKID(hsm.PurposeTokenSigning) != want {
		t.Fatalf("kid %q / active %q, want thumbprint %q", k.KeyID, tok.ActiveKID(hsm.PurposeTokenSigning), want)
	}
	if k.Algorithm != "ES256" || k.Use != "sig" {
		t.Fatalf("alg=%q use=%q", k.Algorithm, k.Use)
	}
	pub, _ := tok.PublicKey(want)
	if !pub.Equal(k.Key) {
		t.Fatal("JWKS key differs from PublicKey")
	}
	// A compact JWS made with SignES256 verifies with go-jose.
	jws := signCompact(t, tok.Token, []byte(`{"sub":"x"}`))
	obj, err := jose.ParseSigned(jws, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.Verify(&k)
	if err != nil || string(out) != `{"sub":"x"}` {
		t.Fatalf("go-jose verify: %v %q", err, out)
	}
}

func TestSignerCreatesVerifiableCertificate(t *testing.T) {
	tok := hsmtest.NewToken(t)
	for _, p := range []hsm.Purpose{hsm.PurposeVendorCA, hsm.PurposeTokenSigning} {
		s, err := tok.Signer(p)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hwfido test " + p.String()},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, s.Public(), s)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		if err := cert.CheckSignatureFrom(cert); err != nil {
			t.Fatalf("%s: self-signed cert does not verify: %v", p, err)
		}
	}
	if _, err := tok.Signer(hsm.PurposeServerDataMAC); !errors.Is(err, hsm.ErrUnknownKey) {
		t.Fatalf("Signer(MAC) = %v, want ErrUnknownKey", err)
	}
}

func TestMAC(t *testing.T) {
	tok := hsmtest.NewToken(t)
	ctx := ctxT(t)
	data := []byte("serverData: challenge=abc; user=alice")
	tag, v, err := tok.MAC(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(tag) != 32 || v != 1 {
		t.Fatalf("tag len %d version %d", len(tag), v)
	}
	bad := append([]byte{}, tag...)
	bad[0] ^= 1
	tests := []struct {
		name    string
		version uint32
		data    []byte
		tag     []byte
		want    error
	}{
		{"ok", v, data, tag, nil},
		{"flipped tag", v, data, bad, hsm.ErrBadMAC},
		{"other data", v, append(data, 'x'), tag, hsm.ErrBadMAC},
		{"short tag", v, data, tag[:16], hsm.ErrBadMAC},
		{"empty tag", v, data, nil, hsm.ErrBadMAC},
		{"unknown version", v + 7, data, tag, hsm.ErrUnknownKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tok.VerifyMAC(ctx, tc.version, tc.data, tc.tag)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("VerifyMAC = %v, want %v", err, tc.want)
			}
		})
	}
	// Truncated tags and the MAC of a given version.
	if w, err := tok.MACWithVersion(ctx, v, data); err != nil || !bytes.Equal(w, tag) {
		t.Fatalf("MACWithVersion = %x, %v; want %x", w, err, tag)
	}
	if _, err := tok.MACWithVersion(ctx, v+7, data); !errors.Is(err, hsm.ErrUnknownKey) {
		t.Fatalf("MACWithVersion of an unknown version: %v", err)
	}
	for _, tc := range []struct {
		name string
		tag  []byte
		want error
	}{
		{"16 bytes", tag[:16], nil}, {"full", tag, nil}, {"15 bytes", tag[:15], hsm.ErrBadMAC},
		{"flipped", bad[:16], hsm.ErrBadMAC}, {"too long", append(append([]byte{}, tag...), 0), hsm.ErrBadMAC},
	} {
		if err := tok.VerifyTruncatedMAC(ctx, v, data, tc.tag); tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Fatalf("VerifyTruncatedMAC %s = %v, want %v", tc.name, err, tc.want)
		}
	}
	// Another token's key gives another tag for the same data.
	other := hsmtest.NewTokenWith(t, hsmtest.Options{NoVendorCA: true, Quiet: true})
	tag2, _, err := other.MAC(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	if string(tag2) == string(tag) {
		t.Fatal("two tokens produced the same tag")
	}
}

func TestKeysAreNotExtractable(t *testing.T) {
	tok := hsmtest.NewToken(t)
	p := hsm.RawCtx(tok.Token)
	sh, err := p.OpenSession(hsm.Slot(tok.Token), pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		t.Fatal(err)
	}
	defer p.CloseSession(sh)
	for _, purpose := range hsm.Purposes {
		h := hsm.KeyHandle(tok.Token, purpose)
		_, err := p.GetAttributeValue(sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
		if !errors.Is(err, pkcs11.Error(pkcs11.CKR_ATTRIBUTE_SENSITIVE)) {
			t.Errorf("%s: reading CKA_VALUE: %v, want CKR_ATTRIBUTE_SENSITIVE", purpose, err)
		}
		a, err := p.GetAttributeValue(sh, h, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil), pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
			pkcs11.NewAttribute(pkcs11.CKA_ALWAYS_SENSITIVE, nil), pkcs11.NewAttribute(pkcs11.CKA_NEVER_EXTRACTABLE, nil),
			pkcs11.NewAttribute(pkcs11.CKA_LOCAL, nil),
		})
		if err != nil {
			t.Fatal(err)
		}
		want := []byte{1, 0, 1, 1, 1}
		for i, at := range a {
			if len(at.Value) != 1 || at.Value[0] != want[i] {
				t.Errorf("%s: attribute %#x = %v, want %d", purpose, at.Type, at.Value, want[i])
			}
		}
	}
}

func TestRefusesExtractableKey(t *testing.T) {
	tok := hsmtest.NewToken(t)
	p := hsm.RawCtx(tok.Token)
	sh, err := p.OpenSession(hsm.Slot(tok.Token), pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		t.Fatal(err)
	}
	defer p.CloseSession(sh)
	id := hsm.KeyID([]byte(hsm.DefaultIDPrefix), hsm.PurposeServerDataMAC, 9)
	_, err = p.GenerateKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_GENERIC_SECRET_KEY_GEN, nil)}, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true), pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true), pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, "bad"), pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = hsm.Open(ctxT(t), tok.Config)
	var pe *hsm.PolicyError
	if !errors.Is(err, hsm.ErrKeyPolicy) || !errors.As(err, &pe) || !strings.Contains(pe.Reason, "EXTRACTABLE") {
		t.Fatalf("Open = %v, want a PolicyError about CKA_EXTRACTABLE", err)
	}
	// The running token re-scanning keys refuses it as well.
	if err := tok.Reload(ctxT(t)); !errors.Is(err, hsm.ErrKeyPolicy) {
		t.Fatalf("Reload = %v, want ErrKeyPolicy", err)
	}
}

func TestRotation(t *testing.T) {
	tok := hsmtest.NewTokenWith(t, hsmtest.Options{NoVendorCA: true})
	ctx := ctxT(t)
	oldKID := tok.ActiveKID(hsm.PurposeTokenSigning)
	oldTag, oldV, err := tok.MAC(ctx, []byte("d"))
	if err != nil {
		t.Fatal(err)
	}
	ks, err := tok.GenerateKey(ctx, hsm.PurposeTokenSigning)
	if err != nil {
		t.Fatal(err)
	}
	mk, err := tok.GenerateKey(ctx, hsm.PurposeServerDataMAC)
	if err != nil {
		t.Fatal(err)
	}
	if ks.Version != 2 || mk.Version != 2 || !ks.Active || ks.KID == oldKID {
		t.Fatalf("rotated keys: %+v %+v", ks, mk)
	}
	_, kid, err := tok.SignES256(ctx, []byte("m"))
	if err != nil || kid != ks.KID {
		t.Fatalf("sign after rotate: kid %q err %v, want %q", kid, err, ks.KID)
	}
	if _, ok := tok.PublicKey(oldKID); !ok {
		t.Fatal("old kid no longer resolvable")
	}
	var set jose.JSONWebKeySet
	raw, _ := tok.JWKS()
	if err := json.Unmarshal(raw, &set); err != nil || len(set.Keys) != 2 {
		t.Fatalf("JWKS after rotation: %v %s", err, raw)
	}
	tag, v, err := tok.MAC(ctx, []byte("d"))
	if err != nil || v != 2 || string(tag) == string(oldTag) {
		t.Fatalf("MAC after rotate: v=%d err=%v", v, err)
	}
	if err := tok.VerifyMAC(ctx, oldV, []byte("d"), oldTag); err != nil {
		t.Fatalf("old MAC no longer verifies: %v", err)
	}
	if err := tok.VerifyMAC(ctx, oldV, []byte("d"), tag); !errors.Is(err, hsm.ErrBadMAC) {
		t.Fatalf("new tag under old version: %v", err)
	}
	// A second handle (like a restarted server) sees the same active keys.
	tok2, err := hsm.Open(ctx, tok.Config)
	if err != nil {
		t.Fatal(err)
	}
	defer tok2.Close()
	if tok2.ActiveKID(hsm.PurposeTokenSigning) != ks.KID {
		t.Fatal("second handle sees another active key")
	}
}

func TestConcurrentUse(t *testing.T) {
	tok := hsmtest.NewTokenWith(t, hsmtest.Options{Sessions: 2, NoVendorCA: true})
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 8 {
		wg.Go(func() {
			for i := range 40 {
				msg := []byte{byte(g), byte(i)}
				sig, kid, err := tok.SignES256(ctx, msg)
				if err != nil {
					errs <- err
					return
				}
				pub, _ := tok.PublicKey(kid)
				d := sha256.Sum256(msg)
				if !ecdsa.Verify(pub, d[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
					errs <- errors.New("bad signature")
					return
				}
				tag, v, err := tok.MAC(ctx, msg)
				if err == nil {
					err = tok.VerifyMAC(ctx, v, msg, tag)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestAcquireHonoursDeadline(t *testing.T) {
	tok := hsmtest.NewTokenWith(t, hsmtest.Options{Sessions: 1, NoVendorCA: true, Quiet: true})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// With a free session the op still runs; hold it by saturating with a
	// cancelled context on a busy pool instead.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				tok.SignES256(context.Background(), []byte("x"))
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()
	busy := 0
	for range 200 {
		if _, _, err := tok.SignES256(ctx, []byte("y")); errors.Is(err, hsm.ErrBusy) {
			busy++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if busy == 0 {
		t.Fatal("a cancelled context never gave ErrBusy on a saturated one-session pool")
	}
}

func TestCertificates(t *testing.T) {
	tok := hsmtest.NewTokenWith(t, hsmtest.Options{NoVendorCA: true})
	ctx := ctxT(t)
	der, err := os.ReadFile(filepath.Join("..", "..", "shared", "testdata", "globalsign-root-r3.der"))
	if err != nil {
		der, err = os.ReadFile("/work/shared/testdata/globalsign-root-r3.der")
	}
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent
		if err := tok.ImportCertificate(ctx, "globalsign-r3", cert); err != nil {
			t.Fatal(err)
		}
	}
	certs, err := tok.Certificates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 1 || certs[0].Label != "globalsign-r3" || !certs[0].Cert.Equal(cert) {
		t.Fatalf("Certificates = %+v", certs)
	}
	if id := sha256.Sum256(der); string(certs[0].ID) != string(id[:]) {
		t.Fatal("CKA_ID is not SHA-256 of the DER")
	}
}

func TestPINFilePermissions(t *testing.T) {
	tok := hsmtest.NewTokenWith(t, hsmtest.Options{NoVendorCA: true, Quiet: true})
	pin, err := os.ReadFile(tok.PINFile)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tests := []struct {
		name string
		mode os.FileMode
		want error
	}{
		{"0644 rejected", 0o644, hsm.ErrInsecurePINFile},
		{"0640 rejected", 0o640, hsm.ErrInsecurePINFile},
		{"0604 rejected", 0o604, hsm.ErrInsecurePINFile},
		{"0600 accepted", 0o600, nil},
		{"0400 accepted", 0o400, nil},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(dir, "pin"+string(rune('a'+i)))
			if err := os.WriteFile(f, pin, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(f, tc.mode); err != nil {
				t.Fatal(err)
			}
			cfg := tok.Config
			cfg.URI = strings.Replace(tok.URI, tok.PINFile, f, 1)
			got, err := hsm.Open(ctxT(t), cfg)
			if got != nil {
				got.Close()
			}
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Open = %v, want %v", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), strings.TrimSpace(string(pin))) {
				t.Fatal("error contains the PIN")
			}
		})
	}
}

func TestWrongPINIsNotRetried(t *testing.T) {
	tok := hsmtest.NewTokenWith(t, hsmtest.Options{NoVendorCA: true, Quiet: true})
	f := filepath.Join(t.TempDir(), "wrong.pin")
	if err := os.WriteFile(f, []byte("00000000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := tok.Config
	cfg.URI = strings.Replace(tok.URI, tok.PINFile, f, 1)
	// Login state is per application and token: while the fixture handle
	// is logged in, C_Login answers CKR_USER_ALREADY_LOGGED_IN without
	// checking the PIN. Close it so the wrong PIN reaches the token.
	tok.Close()
	var faults hsm.Faults
	bad, err := hsm.Open(ctxT(t), hsm.WithFaults(cfg, &faults))
	if bad != nil {
		bad.Close()
	}
	if !errors.Is(err, hsm.ErrPIN) || !errors.Is(err, pkcs11.Error(pkcs11.CKR_PIN_INCORRECT)) {
		t.Fatalf("Open = %v, want ErrPIN wrapping CKR_PIN_INCORRECT", err)
	}
	if strings.Contains(err.Error(), "00000000") {
		t.Fatal("error contains the PIN")
	}
	if n := faults.Logins.Load(); n != 1 {
		t.Fatalf("C_Login called %d times, want exactly 1", n)
	}
	// The right PIN still works: the failure did not lock the token.
	good, err := hsm.Open(ctxT(t), tok.Config)
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	if _, _, err := good.SignES256(ctxT(t), []byte("x")); err != nil {
		t.Fatal(err)
	}
}

func TestMissingPINSourceFails(t *testing.T) {
	tok := hsmtest.NewTokenWith(t, hsmtest.Options{NoVendorCA: true, Quiet: true})
	cfg := tok.Config
	cfg.URI = strings.Replace(tok.URI, "pin-source=file:"+tok.PINFile, "pin-source=env:HWFIDO_TEST_UNSET_PIN", 1)
	var faults hsm.Faults
	if _, err := hsm.Open(ctxT(t), hsm.WithFaults(cfg, &faults)); !errors.Is(err, hsm.ErrConfig) {
		t.Fatalf("Open = %v, want ErrConfig", err)
	}
	if faults.Logins.Load() != 0 {
		t.Fatal("logged in without a PIN")
	}
	t.Setenv("HWFIDO_TEST_PIN", readTrim(t, tok.PINFile))
	cfg.URI = strings.Replace(cfg.URI, "HWFIDO_TEST_UNSET_PIN", "HWFIDO_TEST_PIN", 1)
	tok2, err := hsm.Open(ctxT(t), cfg)
	if err != nil {
		t.Fatalf("env pin-source: %v", err)
	}
	tok2.Close()
}

func TestMissingKeysRefused(t *testing.T) {
	tok := hsmtest.NewTokenWith(t, hsmtest.Options{NoVendorCA: true, Quiet: true})
	cfg := tok.Config
	cfg.URI = strings.Replace(tok.URI, "?", ";id=%6E%6F%6E%65?", 1) // another CKA_ID namespace: no keys
	if _, err := hsm.Open(ctxT(t), cfg); !errors.Is(err, hsm.ErrNoKey) {
		t.Fatalf("Open = %v, want ErrNoKey", err)
	}
	cfg.URI = strings.Replace(tok.URI, "token="+tok.Label, "token=nope", 1)
	if _, err := hsm.Open(ctxT(t), cfg); !errors.Is(err, hsm.ErrTokenNotFound) {
		t.Fatalf("Open = %v, want ErrTokenNotFound", err)
	}
	// Selecting by serial works too.
	cfg.URI = strings.Replace(tok.URI, "token="+tok.Label, "serial="+tok.Info().Serial, 1)
	tok2, err := hsm.Open(ctxT(t), cfg)
	if err != nil {
		t.Fatalf("open by serial: %v", err)
	}
	tok2.Close()
}

func readTrim(t *testing.T, f string) string {
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
