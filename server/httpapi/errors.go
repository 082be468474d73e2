package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/gorilla/mux"
)

// Error is an error with the HTTP status and the message a client may see. Err, if set, is
// logged but never sent.
type Error struct {
	Status int
	Msg    string
	Err    error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf is a shorthand for &Error{Status: status, Msg: msg, Err: err}.
func Errorf(status int, msg string, err error) error {
	return &Error{Status: status, Msg: msg, Err: err}
}

// problem is the JSON body of an HTTP-level error.
type problem struct {
	Status  int    `json:"status"`
	Error   string `json:"error"`
	Message string `json:"errorMessage"`
}

// writeError renders err: an *Error with its status and message, anything else as 500 with
// a generic message (and logged in full).
func writeError(w http.ResponseWriter, log *slog.Logger, r *http.Request, err error) {
	var he *Error
	if !errors.As(err, &he) {
		he = &Error{Status: http.StatusInternalServerError, Msg: "internal error", Err: err}
	}
	lvl := slog.LevelInfo
	if he.Status >= 500 {
		lvl = slog.LevelError
	}
	log.Log(r.Context(), lvl, "request failed", "method", r.Method, "path", logPath(r), "status", he.Status, "err", he.Error())
	if he.Status == http.StatusMethodNotAllowed && w.Header().Get("Allow") == "" {
		w.Header().Set("Allow", "POST")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(he.Status)
	_ = json.NewEncoder(w).Encode(problem{Status: he.Status, Error: http.StatusText(he.Status), Message: he.Msg})
}

// logPath is the route's template when the request matched one (so identifiers in the path,
// such as a status session id, stay out of the log), else the path itself.
func logPath(r *http.Request) string {
	if rt := mux.CurrentRoute(r); rt != nil {
		if t, err := rt.GetPathTemplate(); err == nil {
			return t
		}
	}
	return r.URL.Path
}
