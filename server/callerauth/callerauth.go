// Package callerauth decides who is calling a protected endpoint — the job nevisFIDO leaves
// to the SecToken that nevisAuth issues and nevisProxy forwards.
//
// Two proofs are accepted:
//   - a caller token: a JWT in "Authorization: Bearer", signed by a configured login
//     service, checked for signature, issuer, audience, expiry and not-before; the username
//     comes from a configured claim. Such a caller acts for that user only.
//   - a client certificate (mutual TLS) verified by the TLS layer against the configured
//     CA, whose subject is on the trusted list. Such a caller is a trusted backend and may
//     name any user.
//
// Anything else is anonymous: [ErrNoCredentials]. A presented but bad proof is
// [ErrInvalid]; both map to HTTP 401.
package callerauth

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Errors returned by [Authenticator.Authenticate].
var (
	// ErrNoCredentials reports an anonymous caller.
	ErrNoCredentials = errors.New("callerauth: no credentials")
	// ErrInvalid reports a caller token or certificate that was presented but not accepted.
	ErrInvalid = errors.New("callerauth: invalid credentials")
)

// Caller is an authenticated caller.
type Caller struct {
	// Username is the user a caller token speaks for; empty for a trusted backend.
	Username string
	// Trusted marks a backend authenticated by client certificate; it may act for any user.
	Trusted bool
	// Subject names the proof for logs: the token issuer or the certificate subject.
	Subject string
}

// MayActFor reports whether c may start an operation for username.
func (c Caller) MayActFor(username string) bool {
	return c.Trusted || (c.Username != "" && c.Username == username)
}

// Issuer is one accepted caller-token issuer.
type Issuer struct {
	Issuer        string
	Audience      string
	Keys          jose.JSONWebKeySet
	UsernameClaim string
	// MaxLifetime bounds how far in the future a token's exp may be (default 1h): a caller
	// token is a bearer credential, and a leaked long-lived one would act for its user
	// until it expires.
	MaxLifetime time.Duration
}

// Options configures [New].
type Options struct {
	Issuers         []Issuer
	TrustedSubjects []string
	// Leeway is the clock skew tolerated on exp/nbf/iat (default 30s).
	Leeway time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Authenticator checks callers. It is safe for concurrent use.
type Authenticator struct {
	issuers  map[string]Issuer
	subjects map[string]bool
	leeway   time.Duration
	now      func() time.Time
}

// algorithms are the JWS algorithms accepted on caller tokens (no "none", no HMAC: the
// server holds only public keys of login services).
var algorithms = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.ES512, jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512, jose.EdDSA}

// New returns an Authenticator.
func New(o Options) (*Authenticator, error) {
	a := &Authenticator{issuers: map[string]Issuer{}, subjects: map[string]bool{}, leeway: o.Leeway, now: o.Now}
	if a.leeway == 0 {
		a.leeway = 30 * time.Second
	}
	if a.now == nil {
		a.now = time.Now
	}
	for _, is := range o.Issuers {
		if is.Issuer == "" || is.Audience == "" || len(is.Keys.Keys) == 0 {
			return nil, fmt.Errorf("callerauth: issuer %q needs an audience and keys", is.Issuer)
		}
		if is.UsernameClaim == "" {
			is.UsernameClaim = "sub"
		}
		if is.MaxLifetime <= 0 {
			is.MaxLifetime = time.Hour
		}
		a.issuers[is.Issuer] = is
	}
	for _, s := range o.TrustedSubjects {
		a.subjects[s] = true
	}
	return a, nil
}

// LoadKeys reads a JWKS file or a PEM file of public keys or certificates.
func LoadKeys(path string) (jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	b, err := os.ReadFile(path)
	if err != nil {
		return set, fmt.Errorf("callerauth: %w", err)
	}
	if t := strings.TrimSpace(string(b)); strings.HasPrefix(t, "{") {
		if err := json.Unmarshal(b, &set); err != nil {
			return set, fmt.Errorf("callerauth: %s: %w", path, err)
		}
		for _, k := range set.Keys {
			if !k.IsPublic() {
				return set, fmt.Errorf("callerauth: %s: holds a private key; give only public keys", path)
			}
		}
		return set, nil
	}
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		var pub crypto.PublicKey
		switch blk.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(blk.Bytes)
		case "CERTIFICATE":
			var c *x509.Certificate
			if c, err = x509.ParseCertificate(blk.Bytes); err == nil {
				pub = c.PublicKey
			}
		default:
			err = fmt.Errorf("PEM block %q is not a public key or certificate", blk.Type)
		}
		if err != nil {
			return set, fmt.Errorf("callerauth: %s: %w", path, err)
		}
		k := jose.JSONWebKey{Key: pub}
		tp, err := k.Thumbprint(crypto.SHA256)
		if err != nil {
			return set, fmt.Errorf("callerauth: %s: %w", path, err)
		}
		k.KeyID = fmt.Sprintf("%x", tp)
		set.Keys = append(set.Keys, k)
	}
	if len(set.Keys) == 0 {
		return set, fmt.Errorf("callerauth: %s: no public keys", path)
	}
	return set, nil
}

// Authenticate identifies the caller of r.
func (a *Authenticator) Authenticate(r *http.Request) (Caller, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || tok == "" {
			return Caller{}, fmt.Errorf("%w: Authorization is not a Bearer token", ErrInvalid)
		}
		return a.verifyToken(tok)
	}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(a.subjects) > 0 {
		leaf := r.TLS.VerifiedChains[0][0]
		if a.subjects[leaf.Subject.String()] || a.subjects[leaf.Subject.CommonName] {
			return Caller{Trusted: true, Subject: leaf.Subject.String()}, nil
		}
		return Caller{}, fmt.Errorf("%w: client certificate subject %q is not trusted", ErrInvalid, leaf.Subject.String())
	}
	return Caller{}, ErrNoCredentials
}

func (a *Authenticator) verifyToken(raw string) (Caller, error) {
	if len(raw) > 8192 {
		return Caller{}, fmt.Errorf("%w: caller token too long", ErrInvalid)
	}
	tok, err := jwt.ParseSigned(raw, algorithms)
	if err != nil {
		return Caller{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	// Read the issuer without trusting it, to pick the keys; then verify for real.
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return Caller{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	is, ok := a.issuers[unverified.Issuer]
	if !ok {
		return Caller{}, fmt.Errorf("%w: unknown issuer", ErrInvalid)
	}
	var std jwt.Claims
	custom := map[string]any{}
	if !verifyWithAny(tok, is.Keys, &std, &custom) {
		return Caller{}, fmt.Errorf("%w: signature does not verify with the issuer's keys", ErrInvalid)
	}
	if std.Expiry == nil {
		return Caller{}, fmt.Errorf("%w: token has no exp", ErrInvalid)
	}
	if std.Expiry.Time().After(a.now().Add(is.MaxLifetime + a.leeway)) {
		return Caller{}, fmt.Errorf("%w: token expires more than %v from now", ErrInvalid, is.MaxLifetime)
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: is.Issuer, AnyAudience: jwt.Audience{is.Audience}, Time: a.now()}, a.leeway); err != nil {
		return Caller{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	user, _ := custom[is.UsernameClaim].(string)
	if user == "" || len(user) > 128 {
		return Caller{}, fmt.Errorf("%w: claim %q is not a username", ErrInvalid, is.UsernameClaim)
	}
	return Caller{Username: user, Subject: is.Issuer}, nil
}

// verifyWithAny verifies tok with the key its header names, or with each key of set when it
// names none, and decodes the claims into out on success.
func verifyWithAny(tok *jwt.JSONWebToken, set jose.JSONWebKeySet, out ...any) bool {
	kid := ""
	if len(tok.Headers) > 0 {
		kid = tok.Headers[0].KeyID
	}
	for _, k := range set.Keys {
		if kid != "" && k.KeyID != kid {
			continue
		}
		if err := tok.Claims(k.Key, out...); err == nil {
			return true
		}
	}
	return false
}
