package fido2

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
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
type Store interface {
	// EnsureUser returns the user with that username, creating it (with a random
	// 32-byte WebAuthn user handle) if needed.
	EnsureUser(ctx context.Context, username string) (*store.User, error)
	// UserByName returns the user or store.ErrNotFound.
	UserByName(ctx context.Context, username string) (*store.User, error)
	// FIDO2Credentials lists a user's credentials for rpID.
	FIDO2Credentials(ctx context.Context, username, rpID string) ([]record.Credential, error)
	// FIDO2CredentialsByHandle resolves a WebAuthn user handle to the user and its
	// credentials for rpID, or store.ErrNotFound.
	FIDO2CredentialsByHandle(ctx context.Context, handle []byte, rpID string) (*store.User, []record.Credential, error)
	// FIDO2CredentialByID returns one credential or store.ErrNotFound.
	FIDO2CredentialByID(ctx context.Context, rpID string, credentialID []byte) (*record.Credential, error)
	// DeleteFIDO2Credential deletes a user's credential or returns store.ErrNotFound.
	DeleteFIDO2Credential(ctx context.Context, username, rpID string, credentialID []byte) error
	// CreateFIDO2Session stores a new session.
	CreateFIDO2Session(ctx context.Context, s record.Session) error
	// FIDO2Session returns a session by ID or store.ErrNotFound.
	FIDO2Session(ctx context.Context, id string) (*record.Session, error)
	// TakeFIDO2Session moves the initialized, unexpired session with that challenge to
	// verifying (once) or fails with store.ErrNotFound / store.ErrReplay.
	TakeFIDO2Session(ctx context.Context, ceremony record.Ceremony, challenge []byte, now time.Time) (*record.Session, error)
	// FailFIDO2Session marks a session failed.
	FailFIDO2Session(ctx context.Context, id, msg string, now time.Time) error
	// CompleteFIDO2Registration stores the credential and marks the session succeeded
	// atomically (store.ErrAlreadyExists for a known credential ID).
	CompleteFIDO2Registration(ctx context.Context, sessionID string, c record.Credential) (*record.Credential, error)
	// CompleteFIDO2Authentication writes back counter and flags, refusing a counter that
	// does not increase (store.ErrCounter), and marks the session succeeded atomically.
	CompleteFIDO2Authentication(ctx context.Context, sessionID string, u record.CounterUpdate) error
	// RecordSecurityEvent appends to the security event log (possible clones).
	RecordSecurityEvent(ctx context.Context, e store.SecurityEvent) error
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
}

// Service serves the FIDO2 endpoints. It is safe for concurrent use.
type Service struct {
	cfg    Config
	deps   Deps
	wa     *webauthn.WebAuthn
	params []protocol.CredentialParameter
	log    *slog.Logger
	now    func() time.Time
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
	wa, err := webauthn.New(&webauthn.Config{
		RPID:          cfg.RPID,
		RPDisplayName: cfg.RPName,
		RPOrigins:     cfg.Origins,
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Enforce: true, Timeout: cfg.Timeout, TimeoutUVD: cfg.Timeout},
			Registration: webauthn.TimeoutConfig{Enforce: true, Timeout: cfg.Timeout, TimeoutUVD: cfg.Timeout},
		},
		Attestation: protocol.AttestationPolicy{
			AndroidKey: protocol.AndroidKeyPolicy{AuthorizationScope: protocol.AndroidKeyAuthorizationScopeUnion},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("fido2: webauthn: %w", err)
	}
	return &Service{cfg: cfg, deps: deps, wa: wa, params: cfg.credParams(), log: deps.Logger, now: deps.Now}, nil
}

// Register mounts the endpoints on r: /nevisfido/fido2/{attestation,assertion}/{options,result},
// /nevisfido/fido2/status, /nevisfido/fido2/credentials (GET list, DELETE one by
// ?username=&id=), the conformance paths when [Config.ConformancePaths] is set and the
// demo page when [Config.Demo] is set.
func (s *Service) Register(r *mux.Router) {
	for _, prefix := range s.prefixes() {
		r.Handle(prefix+"/attestation/options", s.handler(s.attestationOptions)).Methods(http.MethodPost)
		r.Handle(prefix+"/attestation/result", s.handler(s.attestationResult)).Methods(http.MethodPost)
		r.Handle(prefix+"/assertion/options", s.handler(s.assertionOptions)).Methods(http.MethodPost)
		r.Handle(prefix+"/assertion/result", s.handler(s.assertionResult)).Methods(http.MethodPost)
	}
	r.Handle("/nevisfido/fido2/status", s.handler(s.status)).Methods(http.MethodPost)
	r.Handle("/nevisfido/fido2/credentials", s.handler(s.listCredentials)).Methods(http.MethodGet)
	r.Handle("/nevisfido/fido2/credentials", s.handler(s.deleteCredential)).Methods(http.MethodDelete)
	if s.cfg.Demo {
		r.PathPrefix("/nevisfido/fido2/demo/").Handler(demoHandler())
	}
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

// handler adapts h: it limits the body, renders the value or the error as JSON and logs
// one event per request.
func (s *Service) handler(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.now()
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		v, err := h(w, r)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		code := http.StatusOK
		if err != nil {
			var fe *Error
			if !errors.As(err, &fe) {
				fe = &Error{Code: http.StatusInternalServerError, Msg: "internal error", Err: err}
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
		return sessionStatus{Status: string(record.StatusUnknown), Fido2SessionID: id}, nil
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
