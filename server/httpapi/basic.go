package httpapi

import (
	"context"
	"net/http"
	"time"
)

// HealthChecker reports whether a dependency is usable.
type HealthChecker interface {
	Name() string
	Check(ctx context.Context) error
}

// CheckFunc adapts a function to HealthChecker.
type CheckFunc struct {
	N string
	F func(ctx context.Context) error
}

// Name implements HealthChecker.
func (c CheckFunc) Name() string { return c.N }

// Check implements HealthChecker.
func (c CheckFunc) Check(ctx context.Context) error { return c.F(ctx) }

type health struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// healthz answers 200 {"status":"ok"} when every dependency is usable and 503 otherwise,
// naming the failing one (without internal detail).
func (a *API) healthz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	h := health{Status: "ok", Checks: map[string]string{}}
	for _, c := range a.Health {
		if err := c.Check(ctx); err != nil {
			h.Status = "unavailable"
			h.Checks[c.Name()] = "unavailable"
			a.Log.Warn("health check failed", "check", c.Name(), "err", err)
		} else {
			h.Checks[c.Name()] = "ok"
		}
	}
	if h.Status != "ok" {
		w.Header().Set("Content-Type", TypeJSON)
		w.Header().Set("Cache-Control", "no-store") // headers set after WriteHeader are lost
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	return writeJSON(w, TypeJSON, h)
}

// jwks serves the public keys that verify result tokens.
func (a *API) jwks(w http.ResponseWriter, r *http.Request) error {
	b, err := a.JWKS()
	if err != nil {
		return a.outage(err)
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "max-age=300")
	_, err = w.Write(b)
	return err
}

// outage maps an HSM or store outage (as classified by API.Unavailable) to 503 and passes
// anything else on (rendered as 500).
func (a *API) outage(err error) error {
	if a.Unavailable != nil && a.Unavailable(err) {
		return Errorf(http.StatusServiceUnavailable, "temporarily unavailable", err)
	}
	return err
}
