package fido2

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/fidoserver/hwfido/attestation"
	"github.com/fidoserver/hwfido/metadata"
	"github.com/fidoserver/hwfido/server/fido2/record"
	"github.com/fidoserver/hwfido/server/store"
)

func (s *Service) assertionOptions(_ http.ResponseWriter, r *http.Request) (any, error) {
	var req struct {
		Username         string                   `json:"username"`
		UserVerification string                   `json:"userVerification"`
		Extensions       optionsRequestExtensions `json:"extensions"`
	}
	if err := decodeStrict(r, &req); err != nil {
		return nil, err
	}
	return s.beginAuthentication(r.Context(), optionsRequest{
		Username: req.Username, UserVerification: req.UserVerification, Extensions: req.Extensions.raw,
	})
}

// optionsRequestExtensions keeps the raw extensions object.
type optionsRequestExtensions struct{ raw []byte }

// UnmarshalJSON implements json.Unmarshaler.
func (e *optionsRequestExtensions) UnmarshalJSON(b []byte) error {
	e.raw = append([]byte(nil), b...)
	return nil
}

// beginAuthentication builds request options for req.Username, or for a discoverable
// (username-less) login when it is empty.
func (s *Service) beginAuthentication(ctx context.Context, req optionsRequest) (any, error) {
	uv := protocol.UserVerificationRequirement(req.UserVerification)
	switch uv {
	case "":
		uv = protocol.VerificationPreferred
	case protocol.VerificationRequired, protocol.VerificationPreferred, protocol.VerificationDiscouraged:
	default:
		return nil, badRequest("userVerification must be required, preferred or discouraged", nil)
	}
	if s.cfg.UserVerification == "required" {
		uv = protocol.VerificationRequired
	}
	opts := []webauthn.LoginOption{webauthn.WithUserVerification(uv)}
	ext, err := extensionOptions(req.Extensions, protocol.AssertCeremony)
	if err != nil {
		return nil, err
	}
	if len(ext) > 0 {
		opts = append(opts, webauthn.WithAssertionExtensions(ext...))
	}
	var (
		assertion *protocol.CredentialAssertion
		sd        *webauthn.SessionData
		user      *store.User
		rows      []record.Credential
	)
	if req.Username == "" {
		assertion, sd, err = s.wa.BeginDiscoverableLogin(opts...)
	} else {
		if err := validUsername(req.Username); err != nil {
			return nil, err
		}
		u, rs, uerr := s.deps.Store.FIDO2UserCredentialsByName(ctx, req.Username, s.cfg.RPID)
		if errors.Is(uerr, store.ErrNotFound) || (uerr == nil && len(rs) == 0) {
			return nil, badRequest("user has no registered credentials", uerr)
		}
		if uerr != nil {
			return nil, uerr
		}
		user, rows = u, rs
		assertion, sd, err = s.wa.BeginLogin(newWAUser(u, "", rows), opts...)
	}
	if err != nil {
		return nil, verifyError("cannot build request options", err)
	}
	var userID int64
	var username string
	if user != nil {
		userID, username = user.ID, user.Username
	}
	id, ch, err := s.startSession(ctx, record.CeremonyAuthentication, userID, username, sd, assertion.Response.Extensions, 0)
	if err != nil {
		return nil, err
	}
	if ch != nil {
		assertion.Response.Challenge = ch
	}
	if user != nil {
		now := s.now()
		s.creds.update(id, now.Add(s.cfg.AuthenticationTimeout), now, func(e *cachedCreds) { e.user, e.rows = user, rows })
	}
	return optionsResponse(assertion.Response, id)
}

// authenticationResult is the body of a successful assertion result. Token is the
// server-signed result (JWT) for the caller's backend.
type authenticationResult struct {
	serverResponse
	Fido2SessionID string `json:"fido2SessionId"`
	Username       string `json:"username"`
	CredentialID   string `json:"credentialId"`
	UserVerified   bool   `json:"userVerified"`
	Token          string `json:"token"`
}

func (s *Service) assertionResult(_ http.ResponseWriter, r *http.Request) (any, error) {
	ctx := r.Context()
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	pc, err := parseCredential(body, "webauthn.get")
	if err != nil {
		return nil, err
	}
	p, err := s.openSession(ctx, record.CeremonyAuthentication, pc.challenge)
	if err != nil {
		return nil, err
	}
	out, err := s.finishAuthentication(ctx, p, pc)
	if err != nil {
		return nil, s.fail(ctx, p, err)
	}
	return out, nil
}

func (s *Service) finishAuthentication(ctx context.Context, p *pending, pc *parsedCredential) (any, error) {
	if err := s.checkOrigin(pc); err != nil {
		return nil, err
	}
	parsed, err := pc.assertion()
	if err != nil {
		return nil, verifyError("invalid assertion response", err)
	}
	var (
		wu   *waUser
		cred *webauthn.Credential
	)
	if p.sess.UserID != 0 {
		var c cachedCreds
		ok := false
		if p.local != nil {
			c, ok = *p.local, true
		} else {
			c, ok = s.creds.take(p.sess.ID, s.now())
		}
		if !ok || c.user == nil || c.user.ID != p.sess.UserID {
			user, rows, uerr := s.deps.Store.FIDO2UserCredentials(ctx, p.sess.UserID, s.cfg.RPID)
			if errors.Is(uerr, store.ErrNotFound) {
				return nil, badRequest("session user no longer exists", uerr)
			}
			if uerr != nil {
				return nil, uerr
			}
			c = cachedCreds{user: user, rows: rows}
		}
		wu = newWAUser(c.user, "", c.rows)
		p.bindUser(wu)
		cred, err = s.wa.ValidateLogin(wu, p.sd, parsed)
	} else {
		var lookupErr error
		handler := func(rawID, userHandle []byte) (webauthn.User, error) {
			user, rows, herr := s.deps.Store.FIDO2CredentialsByHandle(ctx, userHandle, s.cfg.RPID)
			if herr != nil {
				lookupErr = herr
				return nil, fmt.Errorf("fido2: user handle: %w", herr)
			}
			wu = newWAUser(user, "", rows)
			return wu, nil
		}
		_, cred, err = s.wa.ValidatePasskeyLogin(handler, p.sd, parsed)
		if lookupErr != nil && !errors.Is(lookupErr, store.ErrNotFound) {
			return nil, lookupErr
		}
		if wu != nil {
			p.bindUser(wu)
		}
	}
	if err != nil {
		return nil, verifyError("assertion verification failed", err)
	}
	row, ok := wu.row(cred.ID)
	if !ok || !bytes.Equal(row.CredentialID, parsed.RawID) {
		return nil, badRequest("credential is not registered for the user", nil)
	}
	uvBypassed, err := s.authenticatorStatus(ctx, wu, row, p.sd.UserVerification == protocol.VerificationRequired)
	if err != nil {
		return nil, err
	}
	// go-webauthn only flags a counter that did not increase (cred.Authenticator.CloneWarning);
	// the store refuses it atomically with recording the session (store.ErrCounter), after
	// a replay of the session has been told apart.
	// The result token is signed first: an HSM outage then leaves the ceremony open (the
	// client may retry) instead of recorded as succeeded without a token. A token whose
	// commit fails below is discarded.
	now := s.now().UTC()
	credID := b64(cred.ID)
	// Whether this assertion verified the user: its authenticator data's UV bit.
	// cred.Flags.UserVerified is the stored credential's flag (WebAuthn L3 uvInitialized),
	// which go-webauthn carries over, not what this ceremony showed.
	// An authenticator model whose user verification can be bypassed (metadata) does not
	// vouch for it.
	uv := parsed.Response.AuthenticatorData.Flags.HasUserVerified() && !uvBypassed
	claims := map[string]any{
		"iss":            s.cfg.TokenIssuer,
		"sub":            wu.user.Username,
		"iat":            now.Unix(),
		"exp":            now.Add(s.cfg.TokenTTL).Unix(),
		"jti":            p.sess.ID,
		"amr":            []string{"fido2"},
		"fido2SessionId": p.sess.ID,
		"credentialId":   credID,
		"aaguid":         formatAAGUID(row.AAGUID),
		"rpId":           s.cfg.RPID,
		"uv":             uv,
	}
	if s.cfg.TokenAudience != "" {
		claims["aud"] = s.cfg.TokenAudience
	}
	token, err := s.deps.Signer.SignResult(ctx, claims)
	if err != nil {
		return nil, fmt.Errorf("fido2: sign result: %w", err)
	}
	err = s.deps.Store.FinishFIDO2Authentication(ctx, p.sess, row.CredentialID, record.CounterUpdate{
		CredentialRowID: row.ID, SignCount: parsed.Response.AuthenticatorData.Counter, Flags: flagsOf(cred.Flags),
		UsedAt: now,
	})
	switch {
	case errors.Is(err, store.ErrReplay):
		return nil, replayed(err)
	case errors.Is(err, store.ErrCounter):
		return nil, s.counterRefused(ctx, wu, row, parsed.Response.AuthenticatorData.Counter)
	case errors.Is(err, store.ErrNotFound):
		return nil, badRequest("credential was deleted", err)
	case err != nil:
		return nil, err
	}
	s.log.Info("fido2 audit: authenticated", "user", wu.user.Username, "session", p.sess.ID, "uv", uv)
	return authenticationResult{
		serverResponse: serverResponse{Status: "ok"}, Fido2SessionID: p.sess.ID, Username: wu.user.Username,
		CredentialID: credID, UserVerified: uv, Token: token,
	}, nil
}

// counterRefused records a possible clone and returns the refusal (WebAuthn L3 §7.2
// step 22: the RP decides; we refuse like the FIDO conformance tool expects).
func (s *Service) counterRefused(ctx context.Context, wu *waUser, row *record.Credential, got uint32) error {
	detail := fmt.Sprintf("fido2 credential %s: sign count %d after %d",
		base64.RawURLEncoding.EncodeToString(row.CredentialID), got, row.SignCount)
	if err := s.deps.Store.RecordSecurityEvent(context.WithoutCancel(ctx), store.SecurityEvent{
		Kind: store.EventPossibleClone, Username: wu.user.Username, KeyID: base64.RawURLEncoding.EncodeToString(row.CredentialID),
		Detail: detail, At: s.now().UTC(),
	}); err != nil {
		s.log.Error("fido2: record security event", "err", err)
	}
	s.log.Warn("fido2 audit: signature counter did not increase", "user", wu.user.Username, "detail", detail)
	return badRequest("signature counter did not increase (possible cloned authenticator)", store.ErrCounter)
}

// authenticationStatus is implemented by a [TrustSource] that can tell an authenticator
// model's current metadata status (*attestation.MetadataAnchors).
type authenticationStatus interface {
	FIDO2AuthenticationStatus(ctx context.Context, aaguid [16]byte, now time.Time,
		chain func(context.Context) ([][]byte, error)) error
}

// authenticatorStatus refuses a login with a credential whose authenticator model the
// metadata now reports as revoked or compromised, or whose attestation chain belongs to a
// batch reported compromised (the status policy and status mode of the metadata decide).
// A model reported with USER_VERIFICATION_BYPASS still logs in when the ceremony does not
// require user verification, but its UV bit is not believed (uvBypassed); when the
// ceremony requires it, the login is refused. Without an attestation policy the metadata
// is not consulted.
func (s *Service) authenticatorStatus(ctx context.Context, wu *waUser, row *record.Credential, uvRequired bool) (uvBypassed bool, err error) {
	sc, ok := s.deps.Trust.(authenticationStatus)
	if !ok || s.cfg.AttestationPolicy == AttestationNone {
		return false, nil
	}
	var aaguid [16]byte
	copy(aaguid[:], row.AAGUID)
	// The attestation chain is read (with the credential's record) only when the metadata
	// names a batch in a report in effect, which is rare.
	chain := func(ctx context.Context) ([][]byte, error) {
		creds, err := s.deps.Store.FIDO2Credentials(ctx, wu.user.Username, s.cfg.RPID)
		if err != nil {
			return nil, err
		}
		for _, c := range creds {
			if c.ID == row.ID {
				return recordChain(c.Record)
			}
		}
		return nil, store.ErrNotFound
	}
	err = sc.FIDO2AuthenticationStatus(ctx, aaguid, s.now(), chain)
	var se *metadata.StatusError
	if errors.As(err, &se) && se.Status == metadata.StatusUserVerificationBypass && !uvRequired {
		s.log.Warn("fido2 audit: user verification of this authenticator model can be bypassed; the login's uv is false",
			"user", wu.user.Username, "aaguid", formatAAGUID(row.AAGUID))
		return true, nil
	}
	if errors.Is(err, metadata.ErrUnacceptableStatus) {
		s.log.Warn("fido2 audit: login refused by authenticator status", "user", wu.user.Username,
			"aaguid", formatAAGUID(row.AAGUID), "err", err)
		return false, badRequest("authenticator status refused: "+err.Error(), err)
	}
	if err != nil {
		return false, fmt.Errorf("fido2: authenticator status: %w", err)
	}
	return false, nil
}

// recordChain returns the attestation chain (leaf first, DER) kept in a credential's
// record: the raw attestation object go-webauthn stored at registration; a format without
// a chain gives none. A record that holds no readable attestation object gives
// attestation.ErrChainUnknown (reports naming a batch then apply).
func recordChain(rec []byte) ([][]byte, error) {
	var c webauthn.Credential
	if err := json.Unmarshal(rec, &c); err != nil {
		return nil, fmt.Errorf("%w: credential record: %v", attestation.ErrChainUnknown, err)
	}
	var obj struct {
		Format  string         `cbor:"fmt"`
		AttStmt map[string]any `cbor:"attStmt"`
	}
	if len(c.Attestation.Object) == 0 {
		return nil, fmt.Errorf("%w: the credential record holds no attestation object", attestation.ErrChainUnknown)
	}
	if err := webauthncbor.Unmarshal(c.Attestation.Object, &obj); err != nil {
		return nil, fmt.Errorf("%w: credential record attestation object: %v", attestation.ErrChainUnknown, err)
	}
	ev, err := attestationChain(obj.Format, obj.AttStmt)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", attestation.ErrChainUnknown, err)
	}
	return ev.x5c, nil
}
