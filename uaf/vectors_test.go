package uaf

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// sharedTestdata is /work/shared/testdata relative to this package.
const sharedTestdata = "../../shared/testdata"

type specVectors struct {
	Reg     RegistrationResponse   `json:"registration_response"`
	Auth    AuthenticationResponse `json:"authentication_response"`
	Decoded struct {
		RegFCH   string `json:"reg_final_challenge_hash_hex"`
		AuthFCH  string `json:"auth_final_challenge_hash_hex"`
		KeyIDHex string `json:"keyID_hex"`
		UAuthPub string `json:"uauth_pub_hex"`
		Nonce    string `json:"auth_nonce_hex"`
	} `json:"decoded"`
}

func readShared(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(sharedTestdata, name))
	if err != nil {
		t.Fatalf("read spec vector: %v", err)
	}
	return b
}

func loadVectors(t testing.TB) *specVectors {
	t.Helper()
	var v specVectors
	if err := json.Unmarshal(readShared(t, "uaf-spec-example-vectors.json"), &v); err != nil {
		t.Fatal(err)
	}
	return &v
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSpecRegistrationVector(t *testing.T) {
	v := loadVectors(t)
	raw, err := DecodeBase64URL(v.Reg.Assertions[0].Assertion)
	if err != nil {
		t.Fatal(err)
	}
	a, err := ParseRegAssertion(raw)
	if err != nil {
		t.Fatalf("ParseRegAssertion: %v", err)
	}
	if len(raw) != 4+750 || !bytes.Equal(a.RawKRD, readShared(t, "uaf-spec-example-krd.bin")) {
		t.Fatalf("raw KRD differs from the vector file (assertion %d bytes)", len(raw))
	}
	if a.AAID != "ABCD#ABCD" || a.AuthenticatorVersion != 0x0100 || a.AuthenticationMode != 1 ||
		a.SignAlg != AlgSECP256R1ECDSASHA256Raw || a.PubKeyEncoding != KeyECCX962Raw ||
		a.SignCounter != 1 || a.RegCounter != 1 || a.AttestationType != AttestationBasicFull {
		t.Fatalf("fields: %+v", a.KeyRegistrationData)
	}
	if !bytes.Equal(a.KeyID, unhex(t, v.Decoded.KeyIDHex)) || !bytes.Equal(a.PubKey, unhex(t, v.Decoded.UAuthPub)) ||
		!bytes.Equal(a.FinalChallengeHash, unhex(t, v.Decoded.RegFCH)) {
		t.Fatal("keyID, pubkey or final challenge hash differ")
	}
	if err := a.CheckFinalChallenge(v.Reg.FCParams); err != nil {
		t.Fatalf("CheckFinalChallenge: %v", err)
	}
	if err := a.CheckFinalChallenge(v.Auth.FCParams); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("wrong fcParams: %v", err)
	}
	if !bytes.Equal(a.Signature, readShared(t, "uaf-spec-example-attestation-sig.bin")) ||
		len(a.Certificates) != 1 || !bytes.Equal(a.Certificates[0], readShared(t, "uaf-spec-example-attestation-cert.der")) {
		t.Fatal("attestation block differs")
	}
	cert, err := x509.ParseCertificate(a.Certificates[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifySignature(a.SignAlg, cert.PublicKey, a.RawKRD, a.Signature); err != nil {
		t.Fatalf("attestation signature over KRD TLV: %v", err)
	}
	if err := VerifySignature(a.SignAlg, cert.PublicKey, a.RawKRD[4:], a.Signature); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("signature over the KRD value alone must fail, got %v", err)
	}
	// Re-encoding reproduces the bytes.
	krd, err := a.KeyRegistrationData.Marshal()
	if err != nil || !bytes.Equal(krd, a.RawKRD) {
		t.Fatalf("KRD re-encoding differs: %v", err)
	}
	re, err := AssembleRegAssertion(krd, a.AttestationType, a.Signature, a.Certificates)
	if err != nil || !bytes.Equal(re, raw) {
		t.Fatalf("assertion re-encoding differs: %v", err)
	}
	fc, err := DecodeFinalChallengeParams(v.Reg.FCParams)
	if err != nil {
		t.Fatal(err)
	}
	if fc.Challenge != "H9iW9yA9aAXF_lelQoi_DhUk514Ad8Tqv0zCnCqKDpo" || fc.FacetID != "com.noknok.android.sampleapp" {
		t.Fatalf("fcParams: %+v", fc)
	}
}

func TestSpecAuthenticationVector(t *testing.T) {
	v := loadVectors(t)
	raw, err := DecodeBase64URL(v.Auth.Assertions[0].Assertion)
	if err != nil {
		t.Fatal(err)
	}
	a, err := ParseAuthAssertion(raw)
	if err != nil {
		t.Fatalf("ParseAuthAssertion: %v", err)
	}
	if !bytes.Equal(a.RawSignedData, readShared(t, "uaf-spec-example-signed-data.bin")) {
		t.Fatal("raw SIGNED_DATA differs from the vector file")
	}
	if a.AAID != "ABCD#ABCD" || a.AuthenticationMode != 1 || a.SignCounter != 2 || len(a.TransactionContentHash) != 0 ||
		!bytes.Equal(a.Nonce, unhex(t, v.Decoded.Nonce)) || !bytes.Equal(a.KeyID, unhex(t, v.Decoded.KeyIDHex)) {
		t.Fatalf("fields: %+v", a.SignedData)
	}
	if err := a.CheckFinalChallenge(v.Auth.FCParams); err != nil {
		t.Fatal(err)
	}
	if err := a.CheckTransaction(nil); err != nil {
		t.Fatal(err)
	}
	if err := a.CheckTransaction([]byte("pay")); err == nil {
		t.Fatal("mode 1 accepted with a transaction")
	}
	pub, err := ParsePublicKey(KeyECCX962Raw, a.SignAlg, readShared(t, "uaf-spec-example-uauth-pub.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifySignature(a.SignAlg, pub, a.RawSignedData, a.Signature); err != nil {
		t.Fatalf("auth signature: %v", err)
	}
	if !bytes.Equal(a.Signature, readShared(t, "uaf-spec-example-auth-sig.bin")) {
		t.Fatal("signature differs from the vector file")
	}
	sd, err := a.SignedData.Marshal()
	if err != nil || !bytes.Equal(sd, a.RawSignedData) {
		t.Fatalf("SIGNED_DATA re-encoding differs: %v", err)
	}
	re, err := AssembleAuthAssertion(sd, a.Signature)
	if err != nil || !bytes.Equal(re, raw) {
		t.Fatalf("assertion re-encoding differs: %v", err)
	}
}

// TestSpecMessagesVersion10 shows that the spec example messages (upv 1.0)
// are refused as a whole by the 1.1 decoder, and accepted once re-wrapped.
func TestSpecMessagesVersion10(t *testing.T) {
	v := loadVectors(t)
	for _, msg := range []any{v.Reg, v.Auth} {
		b, _ := json.Marshal([]any{msg})
		if _, err := DecodeResponse(b); !errors.Is(err, ErrVersion) || StatusOf(err) != StatusUnacceptableContent {
			t.Fatalf("upv 1.0 message: %v", err)
		}
	}
	v.Reg.Header.UPV = Version11
	b, _ := json.Marshal([]any{v.Reg})
	r, err := DecodeResponse(b)
	if err != nil || r.Registration == nil || r.Registration.FCParams != v.Reg.FCParams {
		t.Fatalf("re-wrapped: %v", err)
	}
}
