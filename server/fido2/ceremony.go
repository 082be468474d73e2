package fido2

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/fidoserver/hwfido/server/fido2/record"
	"github.com/fidoserver/hwfido/server/store"
)

// pending is a ceremony between its options and its result call.
type pending struct {
	sess record.Session
	// sd is the verifier state; for a sealed session it is completed by complete once the
	// user is known.
	sd     webauthn.SessionData
	sealed bool
	ext    uint8
	// keyVersion is the MAC key version of a sealed session.
	keyVersion uint32
	// local is what this process's options call remembered (credCache), or nil.
	local *cachedCreds
}

// startSession makes the session of new options: sealed into a fresh challenge when the
// extension inputs allow it (the returned challenge then replaces go-webauthn's), else a
// stored session keyed by go-webauthn's challenge (challenge nil). userID is 0 for a
// discoverable authentication.
//
// keyVersion is the MAC key version a new user's handle was derived with (0 otherwise):
// the sealed session is authenticated with the same version, so the result derives the
// same handle.
func (s *Service) startSession(ctx context.Context, c record.Ceremony, userID int64, username string,
	sd *webauthn.SessionData, ext protocol.AuthenticationExtensions, keyVersion uint32) (id string, challenge []byte, err error) {
	now := s.now().UTC()
	if bits, ok := sealableExtensions(ext); ok {
		st := sealedState{ceremony: c, uv: sd.UserVerification, ext: bits, userID: userID,
			expires: now.Add(s.cfg.timeout(c)), keyVersion: keyVersion}
		if userID == 0 && c == record.CeremonyRegistration {
			st.username = username
		}
		ch, err := s.sealer.seal(ctx, st)
		if err != nil {
			return "", nil, err
		}
		id := b64(ch)
		// The state as the challenge carries it (open's view): key version, and the
		// expiry in whole milliseconds.
		st.keyVersion = uint32(binary.BigEndian.Uint16(ch[1:3]))
		st.expires = time.UnixMilli(st.expires.UnixMilli()).UTC()
		s.creds.update(id, st.expires, now, func(e *cachedCreds) { e.state = &st })
		return id, ch, nil
	}
	ch, err := decodeB64URL(sd.Challenge)
	if err != nil {
		return "", nil, fmt.Errorf("fido2: session challenge: %w", err)
	}
	data, err := json.Marshal(sd)
	if err != nil {
		return "", nil, fmt.Errorf("fido2: session: %w", err)
	}
	id, err = newSessionID()
	if err != nil {
		return "", nil, err
	}
	if err := s.deps.Store.CreateFIDO2Session(ctx, record.Session{
		ID: id, Ceremony: c, Challenge: ch, UserID: userID, Username: username, Data: data,
		Status: record.StatusInitialized, CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(s.cfg.timeout(c)),
	}); err != nil {
		return "", nil, err
	}
	return id, nil, nil
}

func unknownSession(c record.Ceremony, err error) error {
	return badRequest("challenge does not match a pending "+string(c)+" (unknown or expired)", err)
}

func replayed(err error) error { return badRequest("challenge was already used", err) }

// openSession finds the pending ceremony of a result by the challenge echoed in
// clientDataJSON. A sealed session costs no I/O; a stored one one read. Single use is
// enforced when the outcome is recorded (a replay fails there with store.ErrReplay).
func (s *Service) openSession(ctx context.Context, c record.Ceremony, challenge []byte) (*pending, error) {
	now := s.now()
	var (
		st    sealedState
		local *cachedCreds
		err   error
	)
	// A challenge this process sealed is taken as issued (no HSM call); any other one
	// must carry a valid tag.
	if e, ok := s.creds.take(b64(challenge), now); ok && e.state != nil {
		st, local = *e.state, &e
	} else {
		st, err = s.sealer.open(ctx, challenge)
	}
	if err != nil && !errors.Is(err, errNotSealed) {
		return nil, err // the HSM could not be asked: 503, nothing consumed
	}
	if err == nil {
		if st.ceremony != c || !now.Before(st.expires) {
			return nil, unknownSession(c, nil)
		}
		p := &pending{sealed: true, ext: st.ext, keyVersion: st.keyVersion, local: local, sess: record.Session{
			ID: b64(challenge), Ceremony: c, Challenge: challenge, UserID: st.userID, Username: st.username,
			Status: record.StatusInitialized, ExpiresAt: st.expires,
		}}
		p.sd = webauthn.SessionData{
			Challenge: p.sess.ID, RelyingPartyID: s.cfg.RPID, Expires: st.expires, UserVerification: st.uv,
			Extensions: extensionsOf(st.ext).Session(),
		}
		if c == record.CeremonyRegistration {
			p.sd.CredParams = s.params
		}
		return p, nil
	}
	sess, err := s.deps.Store.FIDO2SessionByChallenge(ctx, challenge)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, unknownSession(c, err)
	case err != nil:
		return nil, err
	case sess.Ceremony != c:
		return nil, unknownSession(c, nil)
	case sess.Status != record.StatusInitialized:
		return nil, replayed(store.ErrReplay)
	case !now.Before(sess.ExpiresAt):
		return nil, unknownSession(c, nil)
	}
	p := &pending{sess: *sess}
	if err := json.Unmarshal(sess.Data, &p.sd); err != nil {
		return nil, fmt.Errorf("fido2: session data: %w", err)
	}
	return p, nil
}

// bindUser completes a sealed session's verifier state with the user known from the
// store: the user handle and, for an authentication, the allowed credentials (the user's
// credentials, as the options listed them).
func (p *pending) bindUser(wu *waUser) {
	p.sess.UserID, p.sess.Username = wu.user.ID, wu.user.Username
	if !p.sealed {
		return
	}
	p.sd.UserID = wu.user.Handle
	if p.sess.Ceremony == record.CeremonyAuthentication {
		for _, c := range wu.creds {
			p.sd.AllowedCredentialIDs = append(p.sd.AllowedCredentialIDs, c.ID)
		}
	}
}

// fail records that the ceremony failed and returns err. A session that was already
// finished (a lost replay race) keeps its outcome. Only a refusal of the client's result
// (a 4xx) ends the ceremony: an error of the server or a dependency (HSM, store) leaves the
// session open, so the client may send its result again once the outage is over.
func (s *Service) fail(ctx context.Context, p *pending, err error) error {
	var fe *Error
	if !errors.As(err, &fe) || fe.Code >= http.StatusInternalServerError || errors.Is(err, store.ErrReplay) {
		return err
	}
	msg := fe.Msg
	ferr := s.deps.Store.FailFIDO2Session(context.WithoutCancel(ctx), p.sess, msg, s.now())
	if ferr != nil && !errors.Is(ferr, store.ErrReplay) {
		s.log.Error("fido2: mark session failed", "session", p.sess.ID, "err", ferr)
	}
	return err
}

// checkOrigin refuses a result whose clientDataJSON.origin is not exactly one of the
// configured origins (WebAuthn L3 §7.1 step 9, §7.2 step 13). go-webauthn compares the
// parsed scheme and host[:port] only, so a path, a query or user information would pass it.
func (s *Service) checkOrigin(pc *parsedCredential) error {
	if !s.origins[pc.origin] {
		o := pc.origin
		if len(o) > 100 {
			o = o[:100] + "…"
		}
		return badRequest(fmt.Sprintf("clientDataJSON.origin %q is not an accepted origin", o), nil)
	}
	return nil
}
