package fido2

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/fidoserver/hwfido/attestation"
	"github.com/fidoserver/hwfido/server/fido2/record"
	"github.com/fidoserver/hwfido/server/store"
)

// optionsRequest is the union of ServerPublicKeyCredentialCreationOptionsRequest and
// ServerPublicKeyCredentialGetOptionsRequest: nevisFIDO's attestation/options endpoint
// accepts both and decides by content.
type optionsRequest struct {
	Username               string                           `json:"username"`
	DisplayName            string                           `json:"displayName"`
	AuthenticatorSelection *protocol.AuthenticatorSelection `json:"authenticatorSelection"`
	Attestation            string                           `json:"attestation"`
	UserVerification       string                           `json:"userVerification"`
	Extensions             json.RawMessage                  `json:"extensions"`
}

// isAuthentication reports whether a request to nevisFIDO's attestation/options is an
// authentication request: no displayName, no authenticatorSelection, no attestation.
func (o *optionsRequest) isAuthentication() bool {
	return o.DisplayName == "" && o.AuthenticatorSelection == nil && o.Attestation == ""
}

func validUsername(u string) error {
	if u == "" {
		return badRequest("username is required", nil)
	}
	if len(u) > 256 || !utf8.ValidString(u) {
		return badRequest("username must be valid UTF-8 of at most 256 bytes", nil)
	}
	return nil
}

// optionsResponse flattens options into the conformance JSON object, preceded by the
// status fields and fido2SessionId.
func optionsResponse(options any, sessionID string) (json.RawMessage, error) {
	b, err := json.Marshal(options)
	if err != nil || len(b) < 2 || b[0] != '{' {
		return nil, fmt.Errorf("fido2: encode options: %w", err)
	}
	sid, err := json.Marshal(sessionID)
	if err != nil {
		return nil, fmt.Errorf("fido2: encode options: %w", err)
	}
	out := make([]byte, 0, len(b)+len(sid)+64)
	out = append(out, `{"status":"ok","errorMessage":"","fido2SessionId":`...)
	out = append(out, sid...)
	if len(b) > 2 {
		out = append(out, ',')
	}
	return append(out, b[1:]...), nil
}

// maxExtensionBytes bounds the extensions object of an options request.
const maxExtensionBytes = 2048

// extensionOptions maps requested extension inputs to go-webauthn options so that the
// outputs count as solicited and the inputs are echoed in the options.
func extensionOptions(raw json.RawMessage, ceremony protocol.CeremonyType) ([]webauthn.ExtensionOption, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	// Extension inputs other than the common booleans are stored with the ceremony (they
	// do not fit a sealed challenge), also for anonymous callers: bounded so that options
	// calls cannot fill the store.
	if len(raw) > maxExtensionBytes {
		return nil, badRequest(fmt.Sprintf("extensions larger than %d bytes", maxExtensionBytes), nil)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, badRequest("extensions must be an object", err)
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	var out []webauthn.ExtensionOption
	for _, name := range names {
		v := m[name]
		var isTrue bool
		_ = json.Unmarshal(v, &isTrue)
		switch name {
		case protocol.ExtensionCredProps:
			if isTrue {
				out = append(out, webauthn.WithExtensionCredProps())
			}
		case protocol.ExtensionUVM:
			if isTrue {
				out = append(out, webauthn.WithExtensionUVM())
			}
		case protocol.ExtensionMinPinLength:
			if isTrue {
				out = append(out, webauthn.WithExtensionMinPinLength())
			}
		case protocol.ExtensionHMACCreateSecret:
			if isTrue {
				out = append(out, webauthn.WithExtensionHMACCreateSecret())
			}
		case protocol.ExtensionAppID, protocol.ExtensionAppIDExclude:
			var s string
			if err := json.Unmarshal(v, &s); err != nil || s == "" {
				return nil, badRequest("extensions."+name+" must be a non-empty string", err)
			}
			if name == protocol.ExtensionAppID {
				out = append(out, webauthn.WithExtensionAppID(s))
			} else {
				out = append(out, webauthn.WithExtensionAppIDExclude(s))
			}
		case protocol.ExtensionCredentialProtectionPolicy:
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, badRequest("extensions.credentialProtectionPolicy must be a string", err)
			}
			var enforce bool
			if e, ok := m[protocol.ExtensionEnforceCredentialProtectionPolicy]; ok {
				_ = json.Unmarshal(e, &enforce)
			}
			out = append(out, webauthn.WithExtensionCredentialProtectionPolicy(protocol.CredentialProtectionPolicy(s), enforce))
		case protocol.ExtensionEnforceCredentialProtectionPolicy:
			// Handled with credentialProtectionPolicy.
		default:
			var val any
			if err := json.Unmarshal(v, &val); err != nil {
				return nil, badRequest("extensions."+name+" is not valid JSON", err)
			}
			out = append(out, webauthn.WithExtension(name, val))
		}
	}
	_ = ceremony
	return out, nil
}

func (s *Service) attestationOptions(_ http.ResponseWriter, r *http.Request) (any, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	var req optionsRequest
	if err := decodeStrictBytes(body, &req); err != nil {
		return nil, err
	}
	if req.isAuthentication() && r.URL.Path == "/nevisfido/fido2/attestation/options" && req.Username != "" && !hasDisplayNameKey(body) {
		return s.beginAuthentication(r.Context(), req)
	}
	caller, err := s.deps.Callers.Authenticate(r)
	if err != nil {
		return nil, &Error{Code: http.StatusUnauthorized, Msg: "caller not authenticated", Err: err}
	}
	if !caller.Trusted {
		if req.Username == "" {
			req.Username = caller.Username
		}
		if req.Username != caller.Username {
			return nil, &Error{Code: http.StatusForbidden, Msg: "caller may only register credentials for its own username"}
		}
	}
	if err := validUsername(req.Username); err != nil {
		return nil, err
	}
	if req.UserVerification != "" {
		return nil, badRequest("userVerification belongs in authenticatorSelection for registration", nil)
	}
	return s.beginRegistration(r.Context(), req)
}

// hasDisplayNameKey reports whether the raw body names displayName (even empty).
func hasDisplayNameKey(body []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return false
	}
	_, ok := m["displayName"]
	return ok
}

func (s *Service) beginRegistration(ctx context.Context, req optionsRequest) (any, error) {
	var keyVersion uint32 // of a new user's handle
	user, rows, err := s.deps.Store.FIDO2UserCredentialsByName(ctx, req.Username, s.cfg.RPID)
	if errors.Is(err, store.ErrNotFound) {
		// A new user: created by the result's transaction (see session.go), with a
		// handle derived from the username, unless the state cannot be sealed.
		var handle []byte
		if handle, keyVersion, err = s.newUserHandle(ctx, req.Username, 0); err != nil {
			return nil, err
		}
		rows = nil
		user = &store.User{Username: req.Username, Handle: handle}
	}
	if err != nil {
		return nil, err
	}
	wu := newWAUser(user, req.DisplayName, rows)
	opts := []webauthn.RegistrationOption{
		webauthn.WithCredentialParameters(s.params),
		webauthn.WithExclusions(wu.descriptors()),
	}
	if req.Attestation != "" {
		switch protocol.ConveyancePreference(req.Attestation) {
		case protocol.PreferNoAttestation, protocol.PreferIndirectAttestation, protocol.PreferDirectAttestation,
			protocol.PreferEnterpriseAttestation:
		default:
			return nil, badRequest("attestation must be none, indirect, direct or enterprise", nil)
		}
		opts = append(opts, webauthn.WithConveyancePreference(protocol.ConveyancePreference(req.Attestation)))
	}
	sel := protocol.AuthenticatorSelection{}
	if req.AuthenticatorSelection != nil {
		sel = *req.AuthenticatorSelection
		switch sel.UserVerification {
		case "", protocol.VerificationRequired, protocol.VerificationPreferred, protocol.VerificationDiscouraged:
		default:
			return nil, badRequest("authenticatorSelection.userVerification is invalid", nil)
		}
	}
	if s.cfg.UserVerification == "required" {
		sel.UserVerification = protocol.VerificationRequired
	}
	if req.AuthenticatorSelection != nil || s.cfg.UserVerification == "required" {
		opts = append(opts, webauthn.WithAuthenticatorSelection(sel))
	}
	ext, err := extensionOptions(req.Extensions, protocol.CreateCeremony)
	if err != nil {
		return nil, err
	}
	if len(ext) > 0 {
		opts = append(opts, webauthn.WithExtensions(ext...))
	}
	creation, sd, err := s.wa.BeginRegistration(wu, opts...)
	if err != nil {
		return nil, verifyError("cannot build creation options", err)
	}
	if _, sealable := sealableExtensions(creation.Response.Extensions); user.ID == 0 &&
		(!sealable || len(user.Username) > sealMaxName) {
		// The session is stored, so the user must exist first.
		if user, err = s.deps.Store.EnsureFIDO2User(ctx, user.Username, user.Handle); err != nil {
			return nil, err
		}
		sd.UserID = user.Handle
		creation.Response.User.ID = protocol.URLEncodedBase64(user.Handle)
	}
	id, ch, err := s.startSession(ctx, record.CeremonyRegistration, user.ID, user.Username, sd, creation.Response.Extensions, keyVersion)
	if err != nil {
		return nil, err
	}
	if ch != nil {
		creation.Response.Challenge = ch
		if user.ID == 0 {
			// The result on this process reuses the new user's handle instead of asking
			// the HSM to derive it again.
			now, handle := s.now(), user.Handle
			s.creds.update(id, now.Add(s.cfg.timeout(record.CeremonyRegistration)), now, func(e *cachedCreds) { e.handle = handle })
		}
	}
	return optionsResponse(creation.Response, id)
}

// registrationResult is the body of a successful attestation result.
type registrationResult struct {
	serverResponse
	Fido2SessionID string `json:"fido2SessionId"`
	CredentialID   string `json:"credentialId"`
	Username       string `json:"username"`
	Trust          string `json:"attestationTrust"`
}

func (s *Service) attestationResult(_ http.ResponseWriter, r *http.Request) (any, error) {
	ctx := r.Context()
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	pc, err := parseCredential(body, "webauthn.create")
	if err != nil {
		return nil, err
	}
	p, err := s.openSession(ctx, record.CeremonyRegistration, pc.challenge)
	if err != nil {
		return nil, err
	}
	out, err := s.finishRegistration(ctx, p, pc)
	if err != nil {
		return nil, s.fail(ctx, p, err)
	}
	return out, nil
}

func (s *Service) finishRegistration(ctx context.Context, p *pending, pc *parsedCredential) (any, error) {
	if err := s.checkOrigin(pc); err != nil {
		return nil, err
	}
	// No read: the user is resolved (or, when new, created) by the write transaction.
	// go-webauthn only needs the handle to equal the session's.
	handle := p.sd.UserID
	if p.sealed {
		handle = nil
		if p.sess.UserID == 0 {
			if p.local != nil && p.local.handle != nil {
				handle = p.local.handle // derived by this process's options call
			} else {
				var err error
				if handle, _, err = s.newUserHandle(ctx, p.sess.Username, p.keyVersion); err != nil {
					return nil, err
				}
			}
		}
		p.sd.UserID = handle
	}
	wu := &waUser{user: &store.User{ID: p.sess.UserID, Username: p.sess.Username, Handle: handle}}
	parsed, err := pc.creation()
	if err != nil {
		return nil, verifyError("invalid attestation response", err)
	}
	cred, err := s.wa.CreateCredential(wu, p.sd, parsed)
	if err != nil {
		return nil, verifyError("attestation verification failed", err)
	}
	chain, err := attestationChain(cred.AttestationFormat, parsed.Response.AttestationObject.AttStatement)
	if err != nil {
		return nil, verifyError("attestation statement is malformed", err)
	}
	if cred.AttestationFormat == "fido-u2f" && !bytes.Equal(cred.Authenticator.AAGUID, make([]byte, 16)) {
		// U2F authenticators have no AAGUID (WebAuthn L3 §8.6); a non-zero one is not
		// covered by the U2F signature and would be the client's choice.
		return nil, verifyError("attestation verification failed", errors.New("fido-u2f attestation with a non-zero AAGUID"))
	}
	trust, err := s.decideTrust(ctx, p.sess.Username, cred, chain)
	if err != nil {
		return nil, err
	}
	recBytes, err := json.Marshal(cred)
	if err != nil {
		return nil, fmt.Errorf("fido2: encode credential: %w", err)
	}
	transports := make([]string, 0, len(cred.Transport))
	for _, t := range cred.Transport {
		transports = append(transports, string(t))
	}
	rc := record.Credential{
		UserID: p.sess.UserID, Username: p.sess.Username, UserHandle: handle, RPID: s.cfg.RPID, CredentialID: cred.ID, PublicKey: cred.PublicKey,
		AAGUID: cred.Authenticator.AAGUID, SignCount: cred.Authenticator.SignCount, Flags: flagsOf(cred.Flags),
		AttestationFormat: cred.AttestationFormat, AttestationType: cred.AttestationType, Trust: trust,
		Transports: transports, Discoverable: cred.Extensions.RK != nil && *cred.Extensions.RK,
		Name: pc.name, Record: recBytes, CreatedAt: s.now().UTC(),
	}
	user, err := s.deps.Store.RegisterFIDO2Credential(ctx, p.sess, rc)
	switch {
	case errors.Is(err, store.ErrReplay):
		return nil, replayed(err)
	case errors.Is(err, store.ErrAlreadyExists):
		return nil, badRequest("credential is already registered", err)
	case errors.Is(err, store.ErrNotFound):
		return nil, badRequest("session user no longer exists", err)
	case errors.Is(err, record.ErrUserChanged):
		return nil, badRequest("the user was created elsewhere during this registration; start again", err)
	case err != nil:
		return nil, err
	}
	s.log.Info("fido2 audit: credential registered", "user", user.Username, "format", cred.AttestationFormat,
		"type", cred.AttestationType, "trust", trust, "session", p.sess.ID)
	return registrationResult{
		serverResponse: serverResponse{Status: "ok"}, Fido2SessionID: p.sess.ID,
		CredentialID: b64(cred.ID), Username: user.Username, Trust: trust,
	}, nil
}

// Trust outcomes stored with a credential.
const (
	trustTrusted    = "trusted"
	trustUntrusted  = "untrusted"
	trustNotChecked = "not-checked"
)

// decideTrust applies the attestation policy (WebAuthn L3 §7.1 steps 23–24): under
// enforce an attestation that is not trusted is refused, under monitor it is stored as
// untrusted; a refused metadata status refuses under both.
func (s *Service) decideTrust(ctx context.Context, username string, cred *webauthn.Credential, chain attestationEvidence) (string, error) {
	if s.cfg.AttestationPolicy == AttestationNone {
		return trustNotChecked, nil
	}
	ev := attestation.FIDO2Evidence{
		Format: cred.AttestationFormat, Type: cred.AttestationType, Now: s.now(), X5C: chain.x5c, Alg: chain.alg,
	}
	copy(ev.AAGUID[:], cred.Authenticator.AAGUID)
	err := attestation.VerifyFIDO2Trust(ctx, s.deps.Trust, ev)
	if err == nil {
		return trustTrusted, nil
	}
	var te *attestation.FIDO2TrustError
	if !errors.As(err, &te) {
		return "", err
	}
	// A refused metadata status (revoked, compromised, …) refuses under either policy:
	// the trust source reports it only in its enforcing status mode.
	if te.Reason == attestation.FIDO2StatusRefused {
		s.log.Warn("fido2 audit: registration refused by authenticator status", "user", username, "err", err)
		return "", badRequest("authenticator status refused: "+te.Error(), err)
	}
	if s.cfg.AttestationPolicy == AttestationEnforce {
		s.log.Warn("fido2 audit: registration refused by attestation policy", "user", username, "err", err)
		return "", badRequest("attestation not trusted: "+te.Error(), err)
	}
	s.log.Warn("fido2 audit: untrusted attestation accepted (monitor)", "user", username, "err", err)
	return trustUntrusted, nil
}

// attestationEvidence is what the trust decision takes from a verified attestation
// statement: its certificate chain (leaf first, DER) and its "alg".
type attestationEvidence struct {
	x5c [][]byte
	alg int64
}

// attestationChain returns the certificate chain and alg of a statement go-webauthn has
// verified, and refuses what its handlers let through: an "x5c" that is not a non-empty
// array of byte strings (WebAuthn L3 §8.2 and the other formats' syntax). The chain of
// android-safetynet travels in its JWS header (§8.5), which go-webauthn verified. A
// compound statement (§8.9) yields no chain: its sub-statements are not decided on.
func attestationChain(format string, stmt map[string]any) (attestationEvidence, error) {
	var ev attestationEvidence
	if alg, ok := stmt["alg"].(int64); ok {
		ev.alg = alg
	}
	if format == "android-safetynet" {
		x5c, err := safetyNetChain(stmt)
		ev.x5c = x5c
		return ev, err
	}
	raw, present := stmt["x5c"]
	if !present {
		return ev, nil
	}
	list, ok := raw.([]any)
	if !ok || len(list) == 0 {
		return ev, errors.New("attStmt.x5c is not a non-empty array")
	}
	for i, c := range list {
		b, ok := c.([]byte)
		if !ok || len(b) == 0 {
			return ev, fmt.Errorf("attStmt.x5c[%d] is not a certificate", i)
		}
		ev.x5c = append(ev.x5c, b)
	}
	return ev, nil
}

// safetyNetChain returns the x5c of an android-safetynet statement's JWS header
// (standard base64 DER certificates, leaf first).
func safetyNetChain(stmt map[string]any) ([][]byte, error) {
	jws, _ := stmt["response"].([]byte)
	header, _, ok := strings.Cut(string(jws), ".")
	if !ok {
		return nil, errors.New("android-safetynet response is not a JWS")
	}
	hb, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(header, "="))
	if err != nil {
		return nil, fmt.Errorf("android-safetynet JWS header: %w", err)
	}
	var h struct {
		X5C []string `json:"x5c"`
	}
	if err := json.Unmarshal(hb, &h); err != nil || len(h.X5C) == 0 {
		return nil, errors.New("android-safetynet JWS header has no x5c")
	}
	out := make([][]byte, 0, len(h.X5C))
	for i, c := range h.X5C {
		der, err := base64.StdEncoding.DecodeString(c)
		if err != nil || len(der) == 0 {
			return nil, fmt.Errorf("android-safetynet JWS header x5c[%d] is not base64", i)
		}
		out = append(out, der)
	}
	return out, nil
}
