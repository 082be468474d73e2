package fido2

import (
	"context"
	"errors"

	"github.com/fidoserver/hwfido/server/resulttoken"
)

// IssuerSigner adapts a resulttoken.Issuer — the server's HSM-signed ES256 JWTs, the same
// tokens UAF returns, verifiable with /.well-known/jwks.json — to [ResultSigner]. The
// issuer, audience and lifetime are the issuer's (result-token.* in the server
// configuration; [Config.TokenIssuer], TokenAudience and TokenTTL do not apply). The token
// carries sub (username), op "fido2-auth", keyid (credential ID), session_id
// (fido2SessionId), aaguid and uv (whether this assertion verified the user).
func IssuerSigner(i *resulttoken.Issuer) ResultSigner { return issuerSigner{i} }

type issuerSigner struct{ i *resulttoken.Issuer }

func (s issuerSigner) SignResult(ctx context.Context, claims map[string]any) (string, error) {
	str := func(k string) string { v, _ := claims[k].(string); return v }
	c := resulttoken.Claims{Username: str("sub"), Operation: "fido2-auth", KeyID: str("credentialId"),
		SessionID: str("fido2SessionId"), AAGUID: str("aaguid")}
	if uv, ok := claims["uv"].(bool); ok {
		c.UV = &uv
	}
	if c.Username == "" || c.KeyID == "" {
		return "", errors.New("fido2: result without user or credential")
	}
	return s.i.Issue(ctx, c)
}
