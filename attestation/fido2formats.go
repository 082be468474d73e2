package attestation

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sync"

	wametadata "github.com/go-webauthn/webauthn/metadata"
	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"
)

// This file replaces go-webauthn's "android-key" and "apple" attestation statement
// verifiers (and fido2safetynet.go its "android-safetynet" one). go-webauthn's own
// verifiers chain x5c to roots compiled into the library (Google's hardware attestation
// roots and SafetyNet roots, Apple's WebAuthn root), so an operator cannot
// decide trust with metadata and the FIDO conformance tool's fake roots never verify.
// Ours verify the statement (WebAuthn L3 §8.4 and §8.8) and return the trust path; trust
// in that path is decided afterwards by [VerifyFIDO2Trust] against the roots of our
// metadata ([FIDO2Anchors]).

// Object identifiers of the certificate extensions the formats read.
var (
	// OIDAndroidKeyDescription is the Android key attestation extension (KeyDescription).
	OIDAndroidKeyDescription = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 1, 17}
	// OIDAppleNonce is Apple's anonymous attestation nonce extension.
	OIDAppleNonce = asn1.ObjectIdentifier{1, 2, 840, 113635, 100, 8, 2}
)

// Android Keymaster / KeyMint constants (Android "Key and ID attestation" schema).
const (
	androidTagPurpose         = 1
	androidTagAllApplications = 600
	androidTagOrigin          = 702
	// AndroidPurposeSign is KM_PURPOSE_SIGN.
	AndroidPurposeSign = 2
	// AndroidOriginGenerated is KM_ORIGIN_GENERATED.
	AndroidOriginGenerated = 0
)

var registerFormats sync.Once

// RegisterFIDO2Formats installs the android-key, android-safetynet and apple verifiers of this package in
// go-webauthn's attestation format registry. go-webauthn keeps that registry in a package
// variable that is not safe for concurrent writes, so registration happens once per
// process (later calls do nothing) and must precede the first verification; the FIDO2
// service calls it from its constructor.
func RegisterFIDO2Formats() {
	registerFormats.Do(func() {
		protocol.RegisterAttestationFormat(protocol.AttestationFormatAndroidKey, verifyAndroidKeyStatement)
		protocol.RegisterAttestationFormat(protocol.AttestationFormatApple, verifyAppleStatement)
		protocol.RegisterAttestationFormat(protocol.AttestationFormatAndroidSafetyNet, verifySafetyNetStatement)
	})
}

// AndroidKeyDescription is the part of the Android KeyDescription (the value of
// [OIDAndroidKeyDescription]) that WebAuthn L3 §8.4 checks. Fields that only exist in
// later schema versions are ignored.
type AndroidKeyDescription struct {
	AttestationVersion       int
	AttestationSecurityLevel asn1.Enumerated
	KeymasterVersion         int
	KeymasterSecurityLevel   asn1.Enumerated
	AttestationChallenge     []byte
	UniqueID                 []byte
	SoftwareEnforced         AndroidAuthorizationList
	TeeEnforced              AndroidAuthorizationList
}

// AndroidAuthorizationList holds the authorization list entries §8.4 checks.
type AndroidAuthorizationList struct {
	// Purpose is the [1] purpose set.
	Purpose []int
	// AllApplications reports whether [600] allApplications is present.
	AllApplications bool
	// Origin is the [702] origin, nil when absent.
	Origin *int
}

// ParseAndroidKeyDescription decodes the DER value of the [OIDAndroidKeyDescription]
// extension. Authorization list entries are read by tag, so lists of any schema version
// decode.
func ParseAndroidKeyDescription(der []byte) (*AndroidKeyDescription, error) {
	var raw struct {
		AttestationVersion       int
		AttestationSecurityLevel asn1.Enumerated
		KeymasterVersion         int
		KeymasterSecurityLevel   asn1.Enumerated
		AttestationChallenge     []byte
		UniqueID                 []byte
		SoftwareEnforced         asn1.RawValue
		TeeEnforced              asn1.RawValue
	}
	rest, err := asn1.Unmarshal(der, &raw)
	if err != nil {
		return nil, fmt.Errorf("attestation: android key description: %w", err)
	}
	if len(rest) != 0 {
		return nil, errors.New("attestation: android key description: trailing data")
	}
	kd := &AndroidKeyDescription{
		AttestationVersion: raw.AttestationVersion, AttestationSecurityLevel: raw.AttestationSecurityLevel,
		KeymasterVersion: raw.KeymasterVersion, KeymasterSecurityLevel: raw.KeymasterSecurityLevel,
		AttestationChallenge: raw.AttestationChallenge, UniqueID: raw.UniqueID,
	}
	for _, l := range []struct {
		name string
		raw  asn1.RawValue
		out  *AndroidAuthorizationList
	}{{"softwareEnforced", raw.SoftwareEnforced, &kd.SoftwareEnforced}, {"teeEnforced", raw.TeeEnforced, &kd.TeeEnforced}} {
		if err := parseAuthorizationList(l.raw, l.out); err != nil {
			return nil, fmt.Errorf("attestation: android key description %s: %w", l.name, err)
		}
	}
	return kd, nil
}

func parseAuthorizationList(raw asn1.RawValue, out *AndroidAuthorizationList) error {
	if raw.Class != asn1.ClassUniversal || raw.Tag != asn1.TagSequence || !raw.IsCompound {
		return errors.New("not a SEQUENCE")
	}
	seen := map[int]bool{}
	for rest := raw.Bytes; len(rest) > 0; {
		var el asn1.RawValue
		var err error
		if rest, err = asn1.Unmarshal(rest, &el); err != nil {
			return err
		}
		if el.Class != asn1.ClassContextSpecific || !el.IsCompound {
			return fmt.Errorf("entry with class %d tag %d is not an explicit context tag", el.Class, el.Tag)
		}
		if seen[el.Tag] {
			return fmt.Errorf("tag [%d] repeated", el.Tag)
		}
		seen[el.Tag] = true
		switch el.Tag {
		case androidTagPurpose:
			if err := unmarshalAll(el.Bytes, &out.Purpose, "set"); err != nil {
				return fmt.Errorf("purpose: %w", err)
			}
		case androidTagAllApplications:
			out.AllApplications = true
		case androidTagOrigin:
			var o int
			if err := unmarshalAll(el.Bytes, &o, ""); err != nil {
				return fmt.Errorf("origin: %w", err)
			}
			out.Origin = &o
		}
	}
	return nil
}

func unmarshalAll(b []byte, v any, params string) error {
	rest, err := asn1.UnmarshalWithParams(b, v, params)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return errors.New("trailing data")
	}
	return nil
}

// statementCerts parses attStmt.x5c (leaf first) and checks that each certificate is
// signed by the next one (the order WebAuthn requires). Whether the chain ends at a
// trusted root is not decided here.
func statementCerts(stmt map[string]any) ([]any, []*x509.Certificate, error) {
	x5c, ok := stmt["x5c"].([]any)
	if !ok || len(x5c) == 0 {
		return nil, nil, protocol.ErrAttestationFormat.WithDetails("x5c is missing, not an array or empty")
	}
	certs := make([]*x509.Certificate, 0, len(x5c))
	for i, v := range x5c {
		der, ok := v.([]byte)
		if !ok {
			return nil, nil, protocol.ErrAttestationFormat.WithDetails(fmt.Sprintf("x5c[%d] is not a byte string", i))
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, nil, protocol.ErrAttestationFormat.WithDetails(fmt.Sprintf("x5c[%d] is not a certificate", i)).WithError(err)
		}
		certs = append(certs, c)
	}
	for i := 1; i < len(certs); i++ {
		if err := certs[i-1].CheckSignatureFrom(certs[i]); err != nil {
			return nil, nil, protocol.ErrInvalidAttestation.WithDetails(
				fmt.Sprintf("x5c[%d] is not signed by x5c[%d] (wrong order or broken chain)", i-1, i)).WithError(err)
		}
	}
	return x5c, certs, nil
}

// credentialKey returns the credential public key of the attested credential data.
func credentialKey(att protocol.AttestationObject) (crypto.PublicKey, error) {
	k, err := webauthncose.ParsePublicKey(att.AuthData.AttData.CredentialPublicKey)
	if err != nil {
		return nil, protocol.ErrInvalidAttestation.WithDetails("credential public key is malformed").WithError(err)
	}
	switch k := k.(type) {
	case webauthncose.EC2PublicKeyData:
		return k.ToECDSA()
	case webauthncose.RSAPublicKeyData:
		e, err := webauthncose.ParseRSAPublicKeyDataExponent(&k)
		if err != nil {
			return nil, protocol.ErrInvalidAttestation.WithDetails("credential public key is malformed").WithError(err)
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(k.Modulus), E: e}, nil
	case webauthncose.OKPPublicKeyData:
		if len(k.XCoord) != ed25519.PublicKeySize {
			return nil, protocol.ErrInvalidAttestation.WithDetails("credential public key is malformed")
		}
		return ed25519.PublicKey(k.XCoord), nil
	}
	return nil, protocol.ErrInvalidAttestation.WithDetails(fmt.Sprintf("unsupported credential public key type %T", k))
}

// sameKey reports whether the credential public key equals cert's subject public key.
func sameKey(att protocol.AttestationObject, cert *x509.Certificate) error {
	pub, err := credentialKey(att)
	if err != nil {
		return err
	}
	eq, ok := pub.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !eq.Equal(cert.PublicKey) {
		return protocol.ErrInvalidAttestation.WithDetails("credential public key does not match the attestation certificate")
	}
	return nil
}

func extensionValue(cert *x509.Certificate, oid asn1.ObjectIdentifier) []byte {
	for _, e := range cert.Extensions {
		if e.Id.Equal(oid) {
			return e.Value
		}
	}
	return nil
}

// verifyAndroidKeyStatement is the "android-key" verification procedure (WebAuthn L3
// §8.4.1): the signature over authenticatorData || clientDataHash verifies with x5c[0]'s
// key and alg; x5c[0]'s key is the credential public key; the KeyDescription's
// attestationChallenge is clientDataHash; neither authorization list has
// allApplications; origin is KM_ORIGIN_GENERATED and purpose contains KM_PURPOSE_SIGN in
// the union of teeEnforced and softwareEnforced. The attestation type is basic_full with
// trust path x5c.
func verifyAndroidKeyStatement(att protocol.AttestationObject, clientDataHash []byte, _ wametadata.Provider,
	_ protocol.AttestationPolicy, _ protocol.SignaturePolicy) (string, []any, error) {
	alg, ok := att.AttStatement["alg"].(int64)
	if !ok {
		return "", nil, protocol.ErrAttestationFormat.WithDetails("alg is missing or not an integer")
	}
	sig, ok := att.AttStatement["sig"].([]byte)
	if !ok || len(sig) == 0 {
		return "", nil, protocol.ErrAttestationFormat.WithDetails("sig is missing, not a byte string or empty")
	}
	x5c, certs, err := statementCerts(att.AttStatement)
	if err != nil {
		return "", nil, err
	}
	leaf := certs[0]
	sigAlg := webauthncose.SigAlgFromCOSEAlg(webauthncose.COSEAlgorithmIdentifier(alg))
	if sigAlg == x509.UnknownSignatureAlgorithm {
		return "", nil, protocol.ErrInvalidAttestation.WithDetails(fmt.Sprintf("unsupported alg %d", alg))
	}
	signed := slices.Concat(att.RawAuthData, clientDataHash)
	if err := leaf.CheckSignature(sigAlg, signed, sig); err != nil {
		return "", nil, protocol.ErrInvalidAttestation.WithDetails("sig does not verify with the attestation certificate").WithError(err)
	}
	if err := sameKey(att, leaf); err != nil {
		return "", nil, err
	}
	ext := extensionValue(leaf, OIDAndroidKeyDescription)
	if ext == nil {
		return "", nil, protocol.ErrAttestationFormat.WithDetails("attestation certificate lacks the key description extension 1.3.6.1.4.1.11129.2.1.17")
	}
	kd, err := ParseAndroidKeyDescription(ext)
	if err != nil {
		return "", nil, protocol.ErrAttestationFormat.WithDetails("key description extension is malformed").WithError(err)
	}
	if !bytes.Equal(kd.AttestationChallenge, clientDataHash) {
		return "", nil, protocol.ErrAttestationFormat.WithDetails("key description attestationChallenge is not the clientDataHash")
	}
	if kd.SoftwareEnforced.AllApplications || kd.TeeEnforced.AllApplications {
		return "", nil, protocol.ErrAttestationFormat.WithDetails("key description authorization list has allApplications")
	}
	generated := (kd.TeeEnforced.Origin != nil && *kd.TeeEnforced.Origin == AndroidOriginGenerated) ||
		(kd.SoftwareEnforced.Origin != nil && *kd.SoftwareEnforced.Origin == AndroidOriginGenerated)
	if !generated {
		return "", nil, protocol.ErrAttestationFormat.WithDetails("key description origin is not KM_ORIGIN_GENERATED")
	}
	if !slices.Contains(kd.TeeEnforced.Purpose, AndroidPurposeSign) && !slices.Contains(kd.SoftwareEnforced.Purpose, AndroidPurposeSign) {
		return "", nil, protocol.ErrAttestationFormat.WithDetails("key description purpose lacks KM_PURPOSE_SIGN")
	}
	return string(wametadata.BasicFull), x5c, nil
}

// AppleNonce returns the nonce of Apple's anonymous attestation extension
// ([OIDAppleNonce]): SEQUENCE { [1] EXPLICIT OCTET STRING }.
func AppleNonce(der []byte) ([]byte, error) {
	var v struct {
		Nonce []byte `asn1:"tag:1,explicit"`
	}
	rest, err := asn1.Unmarshal(der, &v)
	if err != nil {
		return nil, fmt.Errorf("attestation: apple nonce: %w", err)
	}
	if len(rest) != 0 {
		return nil, errors.New("attestation: apple nonce: trailing data")
	}
	return v.Nonce, nil
}

// verifyAppleStatement is the "apple" verification procedure (WebAuthn L3 §8.8): the
// nonce extension of x5c[0] is SHA-256(authenticatorData || clientDataHash) and x5c[0]'s
// key is the credential public key. The attestation type is anonca with trust path x5c.
func verifyAppleStatement(att protocol.AttestationObject, clientDataHash []byte, _ wametadata.Provider,
	_ protocol.AttestationPolicy, _ protocol.SignaturePolicy) (string, []any, error) {
	x5c, certs, err := statementCerts(att.AttStatement)
	if err != nil {
		return "", nil, err
	}
	leaf := certs[0]
	ext := extensionValue(leaf, OIDAppleNonce)
	if ext == nil {
		return "", nil, protocol.ErrAttestationFormat.WithDetails("attestation certificate lacks the nonce extension 1.2.840.113635.100.8.2")
	}
	nonce, err := AppleNonce(ext)
	if err != nil {
		return "", nil, protocol.ErrAttestationFormat.WithDetails("nonce extension is malformed").WithError(err)
	}
	want := sha256.Sum256(slices.Concat(att.RawAuthData, clientDataHash))
	if !bytes.Equal(nonce, want[:]) {
		return "", nil, protocol.ErrInvalidAttestation.WithDetails("nonce extension does not match authenticatorData and clientDataHash")
	}
	if err := sameKey(att, leaf); err != nil {
		return "", nil, err
	}
	return string(wametadata.AnonCA), x5c, nil
}
