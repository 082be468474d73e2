package oob

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"

	"github.com/fidoserver/hwfido/server/callerauth"
	"github.com/fidoserver/hwfido/server/oob/record"
	"github.com/fidoserver/hwfido/server/store"
	"github.com/fidoserver/hwfido/server/uafsvc"
)

// TargetInput is a dispatch target to create (POST body, or "dispatchTarget" in a
// RegistrationResponse context). Keys are P-256 public JWKs, as JSON objects or strings.
type TargetInput struct {
	Username      string          `json:"username,omitempty"`
	Name          string          `json:"name"`
	DeviceID      string          `json:"deviceId,omitempty"`
	Dispatcher    string          `json:"dispatcher,omitempty"`
	Target        string          `json:"target,omitempty"`
	SignatureKey  json.RawMessage `json:"signatureKey"`
	EncryptionKey json.RawMessage `json:"encryptionKey,omitempty"`
}

// CreatedTarget answers a dispatch target creation.
type CreatedTarget struct {
	ID    string `json:"id"`
	ExtID string `json:"extId"`
}

// TargetSummary is one entry of a target query.
type TargetSummary struct {
	Name       string `json:"name"`
	ID         string `json:"id"`
	Dispatcher string `json:"dispatcher"`
}

// TargetList answers a target query.
type TargetList struct {
	DispatchTargets []TargetSummary `json:"dispatchTargets"`
}

// targetError marks a dispatch target that fails validation.
type targetError struct{ msg string }

func (e *targetError) Error() string { return "oob: dispatch target: " + e.msg }

func validText(s string, max int) bool {
	return s != "" && len(s) <= max && utf8.ValidString(s) && !strings.ContainsAny(s, "\x00\r\n")
}

// ParseKey parses a P-256 public JWK given as a JSON object or as a string holding one and
// returns its canonical JSON.
func ParseKey(raw json.RawMessage) (string, *ecdsa.PublicKey, error) {
	b := []byte(raw)
	var s string
	if json.Unmarshal(raw, &s) == nil {
		b = []byte(s)
	}
	if len(b) == 0 || len(b) > 4096 {
		return "", nil, errors.New("key missing or too large")
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(b); err != nil {
		return "", nil, fmt.Errorf("not a JWK: %w", err)
	}
	pub, ok := k.Key.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return "", nil, errors.New("key must be a P-256 public key")
	}
	out, err := jose.JSONWebKey{Key: pub, KeyID: k.KeyID, Use: k.Use}.MarshalJSON()
	if err != nil {
		return "", nil, err
	}
	return string(out), pub, nil
}

// checkTarget validates in and returns the record to store (for user). Dispatcher errors
// are reported separately (422) from other bad input (400).
func (s *Service) checkTarget(in *TargetInput, user string) (*record.Target, error) {
	if !validText(in.Name, 128) {
		return nil, &targetError{"name must be 1..128 characters"}
	}
	if in.DeviceID != "" && !validText(in.DeviceID, 128) {
		return nil, &targetError{"deviceId must be at most 128 characters"}
	}
	if len(in.Target) > 4096 || strings.ContainsAny(in.Target, "\x00\r\n") {
		return nil, &targetError{"target too long"}
	}
	sig, _, err := ParseKey(in.SignatureKey)
	if err != nil {
		return nil, &targetError{"signatureKey: " + err.Error()}
	}
	var encKey string
	if len(in.EncryptionKey) > 0 && string(in.EncryptionKey) != "null" && string(in.EncryptionKey) != `""` {
		if encKey, _, err = ParseKey(in.EncryptionKey); err != nil {
			return nil, &targetError{"encryptionKey: " + err.Error()}
		}
	}
	id, err := randomID(16)
	if err != nil {
		return nil, err
	}
	return &record.Target{ID: id, ExtID: uuid.NewString(), Username: user, Name: in.Name, DeviceID: in.DeviceID,
		Dispatcher: s.defaultDispatcher(in), Target: in.Target, SignatureKey: sig, EncryptionKey: encKey}, nil
}

// defaultDispatcher is the dispatcher named, or FCM for a target with a push token, or our
// push stream.
func (s *Service) defaultDispatcher(in *TargetInput) string {
	switch {
	case in.Dispatcher != "":
		return in.Dispatcher
	case in.Target != "":
		return NameFCM
	}
	return NameStream
}

// CreateTarget answers POST /nevisfido/token/dispatch/targets for an authenticated caller
// acting for the target's user (a caller token's own user when username is omitted).
func (s *Service) CreateTarget(ctx context.Context, body []byte, caller *callerauth.Caller) (*CreatedTarget, error) {
	if caller == nil {
		return nil, unauthorized("caller authentication required", nil)
	}
	var in TargetInput
	if err := decodeStrict(body, &in); err != nil {
		return nil, err
	}
	user := in.Username
	if user == "" {
		user = caller.Username
	}
	if user == "" {
		return nil, badRequest("username is required", nil)
	}
	if !caller.MayActFor(user) {
		return nil, forbidden("the caller may not act for this user")
	}
	t, err := s.checkTarget(&in, user)
	var te *targetError
	if errors.As(err, &te) {
		return nil, badRequest(te.msg, nil)
	}
	if err != nil {
		return nil, err
	}
	if _, ok := s.dispatchers[t.Dispatcher]; !ok {
		return nil, unprocessable("dispatcher not configured")
	}
	err = s.o.Store.CreateOOBTarget(ctx, *t)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, forbidden("user not found")
	case errors.Is(err, store.ErrAlreadyExists):
		return nil, unprocessable("the user has a dispatch target of that name")
	case err != nil:
		return nil, err
	}
	s.log.Info("audit: dispatch target created", "user", user, "target", t.ID, "dispatcher", t.Dispatcher)
	return &CreatedTarget{ID: t.ID, ExtID: t.ExtID}, nil
}

// RegisterUAFWithTarget implements uafsvc.TargetRegistrar: the target named in a
// RegistrationResponse context is stored with the registration.
func (s *Service) RegisterUAFWithTarget(ctx context.Context, c store.Consumption, username string, regs []store.UAFRegistration, raw json.RawMessage) (string, error) {
	if len(raw) > 16<<10 {
		return "", fmt.Errorf("%w: too large", uafsvc.ErrBadTarget)
	}
	var in TargetInput
	if err := decodeStrict(raw, &in); err != nil {
		return "", fmt.Errorf("%w: %v", uafsvc.ErrBadTarget, err)
	}
	if in.Username != "" && in.Username != username {
		return "", fmt.Errorf("%w: username is not the registered user", uafsvc.ErrBadTarget)
	}
	t, err := s.checkTarget(&in, username)
	var te *targetError
	if errors.As(err, &te) {
		return "", fmt.Errorf("%w: %s", uafsvc.ErrBadTarget, te.msg)
	}
	if err != nil {
		return "", err
	}
	if _, ok := s.dispatchers[t.Dispatcher]; !ok {
		return "", fmt.Errorf("%w: dispatcher not configured", uafsvc.ErrBadTarget)
	}
	err = s.o.Store.RegisterUAFWithTarget(ctx, c, username, regs, *t)
	if errors.Is(err, record.ErrNameTaken) {
		return "", fmt.Errorf("%w: the user has a dispatch target of that name", uafsvc.ErrBadTarget)
	}
	if err != nil {
		return "", err
	}
	s.log.Info("audit: dispatch target created with registration", "user", username, "target", t.ID, "dispatcher", t.Dispatcher)
	return t.ID, nil
}

// Targets answers the target query of a trusted backend.
func (s *Service) Targets(ctx context.Context, username string, caller *callerauth.Caller) (*TargetList, error) {
	if caller == nil {
		return nil, unauthorized("caller authentication required", nil)
	}
	if !caller.Trusted {
		return nil, forbidden("only trusted backends may query dispatch targets")
	}
	if username == "" || len(username) > 128 {
		return nil, badRequest("username is required", nil)
	}
	ts, err := s.o.Store.OOBTargets(ctx, username)
	if err != nil {
		return nil, err
	}
	if len(ts) == 0 {
		return nil, notFound("no dispatch target")
	}
	out := &TargetList{DispatchTargets: []TargetSummary{}}
	for _, t := range ts {
		out.DispatchTargets = append(out.DispatchTargets, TargetSummary{Name: t.Name, ID: t.ID, Dispatcher: t.Dispatcher})
	}
	return out, nil
}

// signedRequest is the payload of a device-signed request (PATCH, DELETE, stream).
type signedRequest struct {
	RequestID     string          `json:"requestId"`
	Timestamp     int64           `json:"timestamp"`
	Aud           string          `json:"aud,omitempty"`
	Name          *string         `json:"name,omitempty"`
	Target        *string         `json:"target,omitempty"`
	Dispatcher    *string         `json:"dispatcher,omitempty"`
	EncryptionKey json.RawMessage `json:"encryptionKey,omitempty"`
}

// ParseSignedRequest parses a compact JWS (ES256) and, when key is not nil, verifies it
// with key and checks that its kid is targetID; it returns the decoded payload. It does not
// check the timestamp or replay.
func ParseSignedRequest(compact, targetID string, key *ecdsa.PublicKey) (*signedRequest, error) {
	if len(compact) > 16<<10 {
		return nil, errors.New("oob: JWS too large")
	}
	jws, err := jose.ParseSigned(strings.TrimSpace(compact), []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return nil, fmt.Errorf("oob: JWS: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("oob: JWS needs exactly one signature")
	}
	if jws.Signatures[0].Protected.KeyID != targetID {
		return nil, errors.New("oob: JWS kid is not the dispatch target id")
	}
	var payload []byte
	if key != nil {
		if payload, err = jws.Verify(key); err != nil {
			return nil, fmt.Errorf("oob: JWS: %w", err)
		}
	} else {
		payload = jws.UnsafePayloadWithoutVerification()
	}
	var req signedRequest
	if err := decodeStrict(payload, &req); err != nil {
		return nil, fmt.Errorf("oob: JWS payload: %w", err)
	}
	return &req, nil
}

// verifySigned checks a device-signed request for target t: signature with the target's
// key, kid, timestamp window and request id; it returns the payload and the consumption
// that marks the request id used.
func (s *Service) verifySigned(t *record.Target, compact, aud string) (*signedRequest, store.Consumption, error) {
	var none store.Consumption
	_, key, err := ParseKey(json.RawMessage(t.SignatureKey))
	if err != nil {
		return nil, none, fmt.Errorf("oob: stored signature key: %w", err)
	}
	req, err := ParseSignedRequest(compact, t.ID, key)
	if err != nil {
		return nil, none, unauthorized("JWS signature is invalid", err)
	}
	if req.Aud != aud {
		return nil, none, unauthorized("JWS is for another purpose", nil)
	}
	if req.RequestID == "" || len(req.RequestID) > 128 {
		return nil, none, badRequest("requestId must be 1..128 characters", nil)
	}
	now := s.o.Now()
	ts := time.Unix(req.Timestamp, 0)
	if ts.Before(now.Add(-s.o.JWSWindow)) || ts.After(now.Add(s.o.JWSWindow)) {
		return nil, none, unauthorized("JWS timestamp outside the accepted window", nil)
	}
	h := sha256.Sum256([]byte("hwfido-oob-request\x00" + t.ID + "\x00" + req.RequestID))
	return req, store.Consumption{Nonce: h[:], ExpiresAt: now.Add(2*s.o.JWSWindow + time.Minute)}, nil
}

func (s *Service) target(ctx context.Context, id string) (*record.Target, error) {
	if id == "" || len(id) > 128 {
		return nil, notFound("dispatch target not found")
	}
	t, err := s.o.Store.OOBTarget(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("dispatch target not found")
	}
	return t, err
}

// ModifyTarget answers PATCH …/targets/<id> with a compact JWS signed by the target's
// signature key.
func (s *Service) ModifyTarget(ctx context.Context, id string, body []byte) error {
	t, err := s.target(ctx, id)
	if err != nil {
		return err
	}
	req, cons, err := s.verifySigned(t, string(body), "")
	if err != nil {
		return err
	}
	var ch record.TargetChange
	if req.Name != nil {
		if !validText(*req.Name, 128) {
			return badRequest("name must be 1..128 characters", nil)
		}
		ch.Name = req.Name
	}
	if req.Target != nil {
		if len(*req.Target) > 4096 || strings.ContainsAny(*req.Target, "\x00\r\n") {
			return badRequest("target too long", nil)
		}
		ch.Target = req.Target
	}
	if req.Dispatcher != nil {
		if _, ok := s.dispatchers[*req.Dispatcher]; !ok {
			return unprocessable("dispatcher not configured")
		}
		ch.Dispatcher = req.Dispatcher
	}
	if len(req.EncryptionKey) > 0 {
		k, _, err := ParseKey(req.EncryptionKey)
		if err != nil {
			return badRequest("encryptionKey: "+err.Error(), nil)
		}
		ch.EncryptionKey = &k
	}
	err = s.o.Store.UpdateOOBTarget(ctx, id, cons, ch)
	switch {
	case errors.Is(err, store.ErrReplay):
		return unauthorized("request id already used (replay)", err)
	case errors.Is(err, store.ErrAlreadyExists):
		return unprocessable("the user has a dispatch target of that name")
	case errors.Is(err, store.ErrNotFound):
		return notFound("dispatch target not found")
	case err != nil:
		return err
	}
	s.log.Info("audit: dispatch target modified", "user", t.Username, "target", id)
	return nil
}

// DeleteTarget answers DELETE …/targets/<id>: with a JWS signed by the target's key
// (payload {requestId, timestamp}), or without a body by a caller acting for its user.
func (s *Service) DeleteTarget(ctx context.Context, id string, body []byte, caller *callerauth.Caller) error {
	t, err := s.target(ctx, id)
	if err != nil {
		return err
	}
	var cons *store.Consumption
	if len(strings.TrimSpace(string(body))) > 0 {
		req, c, err := s.verifySigned(t, string(body), "")
		if err != nil {
			return err
		}
		if req.Name != nil || req.Target != nil || req.Dispatcher != nil || len(req.EncryptionKey) > 0 {
			return badRequest("a delete request carries only requestId and timestamp", nil)
		}
		cons = &c
	} else {
		if caller == nil {
			return unauthorized("a signed request or caller authentication is required", nil)
		}
		if !caller.MayActFor(t.Username) {
			return forbidden("the caller may not act for this user")
		}
	}
	err = s.o.Store.DeleteOOBTarget(ctx, id, cons)
	switch {
	case errors.Is(err, store.ErrReplay):
		return unauthorized("request id already used (replay)", err)
	case errors.Is(err, store.ErrNotFound):
		return notFound("dispatch target not found")
	case err != nil:
		return err
	}
	s.log.Info("audit: dispatch target deleted", "user", t.Username, "target", id)
	return nil
}

// OpenStream authenticates a device's push stream of target id (bearer: a compact JWS with
// aud "stream") and returns the channel of payloads (each the JSON of one dispatch) and the
// function that closes the stream.
func (s *Service) OpenStream(ctx context.Context, id, bearer string) (<-chan []byte, func(), error) {
	t, err := s.target(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if bearer == "" {
		return nil, nil, unauthorized("a signed bearer token is required", nil)
	}
	_, cons, err := s.verifySigned(t, bearer, "stream")
	if err != nil {
		return nil, nil, err
	}
	connID, err := randomID(12)
	if err != nil {
		return nil, nil, err
	}
	// The stream slot is taken before the request id is spent, so a refusal for too many
	// streams leaves the signed request usable.
	now := s.o.Now()
	sub, closeHub, poll, err := s.streams.open(id, connID, now)
	if err != nil {
		return nil, nil, &Error{Status: 429, Msg: "too many open streams for this dispatch target"}
	}
	if poll {
		go s.pollPushes(now.Add(-time.Second))
	}
	if err := s.o.Store.ConsumeOOB(ctx, cons); errors.Is(err, store.ErrReplay) {
		closeHub()
		return nil, nil, unauthorized("request id already used (replay)", err)
	} else if err != nil {
		closeHub()
		return nil, nil, err
	}
	if err := s.o.Store.TouchOOBStream(ctx, connID, id, now); err != nil {
		closeHub()
		return nil, nil, err
	}
	var once sync.Once
	return sub.ch, func() {
		once.Do(func() {
			closeHub()
			dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer dcancel()
			if err := s.o.Store.DropOOBStream(dctx, connID); err != nil {
				s.log.Warn("push stream record not removed", "err", err)
			}
		})
	}, nil
}
