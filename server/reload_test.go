package server_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/fidoserver/hwfido/hsm"
	"github.com/fidoserver/hwfido/uaf"
)

// jwksKIDs returns the key ids the server's JWKS lists.
func (e *env) jwksKIDs() []string {
	e.t.Helper()
	code, b := e.do("GET", "/.well-known/jwks.json", "", "", nil)
	if code != 200 {
		e.t.Fatalf("jwks: %d", code)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		e.t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KeyID)
	}
	return kids
}

// TestReload: Server.Reload (SIGHUP) picks up a token-signing key rotated by another
// process holding the same SoftHSM token and a metadata statement added to the folder,
// while serving; a metadata folder that no longer loads leaves the previous statements in
// force and is reported.
func TestReload(t *testing.T) {
	e, _ := registered(t, envOptions{}, false)
	ctx := context.Background()
	b := newAuthr(t, "FFFF#FC03", false)
	register := func(user string) *uaf.ServerResponse {
		t.Helper()
		_, r, body := e.getRequest("Reg", map[string]string{"username": user}, e.callerToken(user))
		if r.StatusCode != uaf.StatusOK {
			t.Fatalf("registration request: %s", body)
		}
		return e.sendResponse("Reg", b.register(r, mutations{}))
	}
	if sr := register("bob"); sr.StatusCode == uaf.StatusOK {
		t.Fatal("an authenticator without metadata was registered")
	}

	// Another process (here a second handle on the token) rotates the signing key; the
	// operator adds the new authenticator's statement.
	before := e.jwksKIDs()
	ki, err := e.token.GenerateKey(ctx, hsm.PurposeTokenSigning)
	if err != nil {
		t.Fatal(err)
	}
	mdDir := e.cfg.UAF.Metadata.Path
	if err := os.WriteFile(filepath.Join(mdDir, "fc03.json"), b.statement(), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := e.jwksKIDs(); len(got) != len(before) {
		t.Fatalf("JWKS changed before the reload: %v", got)
	}
	if err := e.srv.Reload(ctx); err != nil {
		t.Fatalf("reload: %v", err)
	}
	after := e.jwksKIDs()
	if len(after) != len(before)+1 || !strings.Contains(strings.Join(after, " "), ki.KID) {
		t.Fatalf("JWKS after the reload %v, before %v, new kid %s", after, before, ki.KID)
	}
	sr := register("bob")
	if sr.StatusCode != uaf.StatusOK || len(sr.AdditionalTokens) != 1 {
		t.Fatalf("registration after the reload: %+v", sr)
	}
	parsed, err := jwt.ParseSigned(sr.AdditionalTokens[0].Value, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil || parsed.Headers[0].KeyID != ki.KID {
		t.Fatalf("result token not signed with the new key: %v", err)
	}
	if c := e.verifyResultToken(sr.AdditionalTokens[0].Value); c["sub"] != "bob" {
		t.Fatalf("claims %v", c)
	}

	// A broken statement: the reload fails naming the key, the loaded statements stay.
	if err := os.WriteFile(filepath.Join(mdDir, "broken.json"), []byte(`{"aaid":`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Reload(ctx); err == nil || !strings.Contains(err.Error(), "fido-uaf.metadata") {
		t.Fatalf("reload with a broken statement: %v", err)
	}
	if sr := register("carol"); sr.StatusCode != uaf.StatusOK {
		t.Fatalf("registration after a failed reload: %+v", sr)
	}
}
