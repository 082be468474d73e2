// Package resulttoken issues the JWT the server returns after a successful FIDO operation
// (in the UAF ServerResponse's additionalTokens, the FIDO2 result, and the status service).
// Tokens are ES256 JWS signed by the active token-signing key inside the HSM; the private key
// never leaves it. Relying parties verify them with the JWKS the server publishes.
package resulttoken

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
)

// Signer produces ES256 signatures (64-byte r‖s over SHA-256 of msg) with the active
// token-signing key and names that key; *hsm.Token provides it.
type Signer interface {
	SignES256(ctx context.Context, msg []byte) (sig []byte, kid string, err error)
	ActiveKeyID() string
}

// Claims are the operation facts a result token carries besides the registered claims.
type Claims struct {
	Username  string `json:"sub"`
	Operation string `json:"op"`                   // "Reg", "Auth", "Dereg" (out-of-band) or "fido2-auth"; FIDO2 registration issues none
	AAID      string `json:"aaid,omitempty"`       // UAF
	KeyID     string `json:"keyid,omitempty"`      // UAF KeyID or FIDO2 credential ID (base64url)
	TxHash    string `json:"tx_hash,omitempty"`    // base64url SHA-256 of the confirmed transaction content
	SessionID string `json:"session_id,omitempty"` // out-of-band or FIDO2 session
	AAGUID    string `json:"aaguid,omitempty"`     // FIDO2
	// UV is whether the FIDO2 assertion verified the user (its authenticator data's UV
	// bit); nil for UAF, whose user verification is the authenticator's by metadata.
	UV *bool `json:"uv,omitempty"`
}

// Issuer signs result tokens. It is safe for concurrent use.
type Issuer struct {
	signer   Signer
	issuer   string
	audience string
	lifetime time.Duration
	now      func() time.Time
}

// Options configures [New].
type Options struct {
	Issuer   string
	Audience string
	Lifetime time.Duration
	Now      func() time.Time
}

// New returns an Issuer signing with s.
func New(s Signer, o Options) *Issuer {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Lifetime == 0 {
		o.Lifetime = 5 * time.Minute
	}
	return &Issuer{signer: s, issuer: o.Issuer, audience: o.Audience, lifetime: o.Lifetime, now: o.Now}
}

type header struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
	Kid string `json:"kid"`
}

type payload struct {
	Claims
	Iss string `json:"iss"`
	Aud string `json:"aud,omitempty"`
	Iat int64  `json:"iat"`
	Exp int64  `json:"exp"`
	Jti string `json:"jti"`
}

// Issue signs a token with claims c.
func (i *Issuer) Issue(ctx context.Context, c Claims) (string, error) {
	// The kid goes into the signed header, so it is read before signing; if a rotation
	// happens in between, the signature comes from another key and is refused below.
	kid := i.signer.ActiveKeyID()
	h, err := json.Marshal(header{Alg: "ES256", Typ: "JWT", Kid: kid})
	if err != nil {
		return "", fmt.Errorf("resulttoken: %w", err)
	}
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", fmt.Errorf("resulttoken: %w", err)
	}
	now := i.now()
	p, err := json.Marshal(payload{Claims: c, Iss: i.issuer, Aud: i.audience, Iat: now.Unix(),
		Exp: now.Add(i.lifetime).Unix(), Jti: base64.RawURLEncoding.EncodeToString(jti)})
	if err != nil {
		return "", fmt.Errorf("resulttoken: %w", err)
	}
	enc := base64.RawURLEncoding
	buf := make([]byte, 0, enc.EncodedLen(len(h))+enc.EncodedLen(len(p))+1+87)
	buf = enc.AppendEncode(buf, h)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, p)
	sig, usedKid, err := i.signer.SignES256(ctx, buf)
	if err != nil {
		return "", fmt.Errorf("resulttoken: sign: %w", err)
	}
	if usedKid != kid {
		return "", fmt.Errorf("resulttoken: signing key changed during issue (%s, then %s)", kid, usedKid)
	}
	if len(sig) != 64 {
		return "", fmt.Errorf("resulttoken: ES256 signature is %d bytes, want 64", len(sig))
	}
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	return string(buf), nil
}
