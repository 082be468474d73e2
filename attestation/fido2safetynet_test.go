package attestation

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
)

// FuzzSafetyNetStatement feeds untrusted android-safetynet statements (ver, response) to
// the verifier. Invariants: no panic, and no success: the seeds carry a real RSA
// certificate for attest.android.com, one with a signature that does not verify and one
// with a valid signature over a payload whose nonce is wrong (reaching the payload
// checks); an input the fuzzer derives cannot carry a valid signature over a payload with
// the right nonce.
func FuzzSafetyNetStatement(f *testing.F) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: SafetyNetHostname},
		DNSNames: []string{SafetyNetHostname}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		f.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	header := enc([]byte(`{"alg":"RS256","x5c":["` + base64.StdEncoding.EncodeToString(der) + `"]}`))
	payload := enc([]byte(`{"nonce":"AAAA","timestampMs":1,"ctsProfileMatch":true}`))
	f.Add("224716018", []byte(header+"."+payload+"."+enc([]byte("sig"))))
	// A signature that verifies over a payload whose nonce does not match.
	d := sha256.Sum256([]byte(header + "." + payload))
	sig, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, d[:])
	if err != nil {
		f.Fatal(err)
	}
	f.Add("224716018", []byte(header+"."+payload+"."+enc(sig)))
	f.Add("1", []byte(enc([]byte(`{"alg":"RS256","x5c":[]}`))+"."+payload+".AA"))
	f.Add("0", []byte("a.b.c"))
	f.Add("", []byte{})
	f.Fuzz(func(t *testing.T, ver string, response []byte) {
		att := protocol.AttestationObject{Format: "android-safetynet", RawAuthData: []byte{1, 2, 3},
			AttStatement: map[string]any{"ver": ver, "response": response}}
		typ, x5c, err := verifySafetyNetStatement(att, make([]byte, 32), nil, protocol.AttestationPolicy{}, protocol.SignaturePolicy{})
		if err == nil {
			t.Fatalf("forged statement accepted: %s %v", typ, x5c)
		}
	})
}
