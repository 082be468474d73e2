package localapi

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/fidoserver/hwfido/authenticatord/asm"
	"github.com/fidoserver/hwfido/authenticatord/authr"
	"github.com/fidoserver/hwfido/authenticatord/tpm"
	"github.com/fidoserver/hwfido/authenticatord/uafclient"
	"github.com/fidoserver/hwfido/authenticatord/vendorca"
	"github.com/fidoserver/hwfido/internal/strictjson"
	"github.com/fidoserver/hwfido/uaf"
	"golang.org/x/sys/unix"
)

// maxBody bounds request bodies.
const maxBody = 64 << 10

// Options configures [New].
type Options struct {
	// Authenticator and Client are required.
	Authenticator *authr.Authenticator
	Client        *uafclient.Client
	// DAStatus reports the TPM's dictionary-attack state; nil omits it.
	DAStatus func() (tpm.DAStatus, error)
	// AdminUIDs may create the attestation key and install certificates
	// (besides uid 0 and the daemon's own uid).
	AdminUIDs []uint32
	// OOB serves the /v1/oob routes (out-of-band operations); nil leaves
	// them out.
	OOB OOB
	// SessionTTL bounds how long a begun client operation waits for its
	// finish; 0 means 2 minutes. MaxSessions bounds pending sessions (0 =
	// 64), MaxSessionsPerUser those of one OS user (0 = 8), so that one
	// local user cannot lock the others out.
	SessionTTL         time.Duration
	MaxSessions        int
	MaxSessionsPerUser int
	// Logger gets one event per request (never bodies, PINs or tokens).
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Server is the local API. It is safe for concurrent use.
type Server struct {
	o   Options
	log *slog.Logger

	mu       sync.Mutex
	sessions map[string]*session
}

type session struct {
	uid     uint32
	p       *uafclient.Prepared
	expires time.Time
}

// New returns a Server.
func New(o Options) (*Server, error) {
	if o.Authenticator == nil || o.Client == nil {
		return nil, errors.New("localapi: Options.Authenticator and Options.Client are required")
	}
	if o.SessionTTL == 0 {
		o.SessionTTL = 2 * time.Minute
	}
	if o.MaxSessionsPerUser == 0 {
		o.MaxSessionsPerUser = 8
	}
	if o.MaxSessions == 0 {
		o.MaxSessions = 64
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{o: o, log: log, sessions: map[string]*session{}}, nil
}

// Peer is the identity of the process on the other end of the socket.
type Peer struct {
	UID, GID uint32
	PID      int32
}

type peerKey struct{}

// PeerOf returns the peer stored in ctx by [Server.Serve].
func PeerOf(ctx context.Context) (Peer, bool) {
	p, ok := ctx.Value(peerKey{}).(Peer)
	return p, ok
}

// PeerCredentials reads SO_PEERCRED of a Unix socket connection: the process at the other
// end (the daemon checks its clients with it, the client checks the daemon).
func PeerCredentials(c net.Conn) (Peer, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return Peer{}, errors.New("localapi: not a unix socket")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Peer{}, fmt.Errorf("localapi: peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) //nolint:gosec // fd fits int
	}); err != nil {
		return Peer{}, fmt.Errorf("localapi: peer credentials: %w", err)
	}
	if cerr != nil {
		return Peer{}, fmt.Errorf("localapi: SO_PEERCRED: %w", cerr)
	}
	return Peer{UID: cred.Uid, GID: cred.Gid, PID: cred.Pid}, nil
}

// Listen creates the Unix socket at path with the given mode (0600 or
// 0660) and, if gid ≥ 0, group, removing a stale socket first.
func Listen(path string, mode os.FileMode, gid int) (net.Listener, error) {
	if mode&0o007 != 0 {
		return nil, fmt.Errorf("localapi: socket mode %o gives access to others", mode)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("localapi: %s exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("localapi: remove stale socket: %w", err)
		}
	}
	old := unix.Umask(0o177)
	ln, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("localapi: listen: %w", err)
	}
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("localapi: chown socket: %w", err)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("localapi: chmod socket: %w", err)
	}
	return ln, nil
}

// Serve answers requests on ln until ctx is done, then shuts down
// gracefully (at most 5 s).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			p, err := PeerCredentials(c)
			if err != nil {
				return ctx // no peer: every request is refused
			}
			return context.WithValue(ctx, peerKey{}, p)
		},
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := hs.Shutdown(sctx)
		<-errc
		return err
	}
}

// httpError is an error with an HTTP status and ASM/client codes.
type httpError struct {
	status int
	asm    uaf.ASMStatus
	client uaf.ErrorCode
	msg    string
	err    error
}

func (e *httpError) Error() string { return e.msg }

func herr(status int, msg string, err error) *httpError {
	return &httpError{status: status, asm: uaf.ASMError, msg: msg, err: err}
}

// Handler returns the HTTP handler (exported for tests that serve it on
// their own listener).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	route := func(pattern string, fn func(w http.ResponseWriter, r *http.Request, p Peer) (any, error)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, fn) })
	}
	route("POST "+PathASM, s.handleASM)
	route("POST "+PathClientBegin, s.handleBegin)
	route("POST "+PathClientFinish, s.handleFinish)
	route("POST "+PathChangePIN, s.handleChangePIN)
	route("GET "+PathMetadata, s.handleMetadata)
	route("GET "+PathStatus, s.handleStatus)
	route("GET "+PathAttestationKey, s.handleGetAK)
	route("POST "+PathAttestationKey, s.handleCreateAK)
	route("POST "+PathAttestationCert, s.handleInstallCert)
	s.routeOOB(route)
	return mux
}

// serve applies the browser and peer checks, runs fn, writes the JSON
// answer and logs one event.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, fn func(http.ResponseWriter, *http.Request, Peer) (any, error)) {
	start := time.Now()
	p, ok := PeerOf(r.Context())
	var out any
	var err error
	switch {
	case !ok:
		err = herr(http.StatusForbidden, "peer credentials unavailable", nil)
	case r.Header.Get("Origin") != "" || r.Header.Get("Referer") != "" || r.Header.Get("Sec-Fetch-Site") != "":
		// A browser is talking to us (DNS rebinding / CSRF): refuse.
		err = herr(http.StatusForbidden, "browser requests are refused", nil)
	case r.Host != Host:
		err = herr(http.StatusForbidden, "bad Host header", nil)
	default:
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		out, err = fn(w, r, p)
	}
	status := http.StatusOK
	if err != nil {
		var he *httpError
		if !errors.As(err, &he) {
			he = herr(http.StatusInternalServerError, "internal error", err)
		}
		status = he.status
		out = ErrorResponse{Error: he.msg, ASMStatusCode: he.asm, ClientErrorCode: he.client}
		if he.err != nil {
			s.log.Warn("local api error", "path", r.URL.Path, "uid", p.UID, "err", he.err.Error())
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if raw, ok := out.(json.RawMessage); ok {
		_, _ = w.Write(raw)
	} else {
		_ = json.NewEncoder(w).Encode(out)
	}
	s.log.Info("local api request", "method", r.Method, "path", r.URL.Path, "uid", p.UID, "pid", p.PID,
		"status", status, "duration", time.Since(start))
}

// decode reads a JSON body strictly (unknown fields and trailing data refused).
func decode(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return herr(http.StatusRequestEntityTooLarge, "body too large", nil)
	}
	if err != nil {
		return herr(http.StatusBadRequest, "body unreadable", err)
	}
	// Anything after the value — another value or a stray '}' — is refused.
	err = strictjson.Unmarshal(b, v)
	if errors.Is(err, strictjson.ErrTrailingData) {
		return herr(http.StatusBadRequest, "trailing data after JSON body", nil)
	}
	if err != nil {
		return herr(http.StatusBadRequest, "bad JSON body: "+err.Error(), nil)
	}
	return nil
}

func caller(p Peer) authr.Caller { return authr.LocalCaller(p.UID) }

// handleASM runs one ASM request (UAF ASM API §4) for the peer.
func (s *Server) handleASM(_ http.ResponseWriter, r *http.Request, p Peer) (any, error) {
	var call ASMCall
	if err := decode(r, &call); err != nil {
		return nil, err
	}
	req := call.Request
	if req.ASMVersion != nil && *req.ASMVersion != uaf.Version11 {
		return asm.Response{StatusCode: uaf.ASMError}, nil
	}
	if req.RequestType != asm.GetInfo && req.AuthenticatorIndex != nil && *req.AuthenticatorIndex != 0 {
		return asm.Response{StatusCode: uaf.ASMError}, nil
	}
	c := caller(p)
	a := s.o.Authenticator
	var data any
	var err error
	argErr := func(v any) error {
		if e := strictjson.Unmarshal(req.Args, v); e != nil {
			return herr(http.StatusBadRequest, "bad args: "+e.Error(), nil)
		}
		return nil
	}
	switch req.RequestType {
	case asm.GetInfo:
		data = asm.GetInfoOut{Authenticators: []asm.AuthenticatorInfo{a.Info(c)}}
	case asm.Register:
		var in asm.RegisterIn
		if e := argErr(&in); e != nil {
			return nil, e
		}
		data, err = a.Register(c, in, []byte(call.PIN))
	case asm.Authenticate:
		var in asm.AuthenticateIn
		if e := argErr(&in); e != nil {
			return nil, e
		}
		data, err = a.Authenticate(c, in, []byte(call.PIN))
	case asm.Deregister:
		var in asm.DeregisterIn
		if e := argErr(&in); e != nil {
			return nil, e
		}
		err = a.Deregister(c, in)
	case asm.GetRegistrations:
		data, err = a.Registrations(c)
	default:
		return nil, herr(http.StatusBadRequest, "unknown requestType", nil)
	}
	if err != nil {
		st := authr.StatusOf(err)
		s.log.Info("asm request failed", "uid", p.UID, "requestType", req.RequestType, "asmStatus", int(st), "err", err.Error())
		return asm.Response{StatusCode: st}, nil
	}
	resp := asm.Response{StatusCode: uaf.ASMOk}
	if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			return nil, err
		}
		resp.ResponseData = b
	}
	return resp, nil
}

func newSessionID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func clientErr(err error) error {
	var ce *uafclient.Error
	if errors.As(err, &ce) {
		return &httpError{status: http.StatusBadGateway, asm: ce.ASMStatus, client: ce.Code, msg: ce.Error(), err: err}
	}
	return err
}

// handleBegin fetches and checks a request; Dereg is applied at once.
func (s *Server) handleBegin(_ http.ResponseWriter, r *http.Request, p Peer) (any, error) {
	var in BeginRequest
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	// A caller without room is refused before the server is asked for a request (checked
	// again when the session is stored).
	if in.Op != uaf.OpDereg && !s.room(p.UID) {
		return nil, errTooManyPending
	}
	b := s.o.Authenticator.Bind(caller(p))
	pr, err := s.o.Client.Fetch(r.Context(), b, uafclient.FetchOptions{Server: in.Server, Op: in.Op, Context: in.Context, BearerToken: in.BearerToken})
	if err != nil {
		return nil, clientErr(err)
	}
	out := BeginResponse{Op: pr.Op, AppID: pr.AppID, Username: pr.Username, Transaction: pr.TransactionText,
		HasTransaction: pr.Transaction != nil, KeyIDs: pr.KeyIDs, AttestationType: pr.AttestationType}
	if pr.Op == uaf.OpDereg {
		n, err := s.o.Client.Deregister(b, pr)
		if err != nil {
			return nil, clientErr(err)
		}
		out.Deregistered = n
		return out, nil
	}
	id, err := newSessionID()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.roomLocked(p.UID) {
		return nil, errTooManyPending
	}
	s.sessions[id] = &session{uid: p.UID, p: pr, expires: s.o.Now().Add(s.o.SessionTTL)}
	out.Session = id
	return out, nil
}

var errTooManyPending = herr(http.StatusTooManyRequests, "too many pending operations", nil)

// room reports whether uid may begin one more operation.
func (s *Server) room(uid uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.roomLocked(uid)
}

// roomLocked drops expired sessions and checks the bounds, in all and for uid. The caller
// holds s.mu.
func (s *Server) roomLocked(uid uint32) bool {
	now := s.o.Now()
	mine := 0
	for k, v := range s.sessions {
		switch {
		case now.After(v.expires):
			delete(s.sessions, k)
		case v.uid == uid:
			mine++
		}
	}
	return len(s.sessions) < s.o.MaxSessions && mine < s.o.MaxSessionsPerUser
}

// take removes and returns the peer's session id.
func (s *Server) take(id string, uid uint32) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.sessions {
		if subtle.ConstantTimeCompare([]byte(k), []byte(id)) == 1 {
			if v.uid != uid {
				return nil
			}
			delete(s.sessions, k)
			if s.o.Now().After(v.expires) {
				return nil
			}
			return v
		}
	}
	return nil
}

// handleFinish signs (or rejects) and sends the response.
func (s *Server) handleFinish(_ http.ResponseWriter, r *http.Request, p Peer) (any, error) {
	var in FinishRequest
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	sess := s.take(in.Session, p.UID)
	if sess == nil {
		return nil, herr(http.StatusNotFound, "unknown or expired session", nil)
	}
	b := s.o.Authenticator.Bind(caller(p))
	res, err := s.o.Client.Complete(r.Context(), b, sess.p, []byte(in.PIN), in.Confirm)
	out := FinishResponse{}
	if res != nil {
		out.ServerResponse = res.Response
	}
	if err != nil {
		var ce *uafclient.Error
		if !errors.As(err, &ce) {
			return nil, err
		}
		out.ASMStatusCode, out.ClientErrorCode, out.Error = ce.ASMStatus, ce.Code, ce.Error()
		if ce.Response != nil {
			out.ServerResponse = ce.Response
		}
	}
	return out, nil
}

func (s *Server) handleChangePIN(_ http.ResponseWriter, r *http.Request, p Peer) (any, error) {
	var in ChangePINRequest
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	n, err := s.o.Authenticator.ChangePIN(caller(p), []byte(in.OldPIN), []byte(in.NewPIN))
	if err != nil {
		return nil, &httpError{status: http.StatusForbidden, asm: authr.StatusOf(err), msg: fmt.Sprintf("change pin failed after %d keys", n), err: err}
	}
	return ChangePINResponse{Changed: n}, nil
}

func (s *Server) handleMetadata(_ http.ResponseWriter, _ *http.Request, _ Peer) (any, error) {
	b, err := s.o.Authenticator.Metadata()
	if err != nil {
		return nil, err
	}
	return json.RawMessage(b), nil
}

func (s *Server) handleStatus(_ http.ResponseWriter, _ *http.Request, p Peer) (any, error) {
	a := s.o.Authenticator
	recs, err := a.Records(caller(p))
	if err != nil {
		return nil, err
	}
	out := StatusResponse{AAID: a.AAID(), Keys: len(recs)}
	for _, t := range a.AttestationTypes() {
		out.AttestationTypes = append(out.AttestationTypes, t.String())
	}
	if s.o.DAStatus != nil {
		da, err := s.o.DAStatus()
		if err != nil {
			return nil, err
		}
		out.DAFailures, out.DAMaxTries, out.DARemaining, out.InLockout = da.Counter, da.MaxTries, da.Remaining(), da.InLockout
		out.RetryAfterSecs = int64(da.RetryAfter() / time.Second)
	}
	return out, nil
}

func (s *Server) admin(p Peer) error {
	if p.UID == 0 || p.UID == uint32(os.Getuid()) || slices.Contains(s.o.AdminUIDs, p.UID) { //nolint:gosec // uid fits
		return nil
	}
	return &httpError{status: http.StatusForbidden, asm: uaf.ASMAccessDenied, msg: "administrative operation: not allowed for this uid"}
}

func (s *Server) handleGetAK(_ http.ResponseWriter, _ *http.Request, _ Peer) (any, error) {
	pub, err := s.o.Authenticator.AttestationPublicKey()
	if err != nil {
		return nil, err
	}
	if pub == nil {
		return nil, herr(http.StatusNotFound, "no attestation key", nil)
	}
	pemb, err := vendorca.EncodePublicKeyPEM(pub)
	if err != nil {
		return nil, err
	}
	return AttestationKeyResponse{PublicKeyPEM: string(pemb)}, nil
}

func (s *Server) handleCreateAK(_ http.ResponseWriter, r *http.Request, p Peer) (any, error) {
	if err := s.admin(p); err != nil {
		return nil, err
	}
	if err := decode(r, &struct{}{}); err != nil {
		return nil, err
	}
	pub, err := s.o.Authenticator.CreateAttestationKey()
	if err != nil {
		return nil, err
	}
	pemb, err := vendorca.EncodePublicKeyPEM(pub)
	if err != nil {
		return nil, err
	}
	return AttestationKeyResponse{PublicKeyPEM: string(pemb)}, nil
}

func (s *Server) handleInstallCert(_ http.ResponseWriter, r *http.Request, p Peer) (any, error) {
	if err := s.admin(p); err != nil {
		return nil, err
	}
	var in InstallCertRequest
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	if err := s.o.Authenticator.InstallCertificate([]byte(in.CertPEM), []byte(in.RootPEM)); err != nil {
		return nil, herr(http.StatusBadRequest, err.Error(), nil)
	}
	return struct{}{}, nil
}
