package fido2_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/attestation"
	"github.com/fidoserver/hwfido/server/fido2"
	"github.com/fidoserver/hwfido/server/fido2/internal/softauthn"
)

// leafFor issues an attestation leaf for key under issuer with extra extensions.
func leafFor(t *testing.T, key crypto.PublicKey, issuer *testCert, exts ...pkix.Extension) []byte {
	t.Helper()
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "Android Keystore Key"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtraExtensions: exts}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer.cert, key, issuer.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// androidKeyDescription encodes a KeyDescription with a TEE list of purpose {SIGN} and
// the given origin.
func androidKeyDescription(t *testing.T, challenge []byte, origin int) []byte {
	t.Helper()
	tag := func(n int, v any, params string) []byte {
		inner, err := asn1.MarshalWithParams(v, params)
		if err != nil {
			t.Fatal(err)
		}
		b, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: n, IsCompound: true, Bytes: inner})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tee := asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true,
		Bytes: slices.Concat(tag(1, []int{2}, "set"), tag(702, origin, ""))}
	sw := asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true}
	b, err := asn1.Marshal(struct {
		V1  int
		S1  asn1.Enumerated
		V2  int
		S2  asn1.Enumerated
		Ch  []byte
		UID []byte
		SW  asn1.RawValue
		TEE asn1.RawValue
	}{3, 1, 4, 1, challenge, []byte{}, sw, tee})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAndroidKeyAndAppleTrust registers android-key and apple credentials whose chains
// end at fake roots (like the FIDO conformance tool's): go-webauthn's own verifiers only
// know Google's and Apple's real roots, ours decide with the metadata roots.
func TestAndroidKeyAndAppleTrust(t *testing.T) {
	year := time.Now().Add(365 * 24 * time.Hour)
	root := newCert(t, "FAKE Android Keystore Software Attestation Root", nil, true, nil, year)
	inter := newCert(t, "FAKE Android Keystore Intermediate", root, true, nil, year)
	other := newCert(t, "Other Root", nil, true, nil, year)
	appleRoot := newCert(t, "FAKE Apple WebAuthn Root CA", nil, true, nil, year)
	appleInter := newCert(t, "FAKE Apple WebAuthn CA 1", appleRoot, true, nil, year)
	android := func(origin int, tamper bool) softauthn.Attestation {
		return softauthn.Attestation{Format: "android-key", AAGUID: testAAGUID,
			X5CFor: func(key crypto.PublicKey, _, cdh []byte) ([][]byte, error) {
				ch := slices.Clone(cdh)
				if tamper {
					ch[0] ^= 1
				}
				ext := pkix.Extension{Id: attestation.OIDAndroidKeyDescription, Value: androidKeyDescription(t, ch, origin)}
				return [][]byte{leafFor(t, key, inter, ext), inter.cert.Raw}, nil
			}}
	}
	apple := func(tamper bool) softauthn.Attestation {
		return softauthn.Attestation{Format: "apple",
			X5CFor: func(key crypto.PublicKey, ad, cdh []byte) ([][]byte, error) {
				n := sha256.Sum256(slices.Concat(ad, cdh))
				if tamper {
					n[1] ^= 1
				}
				v, err := asn1.Marshal(struct {
					N []byte `asn1:"tag:1,explicit"`
				}{n[:]})
				if err != nil {
					return nil, err
				}
				ext := pkix.Extension{Id: attestation.OIDAppleNonce, Value: v}
				return [][]byte{leafFor(t, key, appleInter, ext), appleInter.cert.Raw}, nil
			}}
	}
	for _, tc := range []struct {
		name    string
		att     softauthn.Attestation
		trust   func(*memTrust)
		wantErr string
		trusted string
	}{
		{"android-key-fake-root", android(0, false), func(m *memTrust) { m.addAAGUID(testAAGUID, []string{"basic_full"}, root.cert) }, "", "trusted"},
		{"android-key-other-root", android(0, false), func(m *memTrust) { m.addAAGUID(testAAGUID, []string{"basic_full"}, other.cert) },
			"does not verify to the metadata roots", ""},
		{"android-key-bad-challenge", android(0, true), func(m *memTrust) { m.addAAGUID(testAAGUID, []string{"basic_full"}, root.cert) },
			"attestationChallenge", ""},
		{"android-key-imported", android(2, false), func(m *memTrust) { m.addAAGUID(testAAGUID, []string{"basic_full"}, root.cert) },
			"KM_ORIGIN_GENERATED", ""},
		{"apple-format-root", apple(false), func(m *memTrust) { m.addFormat("apple", appleRoot.cert) }, "", "trusted"},
		{"apple-no-root", apple(false), func(*memTrust) {}, "no metadata", ""},
		{"apple-bad-nonce", apple(true), func(m *memTrust) { m.addFormat("apple", appleRoot.cert) }, "nonce", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *fido2.Config) { c.AttestationPolicy = fido2.AttestationEnforce })
			tc.trust(e.trust)
			o := beginReg(t, e, "droid", map[string]any{"attestation": "direct"})
			c, err := softauthn.NewCredential(softauthn.ES256)
			if err != nil {
				t.Fatal(err)
			}
			body, err := softauthn.Create(c, tc.att, request(t, e, o, softauthn.FlagUP|softauthn.FlagUV))
			if err != nil {
				t.Fatal(err)
			}
			code, res := e.post("/attestation/result", body, nil)
			if tc.wantErr == "" {
				if code != 200 || res["attestationTrust"] != tc.trusted {
					t.Fatalf("%d %v", code, res)
				}
				return
			}
			if code != 400 || !strings.Contains(res["errorMessage"].(string), tc.wantErr) {
				t.Fatalf("want 400 containing %q, got %d %v", tc.wantErr, code, res)
			}
			if snapshot(t, e, "droid") != "" {
				t.Fatal("refused registration stored something")
			}
		})
	}
}

// TestSafetyNetTrust registers android-safetynet credentials whose response is signed
// by a certificate for attest.android.com under a fake root: go-webauthn's own verifier
// only knows Google's roots; ours checks the response and decides trust with the
// metadata roots.
func TestSafetyNetTrust(t *testing.T) {
	year := time.Now().Add(365 * 24 * time.Hour)
	root := newCert(t, "FAKE SafetyNet Root", nil, true, nil, year)
	inter := newCert(t, "FAKE SafetyNet CA", root, true, nil, year)
	other := newCert(t, "Other Root", nil, true, nil, year)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(host string) []byte {
		serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
		tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: year}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, inter.cert, key.Public(), inter.key)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	good, wrongHost := leaf(attestation.SafetyNetHostname), leaf("attest.example.com")
	sn := func(leafDER []byte, mutate func(map[string]any)) softauthn.Attestation {
		return softauthn.Attestation{Format: "android-safetynet", AAGUID: testAAGUID, Key: key,
			X5C: [][]byte{leafDER, inter.cert.Raw}, SafetyNet: mutate}
	}
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signedByOther := sn(good, nil)
	signedByOther.Key = otherKey
	misordered := sn(good, nil)
	misordered.X5C = [][]byte{inter.cert.Raw, good}
	es256 := sn(good, nil)
	es256.SafetyNetHeader = func(h map[string]any) { h["alg"] = "ES256" }
	noneAlg := sn(good, nil)
	noneAlg.SafetyNetHeader = func(h map[string]any) { h["alg"] = "none" }
	byRoot := func(r *testCert) func(*memTrust) {
		return func(m *memTrust) { m.addAAGUID(testAAGUID, []string{"basic_full"}, r.cert) }
	}
	for _, tc := range []struct {
		name    string
		att     softauthn.Attestation
		trust   func(*memTrust)
		wantErr string
	}{
		{"fake-root", sn(good, nil), byRoot(root), ""},
		{"other-root", sn(good, nil), byRoot(other), "does not verify to the metadata roots"},
		{"no-metadata", sn(good, nil), func(*memTrust) {}, "no metadata"},
		{"wrong-hostname", sn(wrongHost, nil), byRoot(root), "attest.android.com"},
		{"bad-nonce", sn(good, func(p map[string]any) { p["nonce"] = "AAAA" }), byRoot(root), "nonce"},
		{"cts-profile-mismatch", sn(good, func(p map[string]any) { p["ctsProfileMatch"] = false }), byRoot(root), "ctsProfileMatch"},
		{"stale", sn(good, func(p map[string]any) { p["timestampMs"] = time.Now().Add(-2 * time.Minute).UnixMilli() }),
			byRoot(root), "timestampMs"},
		{"future", sn(good, func(p map[string]any) { p["timestampMs"] = time.Now().Add(time.Minute).UnixMilli() }),
			byRoot(root), "timestampMs"},
		{"clock-skew-tolerated", sn(good, func(p map[string]any) { p["timestampMs"] = time.Now().Add(3 * time.Second).UnixMilli() }),
			byRoot(root), ""},
		{"signed-by-another-key", signedByOther, byRoot(root), "does not verify"},
		{"chain-misordered", misordered, byRoot(root), "x5c[0] is not signed by x5c[1]"},
		{"alg-ES256", es256, byRoot(root), "not RS256"},
		{"alg-none", noneAlg, byRoot(root), "not RS256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *fido2.Config) { c.AttestationPolicy = fido2.AttestationEnforce })
			tc.trust(e.trust)
			o := beginReg(t, e, "droid", map[string]any{"attestation": "direct"})
			c, err := softauthn.NewCredential(softauthn.ES256)
			if err != nil {
				t.Fatal(err)
			}
			body, err := softauthn.Create(c, tc.att, request(t, e, o, softauthn.FlagUP|softauthn.FlagUV))
			if err != nil {
				t.Fatal(err)
			}
			code, res := e.post("/attestation/result", body, nil)
			if tc.wantErr == "" {
				if code != 200 || res["attestationTrust"] != "trusted" {
					t.Fatalf("%d %v", code, res)
				}
				return
			}
			if code != 400 || !strings.Contains(res["errorMessage"].(string), tc.wantErr) {
				t.Fatalf("want 400 containing %q, got %d %v", tc.wantErr, code, res)
			}
			if snapshot(t, e, "droid") != "" {
				t.Fatal("refused registration stored something")
			}
		})
	}
}
