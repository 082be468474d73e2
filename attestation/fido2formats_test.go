package attestation_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/protocol/webauthncbor"

	"github.com/fidoserver/hwfido/attestation"
)

// pki is a generated root → intermediate chain that issues attestation leaves.
type pki struct {
	root, inter       *x509.Certificate
	rootKey, interKey *ecdsa.PrivateKey
}

var serial int64

func mustKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func issue(t testing.TB, tmpl *x509.Certificate, pub crypto.PublicKey, parent *x509.Certificate, parentKey crypto.Signer) *x509.Certificate {
	t.Helper()
	serial++
	tmpl.SerialNumber = big.NewInt(serial)
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newPKI(t testing.TB, name string) *pki {
	t.Helper()
	p := &pki{rootKey: mustKey(t), interKey: mustKey(t)}
	ca := func(cn string) *x509.Certificate {
		return &x509.Certificate{Subject: pkix.Name{CommonName: cn}, IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign}
	}
	p.root = issue(t, ca(name+" Root"), &p.rootKey.PublicKey, nil, p.rootKey)
	p.inter = issue(t, ca(name+" Intermediate"), &p.interKey.PublicKey, p.root, p.rootKey)
	return p
}

// leaf issues an attestation certificate for pub carrying exts.
func (p *pki) leaf(t testing.TB, pub crypto.PublicKey, exts ...pkix.Extension) *x509.Certificate {
	t.Helper()
	return issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "Attestation"}, ExtraExtensions: exts,
		KeyUsage: x509.KeyUsageDigitalSignature}, pub, p.inter, p.interKey)
}

func explicit(t testing.TB, tag int, inner any, params string) asn1.RawValue {
	t.Helper()
	b, err := asn1.MarshalWithParams(inner, params)
	if err != nil {
		t.Fatal(err)
	}
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tag, IsCompound: true, Bytes: b}
}

func authList(t testing.TB, entries ...asn1.RawValue) asn1.RawValue {
	t.Helper()
	var body []byte
	for _, e := range entries {
		b, err := asn1.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		body = append(body, b...)
	}
	return asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: body}
}

// keyDescription encodes an Android KeyDescription (attestation version 3).
func keyDescription(t testing.TB, challenge []byte, sw, tee asn1.RawValue) []byte {
	t.Helper()
	b, err := asn1.Marshal(struct {
		AttestationVersion       int
		AttestationSecurityLevel asn1.Enumerated
		KeymasterVersion         int
		KeymasterSecurityLevel   asn1.Enumerated
		AttestationChallenge     []byte
		UniqueID                 []byte
		SoftwareEnforced         asn1.RawValue
		TeeEnforced              asn1.RawValue
	}{3, 1, 4, 1, challenge, []byte{}, sw, tee})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// credential is an authenticator key with the attested credential data built for it.
type credential struct {
	key      *ecdsa.PrivateKey
	authData []byte
	cdj      []byte
	cdh      []byte
}

func newCredential(t testing.TB, aaguid [16]byte) *credential {
	t.Helper()
	c := &credential{key: mustKey(t), cdj: []byte(`{"type":"webauthn.create","challenge":"AAAAAAAAAAAAAAAAAAAAAA","origin":"https://example.org"}`)}
	h := sha256.Sum256(c.cdj)
	c.cdh = h[:]
	pub, _ := c.key.PublicKey.Bytes()
	cose, err := webauthncbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: pub[1:33], -3: pub[33:]})
	if err != nil {
		t.Fatal(err)
	}
	rp := sha256.Sum256([]byte("example.org"))
	ad := append(rp[:], 0x45)
	ad = binary.BigEndian.AppendUint32(ad, 0)
	ad = append(ad, aaguid[:]...)
	id := []byte("credential-id-0123456789")
	ad = binary.BigEndian.AppendUint16(ad, uint16(len(id)))
	ad = append(append(ad, id...), cose...)
	c.authData = ad
	return c
}

func (c *credential) sign(t testing.TB, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	d := sha256.Sum256(slices.Concat(c.authData, c.cdh))
	sig, err := ecdsa.SignASN1(rand.Reader, key, d[:])
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// verify runs the attestation object through go-webauthn's parser and its format
// registry, where RegisterFIDO2Formats installed our verifiers.
func (c *credential) verify(t testing.TB, format string, stmt map[string]any) (*protocol.AttestationObject, error) {
	t.Helper()
	attestation.RegisterFIDO2Formats()
	obj, err := webauthncbor.Marshal(map[string]any{"fmt": format, "attStmt": stmt, "authData": c.authData})
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := (&protocol.AuthenticatorAttestationResponse{
		AuthenticatorResponse: protocol.AuthenticatorResponse{ClientDataJSON: c.cdj}, AttestationObject: obj,
	}).Parse()
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	att := &parsed.AttestationObject
	return att, att.VerifyAttestation(c.cdh, nil, protocol.AttestationPolicy{}, protocol.SignaturePolicy{})
}

func x5c(certs ...*x509.Certificate) []any {
	out := make([]any, len(certs))
	for i, c := range certs {
		out[i] = c.Raw
	}
	return out
}

func details(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe.Details + " " + pe.DevInfo
	}
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestAndroidKeyStatement(t *testing.T) {
	p := newPKI(t, "Fake Android Keystore Software Attestation")
	aaguid := [16]byte{0xb9, 0x3f, 0xd9, 0x61}
	goodTee := func(t testing.TB) asn1.RawValue {
		return authList(t, explicit(t, 1, []int{2}, "set"), explicit(t, 2, 3, ""), explicit(t, 702, 0, ""))
	}
	empty := func(t testing.TB) asn1.RawValue { return authList(t) }
	ext := func(der []byte) pkix.Extension {
		return pkix.Extension{Id: attestation.OIDAndroidKeyDescription, Value: der}
	}
	for _, tc := range []struct {
		name string
		// build returns the statement for credential c.
		build func(t *testing.T, c *credential) map[string]any
		want  string // substring of the refusal; "" accepts
	}{
		{"ok", func(t *testing.T, c *credential) map[string]any {
			leaf := p.leaf(t, &c.key.PublicKey, ext(keyDescription(t, c.cdh, empty(t), goodTee(t))))
			return map[string]any{"alg": int64(-7), "sig": c.sign(t, c.key), "x5c": x5c(leaf, p.inter)}
		}, ""},
		{"union of software and tee lists", func(t *testing.T, c *credential) map[string]any {
			sw := authList(t, explicit(t, 1, []int{2, 3}, "set"), explicit(t, 702, 0, ""))
			leaf := p.leaf(t, &c.key.PublicKey, ext(keyDescription(t, c.cdh, sw, empty(t))))
			return map[string]any{"alg": int64(-7), "sig": c.sign(t, c.key), "x5c": x5c(leaf, p.inter)}
		}, ""},
		{"challenge is not clientDataHash", func(t *testing.T, c *credential) map[string]any {
			leaf := p.leaf(t, &c.key.PublicKey, ext(keyDescription(t, []byte("other"), empty(t), goodTee(t))))
			return map[string]any{"alg": int64(-7), "sig": c.sign(t, c.key), "x5c": x5c(leaf, p.inter)}
		}, "attestationChallenge"},
		{"allApplications", func(t *testing.T, c *credential) map[string]any {
			sw := authList(t, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 600, IsCompound: true, Bytes: []byte{5, 0}})
			leaf := p.leaf(t, &c.key.PublicKey, ext(keyDescription(t, c.cdh, sw, goodTee(t))))
			return map[string]any{"alg": int64(-7), "sig": c.sign(t, c.key), "x5c": x5c(leaf, p.inter)}
		}, "allApplications"},
		{"imported key", func(t *testing.T, c *credential) map[string]any {
			tee := authList(t, explicit(t, 1, []int{2}, "set"), explicit(t, 702, 2, ""))
			leaf := p.leaf(t, &c.key.PublicKey, ext(keyDescription(t, c.cdh, empty(t), tee)))
			return map[string]any{"alg": int64(-7), "sig": c.sign(t, c.key), "x5c": x5c(leaf, p.inter)}
		}, "KM_ORIGIN_GENERATED"},
		{"no sign purpose", func(t *testing.T, c *credential) map[string]any {
			tee := authList(t, explicit(t, 1, []int{3}, "set"), explicit(t, 702, 0, ""))
			leaf := p.leaf(t, &c.key.PublicKey, ext(keyDescription(t, c.cdh, empty(t), tee)))
			return map[string]any{"alg": int64(-7), "sig": c.sign(t, c.key), "x5c": x5c(leaf, p.inter)}
		}, "KM_PURPOSE_SIGN"},
		{"certificate key is not the credential key", func(t *testing.T, c *credential) map[string]any {
			other := mustKey(t)
			leaf := p.leaf(t, &other.PublicKey, ext(keyDescription(t, c.cdh, empty(t), goodTee(t))))
			return map[string]any{"alg": int64(-7), "sig": c.sign(t, other), "x5c": x5c(leaf, p.inter)}
		}, "does not match"},
		{"bad signature", func(t *testing.T, c *credential) map[string]any {
			leaf := p.leaf(t, &c.key.PublicKey, ext(keyDescription(t, c.cdh, empty(t), goodTee(t))))
			return map[string]any{"alg": int64(-7), "sig": c.sign(t, mustKey(t)), "x5c": x5c(leaf, p.inter)}
		}, "sig does not verify"},
		{"wrong certificate order", func(t *testing.T, c *credential) map[string]any {
			leaf := p.leaf(t, &c.key.PublicKey, ext(keyDescription(t, c.cdh, empty(t), goodTee(t))))
			return map[string]any{"alg": int64(-7), "sig": c.sign(t, c.key), "x5c": x5c(p.inter, leaf)}
		}, "wrong order"},
		{"no key description", func(t *testing.T, c *credential) map[string]any {
			leaf := p.leaf(t, &c.key.PublicKey)
			return map[string]any{"alg": int64(-7), "sig": c.sign(t, c.key), "x5c": x5c(leaf, p.inter)}
		}, "1.3.6.1.4.1.11129.2.1.17"},
		{"malformed key description", func(t *testing.T, c *credential) map[string]any {
			leaf := p.leaf(t, &c.key.PublicKey, ext([]byte{0x30, 0x03, 0x02, 0x01, 0x03}))
			return map[string]any{"alg": int64(-7), "sig": c.sign(t, c.key), "x5c": x5c(leaf, p.inter)}
		}, "malformed"},
		{"alg missing", func(t *testing.T, c *credential) map[string]any {
			leaf := p.leaf(t, &c.key.PublicKey, ext(keyDescription(t, c.cdh, empty(t), goodTee(t))))
			return map[string]any{"sig": c.sign(t, c.key), "x5c": x5c(leaf, p.inter)}
		}, "alg is missing"},
		{"x5c empty", func(t *testing.T, c *credential) map[string]any {
			return map[string]any{"alg": int64(-7), "sig": c.sign(t, c.key), "x5c": []any{}}
		}, "x5c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCredential(t, aaguid)
			att, err := c.verify(t, "android-key", tc.build(t, c))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %s", details(err))
				}
				if att.Type != "basic_full" {
					t.Fatalf("type %q", att.Type)
				}
				// Trust comes from our metadata roots, not from roots compiled into go-webauthn.
				anchors := trustOnly(aaguid, "basic_full", p.root)
				ev := evidence(att, aaguid)
				if err := attestation.VerifyFIDO2Trust(context.Background(), anchors, ev); err != nil {
					t.Fatalf("trust with our root: %v", err)
				}
				other := newPKI(t, "Other")
				err := attestation.VerifyFIDO2Trust(context.Background(), trustOnly(aaguid, "basic_full", other.root), ev)
				if !errors.Is(err, &attestation.FIDO2TrustError{Reason: attestation.FIDO2ChainInvalid}) {
					t.Fatalf("trust with another root: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(details(err), tc.want) {
				t.Fatalf("want refusal containing %q, got %v (%s)", tc.want, err, details(err))
			}
		})
	}
}

func appleNonceExt(t testing.TB, nonce []byte) pkix.Extension {
	t.Helper()
	b, err := asn1.Marshal(struct {
		Nonce []byte `asn1:"tag:1,explicit"`
	}{nonce})
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: attestation.OIDAppleNonce, Value: b}
}

func TestAppleStatement(t *testing.T) {
	p := newPKI(t, "Fake Apple WebAuthn")
	nonceOf := func(c *credential) []byte {
		h := sha256.Sum256(slices.Concat(c.authData, c.cdh))
		return h[:]
	}
	for _, tc := range []struct {
		name  string
		build func(t *testing.T, c *credential) map[string]any
		want  string
	}{
		{"ok", func(t *testing.T, c *credential) map[string]any {
			return map[string]any{"x5c": x5c(p.leaf(t, &c.key.PublicKey, appleNonceExt(t, nonceOf(c))), p.inter)}
		}, ""},
		{"nonce of other data", func(t *testing.T, c *credential) map[string]any {
			n := nonceOf(c)
			n[0] ^= 1
			return map[string]any{"x5c": x5c(p.leaf(t, &c.key.PublicKey, appleNonceExt(t, n)), p.inter)}
		}, "nonce extension does not match"},
		{"certificate key is not the credential key", func(t *testing.T, c *credential) map[string]any {
			return map[string]any{"x5c": x5c(p.leaf(t, &mustKey(t).PublicKey, appleNonceExt(t, nonceOf(c))), p.inter)}
		}, "does not match the attestation certificate"},
		{"no nonce extension", func(t *testing.T, c *credential) map[string]any {
			return map[string]any{"x5c": x5c(p.leaf(t, &c.key.PublicKey), p.inter)}
		}, "1.2.840.113635.100.8.2"},
		{"malformed nonce extension", func(t *testing.T, c *credential) map[string]any {
			bad := pkix.Extension{Id: attestation.OIDAppleNonce, Value: []byte{0x04, 0x01, 0x00}}
			return map[string]any{"x5c": x5c(p.leaf(t, &c.key.PublicKey, bad), p.inter)}
		}, "malformed"},
		{"wrong certificate order", func(t *testing.T, c *credential) map[string]any {
			return map[string]any{"x5c": x5c(p.inter, p.leaf(t, &c.key.PublicKey, appleNonceExt(t, nonceOf(c))))}
		}, "wrong order"},
		{"x5c missing", func(t *testing.T, c *credential) map[string]any { return map[string]any{} }, "x5c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCredential(t, [16]byte{})
			att, err := c.verify(t, "apple", tc.build(t, c))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %s", details(err))
				}
				if att.Type != "anonca" {
					t.Fatalf("type %q", att.Type)
				}
				// Apple reports a zero AAGUID: trust comes from the format's configured roots.
				anchors := attestation.NewMetadataAnchors(emptySource{}, attestation.MetadataAnchorsOptions{
					FormatRoots: map[string][]*x509.Certificate{"apple": {p.root}}})
				ev := evidence(att, [16]byte{})
				if err := attestation.VerifyFIDO2Trust(context.Background(), anchors, ev); err != nil {
					t.Fatalf("trust with the apple root: %v", err)
				}
				none := attestation.NewMetadataAnchors(emptySource{}, attestation.MetadataAnchorsOptions{})
				if err := attestation.VerifyFIDO2Trust(context.Background(), none, ev); !errors.Is(err,
					&attestation.FIDO2TrustError{Reason: attestation.FIDO2NoMetadata}) {
					t.Fatalf("trust without apple root: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(details(err), tc.want) {
				t.Fatalf("want refusal containing %q, got %v (%s)", tc.want, err, details(err))
			}
		})
	}
}

func TestParseAndroidKeyDescription(t *testing.T) {
	sw := authList(t, explicit(t, 1, []int{2, 7}, "set"), explicit(t, 3, 256, ""),
		asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 600, IsCompound: true, Bytes: []byte{5, 0}},
		explicit(t, 702, 0, ""), explicit(t, 709, []byte("app"), ""))
	kd, err := attestation.ParseAndroidKeyDescription(keyDescription(t, []byte("chal"), sw, authList(t)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(kd.AttestationChallenge, []byte("chal")) || kd.AttestationVersion != 3 ||
		!slices.Equal(kd.SoftwareEnforced.Purpose, []int{2, 7}) || !kd.SoftwareEnforced.AllApplications ||
		kd.SoftwareEnforced.Origin == nil || *kd.SoftwareEnforced.Origin != 0 || kd.TeeEnforced.Origin != nil {
		t.Fatalf("parsed %+v", kd)
	}
	for name, der := range map[string][]byte{
		"empty":          nil,
		"not a sequence": {0x04, 0x00},
		"trailing":       append(keyDescription(t, nil, authList(t), authList(t)), 0),
		"repeated tag":   keyDescription(t, nil, authList(t, explicit(t, 702, 0, ""), explicit(t, 702, 1, "")), authList(t)),
		"implicit entry": keyDescription(t, nil, authList(t, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 702, Bytes: []byte{0}}), authList(t)),
		"origin not int": keyDescription(t, nil, authList(t, explicit(t, 702, "x", "")), authList(t)),
	} {
		if _, err := attestation.ParseAndroidKeyDescription(der); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestAppleNonce(t *testing.T) {
	ext := appleNonceExt(t, []byte("0123"))
	if n, err := attestation.AppleNonce(ext.Value); err != nil || string(n) != "0123" {
		t.Fatalf("%q %v", n, err)
	}
	for _, der := range [][]byte{nil, {0x04, 0x00}, append(append([]byte{}, ext.Value...), 0)} {
		if _, err := attestation.AppleNonce(der); err == nil {
			t.Errorf("%x accepted", der)
		}
	}
}

// FuzzParseAndroidKeyDescription: no panic; a success has lists whose purposes came
// from the input.
func FuzzParseAndroidKeyDescription(f *testing.F) {
	f.Add(keyDescription(f, []byte("c"), authList(f, explicit(f, 1, []int{2}, "set"), explicit(f, 702, 0, "")), authList(f)))
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		kd, err := attestation.ParseAndroidKeyDescription(der)
		if (err == nil) == (kd == nil) {
			t.Fatalf("result %v with error %v", kd, err)
		}
		if kd != nil && len(kd.AttestationChallenge) > len(der) {
			t.Fatal("challenge longer than the input")
		}
	})
}

// FuzzAppleNonce: no panic; a nonce is never longer than the input.
func FuzzAppleNonce(f *testing.F) {
	f.Add(appleNonceExt(f, make([]byte, 32)).Value)
	f.Fuzz(func(t *testing.T, der []byte) {
		n, err := attestation.AppleNonce(der)
		if err == nil && len(n) > len(der) {
			t.Fatal("nonce longer than the input")
		}
	})
}

// trustOnly returns anchors with one AAGUID statement.
func trustOnly(aaguid [16]byte, typ string, roots ...*x509.Certificate) attestation.FIDO2Anchors {
	return staticAnchors{aaguid: aaguid, anchor: &attestation.FIDO2Anchor{Roots: roots, AttestationTypes: []string{typ}}}
}

type staticAnchors struct {
	aaguid [16]byte
	anchor *attestation.FIDO2Anchor
}

func (s staticAnchors) FIDO2AnchorByAAGUID(_ context.Context, a [16]byte) (*attestation.FIDO2Anchor, error) {
	if a == s.aaguid {
		return s.anchor, nil
	}
	return nil, nil
}

func (s staticAnchors) FIDO2AnchorByKeyIdentifier(context.Context, string) (*attestation.FIDO2Anchor, error) {
	return nil, nil
}

func evidence(att *protocol.AttestationObject, aaguid [16]byte) attestation.FIDO2Evidence {
	ev := attestation.FIDO2Evidence{Format: att.Format, Type: att.Type, AAGUID: aaguid}
	if alg, ok := att.AttStatement["alg"].(int64); ok {
		ev.Alg = alg
	}
	if list, ok := att.AttStatement["x5c"].([]any); ok {
		for _, c := range list {
			ev.X5C = append(ev.X5C, c.([]byte))
		}
	}
	return ev
}
