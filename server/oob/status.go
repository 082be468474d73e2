package oob

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/fidoserver/hwfido/server/oob/record"
	"github.com/fidoserver/hwfido/server/resulttoken"
	"github.com/fidoserver/hwfido/server/store"
	"github.com/fidoserver/hwfido/server/uafsvc"
	"github.com/fidoserver/hwfido/uaf"
)

// StatusResponse is nevisFIDO's status object.
type StatusResponse struct {
	Status           string                 `json:"status"`
	Timestamp        string                 `json:"timestamp,omitempty"`
	UserID           string                 `json:"userId,omitempty"`
	UAFStatusCode    int                    `json:"uafStatusCode,omitempty"`
	ASMStatusCode    int                    `json:"asmStatusCode"`
	ClientErrorCode  int                    `json:"clientErrorCode"`
	Authenticators   []record.Authenticator `json:"authenticators,omitempty"`
	TokenInformation *TokenInformation      `json:"tokenInformation,omitempty"`
	// ResultToken is the server-signed result token of a succeeded session.
	ResultToken string `json:"resultToken,omitempty"`
}

// TokenInformation describes the token of a session.
type TokenInformation struct {
	DispatchTargetExtID   string                 `json:"dispatchTargetExtId,omitempty"`
	TokenResult           string                 `json:"tokenResult,omitempty"`
	DispatcherInformation *DispatcherInformation `json:"dispatcherInformation,omitempty"`
}

// statusBody is the body of the Status Service.
type statusBody struct {
	SessionID string `json:"sessionId"`
}

// Final reports whether r is a final status (no further change will be reported).
func (r *StatusResponse) Final() bool {
	return r.Status == record.StatusSucceeded || r.Status == record.StatusFailed || r.Status == record.StatusUnknown
}

// Status answers the Status Service.
func (s *Service) Status(ctx context.Context, body []byte) (*StatusResponse, error) {
	var b statusBody
	if err := decodeStrict(body, &b); err != nil {
		return nil, err
	}
	if b.SessionID == "" || len(b.SessionID) > 128 {
		return nil, badRequest("sessionId is required", nil)
	}
	return s.SessionStatus(ctx, b.SessionID)
}

// SessionStatus reports the session id: unknown when it does not exist or its retention
// ended; failed with tokenTimedOut when its token expired unredeemed.
func (s *Service) SessionStatus(ctx context.Context, id string) (*StatusResponse, error) {
	sess, err := s.o.Store.OOBSession(ctx, id)
	now := s.o.Now()
	if errors.Is(err, store.ErrNotFound) || (err == nil && !now.Before(sess.ExpiresAt)) {
		return &StatusResponse{Status: record.StatusUnknown, Timestamp: stamp(now)}, nil
	}
	if err != nil {
		return nil, err
	}
	r := &StatusResponse{Status: sess.Status, Timestamp: stamp(sess.UpdatedAt), UserID: sess.Username,
		UAFStatusCode: sess.UAFStatusCode, ASMStatusCode: sess.ASMStatusCode, ClientErrorCode: sess.ClientErrorCode,
		Authenticators: sess.Authenticators, ResultToken: sess.ResultToken}
	ti := &TokenInformation{DispatchTargetExtID: sess.TargetExtID, TokenResult: sess.TokenResult}
	if sess.DispatcherName != "" {
		ti.DispatcherInformation = &DispatcherInformation{Name: sess.DispatcherName, Response: sess.DispatcherResp}
	}
	if sess.Status == record.StatusTokenCreated && !now.Before(sess.TokenExpiresAt) {
		r.Status, ti.TokenResult, r.Timestamp = record.StatusFailed, record.TokenTimedOut, stamp(sess.TokenExpiresAt)
	}
	if *ti != (TokenInformation{}) {
		r.TokenInformation = ti
	}
	// Usernameless authentication: the session's user is written only when the operation
	// succeeds (see Outcome), so userId appears only then.
	return r, nil
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// Watch streams the status of session id: the current status first, then one value per
// change, closed after a final status, when ctx ends or after the session's retention.
// Changes made by this process are seen at once, those of other processes within
// Options.PollInterval.
func (s *Service) Watch(ctx context.Context, id string) <-chan *StatusResponse {
	ch := make(chan *StatusResponse, 1)
	wake, cancel := s.watchers.subscribe(id)
	go func() {
		defer close(ch)
		defer cancel()
		deadline := time.NewTimer(s.o.SessionRetention)
		defer deadline.Stop()
		tick := time.NewTicker(s.o.PollInterval)
		defer tick.Stop()
		var last *StatusResponse
		for {
			r, err := s.SessionStatus(ctx, id)
			if err != nil {
				s.log.Warn("status watch read failed", "err", err)
			} else if last == nil || !sameStatus(last, r) {
				select {
				case ch <- r:
				case <-ctx.Done():
					return
				}
				last = r
				if r.Final() {
					return
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-deadline.C:
				return
			case <-wake:
			case <-tick.C:
			}
		}
	}()
	return ch
}

func sameStatus(a, b *StatusResponse) bool {
	return a.Status == b.Status && a.Timestamp == b.Timestamp && a.UAFStatusCode == b.UAFStatusCode
}

// Outcome implements uafsvc.SessionObserver: it moves the session of a processed response
// (out.Session is the session's handle) to succeeded or failed. A succeeded session gets
// its own result token, bound to the session id the relying party knows.
func (s *Service) Outcome(ctx context.Context, op uaf.Operation, out *uafsvc.Outcome) {
	sess, err := s.o.Store.OOBSessionByHandle(ctx, out.Session)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.log.Error("oob session read failed", "err", err)
		}
		return
	}
	u := record.SessionUpdate{Status: record.StatusFailed, ASMStatusCode: out.ASMStatusCode, ClientErrorCode: out.ClientErrorCode}
	if out.Response != nil {
		u.UAFStatusCode = int(out.Response.StatusCode)
	}
	if out.Err == nil && !sess.Final() {
		u.Status, u.Username = record.StatusSucceeded, out.Username
		for _, k := range out.Keys {
			u.Authenticators = append(u.Authenticators, record.Authenticator{AAID: k.AAID, KeyID: k.KeyID})
		}
		c := resultClaims(string(op), out.Username, out.Keys, sess.ID)
		c.TxHash = out.TxHash
		if u.ResultToken, err = s.o.Results.Issue(ctx, c); err != nil {
			s.log.Error("result token failed", "err", err)
		}
	}
	s.finish(ctx, sess.ID, u)
}

func resultClaims(op, user string, keys []store.UAFRegistration, session string) resulttoken.Claims {
	c := resulttoken.Claims{Username: user, Operation: op, SessionID: session}
	if len(keys) > 0 {
		c.AAID, c.KeyID = keys[0].AAID, keys[0].KeyID
	}
	return c
}

// finish applies a final update to the session with that id or handle and wakes its
// watchers.
func (s *Service) finish(ctx context.Context, key string, u record.SessionUpdate) {
	// The update must land even if the request that caused it is cancelled now.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	id, err := s.o.Store.UpdateOOBSession(ctx, key, u)
	if err != nil {
		s.log.Error("oob session update failed", "err", err)
		return
	}
	if id != "" {
		s.watchers.notify(id)
	}
}

// notifier wakes the watchers of a session in this process.
type notifier struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
}

func newNotifier() *notifier { return &notifier{subs: map[string]map[chan struct{}]struct{}{}} }

func (n *notifier) subscribe(id string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	n.mu.Lock()
	if n.subs[id] == nil {
		n.subs[id] = map[chan struct{}]struct{}{}
	}
	n.subs[id][ch] = struct{}{}
	n.mu.Unlock()
	return ch, func() {
		n.mu.Lock()
		delete(n.subs[id], ch)
		if len(n.subs[id]) == 0 {
			delete(n.subs, id)
		}
		n.mu.Unlock()
	}
}

func (n *notifier) notify(id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for ch := range n.subs[id] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
