package main

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/fidoserver/hwfido/uaf"
)

// jwksPath is where hwfido-server publishes its result-token keys.
const jwksPath = "/.well-known/jwks.json"

// maxJWKS bounds the JWKS download.
const maxJWKS = 256 << 10

// verifyResults checks every result token of sr (additionalTokens) against
// the JWKS the server publishes at <server>/.well-known/jwks.json: ES256,
// the kid must be in the set, the signature must verify and the token must
// be current. For each token it writes one line with the kid and the claims
// a relying party acts on. The server URL was already restricted to https
// or loopback http by the daemon.
//
// require is true for authentications. hwfido-server answers registrations
// with a result token too (op "Reg"), which is verified like any other; with
// require false an answer without tokens is only reported, not an error.
// Tokens whose type is not JWT (dispatchTargetId) are skipped.
func verifyResults(ctx context.Context, w io.Writer, server string, sr *uaf.ServerResponse, require bool) error {
	if sr == nil {
		return errors.New("verify: no server answer")
	}
	fmt.Fprintf(w, "server answered statusCode %d (%s) with %d result token(s)\n", int(sr.StatusCode),
		uaf.EscapeForTerminal(sr.Description), len(sr.AdditionalTokens))
	if len(sr.AdditionalTokens) == 0 {
		if require {
			return errors.New("verify: the server answered without a result token")
		}
		return nil
	}
	set, err := fetchJWKS(ctx, strings.TrimRight(server, "/")+jwksPath)
	if err != nil {
		return err
	}
	for _, t := range sr.AdditionalTokens {
		if t.Type != "JWT" {
			continue // e.g. dispatchTargetId
		}
		line, err := verifyToken(set, t.Value, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintln(w, line)
	}
	return nil
}

func fetchJWKS(ctx context.Context, u string) (*jose.JSONWebKeySet, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("verify: fetch JWKS: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("verify: fetch JWKS: HTTP %d", resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxJWKS)).Decode(&set); err != nil {
		return nil, fmt.Errorf("verify: JWKS: %w", err)
	}
	return &set, nil
}

// verifyToken verifies one compact JWS against set and describes it.
func verifyToken(set *jose.JSONWebKeySet, tok string, now time.Time) (string, error) {
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return "", fmt.Errorf("verify: result token: %w", err)
	}
	kid := parsed.Headers[0].KeyID
	keys := set.Key(kid)
	if len(keys) != 1 {
		return "", fmt.Errorf("verify: result token kid %q is not in the server's JWKS", kid)
	}
	pub, ok := keys[0].Key.(*ecdsa.PublicKey)
	if !ok {
		return "", fmt.Errorf("verify: JWKS key %q is not an ECDSA public key", kid)
	}
	var std jwt.Claims
	claims := map[string]any{}
	if err := parsed.Claims(pub, &std, &claims); err != nil {
		return "", fmt.Errorf("verify: result token signature: %w", err)
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Time: now}, time.Minute); err != nil {
		return "", fmt.Errorf("verify: result token: %w", err)
	}
	var parts []string
	for _, k := range []string{"iss", "sub", "op", "aaid", "keyid", "tx_hash"} {
		if v, ok := claims[k]; ok {
			parts = append(parts, fmt.Sprintf("%s=%v", k, v))
		}
	}
	short := kid
	if len(short) > 12 {
		short = short[:12] + "…"
	}
	return fmt.Sprintf("result token verified with the server's JWKS (ES256, kid %s): %s", short, strings.Join(parts, " ")), nil
}
