package vendorca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"testing"
	"time"
)

func key(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestIssueAndCheck(t *testing.T) {
	ca, dev, other := key(t), key(t), key(t)
	root, err := NewRoot(ca, RootOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !root.IsCA || root.CheckSignatureFrom(root) != nil {
		t.Fatal("root is not a self-signed CA")
	}
	leaf, err := IssueLeaf(ca, root, LeafOptions{AAID: "4857#0001", PublicKey: &dev.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	// The extension value is DER OCTET STRING "4857#0001".
	var raw []byte
	for _, e := range leaf.Extensions {
		if e.Id.Equal(OIDAAID) {
			if e.Critical {
				t.Error("AAID extension is critical")
			}
			raw = e.Value
		}
	}
	var got []byte
	if _, err := asn1.Unmarshal(raw, &got); err != nil || string(got) != "4857#0001" {
		t.Fatalf("AAID extension %x: %q, %v", raw, got, err)
	}
	otherRoot, _ := NewRoot(other, RootOptions{})
	tests := []struct {
		name string
		opts CheckOptions
		want error
	}{
		{"ok", CheckOptions{AAID: "4857#0001", PublicKey: &dev.PublicKey, Root: root}, nil},
		{"aaid case-insensitive", CheckOptions{AAID: "4857#0001", PublicKey: &dev.PublicKey, Root: root}, nil},
		{"wrong key", CheckOptions{AAID: "4857#0001", PublicKey: &other.PublicKey, Root: root}, ErrMismatch},
		{"wrong aaid", CheckOptions{AAID: "4857#0002", PublicKey: &dev.PublicKey, Root: root}, ErrMismatch},
		{"wrong root", CheckOptions{AAID: "4857#0001", PublicKey: &dev.PublicKey, Root: otherRoot}, ErrMismatch},
		{"expired", CheckOptions{AAID: "4857#0001", PublicKey: &dev.PublicKey, Root: root, Now: time.Now().AddDate(30, 0, 0)}, ErrMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckLeaf(leaf, tc.opts)
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("CheckLeaf = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := IssueLeaf(other, root, LeafOptions{AAID: "4857#0001", PublicKey: &dev.PublicKey}); !errors.Is(err, ErrMismatch) {
		t.Errorf("IssueLeaf with a foreign signer: %v", err)
	}
	if _, err := IssueLeaf(ca, root, LeafOptions{AAID: "4857-0001", PublicKey: &dev.PublicKey}); !errors.Is(err, ErrInvalid) {
		t.Errorf("IssueLeaf with a bad AAID: %v", err)
	}
	certs, err := ParsePEM(EncodePEM(leaf, root))
	if err != nil || len(certs) != 2 || !certs[0].Equal(leaf) || !certs[1].Equal(root) {
		t.Fatalf("PEM round trip: %v", err)
	}
	pemb, _ := EncodePublicKeyPEM(&dev.PublicKey)
	pub, err := ParsePublicKeyPEM(pemb)
	if err != nil || !pub.Equal(&dev.PublicKey) {
		t.Fatalf("public key PEM round trip: %v", err)
	}
	_ = x509.ECDSAWithSHA256
}

// FuzzParsePEM checks that the PEM parsers never panic and return either
// certificates/keys or an error.
func FuzzParsePEM(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		certs, err := ParsePEM(b)
		if (err == nil) != (len(certs) > 0) {
			t.Fatalf("ParsePEM: %d certs, err %v", len(certs), err)
		}
		k, err := ParsePublicKeyPEM(b)
		if (err == nil) != (k != nil) {
			t.Fatalf("ParsePublicKeyPEM: key %v, err %v", k, err)
		}
	})
}
