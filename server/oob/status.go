package oob

import (
	"context"
	"errors"
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

	// op is the session's operation (not part of the answer), for Watch.
	op string
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
	r, _, err := s.sessionStatus(ctx, id)
	return r, err
}

// sessionStatus is SessionStatus that also returns when the status will change by the
// passing of time alone (the token's expiry or the end of the session's retention); zero
// for a final status.
func (s *Service) sessionStatus(ctx context.Context, id string) (*StatusResponse, time.Time, error) {
	sess, err := s.o.Store.OOBSession(ctx, id)
	now := s.o.Now()
	if errors.Is(err, store.ErrNotFound) || (err == nil && !now.Before(sess.ExpiresAt)) {
		return &StatusResponse{Status: record.StatusUnknown, Timestamp: stamp(now)}, time.Time{}, nil
	}
	if err != nil {
		return nil, time.Time{}, err
	}
	r := &StatusResponse{op: sess.Op, Status: sess.Status, Timestamp: stamp(sess.UpdatedAt), UserID: sess.Username,
		UAFStatusCode: sess.UAFStatusCode, ASMStatusCode: sess.ASMStatusCode, ClientErrorCode: sess.ClientErrorCode,
		Authenticators: sess.Authenticators, ResultToken: sess.ResultToken}
	ti := &TokenInformation{DispatchTargetExtID: sess.TargetExtID, TokenResult: sess.TokenResult}
	if sess.DispatcherName != "" {
		ti.DispatcherInformation = &DispatcherInformation{Name: sess.DispatcherName, Response: sess.DispatcherResp}
	}
	next := sess.ExpiresAt
	if sess.Status == record.StatusTokenCreated {
		if !now.Before(sess.TokenExpiresAt) {
			r.Status, ti.TokenResult, r.Timestamp = record.StatusFailed, record.TokenTimedOut, stamp(sess.TokenExpiresAt)
		} else {
			next = sess.TokenExpiresAt
		}
	}
	if *ti != (TokenInformation{}) {
		r.TokenInformation = ti
	}
	if r.Final() {
		next = time.Time{}
	}
	// Usernameless authentication: the session's user is written only when the operation
	// succeeds (see Outcome), so userId appears only then.
	return r, next, nil
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// Watch streams the status of session id: the current status first, then one value per
// change, closed after a final status, when ctx ends or after the session's retention.
// Changes made by this process are seen at once, those of other processes within
// Options.PollInterval (through the process's one change poller, see watch.go), the expiry
// of the token when it happens. A watcher reads the store only when woken.
func (s *Service) Watch(ctx context.Context, id string) <-chan *StatusResponse {
	ch := make(chan *StatusResponse, 1)
	wake, cancel, poll := s.watchers.subscribe(id)
	if poll {
		go s.pollChanges()
	}
	go func() {
		defer close(ch)
		defer cancel()
		deadline := time.NewTimer(s.o.SessionRetention)
		defer deadline.Stop()
		// expiry fires when the status changes by time alone, or to retry a failed read.
		expiry := time.NewTimer(s.o.PollInterval)
		defer expiry.Stop()
		var last *StatusResponse
		for {
			r, next, err := s.sessionStatus(ctx, id)
			switch {
			case err != nil:
				s.log.Warn("status watch read failed", "err", err)
				expiry.Reset(s.o.PollInterval)
			case last == nil || !sameStatus(last, r):
				if mid := skippedClientPhase(last, r); mid != nil {
					select {
					case ch <- mid:
					case <-ctx.Done():
						return
					}
				}
				select {
				case ch <- r:
				case <-ctx.Done():
					return
				}
				last = r
				if r.Final() {
					return
				}
				fallthrough
			default:
				if !next.IsZero() {
					// The token's expiry is compared with !now.Before(expiry): wake at it,
					// not before (a timer never fires early).
					expiry.Reset(max(next.Sub(s.o.Now()), time.Millisecond))
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-deadline.C:
				return
			case <-wake:
			case <-expiry.C:
			}
		}
	}()
	return ch
}

// skippedClientPhase returns the client phase (clientRegistering / clientAuthenticating)
// a watcher that last saw tokenCreated missed because the session moved on before the
// watcher read it again (a fast device, or another process's changes seen one poll later):
// a registration or authentication whose token was redeemed went through it. Each watcher
// thus sees every state of the linear status sequence. It returns nil when nothing was
// skipped. The phase carries what was known then: the user, the token information, the
// timestamp of the state that followed it.
func skippedClientPhase(last, r *StatusResponse) *StatusResponse {
	if last == nil || last.Status != record.StatusTokenCreated || !r.Final() || r.Status == record.StatusUnknown ||
		r.TokenInformation == nil || r.TokenInformation.TokenResult != record.TokenRedeemed {
		return nil
	}
	mid := &StatusResponse{op: r.op, Timestamp: r.Timestamp, UserID: last.UserID}
	switch uaf.Operation(r.op) {
	case uaf.OpReg:
		mid.Status = record.StatusClientRegistering
	case uaf.OpAuth:
		mid.Status = record.StatusClientAuthenticating
	default:
		return nil // a deregistration has no client phase
	}
	ti := *r.TokenInformation
	mid.TokenInformation = &ti
	return mid
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
