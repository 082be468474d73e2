package attestation

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/uaf"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

type ca struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func issue(t *testing.T, tmpl *x509.Certificate, parent *ca, pub crypto.PublicKey, self crypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	p, pk := tmpl, self
	if parent != nil {
		p, pk = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p, pub, pk)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newCA(t *testing.T, name string, parent *ca) *ca {
	k := newKey(t)
	c := issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: name}, NotBefore: t0.Add(-time.Hour),
		NotAfter: t0.Add(365 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}, parent, k.Public(), k)
	return &ca{c, k}
}

func aaidExt(t *testing.T, aaid string, critical bool) pkix.Extension {
	v, err := asn1.Marshal([]byte(aaid))
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: OIDFIDOGenCeAAID, Critical: critical, Value: v}
}

type leafOpts struct {
	ext      []pkix.Extension
	notAfter time.Time
}

func newLeaf(t *testing.T, issuer *ca, key *ecdsa.PrivateKey, o leafOpts) *x509.Certificate {
	if o.notAfter.IsZero() {
		o.notAfter = t0.Add(24 * time.Hour)
	}
	return issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "attestation"}, NotBefore: t0.Add(-time.Hour),
		NotAfter: o.notAfter, ExtraExtensions: o.ext}, issuer, key.Public(), nil)
}

// regAssertion builds a parsed registration assertion signed by signer.
func regAssertion(t *testing.T, typ uaf.AttestationType, uauth, signer *ecdsa.PrivateKey, certs ...*x509.Certificate) *uaf.RegAssertion {
	t.Helper()
	pub, err := uaf.EncodePublicKey(uaf.KeyECCX962Raw, uauth.Public())
	if err != nil {
		t.Fatal(err)
	}
	k := uaf.KeyRegistrationData{AAID: "FFFF#AB01", AuthenticatorVersion: 1, AuthenticationMode: 1,
		SignAlg: uaf.AlgSECP256R1ECDSASHA256Raw, PubKeyEncoding: uaf.KeyECCX962Raw,
		FinalChallengeHash: make([]byte, 32), KeyID: make([]byte, 32), PubKey: pub}
	krd, err := k.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := uaf.Sign(rand.Reader, signer, k.SignAlg, krd)
	if err != nil {
		t.Fatal(err)
	}
	var ders [][]byte
	for _, c := range certs {
		ders = append(ders, c.Raw)
	}
	b, err := uaf.AssembleRegAssertion(krd, typ, sig, ders)
	if err != nil {
		t.Fatal(err)
	}
	a, err := uaf.ParseRegAssertion(b)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestVerifyUAFFull(t *testing.T) {
	root := newCA(t, "root", nil)
	inter := newCA(t, "intermediate", root)
	other := newCA(t, "other root", nil)
	attKey, uauth := newKey(t), newKey(t)
	good := newLeaf(t, inter, attKey, leafOpts{ext: []pkix.Extension{aaidExt(t, "ffff#ab01", false)}})
	critical := newLeaf(t, inter, attKey, leafOpts{ext: []pkix.Extension{aaidExt(t, "FFFF#AB01", true)}})
	noExt := newLeaf(t, root, attKey, leafOpts{})
	wrongAAID := newLeaf(t, inter, attKey, leafOpts{ext: []pkix.Extension{aaidExt(t, "FFFF#AB02", false)}})
	notOctet := newLeaf(t, inter, attKey, leafOpts{ext: []pkix.Extension{{Id: OIDFIDOGenCeAAID, Value: []byte{0x0C, 0x01, 0x41}}}})
	shortLived := newLeaf(t, inter, attKey, leafOpts{notAfter: t0.Add(time.Minute)})
	roots := []*x509.Certificate{root.cert}

	tests := []struct {
		name string
		a    *uaf.RegAssertion
		opts UAFOptions
		want error
		ext  bool
	}{
		{"chain via intermediate", regAssertion(t, uaf.AttestationBasicFull, uauth, attKey, good, inter.cert), UAFOptions{Roots: roots, CurrentTime: t0}, nil, true},
		{"critical aaid extension", regAssertion(t, uaf.AttestationBasicFull, uauth, attKey, critical, inter.cert), UAFOptions{Roots: roots, CurrentTime: t0}, nil, true},
		{"leaf directly under root, no extension", regAssertion(t, uaf.AttestationBasicFull, uauth, attKey, noExt), UAFOptions{Roots: roots, CurrentTime: t0}, nil, false},
		{"intermediate as anchor", regAssertion(t, uaf.AttestationBasicFull, uauth, attKey, good), UAFOptions{Roots: []*x509.Certificate{inter.cert}, CurrentTime: t0}, nil, true},
		{"leaf as anchor", regAssertion(t, uaf.AttestationBasicFull, uauth, attKey, good), UAFOptions{Roots: []*x509.Certificate{good}, CurrentTime: t0}, nil, true},
		{"missing intermediate", regAssertion(t, uaf.AttestationBasicFull, uauth, attKey, good), UAFOptions{Roots: roots, CurrentTime: t0}, ErrChain, false},
		{"wrong root", regAssertion(t, uaf.AttestationBasicFull, uauth, attKey, good, inter.cert), UAFOptions{Roots: []*x509.Certificate{other.cert}, CurrentTime: t0}, ErrChain, false},
		{"expired at chosen time", regAssertion(t, uaf.AttestationBasicFull, uauth, attKey, shortLived, inter.cert), UAFOptions{Roots: roots, CurrentTime: t0.Add(time.Hour)}, ErrChain, false},
		{"not yet valid", regAssertion(t, uaf.AttestationBasicFull, uauth, attKey, good, inter.cert), UAFOptions{Roots: roots, CurrentTime: t0.Add(-2 * time.Hour)}, ErrChain, false},
		{"aaid mismatch", regAssertion(t, uaf.AttestationBasicFull, uauth, attKey, wrongAAID, inter.cert), UAFOptions{Roots: roots, CurrentTime: t0}, ErrAAID, false},
		{"aaid not octet string", regAssertion(t, uaf.AttestationBasicFull, uauth, attKey, notOctet, inter.cert), UAFOptions{Roots: roots, CurrentTime: t0}, ErrAAID, false},
		{"signed by other key", regAssertion(t, uaf.AttestationBasicFull, uauth, uauth, good, inter.cert), UAFOptions{Roots: roots, CurrentTime: t0}, ErrSignature, false},
		{"no roots", regAssertion(t, uaf.AttestationBasicFull, uauth, attKey, good, inter.cert), UAFOptions{CurrentTime: t0}, ErrNoRoots, false},
		{"type not allowed", regAssertion(t, uaf.AttestationBasicFull, uauth, attKey, good, inter.cert), UAFOptions{Roots: roots, CurrentTime: t0, AllowedTypes: []uaf.AttestationType{uaf.AttestationBasicSurrogate}}, ErrType, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := VerifyUAF(tc.a, tc.opts)
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if res.Type != uaf.AttestationBasicFull || len(res.Chain) == 0 || res.HasAAIDExtension != tc.ext {
					t.Fatalf("result %+v", res)
				}
				return
			}
			if !errors.Is(err, tc.want) || uaf.StatusOf(err) != uaf.StatusUnacceptableAttestation || res != nil {
				t.Fatalf("err %v (status %v), want %v", err, uaf.StatusOf(err), tc.want)
			}
		})
	}
}

func TestVerifyUAFSurrogate(t *testing.T) {
	uauth, other := newKey(t), newKey(t)
	res, err := VerifyUAF(regAssertion(t, uaf.AttestationBasicSurrogate, uauth, uauth), UAFOptions{})
	if err != nil || res.Type != uaf.AttestationBasicSurrogate {
		t.Fatalf("good surrogate: %v", err)
	}
	_, err = VerifyUAF(regAssertion(t, uaf.AttestationBasicSurrogate, uauth, other), UAFOptions{})
	if !errors.Is(err, ErrSignature) || uaf.StatusOf(err) != uaf.StatusUnacceptableAttestation {
		t.Fatalf("bad surrogate: %v", err)
	}
	_, err = VerifyUAF(regAssertion(t, uaf.AttestationBasicSurrogate, uauth, uauth),
		UAFOptions{AllowedTypes: []uaf.AttestationType{uaf.AttestationBasicFull}})
	if !errors.Is(err, ErrType) {
		t.Fatalf("surrogate not allowed: %v", err)
	}
	// Declared algorithm Go cannot verify: 1495.
	a := regAssertion(t, uaf.AttestationBasicSurrogate, uauth, uauth)
	a.SignAlg = uaf.AlgSM2SM3Raw
	if _, err := VerifyUAF(a, UAFOptions{}); !errors.Is(err, ErrAlgorithm) || uaf.StatusOf(err) != uaf.StatusUnacceptableAlgorithm {
		t.Fatalf("sm2: %v", err)
	}
}

// TestVerifyUAFSpecVector uses the UAF specification example: an X.509 v1
// certificate without chain. The signature verifies; as Basic Full it passes
// only when that certificate itself is the pinned anchor, at a time inside its
// validity (2014-08-28..2017-05-24).
func TestVerifyUAFSpecVector(t *testing.T) {
	b, err := os.ReadFile("../../shared/testdata/uaf-spec-example-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Reg uaf.RegistrationResponse `json:"registration_response"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(v.Reg.Assertions[0].Assertion)
	if err != nil {
		t.Fatal(err)
	}
	a, err := uaf.ParseRegAssertion(raw)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(a.Certificates[0])
	if err != nil {
		t.Fatal(err)
	}
	if cert.Version != 1 {
		t.Fatalf("version %d", cert.Version)
	}
	at := time.Date(2015, 6, 1, 0, 0, 0, 0, time.UTC)
	res, err := VerifyUAF(a, UAFOptions{Roots: []*x509.Certificate{cert}, CurrentTime: at})
	if err != nil || res.HasAAIDExtension {
		t.Fatalf("pinned leaf: %v", err)
	}
	if _, err := VerifyUAF(a, UAFOptions{Roots: []*x509.Certificate{cert}, CurrentTime: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)}); !errors.Is(err, ErrChain) {
		t.Fatalf("expired: %v", err)
	}
	unrelated := newCA(t, "unrelated", nil)
	if _, err := VerifyUAF(a, UAFOptions{Roots: []*x509.Certificate{unrelated.cert}, CurrentTime: at}); !errors.Is(err, ErrChain) {
		t.Fatalf("unrelated root: %v", err)
	}
	// Tampered KRD: signature fails.
	a.RawKRD = append([]byte(nil), a.RawKRD...)
	a.RawKRD[10] ^= 1
	if _, err := VerifyUAF(a, UAFOptions{Roots: []*x509.Certificate{cert}, CurrentTime: at}); !errors.Is(err, ErrSignature) {
		t.Fatalf("tampered: %v", err)
	}
}
