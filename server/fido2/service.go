package fido2

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/gorilla/mux"

	"github.com/fidoserver/hwfido/attestation"
	"github.com/fidoserver/hwfido/server/fido2/record"
	"github.com/fidoserver/hwfido/server/store"
)

// Caller is who called an endpoint that needs caller authentication.
type Caller struct {
	// Username is the authenticated user (empty for a trusted backend without a user).
	Username string
	// Trusted marks a backend (e.g. authenticated by mutual TLS) that may act for any user.
	Trusted bool
}

// CallerAuthenticator authenticates the caller of a request. An error answers 401.
type CallerAuthenticator interface {
	Authenticate(r *http.Request) (Caller, error)
}

// ResultSigner signs the claims of a successful authentication into a compact token
// (an ES256 JWT signed in the HSM in production).
type ResultSigner interface {
	SignResult(ctx context.Context, claims map[string]any) (string, error)
}

// TrustSource provides the metadata attestation trust is decided with.
type TrustSource = attestation.FIDO2Anchors

// Store is the persistence the service needs; *sqlite.DB implements it. Sentinel errors
// are those of server/store (ErrNotFound, ErrAlreadyExists, ErrReplay, ErrCounter).
//
// A ceremony costs one write transaction, at its result (RegisterFIDO2Credential,
// FinishFIDO2Authentication or FailFIDO2Session); the options call writes only when the
// state cannot be sealed into the challenge: extension inputs other than the boolean ones
// (CreateFIDO2Session), or a new user whose username is too long to seal
// (EnsureFIDO2User).
type Store interface {
	// EnsureFIDO2User returns the user with that username, creating it with the given
	// WebAuthn user handle if needed (an existing user keeps its handle).
	EnsureFIDO2User(ctx context.Context, username string, handle []byte) (*store.User, error)
	// FIDO2UserCredentialsByName returns a user and its credentials for rpID, or
	// store.ErrNotFound. This and the two other ceremony reads below leave each
	// credential's Record empty (the ceremony does not use it; FIDO2Credentials returns it).
	FIDO2UserCredentialsByName(ctx context.Context, username, rpID string) (*store.User, []record.Credential, error)
	// FIDO2UserCredentials returns the user with that row id and its credentials for
	// rpID, or store.ErrNotFound.
	FIDO2UserCredentials(ctx context.Context, userID int64, rpID string) (*store.User, []record.Credential, error)
	// FIDO2Credentials lists a user's credentials for rpID.
	FIDO2Credentials(ctx context.Context, username, rpID string) ([]record.Credential, error)
	// FIDO2CredentialsByHandle resolves a WebAuthn user handle to the user and its
	// credentials for rpID, or store.ErrNotFound.
	FIDO2CredentialsByHandle(ctx context.Context, handle []byte, rpID string) (*store.User, []record.Credential, error)
	// DeleteFIDO2Credential deletes a user's credential or returns store.ErrNotFound.
	DeleteFIDO2Credential(ctx context.Context, username, rpID string, credentialID []byte) error
	// CreateFIDO2Session stores a new initialized session.
	CreateFIDO2Session(ctx context.Context, s record.Session) error
	// FIDO2Session returns a session by ID or store.ErrNotFound.
	FIDO2Session(ctx context.Context, id string) (*record.Session, error)
	// FIDO2SessionByChallenge returns a stored session by challenge or store.ErrNotFound.
	FIDO2SessionByChallenge(ctx context.Context, challenge []byte) (*record.Session, error)
	// FailFIDO2Session records the session as failed (inserting its row when it has
	// none), or returns store.ErrReplay when it was already finished.
	FailFIDO2Session(ctx context.Context, s record.Session, msg string, now time.Time) error
	// RegisterFIDO2Credential stores the credential and records the session as
	// succeeded in one transaction and returns the credential's user. c.UserID 0 names a
	// new user (c.Username, c.UserHandle), created in the same transaction unless it
	// exists with that handle (record.ErrUserChanged when its handle differs). Errors:
	// store.ErrAlreadyExists for a known credential ID, store.ErrNotFound for a vanished
	// user, store.ErrReplay for a finished session.
	RegisterFIDO2Credential(ctx context.Context, s record.Session, c record.Credential) (*store.User, error)
	// FinishFIDO2Authentication writes back counter and flags, refusing a counter that
	// does not increase (store.ErrCounter), and records the session as succeeded, in one
	// transaction (store.ErrReplay for a finished session).
	FinishFIDO2Authentication(ctx context.Context, s record.Session, credentialID []byte, u record.CounterUpdate) error
	// RecordSecurityEvent appends to the security event log (possible clones).
	RecordSecurityEvent(ctx context.Context, e store.SecurityEvent) error
	// PurgeFIDO2Sessions deletes sessions that expired before before.
	PurgeFIDO2Sessions(ctx context.Context, before time.Time) (int64, error)
}

// Deps are the collaborators of a [Service]. Store, Callers and Signer are required;
// Trust is required unless the attestation policy is "none".
type Deps struct {
	Store   Store
	Callers CallerAuthenticator
	Signer  ResultSigner
	Trust   TrustSource
	// Logger receives one event per request and audit events (default: discard).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Unavailable, when set, reports whether an error means a dependency outage (HSM or
	// store down): such errors answer 503 instead of 500.
	Unavailable func(error) bool
	// MAC is the HSM MAC that authenticates sealed sessions and derives new users'
	// handles (see the package documentation); required. Every node serving the same
	// store uses the same token, so sessions work across nodes and restarts.
	MAC SessionMAC
}

// Service serves the FIDO2 endpoints. It is safe for concurrent use.
type Service struct {
	cfg    Config
	creds  *credCache // authentication options → result (credcache.go)
	deps   Deps
	wa     *webauthn.WebAuthn
	params []protocol.CredentialParameter
	sealer *sealer
	log    *slog.Logger
	now    func() time.Time
	// origins are the serialized accepted origins: clientDataJSON.origin must be one of
	// them exactly (WebAuthn L3 §7.1 step 9, §7.2 step 13).
	origins map[string]bool
}

// New validates cfg and returns a Service.
func New(cfg Config, deps Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	switch {
	case deps.Store == nil:
		return nil, errors.New("fido2: deps.Store is required")
	case deps.Callers == nil:
		return nil, errors.New("fido2: deps.Callers is required")
	case deps.Signer == nil:
		return nil, errors.New("fido2: deps.Signer is required")
	case deps.Trust == nil && cfg.AttestationPolicy != AttestationNone:
		return nil, errors.New("fido2: deps.Trust is required unless attestationPolicy is none")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	sl, err := newSealer(deps.MAC, cfg.RPID)
	if err != nil {
		return nil, err
	}
	// Our android-key and apple verifiers replace go-webauthn's, which chain to roots
	// compiled into the library; trust is decided with deps.Trust (see decideTrust).
	attestation.RegisterFIDO2Formats()
	wa, err := webauthn.New(&webauthn.Config{
		RPID:          cfg.RPID,
		RPDisplayName: cfg.RPName,
		RPOrigins:     cfg.Origins,
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Enforce: true, Timeout: cfg.AuthenticationTimeout, TimeoutUVD: cfg.AuthenticationTimeout},
			Registration: webauthn.TimeoutConfig{Enforce: true, Timeout: cfg.Timeout, TimeoutUVD: cfg.Timeout},
		},
		Attestation: protocol.AttestationPolicy{
			AndroidKey: protocol.AndroidKeyPolicy{AuthorizationScope: protocol.AndroidKeyAuthorizationScopeUnion},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("fido2: webauthn: %w", err)
	}
	origins := map[string]bool{}
	for _, o := range cfg.Origins {
		so, _ := serializedOrigin(o) // checked by Validate
		origins[so] = true
	}
	return &Service{cfg: cfg, creds: newCredCache(), deps: deps, wa: wa, params: cfg.credParams(), sealer: sl,
		log: deps.Logger, now: deps.Now, origins: origins}, nil
}

// Register mounts the endpoints on r: /nevisfido/fido2/{attestation,assertion}/{options,result},
// /nevisfido/fido2/status, /nevisfido/fido2/credentials (GET list, DELETE one by
// ?username=&id=), the conformance paths when [Config.ConformancePaths] is set and the
// demo page when [Config.Demo] is set.
func (s *Service) Register(r *mux.Router) {
	// Every path is served with and without a trailing slash, like the UAF paths.
	both := func(path string, h http.Handler, method string) {
		r.Handle(path, h).Methods(method)
		r.Handle(path+"/", h).Methods(method)
	}
	for _, prefix := range s.prefixes() {
		both(prefix+"/attestation/options", s.handler(s.attestationOptions), http.MethodPost)
		both(prefix+"/attestation/result", s.handler(s.attestationResult), http.MethodPost)
		both(prefix+"/assertion/options", s.handler(s.assertionOptions), http.MethodPost)
		both(prefix+"/assertion/result", s.handler(s.assertionResult), http.MethodPost)
	}
	both("/nevisfido/fido2/status", s.handler(s.status), http.MethodPost)
	both("/nevisfido/fido2/credentials", s.handler(s.listCredentials), http.MethodGet)
	both("/nevisfido/fido2/credentials", s.handler(s.deleteCredential), http.MethodDelete)
	if s.cfg.Demo {
		r.PathPrefix("/nevisfido/fido2/demo/").Handler(demoHandler())
	}
}

// newUserHandle is the WebAuthn user handle of a user created by a FIDO2 registration:
// HMAC-SHA256, computed in the HSM, of the RP ID and the username under the serverData MAC
// key of version (0: the active key; the version used is returned). It is deterministic so
// that the options and result calls of one ceremony, and concurrent first registrations of
// one user, agree without a write at options time; without the key it reveals nothing about
// the username. The sealed session carries the version, so a key rotation in between
// does not change the handle.
func (s *Service) newUserHandle(ctx context.Context, username string, version uint32) ([]byte, uint32, error) {
	in := []byte("hwfido fido2 user handle v2\x00" + s.cfg.RPID + "\x00" + username)
	if version == 0 {
		h, v, err := s.deps.MAC.MAC(ctx, in)
		if err != nil {
			return nil, 0, fmt.Errorf("fido2: user handle: %w", err)
		}
		return h, v, nil
	}
	h, err := s.deps.MAC.MACWithVersion(ctx, version, in)
	if err != nil {
		return nil, 0, fmt.Errorf("fido2: user handle: %w", err)
	}
	return h, version, nil
}

// Purge deletes the sessions that expired more than [Config.StatusRetention] ago and
// returns how many; the server calls it periodically.
func (s *Service) Purge(ctx context.Context) (int64, error) {
	s.creds.sweep(s.now())
	n, err := s.deps.Store.PurgeFIDO2Sessions(ctx, s.now().Add(-s.cfg.StatusRetention))
	if err != nil {
		return 0, fmt.Errorf("fido2: purge sessions: %w", err)
	}
	return n, nil
}

func (s *Service) prefixes() []string {
	if s.cfg.ConformancePaths {
		return []string{"/nevisfido/fido2", ""}
	}
	return []string{"/nevisfido/fido2"}
}

// Error is a failure rendered as {"status":"failed","errorMessage":Msg} with HTTP Code.
// Err, when set, is logged but never sent.
type Error struct {
	Code int
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return "fido2: " + e.Msg + ": " + e.Err.Error()
	}
	return "fido2: " + e.Msg
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

func badRequest(msg string, err error) *Error {
	return &Error{Code: http.StatusBadRequest, Msg: msg, Err: err}
}

// verifyError maps a go-webauthn verification error to a 400 carrying its details.
func verifyError(what string, err error) *Error {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		msg := what + ": " + pe.Details
		if pe.DevInfo != "" {
			msg += " (" + pe.DevInfo + ")"
		}
		return &Error{Code: http.StatusBadRequest, Msg: msg, Err: err}
	}
	return &Error{Code: http.StatusBadRequest, Msg: what + ": " + err.Error(), Err: err}
}

type handlerFunc func(w http.ResponseWriter, r *http.Request) (any, error)

// isJSON reports whether a request Content-Type is application/json (any parameters; the
// charset, when named, UTF-8).
func isJSON(ct string) bool {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return false
	}
	cs, ok := params["charset"]
	return !ok || strings.EqualFold(cs, "utf-8")
}

// handler adapts h: it limits the body, renders the value or the error as JSON and logs
// one event per request.
func (s *Service) handler(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.now()
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		var v any
		var err error
		if r.Method == http.MethodPost && !isJSON(r.Header.Get("Content-Type")) {
			err = &Error{Code: http.StatusUnsupportedMediaType, Msg: "Content-Type must be application/json"}
		} else {
			v, err = h(w, r)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		code := http.StatusOK
		if err != nil {
			var fe *Error
			if !errors.As(err, &fe) {
				fe = &Error{Code: http.StatusInternalServerError, Msg: "internal error", Err: err}
				if s.deps.Unavailable != nil && s.deps.Unavailable(err) {
					fe = &Error{Code: http.StatusServiceUnavailable, Msg: "service unavailable", Err: err}
				}
			}
			code = fe.Code
			v = serverResponse{Status: "failed", ErrorMessage: fe.Msg}
			level := slog.LevelInfo
			if code >= 500 {
				level = slog.LevelError
			}
			s.log.Log(r.Context(), level, "fido2 request failed", "path", r.URL.Path, "code", code, "err", err,
				"ms", s.now().Sub(start).Milliseconds())
		} else {
			s.log.Debug("fido2 request", "path", r.URL.Path, "ms", s.now().Sub(start).Milliseconds())
		}
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	})
}

// serverResponse is the conformance API's ServerResponse.
type serverResponse struct {
	Status       string `json:"status"`
	ErrorMessage string `json:"errorMessage"`
}

func newSessionID() (string, error) {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("fido2: session id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// sessionStatus is the body of /nevisfido/fido2/status.
type sessionStatus struct {
	Status         string `json:"status"`
	Fido2SessionID string `json:"fido2SessionId"`
	Ceremony       string `json:"ceremony,omitempty"`
	Username       string `json:"username,omitempty"`
	CredentialID   string `json:"credentialId,omitempty"`
	ErrorMessage   string `json:"errorMessage,omitempty"`
	Timestamp      string `json:"timestamp,omitempty"`
}

func (s *Service) status(_ http.ResponseWriter, r *http.Request) (any, error) {
	var req struct {
		Fido2SessionID string `json:"fido2SessionId"`
		SessionID      string `json:"sessionId"`
	}
	if err := decodeStrict(r, &req); err != nil {
		return nil, err
	}
	id := req.Fido2SessionID
	if id == "" {
		id = req.SessionID
	}
	if id == "" {
		return nil, badRequest("fido2SessionId is required", nil)
	}
	sess, err := s.deps.Store.FIDO2Session(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return s.sealedStatus(r.Context(), id)
	}
	if err != nil {
		return nil, err
	}
	st := sess.Status
	if st == record.StatusInitialized && !s.now().Before(sess.ExpiresAt) {
		st = record.StatusFailed
		sess.ErrorMessage = "session expired"
	}
	if st == record.StatusVerifying {
		st = record.StatusInitialized
	}
	out := sessionStatus{
		Status: string(st), Fido2SessionID: id, Ceremony: string(sess.Ceremony), Username: sess.Username,
		ErrorMessage: sess.ErrorMessage, Timestamp: sess.UpdatedAt.UTC().Format("2006-01-02T15:04:05.000Z"),
	}
	if len(sess.CredentialID) > 0 {
		out.CredentialID = base64.RawURLEncoding.EncodeToString(sess.CredentialID)
	}
	return out, nil
}

// sealedStatus reports a session that has no row: a sealed session whose result has not
// been recorded is initialized until it expires; anything else is unknown.
func (s *Service) sealedStatus(ctx context.Context, id string) (sessionStatus, error) {
	out := sessionStatus{Status: string(record.StatusUnknown), Fido2SessionID: id}
	ch, err := decodeB64URL(id)
	if err != nil {
		return out, nil
	}
	st, err := s.sealer.open(ctx, ch)
	if errors.Is(err, errNotSealed) {
		return out, nil
	}
	if err != nil {
		return out, err
	}
	out.Ceremony = string(st.ceremony)
	out.Status = string(record.StatusInitialized)
	if !s.now().Before(st.expires) {
		out.Status, out.ErrorMessage = string(record.StatusFailed), "session expired"
	}
	return out, nil
}
