// Command fido2demo registers a user and logs in at an hwfido server's FIDO2 endpoints
// with headless Chromium and its virtual authenticator (package browser), then verifies
// the HSM-signed result token with the server's JWKS and prints both ceremonies. It is
// the FIDO2 part of `make demo` (scripts/demo-fido2.sh).
//
// The caller token that authorizes the registration is read from a file, never from the
// command line.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/fidoserver/hwfido/test/browser"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fido2demo:", err)
		os.Exit(1)
	}
}

func run() error {
	base := flag.String("url", "", "the server as the browser sees it, e.g. http://localhost:19080 (RP ID localhost)")
	jwksURL := flag.String("jwks", "", "JWKS URL (default <url>/.well-known/jwks.json)")
	user := flag.String("user", "alice", "username to register and log in")
	tokenFile := flag.String("caller-token-file", "", "file holding the caller token (JWT) for the registration")
	discoverable := flag.Bool("discoverable", true, "register a passkey and log in without a username")
	flag.Parse()
	if *base == "" || *tokenFile == "" {
		return errors.New("-url and -caller-token-file are required")
	}
	if *jwksURL == "" {
		*jwksURL = strings.TrimRight(*base, "/") + "/.well-known/jwks.json"
	}
	tok, err := os.ReadFile(*tokenFile)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fmt.Println("  authenticator: Chromium virtual CTAP2 platform authenticator (resident keys, user verification)")
	res, err := browser.RunCeremony(ctx, *base, browser.Ceremony{
		Username:     *user,
		Headers:      map[string]string{"Authorization": "Bearer " + strings.TrimSpace(string(tok))},
		Discoverable: *discoverable,
	})
	if res != nil && res.Registration != nil {
		r := res.Registration
		fmt.Printf("  registration: status %s, user %s, credential %s, attestation trust %s\n", r.Status, r.Username,
			r.CredentialID, r.AttestationTrust)
	}
	if err != nil {
		return err
	}
	l := res.Login
	mode := "with username"
	if *discoverable {
		mode = "discoverable (passkey, no username)"
	}
	fmt.Printf("  login %s: status %s, user %s, credential %s, user verified %v\n", mode, l.Status, l.Username,
		l.CredentialID, l.UserVerified)
	claims, kid, err := verify(ctx, *jwksURL, l.Token)
	if err != nil {
		return err
	}
	pretty, _ := json.MarshalIndent(claims, "    ", "  ")
	fmt.Printf("  result token: ES256, signed in the HSM by key %s, verified with %s:\n    %s\n", kid, *jwksURL, pretty)
	return nil
}

// verify checks token against the JWKS at jwksURL and returns its claims and key ID.
func verify(ctx context.Context, jwksURL, token string) (map[string]any, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, jwksURL, nil)
	if err != nil {
		return nil, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, "", err
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, "", fmt.Errorf("jwks: %w", err)
	}
	t, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return nil, "", fmt.Errorf("result token: %w", err)
	}
	if len(t.Headers) != 1 {
		return nil, "", errors.New("result token: want exactly one signature")
	}
	kid := t.Headers[0].KeyID
	keys := set.Key(kid)
	if len(keys) != 1 {
		return nil, "", fmt.Errorf("result token: key %q is not published in the JWKS", kid)
	}
	var std jwt.Claims
	var claims map[string]any
	if err := t.Claims(keys[0].Key, &std, &claims); err != nil {
		return nil, "", fmt.Errorf("result token signature: %w", err)
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Time: time.Now()}, 5*time.Second); err != nil {
		return nil, "", fmt.Errorf("result token: %w", err)
	}
	return claims, kid, nil
}
