package callerauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// MintOptions describes a caller token to issue with [Mint].
type MintOptions struct {
	Issuer, Audience, Username string
	// UsernameClaim is the claim the username goes into (default "sub").
	UsernameClaim string
	// Lifetime is the validity (default 5 minutes).
	Lifetime time.Duration
	// Now is the issue time (default time.Now()).
	Now time.Time
}

// Mint issues a caller token signed with key, as a relying party's login service does. The
// server never mints caller tokens; fidoctl uses this for tests and demos.
func Mint(key crypto.Signer, o MintOptions) (string, error) {
	var alg jose.SignatureAlgorithm
	switch k := key.Public().(type) {
	case *ecdsa.PublicKey:
		switch k.Curve.Params().BitSize {
		case 256:
			alg = jose.ES256
		case 384:
			alg = jose.ES384
		default:
			alg = jose.ES512
		}
	case *rsa.PublicKey:
		alg = jose.RS256
	case ed25519.PublicKey:
		alg = jose.EdDSA
	default:
		return "", fmt.Errorf("callerauth: unsupported key type %T", k)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", fmt.Errorf("callerauth: %w", err)
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Lifetime == 0 {
		o.Lifetime = 5 * time.Minute
	}
	if o.UsernameClaim == "" {
		o.UsernameClaim = "sub"
	}
	std := jwt.Claims{Issuer: o.Issuer, Audience: jwt.Audience{o.Audience}, IssuedAt: jwt.NewNumericDate(o.Now),
		NotBefore: jwt.NewNumericDate(o.Now), Expiry: jwt.NewNumericDate(o.Now.Add(o.Lifetime))}
	tok, err := jwt.Signed(sig).Claims(std).Claims(map[string]any{o.UsernameClaim: o.Username}).Serialize()
	if err != nil {
		return "", fmt.Errorf("callerauth: %w", err)
	}
	return tok, nil
}
