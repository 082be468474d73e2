package rpdemo

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// ErrResultToken reports a result token that does not verify or does not match the
// operation it should prove.
var ErrResultToken = errors.New("rpdemo: result token rejected")

// ResultClaims are the claims of a verified result token (server/resulttoken.Claims).
type ResultClaims struct {
	Username  string `json:"sub"`
	Operation string `json:"op"`
	AAID      string `json:"aaid,omitempty"`
	KeyID     string `json:"keyid,omitempty"`
	TxHash    string `json:"tx_hash,omitempty"`
	SessionID string `json:"session_id,omitempty"`
}

// Expect is what a result token must say.
type Expect struct {
	// Username is the user the token must name (sub); with AnyUser (usernameless
	// authentication) any non-empty sub is accepted and the caller reads it from the claims.
	Username  string
	AnyUser   bool
	Operation string // "Reg" or "Auth"
	SessionID string
	// Transaction is the text the user was asked to confirm; its SHA-256 must be the
	// token's tx_hash. Empty means the token must carry no tx_hash.
	Transaction string
}

// TxHash is the tx_hash a result token carries for a confirmed text/plain transaction:
// base64url (no padding) of SHA-256 of its UTF-8 bytes.
func TxHash(text string) string {
	h := sha256.Sum256([]byte(text))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// Verifier checks result tokens with the keys hwfido-server publishes at
// /.well-known/jwks.json. Keys are cached and fetched again, at most every 10 s, when a
// token names an unknown kid (key rotation). It is safe for concurrent use.
type Verifier struct {
	Client   *Client
	Issuer   string
	Audience string
	// Leeway tolerates clock skew (default 30s).
	Leeway time.Duration
	Now    func() time.Time

	mu      sync.Mutex
	keys    jose.JSONWebKeySet
	fetched time.Time
}

const refetchAfter = 10 * time.Second

func (v *Verifier) key(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if ks := v.keys.Key(kid); len(ks) > 0 {
		return &ks[0], nil
	}
	if !v.fetched.IsZero() && time.Since(v.fetched) < refetchAfter {
		return nil, fmt.Errorf("%w: unknown kid %q", ErrResultToken, kid)
	}
	var set jose.JSONWebKeySet
	if _, err := v.Client.do(ctx, "GET", "/.well-known/jwks.json", "", nil, &set); err != nil {
		return nil, fmt.Errorf("rpdemo: jwks: %w", err)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			return nil, fmt.Errorf("%w: the JWKS holds a private key", ErrUpstream)
		}
	}
	v.keys, v.fetched = set, time.Now()
	if ks := v.keys.Key(kid); len(ks) > 0 {
		return &ks[0], nil
	}
	return nil, fmt.Errorf("%w: unknown kid %q", ErrResultToken, kid)
}

// Verify checks the signature (ES256 only), issuer, audience, lifetime and the operation
// facts of raw against want.
func (v *Verifier) Verify(ctx context.Context, raw string, want Expect) (*ResultClaims, error) {
	if raw == "" || len(raw) > 8192 {
		return nil, fmt.Errorf("%w: missing or oversized", ErrResultToken)
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrResultToken, err)
	}
	if len(tok.Headers) != 1 || tok.Headers[0].KeyID == "" {
		return nil, fmt.Errorf("%w: header names no kid", ErrResultToken)
	}
	k, err := v.key(ctx, tok.Headers[0].KeyID)
	if err != nil {
		return nil, err
	}
	var std jwt.Claims
	var c ResultClaims
	if err := tok.Claims(k.Key, &std, &c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrResultToken, err)
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	leeway := v.Leeway
	if leeway == 0 {
		leeway = 30 * time.Second
	}
	if std.Expiry == nil {
		return nil, fmt.Errorf("%w: no exp", ErrResultToken)
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: v.Issuer, AnyAudience: jwt.Audience{v.Audience}, Time: now()}, leeway); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrResultToken, err)
	}
	switch {
	case want.AnyUser && c.Username == "":
		return nil, fmt.Errorf("%w: no sub", ErrResultToken)
	case !want.AnyUser && c.Username != want.Username:
		return nil, fmt.Errorf("%w: sub %q, want %q", ErrResultToken, c.Username, want.Username)
	case c.Operation != want.Operation:
		return nil, fmt.Errorf("%w: op %q, want %q", ErrResultToken, c.Operation, want.Operation)
	case want.SessionID != "" && c.SessionID != want.SessionID:
		return nil, fmt.Errorf("%w: session_id does not match the operation", ErrResultToken)
	case want.Transaction == "" && c.TxHash != "":
		return nil, fmt.Errorf("%w: unexpected tx_hash", ErrResultToken)
	case want.Transaction != "" && c.TxHash != TxHash(want.Transaction):
		return nil, fmt.Errorf("%w: tx_hash is not the hash of the transaction shown", ErrResultToken)
	}
	return &c, nil
}
