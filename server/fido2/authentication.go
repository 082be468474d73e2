package fido2

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

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
		userID    int64
	)
	if req.Username == "" {
		assertion, sd, err = s.wa.BeginDiscoverableLogin(opts...)
	} else {
		if err := validUsername(req.Username); err != nil {
			return nil, err
		}
		user, uerr := s.deps.Store.UserByName(ctx, req.Username)
		if errors.Is(uerr, store.ErrNotFound) {
			return nil, badRequest("user has no registered credentials", uerr)
		}
		if uerr != nil {
			return nil, uerr
		}
		rows, cerr := s.deps.Store.FIDO2Credentials(ctx, req.Username, s.cfg.RPID)
		if cerr != nil {
			return nil, cerr
		}
		if len(rows) == 0 {
			return nil, badRequest("user has no registered credentials", nil)
		}
		wu, werr := newWAUser(user, "", rows)
		if werr != nil {
			return nil, werr
		}
		userID = user.ID
		assertion, sd, err = s.wa.BeginLogin(wu, opts...)
	}
	if err != nil {
		return nil, verifyError("cannot build request options", err)
	}
	id, err := s.saveSession(ctx, record.CeremonyAuthentication, userID, req.Username, sd)
	if err != nil {
		return nil, err
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
	sess, sd, err := s.takeSession(ctx, record.CeremonyAuthentication, pc)
	if err != nil {
		return nil, err
	}
	out, err := s.finishAuthentication(ctx, sess, sd, pc)
	if err != nil {
		return nil, s.fail(ctx, sess, err)
	}
	return out, nil
}

func (s *Service) finishAuthentication(ctx context.Context, sess *record.Session, sd *webauthn.SessionData, pc *parsedCredential) (any, error) {
	parsed, err := protocol.ParseCredentialRequestResponseBytes(pc.normal)
	if err != nil {
		return nil, verifyError("invalid assertion response", err)
	}
	var (
		wu   *waUser
		cred *webauthn.Credential
	)
	if sess.UserID != 0 {
		user, uerr := s.deps.Store.UserByName(ctx, sess.Username)
		if uerr != nil {
			return nil, uerr
		}
		if user.ID != sess.UserID {
			return nil, badRequest("session user no longer exists", nil)
		}
		rows, cerr := s.deps.Store.FIDO2Credentials(ctx, sess.Username, s.cfg.RPID)
		if cerr != nil {
			return nil, cerr
		}
		if wu, err = newWAUser(user, "", rows); err != nil {
			return nil, err
		}
		cred, err = s.wa.ValidateLogin(wu, *sd, parsed)
	} else {
		var lookupErr error
		handler := func(rawID, userHandle []byte) (webauthn.User, error) {
			user, rows, herr := s.deps.Store.FIDO2CredentialsByHandle(ctx, userHandle, s.cfg.RPID)
			if herr != nil {
				lookupErr = herr
				return nil, fmt.Errorf("fido2: user handle: %w", herr)
			}
			u, herr := newWAUser(user, "", rows)
			if herr != nil {
				lookupErr = herr
				return nil, herr
			}
			wu = u
			return u, nil
		}
		_, cred, err = s.wa.ValidatePasskeyLogin(handler, *sd, parsed)
		if lookupErr != nil && !errors.Is(lookupErr, store.ErrNotFound) {
			return nil, lookupErr
		}
	}
	if err != nil {
		return nil, verifyError("assertion verification failed", err)
	}
	row, ok := wu.row(cred.ID)
	if !ok || !bytes.Equal(row.CredentialID, parsed.RawID) {
		return nil, badRequest("credential is not registered for the user", nil)
	}
	if cred.Authenticator.CloneWarning {
		return nil, s.counterRefused(ctx, wu, row, parsed.Response.AuthenticatorData.Counter)
	}
	err = s.deps.Store.CompleteFIDO2Authentication(ctx, sess.ID, record.CounterUpdate{
		CredentialRowID: row.ID, SignCount: parsed.Response.AuthenticatorData.Counter, Flags: flagsOf(cred.Flags),
		UsedAt: s.now().UTC(),
	})
	switch {
	case errors.Is(err, store.ErrCounter):
		return nil, s.counterRefused(ctx, wu, row, parsed.Response.AuthenticatorData.Counter)
	case errors.Is(err, store.ErrNotFound):
		return nil, badRequest("credential was deleted", err)
	case err != nil:
		return nil, err
	}
	credID := base64.RawURLEncoding.EncodeToString(cred.ID)
	now := s.now().UTC()
	claims := map[string]any{
		"iss":            s.cfg.TokenIssuer,
		"sub":            wu.user.Username,
		"iat":            now.Unix(),
		"exp":            now.Add(s.cfg.TokenTTL).Unix(),
		"jti":            sess.ID,
		"amr":            []string{"fido2"},
		"fido2SessionId": sess.ID,
		"credentialId":   credID,
		"rpId":           s.cfg.RPID,
		"uv":             cred.Flags.UserVerified,
	}
	if s.cfg.TokenAudience != "" {
		claims["aud"] = s.cfg.TokenAudience
	}
	token, err := s.deps.Signer.SignResult(ctx, claims)
	if err != nil {
		return nil, fmt.Errorf("fido2: sign result: %w", err)
	}
	s.log.Info("fido2 audit: authenticated", "user", wu.user.Username, "session", sess.ID, "uv", cred.Flags.UserVerified)
	return authenticationResult{
		serverResponse: serverResponse{Status: "ok"}, Fido2SessionID: sess.ID, Username: wu.user.Username,
		CredentialID: credID, UserVerified: cred.Flags.UserVerified, Token: token,
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
