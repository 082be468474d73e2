package oob

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fidoserver/hwfido/server/callerauth"
	"github.com/fidoserver/hwfido/server/oob/record"
	"github.com/fidoserver/hwfido/server/store"
	"github.com/fidoserver/hwfido/uaf"
)

// tokenBytes is the entropy of a token.
const tokenBytes = 32

// Dispatch results (nevisFIDO Dispatch Token Service).
const (
	ResultDispatched             = "dispatched"
	ResultDispatchError          = "dispatchError"
	ResultDispatchTargetExpired  = "dispatchTargetExpired"
	ResultDispatchTargetNotFound = "dispatchTargetNotFound"
	ResultDispatcherNotFound     = "dispatcherNotFound"
	ResultUserNotFound           = "userNotFound"
	ResultInternalError          = "internalError"
)

// TokenResponse answers the Create Token Service.
type TokenResponse struct {
	Token     string `json:"token"`
	SessionID string `json:"sessionId"`
}

// DispatcherInformation is the output of a dispatcher.
type DispatcherInformation struct {
	Name     string `json:"name"`
	Response string `json:"response,omitempty"`
}

// DispatchResponse answers the Dispatch Token Service (always HTTP 200).
type DispatchResponse struct {
	Token                 string                 `json:"token,omitempty"`
	SessionID             string                 `json:"sessionId,omitempty"`
	DispatcherInformation *DispatcherInformation `json:"dispatcherInformation,omitempty"`
	DispatchResult        string                 `json:"dispatchResult"`
}

// DispatchRequest is the body of the Dispatch Token Service.
type DispatchRequest struct {
	Dispatcher          string             `json:"dispatcher,omitempty"`
	DispatchTargetID    string             `json:"dispatchTargetId,omitempty"`
	DispatchInformation string             `json:"dispatchInformation,omitempty"`
	GetUAFRequest       *uaf.GetUAFRequest `json:"getUafRequest"`
}

// DispatchInfo is the parsed dispatchInformation: the push notification text and the data
// added to nma_data (docs/oob.md).
type DispatchInfo struct {
	Notification *Notification              `json:"notification,omitempty"`
	Data         map[string]json.RawMessage `json:"data,omitempty"`
}

// Notification is the visible part of a push message.
type Notification struct {
	Title string `json:"title,omitempty"`
	Body  string `json:"body,omitempty"`
}

// Limits of dispatchInformation.
const (
	maxDispatchInfo = 8 << 10
	maxDataKeys     = 32
	maxNotification = 256
)

// reserved nma_data keys that dispatchInformation.data may not override.
var reservedData = map[string]bool{"token": true, "redeem_url": true}

// ParseDispatchInfo decodes dispatchInformation ("" is no information). The result has at
// most 32 data keys, none reserved, and notification texts of at most 256 characters.
func ParseDispatchInfo(s string) (*DispatchInfo, error) {
	var di DispatchInfo
	if strings.TrimSpace(s) == "" {
		return &di, nil
	}
	if len(s) > maxDispatchInfo {
		return nil, badRequest("dispatchInformation is too large", nil)
	}
	if err := decodeStrict([]byte(s), &di); err != nil {
		return nil, badRequest("dispatchInformation must be a JSON object {notification, data}", err)
	}
	if len(di.Data) > maxDataKeys {
		return nil, badRequest("dispatchInformation.data has too many keys", nil)
	}
	for k, v := range di.Data {
		if k == "" || reservedData[k] || len(k) > 64 {
			return nil, badRequest("dispatchInformation.data has a reserved or bad key", nil)
		}
		if !json.Valid(v) {
			return nil, badRequest("dispatchInformation.data has a bad value", nil)
		}
	}
	if n := di.Notification; n != nil {
		if utf8.RuneCountInString(n.Title) > maxNotification || utf8.RuneCountInString(n.Body) > maxNotification ||
			!utf8.ValidString(n.Title) || !utf8.ValidString(n.Body) {
			return nil, badRequest("dispatchInformation.notification texts must be UTF-8 of at most 256 characters", nil)
		}
	}
	return &di, nil
}

// decodeGet decodes a GetUAFRequest (create token body) and checks its op.
func decodeGet(body []byte, op uaf.Operation) (*uaf.GetUAFRequest, error) {
	g, err := uaf.DecodeGetUAFRequest(body)
	if err != nil {
		return nil, badRequest("body is not a GetUAFRequest", err)
	}
	return g, checkGetOp(g, op)
}

func checkGetOp(g *uaf.GetUAFRequest, op uaf.Operation) error {
	if g.Op != "" && g.Op != op {
		return badRequest("getUafRequest.op does not match this endpoint", nil)
	}
	return nil
}

// CreateToken answers the Create Token Service for op: it checks the context (and the
// caller's authorization) as the in-band request endpoint does, then stores a new session
// and the token's hash.
func (s *Service) CreateToken(ctx context.Context, op uaf.Operation, body []byte, caller *callerauth.Caller) (*TokenResponse, error) {
	if !validOp(op) {
		return nil, notFound("unknown operation")
	}
	g, err := decodeGet(body, op)
	if err != nil {
		return nil, err
	}
	user, err := s.uaf.CheckContext(op, g.Context, caller)
	if err != nil {
		return nil, err
	}
	tok, sess, err := s.newSession(ctx, op, g.Context, user, "")
	if err != nil {
		return nil, err
	}
	s.log.Info("audit: oob token created", "op", string(op), "user", user, "session", logID(sess))
	return &TokenResponse{Token: tok, SessionID: sess}, nil
}

// newSession stores a session and a token for op and returns both.
func (s *Service) newSession(ctx context.Context, op uaf.Operation, rawCtx, user, targetExtID string) (string, string, error) {
	tok, err := randomID(tokenBytes)
	if err != nil {
		return "", "", err
	}
	sid, err := randomID(18)
	if err != nil {
		return "", "", err
	}
	handle, err := randomID(18)
	if err != nil {
		return "", "", err
	}
	now := s.o.Now()
	h := sha256.Sum256([]byte(tok))
	sess := record.Session{ID: sid, Handle: handle, Op: string(op), Status: record.StatusTokenCreated, Username: user,
		TargetExtID: targetExtID, TokenExpiresAt: now.Add(s.o.TokenLifetime), CreatedAt: now, UpdatedAt: now,
		ExpiresAt: now.Add(s.o.SessionRetention)}
	t := record.Token{Hash: h[:], Op: string(op), SessionID: sid, Context: rawCtx, ExpiresAt: sess.TokenExpiresAt}
	if err := s.o.Store.CreateOOBSession(ctx, sess, t); err != nil {
		return "", "", err
	}
	return tok, sid, nil
}

// Dispatch answers the Dispatch Token Service for op. A well-formed request is answered
// with a DispatchResponse whatever happens to the dispatch; malformed or unauthorized ones
// are errors (400/401/403) and change nothing.
func (s *Service) Dispatch(ctx context.Context, op uaf.Operation, body []byte, caller *callerauth.Caller) (*DispatchResponse, error) {
	if !validOp(op) {
		return nil, notFound("unknown operation")
	}
	// The embedded GetUAFRequest is decoded by the UAF codec, as at the token services
	// (exact key case, no duplicate keys, schema checked), not by encoding/json.
	var raw struct {
		DispatchRequest
		GetUAFRequest json.RawMessage `json:"getUafRequest"`
	}
	if err := decodeStrict(body, &raw); err != nil {
		return nil, err
	}
	req := raw.DispatchRequest
	if len(raw.GetUAFRequest) == 0 || string(raw.GetUAFRequest) == "null" {
		return nil, badRequest("getUafRequest is required", nil)
	}
	g, err := uaf.DecodeGetUAFRequest(raw.GetUAFRequest)
	if err != nil {
		return nil, badRequest("getUafRequest is not a GetUAFRequest", err)
	}
	req.GetUAFRequest = g
	if err := checkGetOp(req.GetUAFRequest, op); err != nil {
		return nil, err
	}
	if len(req.Dispatcher) > 64 || len(req.DispatchTargetID) > 128 {
		return nil, badRequest("dispatcher or dispatchTargetId too long", nil)
	}
	info, err := ParseDispatchInfo(req.DispatchInformation)
	if err != nil {
		return nil, err
	}
	rawCtx := req.GetUAFRequest.Context
	user, err := s.uaf.CheckContext(op, rawCtx, caller)
	if err != nil {
		return nil, err
	}
	var target *record.Target
	if req.DispatchTargetID != "" {
		// Pushing to a device needs an authenticated caller for the user (a backend may name
		// any user); anonymous callers may only use QR codes and links.
		if caller == nil {
			return nil, unauthorized("caller authentication required to dispatch to a target", nil)
		}
		if user == "" {
			return &DispatchResponse{DispatchResult: ResultUserNotFound}, nil
		}
		if !caller.MayActFor(user) {
			return nil, forbidden("the caller may not act for this user")
		}
		target, err = s.o.Store.OOBTarget(ctx, req.DispatchTargetID)
		if errors.Is(err, store.ErrNotFound) || (err == nil && target.Username != user) {
			return &DispatchResponse{DispatchResult: ResultDispatchTargetNotFound}, nil
		}
		if err != nil {
			return nil, err
		}
	}
	name := req.Dispatcher
	if name == "" && target != nil {
		name = target.Dispatcher
	}
	d, ok := s.dispatchers[name]
	if !ok {
		return &DispatchResponse{DispatchResult: ResultDispatcherNotFound}, nil
	}
	if d.NeedsTarget() && target == nil {
		if op == uaf.OpAuth && user != "" {
			// Push to all the user's targets of this dispatcher (pushall.go).
			return s.dispatchAll(ctx, op, d, rawCtx, user, info, caller)
		}
		return &DispatchResponse{DispatchResult: ResultDispatchTargetNotFound}, nil
	}
	// A target found above belongs to user (it was read with its user): no second read.
	if user != "" && op != uaf.OpReg && target == nil {
		if _, err := s.o.Store.UserByName(ctx, user); errors.Is(err, store.ErrNotFound) {
			return &DispatchResponse{DispatchResult: ResultUserNotFound}, nil
		} else if err != nil {
			return nil, err
		}
	}
	ext := ""
	if target != nil {
		ext = target.ExtID
	}
	tok, sid, err := s.newSession(ctx, op, rawCtx, user, ext)
	if err != nil {
		return nil, err
	}
	resp := &DispatchResponse{Token: tok, SessionID: sid, DispatcherInformation: &DispatcherInformation{Name: name}}
	p, err := s.payload(d, op, tok, info, target)
	if err != nil {
		s.log.Error("oob payload failed", "session", logID(sid), "err", err)
		resp.DispatchResult = ResultInternalError
		return resp, nil
	}
	out, err := d.Dispatch(ctx, &Message{Op: op, SessionID: sid, Payload: p, Target: target, Info: info})
	if err != nil {
		s.log.Warn("oob dispatch failed", "dispatcher", name, "session", logID(sid), "err", err)
		resp.DispatchResult = ResultDispatchError
	} else {
		resp.DispatchResult = ResultDispatched
		resp.DispatcherInformation.Response = out
	}
	// A QR code or link is the payload itself — with a clear token unless it is encrypted to
	// a target — and the store keeps tokens only as hashes: the Status Service then names
	// the dispatcher without its response (the caller got it in this answer).
	stored := resp.DispatcherInformation.Response
	if c, ok := d.(interface{ carriesPayload() bool }); ok && c.carriesPayload() {
		stored = ""
	}
	if err := s.o.Store.SetOOBDispatch(ctx, sid, name, stored, ext); err != nil {
		s.log.Error("recording the dispatch failed", "session", logID(sid), "err", err)
	}
	s.log.Info("audit: oob token dispatched", "op", string(op), "user", user, "session", logID(sid), "dispatcher", name,
		"result", resp.DispatchResult)
	return resp, nil
}

// redeemBody is the body of the Redeem Token Service.
type redeemBody struct {
	Token string `json:"token"`
}

// Redeem answers the Redeem Token Service for op: the token is consumed once and the UAF
// request of its session is built. Unknown, reused, expired tokens and tokens of another
// operation get {"statusCode":1401}; a token of another operation is not consumed.
func (s *Service) Redeem(ctx context.Context, op uaf.Operation, body []byte) (*uaf.ReturnUAFRequest, error) {
	if !validOp(op) {
		return nil, notFound("unknown operation")
	}
	var rb redeemBody
	if err := decodeStrict(body, &rb); err != nil {
		return nil, err
	}
	refused := &uaf.ReturnUAFRequest{StatusCode: uaf.StatusUnauthorized}
	if rb.Token == "" || len(rb.Token) > 128 {
		return refused, nil
	}
	if _, err := base64.RawURLEncoding.DecodeString(rb.Token); err != nil {
		return refused, nil
	}
	h := sha256.Sum256([]byte(rb.Token))
	// A deregistration has no client phase: its session goes from tokenCreated straight to
	// its outcome (deregDone), so a status reader never sees it waiting for a client.
	status := record.StatusClientAuthenticating
	switch op {
	case uaf.OpReg:
		status = record.StatusClientRegistering
	case uaf.OpDereg:
		status = ""
	}
	t, err := s.o.Store.RedeemOOBToken(ctx, h[:], string(op), s.o.Now(), status)
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrReplay), errors.Is(err, record.ErrExpired):
		s.log.Info("oob token refused", "op", string(op), "reason", err.Error())
		return refused, nil
	case err != nil:
		return nil, err
	}
	if op != uaf.OpDereg {
		s.watchers.notify(t.SessionID)
	}
	// The request carries the session's handle, not its id: the device can read serverData,
	// and the id opens the Status Service (with the result token).
	r, err := s.uaf.SessionRequest(ctx, op, t.Context, t.Handle)
	if err != nil {
		// The request could not be built (HSM or store outage): the redemption is undone,
		// so the device can redeem the token again once the server has recovered.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if sid, rerr := s.o.Store.ReleaseOOBToken(rctx, h[:]); rerr != nil {
			s.log.Error("oob token release failed", "session", logID(t.SessionID), "err", rerr)
			s.finish(ctx, t.SessionID, record.SessionUpdate{Status: record.StatusFailed, TokenResult: record.TokenRedeemed,
				UAFStatusCode: int(uaf.StatusInternalServerError)})
		} else if sid != "" {
			s.watchers.notify(sid)
		}
		return nil, err
	}
	switch {
	case r.StatusCode != uaf.StatusOK:
		s.finish(ctx, t.SessionID, record.SessionUpdate{Status: record.StatusFailed, TokenResult: record.TokenRedeemed,
			UAFStatusCode: int(r.StatusCode)})
	case op == uaf.OpDereg:
		// A deregistration is complete once the request is built: the server deleted the
		// keys and the client is only told to delete its own.
		s.deregDone(ctx, t)
	}
	s.log.Info("audit: oob token redeemed", "op", string(op), "session", logID(t.SessionID))
	return r, nil
}

// deregDone marks a deregistration session succeeded with a result token.
func (s *Service) deregDone(ctx context.Context, t *record.Token) {
	sess, err := s.o.Store.OOBSession(ctx, t.SessionID)
	if err != nil {
		s.log.Error("oob session read failed", "session", logID(t.SessionID), "err", err)
		return
	}
	u := record.SessionUpdate{Status: record.StatusSucceeded, TokenResult: record.TokenRedeemed, UAFStatusCode: int(uaf.StatusOK)}
	u.ResultToken, err = s.o.Results.Issue(ctx, resultClaims("Dereg", sess.Username, nil, t.SessionID))
	if err != nil {
		s.log.Error("result token failed", "session", logID(t.SessionID), "err", err)
	}
	s.finish(ctx, t.SessionID, u)
}
