package rpdemo

import (
	"bytes"
	"context"
	"crypto"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fidoserver/hwfido/internal/strictjson"
	"github.com/fidoserver/hwfido/server/callerauth"
)

//go:embed web
var webFS embed.FS

// maxBody bounds every request body the app reads.
const maxBody = 16 << 10

// Options configures [New].
type Options struct {
	Config *Config
	Users  *Users
	// Key is the login service's caller-token signing key.
	Key crypto.Signer
	// Logger receives one event per request and the operation audit trail (default:
	// discard). Passwords, caller tokens, dispatch tokens and session ids are never logged.
	Logger *slog.Logger
	// HTTP is the client for hwfido-server (default: a client without overall timeout;
	// each call is bounded by its context).
	HTTP *http.Client
}

// App is the relying-party demo: password login, out-of-band registration of a phone and
// out-of-band payment confirmation against hwfido-server. It is safe for concurrent use.
type App struct {
	cfg      *Config
	users    *Users
	fido     *Client
	verifier *Verifier
	log      *slog.Logger
	sessions *sessions
	page     *template.Template
	static   http.Handler

	// ctx bounds background watches; cancel and wg stop them at Close.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// followed holds a slot per operation followed (at most maxFollowed).
	followed chan struct{}
}

// New returns an App. Call [App.Close] to stop the operations it follows.
func New(o Options) (*App, error) {
	if o.Config == nil || o.Users == nil || o.Key == nil {
		return nil, errors.New("rpdemo: Config, Users and Key are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.HTTP == nil {
		tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16, ResponseHeaderTimeout: 15 * time.Second,
			IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 10 * time.Second}
		if t := o.Config.BackendTLS; t != nil {
			tc, err := backendTLS(t)
			if err != nil {
				return nil, err
			}
			tr.TLSClientConfig = tc
		}
		o.HTTP = &http.Client{Transport: tr}
	}
	page, err := template.ParseFS(webFS, "web/index.html")
	if err != nil {
		return nil, fmt.Errorf("rpdemo: template: %w", err)
	}
	sub, err := fs.Sub(webFS, "web/static")
	if err != nil {
		return nil, fmt.Errorf("rpdemo: %w", err)
	}
	cfg := o.Config
	fc := &Client{Base: strings.TrimRight(cfg.Server, "/"), HTTP: o.HTTP, Key: o.Key,
		Mint: callerauth.MintOptions{Issuer: cfg.Login.Issuer, Audience: cfg.Login.Audience,
			UsernameClaim: cfg.Login.UsernameClaim, Lifetime: cfg.Login.Lifetime.D()},
		Trusted: cfg.BackendTLS != nil}
	ctx, cancel := context.WithCancel(context.Background())
	pub, _ := url.Parse(cfg.PublicURL)
	return &App{
		cfg: cfg, users: o.Users, fido: fc, log: o.Logger,
		verifier: &Verifier{Client: fc, Issuer: cfg.ResultToken.Issuer, Audience: cfg.ResultToken.Audience},
		sessions: newSessions(pub.Scheme == "https"),
		page:     page, static: http.StripPrefix("/static/", http.FileServer(http.FS(sub))),
		ctx: ctx, cancel: cancel, followed: make(chan struct{}, maxFollowed),
	}, nil
}

// Close stops following operations and waits for the watchers.
func (a *App) Close() {
	a.cancel()
	a.wg.Wait()
}

// Handler returns every route.
func (a *App) Handler() http.Handler {
	m := http.NewServeMux()
	m.Handle("GET /{$}", a.handle(a.index))
	m.Handle("GET /static/", a.static)
	m.Handle("POST /login", a.handle(a.login))
	m.Handle("POST /logout", a.handle(a.logout))
	m.Handle("POST /api/registration", a.handle(a.startRegistration))
	m.Handle("POST /api/payment", a.handle(a.startPayment))
	m.Handle("POST /api/login/qr", a.handle(a.startPhoneLogin))
	m.Handle("POST /api/deregistration", a.handle(a.startDeregistration))
	m.Handle("POST /api/ops/{id}/login", a.handle(a.finishPhoneLogin))
	m.Handle("GET /api/ops/{id}", a.handle(a.opState))
	m.Handle("GET /api/ops/{id}/events", a.handle(a.opEvents))
	return a.middleware(m)
}

// httpError is an error with the status and message the client sees; Err (logged only)
// is the cause.
type httpError struct {
	Code int
	Msg  string
	Err  error
}

func (e *httpError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%d %s: %v", e.Code, e.Msg, e.Err)
	}
	return fmt.Sprintf("%d %s", e.Code, e.Msg)
}

func (e *httpError) Unwrap() error { return e.Err }

func errorf(code int, msg string, err error) error { return &httpError{Code: code, Msg: msg, Err: err} }

// handle adapts an error-returning handler: errors are rendered in one place, as JSON for
// /api/ and as text otherwise; internal errors get a generic message.
func (a *App) handle(fn func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := fn(w, r)
		if err == nil {
			return
		}
		var he *httpError
		if !errors.As(err, &he) {
			he = &httpError{Code: http.StatusInternalServerError, Msg: "internal error", Err: err}
		}
		lvl := slog.LevelInfo
		if he.Code >= 500 {
			lvl = slog.LevelError
		}
		a.log.Log(r.Context(), lvl, "request failed", "method", r.Method, "path", r.URL.Path, "status", he.Code, "err", err.Error())
		if strings.HasPrefix(r.URL.Path, "/api/") {
			writeJSON(w, he.Code, map[string]string{"error": he.Msg})
			return
		}
		http.Error(w, he.Msg, he.Code)
	})
}

// statusRecorder remembers the status for the request log.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// middleware sets the security headers, bounds bodies, refuses cross-site state changes
// (Origin / Sec-Fetch-Site) and logs one line per request.
func (a *App) middleware(next http.Handler) http.Handler {
	pub, _ := url.Parse(a.cfg.PublicURL)
	origin := pub.Scheme + "://" + pub.Host
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		// same-origin, not no-referrer: with no-referrer Chromium sends "Origin: null" on
		// form posts, and the Origin check below needs the real one.
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-store")
		rec := &statusRecorder{ResponseWriter: w}
		r.Body = http.MaxBytesReader(rec, r.Body, maxBody)
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if o := r.Header.Get("Origin"); o != "" && o != origin {
				http.Error(rec, "cross-origin request refused", http.StatusForbidden)
				a.log.Info("request", "method", r.Method, "path", r.URL.Path, "status", http.StatusForbidden, "reason", "origin")
				return
			}
			if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
				http.Error(rec, "cross-site request refused", http.StatusForbidden)
				a.log.Info("request", "method", r.Method, "path", r.URL.Path, "status", http.StatusForbidden, "reason", "sec-fetch-site")
				return
			}
		}
		next.ServeHTTP(rec, r)
		code := rec.code
		if code == 0 {
			code = http.StatusOK
		}
		a.log.Info("request", "method", r.Method, "path", r.URL.Path, "status", code, "duration", time.Since(start))
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// decodeJSON strictly decodes a JSON body (bounded by the middleware) into v.
func decodeJSON(r *http.Request, v any) error {
	if mt := r.Header.Get("Content-Type"); !strings.HasPrefix(mt, "application/json") {
		return errorf(http.StatusUnsupportedMediaType, "Content-Type must be application/json", nil)
	}
	err := strictjson.Decode(r.Body, v)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return errorf(http.StatusRequestEntityTooLarge, "request body too large", err)
	case errors.Is(err, strictjson.ErrTrailingData):
		return errorf(http.StatusBadRequest, "trailing data after the JSON body", nil)
	case err != nil:
		return errorf(http.StatusBadRequest, "malformed JSON body", err)
	}
	return nil
}

type pageData struct {
	Username string
	CSRF     string
	Error    string
}

// index renders the page; a browser without a session gets an anonymous one, whose CSRF
// token protects the login form.
func (a *App) index(w http.ResponseWriter, r *http.Request) error {
	ss := a.sessions.lookup(r)
	if ss == nil {
		ss = a.sessions.create(w, "", nil)
	}
	return a.render(w, http.StatusOK, pageData{Username: a.sessions.user(ss), CSRF: ss.csrf})
}

func (a *App) render(w http.ResponseWriter, code int, d pageData) error {
	var buf bytes.Buffer
	if err := a.page.Execute(&buf, d); err != nil {
		return fmt.Errorf("rpdemo: render: %w", err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
	return nil
}

// login checks the password form and replaces the session by a logged-in one.
func (a *App) login(w http.ResponseWriter, r *http.Request) error {
	// Parse the form first: a body over the bound is 413, not a "bad CSRF token".
	if err := r.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return errorf(http.StatusRequestEntityTooLarge, "request body too large", err)
		}
		return errorf(http.StatusBadRequest, "malformed form", err)
	}
	ss := a.sessions.lookup(r)
	if ss == nil || !checkCSRF(ss, r) {
		return errorf(http.StatusForbidden, "missing or bad CSRF token; reload the page", nil)
	}
	user, pw := r.PostFormValue("username"), r.PostFormValue("password")
	if err := a.users.Check(user, pw); err != nil {
		a.log.Info("audit: login refused", "user", user)
		return a.render(w, http.StatusUnauthorized, pageData{CSRF: ss.csrf, Error: "Wrong username or password."})
	}
	a.sessions.create(w, user, ss)
	a.log.Info("audit: login", "user", user)
	http.Redirect(w, r, "/", http.StatusSeeOther)
	return nil
}

func (a *App) logout(w http.ResponseWriter, r *http.Request) error {
	ss := a.sessions.lookup(r)
	if ss == nil || !checkCSRF(ss, r) {
		return errorf(http.StatusForbidden, "missing or bad CSRF token; reload the page", nil)
	}
	a.sessions.end(w, ss)
	http.Redirect(w, r, "/", http.StatusSeeOther)
	return nil
}

// loggedIn returns the session and user of an API call that needs a login and the CSRF
// token.
func (a *App) loggedIn(r *http.Request, csrf bool) (*session, string, error) {
	ss := a.sessions.lookup(r)
	if ss == nil {
		return nil, "", errorf(http.StatusUnauthorized, "not logged in", nil)
	}
	user := a.sessions.user(ss)
	if user == "" {
		return nil, "", errorf(http.StatusUnauthorized, "not logged in", nil)
	}
	if csrf && !checkCSRF(ss, r) {
		return nil, "", errorf(http.StatusForbidden, "missing or bad CSRF token", nil)
	}
	return ss, user, nil
}

// startResponse is the answer to starting an operation.
type startResponse struct {
	Op             string `json:"op"`
	Via            string `json:"via"`
	DispatchResult string `json:"dispatchResult"`
	// QR is a data: URI of the PNG QR code to scan (via "qr").
	QR          string `json:"qr,omitempty"`
	Transaction string `json:"transaction,omitempty"`
}

// startRegistration dispatches a registration token for the logged-in user as a QR code
// (seeds/oob-registration-uaf.txt steps 4–7).
func (a *App) startRegistration(w http.ResponseWriter, r *http.Request) error {
	ss, user, err := a.loggedIn(r, true)
	if err != nil {
		return err
	}
	ctxJSON, _ := json.Marshal(map[string]string{"username": user})
	return a.start(w, r, ss, "registration", user, "", DispatchRequest{Dispatcher: a.cfg.Dispatcher,
		GetUAFRequest: GetUAFRequest{Op: "Reg", Context: string(ctxJSON)}})
}

type paymentRequest struct {
	Amount string `json:"amount"`
	Payee  string `json:"payee"`
}

var (
	amountRE = regexp.MustCompile(`^[0-9]{1,7}(\.[0-9]{2})?$`)
	payeeRE  = regexp.MustCompile(`^[\p{L}\p{N} .,'&-]{1,60}$`)
)

// startPayment asks the user to confirm a payment on the phone: by push to the dispatch
// target the phone created at registration when there is one, else by QR code
// (seeds/oob-transaction-confirmation-uaf.txt steps 3–5).
func (a *App) startPayment(w http.ResponseWriter, r *http.Request) error {
	ss, user, err := a.loggedIn(r, true)
	if err != nil {
		return err
	}
	var p paymentRequest
	if err := decodeJSON(r, &p); err != nil {
		return err
	}
	p.Payee = strings.TrimSpace(p.Payee)
	if !amountRE.MatchString(p.Amount) || !payeeRE.MatchString(p.Payee) {
		return errorf(http.StatusBadRequest, "amount must be like 12.50 and payee 1..60 letters", nil)
	}
	tx := fmt.Sprintf("Pay %s EUR to %s", p.Amount, p.Payee)
	ctxJSON, _ := json.Marshal(map[string]string{"username": user, "transaction": tx})
	qr := DispatchRequest{Dispatcher: a.cfg.Dispatcher, GetUAFRequest: GetUAFRequest{Op: "Auth", Context: string(ctxJSON)}}
	if id := a.target(r.Context(), user); id != "" {
		// The target's own (push) dispatcher; when the push cannot be delivered (no device
		// listening: dispatchError), the QR code is the fallback.
		info, _ := json.Marshal(map[string]any{"notification": map[string]string{"title": "Confirm payment", "body": tx}})
		push := DispatchRequest{DispatchTargetID: id, DispatchInformation: string(info), GetUAFRequest: qr.GetUAFRequest}
		return a.start(w, r, ss, "payment", user, tx, push, qr)
	}
	return a.start(w, r, ss, "payment", user, tx, qr)
}

// target returns the dispatch target to push to for user, or "" for QR: the first target
// with a push dispatcher the server lists. The server answers the target query only for
// trusted backends (docs/oob.md); for a caller token it refuses, and the payment goes by
// QR code.
func (a *App) target(ctx context.Context, user string) string {
	ts, err := a.fido.Targets(ctx, user)
	if err != nil {
		a.log.Warn("dispatch targets", "user", user, "err", err.Error())
		return ""
	}
	for _, t := range ts {
		if t.Dispatcher != "" && t.Dispatcher != "link" && t.Dispatcher != "png-qr-code" && t.Dispatcher != "link-png-qr-code" {
			return t.ID
		}
	}
	return ""
}

// start dispatches with the first of reqs that is dispatched, records the operation in the
// session and follows it in the background.
func (a *App) start(w http.ResponseWriter, r *http.Request, ss *session, kind, user, tx string, reqs ...DispatchRequest) error {
	return a.startKey(w, r, ss, kind, user, tx, Key{}, reqs...)
}

// startKey is start for an operation on one key (deregistration).
func (a *App) startKey(w http.ResponseWriter, r *http.Request, ss *session, kind, user, tx string, key Key, reqs ...DispatchRequest) error {
	op := map[string]string{"registration": "registration", "payment": "authentication",
		"login": "authentication", "deregistration": "deregistration"}[kind]
	// Room is reserved before the dispatch: once the server has created the token (and
	// perhaps pushed it to the phone), the operation must not be refused.
	select {
	case a.followed <- struct{}{}:
	default:
		return errorf(http.StatusTooManyRequests, "too many operations in progress", nil)
	}
	if !a.sessions.reserveOp(ss) {
		<-a.followed
		return errorf(http.StatusTooManyRequests, "too many operations in progress", nil)
	}
	started := false
	defer func() {
		if !started {
			a.sessions.releaseOp(ss)
			<-a.followed
		}
	}()
	var (
		res *DispatchResponse
		via string
	)
	for _, req := range reqs {
		var err error
		res, err = a.fido.Dispatch(r.Context(), op, user, req)
		if err != nil {
			return errorf(http.StatusBadGateway, "the FIDO server refused the request", err)
		}
		via = "qr"
		if req.DispatchTargetID != "" {
			via = "push"
		}
		a.log.Info("audit: dispatched", "kind", kind, "user", user, "via", via, "dispatchResult", res.DispatchResult)
		if res.DispatchResult == "dispatched" {
			break
		}
	}
	if res.DispatchResult != "dispatched" {
		return errorf(http.StatusBadGateway, "dispatch failed: "+res.DispatchResult, nil)
	}
	out := startResponse{Via: via, DispatchResult: res.DispatchResult, Transaction: tx}
	if via == "qr" {
		png, err := base64.StdEncoding.DecodeString(res.DispatcherInformation.Response)
		if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
			return errorf(http.StatusBadGateway, "the FIDO server sent no QR code", err)
		}
		out.QR = "data:image/png;base64," + base64.StdEncoding.EncodeToString(png)
	}
	o := newOperation(kind, user, res.SessionID, tx, via)
	o.Key = key
	a.sessions.addOp(ss, o)
	started = true
	out.Op = o.ID
	a.wg.Add(1)
	go func() {
		defer func() { <-a.followed }()
		a.follow(o)
	}()
	writeJSON(w, http.StatusOK, out)
	return nil
}

// follow watches the server session until it ends and settles the outcome: success
// counts only with a result token that verifies against the server's JWKS and matches the
// user, operation, session and transaction.
func (a *App) follow(o *operation) {
	defer a.wg.Done()
	ctx, cancel := context.WithTimeout(a.ctx, a.cfg.OperationTimeout.D())
	defer cancel()
	last, err := a.fido.Watch(ctx, o.SessionID, func(s Status) {
		o.update(func(st *OpState) {
			if st.Status != s.Status {
				st.Trail = append(st.Trail, s.Status)
				st.TrailUserIDs = append(st.TrailUserIDs, s.UserID)
			} else if s.UserID != "" {
				st.TrailUserIDs[len(st.TrailUserIDs)-1] = s.UserID
			}
			st.UserID = s.UserID
			st.Status, st.UAFStatusCode, st.ASMStatusCode, st.ClientErrorCode = s.Status, s.UAFStatusCode, s.ASMStatusCode, s.ClientErrorCode
		})
	})
	// settle records the outcome; the browser gets msg, the log also the cause.
	settle := func(outcome, msg string, cause error, c *ResultClaims) {
		attrs := []any{"kind", o.Kind, "user", o.Username, "outcome", outcome, "status", last.Status,
			"uafStatusCode", last.UAFStatusCode, "clientErrorCode", last.ClientErrorCode}
		if cause != nil {
			attrs = append(attrs, "err", cause.Error())
		}
		a.log.Info("audit: operation ended", attrs...) // before the watchers see the outcome
		o.update(func(st *OpState) {
			st.Final, st.Outcome, st.Error = true, outcome, msg
			if c != nil {
				st.Verified, st.TxHash, st.AAID, st.KeyID = true, c.TxHash, c.AAID, c.KeyID
				st.VerifiedUser = c.Username
			}
		})
	}
	switch {
	case err != nil:
		settle("error", "the bank could not follow the operation", err, nil)
	case last.Status != "succeeded":
		settle("failed", "", nil, nil)
	case o.Kind == "deregistration":
		// The server signs no result token for a deregistration (docs/oob.md): the bank
		// checks that the server no longer lists the key (or, for all keys, any key).
		keys, err := a.fido.Keys(ctx, o.Username)
		left := len(keys) > 0
		if o.Key.KeyID != "" {
			left = slices.Contains(keys, o.Key)
		}
		switch {
		case err != nil:
			settle("error", "the bank could not check the FIDO server's registrations", err, nil)
		case left:
			settle("error", "the FIDO server still has the registration", nil, nil)
		default:
			o.update(func(st *OpState) { st.Removed, st.RemovedKeyID = true, o.Key.KeyID })
			settle("succeeded", "", nil, nil)
		}
	default:
		want := Expect{Username: o.Username, Operation: map[string]string{"registration": "Reg", "payment": "Auth", "login": "Auth"}[o.Kind],
			SessionID: o.SessionID, Transaction: o.Transaction}
		if o.Kind == "login" {
			// Usernameless: the token names the user, and it must be the one the
			// server's status names.
			want.AnyUser = true
		}
		c, err := a.verifier.Verify(ctx, last.ResultToken, want)
		if err == nil && o.Kind == "login" && c.Username != last.UserID {
			err = fmt.Errorf("%w: sub %q, but the status names %q", ErrResultToken, c.Username, last.UserID)
		}
		if err != nil {
			settle("error", "the FIDO server's result token did not verify", err, nil)
			return
		}
		settle("succeeded", "", nil, c)
	}
}

// ownOp returns the operation named in the path if the request's session started it. An
// anonymous session sees only its own phone logins; otherwise it is told to log in.
func (a *App) ownOp(r *http.Request) (*operation, error) {
	ss := a.sessions.lookup(r)
	if ss == nil {
		return nil, errorf(http.StatusUnauthorized, "not logged in", nil)
	}
	o := a.sessions.op(ss, r.PathValue("id"))
	if o == nil {
		if a.sessions.user(ss) == "" {
			return nil, errorf(http.StatusUnauthorized, "not logged in", nil)
		}
		return nil, errorf(http.StatusNotFound, "no such operation", nil)
	}
	return o, nil
}

func (a *App) opState(w http.ResponseWriter, r *http.Request) error {
	o, err := a.ownOp(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, o.snapshot())
	return nil
}

// maxStream bounds one browser event stream; the browser reconnects after it.
const maxStream = 10 * time.Minute

// opEvents streams the operation's state as Server-Sent Events (event "state", JSON data)
// until it is final. The browser never talks to hwfido-server: the backend follows the
// server's stream and relays what it has checked.
func (a *App) opEvents(w http.ResponseWriter, r *http.Request) error {
	o, err := a.ownOp(r)
	if err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	// The server's WriteTimeout is for ordinary answers; a stream gets its own bound.
	if err := rc.SetWriteDeadline(time.Now().Add(maxStream + 10*time.Second)); err != nil {
		return fmt.Errorf("rpdemo: event stream: %w", err)
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	timeout := time.NewTimer(maxStream)
	defer timeout.Stop()
	heartbeat := time.NewTicker(15 * time.Second)
	defer heartbeat.Stop()
	st, changed := o.watch()
	send := true
	for {
		if send {
			b, _ := json.Marshal(st)
			if _, err := fmt.Fprintf(w, "event: state\ndata: %s\n\n", b); err != nil {
				return nil
			}
			_ = rc.Flush()
			if st.Final {
				return nil
			}
			send = false
		}
		select {
		case <-changed:
			st, changed = o.watch()
			send = true
		case <-heartbeat.C:
			if _, err := io.WriteString(w, ": keep-alive\n\n"); err != nil {
				return nil
			}
			_ = rc.Flush()
		case <-r.Context().Done():
			return nil
		case <-a.ctx.Done():
			return nil
		case <-timeout.C:
			return nil
		}
	}
}
