package oob

import (
	"net/http"
)

// Error is a refusal of a request with the HTTP status that reports it; its message is
// shown to the client. httpapi renders it.
type Error struct {
	Status int
	Msg    string
	Err    error
}

// Error implements error.
func (e *Error) Error() string {
	if e.Err != nil {
		return "oob: " + e.Msg + ": " + e.Err.Error()
	}
	return "oob: " + e.Msg
}

// HTTPStatus implements httpapi.HTTPStatuser.
func (e *Error) HTTPStatus() int { return e.Status }

// Unwrap returns the underlying error (logged, never sent).
func (e *Error) Unwrap() error { return e.Err }

func badRequest(msg string, err error) error { return &Error{http.StatusBadRequest, msg, err} }
func unauthorized(msg string, err error) error {
	return &Error{http.StatusUnauthorized, msg, err}
}
func forbidden(msg string) error { return &Error{http.StatusForbidden, msg, nil} }
func notFound(msg string) error  { return &Error{http.StatusNotFound, msg, nil} }
func unprocessable(msg string) error {
	return &Error{http.StatusUnprocessableEntity, msg, nil}
}
