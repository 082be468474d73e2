package loadgen

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/fidoserver/hwfido/server/callerauth"
	"github.com/fidoserver/hwfido/uaf"
)

// Demo runs one registration, one step-up authentication and one confirmed transaction for
// user with the software authenticator, printing each step and the verified claims of the
// server's result tokens to w.
func Demo(ctx context.Context, o Options, user string, w io.Writer) error {
	if err := checkLoopback(o.URL); err != nil {
		return err
	}
	a, err := NewAuthenticator()
	if err != nil {
		return err
	}
	c := &client{o: o, hc: &http.Client{Timeout: 30 * time.Second}, a: a, user: user}
	tok, err := callerauth.Mint(o.LoginKey, callerauth.MintOptions{Issuer: o.Issuer, Audience: o.Audience, Username: user})
	if err != nil {
		return err
	}
	steps := []struct {
		title, op, bearer string
		ctx               any
	}{
		{"registration (caller token for " + user + ")", "Reg", tok, map[string]string{"username": user}},
		{"step-up authentication", "Auth", "", map[string]string{"username": user}},
		{"transaction confirmation", "Auth", "", map[string]string{"username": user, "transaction": "Pay 120.00 EUR to ACME AG"}},
	}
	for _, s := range steps {
		sr, err := c.ceremonyResponse(ctx, s.op, s.ctx, s.bearer)
		if err != nil {
			return fmt.Errorf("%s: %w", s.title, err)
		}
		fmt.Fprintf(w, "  %-44s statusCode %d %s\n", s.title, sr.StatusCode, sr.Description)
		for _, t := range sr.AdditionalTokens {
			claims, kid, err := verifyWithJWKS(ctx, c, t.Value)
			if err != nil {
				return fmt.Errorf("%s: result token: %w", s.title, err)
			}
			fmt.Fprintf(w, "    result token verified with JWKS kid %s…: %s\n", kid[:12], claims)
		}
	}
	return nil
}

// ceremonyResponse runs request+response and returns the ServerResponse (status 1200
// required).
func (c *client) ceremonyResponse(ctx context.Context, op string, reqCtx any, bearer string) (*uaf.ServerResponse, error) {
	rc, _ := json.Marshal(reqCtx)
	path := map[string]string{"Reg": "registration", "Auth": "authentication"}[op]
	var rr uaf.ReturnUAFRequest
	if err := c.post(ctx, "/nevisfido/uaf/1.1/request/"+path, bearer, uaf.GetUAFRequest{Op: uaf.Operation(op), Context: string(rc)}, &rr); err != nil {
		return nil, err
	}
	if rr.StatusCode != uaf.StatusOK {
		return nil, fmt.Errorf("request status %d", rr.StatusCode)
	}
	resp, err := c.a.Respond(rr.UAFRequest, c.o.FacetID)
	if err != nil {
		return nil, err
	}
	var sr uaf.ServerResponse
	if err := c.post(ctx, "/nevisfido/uaf/1.1/"+path, "", uaf.SendUAFResponse{UAFResponse: resp}, &sr); err != nil {
		return nil, err
	}
	if sr.StatusCode != uaf.StatusOK {
		return nil, fmt.Errorf("status %d %s", sr.StatusCode, sr.Description)
	}
	return &sr, nil
}

// verifyWithJWKS checks a result token against the server's published keys.
func verifyWithJWKS(ctx context.Context, c *client, tok string) (string, string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.o.URL+"/.well-known/jwks.json", nil)
	resp, err := c.hc.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		return "", "", err
	}
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return "", "", err
	}
	kid := parsed.Headers[0].KeyID
	keys := set.Key(kid)
	if len(keys) != 1 {
		return "", "", fmt.Errorf("kid %q is not in the JWKS", kid)
	}
	if _, ok := keys[0].Key.(*ecdsa.PublicKey); !ok {
		return "", "", fmt.Errorf("JWKS key %q is not ECDSA", kid)
	}
	claims := map[string]any{}
	if err := parsed.Claims(keys[0].Key, &claims); err != nil {
		return "", "", err
	}
	var parts []string
	for _, k := range []string{"sub", "op", "aaid", "tx_hash"} {
		if v, ok := claims[k]; ok {
			parts = append(parts, fmt.Sprintf("%s=%v", k, v))
		}
	}
	return strings.Join(parts, " "), kid, nil
}
