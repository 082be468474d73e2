package httpapi

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/gorilla/mux"
)

// API holds what the handlers need. Fields are set by the server wiring before Router is
// called and not changed afterwards.
type API struct {
	Log *slog.Logger
	// MaxBody bounds every request body.
	MaxBody int64
	// Health lists the dependencies /healthz checks.
	Health []HealthChecker
	// JWKS returns the JSON Web Key Set of the result-token keys.
	JWKS func() ([]byte, error)
	// Unavailable reports whether an error means a dependency outage (503).
	Unavailable func(error) bool
	// Callers identifies the caller of protected endpoints.
	Callers CallerAuthenticator
	// UAF is the FIDO UAF service; nil disables the UAF endpoints.
	UAF UAFService
	// Conformance mounts the FIDO UAF conformance test API (/get, /respond).
	Conformance bool
	// OOB is the out-of-band service set; nil disables its endpoints.
	OOB OOBService
	// Mounts lets other services (FIDO2, out-of-band) add their routes.
	Mounts []func(r *mux.Router)

	statusStreams streamLimiter
}

// Router returns the handler of every route.
func (a *API) Router() http.Handler {
	r := mux.NewRouter()
	r.StrictSlash(false)
	h := func(fn func(http.ResponseWriter, *http.Request) error) http.Handler {
		return Handler{Log: a.Log, Fn: fn}
	}
	// Every path is served with and without a trailing slash (the Nevis SDK uses both).
	both := func(path string, fn func(http.ResponseWriter, *http.Request) error, methods ...string) {
		r.Handle(path, h(fn)).Methods(methods...)
		r.Handle(path+"/", h(fn)).Methods(methods...)
	}
	both("/healthz", a.healthz, http.MethodGet)
	both("/.well-known/jwks.json", a.jwks, http.MethodGet)
	both("/nevisfido/jwks", a.jwks, http.MethodGet)
	if a.UAF != nil {
		a.uafRoutes(both)
	}
	if a.OOB != nil {
		a.oobRoutes(both)
	}
	for _, m := range a.Mounts {
		m(r)
	}
	r.MethodNotAllowedHandler = h(func(w http.ResponseWriter, req *http.Request) error {
		w.Header().Set("Allow", allowed(r, req))
		return Errorf(http.StatusMethodNotAllowed, "method not allowed", nil)
	})
	r.NotFoundHandler = h(func(http.ResponseWriter, *http.Request) error {
		return Errorf(http.StatusNotFound, "not found", nil)
	})
	return r
}

// allowed lists the methods r serves at req's path, for the Allow header of a 405.
func allowed(r *mux.Router, req *http.Request) string {
	var ms []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete} {
		probe := req.Clone(req.Context())
		probe.Method = m
		var match mux.RouteMatch
		if r.Match(probe, &match) && match.MatchErr == nil {
			ms = append(ms, m)
		}
	}
	if len(ms) == 0 {
		return http.MethodPost
	}
	return strings.Join(ms, ", ")
}
