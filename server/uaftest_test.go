package server_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/fidoserver/hwfido/uaf"
	"github.com/fidoserver/hwfido/uaf/uaftest"
)

// newUAFTest makes a uaftest authenticator or fails the test.
func newUAFTest(t *testing.T, o uaftest.Options) (*uaftest.Authenticator, []byte) {
	t.Helper()
	a, err := uaftest.New(o)
	if err != nil {
		t.Fatal(err)
	}
	st, err := a.MetadataStatement()
	if err != nil {
		t.Fatal(err)
	}
	return a, st
}

func respond(t *testing.T, a *uaftest.Authenticator, r *uaf.ReturnUAFRequest, faults ...uaftest.Fault) string {
	t.Helper()
	if r.StatusCode != uaf.StatusOK {
		t.Fatalf("request refused: %d", r.StatusCode)
	}
	out, err := a.Respond(r.UAFRequest, facetID, faults...)
	if err != nil {
		t.Fatalf("uaftest: %v", err)
	}
	return out
}

// TestAlgorithmMatrix registers and authenticates one authenticator per signature
// algorithm and key encoding the codec supports (the conformance tool's algorithm tests),
// with Basic Full where Go can issue the certificate.
func TestAlgorithmMatrix(t *testing.T) {
	var auths []*uaftest.Authenticator
	var statements [][]byte
	for i, c := range uaftest.Combinations() {
		a, st := newUAFTest(t, uaftest.Options{AAID: fmt.Sprintf("FFFF#F%03X", i), Alg: c.Alg, KeyEncoding: c.KeyEncoding})
		auths = append(auths, a)
		statements = append(statements, st)
	}
	e := newEnv(t, envOptions{metadata: statements})
	for i, c := range uaftest.Combinations() {
		a := auths[i]
		t.Run(c.String(), func(t *testing.T) {
			user := fmt.Sprintf("user%d", i)
			_, r, _ := e.getRequest("Reg", map[string]string{"username": user}, e.callerToken(user))
			if sr := e.sendResponse("Reg", respond(t, a, r)); sr.StatusCode != uaf.StatusOK {
				t.Fatalf("registration: %+v", sr)
			}
			for n := 0; n < 2; n++ {
				_, r, _ = e.getRequest("Auth", map[string]any{"username": user, "transaction": "ok?"}, "")
				if sr := e.sendResponse("Auth", respond(t, a, r)); sr.StatusCode != uaf.StatusOK {
					t.Fatalf("authentication %d: %+v", n, sr)
				}
			}
			// A randomly modified signature is refused.
			_, r, _ = e.getRequest("Auth", map[string]any{"username": user}, "")
			if sr := e.sendResponse("Auth", respond(t, a, r, uaftest.BadSignature())); sr.StatusCode != uaf.StatusUnacceptableContent {
				t.Fatalf("bad signature: %+v", sr)
			}
		})
	}
}

// TestFaultCatalogue sends every broken variant uaftest can make and asserts the exact
// status and that nothing was stored or consumed.
func TestFaultCatalogue(t *testing.T) {
	a, st := newUAFTest(t, uaftest.Options{AAID: "FFFF#FC01"})
	e := newEnv(t, envOptions{metadata: [][]byte{st}})
	ctx := context.Background()
	type fc struct {
		f    uaftest.Fault
		want uaf.StatusCode
	}
	common := []fc{
		{uaftest.WrongFinalChallengeHash(), uaf.StatusUnacceptableContent},
		{uaftest.WrongHashFunction(), uaf.StatusUnacceptableContent},
		{uaftest.WrongChallenge(), uaf.StatusUnacceptableContent},
		{uaftest.FCParamsAppID("https://evil.test/facets"), uaf.StatusUnacceptableContent},
		{uaftest.AssertionScheme("UAFV2TLV"), uaf.StatusUnacceptableContent},
		{uaftest.NotBase64URL(), uaf.StatusUnacceptableContent},
		{uaftest.UPV(1, 0), uaf.StatusUnacceptableContent},
		{uaftest.UPV(1, 7), uaf.StatusUnacceptableContent},
		{uaftest.DuplicateMessage(), uaf.StatusUnacceptableContent},
		{uaftest.LeftoverBytes(2), uaf.StatusUnacceptableContent},
		{uaftest.MissingTag(uaf.TagAAID), uaf.StatusUnacceptableContent},
		{uaftest.MissingTag(uaf.TagKeyID), uaf.StatusUnacceptableContent},
		{uaftest.MissingTag(uaf.TagFinalChallengeHash), uaf.StatusUnacceptableContent},
		{uaftest.MissingTag(uaf.TagCounters), uaf.StatusUnacceptableContent},
		{uaftest.MissingTag(uaf.TagAssertionInfo), uaf.StatusUnacceptableContent},
		{uaftest.MissingTag(uaf.TagSignature), uaf.StatusUnacceptableContent},
		{uaftest.EmptyTag(uaf.TagKeyID), uaf.StatusUnacceptableContent},
		{uaftest.EmptyTag(uaf.TagSignature), uaf.StatusUnacceptableContent},
		{uaftest.DuplicateTag(uaf.TagKeyID), uaf.StatusUnacceptableContent},
		{uaftest.TagLength(uaf.TagAAID, 8), uaf.StatusUnacceptableContent},
		{uaftest.TagLength(uaf.TagKeyID, 31), uaf.StatusUnacceptableContent},
		{uaftest.WrongJSONType("header"), uaf.StatusUnacceptableContent},
		{uaftest.WrongJSONType("fcParams"), uaf.StatusUnacceptableContent},
		{uaftest.WrongJSONType("assertions"), uaf.StatusUnacceptableContent},
		{uaftest.WrongJSONType("header.serverData"), uaf.StatusUnacceptableContent},
		{uaftest.Extension("ext.critical", true), uaf.StatusUnacceptableContent},
		{uaftest.ChannelBinding(uaf.ChannelBinding{CIDPubkey: "***"}), uaf.StatusChannelBindingRefused},
	}
	reg := append([]fc{
		{uaftest.BadSignature(), uaf.StatusUnacceptableAttestation},
		{uaftest.UntrustedAttestationCert(), uaf.StatusUnacceptableAttestation},
		{uaftest.GarbageAttestationCert(), uaf.StatusUnacceptableAttestation},
		{uaftest.AttestationCertAAID("FFFF#0000"), uaf.StatusUnacceptableAttestation},
		{uaftest.WrongAAID("ABCD#0009"), uaf.StatusUnknownAAID},
		{uaftest.AuthenticationMode(2), uaf.StatusUnacceptableContent},
		{uaftest.AuthenticationMode(0), uaf.StatusUnacceptableContent},
		{uaftest.DeclaredSignAlg(uaf.AlgSECP256R1ECDSASHA256DER), uaf.StatusUnacceptableAlgorithm},
		{uaftest.DeclaredKeyEncoding(uaf.KeyECCX962DER), uaf.StatusUnacceptableAlgorithm},
		{uaftest.OuterTag(uaf.TagAuthAssertion), uaf.StatusUnacceptableContent},
		{uaftest.MissingTag(uaf.TagPubKey), uaf.StatusUnacceptableContent},
		{uaftest.MissingTag(uaf.TagAttestationCert), uaf.StatusUnacceptableContent},
		{uaftest.TagLength(uaf.TagCounters, 4), uaf.StatusUnacceptableContent},
		{uaftest.TagLength(uaf.TagAssertionInfo, 5), uaf.StatusUnacceptableContent},
		{uaftest.Op(uaf.OpAuth), uaf.StatusUnacceptableContent},
	}, common...)
	for _, c := range reg {
		t.Run("reg/"+c.f.String(), func(t *testing.T) {
			_, r, _ := e.getRequest("Reg", map[string]string{"username": "erin"}, e.callerToken("erin"))
			if sr := e.sendResponse("Reg", respond(t, a, r, c.f)); sr.StatusCode != c.want {
				t.Fatalf("status %d (%s), want %d", sr.StatusCode, sr.Description, c.want)
			}
			if regs, _ := e.db().UAFRegistrations(ctx, "erin"); len(regs) != 0 {
				t.Fatalf("stored %+v", regs)
			}
			if sr := e.sendResponse("Reg", respond(t, a, r)); sr.StatusCode != uaf.StatusOK {
				t.Fatalf("request consumed by the refusal: %+v", sr)
			}
			// Forget the key on both sides so the next case starts clean.
			_, d, _ := e.getRequest("Dereg", map[string]any{"username": "erin", "deregisterAll": true}, e.callerToken("erin"))
			respond(t, a, d)
		})
	}
	_, r, _ := e.getRequest("Reg", map[string]string{"username": "frank"}, e.callerToken("frank"))
	if sr := e.sendResponse("Reg", respond(t, a, r)); sr.StatusCode != uaf.StatusOK {
		t.Fatal(sr)
	}
	auth := append([]fc{
		{uaftest.BadSignature(), uaf.StatusUnacceptableContent},
		{uaftest.CounterNotIncreasing(), uaf.StatusUnacceptableContent},
		{uaftest.AuthenticationMode(2), uaf.StatusUnacceptableContent},
		{uaftest.WrongAAID("FFFF#FC09"), uaf.StatusUnknownKeyID},
		{uaftest.DeclaredSignAlg(uaf.AlgSECP256R1ECDSASHA256DER), uaf.StatusUnacceptableAlgorithm},
		{uaftest.OuterTag(uaf.TagRegAssertion), uaf.StatusUnacceptableContent},
		{uaftest.MissingTag(uaf.TagAuthenticatorNonce), uaf.StatusUnacceptableContent},
		{uaftest.MissingTag(uaf.TagTransactionContentHash), uaf.StatusUnacceptableContent},
		{uaftest.TagLength(uaf.TagAuthenticatorNonce, 7), uaf.StatusUnacceptableContent},
		{uaftest.TagLength(uaf.TagCounters, 8), uaf.StatusUnacceptableContent},
		{uaftest.TagLength(uaf.TagAssertionInfo, 7), uaf.StatusUnacceptableContent},
		{uaftest.Op(uaf.OpReg), uaf.StatusUnacceptableContent},
	}, common...)
	for _, c := range auth {
		t.Run("auth/"+c.f.String(), func(t *testing.T) {
			_, r, _ := e.getRequest("Auth", map[string]any{"username": "frank"}, "")
			before, _ := e.db().UAFRegistrations(ctx, "frank")
			if sr := e.sendResponse("Auth", respond(t, a, r, c.f)); sr.StatusCode != c.want {
				t.Fatalf("status %d (%s), want %d", sr.StatusCode, sr.Description, c.want)
			}
			after, _ := e.db().UAFRegistrations(ctx, "frank")
			if after[0].SignCounter != before[0].SignCounter {
				t.Fatal("a refused response moved the counter")
			}
			if sr := e.sendResponse("Auth", respond(t, a, r)); sr.StatusCode != uaf.StatusOK {
				t.Fatalf("request consumed by the refusal: %+v", sr)
			}
		})
	}
	t.Run("auth/WrongTransactionHash", func(t *testing.T) {
		_, r, _ := e.getRequest("Auth", map[string]any{"username": "frank", "transaction": "Pay 5"}, "")
		if sr := e.sendResponse("Auth", respond(t, a, r, uaftest.WrongTransactionHash())); sr.StatusCode != uaf.StatusUnacceptableContent {
			t.Fatalf("status %d (%s)", sr.StatusCode, sr.Description)
		}
		if sr := e.sendResponse("Auth", respond(t, a, r)); sr.StatusCode != uaf.StatusOK {
			t.Fatalf("after refusal: %+v", sr)
		}
	})
	t.Run("auth/non-critical extension accepted", func(t *testing.T) {
		_, r, _ := e.getRequest("Auth", map[string]any{"username": "frank"}, "")
		if sr := e.sendResponse("Auth", respond(t, a, r, uaftest.Extension("ext.info", false))); sr.StatusCode != uaf.StatusOK {
			t.Fatalf("status %d (%s)", sr.StatusCode, sr.Description)
		}
	})
}
