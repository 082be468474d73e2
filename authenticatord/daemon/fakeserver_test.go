package daemon_test

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/fidoserver/hwfido/authenticatord/vendorca"
	"github.com/fidoserver/hwfido/uaf"
)

// uafServer is a minimal loopback UAF server for the client-role tests. It
// checks what the daemon sends with the uaf codec: strict decoding,
// FinalChallengeParams, FinalChallengeHash, TLV, attestation (surrogate
// with the KRD key, full with the chain to root), authentication signature
// with the registered key, strictly increasing counters, transaction hash.
type uafServer struct {
	t       *testing.T
	srv     *httptest.Server
	facetID string
	token   string
	aaid    string

	mu       sync.Mutex
	root     *x509.Certificate // Basic Full anchor; nil = surrogate only
	pending  map[string]pendingReq
	regs     map[string]*serverReg // keyID (b64url) → registration
	reports  []string              // contexts of reported failures
	accepted []string              // attestation types accepted, in order
	lastTx   string
}

type pendingReq struct {
	op        uaf.Operation
	challenge string
	username  string
	tx        []byte // decoded transaction content
}

type serverReg struct {
	username string
	pub      crypto.PublicKey
	alg      uaf.Alg
	counter  uint32
}

func newUAFServer(t *testing.T, facetID string) *uafServer {
	s := &uafServer{t: t, facetID: facetID, token: "caller-token-" + rand.Text(), aaid: "4857#0001",
		pending: map[string]pendingReq{}, regs: map[string]*serverReg{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /nevisfido/uaf/1.1/facets", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/fido.trusted-apps+json")
		_ = json.NewEncoder(w).Encode(uaf.TrustedFacetList{TrustedFacets: []uaf.TrustedFacets{{Version: uaf.Version11, IDs: []string{"https://other.example", s.facetID}}}})
	})
	mux.HandleFunc("POST /nevisfido/uaf/1.1/request/{op}", s.request)
	mux.HandleFunc("POST /nevisfido/uaf/1.1/registration", s.respond(uaf.OpReg))
	mux.HandleFunc("POST /nevisfido/uaf/1.1/authentication", s.respond(uaf.OpAuth))
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

func (s *uafServer) URL() string   { return s.srv.URL }
func (s *uafServer) appID() string { return s.srv.URL + "/nevisfido/uaf/1.1/facets" }

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/fido+uaf")
	_ = json.NewEncoder(w).Encode(v)
}

func (s *uafServer) request(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	get, err := uaf.DecodeGetUAFRequest(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var c struct {
		Username       string `json:"username"`
		Transaction    string `json:"transaction"`
		DeregisterAll  bool   `json:"deregisterAll"`
		DeregisterAAID string `json:"deregisterAAID"`
	}
	if get.Context != "" {
		if err := json.Unmarshal([]byte(get.Context), &c); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	op := r.PathValue("op")
	if op != "authentication" && r.Header.Get("Authorization") != "Bearer "+s.token {
		http.Error(w, "caller authentication required", http.StatusUnauthorized)
		return
	}
	sd := rand.Text()
	ch := uaf.EncodeBase64URL([]byte(rand.Text()))
	hdr := func(o uaf.Operation) uaf.OperationHeader {
		return uaf.OperationHeader{UPV: uaf.Version11, Op: o, AppID: s.appID(), ServerData: sd}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var msg any
	switch op {
	case "registration":
		pol := uaf.Policy{Accepted: [][]uaf.MatchCriteria{{{AAID: []string{s.aaid}}}}}
		for id, reg := range s.regs {
			if reg.username == c.Username {
				pol.Disallowed = append(pol.Disallowed, uaf.MatchCriteria{AAID: []string{s.aaid}, KeyIDs: []string{id}})
			}
		}
		msg = uaf.RegistrationRequest{Header: hdr(uaf.OpReg), Challenge: ch, Username: c.Username, Policy: pol}
		s.pending[sd] = pendingReq{op: uaf.OpReg, challenge: ch, username: c.Username}
	case "authentication":
		crit := uaf.MatchCriteria{AAID: []string{s.aaid}}
		for id, reg := range s.regs {
			if reg.username == c.Username {
				crit.KeyIDs = append(crit.KeyIDs, id)
			}
		}
		req := uaf.AuthenticationRequest{Header: hdr(uaf.OpAuth), Challenge: ch, Policy: uaf.Policy{Accepted: [][]uaf.MatchCriteria{{crit}}}}
		p := pendingReq{op: uaf.OpAuth, challenge: ch, username: c.Username}
		if c.Transaction != "" {
			req.Transaction = []uaf.Transaction{{ContentType: "text/plain", Content: uaf.EncodeBase64URL([]byte(c.Transaction))}}
			p.tx = []byte(c.Transaction)
		}
		msg = req
		s.pending[sd] = p
	case "deregistration":
		var auths []uaf.DeregisterAuthenticator
		for id, reg := range s.regs {
			if reg.username == c.Username {
				auths = append(auths, uaf.DeregisterAuthenticator{AAID: s.aaid, KeyID: id})
				delete(s.regs, id)
			}
		}
		if len(auths) == 0 {
			auths = []uaf.DeregisterAuthenticator{{AAID: s.aaid, KeyID: ""}}
		}
		msg = uaf.DeregistrationRequest{Header: hdr(uaf.OpDereg), Authenticators: auths}
	default:
		http.NotFound(w, r)
		return
	}
	b, _ := json.Marshal([]any{msg})
	writeJSON(w, uaf.ReturnUAFRequest{StatusCode: uaf.StatusOK, UAFRequest: string(b), Op: uaf.Operation(op)})
}

func (s *uafServer) respond(op uaf.Operation) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		tok, err := s.process(op, body)
		if err != nil {
			writeJSON(w, uaf.ServerResponse{StatusCode: uaf.StatusUnacceptableContent, Description: err.Error()})
			return
		}
		resp := uaf.ServerResponse{StatusCode: uaf.StatusOK}
		if tok != "" {
			resp.AdditionalTokens = []uaf.Token{{Type: uaf.TokenJWT, Value: tok}}
		}
		writeJSON(w, resp)
	}
}

func (s *uafServer) process(op uaf.Operation, body []byte) (string, error) {
	send, err := uaf.DecodeSendUAFResponse(body)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if send.Context != "" {
		s.reports = append(s.reports, send.Context)
		return "", nil // failure recorded
	}
	msg, err := uaf.DecodeResponse([]byte(send.UAFResponse))
	if err != nil {
		return "", err
	}
	h := msg.Header()
	p, ok := s.pending[h.ServerData]
	if !ok || p.op != op || h.Op != op {
		return "", fmt.Errorf("unknown serverData or op")
	}
	delete(s.pending, h.ServerData)
	var fcParams string
	if op == uaf.OpReg {
		fcParams = msg.Registration.FCParams
	} else {
		fcParams = msg.Authentication.FCParams
	}
	fc, err := uaf.DecodeFinalChallengeParams(fcParams)
	if err != nil {
		return "", err
	}
	if fc.AppID != s.appID() || fc.Challenge != p.challenge || fc.FacetID != s.facetID {
		return "", fmt.Errorf("fcParams mismatch: %+v", fc)
	}
	if op == uaf.OpReg {
		return s.register(msg.Registration, fcParams, p)
	}
	return s.authenticate(msg.Authentication, fcParams, p)
}

func (s *uafServer) register(m *uaf.RegistrationResponse, fcParams string, p pendingReq) (string, error) {
	if len(m.Assertions) != 1 || m.Assertions[0].AssertionScheme != "UAFV1TLV" {
		return "", fmt.Errorf("want one UAFV1TLV assertion")
	}
	raw, err := uaf.DecodeBase64URL(m.Assertions[0].Assertion)
	if err != nil {
		return "", err
	}
	a, err := uaf.ParseRegAssertion(raw)
	if err != nil {
		return "", err
	}
	if err := a.CheckFinalChallenge(fcParams); err != nil {
		return "", err
	}
	if !strings.EqualFold(a.AAID, s.aaid) || a.AuthenticationMode != uaf.ModeUserVerified ||
		a.SignAlg != uaf.AlgSECP256R1ECDSASHA256Raw || a.PubKeyEncoding != uaf.KeyECCX962Raw || len(a.KeyID) != 32 {
		return "", fmt.Errorf("unexpected KRD fields %+v", a.KeyRegistrationData)
	}
	pub, err := uaf.ParsePublicKey(a.PubKeyEncoding, a.SignAlg, a.PubKey)
	if err != nil {
		return "", err
	}
	switch a.AttestationType {
	case uaf.AttestationBasicSurrogate:
		if err := uaf.VerifySignature(a.SignAlg, pub, a.RawKRD, a.Signature); err != nil {
			return "", fmt.Errorf("surrogate signature: %w", err)
		}
	case uaf.AttestationBasicFull:
		if s.root == nil || len(a.Certificates) == 0 {
			return "", fmt.Errorf("basic full without root or certificate")
		}
		leaf, err := x509.ParseCertificate(a.Certificates[0])
		if err != nil {
			return "", err
		}
		pool := x509.NewCertPool()
		pool.AddCert(s.root)
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return "", fmt.Errorf("attestation chain: %w", err)
		}
		if got, err := vendorca.CertAAID(leaf); err != nil || !strings.EqualFold(got, a.AAID) {
			return "", fmt.Errorf("attestation certificate AAID %q (%v)", got, err)
		}
		if err := uaf.VerifySignature(a.SignAlg, leaf.PublicKey, a.RawKRD, a.Signature); err != nil {
			return "", fmt.Errorf("full attestation signature: %w", err)
		}
	default:
		return "", fmt.Errorf("attestation type %v", a.AttestationType)
	}
	id := uaf.EncodeBase64URL(a.KeyID)
	if _, dup := s.regs[id]; dup {
		return "", fmt.Errorf("duplicate KeyID")
	}
	s.regs[id] = &serverReg{username: p.username, pub: pub, alg: a.SignAlg, counter: a.SignCounter}
	s.accepted = append(s.accepted, a.AttestationType.String())
	return "reg-result-" + p.username, nil
}

func (s *uafServer) authenticate(m *uaf.AuthenticationResponse, fcParams string, p pendingReq) (string, error) {
	if len(m.Assertions) != 1 {
		return "", fmt.Errorf("want one assertion")
	}
	raw, err := uaf.DecodeBase64URL(m.Assertions[0].Assertion)
	if err != nil {
		return "", err
	}
	a, err := uaf.ParseAuthAssertion(raw)
	if err != nil {
		return "", err
	}
	if err := a.CheckFinalChallenge(fcParams); err != nil {
		return "", err
	}
	if err := a.CheckTransaction(p.tx); err != nil {
		return "", err
	}
	reg, ok := s.regs[uaf.EncodeBase64URL(a.KeyID)]
	if !ok {
		return "", fmt.Errorf("unknown KeyID")
	}
	if p.username != "" && reg.username != p.username {
		return "", fmt.Errorf("key of another user")
	}
	if err := uaf.VerifySignature(a.SignAlg, reg.pub, a.RawSignedData, a.Signature); err != nil {
		return "", fmt.Errorf("auth signature: %w", err)
	}
	if a.SignCounter <= reg.counter {
		return "", fmt.Errorf("sign counter %d not above %d", a.SignCounter, reg.counter)
	}
	reg.counter = a.SignCounter
	s.lastTx = string(p.tx)
	return "auth-result-" + reg.username, nil
}

func (s *uafServer) counterOf(user string) uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.regs {
		if r.username == user {
			return r.counter
		}
	}
	return 0
}

func (s *uafServer) lastReport() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reports) == 0 {
		return ""
	}
	return s.reports[len(s.reports)-1]
}
