package uafsvc

import (
	"errors"
	"net/http"

	"github.com/fidoserver/hwfido/uaf"
)

// fail returns the refusal of a response check: code is answered in-band (statusCode),
// msg becomes the description.
func fail(code uaf.StatusCode, msg string, err error) error {
	return &uaf.Error{Code: code, Msg: msg, Err: err}
}

// statusOf maps an error of a response check to the statusCode and description answered:
// the one place where refusals become wire codes. Anything that is not a *uaf.Error is an
// internal error and its detail is not sent.
func statusOf(err error) (uaf.StatusCode, string) {
	var e *uaf.Error
	if errors.As(err, &e) {
		return e.Code, e.Code.Text() + ": " + e.Msg
	}
	return uaf.StatusInternalServerError, uaf.StatusInternalServerError.Text()
}

// isRefusal reports whether err is a protocol refusal (answered in-band) rather than a
// dependency failure.
func isRefusal(err error) bool {
	var e *uaf.Error
	return errors.As(err, &e)
}

// httpError is a transport-level refusal of a request (not a UAF outcome): the HTTP layer
// answers its status with its message.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string   { return e.msg }
func (e *httpError) HTTPStatus() int { return e.status }

var errNoCaller = &httpError{http.StatusUnauthorized, "caller authentication required"}

func badRequest(msg string) error { return &httpError{http.StatusBadRequest, msg} }
func forbidden(msg string) error  { return &httpError{http.StatusForbidden, msg} }
