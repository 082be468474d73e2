package uaftest

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/attestation"
	"github.com/fidoserver/hwfido/uaf"
)

const (
	appID   = "https://example.test/uaf/facets"
	facetID = "https://example.test"
)

// server is a minimal verifier: the checks a UAF server makes, enough to
// prove each fault is detectable.
type server struct {
	t         *testing.T
	a         *Authenticator
	challenge string
	keys      map[string]crypto.PublicKey
	counters  map[string]uint32
}

func newServer(t *testing.T, a *Authenticator) *server {
	return &server{t: t, a: a, keys: map[string]crypto.PublicKey{}, counters: map[string]uint32{}}
}

func (s *server) request(op uaf.Operation, tx string) string {
	s.t.Helper()
	s.challenge = uaf.EncodeBase64URL([]byte(fmt.Sprintf("challenge-%d", time.Now().UnixNano())))
	h := uaf.OperationHeader{UPV: uaf.Version11, Op: op, AppID: appID, ServerData: "sd"}
	pol := uaf.Policy{Accepted: [][]uaf.MatchCriteria{{{AAID: []string{s.a.AAID()}}}}}
	var msg any
	switch op {
	case uaf.OpReg:
		msg = uaf.RegistrationRequest{Header: h, Challenge: s.challenge, Username: "alice", Policy: pol}
	case uaf.OpAuth:
		var ids []string
		for k := range s.keys {
			ids = append(ids, uaf.EncodeBase64URL([]byte(k)))
		}
		if len(ids) > 0 {
			pol.Accepted[0][0].KeyIDs = ids
		}
		r := uaf.AuthenticationRequest{Header: h, Challenge: s.challenge, Policy: pol}
		if tx != "" {
			r.Transaction = []uaf.Transaction{{ContentType: "text/plain", Content: uaf.EncodeBase64URL([]byte(tx))}}
		}
		msg = r
	}
	b, err := json.Marshal([]any{msg})
	if err != nil {
		s.t.Fatal(err)
	}
	return string(b)
}

func (s *server) checkFC(fc string) error {
	p, err := uaf.DecodeFinalChallengeParams(fc)
	if err != nil {
		return err
	}
	if p.Challenge != s.challenge || p.AppID != appID || p.FacetID != facetID {
		return &uaf.Error{Code: uaf.StatusUnacceptableContent, Msg: "fcParams mismatch"}
	}
	if p.ChannelBinding != (uaf.ChannelBinding{}) {
		return &uaf.Error{Code: uaf.StatusChannelBindingRefused, Msg: "channel binding"}
	}
	return nil
}

func (s *server) register(resp string) error {
	r, err := uaf.DecodeResponse([]byte(resp))
	if err != nil {
		return err
	}
	if r.Registration == nil {
		return &uaf.Error{Code: uaf.StatusUnacceptableContent, Msg: "not a registration"}
	}
	m := r.Registration
	if err := s.checkFC(m.FCParams); err != nil {
		return err
	}
	for _, as := range m.Assertions {
		if as.AssertionScheme != uaf.AssertionSchemeUAFV1TLV {
			return &uaf.Error{Code: uaf.StatusUnacceptableContent, Msg: "scheme"}
		}
		b, err := uaf.DecodeBase64URL(as.Assertion)
		if err != nil {
			return &uaf.Error{Code: uaf.StatusUnacceptableContent, Msg: "base64", Err: err}
		}
		a, err := uaf.ParseRegAssertion(b)
		if err != nil {
			return err
		}
		o := s.a.Options()
		if a.AAID != s.a.AAID() || a.SignAlg != o.Alg || a.PubKeyEncoding != o.KeyEncoding {
			return &uaf.Error{Code: uaf.StatusUnacceptableContent, Msg: "aaid/alg/encoding not in metadata"}
		}
		if err := a.CheckFinalChallenge(m.FCParams); err != nil {
			return err
		}
		if id := uaf.HasUnknownCritical(a.Extensions); id != "" {
			return &uaf.Error{Code: uaf.StatusUnacceptableContent, Msg: "critical extension " + id}
		}
		// Roots as the metadata statement lists them: none for Basic Surrogate.
		var roots []*x509.Certificate
		if o.Attestation == uaf.AttestationBasicFull {
			roots = []*x509.Certificate{s.a.Root()}
		}
		if _, err := attestation.VerifyUAF(a, attestation.UAFOptions{Roots: roots,
			AllowedTypes: []uaf.AttestationType{o.Attestation}}); err != nil {
			return err
		}
		pub, err := uaf.ParsePublicKey(a.PubKeyEncoding, a.SignAlg, a.PubKey)
		if err != nil {
			return err
		}
		s.keys[string(a.KeyID)] = pub
		s.counters[string(a.KeyID)] = a.SignCounter
	}
	return nil
}

func (s *server) authenticate(resp, tx string) error {
	r, err := uaf.DecodeResponse([]byte(resp))
	if err != nil {
		return err
	}
	if r.Authentication == nil {
		return &uaf.Error{Code: uaf.StatusUnacceptableContent, Msg: "not an authentication"}
	}
	m := r.Authentication
	if err := s.checkFC(m.FCParams); err != nil {
		return err
	}
	for _, as := range m.Assertions {
		if as.AssertionScheme != uaf.AssertionSchemeUAFV1TLV {
			return &uaf.Error{Code: uaf.StatusUnacceptableContent, Msg: "scheme"}
		}
		b, err := uaf.DecodeBase64URL(as.Assertion)
		if err != nil {
			return &uaf.Error{Code: uaf.StatusUnacceptableContent, Msg: "base64", Err: err}
		}
		a, err := uaf.ParseAuthAssertion(b)
		if err != nil {
			return err
		}
		if a.AAID != s.a.AAID() || a.SignAlg != s.a.Options().Alg {
			return &uaf.Error{Code: uaf.StatusUnacceptableContent, Msg: "aaid/alg"}
		}
		pub, ok := s.keys[string(a.KeyID)]
		if !ok {
			return uaf.StatusUnknownKeyID
		}
		if err := a.CheckFinalChallenge(m.FCParams); err != nil {
			return err
		}
		var content []byte
		if tx != "" {
			content = []byte(tx)
		}
		if err := a.CheckTransaction(content); err != nil {
			return err
		}
		if err := uaf.VerifySignature(a.SignAlg, pub, a.RawSignedData, a.Signature); err != nil {
			return err
		}
		if a.SignCounter <= s.counters[string(a.KeyID)] {
			return &uaf.Error{Code: uaf.StatusUnacceptableContent, Msg: "counter"}
		}
		s.counters[string(a.KeyID)] = a.SignCounter
	}
	return nil
}

func newAuth(t *testing.T, o Options) *Authenticator {
	t.Helper()
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestEveryCombination(t *testing.T) {
	for _, c := range Combinations() {
		for _, att := range []uaf.AttestationType{uaf.AttestationBasicFull, uaf.AttestationBasicSurrogate} {
			if att == uaf.AttestationBasicFull && isK1(c.Alg) {
				continue
			}
			t.Run(c.String()+"/"+att.String(), func(t *testing.T) {
				a := newAuth(t, Options{Alg: c.Alg, KeyEncoding: c.KeyEncoding, Attestation: att})
				s := newServer(t, a)
				resp, err := a.Respond(s.request(uaf.OpReg, ""), facetID)
				if err != nil {
					t.Fatal(err)
				}
				if err := s.register(resp); err != nil {
					t.Fatalf("register: %v", err)
				}
				for _, tx := range []string{"", "Pay 10 CHF to Bob"} {
					resp, err := a.Respond(s.request(uaf.OpAuth, tx), facetID)
					if err != nil {
						t.Fatal(err)
					}
					if err := s.authenticate(resp, tx); err != nil {
						t.Fatalf("authenticate (tx %q): %v", tx, err)
					}
				}
			})
		}
	}
}

func TestIntermediateChainAndMetadata(t *testing.T) {
	a := newAuth(t, Options{Intermediate: true, AAID: "FFFF#FA02"})
	if len(a.AttestationChain()) != 2 {
		t.Fatalf("chain length %d", len(a.AttestationChain()))
	}
	s := newServer(t, a)
	resp, err := a.Respond(s.request(uaf.OpReg, ""), facetID)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.register(resp); err != nil {
		t.Fatal(err)
	}
	md, err := a.MetadataStatement()
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		AAID  string   `json:"aaid"`
		Roots []string `json:"attestationRootCertificates"`
		Alg   uaf.Alg  `json:"authenticationAlgorithm"`
		Types []uint16 `json:"attestationTypes"`
	}
	if err := json.Unmarshal(md, &st); err != nil {
		t.Fatal(err)
	}
	if st.AAID != "FFFF#FA02" || len(st.Roots) != 1 || st.Alg != uaf.AlgSECP256R1ECDSASHA256Raw || st.Types[0] != 15879 {
		t.Fatalf("statement: %s", md)
	}
}

func TestDeregistration(t *testing.T) {
	a := newAuth(t, Options{})
	s := newServer(t, a)
	for range 2 {
		if _, err := a.Respond(s.request(uaf.OpReg, ""), facetID); err != nil {
			t.Fatal(err)
		}
	}
	regs := a.Registrations()
	if len(regs) != 2 {
		t.Fatalf("%d registrations", len(regs))
	}
	dereg := func(aaid, keyID string) {
		b, _ := json.Marshal([]uaf.DeregistrationRequest{{
			Header:         uaf.OperationHeader{UPV: uaf.Version11, Op: uaf.OpDereg, AppID: appID},
			Authenticators: []uaf.DeregisterAuthenticator{{AAID: aaid, KeyID: keyID}},
		}})
		if out, err := a.Respond(string(b), facetID); err != nil || out != "" {
			t.Fatalf("dereg: %q %v", out, err)
		}
	}
	dereg(a.AAID(), regs[0].KeyIDString())
	if got := a.Registrations(); len(got) != 1 || got[0].KeyIDString() != regs[1].KeyIDString() {
		t.Fatalf("after dereg by key: %d", len(got))
	}
	dereg("", "")
	if got := a.Registrations(); len(got) != 0 {
		t.Fatalf("after dereg all: %d", len(got))
	}
	if _, err := a.Respond(s.request(uaf.OpAuth, ""), facetID); !errors.Is(err, ErrNoRegistration) {
		t.Fatalf("auth without registration: %v", err)
	}
}

// TestFaults shows every fault is detected by the checks a server makes,
// with the expected status code.
func TestFaults(t *testing.T) {
	const want = uaf.StatusUnacceptableContent
	reg := []struct {
		f    Fault
		code uaf.StatusCode
	}{
		{BadSignature(), uaf.StatusUnacceptableAttestation},
		{WrongFinalChallengeHash(), want},
		{WrongHashFunction(), want},
		{WrongAAID("FFFF#0000"), want},
		{WrongAAID("FFFF-0000"), want},
		{AuthenticationMode(2), want},
		{AuthenticationMode(0), want},
		{MissingTag(uaf.TagKRD), want},
		{MissingTag(uaf.TagAAID), want},
		{MissingTag(uaf.TagAssertionInfo), want},
		{MissingTag(uaf.TagFinalChallengeHash), want},
		{MissingTag(uaf.TagKeyID), want},
		{MissingTag(uaf.TagCounters), want},
		{MissingTag(uaf.TagPubKey), want},
		{MissingTag(uaf.TagAttestationBasicFull), want},
		{MissingTag(uaf.TagSignature), want},
		{MissingTag(uaf.TagAttestationCert), want},
		{EmptyTag(uaf.TagKRD), want},
		{EmptyTag(uaf.TagKeyID), want},
		{EmptyTag(uaf.TagPubKey), want},
		{EmptyTag(uaf.TagFinalChallengeHash), want},
		{EmptyTag(uaf.TagSignature), want},
		{EmptyTag(uaf.TagAttestationCert), want},
		{EmptyTag(uaf.TagAttestationBasicFull), want},
		{DuplicateTag(uaf.TagKeyID), want},
		{DuplicateTag(uaf.TagKRD), want},
		{TagLength(uaf.TagAssertionInfo, 6), want},
		{TagLength(uaf.TagAssertionInfo, 8), want},
		{TagLength(uaf.TagKeyID, 16), want},
		{TagLength(uaf.TagCounters, 4), want},
		{TagLength(uaf.TagAAID, 8), want},
		{LeftoverBytes(2), want},
		{OuterTag(uaf.TagAuthAssertion), want},
		{DeclaredSignAlg(uaf.AlgSECP256R1ECDSASHA256DER), want},
		{DeclaredKeyEncoding(uaf.KeyECCX962DER), want},
		{WrongChallenge(), want},
		{FCParamsAppID("https://evil.test/facets"), want},
		{ChannelBinding(uaf.ChannelBinding{TLSUnique: "abc"}), uaf.StatusChannelBindingRefused},
		{UntrustedAttestationCert(), uaf.StatusUnacceptableAttestation},
		{GarbageAttestationCert(), uaf.StatusUnacceptableAttestation},
		{AttestationCertAAID("FFFF#0001"), uaf.StatusUnacceptableAttestation},
		{AssertionScheme("UAFV2TLV"), want},
		{NotBase64URL(), want},
		{UPV(1, 0), want},
		{UPV(1, 7), want},
		{DuplicateMessage(), want},
		{Op(uaf.OpAuth), want},
		{Extension("unknown-ext", true), want},
		{WrongJSONType("header"), want},
		{WrongJSONType("header.upv"), want},
		{WrongJSONType("header.op"), want},
		{WrongJSONType("header.appID"), want},
		{WrongJSONType("header.serverData"), want},
		{WrongJSONType("fcParams"), want},
		{WrongJSONType("assertions"), want},
		{WrongJSONType("assertions[0].assertion"), want},
		{WrongJSONType("assertions[0].assertionScheme"), want},
	}
	a := newAuth(t, Options{})
	for _, tc := range reg {
		t.Run("Reg/"+tc.f.String(), func(t *testing.T) {
			s := newServer(t, a)
			resp, err := a.Respond(s.request(uaf.OpReg, ""), facetID, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			err = s.register(resp)
			if got := uaf.StatusOf(err); got != tc.code {
				t.Fatalf("status %v, want %v (err %v)", got, tc.code, err)
			}
		})
	}
	// A non-critical unknown extension is accepted.
	s := newServer(t, a)
	resp, err := a.Respond(s.request(uaf.OpReg, ""), facetID, Extension("x", false))
	if err != nil || s.register(resp) != nil {
		t.Fatalf("non-critical extension: %v", err)
	}
	auth := []struct {
		f  Fault
		tx string
	}{
		{BadSignature(), ""},
		{WrongFinalChallengeHash(), ""},
		{WrongHashFunction(), ""},
		{WrongAAID("FFFF#0000"), ""},
		{AuthenticationMode(2), ""},
		{AuthenticationMode(1), "pay"},
		{AuthenticationMode(0), ""},
		{CounterNotIncreasing(), ""},
		{MissingTag(uaf.TagSignedData), ""},
		{MissingTag(uaf.TagAuthenticatorNonce), ""},
		{MissingTag(uaf.TagTransactionContentHash), ""},
		{MissingTag(uaf.TagSignature), ""},
		{EmptyTag(uaf.TagSignature), ""},
		{EmptyTag(uaf.TagKeyID), ""},
		{TagLength(uaf.TagAssertionInfo, 4), ""},
		{TagLength(uaf.TagAssertionInfo, 7), ""},
		{TagLength(uaf.TagCounters, 8), ""},
		{TagLength(uaf.TagAuthenticatorNonce, 7), ""},
		{LeftoverBytes(2), ""},
		{OuterTag(uaf.TagRegAssertion), ""},
		{WrongTransactionHash(), ""},
		{WrongTransactionHash(), "pay"},
		{EmptyTag(uaf.TagTransactionContentHash), "pay"},
		{DeclaredSignAlg(uaf.AlgSECP256R1ECDSASHA256DER), ""},
		{WrongChallenge(), ""},
		{WrongJSONType("assertions[0].assertion"), ""},
	}
	for _, tc := range auth {
		t.Run(fmt.Sprintf("Auth/%v/tx=%v", tc.f, tc.tx != ""), func(t *testing.T) {
			s := newServer(t, a)
			resp, err := a.Respond(s.request(uaf.OpReg, ""), facetID)
			if err != nil || s.register(resp) != nil {
				t.Fatalf("register: %v", err)
			}
			if tc.f.kind == fCounterNotIncreasing {
				// Counters start at 0 at registration: authenticate once first.
				resp, err := a.Respond(s.request(uaf.OpAuth, ""), facetID)
				if err != nil || s.authenticate(resp, "") != nil {
					t.Fatalf("first authentication: %v", err)
				}
			}
			resp, err = a.Respond(s.request(uaf.OpAuth, tc.tx), facetID, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if got := uaf.StatusOf(s.authenticate(resp, tc.tx)); got != want {
				t.Fatalf("status %v, want %v", got, want)
			}
		})
	}
}

func TestFaultMustApply(t *testing.T) {
	a := newAuth(t, Options{Attestation: uaf.AttestationBasicSurrogate})
	s := newServer(t, a)
	if _, err := a.Respond(s.request(uaf.OpReg, ""), facetID, MissingTag(uaf.TagAttestationCert)); err == nil {
		t.Fatal("inapplicable fault accepted")
	}
	if _, err := a.Respond(s.request(uaf.OpReg, ""), facetID, WrongJSONType("nope")); err == nil {
		t.Fatal("bad JSON path accepted")
	}
}

func TestSurrogateFaults(t *testing.T) {
	a := newAuth(t, Options{Attestation: uaf.AttestationBasicSurrogate, Alg: uaf.AlgSECP256K1ECDSASHA256DER})
	for _, f := range []Fault{BadSignature(), MissingTag(uaf.TagAttestationBasicSurrogate), EmptyTag(uaf.TagSignature),
		EmptyTag(uaf.TagAttestationBasicSurrogate), DuplicateTag(uaf.TagSignature)} {
		t.Run(f.String(), func(t *testing.T) {
			s := newServer(t, a)
			resp, err := a.Respond(s.request(uaf.OpReg, ""), facetID, f)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.register(resp); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
