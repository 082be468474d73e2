package uaf

// Audit (docs/uaf-checks.md): FinalChallengeHash and TransactionContentHash use the hash of
// the authenticator's signature algorithm — checked here against an independent table of
// the FIDO registry names, not against Alg.Hash itself.

import (
	"crypto"
	"errors"
	"testing"
)

// registryHash is the hash named by each registered ALG_SIGN_* (FIDO Registry 2.2 §3.6.1).
var registryHash = map[Alg]crypto.Hash{
	AlgSECP256R1ECDSASHA256Raw: crypto.SHA256, AlgSECP256R1ECDSASHA256DER: crypto.SHA256,
	AlgRSASSAPSSSHA256Raw: crypto.SHA256, AlgRSASSAPSSSHA256DER: crypto.SHA256,
	AlgSECP256K1ECDSASHA256Raw: crypto.SHA256, AlgSECP256K1ECDSASHA256DER: crypto.SHA256,
	AlgRSAEMSAPKCS1SHA256Raw: crypto.SHA256, AlgRSAEMSAPKCS1SHA256DER: crypto.SHA256,
	AlgRSASSAPSSSHA384Raw: crypto.SHA384, AlgRSASSAPSSSHA512Raw: crypto.SHA512,
	AlgRSASSAPKCSV15SHA256Raw: crypto.SHA256, AlgRSASSAPKCSV15SHA384Raw: crypto.SHA384,
	AlgRSASSAPKCSV15SHA512Raw: crypto.SHA512, AlgRSASSAPKCSV15SHA1Raw: crypto.SHA1,
	AlgSECP384R1ECDSASHA384Raw: crypto.SHA384, AlgSECP521R1ECDSASHA512Raw: crypto.SHA512,
	AlgED25519EDDSASHA512Raw: crypto.SHA512,
}

func sum(h crypto.Hash, b []byte) []byte {
	w := h.New()
	w.Write(b)
	return w.Sum(nil)
}

func TestAuditHashPerAlgorithm(t *testing.T) {
	const fc = "eyJhcHBJRCI6Imh0dHBzOi8vYXBwLnRlc3QiLCJjaGFsbGVuZ2UiOiJhYmMifQ"
	content := []byte("Pay 10 EUR to Bob")
	hashes := []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512}
	for alg, want := range registryHash {
		t.Run(alg.String(), func(t *testing.T) {
			reg := &RegAssertion{KeyRegistrationData: KeyRegistrationData{SignAlg: alg}}
			auth := &AuthAssertion{SignedData: SignedData{SignAlg: alg, AuthenticationMode: ModeTransactionConfirmed}}
			for _, h := range hashes {
				reg.FinalChallengeHash = sum(h, []byte(fc))
				auth.FinalChallengeHash = reg.FinalChallengeHash
				auth.TransactionContentHash = sum(h, content)
				errs := []error{reg.CheckFinalChallenge(fc), auth.CheckFinalChallenge(fc), auth.CheckTransaction(content)}
				for i, err := range errs {
					switch {
					case h == want && err != nil:
						t.Fatalf("check %d with %v: %v", i, h, err)
					case h != want && (err == nil || StatusOf(err) != StatusUnacceptableContent || !errors.Is(err, ErrHashMismatch)):
						t.Fatalf("check %d accepted (or wrong error) with %v instead of %v: %v", i, h, want, err)
					}
				}
			}
		})
	}
	// Algorithms without an implemented hash are refused as unacceptable algorithms.
	for _, alg := range []Alg{AlgSM2SM3Raw, AlgED448EDDSASHA512Raw, 0x00FF} {
		if _, err := FinalChallengeHash(alg, fc); StatusOf(err) != StatusUnacceptableAlgorithm {
			t.Fatalf("%v: %v", alg, err)
		}
	}
}

// TestAuditModeAndTransaction: AuthenticationMode 0x02 only with a transaction, 0x01 only
// without; an empty TRANSACTION_CONTENT_HASH only without one.
func TestAuditModeAndTransaction(t *testing.T) {
	alg := AlgSECP256R1ECDSASHA256Raw
	content := []byte("ok?")
	h, _ := TransactionContentHash(alg, content)
	for _, c := range []struct {
		name    string
		mode    uint8
		hash    []byte
		content []byte
		ok      bool
	}{
		{"plain", ModeUserVerified, nil, nil, true},
		{"mode 2 without transaction", ModeTransactionConfirmed, nil, nil, false},
		{"hash without transaction", ModeUserVerified, h, nil, false},
		{"confirmed", ModeTransactionConfirmed, h, content, true},
		{"mode 1 with transaction", ModeUserVerified, h, content, false},
		{"empty hash with transaction", ModeTransactionConfirmed, []byte{}, content, false},
		{"hash of other content", ModeTransactionConfirmed, h, []byte("ok!"), false},
	} {
		a := &AuthAssertion{SignedData: SignedData{SignAlg: alg, AuthenticationMode: c.mode, TransactionContentHash: c.hash}}
		if err := a.CheckTransaction(c.content); (err == nil) != c.ok || (err != nil && StatusOf(err) != StatusUnacceptableContent) {
			t.Fatalf("%s: %v", c.name, err)
		}
	}
}
