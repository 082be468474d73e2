package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/fidoserver/hwfido/server/callerauth"
)

// CallerAuthenticator identifies the caller of a protected endpoint.
type CallerAuthenticator interface {
	Authenticate(r *http.Request) (callerauth.Caller, error)
}

// UAFService is the FIDO UAF protocol service. Bodies are passed undecoded: parsing them is
// protocol work. Results are JSON-marshalable protocol objects; UAF outcomes travel in-band
// in them (statusCode), so an error means a transport-level problem: an error with an
// HTTPStatus method chooses its status, an outage maps to 503, anything else to 500.
type UAFService interface {
	// Request answers a GetUAFRequest for op ("Reg", "Auth", "Dereg"). caller is nil for an
	// anonymous caller.
	Request(ctx context.Context, op string, body []byte, caller *callerauth.Caller) (any, error)
	// Respond processes a SendUAFResponse for op ("Reg" or "Auth") and returns the
	// ServerResponse.
	Respond(ctx context.Context, op string, body []byte) (any, error)
	// Facets returns the TrustedFacets document.
	Facets() any
	// ConformanceGet and ConformanceRespond implement the FIDO conformance test API.
	ConformanceGet(ctx context.Context, body []byte) (any, error)
	ConformanceRespond(ctx context.Context, body []byte) (any, error)
}

// HTTPStatuser is implemented by service errors that choose their HTTP status; the message
// of such an error is shown to the client.
type HTTPStatuser interface {
	error
	HTTPStatus() int
}

var ops = map[string]string{"registration": "Reg", "authentication": "Auth", "deregistration": "Dereg"}

func (a *API) uafRoutes(both func(string, func(http.ResponseWriter, *http.Request) error, ...string)) {
	for path, op := range ops {
		both("/nevisfido/uaf/1.1/request/"+path, a.uafRequest(op, op != "Auth"), http.MethodPost)
	}
	both("/nevisfido/uaf/1.1/registration", a.uafRespond("Reg"), http.MethodPost)
	both("/nevisfido/uaf/1.1/authentication", a.uafRespond("Auth"), http.MethodPost)
	both("/nevisfido/uaf/1.1/facets", a.facets, http.MethodGet)
	if a.Conformance {
		both("/get", a.conformance(a.UAF.ConformanceGet), http.MethodPost)
		both("/respond", a.conformance(a.UAF.ConformanceRespond), http.MethodPost)
	}
}

// serviceError renders an error returned by a service.
func (a *API) serviceError(err error) error {
	var hs HTTPStatuser
	if errors.As(err, &hs) {
		return Errorf(hs.HTTPStatus(), hs.Error(), err)
	}
	return a.outage(err)
}

// authenticate identifies the caller; protected endpoints refuse anonymous and bad proofs
// with 401 before reading the body.
func (a *API) authenticate(r *http.Request, required bool) (*callerauth.Caller, error) {
	if a.Callers == nil {
		if required {
			return nil, Errorf(http.StatusUnauthorized, "caller authentication required", nil)
		}
		return nil, nil
	}
	c, err := a.Callers.Authenticate(r)
	switch {
	case err == nil:
		return &c, nil
	case errors.Is(err, callerauth.ErrNoCredentials) && !required:
		return nil, nil
	case errors.Is(err, callerauth.ErrNoCredentials):
		return nil, Errorf(http.StatusUnauthorized, "caller authentication required", err)
	default:
		return nil, Errorf(http.StatusUnauthorized, "invalid caller credentials", err)
	}
}

func (a *API) uafRequest(op string, protected bool) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := requireType(r, TypeUAF, TypeJSON); err != nil {
			return err
		}
		if err := checkAccept(r, TypeUAF, TypeJSON); err != nil {
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
		res, err := a.UAF.Request(r.Context(), op, body, caller)
		if err != nil {
			return a.serviceError(err)
		}
		return writeJSON(w, TypeUAF+";charset=UTF-8", res)
	}
}

func (a *API) uafRespond(op string) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := requireType(r, TypeUAF, TypeJSON); err != nil {
			return err
		}
		if err := checkAccept(r, TypeUAF, TypeJSON); err != nil {
			return err
		}
		body, err := readBody(w, r, a.MaxBody)
		if err != nil {
			return err
		}
		res, err := a.UAF.Respond(r.Context(), op, body)
		if err != nil {
			return a.serviceError(err)
		}
		return writeJSON(w, TypeUAF+";charset=UTF-8", res)
	}
}

func (a *API) facets(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, TypeFacets, a.UAF.Facets())
}

func (a *API) conformance(fn func(context.Context, []byte) (any, error)) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		body, err := readBody(w, r, a.MaxBody)
		if err != nil {
			return err
		}
		res, err := fn(r.Context(), body)
		if err != nil {
			return a.serviceError(err)
		}
		return writeJSON(w, TypeJSON, res)
	}
}
