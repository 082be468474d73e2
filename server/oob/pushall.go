package oob

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/fidoserver/hwfido/server/callerauth"
	"github.com/fidoserver/hwfido/server/oob/record"
	"github.com/fidoserver/hwfido/server/store"
	"github.com/fidoserver/hwfido/uaf"
)

// maxPushParallel bounds the deliveries of one push-to-all dispatch that run at once.
const maxPushParallel = 8

// pushAllTargets returns the targets of user that push dispatcher d can reach: those whose
// default dispatcher is d and that d reaches (targetFilter: FCM needs a push token).
func pushAllTargets(all []record.Target, d Dispatcher) []record.Target {
	var out []record.Target
	for _, t := range all {
		if t.Dispatcher != d.Name() {
			continue
		}
		if f, ok := d.(targetFilter); ok && !f.reaches(t) {
			continue
		}
		out = append(out, t)
	}
	return out
}

// dispatchAll pushes one authentication token to every dispatch target of user that uses
// the push dispatcher d (a dispatch naming a push dispatcher but no dispatchTargetId). The
// caller must act for user, as for a push to one target. The result is dispatched when at
// least one delivery succeeded; the first device that redeems the token wins (a token is
// single use). The session records no dispatch target.
func (s *Service) dispatchAll(ctx context.Context, op uaf.Operation, d Dispatcher, rawCtx, user string,
	info *DispatchInfo, caller *callerauth.Caller) (*DispatchResponse, error) {
	if caller == nil {
		return nil, unauthorized("caller authentication required to push to the user's dispatch targets", nil)
	}
	if !caller.MayActFor(user) {
		return nil, forbidden("the caller may not act for this user")
	}
	if _, err := s.o.Store.UserByName(ctx, user); errors.Is(err, store.ErrNotFound) {
		return &DispatchResponse{DispatchResult: ResultUserNotFound}, nil
	} else if err != nil {
		return nil, err
	}
	all, err := s.o.Store.OOBTargets(ctx, user)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	targets := pushAllTargets(all, d)
	if len(targets) == 0 {
		return &DispatchResponse{DispatchResult: ResultDispatchTargetNotFound}, nil
	}
	tok, sid, err := s.newSession(ctx, op, rawCtx, user, "")
	if err != nil {
		return nil, err
	}
	name := d.Name()
	resp := &DispatchResponse{Token: tok, SessionID: sid, DispatcherInformation: &DispatcherInformation{Name: name}}

	type result struct {
		out      string
		err      error
		internal bool // the payload could not be built
	}
	results := make([]result, len(targets))
	sem := make(chan struct{}, maxPushParallel)
	var wg sync.WaitGroup
	for i := range targets {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			t := &targets[i]
			p, err := s.payload(d, op, tok, info, t)
			if err != nil {
				results[i] = result{err: err, internal: true}
				return
			}
			out, err := d.Dispatch(ctx, &Message{Op: op, SessionID: sid, Payload: p, Target: t, Info: info})
			results[i] = result{out: out, err: err}
		}(i)
	}
	wg.Wait()

	var outs []string
	delivered, internal := 0, 0
	for i, r := range results {
		switch {
		case r.err == nil:
			delivered++
			if r.out != "" {
				outs = append(outs, r.out)
			}
		case r.internal:
			internal++
			s.log.Error("oob payload failed", "session", logID(sid), "target", targets[i].ExtID, "err", r.err)
		default:
			s.log.Warn("oob dispatch failed", "dispatcher", name, "session", logID(sid), "target", targets[i].ExtID, "err", r.err)
		}
	}
	switch {
	case delivered > 0:
		resp.DispatchResult = ResultDispatched
		resp.DispatcherInformation.Response = strings.Join(outs, ",")
	case internal == len(targets):
		resp.DispatchResult = ResultInternalError
	default:
		resp.DispatchResult = ResultDispatchError
	}
	if err := s.o.Store.SetOOBDispatch(ctx, sid, name, resp.DispatcherInformation.Response, ""); err != nil {
		s.log.Error("recording the dispatch failed", "session", logID(sid), "err", err)
	}
	s.log.Info("audit: oob token dispatched to all targets", "op", string(op), "user", user, "session", logID(sid),
		"dispatcher", name, "targets", len(targets), "delivered", delivered, "result", resp.DispatchResult)
	return resp, nil
}
