package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/fidoserver/hwfido/server/store"
	"github.com/fidoserver/hwfido/uaf"
)

const testAAID = "FFFF#FC01"

// registered sets up a server with one authenticator and one registration for alice.
func registered(t *testing.T, o envOptions, full bool) (*env, *authr) {
	t.Helper()
	a := newAuthr(t, testAAID, full)
	o.metadata = append(o.metadata, a.statement())
	e := newEnv(t, o)
	_, r, b := e.getRequest("Reg", map[string]string{"username": "alice"}, e.callerToken("alice"))
	if r.StatusCode != uaf.StatusOK {
		t.Fatalf("registration request: %s", b)
	}
	sr := e.sendResponse("Reg", a.register(r, mutations{}))
	if sr.StatusCode != uaf.StatusOK || len(sr.AdditionalTokens) != 1 || sr.AdditionalTokens[0].Type != "JWT" {
		t.Fatalf("registration: %+v", sr)
	}
	if c := e.verifyResultToken(sr.AdditionalTokens[0].Value); c["sub"] != "alice" || c["op"] != "Reg" ||
		c["aaid"] != testAAID || c["keyid"] != a.lastKey {
		t.Fatalf("registration result token claims %+v", c)
	}
	return e, a
}

// verifyResultToken checks the JWT against the server's JWKS and returns its claims.
func (e *env) verifyResultToken(tok string) map[string]any {
	e.t.Helper()
	code, b := e.do("GET", "/.well-known/jwks.json", "", "", nil)
	if code != 200 {
		e.t.Fatalf("jwks: %d", code)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		e.t.Fatal(err)
	}
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		e.t.Fatal(err)
	}
	keys := set.Key(parsed.Headers[0].KeyID)
	if len(keys) != 1 {
		e.t.Fatalf("kid %q not in the JWKS", parsed.Headers[0].KeyID)
	}
	if _, ok := keys[0].Key.(*ecdsa.PublicKey); !ok {
		e.t.Fatalf("JWKS key is %T", keys[0].Key)
	}
	claims := map[string]any{}
	var std jwt.Claims
	if err := parsed.Claims(keys[0].Key, &claims, &std); err != nil {
		e.t.Fatalf("result token does not verify with the JWKS: %v", err)
	}
	if err := std.Validate(jwt.Expected{AnyAudience: jwt.Audience{"https://rp.test"}}); err != nil {
		e.t.Fatal(err)
	}
	return claims
}

func TestRegisterAuthenticateStepUp(t *testing.T) {
	for _, full := range []bool{false, true} {
		name := map[bool]string{false: "surrogate", true: "full"}[full]
		t.Run(name, func(t *testing.T) {
			e, a := registered(t, envOptions{}, full)
			regs, err := e.db().UAFRegistrations(context.Background(), "alice")
			if err != nil || len(regs) != 1 || regs[0].AAID != testAAID || regs[0].KeyID != a.lastKey {
				t.Fatalf("stored: %+v %v", regs, err)
			}
			if full != (regs[0].AttestationType == 0x3E07) || full != (len(regs[0].AttestationCert) > 0) {
				t.Fatalf("attestation stored as %#x with %d cert bytes", regs[0].AttestationType, len(regs[0].AttestationCert))
			}
			// The next registration request disallows the registered key.
			_, r, _ := e.getRequest("Reg", map[string]string{"username": "alice"}, e.callerToken("alice"))
			req, _ := uaf.DecodeRequest([]byte(r.UAFRequest))
			if d := req.Registration.Policy.Disallowed; len(d) != 1 || d[0].KeyIDs[0] != a.lastKey {
				t.Fatalf("disallowed = %+v", d)
			}
			// Step-up: the policy names exactly alice's key.
			_, r, _ = e.getRequest("Auth", map[string]string{"username": "alice"}, "")
			areq, _ := uaf.DecodeRequest([]byte(r.UAFRequest))
			if acc := areq.Authentication.Policy.Accepted; len(acc) != 1 || acc[0][0].KeyIDs[0] != a.lastKey {
				t.Fatalf("step-up policy = %+v", acc)
			}
			resp := a.authenticate(r, mutations{})
			sr := e.sendResponse("Auth", resp)
			if sr.StatusCode != uaf.StatusOK || len(sr.AdditionalTokens) != 1 || sr.AdditionalTokens[0].Type != "JWT" {
				t.Fatalf("authentication: %+v", sr)
			}
			c := e.verifyResultToken(sr.AdditionalTokens[0].Value)
			if c["sub"] != "alice" || c["op"] != "Auth" || c["aaid"] != testAAID || c["keyid"] != a.lastKey {
				t.Fatalf("claims %+v", c)
			}
			// The same response again: the request is used up.
			if sr := e.sendResponse("Auth", resp); sr.StatusCode != uaf.StatusRequestInvalid {
				t.Fatalf("replay: %+v", sr)
			}
			regs, _ = e.db().UAFRegistrations(context.Background(), "alice")
			if regs[0].SignCounter != 1 {
				t.Fatalf("counter = %d", regs[0].SignCounter)
			}
		})
	}
}

func TestUsernamelessAndTransaction(t *testing.T) {
	e, a := registered(t, envOptions{}, false)
	_, r, _ := e.getRequest("Auth", map[string]any{"transaction": "Pay 10 EUR to Bob"}, "")
	sr := e.sendResponse("Auth", a.authenticate(r, mutations{}))
	if sr.StatusCode != uaf.StatusOK {
		t.Fatalf("usernameless transaction: %+v", sr)
	}
	c := e.verifyResultToken(sr.AdditionalTokens[0].Value)
	want := sha256.Sum256([]byte("Pay 10 EUR to Bob"))
	if c["sub"] != "alice" || c["tx_hash"] != base64.RawURLEncoding.EncodeToString(want[:]) {
		t.Fatalf("claims %+v", c)
	}
}

func TestStepUpWithAnotherUsersKey(t *testing.T) {
	e, a := registered(t, envOptions{}, false)
	aliceKey := a.lastKey
	_, r, _ := e.getRequest("Reg", map[string]string{"username": "bob"}, e.callerToken("bob"))
	if sr := e.sendResponse("Reg", a.register(r, mutations{})); sr.StatusCode != uaf.StatusOK {
		t.Fatalf("bob's registration: %+v", sr)
	}
	_, r, _ = e.getRequest("Auth", map[string]string{"username": "bob"}, "")
	if sr := e.sendResponse("Auth", a.authenticate(r, mutations{keyID: aliceKey})); sr.StatusCode != uaf.StatusUnauthorized {
		t.Fatalf("alice's key for bob's step-up: %+v", sr)
	}
}

func TestCounterRegression(t *testing.T) {
	e, a := registered(t, envOptions{}, false)
	_, r, _ := e.getRequest("Auth", map[string]string{"username": "alice"}, "")
	if sr := e.sendResponse("Auth", a.authenticate(r, mutations{})); sr.StatusCode != uaf.StatusOK {
		t.Fatal(sr)
	}
	// Counter stays at 1: refused, recorded, and the request is not used up.
	_, r, _ = e.getRequest("Auth", map[string]string{"username": "alice"}, "")
	if sr := e.sendResponse("Auth", a.authenticate(r, mutations{noCounter: true})); sr.StatusCode != uaf.StatusUnacceptableContent ||
		!strings.Contains(sr.Description, "counter") {
		t.Fatalf("non-increasing counter: %+v", sr)
	}
	ev, err := e.db().SecurityEvents(context.Background(), store.EventPossibleClone)
	if err != nil || len(ev) != 1 || ev[0].Username != "alice" {
		t.Fatalf("security events %+v %v", ev, err)
	}
	if sr := e.sendResponse("Auth", a.authenticate(r, mutations{})); sr.StatusCode != uaf.StatusOK {
		t.Fatalf("same request with a good counter after a refusal: %+v", sr)
	}
}

func TestDeregistration(t *testing.T) {
	e, a := registered(t, envOptions{}, false)
	code, r, b := e.getRequest("Dereg", map[string]string{"username": "alice", "aaid": testAAID, "keyID": a.lastKey}, e.callerToken("alice"))
	if code != 200 || r.StatusCode != uaf.StatusOK {
		t.Fatalf("dereg: %d %s", code, b)
	}
	req, _ := uaf.DecodeRequest([]byte(r.UAFRequest))
	if d := req.Deregistration.Authenticators; len(d) != 1 || d[0].AAID != testAAID || d[0].KeyID != a.lastKey {
		t.Fatalf("dereg request %+v", d)
	}
	if regs, _ := e.db().UAFRegistrations(context.Background(), "alice"); len(regs) != 0 {
		t.Fatalf("registration not deleted: %+v", regs)
	}
	_, r, _ = e.getRequest("Auth", map[string]any{}, "")
	if sr := e.sendResponse("Auth", a.authenticate(r, mutations{})); sr.StatusCode != uaf.StatusUnknownKeyID {
		t.Fatalf("deregistered key: %+v", sr)
	}
}

// TestRefusalsChangeNothing sends one broken response per check and asserts the exact
// status, then shows that the same request still works (nothing was consumed or stored).
func TestRefusalsChangeNothing(t *testing.T) {
	other := newAuthr(t, "FFFF#FC02", false) // valid statement, not in the fc01-only policy
	regCases := []struct {
		name string
		m    mutations
		want uaf.StatusCode
	}{
		{"bad attestation signature", mutations{badSig: true}, uaf.StatusUnacceptableAttestation},
		{"wrong final challenge hash", mutations{krd: func(k *uaf.KeyRegistrationData) { k.FinalChallengeHash[0] ^= 1 }}, uaf.StatusUnacceptableContent},
		{"hash with the wrong function", mutations{krd: func(k *uaf.KeyRegistrationData) { k.FinalChallengeHash = k.FinalChallengeHash[:20] }}, uaf.StatusUnacceptableContent},
		{"unknown AAID", mutations{krd: func(k *uaf.KeyRegistrationData) { k.AAID = "ABCD#0009" }}, uaf.StatusUnknownAAID},
		{"mode 0x02 at registration", mutations{krd: func(k *uaf.KeyRegistrationData) { k.AuthenticationMode = 2 }}, uaf.StatusUnacceptableContent},
		{"algorithm not in metadata", mutations{krd: func(k *uaf.KeyRegistrationData) { k.SignAlg = uaf.AlgSECP256R1ECDSASHA256DER }}, uaf.StatusUnacceptableAlgorithm},
		{"key encoding not in metadata", mutations{krd: func(k *uaf.KeyRegistrationData) { k.PubKeyEncoding = uaf.KeyECCX962DER }}, uaf.StatusUnacceptableAlgorithm},
		{"KeyID too short", mutations{krd: func(k *uaf.KeyRegistrationData) { k.KeyID = k.KeyID[:8] }}, uaf.StatusUnacceptableContent},
		{"untrusted facet", mutations{fc: func(f *uaf.FinalChallengeParams) { f.FacetID = "https://evil.test" }}, uaf.StatusUnacceptableContent},
		{"wrong appID", mutations{fc: func(f *uaf.FinalChallengeParams) { f.AppID = "https://evil.test/facets" }}, uaf.StatusUnacceptableContent},
		{"wrong challenge", mutations{fc: func(f *uaf.FinalChallengeParams) { f.Challenge = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }}, uaf.StatusUnacceptableContent},
		{"fcParams not base64url", mutations{rawFC: "***"}, uaf.StatusUnacceptableContent},
		{"scheme not UAFV1TLV", mutations{scheme: "UAFV2TLV"}, uaf.StatusUnacceptableContent},
	}
	a := newAuthr(t, testAAID, false)
	e := newEnv(t, envOptions{metadata: [][]byte{a.statement(), other.statement()}})
	for _, c := range regCases {
		t.Run("reg/"+c.name, func(t *testing.T) {
			_, r, _ := e.getRequest("Reg", map[string]string{"username": "carol"}, e.callerToken("carol"))
			if sr := e.sendResponse("Reg", a.register(r, c.m)); sr.StatusCode != c.want || sr.Description == "" {
				t.Fatalf("status %d (%s), want %d", sr.StatusCode, sr.Description, c.want)
			}
			if regs, _ := e.db().UAFRegistrations(context.Background(), "carol"); len(regs) != 0 {
				t.Fatalf("a refused registration stored %+v", regs)
			}
			if sr := e.sendResponse("Reg", a.register(r, mutations{})); sr.StatusCode != uaf.StatusOK {
				t.Fatalf("the request was consumed by a refused response: %+v", sr)
			}
			e.getRequest("Dereg", map[string]any{"username": "carol", "deregisterAll": true}, e.callerToken("carol"))
		})
	}
	t.Run("reg/policy refuses AAID", func(t *testing.T) {
		_, r, _ := e.getRequest("Reg", map[string]string{"username": "carol", "policy": "fc01-only"}, e.callerToken("carol"))
		if sr := e.sendResponse("Reg", other.register(r, mutations{})); sr.StatusCode != uaf.StatusUnacceptableAuthenticator {
			t.Fatalf("AAID outside the policy: %+v", sr)
		}
	})
	// Authentication refusals against one registration of dave.
	_, r, _ := e.getRequest("Reg", map[string]string{"username": "dave"}, e.callerToken("dave"))
	if sr := e.sendResponse("Reg", a.register(r, mutations{})); sr.StatusCode != uaf.StatusOK {
		t.Fatal(sr)
	}
	authCases := []struct {
		name string
		tx   bool
		m    mutations
		want uaf.StatusCode
	}{
		{"bad signature", false, mutations{badSig: true}, uaf.StatusUnacceptableContent},
		{"unknown KeyID", false, mutations{sd: func(s *uaf.SignedData) { s.KeyID[0] ^= 1 }}, uaf.StatusUnknownKeyID},
		{"wrong final challenge hash", false, mutations{sd: func(s *uaf.SignedData) { s.FinalChallengeHash[5] ^= 1 }}, uaf.StatusUnacceptableContent},
		{"mode 0x02 without transaction", false, mutations{sd: func(s *uaf.SignedData) { s.AuthenticationMode = 2 }}, uaf.StatusUnacceptableContent},
		{"hash without transaction", false, mutations{sd: func(s *uaf.SignedData) { s.TransactionContentHash = make([]byte, 32) }}, uaf.StatusUnacceptableContent},
		{"mode 0x01 with transaction", true, mutations{sd: func(s *uaf.SignedData) { s.AuthenticationMode = 1 }}, uaf.StatusUnacceptableContent},
		{"wrong transaction hash", true, mutations{sd: func(s *uaf.SignedData) { s.TransactionContentHash[0] ^= 1 }}, uaf.StatusUnacceptableContent},
		{"short nonce", false, mutations{sd: func(s *uaf.SignedData) { s.Nonce = s.Nonce[:4] }}, uaf.StatusUnacceptableContent},
		{"algorithm changed", false, mutations{sd: func(s *uaf.SignedData) { s.SignAlg = uaf.AlgSECP256R1ECDSASHA256DER }}, uaf.StatusUnacceptableAlgorithm},
		{"untrusted facet", false, mutations{fc: func(f *uaf.FinalChallengeParams) { f.FacetID = "android:apk-key-hash:evil" }}, uaf.StatusUnacceptableContent},
	}
	for _, c := range authCases {
		t.Run("auth/"+c.name, func(t *testing.T) {
			ctx := map[string]any{"username": "dave"}
			if c.tx {
				ctx["transaction"] = "Confirm 99 EUR"
			}
			_, r, _ := e.getRequest("Auth", ctx, "")
			before, _ := e.db().UAFRegistrations(context.Background(), "dave")
			if sr := e.sendResponse("Auth", a.authenticate(r, c.m)); sr.StatusCode != c.want {
				t.Fatalf("status %d (%s), want %d", sr.StatusCode, sr.Description, c.want)
			}
			after, _ := e.db().UAFRegistrations(context.Background(), "dave")
			if after[0].SignCounter != before[0].SignCounter {
				t.Fatal("a refused authentication moved the counter")
			}
			if sr := e.sendResponse("Auth", a.authenticate(r, mutations{})); sr.StatusCode != uaf.StatusOK {
				t.Fatalf("the request was consumed by a refused response: %+v", sr)
			}
		})
	}
	t.Run("forged serverData", func(t *testing.T) {
		_, r, _ := e.getRequest("Auth", map[string]any{"username": "dave"}, "")
		resp := a.authenticate(r, mutations{})
		var msgs []map[string]any
		json.Unmarshal([]byte(resp), &msgs)
		hdr := msgs[0]["header"].(map[string]any)
		sd := hdr["serverData"].(string)
		raw, err := base64.RawURLEncoding.DecodeString(sd)
		if err != nil {
			t.Fatal(err)
		}
		raw[len(raw)-1] ^= 1 // a bit of the tag (replacing characters could leave it as it was)
		hdr["serverData"] = base64.RawURLEncoding.EncodeToString(raw)
		b, _ := json.Marshal(msgs)
		if sr := e.sendResponse("Auth", string(b)); sr.StatusCode != uaf.StatusRequestInvalid {
			t.Fatalf("forged serverData: %+v", sr)
		}
	})
	t.Run("registration serverData at authentication", func(t *testing.T) {
		_, rr, _ := e.getRequest("Reg", map[string]string{"username": "dave"}, e.callerToken("dave"))
		_, ar, _ := e.getRequest("Auth", map[string]any{"username": "dave"}, "")
		regReq, _ := uaf.DecodeRequest([]byte(rr.UAFRequest))
		resp := a.authenticate(ar, mutations{})
		var msgs []map[string]any
		json.Unmarshal([]byte(resp), &msgs)
		msgs[0]["header"].(map[string]any)["serverData"] = regReq.Registration.Header.ServerData
		b, _ := json.Marshal(msgs)
		if sr := e.sendResponse("Auth", string(b)); sr.StatusCode != uaf.StatusRequestInvalid && sr.StatusCode != uaf.StatusUnacceptableContent {
			t.Fatalf("cross-operation serverData: %+v", sr)
		}
	})
	t.Run("malformed uafResponse", func(t *testing.T) {
		for _, bad := range []string{"", "[]", "{}", `[{"header":1}]`, `[{"header":{"upv":{"major":1,"minor":0},"op":"Auth"}}]`} {
			if sr := e.sendResponse("Auth", bad); sr.StatusCode != uaf.StatusUnacceptableContent {
				t.Fatalf("%q: %+v", bad, sr)
			}
		}
	})
}

// withoutAssertions turns a response message into a failure report: same header and
// fcParams, no assertions.
func withoutAssertions(t *testing.T, uafResponse string) string {
	t.Helper()
	var msgs []map[string]any
	if err := json.Unmarshal([]byte(uafResponse), &msgs); err != nil || len(msgs) != 1 {
		t.Fatalf("response %q: %v", uafResponse, err)
	}
	msgs[0]["assertions"] = []any{}
	b, _ := json.Marshal(msgs)
	return string(b)
}

// TestClientFailureReport: a response without assertions is accepted only as an authentic
// failure report with codes; it ends the operation (the request cannot be completed
// afterwards); an empty response without codes is refused and consumes nothing.
func TestClientFailureReport(t *testing.T) {
	e, a := registered(t, envOptions{}, false)
	for _, op := range []string{"Auth", "Reg"} {
		t.Run(op, func(t *testing.T) {
			ctxJSON, bearer := map[string]any{"username": "alice", "transaction": "Pay 10 EUR to Bob"}, ""
			if op == "Reg" {
				ctxJSON, bearer = map[string]any{"username": "alice"}, e.callerToken("alice")
			}
			resp := func(r *uaf.ReturnUAFRequest) string {
				if op == "Reg" {
					return a.register(r, mutations{})
				}
				return a.authenticate(r, mutations{})
			}
			// No codes: refused, nothing consumed.
			_, r, _ := e.getRequest(op, ctxJSON, bearer)
			for _, rc := range []string{"", `{}`, `{"asmStatusCode":0,"clientErrorCode":0}`, `{"asmStatusCode":300}`, `not json`} {
				if sr := e.sendResponseCtx(op, withoutAssertions(t, resp(r)), rc); sr.StatusCode != uaf.StatusUnacceptableContent {
					t.Fatalf("empty response with context %q: %+v", rc, sr)
				}
			}
			if sr := e.sendResponse(op, resp(r)); sr.StatusCode != uaf.StatusOK {
				t.Fatalf("the request after refused empty reports: %+v", sr)
			}
			// A cancel report: accepted, and the request is used up.
			_, r, _ = e.getRequest(op, ctxJSON, bearer)
			real := resp(r)
			if sr := e.sendResponseCtx(op, withoutAssertions(t, real), `{"asmStatusCode":3,"clientErrorCode":3}`); sr.StatusCode != uaf.StatusOK ||
				sr.Description != "failure report recorded" || len(sr.AdditionalTokens) != 0 {
				t.Fatalf("cancel report: %+v", sr)
			}
			if sr := e.sendResponse(op, real); sr.StatusCode != uaf.StatusRequestInvalid {
				t.Fatalf("completing a cancelled request: %+v", sr)
			}
			if sr := e.sendResponseCtx(op, withoutAssertions(t, real), `{"asmStatusCode":3,"clientErrorCode":3}`); sr.StatusCode != uaf.StatusRequestInvalid {
				t.Fatalf("second cancel report: %+v", sr)
			}
			// A report with a forged serverData is not authentic.
			forged := strings.Replace(withoutAssertions(t, real), `"serverData":"`, `"serverData":"A`, 1)
			if sr := e.sendResponseCtx(op, forged, `{"clientErrorCode":3}`); sr.StatusCode == uaf.StatusOK {
				t.Fatalf("forged report accepted: %+v", sr)
			}
		})
	}
	// The first key plus the one registered after the refused reports; the cancelled one is not stored.
	if regs, _ := e.db().UAFRegistrations(context.Background(), "alice"); len(regs) != 2 {
		t.Fatalf("registrations after reports: %d", len(regs))
	}
}

// TestDeregisterAllNamesKeys: "deregister all" and "deregister an AAID" name each deleted key
// in the DeregistrationRequest, never a wildcard, and only the user's own keys.
func TestDeregisterAllNamesKeys(t *testing.T) {
	e, a := registered(t, envOptions{}, false)
	first := a.lastKey
	_, r, _ := e.getRequest("Reg", map[string]string{"username": "alice"}, e.callerToken("alice"))
	if sr := e.sendResponse("Reg", a.register(r, mutations{})); sr.StatusCode != uaf.StatusOK {
		t.Fatal(sr)
	}
	second := a.lastKey
	_, r, _ = e.getRequest("Reg", map[string]string{"username": "bob"}, e.callerToken("bob"))
	if sr := e.sendResponse("Reg", a.register(r, mutations{})); sr.StatusCode != uaf.StatusOK {
		t.Fatal(sr)
	}
	for _, c := range []map[string]any{{"username": "alice", "deregisterAll": true}, {"username": "alice", "deregisterAAID": testAAID}} {
		code, r, b := e.getRequest("Dereg", c, e.callerToken("alice"))
		if code != 200 || r.StatusCode != uaf.StatusOK {
			t.Fatalf("%v: %d %s", c, code, b)
		}
		req, _ := uaf.DecodeRequest([]byte(r.UAFRequest))
		got := map[string]bool{}
		for _, d := range req.Deregistration.Authenticators {
			if d.AAID != testAAID {
				t.Fatalf("%v: entry %+v", c, d)
			}
			got[d.KeyID] = true
		}
		if len(got) != 2 || !got[first] || !got[second] {
			t.Fatalf("%v: request names %v, want alice's two keys", c, req.Deregistration.Authenticators)
		}
		if regs, _ := e.db().UAFRegistrations(context.Background(), "bob"); len(regs) != 1 {
			t.Fatalf("bob's key touched: %+v", regs)
		}
		// Register the two keys again for the second case.
		for range 2 {
			_, r, _ := e.getRequest("Reg", map[string]string{"username": "alice"}, e.callerToken("alice"))
			if sr := e.sendResponse("Reg", a.register(r, mutations{})); sr.StatusCode != uaf.StatusOK {
				t.Fatal(sr)
			}
		}
		first, second = "", ""
		regs, _ := e.db().UAFRegistrations(context.Background(), "alice")
		if len(regs) == 2 {
			first, second = regs[0].KeyID, regs[1].KeyID
		}
	}
}
