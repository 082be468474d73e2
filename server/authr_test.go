package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/uaf"
)

// authr is a small software UAF authenticator (ECDSA P-256, raw r‖s, raw X9.62 keys) for
// the server's tests; it builds assertions with the uaf codec's builders.
type authr struct {
	t       *testing.T
	aaid    string
	facet   string
	full    bool // Basic Full (with ca) instead of Basic Surrogate
	ca      *ecdsa.PrivateKey
	caCert  *x509.Certificate
	attKey  *ecdsa.PrivateKey
	attCert []byte
	keys    map[string]*ecdsa.PrivateKey // KeyID (base64url) → UAuth key
	counter uint32
	lastKey string
}

func newAuthr(t *testing.T, aaid string, full bool) *authr {
	a := &authr{t: t, aaid: aaid, facet: facetID, full: full, keys: map[string]*ecdsa.PrivateKey{}}
	if full {
		a.ca, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test UAF Vendor Root"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
			BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &a.ca.PublicKey, a.ca)
		if err != nil {
			t.Fatal(err)
		}
		a.caCert, _ = x509.ParseCertificate(der)
		a.attKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		ext, _ := asn1.Marshal([]byte(aaid))
		leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Test UAF Attestation"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 45724, 1, 1, 1}, Value: ext}}}
		a.attCert, err = x509.CreateCertificate(rand.Reader, leaf, a.caCert, &a.attKey.PublicKey, a.ca)
		if err != nil {
			t.Fatal(err)
		}
	}
	return a
}

// statement is the authenticator's UAF metadata statement (UAF-era numeric form).
func (a *authr) statement() []byte {
	st := map[string]any{
		"aaid": a.aaid, "description": "server test authenticator", "authenticatorVersion": 1,
		"upv": []map[string]int{{"major": 1, "minor": 1}}, "assertionScheme": "UAFV1TLV",
		"authenticationAlgorithm": 1, "publicKeyAlgAndEncoding": 0x100,
		"attestationTypes":        []int{0x3E08},
		"userVerificationDetails": [][]map[string]int{{{"userVerification": 4}}},
		"keyProtection":           6, "matcherProtection": 4, "attachmentHint": 1, "isSecondFactorOnly": false,
		"tcDisplay": 1, "tcDisplayContentType": "text/plain", "attestationRootCertificates": []string{},
	}
	if a.full {
		st["attestationTypes"] = []int{0x3E07}
		st["attestationRootCertificates"] = []string{base64.StdEncoding.EncodeToString(a.caCert.Raw)}
	}
	b, _ := json.Marshal(st)
	return b
}

// mutations let a test break one thing in an assertion.
type mutations struct {
	krd       func(*uaf.KeyRegistrationData)
	sd        func(*uaf.SignedData)
	fc        func(*uaf.FinalChallengeParams)
	badSig    bool
	keyID     string // sign with this registered key instead of the last one
	rawFC     string // use this fcParams string as is
	scheme    string
	noCounter bool // do not advance the counter
}

func (a *authr) fcParams(appIDHdr, challenge string, m mutations) string {
	if m.rawFC != "" {
		return m.rawFC
	}
	app := appIDHdr
	if app == "" {
		app = a.facet
	}
	fc := uaf.FinalChallengeParams{AppID: app, Challenge: challenge, FacetID: a.facet}
	if m.fc != nil {
		m.fc(&fc)
	}
	b, _ := json.Marshal(fc)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (a *authr) sign(k *ecdsa.PrivateKey, msg []byte, bad bool) []byte {
	sig, err := uaf.Sign(rand.Reader, k, uaf.AlgSECP256R1ECDSASHA256Raw, msg)
	if err != nil {
		a.t.Fatal(err)
	}
	if bad {
		sig[10] ^= 0x40
	}
	return sig
}

// register answers a ReturnUAFRequest with a RegistrationResponse (the uafResponse string).
func (a *authr) register(r *uaf.ReturnUAFRequest, m mutations) string {
	a.t.Helper()
	req, err := uaf.DecodeRequest([]byte(r.UAFRequest))
	if err != nil || req.Registration == nil {
		a.t.Fatalf("not a registration request: %v", err)
	}
	rr := req.Registration
	fc := a.fcParams(rr.Header.AppID, rr.Challenge, m)
	fch, _ := uaf.FinalChallengeHash(uaf.AlgSECP256R1ECDSASHA256Raw, fc)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	kid := make([]byte, 32)
	rand.Read(kid)
	pub := elliptic.Marshal(elliptic.P256(), k.X, k.Y) //nolint:staticcheck // raw X9.62 point is the wire format
	krd := uaf.KeyRegistrationData{AAID: a.aaid, AuthenticatorVersion: 1, AuthenticationMode: uaf.ModeUserVerified,
		SignAlg: uaf.AlgSECP256R1ECDSASHA256Raw, PubKeyEncoding: uaf.KeyECCX962Raw, FinalChallengeHash: fch,
		KeyID: kid, SignCounter: 0, RegCounter: 1, PubKey: pub}
	if m.krd != nil {
		m.krd(&krd)
	}
	raw, err := krd.Marshal()
	if err != nil {
		a.t.Fatal(err)
	}
	var assertion []byte
	if a.full {
		assertion, err = uaf.AssembleRegAssertion(raw, uaf.AttestationBasicFull, a.sign(a.attKey, raw, m.badSig), [][]byte{a.attCert})
	} else {
		assertion, err = uaf.AssembleRegAssertion(raw, uaf.AttestationBasicSurrogate, a.sign(k, raw, m.badSig), nil)
	}
	if err != nil {
		a.t.Fatal(err)
	}
	id := base64.RawURLEncoding.EncodeToString(kid)
	a.keys[id] = k
	a.lastKey = id
	scheme := "UAFV1TLV"
	if m.scheme != "" {
		scheme = m.scheme
	}
	resp := []uaf.RegistrationResponse{{Header: rr.Header, FCParams: fc,
		Assertions: []uaf.AuthenticatorRegistrationAssertion{{AssertionScheme: scheme, Assertion: base64.RawURLEncoding.EncodeToString(assertion)}}}}
	b, _ := json.Marshal(resp)
	return string(b)
}

// authenticate answers an authentication request; it confirms the transaction if any.
func (a *authr) authenticate(r *uaf.ReturnUAFRequest, m mutations) string {
	a.t.Helper()
	req, err := uaf.DecodeRequest([]byte(r.UAFRequest))
	if err != nil || req.Authentication == nil {
		a.t.Fatalf("not an authentication request: %v", err)
	}
	ar := req.Authentication
	fc := a.fcParams(ar.Header.AppID, ar.Challenge, m)
	fch, _ := uaf.FinalChallengeHash(uaf.AlgSECP256R1ECDSASHA256Raw, fc)
	id := a.lastKey
	if m.keyID != "" {
		id = m.keyID
	}
	k := a.keys[id]
	if k == nil {
		a.t.Fatalf("no key %q", id)
	}
	kid, _ := base64.RawURLEncoding.DecodeString(id)
	if !m.noCounter {
		a.counter++
	}
	nonce := make([]byte, 16)
	rand.Read(nonce)
	sd := uaf.SignedData{AAID: a.aaid, AuthenticatorVersion: 1, AuthenticationMode: uaf.ModeUserVerified,
		SignAlg: uaf.AlgSECP256R1ECDSASHA256Raw, Nonce: nonce, FinalChallengeHash: fch, KeyID: kid, SignCounter: a.counter}
	if len(ar.Transaction) > 0 {
		content, _ := uaf.DecodeBase64URL(ar.Transaction[0].Content)
		sd.AuthenticationMode = uaf.ModeTransactionConfirmed
		sd.TransactionContentHash, _ = uaf.TransactionContentHash(uaf.AlgSECP256R1ECDSASHA256Raw, content)
	}
	if m.sd != nil {
		m.sd(&sd)
	}
	raw, err := sd.Marshal()
	if err != nil {
		a.t.Fatal(err)
	}
	assertion, err := uaf.AssembleAuthAssertion(raw, a.sign(k, raw, m.badSig))
	if err != nil {
		a.t.Fatal(err)
	}
	scheme := "UAFV1TLV"
	if m.scheme != "" {
		scheme = m.scheme
	}
	resp := []uaf.AuthenticationResponse{{Header: ar.Header, FCParams: fc,
		Assertions: []uaf.AuthenticatorSignAssertion{{AssertionScheme: scheme, Assertion: base64.RawURLEncoding.EncodeToString(assertion)}}}}
	b, _ := json.Marshal(resp)
	return string(b)
}

var _ = fmt.Sprintf
