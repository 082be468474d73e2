package tpm

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/fidoserver/hwfido/authenticatord/tpm/swtpmtest"
)

func TestECDHAndDeviceKey(t *testing.T) {
	tp := openSim(t, swtpmtest.Start(t, swtpmtest.Options{}))

	b, pub, err := tp.CreateDecryptionKey()
	if err != nil {
		t.Fatalf("CreateDecryptionKey: %v", err)
	}
	for range 3 {
		eph, err := ecdh.P256().GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		want, err := eph.ECDH(pub)
		if err != nil {
			t.Fatal(err)
		}
		got, err := tp.ECDH(b, eph.PublicKey())
		if err != nil {
			t.Fatalf("ECDH: %v", err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("TPM Z %x != software Z %x", got, want)
		}
	}
	x25519, _ := ecdh.X25519().GenerateKey(rand.Reader)
	if _, err := tp.ECDH(b, x25519.PublicKey()); !errors.Is(err, ErrNotP256) {
		t.Fatalf("X25519 peer: %v", err)
	}

	sb, spub, err := tp.CreateDeviceKey()
	if err != nil {
		t.Fatalf("CreateDeviceKey: %v", err)
	}
	d := digest("jws signing input")
	raw, err := tp.SignDevice(sb, d)
	if err != nil {
		t.Fatalf("SignDevice: %v", err)
	}
	verifyRaw(t, spub, d, raw)
	// A PIN-gated key is not an attestation key (it would cost a DA try per use).
	pk, err := tp.CreateKey(pin1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tp.AttestationSign(pk, d); !errors.Is(err, ErrInvalidBlob) {
		t.Fatalf("AttestationSign with a PIN-gated key: %v", err)
	}
	// The decryption key cannot sign, the signing key cannot do ECDH.
	if _, err := tp.SignDevice(b, d); err == nil {
		t.Fatal("decryption key signed")
	}
	eph, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ep, _ := eph.PublicKey.ECDH()
	if _, err := tp.ECDH(sb, ep); err == nil {
		t.Fatal("signing key did ECDH")
	}
	// A PIN-gated UAF key is not a device key.
	ub, err := tp.CreateKey(pin1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tp.SignDevice(ub, d); !errors.Is(err, ErrInvalidBlob) {
		t.Fatalf("SignDevice with UAF key: %v", err)
	}
}

// TestECDHOutputEncrypted: the shared point TPM2_ECDH_ZGen returns crosses the bus
// encrypted (a response-encrypting session): a bus sniffer who saw it could decrypt the
// out-of-band payloads.
func TestECDHOutputEncrypted(t *testing.T) {
	tp := openSim(t, swtpmtest.Start(t, swtpmtest.Options{}))
	sp := &spy{TPMCloser: tp.tpm}
	tp.tpm = sp
	b, _, err := tp.CreateDecryptionKey()
	if err != nil {
		t.Fatal(err)
	}
	eph, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sp.mu.Lock()
	sp.rsps = nil
	sp.mu.Unlock()
	z, err := tp.ECDH(b, eph.PublicKey())
	if err != nil || len(z) != 32 {
		t.Fatalf("ECDH: %x %v", z, err)
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if len(sp.rsps) == 0 {
		t.Fatal("no TPM response recorded")
	}
	for _, r := range sp.rsps {
		if bytes.Contains(r, z) {
			t.Fatalf("the shared secret is in clear in a TPM response: %x", r)
		}
	}
}
