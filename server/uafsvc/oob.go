package uafsvc

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/fidoserver/hwfido/server/callerauth"
	"github.com/fidoserver/hwfido/server/store"
	"github.com/fidoserver/hwfido/uaf"
)

// Hooks for the out-of-band services (server/oob). They are optional: a Service without them
// serves in-band UAF only.

// SessionObserver follows out-of-band sessions.
type SessionObserver interface {
	// Outcome is called with every processed response whose request carried a session id
	// (out.Session != ""), successful or refused.
	Outcome(ctx context.Context, op uaf.Operation, out *Outcome)
}

// TargetRegistrar stores the dispatch target a device names in the context of its
// RegistrationResponse ("dispatchTarget", docs/oob.md).
type TargetRegistrar interface {
	// RegisterUAFWithTarget checks the target raw (JSON) and does what Store.RegisterUAF does,
	// storing the target for username in the same transaction; it returns the target id.
	// A bad target is an error wrapping [ErrBadTarget]; store errors are those of
	// Store.RegisterUAF.
	RegisterUAFWithTarget(ctx context.Context, c store.Consumption, username string, regs []store.UAFRegistration, raw json.RawMessage) (string, error)
}

// ErrBadTarget reports a dispatch target in a RegistrationResponse context that cannot be
// stored; the registration is refused with 1498 and nothing is stored.
var ErrBadTarget = errors.New("uafsvc: bad dispatch target")

// oobCaller stands for the caller that was authorized when an out-of-band token was
// created (see [Service.CheckContext]); the request is built when the token is redeemed.
var oobCaller = &callerauth.Caller{Trusted: true, Subject: "out-of-band token"}

// CheckContext checks a GetUAFRequest context for op as [Service.Request] would, including
// the caller's authorization, without creating anything. It returns the username the context
// names ("" for usernameless authentication). Errors are those of Request.
func (s *Service) CheckContext(op uaf.Operation, rawCtx string, caller *callerauth.Caller) (string, error) {
	switch op {
	case uaf.OpReg:
		var c regContext
		if err := decodeContext(rawCtx, &c); err != nil {
			return "", err
		}
		if err := authorize(caller, c.Username); err != nil {
			return "", err
		}
		if err := checkUsername(c.Username); err != nil {
			return "", err
		}
		_, _, err := s.policy(c.Policy)
		return c.Username, err
	case uaf.OpAuth:
		var c authContext
		if err := decodeContext(rawCtx, &c); err != nil {
			return "", err
		}
		if _, err := c.transaction(); err != nil {
			return "", err
		}
		if _, _, err := s.policy(c.Policy); err != nil {
			return "", err
		}
		if c.Username != "" {
			if err := checkUsername(c.Username); err != nil {
				return "", err
			}
			if caller != nil && !caller.MayActFor(c.Username) {
				return "", forbidden("the caller may not act for this user")
			}
		}
		return c.Username, nil
	case uaf.OpDereg:
		var c deregContext
		if err := decodeContext(rawCtx, &c); err != nil {
			return "", err
		}
		if err := authorize(caller, c.Username); err != nil {
			return "", err
		}
		return c.Username, checkUsername(c.Username)
	}
	return "", badRequest("unknown operation")
}

// SessionRequest builds the request of op for the out-of-band session from the context
// captured (and authorized by [Service.CheckContext]) when its token was created. The
// session id goes into the serverData, so the response updates the session.
func (s *Service) SessionRequest(ctx context.Context, op uaf.Operation, rawCtx, session string) (*uaf.ReturnUAFRequest, error) {
	return s.request(ctx, op, rawCtx, oobCaller, session)
}

// observe reports an outcome of an out-of-band session.
func (s *Service) observe(ctx context.Context, op uaf.Operation, out *Outcome) {
	if s.o.Sessions != nil && out != nil && out.Session != "" {
		s.o.Sessions.Outcome(ctx, op, out)
	}
}

// registerWithTarget stores regs and the dispatch target named in the response context.
func (s *Service) registerWithTarget(ctx context.Context, c store.Consumption, user string, regs []store.UAFRegistration, raw json.RawMessage) (string, error) {
	if s.o.Targets == nil {
		return "", fail(uaf.StatusUnacceptableContent, "dispatch targets are not enabled on this server", nil)
	}
	id, err := s.o.Targets.RegisterUAFWithTarget(ctx, c, user, regs, raw)
	if errors.Is(err, ErrBadTarget) {
		return "", fail(uaf.StatusUnacceptableContent, "bad dispatchTarget in the response context", err)
	}
	return id, err
}
