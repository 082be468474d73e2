// Package oobtest is a loopback server that follows the out-of-band wire
// contract (docs/oob.md) closely enough to test the device side against it
// while the real server is elsewhere: tokens (single use, per operation,
// stored as SHA-256), payloads (clear or JWE ECDH-ES/A256GCM to the
// target's encryption key, kid = target id), redeem → ReturnUAFRequest,
// registration responses that create dispatch targets from the context,
// failure reports, device-signed PATCH/DELETE and the hwfido-stream SSE
// channel with replay protection. It checks what the device sends with
// the uaf codec and go-jose; it is not a FIDO server (surrogate
// attestation only, one AAID).
package oobtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/fidoserver/hwfido/internal/strictjson"
	"github.com/fidoserver/hwfido/uaf"
)

// Session is a token session as the status service would show it.
type Session struct {
	ID          string
	Op          uaf.Operation
	Username    string
	Transaction string
	// Status: tokenCreated, clientRegistering, clientAuthenticating,
	// succeeded, failed.
	Status string
	// Report is the failure report context (asmStatusCode/clientErrorCode).
	Report string
}

// Target is a dispatch target the server stores.
type Target struct {
	ID, Username, Name, DeviceID, Dispatcher, Target string
	SignatureKey                                     *ecdsa.PublicKey
	EncryptionKey                                    *ecdsa.PublicKey
}

type token struct {
	op      uaf.Operation
	session string
	expires time.Time
}

type pendingReq struct {
	op        uaf.Operation
	challenge string
	session   string
	tx        []byte
}

type reg struct {
	username string
	pub      crypto.PublicKey
	counter  uint32
}

// Server is the contract server. Its methods are safe for concurrent use.
type Server struct {
	tb      testing.TB
	srv     *httptest.Server
	facetID string
	aaid    string

	mu         sync.Mutex
	tokens     map[[32]byte]token
	sessions   map[string]*Session
	pending    map[string]pendingReq
	regs       map[string]*reg
	targets    map[string]*Target
	seen       map[string]bool
	streams    map[string]chan string
	streamGen  map[string]int
	authFails  int
	kickStream chan struct{}
}

// Start starts the server on 127.0.0.1; facetID is the device's facet ID
// (listed in the trusted facets of the server's AppID).
func Start(tb testing.TB, facetID string) *Server {
	tb.Helper()
	s := &Server{tb: tb, facetID: facetID, aaid: "4857#0001",
		tokens: map[[32]byte]token{}, sessions: map[string]*Session{}, pending: map[string]pendingReq{},
		regs: map[string]*reg{}, targets: map[string]*Target{}, seen: map[string]bool{},
		streams: map[string]chan string{}, streamGen: map[string]int{}, kickStream: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /nevisfido/uaf/1.1/facets", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/fido.trusted-apps+json")
		_ = json.NewEncoder(w).Encode(uaf.TrustedFacetList{TrustedFacets: []uaf.TrustedFacets{{Version: uaf.Version11, IDs: []string{s.facetID}}}})
	})
	mux.HandleFunc("POST /nevisfido/token/redeem/{op}", s.redeem)
	mux.HandleFunc("POST /nevisfido/uaf/1.1/registration", s.respond(uaf.OpReg))
	mux.HandleFunc("POST /nevisfido/uaf/1.1/authentication", s.respond(uaf.OpAuth))
	mux.HandleFunc("PATCH /nevisfido/token/dispatch/targets/{id}", s.patch)
	mux.HandleFunc("DELETE /nevisfido/token/dispatch/targets/{id}", s.del)
	mux.HandleFunc("GET /nevisfido/token/dispatch/targets/{id}/stream", s.stream)
	s.srv = httptest.NewServer(mux)
	tb.Cleanup(func() {
		s.mu.Lock()
		close(s.kickStream)
		s.mu.Unlock()
		s.srv.Close()
	})
	return s
}

// URL is the server's base URL.
func (s *Server) URL() string { return s.srv.URL }

// AppID is the AppID of the server's requests (its facets URL).
func (s *Server) AppID() string { return s.srv.URL + "/nevisfido/uaf/1.1/facets" }

func randText() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

var opPath = map[uaf.Operation]string{uaf.OpReg: "registration", uaf.OpAuth: "authentication", uaf.OpDereg: "deregistration"}

// CreateToken is POST /nevisfido/token/create/<op> (without caller
// authentication): it returns a fresh token and its session id. tx is the
// transaction text of an authentication ("" for none).
func (s *Server) CreateToken(op uaf.Operation, username, tx string) (tok, sessionID string) {
	tok, sessionID = randText(), randText()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[sha256.Sum256([]byte(tok))] = token{op: op, session: sessionID, expires: time.Now().Add(5 * time.Minute)}
	s.sessions[sessionID] = &Session{ID: sessionID, Op: op, Username: username, Transaction: tx, Status: "tokenCreated"}
	return tok, sessionID
}

// Payload returns the payload JSON for tok: clear, or — when targetID is
// set — with nma_data a JWE to that target's encryption key.
func (s *Server) Payload(op uaf.Operation, tok, targetID string, extra map[string]any) []byte {
	s.tb.Helper()
	data := map[string]any{"token": tok, "redeem_url": s.srv.URL + "/nevisfido/token/redeem/" + opPath[op]}
	for k, v := range extra {
		data[k] = v
	}
	clear, err := json.Marshal(data)
	if err != nil {
		s.tb.Fatal(err)
	}
	out := map[string]any{"nma_data": json.RawMessage(clear), "nma_data_content_type": "application/json", "nma_data_version": "1"}
	if targetID != "" {
		s.mu.Lock()
		t := s.targets[targetID]
		s.mu.Unlock()
		if t == nil || t.EncryptionKey == nil {
			s.tb.Fatalf("oobtest: no target %q with an encryption key", targetID)
		}
		enc, err := jose.NewEncrypter(jose.A256GCM,
			jose.Recipient{Algorithm: jose.ECDH_ES, Key: t.EncryptionKey, KeyID: targetID},
			(&jose.EncrypterOptions{}).WithContentType("JSON"))
		if err != nil {
			s.tb.Fatal(err)
		}
		obj, err := enc.Encrypt(clear)
		if err != nil {
			s.tb.Fatal(err)
		}
		c, err := obj.CompactSerialize()
		if err != nil {
			s.tb.Fatal(err)
		}
		out["nma_data"], out["nma_data_content_type"] = c, "application/jose"
	}
	b, err := json.Marshal(out)
	if err != nil {
		s.tb.Fatal(err)
	}
	return b
}

// Link is the link dispatcher's output for payload.
func (s *Server) Link(payload []byte) string {
	return "https://link.example/app?dispatchTokenResponse=" + base64.RawURLEncoding.EncodeToString(payload)
}

// ErrNoStream is returned by [Server.Dispatch] when the target has no
// connected stream (the contract's dispatchResult dispatchError).
var ErrNoStream = errors.New("oobtest: dispatchError: no connected stream")

// Dispatch is POST /nevisfido/token/dispatch/<op> to an hwfido-stream
// target: a token for the target's user, the payload encrypted to the
// target, sent as one `event: dispatch`.
func (s *Server) Dispatch(targetID string, op uaf.Operation, tx string) (string, error) {
	s.mu.Lock()
	t := s.targets[targetID]
	ch := s.streams[targetID]
	s.mu.Unlock()
	if t == nil {
		return "", errors.New("oobtest: dispatchTargetNotFound")
	}
	if ch == nil {
		return "", ErrNoStream
	}
	tok, sid := s.CreateToken(op, t.Username, tx)
	p := s.Payload(op, tok, targetID, nil)
	select {
	case ch <- string(p):
		return sid, nil
	case <-time.After(5 * time.Second):
		return "", ErrNoStream
	}
}

// Push sends raw data as one `event: dispatch` on the target's stream
// (for tests of what the device refuses).
func (s *Server) Push(targetID string, data []byte) error {
	s.mu.Lock()
	ch := s.streams[targetID]
	s.mu.Unlock()
	if ch == nil {
		return ErrNoStream
	}
	select {
	case ch <- string(data):
		return nil
	case <-time.After(5 * time.Second):
		return ErrNoStream
	}
}

// RemoveTarget deletes a target on the server side only (as an
// administrator would) and drops its stream.
func (s *Server) RemoveTarget(id string) {
	s.mu.Lock()
	delete(s.targets, id)
	s.mu.Unlock()
	s.DropStreams()
}

// Session returns a copy of the session.
func (s *Server) Session(id string) Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.sessions[id]; p != nil {
		return *p
	}
	return Session{Status: "unknown"}
}

// Targets returns copies of the stored targets.
func (s *Server) Targets() []Target {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Target
	for _, t := range s.targets {
		out = append(out, *t)
	}
	return out
}

// StreamConnected reports whether the target's stream is connected, and
// how many times it connected.
func (s *Server) StreamConnected(id string) (bool, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams[id] != nil, s.streamGen[id]
}

// DropStreams closes every open stream (the device must reconnect).
func (s *Server) DropStreams() {
	s.mu.Lock()
	old := s.kickStream
	s.kickStream = make(chan struct{})
	s.mu.Unlock()
	close(old)
}

// AuthFailures counts refused device JWS (bad signature, replay, time).
func (s *Server) AuthFailures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authFails
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// redeem is POST /nevisfido/token/redeem/<op>.
func (s *Server) redeem(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Token string `json:"token"`
	}
	if err := strictjson.Decode(io.LimitReader(r.Body, 4096), &in); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	op := map[string]uaf.Operation{"registration": uaf.OpReg, "authentication": uaf.OpAuth, "deregistration": uaf.OpDereg}[r.PathValue("op")]
	h := sha256.Sum256([]byte(in.Token))
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[h]
	if !ok || t.op != op || time.Now().After(t.expires) {
		writeJSON(w, uaf.ReturnUAFRequest{StatusCode: uaf.StatusUnauthorized}) // 1401, nothing consumed
		return
	}
	delete(s.tokens, h)
	sess := s.sessions[t.session]
	ch := uaf.EncodeBase64URL([]byte(randText()))
	sd := t.session + "." + randText()
	hdr := uaf.OperationHeader{UPV: uaf.Version11, Op: op, AppID: s.AppID(), ServerData: sd}
	var msg any
	switch op {
	case uaf.OpReg:
		pol := uaf.Policy{Accepted: [][]uaf.MatchCriteria{{{AAID: []string{s.aaid}}}}}
		for id, g := range s.regs {
			if g.username == sess.Username {
				pol.Disallowed = append(pol.Disallowed, uaf.MatchCriteria{AAID: []string{s.aaid}, KeyIDs: []string{id}})
			}
		}
		msg = uaf.RegistrationRequest{Header: hdr, Challenge: ch, Username: sess.Username, Policy: pol}
		sess.Status = "clientRegistering"
	case uaf.OpAuth:
		crit := uaf.MatchCriteria{AAID: []string{s.aaid}}
		for id, g := range s.regs {
			if g.username == sess.Username {
				crit.KeyIDs = append(crit.KeyIDs, id)
			}
		}
		req := uaf.AuthenticationRequest{Header: hdr, Challenge: ch, Policy: uaf.Policy{Accepted: [][]uaf.MatchCriteria{{crit}}}}
		if sess.Transaction != "" {
			req.Transaction = []uaf.Transaction{{ContentType: "text/plain", Content: uaf.EncodeBase64URL([]byte(sess.Transaction))}}
		}
		msg = req
		sess.Status = "clientAuthenticating"
	default:
		var auths []uaf.DeregisterAuthenticator
		for id, g := range s.regs {
			if g.username == sess.Username {
				auths = append(auths, uaf.DeregisterAuthenticator{AAID: s.aaid, KeyID: id})
				delete(s.regs, id)
			}
		}
		msg = uaf.DeregistrationRequest{Header: hdr, Authenticators: auths}
		sess.Status = "succeeded"
	}
	pr := pendingReq{op: op, challenge: ch, session: t.session}
	if sess.Transaction != "" {
		pr.tx = []byte(sess.Transaction)
	}
	s.pending[sd] = pr
	b, _ := json.Marshal([]any{msg})
	writeJSON(w, uaf.ReturnUAFRequest{StatusCode: uaf.StatusOK, UAFRequest: string(b), Op: op, LifetimeMillis: 60000})
}

func (s *Server) respond(op uaf.Operation) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		sr := s.process(op, body)
		writeJSON(w, sr)
	}
}

type respContext struct {
	ASMStatusCode   *int            `json:"asmStatusCode"`
	ClientErrorCode *int            `json:"clientErrorCode"`
	DispatchTarget  json.RawMessage `json:"dispatchTarget"`
}

func refuse(code uaf.StatusCode, format string, args ...any) *uaf.ServerResponse {
	return &uaf.ServerResponse{StatusCode: code, Description: fmt.Sprintf(format, args...)}
}

func (s *Server) process(op uaf.Operation, body []byte) *uaf.ServerResponse {
	send, err := uaf.DecodeSendUAFResponse(body)
	if err != nil {
		return refuse(uaf.StatusBadRequest, "%v", err)
	}
	msg, err := uaf.DecodeResponse([]byte(send.UAFResponse))
	if err != nil {
		return refuse(uaf.StatusBadRequest, "%v", err)
	}
	h := msg.Header()
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pending[h.ServerData]
	if !ok || p.op != op || h.Op != op {
		return refuse(uaf.StatusBadRequest, "unknown serverData or op")
	}
	var rc respContext
	if send.Context != "" {
		if err := strictjson.Unmarshal([]byte(send.Context), &rc); err != nil {
			return refuse(uaf.StatusBadRequest, "context: %v", err)
		}
	}
	delete(s.pending, h.ServerData)
	sess := s.sessions[p.session]
	if rc.ASMStatusCode != nil || rc.ClientErrorCode != nil {
		sess.Status, sess.Report = "failed", send.Context
		return &uaf.ServerResponse{StatusCode: uaf.StatusOK}
	}
	var fcParams string
	if op == uaf.OpReg {
		fcParams = msg.Registration.FCParams
	} else {
		fcParams = msg.Authentication.FCParams
	}
	fc, err := uaf.DecodeFinalChallengeParams(fcParams)
	if err != nil || fc.AppID != s.AppID() || fc.Challenge != p.challenge || fc.FacetID != s.facetID {
		sess.Status = "failed"
		return refuse(uaf.StatusUnacceptableContent, "fcParams mismatch")
	}
	if op == uaf.OpReg {
		return s.register(msg.Registration, fcParams, sess, rc.DispatchTarget)
	}
	if len(rc.DispatchTarget) != 0 {
		return refuse(uaf.StatusBadRequest, "dispatchTarget outside a registration")
	}
	return s.authenticate(msg.Authentication, fcParams, sess, p)
}

func (s *Server) register(m *uaf.RegistrationResponse, fcParams string, sess *Session, dt json.RawMessage) *uaf.ServerResponse {
	fail := func(code uaf.StatusCode, format string, args ...any) *uaf.ServerResponse {
		sess.Status = "failed"
		return refuse(code, format, args...)
	}
	if len(m.Assertions) != 1 {
		return fail(uaf.StatusUnacceptableContent, "want one assertion")
	}
	raw, err := uaf.DecodeBase64URL(m.Assertions[0].Assertion)
	if err != nil {
		return fail(uaf.StatusUnacceptableContent, "%v", err)
	}
	a, err := uaf.ParseRegAssertion(raw)
	if err != nil {
		return fail(uaf.StatusUnacceptableContent, "%v", err)
	}
	if err := a.CheckFinalChallenge(fcParams); err != nil {
		return fail(uaf.StatusUnacceptableContent, "%v", err)
	}
	pub, err := uaf.ParsePublicKey(a.PubKeyEncoding, a.SignAlg, a.PubKey)
	if err != nil {
		return fail(uaf.StatusUnacceptableContent, "%v", err)
	}
	if a.AttestationType != uaf.AttestationBasicSurrogate {
		return fail(uaf.StatusUnacceptableContent, "only surrogate attestation")
	}
	if err := uaf.VerifySignature(a.SignAlg, pub, a.RawKRD, a.Signature); err != nil {
		return fail(uaf.StatusUnacceptableContent, "surrogate signature: %v", err)
	}
	var tokens []uaf.Token
	if len(dt) != 0 {
		t, err := s.parseTarget(dt, sess.Username)
		if err != nil {
			return fail(uaf.StatusUnacceptableContent, "dispatchTarget: %v", err) // 1498, nothing stored
		}
		s.targets[t.ID] = t
		tokens = append(tokens, uaf.Token{Type: "dispatchTargetId", Value: t.ID})
	}
	s.regs[uaf.EncodeBase64URL(a.KeyID)] = &reg{username: sess.Username, pub: pub, counter: a.SignCounter}
	sess.Status = "succeeded"
	return &uaf.ServerResponse{StatusCode: uaf.StatusOK, AdditionalTokens: tokens}
}

// parseTarget validates a dispatchTarget: name unique for the user, known
// dispatcher, P-256 public JWKs (objects or strings).
func (s *Server) parseTarget(b json.RawMessage, username string) (*Target, error) {
	var in struct {
		Name          string          `json:"name"`
		DeviceID      string          `json:"deviceId"`
		Dispatcher    string          `json:"dispatcher"`
		Target        string          `json:"target"`
		SignatureKey  json.RawMessage `json:"signatureKey"`
		EncryptionKey json.RawMessage `json:"encryptionKey"`
	}
	if err := strictjson.Unmarshal(b, &in); err != nil {
		return nil, err
	}
	if in.Name == "" {
		return nil, errors.New("name required")
	}
	switch in.Dispatcher {
	case "", "hwfido-stream", "link", "png-qr-code", "link-png-qr-code":
	default:
		return nil, errors.New("unknown dispatcher")
	}
	for _, t := range s.targets {
		if t.Username == username && t.Name == in.Name {
			return nil, errors.New("duplicate name")
		}
	}
	sk, err := parseJWK(in.SignatureKey)
	if err != nil || sk == nil {
		return nil, fmt.Errorf("signatureKey: %v", err)
	}
	ek, err := parseJWK(in.EncryptionKey)
	if err != nil {
		return nil, fmt.Errorf("encryptionKey: %w", err)
	}
	return &Target{ID: randText()[:22], Username: username, Name: in.Name, DeviceID: in.DeviceID,
		Dispatcher: in.Dispatcher, Target: in.Target, SignatureKey: sk, EncryptionKey: ek}, nil
}

func parseJWK(b json.RawMessage) (*ecdsa.PublicKey, error) {
	if len(b) == 0 || string(b) == "null" {
		return nil, nil
	}
	var str string
	if json.Unmarshal(b, &str) == nil {
		b = json.RawMessage(str)
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(b); err != nil {
		return nil, err
	}
	pub, ok := k.Key.(*ecdsa.PublicKey)
	if !ok || !k.IsPublic() || pub.Curve != elliptic.P256() {
		return nil, errors.New("not a P-256 public JWK")
	}
	return pub, nil
}

func (s *Server) authenticate(m *uaf.AuthenticationResponse, fcParams string, sess *Session, p pendingReq) *uaf.ServerResponse {
	fail := func(format string, args ...any) *uaf.ServerResponse {
		sess.Status = "failed"
		return refuse(uaf.StatusUnacceptableContent, format, args...)
	}
	if len(m.Assertions) != 1 {
		return fail("want one assertion")
	}
	raw, err := uaf.DecodeBase64URL(m.Assertions[0].Assertion)
	if err != nil {
		return fail("%v", err)
	}
	a, err := uaf.ParseAuthAssertion(raw)
	if err != nil {
		return fail("%v", err)
	}
	if err := a.CheckFinalChallenge(fcParams); err != nil {
		return fail("%v", err)
	}
	if err := a.CheckTransaction(p.tx); err != nil {
		return fail("%v", err)
	}
	g, ok := s.regs[uaf.EncodeBase64URL(a.KeyID)]
	if !ok || g.username != sess.Username {
		return fail("unknown KeyID")
	}
	if err := uaf.VerifySignature(a.SignAlg, g.pub, a.RawSignedData, a.Signature); err != nil {
		return fail("signature: %v", err)
	}
	if a.SignCounter <= g.counter {
		return fail("counter")
	}
	g.counter = a.SignCounter
	sess.Status = "succeeded"
	return &uaf.ServerResponse{StatusCode: uaf.StatusOK}
}

// claims is the device JWS payload (docs/oob.md).
type claims struct {
	RequestID     string          `json:"requestId"`
	Timestamp     int64           `json:"timestamp"`
	Aud           string          `json:"aud"`
	Name          string          `json:"name"`
	Target        string          `json:"target"`
	Dispatcher    string          `json:"dispatcher"`
	EncryptionKey json.RawMessage `json:"encryptionKey"`
}

// verify checks a compact JWS of the target: ES256, kid = id, signature
// by the target's signatureKey, timestamp ±5 min, requestId unseen. The
// caller holds s.mu.
func (s *Server) verify(id, jws, aud string) (*Target, *claims, error) {
	t := s.targets[id]
	if t == nil {
		return nil, nil, errNotFound
	}
	obj, err := jose.ParseSignedCompact(jws, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil || len(obj.Signatures) != 1 || obj.Signatures[0].Protected.KeyID != id {
		s.authFails++
		return nil, nil, errors.New("bad JWS or kid")
	}
	payload, err := obj.Verify(t.SignatureKey)
	if err != nil {
		s.authFails++
		return nil, nil, err
	}
	var c claims
	if err := strictjson.Unmarshal(payload, &c); err != nil || c.RequestID == "" || c.Aud != aud {
		s.authFails++
		return nil, nil, errors.New("bad claims")
	}
	if d := time.Since(time.Unix(c.Timestamp, 0)); d > 5*time.Minute || d < -5*time.Minute {
		s.authFails++
		return nil, nil, errors.New("timestamp out of window")
	}
	if s.seen[c.RequestID] {
		s.authFails++
		return nil, nil, errors.New("replayed requestId")
	}
	s.seen[c.RequestID] = true
	return t, &c, nil
}

var errNotFound = errors.New("not found")

func (s *Server) jwsStatus(w http.ResponseWriter, err error) {
	if errors.Is(err, errNotFound) {
		http.NotFound(w, nil)
		return
	}
	http.Error(w, "unauthorized", http.StatusUnauthorized)
}

func (s *Server) patch(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/jose") {
		http.Error(w, "content type", http.StatusUnsupportedMediaType)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 16<<10))
	s.mu.Lock()
	defer s.mu.Unlock()
	t, c, err := s.verify(r.PathValue("id"), string(body), "")
	if err != nil {
		s.jwsStatus(w, err)
		return
	}
	if c.Name != "" {
		t.Name = c.Name
	}
	if c.Target != "" {
		t.Target = c.Target
	}
	if c.Dispatcher != "" {
		t.Dispatcher = c.Dispatcher
	}
	if len(c.EncryptionKey) != 0 {
		k, err := parseJWK(c.EncryptionKey)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
			return
		}
		t.EncryptionKey = k
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) del(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 16<<10))
	s.mu.Lock()
	defer s.mu.Unlock()
	t, _, err := s.verify(r.PathValue("id"), string(body), "")
	if err != nil {
		s.jwsStatus(w, err)
		return
	}
	delete(s.targets, t.ID)
	w.WriteHeader(http.StatusNoContent)
}

// stream is the hwfido-stream channel: Bearer JWS with aud "stream",
// heartbeats as comments, one `event: dispatch` per payload.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	if !ok {
		s.mu.Unlock()
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if _, _, err := s.verify(id, bearer, "stream"); err != nil {
		s.mu.Unlock()
		s.jwsStatus(w, err)
		return
	}
	ch := make(chan string)
	s.streams[id] = ch
	s.streamGen[id]++
	kick := s.kickStream
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.streams[id] == ch {
			delete(s.streams, id)
		}
		s.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	fl, _ := w.(http.Flusher)
	_, _ = io.WriteString(w, ": connected\n\n")
	fl.Flush()
	hb := time.NewTicker(200 * time.Millisecond)
	defer hb.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-kick:
			return
		case <-hb.C:
			_, _ = io.WriteString(w, ": heartbeat\n\n")
		case p := <-ch:
			_, _ = fmt.Fprintf(w, "event: dispatch\ndata: %s\n\n", p)
		}
		fl.Flush()
	}
}
