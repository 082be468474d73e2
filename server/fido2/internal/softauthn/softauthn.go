// Package softauthn is a software WebAuthn authenticator and client for tests and
// benchmarks: it creates credentials (ES256, RS256, RS1, EdDSA) with "none", "packed"
// (self or full with a given chain), "fido-u2f", "android-key", "android-safetynet" or
// "apple" attestation and signs assertions,
// producing the JSON a FIDO2 conformance client posts. Hooks let tests corrupt any part.
package softauthn

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // RS1 is a conformance-mandated algorithm
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
)

// COSE algorithm identifiers supported by [NewCredential].
const (
	ES256 = -7
	EdDSA = -8
	RS256 = -257
	RS1   = -65535
)

// Credential is a credential held by the software authenticator.
type Credential struct {
	ID         []byte
	Alg        int64
	Key        crypto.Signer
	UserHandle []byte
	Counter    uint32
}

// NewCredential makes a credential with a fresh key of alg.
func NewCredential(alg int64) (*Credential, error) {
	c := &Credential{Alg: alg, ID: make([]byte, 32)}
	if _, err := rand.Read(c.ID); err != nil {
		return nil, err
	}
	var err error
	switch alg {
	case ES256:
		c.Key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RS256, RS1:
		c.Key, err = rsa.GenerateKey(rand.Reader, 2048)
	case EdDSA:
		_, c.Key, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("softauthn: unsupported alg %d", alg)
	}
	return c, err
}

// COSEKey encodes the public key as a COSE_Key (RFC 9053).
func (c *Credential) COSEKey() []byte {
	var m map[int]any
	switch pub := c.Key.Public().(type) {
	case *ecdsa.PublicKey:
		b, _ := pub.Bytes()
		m = map[int]any{1: 2, 3: c.Alg, -1: 1, -2: b[1:33], -3: b[33:]}
	case *rsa.PublicKey:
		e := make([]byte, 4)
		binary.BigEndian.PutUint32(e, uint32(pub.E))
		for len(e) > 1 && e[0] == 0 {
			e = e[1:]
		}
		m = map[int]any{1: 3, 3: c.Alg, -1: pub.N.Bytes(), -2: e}
	case ed25519.PublicKey:
		m = map[int]any{1: 1, 3: c.Alg, -1: 6, -2: []byte(pub)}
	}
	b, _ := webauthncbor.Marshal(m)
	return b
}

// Sign signs msg as alg requires.
func Sign(key crypto.Signer, alg int64, msg []byte) ([]byte, error) {
	switch alg {
	case ES256:
		d := sha256.Sum256(msg)
		return key.Sign(rand.Reader, d[:], crypto.SHA256)
	case RS256:
		d := sha256.Sum256(msg)
		return key.Sign(rand.Reader, d[:], crypto.SHA256)
	case RS1:
		d := sha1.Sum(msg) //nolint:gosec // RS1
		return key.Sign(rand.Reader, d[:], crypto.SHA1)
	case EdDSA:
		return key.Sign(rand.Reader, msg, crypto.Hash(0))
	}
	return nil, errors.New("softauthn: unsupported alg")
}

// Flag bits of authenticator data.
const (
	FlagUP = 0x01
	FlagUV = 0x04
	FlagBE = 0x08
	FlagBS = 0x10
	FlagAT = 0x40
	FlagED = 0x80
)

// Attestation selects the attestation statement [Create] produces.
type Attestation struct {
	// Format is "none", "packed", "fido-u2f", "android-key" or "apple".
	Format string
	// AAGUID of the authenticator (ignored for fido-u2f, which uses zeros).
	AAGUID [16]byte
	// Key and X5C (leaf first, DER) make full attestation; without them packed is self.
	Key crypto.Signer
	X5C [][]byte
	// Alg of Key (ES256 default).
	Alg int64
	// X5CFor makes the x5c (leaf first, DER) of the "android-key" and "apple" formats,
	// whose leaf certifies the credential key and carries data bound to the ceremony
	// (the clientDataHash, or SHA-256(authData || clientDataHash)).
	X5CFor func(credKey crypto.PublicKey, authData, clientDataHash []byte) ([][]byte, error)
	// SafetyNet mutates the payload of an "android-safetynet" response (signed by Key, an
	// RSA key, with X5C in the JWS header) before it is signed.
	SafetyNet func(payload map[string]any)
	// SafetyNetHeader mutates the JWS header of an "android-safetynet" response.
	SafetyNetHeader func(header map[string]any)
}

// Request is the client side of one ceremony.
type Request struct {
	RPID      string
	Origin    string
	Challenge []byte
	// Flags of the authenticator data (UP|UV|…); AT is added for creation.
	Flags byte
	// ClientData mutates the collected client data before it is serialised.
	ClientData func(map[string]any)
	// AuthData mutates the authenticator data before signing.
	AuthData func([]byte) []byte
	// AttStmt mutates the attestation statement after signing.
	AttStmt func(map[string]any)
}

func clientData(typ string, r Request) ([]byte, error) {
	cd := map[string]any{
		"type":        typ,
		"challenge":   base64.RawURLEncoding.EncodeToString(r.Challenge),
		"origin":      r.Origin,
		"crossOrigin": false,
	}
	if r.ClientData != nil {
		r.ClientData(cd)
	}
	return json.Marshal(cd)
}

func authDataPrefix(rpID string, flags byte, counter uint32) []byte {
	h := sha256.Sum256([]byte(rpID))
	out := append([]byte{}, h[:]...)
	out = append(out, flags)
	return binary.BigEndian.AppendUint32(out, counter)
}

// Create makes an attestation for c and returns the conformance JSON body
// (ServerPublicKeyCredential with getClientExtensionResults, no rawId).
func Create(c *Credential, att Attestation, r Request) (map[string]any, error) {
	cdj, err := clientData("webauthn.create", r)
	if err != nil {
		return nil, err
	}
	cdh := sha256.Sum256(cdj)
	aaguid := att.AAGUID
	if att.Format == "fido-u2f" {
		aaguid = [16]byte{}
	}
	ad := authDataPrefix(r.RPID, r.Flags|FlagAT, c.Counter)
	ad = append(ad, aaguid[:]...)
	ad = binary.BigEndian.AppendUint16(ad, uint16(len(c.ID)))
	ad = append(ad, c.ID...)
	ad = append(ad, c.COSEKey()...)
	if r.AuthData != nil {
		ad = r.AuthData(ad)
	}
	msg := append(append([]byte{}, ad...), cdh[:]...)
	stmt := map[string]any{}
	switch att.Format {
	case "none":
	case "packed":
		if att.Key != nil {
			alg := att.Alg
			if alg == 0 {
				alg = ES256
			}
			sig, err := Sign(att.Key, alg, msg)
			if err != nil {
				return nil, err
			}
			x5c := make([]any, len(att.X5C))
			for i, b := range att.X5C {
				x5c[i] = b
			}
			stmt = map[string]any{"alg": alg, "sig": sig, "x5c": x5c}
		} else {
			sig, err := Sign(c.Key, c.Alg, msg)
			if err != nil {
				return nil, err
			}
			stmt = map[string]any{"alg": c.Alg, "sig": sig}
		}
	case "android-key", "apple":
		if att.X5CFor == nil {
			return nil, fmt.Errorf("softauthn: %s needs X5CFor", att.Format)
		}
		chain, err := att.X5CFor(c.Key.Public(), ad, cdh[:])
		if err != nil {
			return nil, err
		}
		x5c := make([]any, len(chain))
		for i, b := range chain {
			x5c[i] = b
		}
		stmt = map[string]any{"x5c": x5c}
		if att.Format == "android-key" {
			sig, err := Sign(c.Key, c.Alg, msg)
			if err != nil {
				return nil, err
			}
			stmt["alg"], stmt["sig"] = c.Alg, sig
		}
	case "android-safetynet":
		jws, err := safetyNetResponse(att, msg)
		if err != nil {
			return nil, err
		}
		stmt = map[string]any{"ver": "224716018", "response": jws}
	case "fido-u2f":
		pub, ok := c.Key.Public().(*ecdsa.PublicKey)
		if !ok || att.Key == nil || len(att.X5C) == 0 {
			return nil, errors.New("softauthn: fido-u2f needs an ES256 credential and an attestation key")
		}
		pk, _ := pub.Bytes()
		h := sha256.Sum256([]byte(r.RPID))
		m := append([]byte{0}, h[:]...)
		m = append(m, cdh[:]...)
		m = append(m, c.ID...)
		m = append(m, pk...)
		sig, err := Sign(att.Key, ES256, m)
		if err != nil {
			return nil, err
		}
		stmt = map[string]any{"sig": sig, "x5c": []any{att.X5C[0]}}
	default:
		return nil, fmt.Errorf("softauthn: format %q", att.Format)
	}
	if r.AttStmt != nil {
		r.AttStmt(stmt)
	}
	obj, err := webauthncbor.Marshal(map[string]any{"fmt": att.Format, "attStmt": stmt, "authData": ad})
	if err != nil {
		return nil, err
	}
	id := base64.RawURLEncoding.EncodeToString(c.ID)
	return map[string]any{
		"id": id, "type": "public-key", "getClientExtensionResults": map[string]any{},
		"response": map[string]any{
			"clientDataJSON":    base64.RawURLEncoding.EncodeToString(cdj),
			"attestationObject": base64.RawURLEncoding.EncodeToString(obj),
		},
	}, nil
}

// Get signs an assertion with c (incrementing its counter first when it is non-zero or
// countUp) and returns the conformance JSON body.
func Get(c *Credential, r Request, countUp bool) (map[string]any, error) {
	if countUp {
		c.Counter++
	}
	cdj, err := clientData("webauthn.get", r)
	if err != nil {
		return nil, err
	}
	cdh := sha256.Sum256(cdj)
	ad := authDataPrefix(r.RPID, r.Flags, c.Counter)
	if r.AuthData != nil {
		ad = r.AuthData(ad)
	}
	sig, err := Sign(c.Key, c.Alg, append(append([]byte{}, ad...), cdh[:]...))
	if err != nil {
		return nil, err
	}
	resp := map[string]any{
		"clientDataJSON":    base64.RawURLEncoding.EncodeToString(cdj),
		"authenticatorData": base64.RawURLEncoding.EncodeToString(ad),
		"signature":         base64.RawURLEncoding.EncodeToString(sig),
	}
	if c.UserHandle != nil {
		resp["userHandle"] = base64.RawURLEncoding.EncodeToString(c.UserHandle)
	}
	return map[string]any{
		"id": base64.RawURLEncoding.EncodeToString(c.ID), "type": "public-key",
		"getClientExtensionResults": map[string]any{}, "response": resp,
	}, nil
}

// ParseChallenge decodes an options response's challenge.
func ParseChallenge(options map[string]any) ([]byte, error) {
	s, _ := options["challenge"].(string)
	return base64.RawURLEncoding.DecodeString(s)
}

var _ = x509.Certificate{}

// safetyNetResponse is a SafetyNet attestation JWS (RS256, x5c in the header) over the
// nonce SHA-256(authData || clientDataHash), as Google Play Services returned it.
func safetyNetResponse(att Attestation, msg []byte) ([]byte, error) {
	key, ok := att.Key.(*rsa.PrivateKey)
	if !ok || len(att.X5C) == 0 {
		return nil, errors.New("softauthn: android-safetynet needs an RSA attestation key and X5C")
	}
	x5c := make([]string, len(att.X5C))
	for i, der := range att.X5C {
		x5c[i] = base64.StdEncoding.EncodeToString(der)
	}
	nonce := sha256.Sum256(msg)
	payload := map[string]any{"nonce": base64.StdEncoding.EncodeToString(nonce[:]),
		"timestampMs": time.Now().UnixMilli(), "apkPackageName": "com.google.android.gms",
		"ctsProfileMatch": true, "basicIntegrity": true}
	if att.SafetyNet != nil {
		att.SafetyNet(payload)
	}
	header := map[string]any{"alg": "RS256", "x5c": x5c}
	if att.SafetyNetHeader != nil {
		att.SafetyNetHeader(header)
	}
	hb, err := json.Marshal(header)
	if err != nil {
		return nil, err
	}
	pb, err := json.Marshal(payload)
	if err != nil {
		return nil, err
	}
	signing := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(pb)
	d := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, d[:])
	if err != nil {
		return nil, err
	}
	return []byte(signing + "." + base64.RawURLEncoding.EncodeToString(sig)), nil
}
