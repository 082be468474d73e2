package server_test

// Tests of the UAF 1.1 server checks that the audit (docs/uaf-checks.md) found missing or
// untested. Every refusal asserts the exact statusCode, that nothing was stored or moved and
// that the request was not consumed (the same request still succeeds afterwards).

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/metadata"
	"github.com/fidoserver/hwfido/server/callerauth"
	"github.com/fidoserver/hwfido/server/store"
	"github.com/fidoserver/hwfido/uaf"
	"github.com/fidoserver/hwfido/uaf/uaftest"
)

// registerCheck registers one key of a for user and fails the test otherwise.
func registerCheck(t *testing.T, e *checkEnv, a *uaftest.Authenticator, user string) {
	t.Helper()
	r := e.request("Reg", map[string]string{"username": user})
	if sr := e.respond("Reg", uafAnswer(t, a, r, facetID)); sr.StatusCode != uaf.StatusOK {
		t.Fatalf("registration of %s: %d %s", user, sr.StatusCode, sr.Description)
	}
}

// refusedReg sends a broken answer to a fresh registration request of user, asserts the
// code and that nothing was stored, then completes the same request with a good answer.
func refusedReg(t *testing.T, e *checkEnv, a *uaftest.Authenticator, user string, broken func(r *uaf.ReturnUAFRequest) string,
	want uaf.StatusCode, desc string, fix func()) {
	t.Helper()
	before := len(e.regs(user))
	r := e.request("Reg", map[string]string{"username": user})
	wantRefused(t, e.respond("Reg", broken(r)), want, desc)
	if n := len(e.regs(user)); n != before {
		t.Fatalf("a refused registration stored a key (%d -> %d)", before, n)
	}
	if fix != nil {
		fix()
	}
	if sr := e.respond("Reg", uafAnswer(t, a, r, facetID)); sr.StatusCode != uaf.StatusOK {
		t.Fatalf("the request was consumed by the refusal: %d %s", sr.StatusCode, sr.Description)
	}
}

// refusedAuth is refusedReg for a step-up authentication of user (ctx adds context keys).
func refusedAuth(t *testing.T, e *checkEnv, a *uaftest.Authenticator, user string, ctx map[string]any,
	broken func(r *uaf.ReturnUAFRequest) string, want uaf.StatusCode, desc string, fix func()) {
	t.Helper()
	c := map[string]any{"username": user}
	for k, v := range ctx {
		c[k] = v
	}
	r := e.request("Auth", c)
	before := e.regs(user)[0].SignCounter
	wantRefused(t, e.respond("Auth", broken(r)), want, desc)
	if after := e.regs(user)[0].SignCounter; after != before {
		t.Fatalf("a refused authentication moved the counter %d -> %d", before, after)
	}
	if fix != nil {
		fix()
	}
	if sr := e.respond("Auth", uafAnswer(t, a, r, facetID)); sr.StatusCode != uaf.StatusOK {
		t.Fatalf("the request was consumed by the refusal: %d %s", sr.StatusCode, sr.Description)
	}
}

// withExts adds an extension to the header or to the first assertion of a message.
func withExts(t *testing.T, resp, where string, failIfUnknown bool) string {
	ext := []any{map[string]any{"id": "org.example.unknown", "data": "AA", "fail_if_unknown": failIfUnknown}}
	return editMessage(t, resp, func(m map[string]any) {
		if where == "header" {
			m["header"].(map[string]any)["exts"] = ext
			return
		}
		m["assertions"].([]any)[0].(map[string]any)["exts"] = ext
	})
}

// TestUAFCheckFailIfUnknown: an extension the server does not understand is refused with
// 1498 when it has fail_if_unknown true, in the header and in an assertion, for both
// operations; without the flag it is ignored (UAF 1.1 protocol §3.1.4).
func TestUAFCheckFailIfUnknown(t *testing.T) {
	a, st := newCheckAuthr(t, uaftest.Options{AAID: "FFFF#FC01"})
	e := newCheckEnv(t, st)
	for _, where := range []string{"header", "assertion"} {
		t.Run("reg/"+where, func(t *testing.T) {
			refusedReg(t, e, a, "ext-"+where, func(r *uaf.ReturnUAFRequest) string {
				return withExts(t, uafAnswer(t, a, r, facetID), where, true)
			}, uaf.StatusUnacceptableContent, "fail_if_unknown", nil)
			r := e.request("Reg", map[string]string{"username": "ext-" + where})
			if sr := e.respond("Reg", withExts(t, uafAnswer(t, a, r, facetID), where, false)); sr.StatusCode != uaf.StatusOK {
				t.Fatalf("non-critical %s extension: %d %s", where, sr.StatusCode, sr.Description)
			}
		})
		t.Run("auth/"+where, func(t *testing.T) {
			refusedAuth(t, e, a, "ext-"+where, nil, func(r *uaf.ReturnUAFRequest) string {
				return withExts(t, uafAnswer(t, a, r, facetID), where, true)
			}, uaf.StatusUnacceptableContent, "fail_if_unknown", nil)
			r := e.request("Auth", map[string]any{"username": "ext-" + where})
			if sr := e.respond("Auth", withExts(t, uafAnswer(t, a, r, facetID), where, false)); sr.StatusCode != uaf.StatusOK {
				t.Fatalf("non-critical %s extension: %d %s", where, sr.StatusCode, sr.Description)
			}
		})
	}
}

// TestUAFCheckAssertionSchemeOfMetadata: the assertion scheme must be the one of the
// authenticator's metadata (a statement of another protocol family is not a UAF
// authenticator) → 1492, at registration and at authentication.
func TestUAFCheckAssertionSchemeOfMetadata(t *testing.T) {
	a, st := newCheckAuthr(t, uaftest.Options{AAID: "FFFF#FC01"})
	e := newCheckEnv(t, st)
	u2f := func(s *metadata.Statement) { s.ProtocolFamily, s.AssertionScheme = "u2f", "U2FV1BIN" }
	restore := func() { e.md.set(t, st, nil) }
	e.md.update("FFFF#FC01", u2f)
	refusedReg(t, e, a, "scheme", func(r *uaf.ReturnUAFRequest) string { return uafAnswer(t, a, r, facetID) },
		uaf.StatusUnacceptableAuthenticator, "assertion scheme", restore)
	e.md.update("FFFF#FC01", func(s *metadata.Statement) { s.AssertionScheme = "UAFV2TLV" })
	refusedAuth(t, e, a, "scheme", nil, func(r *uaf.ReturnUAFRequest) string { return uafAnswer(t, a, r, facetID) },
		uaf.StatusUnacceptableAuthenticator, "assertion scheme", restore)
}

// TestUAFCheckAuthenticatorVersion: KRD and SIGNED_DATA AuthenticatorVersion must not be
// below the statement's authenticatorVersion (the earliest trustworthy firmware) → 1492.
func TestUAFCheckAuthenticatorVersion(t *testing.T) {
	a, st := newCheckAuthr(t, uaftest.Options{AAID: "FFFF#FC01", AuthenticatorVersion: 3})
	e := newCheckEnv(t, st)
	restore := func() { e.md.set(t, st, nil) }
	newer := func(s *metadata.Statement) { s.AuthenticatorVersion = 4 }
	e.md.update("FFFF#FC01", newer)
	refusedReg(t, e, a, "version", func(r *uaf.ReturnUAFRequest) string { return uafAnswer(t, a, r, facetID) },
		uaf.StatusUnacceptableAuthenticator, "version", restore)
	// Registered with version 3; the metadata now says firmware below 4 is not trustworthy.
	e.md.update("FFFF#FC01", newer)
	refusedAuth(t, e, a, "version", nil, func(r *uaf.ReturnUAFRequest) string { return uafAnswer(t, a, r, facetID) },
		uaf.StatusUnacceptableAuthenticator, "version", restore)
}

// TestUAFCheckTransactionDisplay: a transaction is confirmed only by an authenticator whose
// metadata declares a transaction confirmation display for the transaction's content type →
// 1492 otherwise; a plain authentication is not affected.
func TestUAFCheckTransactionDisplay(t *testing.T) {
	a, st := newCheckAuthr(t, uaftest.Options{AAID: "FFFF#FC01"})
	e := newCheckEnv(t, st)
	registerCheck(t, e, a, "tc")
	restore := func() { e.md.set(t, st, nil) }
	tx := map[string]any{"transaction": "Pay 10 EUR to Bob"}
	answer := func(r *uaf.ReturnUAFRequest) string { return uafAnswer(t, a, r, facetID) }
	e.md.update("FFFF#FC01", func(s *metadata.Statement) { s.TcDisplay = 0 })
	refusedAuth(t, e, a, "tc", tx, answer, uaf.StatusUnacceptableAuthenticator, "no transaction confirmation display", restore)
	e.md.update("FFFF#FC01", func(s *metadata.Statement) { s.TcDisplayContentType = "image/png" })
	refusedAuth(t, e, a, "tc", tx, answer, uaf.StatusUnacceptableAuthenticator, "content type", restore)
	// Without a transaction the display does not matter.
	e.md.update("FFFF#FC01", func(s *metadata.Statement) { s.TcDisplay = 0 })
	r := e.request("Auth", map[string]any{"username": "tc"})
	if sr := e.respond("Auth", answer(r)); sr.StatusCode != uaf.StatusOK {
		t.Fatalf("plain authentication with tcDisplay 0: %d %s", sr.StatusCode, sr.Description)
	}
}

// TestUAFCheckSurrogateWithRoots: a statement that lists attestation roots but only Basic
// Surrogate expects another attestation method → 1496; listing Basic Full too is accepted
// (reference metadata.md §7).
func TestUAFCheckSurrogateWithRoots(t *testing.T) {
	a, st := newCheckAuthr(t, uaftest.Options{AAID: "FFFF#FC0D", Attestation: uaf.AttestationBasicSurrogate})
	full, _ := newCheckAuthr(t, uaftest.Options{AAID: "FFFF#FC0E"})
	root := base64.StdEncoding.EncodeToString(full.Root().Raw)
	e := newCheckEnv(t)
	e.md.set(t, st, func(m map[string]any) { m["attestationRootCertificates"] = []string{root} })
	refusedReg(t, e, a, "surrogate", func(r *uaf.ReturnUAFRequest) string { return uafAnswer(t, a, r, facetID) },
		uaf.StatusUnacceptableAttestation, "attestation roots", func() {
			e.md.set(t, st, func(m map[string]any) {
				m["attestationRootCertificates"] = []string{root}
				m["attestationTypes"] = []int{int(uaf.AttestationBasicFull), int(uaf.AttestationBasicSurrogate)}
			})
		})
}

// TestUAFCheckSameKeyTwice: one key sent twice in one response does not count as two
// authenticators (an AND policy of a usernameless request) and does not register twice → 1498,
// without a false cloned-authenticator event.
func TestUAFCheckSameKeyTwice(t *testing.T) {
	a, st := newCheckAuthr(t, uaftest.Options{AAID: "FFFF#FC01"})
	b, stb := newCheckAuthr(t, uaftest.Options{AAID: "FFFF#FC03"})
	e := newCheckEnv(t, st, stb)
	twice := func(resp string) string {
		return editMessage(t, resp, func(m map[string]any) {
			as := m["assertions"].([]any)
			m["assertions"] = []any{as[0], as[0]}
		})
	}
	refusedReg(t, e, a, "twice", func(r *uaf.ReturnUAFRequest) string { return twice(uafAnswer(t, a, r, facetID)) },
		uaf.StatusUnacceptableContent, "two assertions", nil)
	// The usernameless request asks for two authenticators (fingerprint AND hardware key);
	// the single key has both properties.
	registerCheck(t, e, b, "twice2")
	r := e.request("Auth", map[string]any{"policy": "fp-and-hw"})
	before := e.regs("twice2")[0].SignCounter
	wantRefused(t, e.respond("Auth", twice(uafAnswer(t, b, r, facetID))), uaf.StatusUnacceptableContent, "two assertions")
	if after := e.regs("twice2")[0].SignCounter; after != before {
		t.Fatalf("counter moved %d -> %d", before, after)
	}
	if ev, err := e.db.SecurityEvents(context.Background(), store.EventPossibleClone); err != nil || len(ev) != 0 {
		t.Fatalf("security events %+v %v", ev, err)
	}
	// One assertion cannot satisfy the two-authenticator policy either.
	wantRefused(t, e.respond("Auth", uafAnswer(t, b, r, facetID)), uaf.StatusUnacceptableAuthenticator, "policy")
}

// TestUAFCheckServerDataLifecycle: an expired request, a used request and a request of
// another operation are 1491; a header.appID that is not the server's is 1498.
func TestUAFCheckServerDataLifecycle(t *testing.T) {
	a, st := newCheckAuthr(t, uaftest.Options{AAID: "FFFF#FC01"})
	e := newCheckEnv(t, st)
	t.Run("expired", func(t *testing.T) {
		r := e.request("Reg", map[string]string{"username": "sd"})
		resp := uafAnswer(t, a, r, facetID)
		e.advance(5*time.Minute + time.Second)
		wantRefused(t, e.respond("Reg", resp), uaf.StatusRequestInvalid, "expired")
		if len(e.regs("sd")) != 0 {
			t.Fatal("an expired request registered a key")
		}
	})
	t.Run("used", func(t *testing.T) {
		r := e.request("Reg", map[string]string{"username": "sd"})
		if sr := e.respond("Reg", uafAnswer(t, a, r, facetID)); sr.StatusCode != uaf.StatusOK {
			t.Fatal(sr)
		}
		wantRefused(t, e.respond("Reg", uafAnswer(t, a, r, facetID)), uaf.StatusRequestInvalid, "already used")
		if n := len(e.regs("sd")); n != 1 {
			t.Fatalf("%d registrations after a replay", n)
		}
		r = e.request("Auth", map[string]any{"username": "sd"})
		resp := uafAnswer(t, a, r, facetID)
		if sr := e.respond("Auth", resp); sr.StatusCode != uaf.StatusOK {
			t.Fatal(sr)
		}
		c := e.regs("sd")[0].SignCounter
		wantRefused(t, e.respond("Auth", resp), uaf.StatusRequestInvalid, "already used")
		if e.regs("sd")[0].SignCounter != c {
			t.Fatal("a replay moved the counter")
		}
	})
	t.Run("other operation", func(t *testing.T) {
		reg := e.request("Reg", map[string]string{"username": "sd"})
		regReq, _ := uaf.DecodeRequest([]byte(reg.UAFRequest))
		r := e.request("Auth", map[string]any{"username": "sd"})
		resp := editMessage(t, uafAnswer(t, a, r, facetID), func(m map[string]any) {
			m["header"].(map[string]any)["serverData"] = regReq.Registration.Header.ServerData
		})
		wantRefused(t, e.respond("Auth", resp), uaf.StatusRequestInvalid, "another operation")
	})
	t.Run("header appID", func(t *testing.T) {
		refusedReg(t, e, a, "sd2", func(r *uaf.ReturnUAFRequest) string {
			return editMessage(t, uafAnswer(t, a, r, facetID), func(m map[string]any) {
				m["header"].(map[string]any)["appID"] = "https://evil.test/facets"
			})
		}, uaf.StatusUnacceptableContent, "header.appID", nil)
	})
}

// TestUAFCheckFacets: the facet IDs of the trusted facet list are accepted in all three
// forms; anything else, including another spelling of a listed Android key hash, is 1498 —
// facet IDs are compared exactly (list both spellings when clients differ).
func TestUAFCheckFacets(t *testing.T) {
	a, st := newCheckAuthr(t, uaftest.Options{AAID: "FFFF#FC01"})
	e := newCheckEnv(t, st)
	for _, f := range []string{"ios:bundle-id:org.example.app", androidFacet, facetID} {
		r := e.request("Reg", map[string]string{"username": "facets"})
		if sr := e.respond("Reg", uafAnswer(t, a, r, f)); sr.StatusCode != uaf.StatusOK {
			t.Fatalf("registration from trusted facet %s: %d %s", f, sr.StatusCode, sr.Description)
		}
		r = e.request("Auth", map[string]any{"username": "facets"})
		if sr := e.respond("Auth", uafAnswer(t, a, r, f)); sr.StatusCode != uaf.StatusOK {
			t.Fatalf("authentication from trusted facet %s: %d %s", f, sr.StatusCode, sr.Description)
		}
	}
	for _, f := range []string{"ios:bundle-id:org.example.evil", strings.TrimSuffix(androidFacet, "="),
		"android:apk-key-hash:hoG2zCMzhpGCNnLFceBuVpPfDqM", "https://app.test.evil.test", "https://app.test:8443"} {
		refusedReg(t, e, a, "facets-bad", func(r *uaf.ReturnUAFRequest) string { return uafAnswer(t, a, r, f) },
			uaf.StatusUnacceptableContent, "trusted facet", nil)
		refusedAuth(t, e, a, "facets", nil, func(r *uaf.ReturnUAFRequest) string { return uafAnswer(t, a, r, f) },
			uaf.StatusUnacceptableContent, "trusted facet", nil)
	}
}

// TestUAFCheckRevokedAuthenticator: a metadata status report the status policy refuses
// (REVOKED, a model-wide ATTESTATION_KEY_COMPROMISE) refuses the AAID with 1493 at
// registration and at authentication; a report not yet in effect does not.
func TestUAFCheckRevokedAuthenticator(t *testing.T) {
	a, st := newCheckAuthr(t, uaftest.Options{AAID: "FFFF#FC01"})
	e := newCheckEnv(t, st)
	registerCheck(t, e, a, "revoked")
	restore := func() { e.md.set(t, st, nil) }
	answer := func(r *uaf.ReturnUAFRequest) string { return uafAnswer(t, a, r, facetID) }
	for _, s := range []metadata.Status{metadata.StatusRevoked, metadata.StatusAttestationKeyCompromise, metadata.StatusUserKeyRemoteCompromise} {
		report := func(m *metadata.Statement) {
			m.StatusReports = []metadata.StatusReport{{Status: metadata.StatusFIDOCertified, EffectiveDate: e.clock().AddDate(-1, 0, 0)},
				{Status: s, EffectiveDate: e.clock().AddDate(0, 0, -1)}}
		}
		e.md.update("FFFF#FC01", report)
		refusedReg(t, e, a, "revoked2", answer, uaf.StatusRevokedAuthenticator, "status", restore)
		e.md.update("FFFF#FC01", report)
		refusedAuth(t, e, a, "revoked", nil, answer, uaf.StatusRevokedAuthenticator, "status", restore)
	}
	e.md.update("FFFF#FC01", func(m *metadata.Statement) {
		m.StatusReports = []metadata.StatusReport{{Status: metadata.StatusRevoked, EffectiveDate: e.clock().AddDate(0, 0, 7)}}
	})
	r := e.request("Auth", map[string]any{"username": "revoked"})
	if sr := e.respond("Auth", answer(r)); sr.StatusCode != uaf.StatusOK {
		t.Fatalf("report effective next week: %d %s", sr.StatusCode, sr.Description)
	}
}

// TestUAFCheckBatchCompromise: an ATTESTATION_KEY_COMPROMISE report that names one
// batch's CA (the intermediate that issued the attestation certificate, or the root
// above it) refuses with 1493 new registrations of that batch and authentications with
// keys registered with it, even after a later certification report of the model; a
// report naming another batch refuses neither. UPDATE_AVAILABLE refuses registrations
// only.
func TestUAFCheckBatchCompromise(t *testing.T) {
	a, st := newCheckAuthr(t, uaftest.Options{AAID: "FFFF#FC03", Intermediate: true})
	chain := a.AttestationChain()
	if len(chain) != 2 {
		t.Fatalf("attestation chain of %d certificates", len(chain))
	}
	batchCA, err := x509.ParseCertificate(chain[1])
	if err != nil {
		t.Fatal(err)
	}
	other, _ := newCheckAuthr(t, uaftest.Options{AAID: "FFFF#FC04"})
	otherLeaf, err := x509.ParseCertificate(other.AttestationChain()[0])
	if err != nil {
		t.Fatal(err)
	}
	e := newCheckEnv(t, st)
	registerCheck(t, e, a, "batch")
	restore := func() { e.md.set(t, st, nil) }
	answer := func(r *uaf.ReturnUAFRequest) string { return uafAnswer(t, a, r, facetID) }
	compromised := func(cert *x509.Certificate) func(*metadata.Statement) {
		return func(m *metadata.Statement) {
			m.StatusReports = []metadata.StatusReport{
				{Status: metadata.StatusFIDOCertified, EffectiveDate: e.clock().AddDate(-1, 0, 0)},
				{Status: metadata.StatusAttestationKeyCompromise, EffectiveDate: e.clock().AddDate(0, 0, -2),
					CertificateDER: cert.Raw, Certificate: cert},
				// A later report of the whole model does not lift the batch's compromise.
				{Status: metadata.StatusFIDOCertifiedL1, EffectiveDate: e.clock().AddDate(0, 0, -1)},
			}
		}
	}
	e.md.update("FFFF#FC03", compromised(batchCA))
	refusedReg(t, e, a, "batch2", answer, uaf.StatusRevokedAuthenticator, "attestation certificate", restore)
	e.md.update("FFFF#FC03", compromised(batchCA))
	refusedAuth(t, e, a, "batch", nil, answer, uaf.StatusRevokedAuthenticator, "refuses its keys", restore)
	// The root above the batch CA: the chain stored at registration reaches it.
	e.md.update("FFFF#FC03", compromised(a.Root()))
	refusedReg(t, e, a, "batch2", answer, uaf.StatusRevokedAuthenticator, "attestation certificate", restore)
	e.md.update("FFFF#FC03", compromised(a.Root()))
	refusedAuth(t, e, a, "batch", nil, answer, uaf.StatusRevokedAuthenticator, "refuses its keys", restore)
	// UPDATE_AVAILABLE for a newer firmware refuses new registrations, not keys in use.
	e.md.update("FFFF#FC03", func(m *metadata.Statement) {
		m.StatusReports = []metadata.StatusReport{{Status: metadata.StatusUpdateAvailable,
			EffectiveDate: e.clock().AddDate(0, 0, -1), AuthenticatorVersion: m.AuthenticatorVersion + 1}}
	})
	refusedReg(t, e, a, "batch4", answer, uaf.StatusRevokedAuthenticator, "status", restore)
	e.md.update("FFFF#FC03", func(m *metadata.Statement) {
		m.StatusReports = []metadata.StatusReport{{Status: metadata.StatusUpdateAvailable,
			EffectiveDate: e.clock().AddDate(0, 0, -1), AuthenticatorVersion: m.AuthenticatorVersion + 1}}
	})
	if sr := e.respond("Auth", answer(e.request("Auth", map[string]any{"username": "batch"}))); sr.StatusCode != uaf.StatusOK {
		t.Fatalf("UPDATE_AVAILABLE refused a key in use: %d %s", sr.StatusCode, sr.Description)
	}
	restore()
	// Another batch's compromise.
	e.md.update("FFFF#FC03", compromised(otherLeaf))
	registerCheck(t, e, a, "batch3")
	r := e.request("Auth", map[string]any{"username": "batch"})
	if sr := e.respond("Auth", answer(r)); sr.StatusCode != uaf.StatusOK {
		t.Fatalf("another batch's compromise refused the authentication: %d %s", sr.StatusCode, sr.Description)
	}
}

// TestUAFCheckStepUpPolicy: a step-up (or transaction confirmation) request names a policy,
// which limits the user's keys the request offers and is applied again to each
// assertion: a key the policy does not accept (not in its accepted list, or disallowed)
// is refused with 1492 even when the client answers with it, and a user none of whose
// keys the policy accepts gets 1404.
func TestUAFCheckStepUpPolicy(t *testing.T) {
	a, sta := newCheckAuthr(t, uaftest.Options{AAID: "FFFF#FC01"})
	b, stb := newCheckAuthr(t, uaftest.Options{AAID: "FFFF#FC03"})
	e := newCheckEnv(t, sta, stb)
	registerCheck(t, e, a, "zoe")
	registerCheck(t, e, b, "zoe")
	registerCheck(t, e, b, "yan")
	policyOf := func(r *uaf.ReturnUAFRequest) any {
		var msgs []map[string]any
		if err := json.Unmarshal([]byte(r.UAFRequest), &msgs); err != nil {
			t.Fatal(err)
		}
		return msgs[0]["policy"]
	}
	open := policyOf(e.request("Auth", map[string]any{"username": "zoe"})) // both keys
	for _, name := range []string{"fc01-only", "no-fc03"} {
		r := e.request("Auth", map[string]any{"username": "zoe", "policy": name})
		if strings.Contains(r.UAFRequest, `"aaid":["`+b.AAID()+`"],"keyIDs"`) {
			t.Fatalf("%s: the request offers the FC03 key: %s", name, r.UAFRequest)
		}
		// The FC03 authenticator answers as if the request had offered its key.
		var msgs []map[string]any
		if err := json.Unmarshal([]byte(r.UAFRequest), &msgs); err != nil {
			t.Fatal(err)
		}
		msgs[0]["policy"] = open
		loose := *r
		raw, _ := json.Marshal(msgs)
		loose.UAFRequest = string(raw)
		before := e.regs("zoe")
		wantRefused(t, e.respond("Auth", uafAnswer(t, b, &loose, facetID)), uaf.StatusUnacceptableAuthenticator, "not accepted by the policy")
		if after := e.regs("zoe"); after[0].SignCounter != before[0].SignCounter || after[1].SignCounter != before[1].SignCounter {
			t.Fatalf("%s: a refused step-up moved a counter", name)
		}
		// The same request answered with the FC01 key succeeds (it was not consumed).
		if sr := e.respond("Auth", uafAnswer(t, a, r, facetID)); sr.StatusCode != uaf.StatusOK {
			t.Fatalf("%s: FC01 step-up: %d %s", name, sr.StatusCode, sr.Description)
		}
	}
	// A policy of two authenticators (fingerprint AND hardware key) is not met by one
	// assertion in a step-up either: zoe (two keys) gets a request, and answering it with
	// one assertion is refused; yan (one key with both properties) gets 1404, as does a
	// user none of whose keys the policy accepts.
	r2 := e.request("Auth", map[string]any{"username": "zoe", "policy": "fp-and-hw"})
	wantRefused(t, e.respond("Auth", uafAnswer(t, b, r2, facetID)), uaf.StatusUnacceptableAuthenticator, "do not satisfy the policy")
	stepUp := func(user, pol string) uaf.StatusCode {
		t.Helper()
		c, _ := json.Marshal(map[string]any{"username": user, "policy": pol})
		body, _ := json.Marshal(uaf.GetUAFRequest{Op: uaf.OpAuth, Context: string(c)})
		r, err := e.svc.Request(context.Background(), "Auth", body, &callerauth.Caller{Trusted: true, Subject: "uafcheck"})
		if err != nil {
			t.Fatal(err)
		}
		return r.(*uaf.ReturnUAFRequest).StatusCode
	}
	for _, pol := range []string{"fp-and-hw", "fc01-only"} {
		if code := stepUp("yan", pol); code != uaf.StatusNotFound {
			t.Fatalf("%s: user without keys that meet the policy: %d", pol, code)
		}
	}
	// A key whose metadata is gone is offered (the response says 1480), unless the policy
	// disallows its AAID.
	e.md.remove(b.AAID())
	if code := stepUp("yan", "default"); code != uaf.StatusOK {
		t.Fatalf("key without metadata, default policy: %d", code)
	}
	if code := stepUp("yan", "no-fc03"); code != uaf.StatusNotFound {
		t.Fatalf("key without metadata, its AAID disallowed: %d", code)
	}
}

// TestUAFCheckKeyIDOfAnotherUser: a registration that claims a KeyID already registered (to
// another user) is refused with 1492 and overwrites nothing.
func TestUAFCheckKeyIDOfAnotherUser(t *testing.T) {
	ar := newAuthr(t, testAAID, false)
	e := newCheckEnv(t, ar.statement())
	r := e.request("Reg", map[string]string{"username": "alice"})
	if sr := e.respond("Reg", ar.register(r, mutations{})); sr.StatusCode != uaf.StatusOK {
		t.Fatal(sr)
	}
	alice := e.regs("alice")[0]
	kid, _ := base64.RawURLEncoding.DecodeString(alice.KeyID)
	r = e.request("Reg", map[string]string{"username": "mallory"})
	wantRefused(t, e.respond("Reg", ar.register(r, mutations{krd: func(k *uaf.KeyRegistrationData) { k.KeyID = kid }})),
		uaf.StatusUnacceptableAuthenticator, "already registered")
	if n := len(e.regs("mallory")); n != 0 {
		t.Fatalf("mallory has %d keys", n)
	}
	if now := e.regs("alice")[0]; string(now.PublicKey) != string(alice.PublicKey) || now.Username != "alice" {
		t.Fatalf("alice's key changed: %+v", now)
	}
}

// TestUAFCheckAttestationValidity: a Basic Full chain is verified at the server's time — an
// expired or not yet valid attestation certificate is 1496.
func TestUAFCheckAttestationValidity(t *testing.T) {
	now := time.Now()
	for name, o := range map[string]uaftest.Options{
		"expired":   {AAID: "FFFF#FC01", NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)},
		"not yet":   {AAID: "FFFF#FC01", NotBefore: now.Add(24 * time.Hour), NotAfter: now.Add(48 * time.Hour)},
		"surrogate": {AAID: "FFFF#FC01", Attestation: uaf.AttestationBasicSurrogate},
	} {
		t.Run(name, func(t *testing.T) {
			a, st := newCheckAuthr(t, o)
			e := newCheckEnv(t, st)
			r := e.request("Reg", map[string]string{"username": "att"})
			sr := e.respond("Reg", uafAnswer(t, a, r, facetID))
			if name == "surrogate" {
				if sr.StatusCode != uaf.StatusOK {
					t.Fatalf("surrogate (no chain): %d %s", sr.StatusCode, sr.Description)
				}
				return
			}
			wantRefused(t, sr, uaf.StatusUnacceptableAttestation, "chain")
			if len(e.regs("att")) != 0 {
				t.Fatal("stored")
			}
		})
	}
}

// TestUAFCheckSecondFactorOnlyUsernameless: a second-factor-only authenticator (metadata
// isSecondFactorOnly) may confirm a known user (step-up) but not name one (usernameless) → 1492.
func TestUAFCheckSecondFactorOnlyUsernameless(t *testing.T) {
	a, st := newCheckAuthr(t, uaftest.Options{AAID: "FFFF#FC2F"})
	e := newCheckEnv(t)
	e.md.set(t, st, func(m map[string]any) { m["isSecondFactorOnly"] = true })
	registerCheck(t, e, a, "second")
	r := e.request("Auth", map[string]any{})
	before := e.regs("second")[0].SignCounter
	wantRefused(t, e.respond("Auth", uafAnswer(t, a, r, facetID)), uaf.StatusUnacceptableAuthenticator, "second-factor-only")
	if e.regs("second")[0].SignCounter != before {
		t.Fatal("counter moved")
	}
	e.md.set(t, st, nil)
	if sr := e.respond("Auth", uafAnswer(t, a, r, facetID)); sr.StatusCode != uaf.StatusOK {
		t.Fatalf("first-factor authenticator, same request: %d %s", sr.StatusCode, sr.Description)
	}
	e.md.set(t, st, func(m map[string]any) { m["isSecondFactorOnly"] = true })
	r = e.request("Auth", map[string]any{"username": "second"})
	if sr := e.respond("Auth", uafAnswer(t, a, r, facetID)); sr.StatusCode != uaf.StatusOK {
		t.Fatalf("second-factor-only authenticator in step-up: %d %s", sr.StatusCode, sr.Description)
	}
}

// TestUAFCheckRegistrationKeyAndAttestation covers registration checks that had no server
// test: the UAuth key must parse in its declared encoding (1498), a key the user already has
// is disallowed (1492), the attestation type must be listed in the statement (1496) and Basic
// Full needs a trust anchor (1496).
func TestUAFCheckRegistrationKeyAndAttestation(t *testing.T) {
	a, st := newCheckAuthr(t, uaftest.Options{AAID: "FFFF#FC01"})
	e := newCheckEnv(t, st)
	restore := func() { e.md.set(t, st, nil) }
	answer := func(f ...uaftest.Fault) func(r *uaf.ReturnUAFRequest) string {
		return func(r *uaf.ReturnUAFRequest) string { return uafAnswer(t, a, r, facetID, f...) }
	}
	t.Run("public key not a point", func(t *testing.T) {
		refusedReg(t, e, a, "key", answer(uaftest.TagLength(uaf.TagPubKey, 64)), uaf.StatusUnacceptableContent, "public key", nil)
	})
	t.Run("declared encoding listed but not the one used", func(t *testing.T) {
		e.md.update("FFFF#FC01", func(s *metadata.Statement) {
			s.PublicKeyAlgAndEncodings = []uint16{uint16(uaf.KeyECCX962Raw), uint16(uaf.KeyECCX962DER)}
		})
		refusedReg(t, e, a, "key", answer(uaftest.DeclaredKeyEncoding(uaf.KeyECCX962DER)), uaf.StatusUnacceptableContent, "public key", restore)
	})
	t.Run("attestation type not in metadata", func(t *testing.T) {
		e.md.update("FFFF#FC01", func(s *metadata.Statement) { s.AttestationTypes = []uint16{uint16(uaf.AttestationBasicSurrogate)} })
		refusedReg(t, e, a, "att", answer(), uaf.StatusUnacceptableAttestation, "attestation type", restore)
	})
	t.Run("basic full without roots", func(t *testing.T) {
		e.md.set(t, st, func(m map[string]any) { m["attestationRootCertificates"] = []string{} })
		refusedReg(t, e, a, "att", answer(), uaf.StatusUnacceptableAttestation, "basic full", restore)
	})
	t.Run("already registered key of the same user", func(t *testing.T) {
		ar := newAuthr(t, testAAID, false)
		e.md.set(t, ar.statement(), nil)
		r := e.request("Reg", map[string]string{"username": "again"})
		if sr := e.respond("Reg", ar.register(r, mutations{})); sr.StatusCode != uaf.StatusOK {
			t.Fatal(sr)
		}
		kid, _ := base64.RawURLEncoding.DecodeString(e.regs("again")[0].KeyID)
		r = e.request("Reg", map[string]string{"username": "again"})
		wantRefused(t, e.respond("Reg", ar.register(r, mutations{krd: func(k *uaf.KeyRegistrationData) { k.KeyID = kid }})),
			uaf.StatusUnacceptableAuthenticator, "disallowed")
		if n := len(e.regs("again")); n != 1 {
			t.Fatalf("%d keys", n)
		}
	})
}

// TestUAFCheckAssertionsOfTwoUsers: one response with keys of two users is refused — 1401 in
// a step-up for one of them, 1498 when usernameless (the user would be ambiguous).
func TestUAFCheckAssertionsOfTwoUsers(t *testing.T) {
	a, sta := newCheckAuthr(t, uaftest.Options{AAID: "FFFF#FC01"})
	b, stb := newCheckAuthr(t, uaftest.Options{AAID: "FFFF#FC03"})
	e := newCheckEnv(t, sta, stb)
	registerCheck(t, e, a, "xavier")
	registerCheck(t, e, b, "yvonne")
	both := func(r *uaf.ReturnUAFRequest) string {
		var second []any
		editMessage(t, uafAnswer(t, b, r, facetID), func(m map[string]any) { second = m["assertions"].([]any) })
		return editMessage(t, uafAnswer(t, a, r, facetID), func(m map[string]any) {
			m["assertions"] = append(m["assertions"].([]any), second...)
		})
	}
	for _, c := range []struct {
		ctx  map[string]any
		want uaf.StatusCode
		desc string
	}{{map[string]any{}, uaf.StatusUnacceptableContent, "different users"}} {
		r := e.request("Auth", c.ctx)
		ca, cb := e.regs("xavier")[0].SignCounter, e.regs("yvonne")[0].SignCounter
		wantRefused(t, e.respond("Auth", both(r)), c.want, c.desc)
		if e.regs("xavier")[0].SignCounter != ca || e.regs("yvonne")[0].SignCounter != cb {
			t.Fatal("a counter moved")
		}
		if sr := e.respond("Auth", uafAnswer(t, a, r, facetID)); sr.StatusCode != uaf.StatusOK {
			t.Fatalf("request consumed: %d %s", sr.StatusCode, sr.Description)
		}
	}
}

// TestUAFCheckEveryAssertionInPolicy: in a usernameless response every assertion must be
// accepted by the request's policy, not only enough of them to cover it → 1492 for an extra
// authenticator the policy does not accept.
func TestUAFCheckEveryAssertionInPolicy(t *testing.T) {
	a, sta := newCheckAuthr(t, uaftest.Options{AAID: "FFFF#FC01"})
	b, stb := newCheckAuthr(t, uaftest.Options{AAID: "FFFF#FC03"})
	e := newCheckEnv(t, sta, stb)
	registerCheck(t, e, a, "zed")
	registerCheck(t, e, b, "zed")
	r := e.request("Auth", map[string]any{"policy": "fc01-only"})
	// b answers the same challenge as if the policy admitted it.
	loose := *r
	loose.UAFRequest = strings.Replace(r.UAFRequest, `"aaid":["FFFF#FC01"]`, `"aaid":["FFFF#FC03"]`, 1)
	if loose.UAFRequest == r.UAFRequest {
		t.Fatalf("policy not found in %s", r.UAFRequest)
	}
	var extra []any
	editMessage(t, uafAnswer(t, b, &loose, facetID), func(m map[string]any) { extra = m["assertions"].([]any) })
	resp := editMessage(t, uafAnswer(t, a, r, facetID), func(m map[string]any) {
		m["assertions"] = append(m["assertions"].([]any), extra...)
	})
	regs := e.regs("zed")
	wantRefused(t, e.respond("Auth", resp), uaf.StatusUnacceptableAuthenticator, "not accepted by the policy")
	for i, now := range e.regs("zed") {
		if now.SignCounter != regs[i].SignCounter {
			t.Fatal("a counter moved")
		}
	}
	if sr := e.respond("Auth", uafAnswer(t, a, r, facetID)); sr.StatusCode != uaf.StatusOK {
		t.Fatalf("request consumed: %d %s", sr.StatusCode, sr.Description)
	}
}

// TestUAFCheckEveryRegistrationInPolicy is TestUAFCheckEveryAssertionInPolicy for a
// registration: an extra authenticator outside the policy is 1492 and nothing is stored.
func TestUAFCheckEveryRegistrationInPolicy(t *testing.T) {
	a, sta := newCheckAuthr(t, uaftest.Options{AAID: "FFFF#FC01"})
	b, stb := newCheckAuthr(t, uaftest.Options{AAID: "FFFF#FC03"})
	e := newCheckEnv(t, sta, stb)
	r := e.request("Reg", map[string]string{"username": "yuri", "policy": "fc01-only"})
	var extra []any
	editMessage(t, uafAnswer(t, b, r, facetID), func(m map[string]any) { extra = m["assertions"].([]any) })
	resp := editMessage(t, uafAnswer(t, a, r, facetID), func(m map[string]any) {
		m["assertions"] = append(m["assertions"].([]any), extra...)
	})
	wantRefused(t, e.respond("Reg", resp), uaf.StatusUnacceptableAuthenticator, "not accepted by the policy")
	if n := len(e.regs("yuri")); n != 0 {
		t.Fatalf("%d keys stored", n)
	}
	if sr := e.respond("Reg", uafAnswer(t, a, r, facetID)); sr.StatusCode != uaf.StatusOK {
		t.Fatalf("request consumed: %d %s", sr.StatusCode, sr.Description)
	}
}

// TestUAFCheckMetadataRemoved: a registered authenticator whose metadata is no longer loaded
// is refused at authentication with 1480 (operations with authenticators without metadata halt).
func TestUAFCheckMetadataRemoved(t *testing.T) {
	a, st := newCheckAuthr(t, uaftest.Options{AAID: "FFFF#FC01"})
	e := newCheckEnv(t, st)
	registerCheck(t, e, a, "gone")
	e.md.remove("FFFF#FC01")
	refusedAuth(t, e, a, "gone", nil, func(r *uaf.ReturnUAFRequest) string { return uafAnswer(t, a, r, facetID) },
		uaf.StatusUnknownAAID, "no metadata", func() { e.md.set(t, st, nil) })
}
