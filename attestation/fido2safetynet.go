package attestation

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	wametadata "github.com/go-webauthn/webauthn/metadata"
	"github.com/go-webauthn/webauthn/protocol"
)

// SafetyNetHostname is the host name the SafetyNet attestation certificate is issued to
// (WebAuthn L3 §8.5 step 5).
const SafetyNetHostname = "attest.android.com"

// safetyNetMaxAge is how old a SafetyNet response's timestampMs may be, and
// safetyNetSkew how far ahead of this server's clock (Google's clock and ours differ by
// a little; a response from further in the future is refused).
const (
	safetyNetMaxAge = time.Minute
	safetyNetSkew   = 5 * time.Second
)

// safetyNetNow is the verification time of SafetyNet responses.
var safetyNetNow = time.Now

// verifySafetyNetStatement is the "android-safetynet" verification procedure (WebAuthn
// L3 §8.5, the SafetyNet documentation's steps): ver is a version number; response is a
// JWS signed RS256 by the first certificate of its x5c header, which is issued to
// attest.android.com and signed by the next one (x5c in order); its payload's nonce is
// base64(SHA-256(authenticatorData || clientDataHash)), ctsProfileMatch is true and
// timestampMs lies within the last minute (5 s of clock skew allowed ahead). The attestation type is basic_full with trust
// path the header's x5c. go-webauthn's own verifier chains that x5c to Google's roots
// compiled into the library (or the system pool); trust is decided afterwards by
// [VerifyFIDO2Trust] against the roots of our metadata instead.
func verifySafetyNetStatement(att protocol.AttestationObject, clientDataHash []byte, _ wametadata.Provider,
	_ protocol.AttestationPolicy, _ protocol.SignaturePolicy) (string, []any, error) {
	ver, ok := att.AttStatement["ver"].(string)
	if n, err := strconv.ParseUint(ver, 10, 64); !ok || err != nil || n == 0 {
		return "", nil, protocol.ErrAttestationFormat.WithDetails("ver is missing or not a version number")
	}
	response, ok := att.AttStatement["response"].([]byte)
	if !ok || len(response) == 0 {
		return "", nil, protocol.ErrAttestationFormat.WithDetails("response is missing, not a byte string or empty")
	}
	parts := strings.Split(string(response), ".")
	if len(parts) != 3 {
		return "", nil, protocol.ErrAttestationFormat.WithDetails("response is not a compact JWS")
	}
	var header struct {
		Alg string   `json:"alg"`
		X5C []string `json:"x5c"`
	}
	if err := decodeJWSPart(parts[0], &header); err != nil {
		return "", nil, protocol.ErrAttestationFormat.WithDetails("response header is malformed").WithError(err)
	}
	if header.Alg != "RS256" {
		return "", nil, protocol.ErrInvalidAttestation.WithDetails(fmt.Sprintf("response is signed with %q, not RS256", header.Alg))
	}
	stmt := map[string]any{}
	var x5c []any
	for i, c := range header.X5C {
		der, err := base64.StdEncoding.DecodeString(c)
		if err != nil {
			return "", nil, protocol.ErrAttestationFormat.WithDetails(fmt.Sprintf("response header x5c[%d] is not base64", i)).WithError(err)
		}
		x5c = append(x5c, der)
	}
	stmt["x5c"] = x5c
	x5c, certs, err := statementCerts(stmt)
	if err != nil {
		return "", nil, err
	}
	leaf := certs[0]
	if err := leaf.VerifyHostname(SafetyNetHostname); err != nil {
		return "", nil, protocol.ErrInvalidAttestation.WithDetails("attestation certificate is not issued to " + SafetyNetHostname).WithError(err)
	}
	pub, ok := leaf.PublicKey.(*rsa.PublicKey)
	if !ok {
		return "", nil, protocol.ErrInvalidAttestation.WithDetails("attestation certificate key is not RSA")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return "", nil, protocol.ErrAttestationFormat.WithDetails("response signature is not base64url").WithError(err)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
		return "", nil, protocol.ErrInvalidAttestation.WithDetails("response signature does not verify with the attestation certificate").WithError(err)
	}
	var payload struct {
		Nonce           string `json:"nonce"`
		TimestampMs     int64  `json:"timestampMs"`
		CtsProfileMatch bool   `json:"ctsProfileMatch"`
	}
	if err := decodeJWSPart(parts[1], &payload); err != nil {
		return "", nil, protocol.ErrAttestationFormat.WithDetails("response payload is malformed").WithError(err)
	}
	want := sha256.Sum256(slices.Concat(att.RawAuthData, clientDataHash))
	if nonce, err := base64.StdEncoding.DecodeString(payload.Nonce); err != nil || !bytes.Equal(nonce, want[:]) {
		return "", nil, protocol.ErrInvalidAttestation.WithDetails("response nonce does not match authenticatorData and clientDataHash")
	}
	if !payload.CtsProfileMatch {
		return "", nil, protocol.ErrInvalidAttestation.WithDetails("response ctsProfileMatch is false")
	}
	now := safetyNetNow()
	if ts := time.UnixMilli(payload.TimestampMs); ts.After(now.Add(safetyNetSkew)) || ts.Before(now.Add(-safetyNetMaxAge)) {
		return "", nil, protocol.ErrInvalidAttestation.WithDetails("response timestampMs is not within the last minute")
	}
	return string(wametadata.BasicFull), x5c, nil
}

// decodeJWSPart decodes one base64url part of a compact JWS as JSON into v.
func decodeJWSPart(part string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
