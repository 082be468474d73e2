package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"github.com/fidoserver/hwfido/server/callerauth"
	"github.com/fidoserver/hwfido/server/oob"
	"github.com/fidoserver/hwfido/uaf"
)

// TypeJOSE is the media type of compact JWS bodies (dispatch target modification).
const TypeJOSE = "application/jose"

// OOBService is the out-of-band service set (server/oob): token, dispatch, dispatch-target
// and status services. Errors follow the rules of [UAFService].
type OOBService interface {
	CreateToken(ctx context.Context, op uaf.Operation, body []byte, caller *callerauth.Caller) (*oob.TokenResponse, error)
	Dispatch(ctx context.Context, op uaf.Operation, body []byte, caller *callerauth.Caller) (*oob.DispatchResponse, error)
	Redeem(ctx context.Context, op uaf.Operation, body []byte) (*uaf.ReturnUAFRequest, error)
	Status(ctx context.Context, body []byte) (*oob.StatusResponse, error)
	Watch(ctx context.Context, id string) <-chan *oob.StatusResponse
	CreateTarget(ctx context.Context, body []byte, caller *callerauth.Caller) (*oob.CreatedTarget, error)
	Targets(ctx context.Context, username string, caller *callerauth.Caller) (*oob.TargetList, error)
	ModifyTarget(ctx context.Context, id string, body []byte) error
	DeleteTarget(ctx context.Context, id string, body []byte, caller *callerauth.Caller) error
	OpenStream(ctx context.Context, id, bearer string) (<-chan []byte, func(), error)
}

// Stream bounds: a stream is closed after sseMaxLifetime (the client reconnects) and kept
// alive by a comment every sseHeartbeat.
const (
	sseMaxLifetime = 10 * time.Minute
	sseHeartbeat   = 15 * time.Second
)

// Status streams are anonymous (the session id is the credential) and each holds a
// connection, goroutines and ≈ 40 KB while open: at most maxStatusStreamsPerSession per
// session and maxStatusStreams in the process; beyond that 429.
const (
	maxStatusStreamsPerSession = 8
	maxStatusStreams           = 4096
)

// streamLimiter counts the open status streams.
type streamLimiter struct {
	mu    sync.Mutex
	total int
	per   map[string]int
}

// acquire reserves a stream for session id; release must be called when it ends.
func (l *streamLimiter) acquire(id string) (release func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.per == nil {
		l.per = map[string]int{}
	}
	if l.total >= maxStatusStreams || l.per[id] >= maxStatusStreamsPerSession {
		return nil, false
	}
	l.total++
	l.per[id]++
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.total--
		if l.per[id]--; l.per[id] == 0 {
			delete(l.per, id)
		}
	}, true
}

type route func(string, func(http.ResponseWriter, *http.Request) error, ...string)

func (a *API) oobRoutes(both route) {
	for path, op := range ops {
		op := uaf.Operation(op)
		protected := op != uaf.OpAuth
		both("/nevisfido/token/create/"+path, a.oobCreate(op, protected), http.MethodPost)
		both("/nevisfido/token/dispatch/"+path, a.oobDispatch(op, protected), http.MethodPost)
		both("/nevisfido/token/redeem/"+path, a.oobRedeem(op), http.MethodPost)
	}
	// The current path and the one older Nevis releases (and the LTS seed) name.
	for _, base := range []string{"/nevisfido/token/dispatch/targets", "/nevisfido/dispatch/targets"} {
		both(base, a.oobTargets, http.MethodGet, http.MethodPost)
		both(base+"/{id}", a.oobTarget, http.MethodPatch, http.MethodDelete)
		both(base+"/{id}/stream", a.oobStream, http.MethodGet)
	}
	both("/nevisfido/status", a.oobStatus, http.MethodPost)
	both("/nevisfido/status/{id}/events", a.oobStatusEvents, http.MethodGet)
}

func (a *API) oobCreate(op uaf.Operation, protected bool) func(http.ResponseWriter, *http.Request) error {
	return a.oobTokenCall(protected, []string{TypeUAF, TypeJSON}, func(ctx context.Context, body []byte, c *callerauth.Caller) (any, error) {
		return a.OOB.CreateToken(ctx, op, body, c)
	})
}

func (a *API) oobDispatch(op uaf.Operation, protected bool) func(http.ResponseWriter, *http.Request) error {
	return a.oobTokenCall(protected, []string{TypeJSON}, func(ctx context.Context, body []byte, c *callerauth.Caller) (any, error) {
		return a.OOB.Dispatch(ctx, op, body, c)
	})
}

// oobTokenCall is a token service endpoint: the body's media type one of types, a JSON
// answer, the caller identified (required when protected), then call with the body.
func (a *API) oobTokenCall(protected bool, types []string, call func(context.Context, []byte, *callerauth.Caller) (any, error)) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := requireType(r, types...); err != nil {
			return err
		}
		if err := checkAccept(r, TypeJSON); err != nil {
			return err
		}
		caller, err := a.authenticate(r, protected)
		if err != nil {
			return err
		}
		body, err := readBody(w, r, a.MaxBody)
		if err != nil {
			return err
		}
		res, err := call(r.Context(), body, caller)
		if err != nil {
			return a.serviceError(err)
		}
		return writeJSON(w, TypeJSON, res)
	}
}

func (a *API) oobRedeem(op uaf.Operation) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := requireType(r, TypeJSON, TypeUAF); err != nil {
			return err
		}
		if err := checkAccept(r, TypeUAF, TypeJSON); err != nil {
			return err
		}
		body, err := readBody(w, r, a.MaxBody)
		if err != nil {
			return err
		}
		res, err := a.OOB.Redeem(r.Context(), op, body)
		if err != nil {
			return a.serviceError(err)
		}
		return writeJSON(w, TypeUAF+";charset=UTF-8", res)
	}
}

func (a *API) oobTargets(w http.ResponseWriter, r *http.Request) error {
	if r.Method == http.MethodGet {
		caller, err := a.authenticate(r, true)
		if err != nil {
			return err
		}
		res, err := a.OOB.Targets(r.Context(), r.URL.Query().Get("username"), caller)
		if err != nil {
			return a.serviceError(err)
		}
		return writeJSON(w, TypeJSON, res)
	}
	if err := requireType(r, TypeJSON); err != nil {
		return err
	}
	if err := checkAccept(r, TypeJSON); err != nil {
		return err
	}
	caller, err := a.authenticate(r, true)
	if err != nil {
		return err
	}
	body, err := readBody(w, r, a.MaxBody)
	if err != nil {
		return err
	}
	res, err := a.OOB.CreateTarget(r.Context(), body, caller)
	if err != nil {
		return a.serviceError(err)
	}
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", TypeJSON)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusCreated)
	_, err = w.Write(b)
	return err
}

func (a *API) oobTarget(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	var body []byte
	if r.ContentLength != 0 || r.Method == http.MethodPatch {
		if err := requireType(r, TypeJOSE); err != nil {
			return err
		}
		b, err := readBody(w, r, a.MaxBody)
		if err != nil {
			return err
		}
		body = b
	}
	var err error
	if r.Method == http.MethodPatch {
		err = a.OOB.ModifyTarget(r.Context(), id, body)
	} else {
		var caller *callerauth.Caller
		if len(body) == 0 {
			if caller, err = a.authenticate(r, true); err != nil {
				return err
			}
		}
		err = a.OOB.DeleteTarget(r.Context(), id, body, caller)
	}
	if err != nil {
		return a.serviceError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) oobStatus(w http.ResponseWriter, r *http.Request) error {
	if err := requireType(r, TypeJSON); err != nil {
		return err
	}
	if err := checkAccept(r, TypeJSON); err != nil {
		return err
	}
	body, err := readBody(w, r, a.MaxBody)
	if err != nil {
		return err
	}
	res, err := a.OOB.Status(r.Context(), body)
	if err != nil {
		return a.serviceError(err)
	}
	return writeJSON(w, TypeJSON, res)
}

// startSSE prepares w for a Server-Sent Events stream: no write deadline (the stream
// outlives server.write-timeout; sseMaxLifetime bounds it instead).
func startSSE(w http.ResponseWriter) (*http.ResponseController, error) {
	rc := http.NewResponseController(w)
	if err := rc.SetWriteDeadline(time.Time{}); err != nil {
		return nil, Errorf(http.StatusInternalServerError, "streaming not supported", err)
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return nil, err
	}
	return rc, nil
}

// sseLoop writes each value of ch as an event (write), a heartbeat comment every
// sseHeartbeat, and flushes after each, until ch is closed, ctx ends or the client is gone.
func sseLoop[T any](ctx context.Context, w http.ResponseWriter, rc *http.ResponseController, ch <-chan T, write func(T) error) {
	hb := time.NewTicker(sseHeartbeat)
	defer hb.Stop()
	for {
		select {
		case v, ok := <-ch:
			if !ok || write(v) != nil {
				return
			}
		case <-hb.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
				return
			}
		case <-ctx.Done():
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

func (a *API) oobStatusEvents(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	if id == "" || len(id) > 128 {
		return Errorf(http.StatusBadRequest, "bad session id", nil)
	}
	release, ok := a.statusStreams.acquire(id)
	if !ok {
		return Errorf(http.StatusTooManyRequests, "too many open status streams", nil)
	}
	defer release()
	ctx, cancel := context.WithTimeout(r.Context(), sseMaxLifetime)
	defer cancel()
	rc, err := startSSE(w)
	if err != nil {
		return err
	}
	sseLoop(ctx, w, rc, a.OOB.Watch(ctx, id), func(st *oob.StatusResponse) error {
		b, err := json.Marshal(st)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "event: status\ndata: %s\n\n", b)
		return err
	})
	return nil
}

func (a *API) oobStream(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		bearer = ""
	}
	ch, closeFn, err := a.OOB.OpenStream(r.Context(), id, strings.TrimSpace(bearer))
	if err != nil {
		return a.serviceError(err)
	}
	defer closeFn()
	ctx, cancel := context.WithTimeout(r.Context(), sseMaxLifetime)
	defer cancel()
	rc, err := startSSE(w)
	if err != nil {
		return err
	}
	sseLoop(ctx, w, rc, ch, func(msg []byte) error {
		_, err := fmt.Fprintf(w, "event: dispatch\ndata: %s\n\n", msg)
		return err
	})
	return nil
}
