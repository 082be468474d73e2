package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"

	"github.com/fidoserver/hwfido/internal/strictjson"
)

// Media types of the nevisFIDO API.
const (
	TypeUAF    = "application/fido+uaf"
	TypeJSON   = "application/json"
	TypeFacets = "application/fido.trusted-apps+json"
)

// Handler adapts a function that returns an error to http.Handler, rendering errors in one
// place.
type Handler struct {
	Log *slog.Logger
	Fn  func(w http.ResponseWriter, r *http.Request) error
}

// ServeHTTP implements http.Handler.
func (h Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := h.Fn(w, r); err != nil {
		writeError(w, h.Log, r, err)
	}
}

// requireType checks the request Content-Type against the accepted media types (415).
func requireType(r *http.Request, accepted ...string) error {
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return Errorf(http.StatusUnsupportedMediaType, "Content-Type must be "+strings.Join(accepted, " or "), nil)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return Errorf(http.StatusUnsupportedMediaType, "charset must be UTF-8", nil)
	}
	for _, a := range accepted {
		if mt == a {
			return nil
		}
	}
	return Errorf(http.StatusUnsupportedMediaType, "Content-Type must be "+strings.Join(accepted, " or "), nil)
}

// checkAccept answers 406 when the client accepts none of the offered types.
func checkAccept(r *http.Request, offered ...string) error {
	acc := r.Header.Get("Accept")
	if acc == "" {
		return nil
	}
	for _, part := range strings.Split(acc, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if mt == "*/*" || mt == "application/*" {
			return nil
		}
		for _, o := range offered {
			if mt == o {
				return nil
			}
		}
	}
	return Errorf(http.StatusNotAcceptable, "Accept must allow "+strings.Join(offered, " or "), nil)
}

// readBody reads the whole body, at most limit bytes (413 beyond).
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, Errorf(http.StatusRequestEntityTooLarge, "request body too large", nil)
	}
	if err != nil {
		return nil, Errorf(http.StatusBadRequest, "cannot read request body", err)
	}
	return b, nil
}

// decodeStrict decodes one JSON value into v, refusing unknown fields and trailing data.
func decodeStrict(b []byte, v any) error {
	err := strictjson.Unmarshal(b, v)
	if errors.Is(err, strictjson.ErrTrailingData) {
		return Errorf(http.StatusBadRequest, "request body has trailing data", nil)
	}
	if err != nil {
		return Errorf(http.StatusBadRequest, "request body does not match the expected structure", err)
	}
	return nil
}

// writeJSON writes v with the given content type and status 200.
func writeJSON(w http.ResponseWriter, contentType string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-store")
	_, err = w.Write(b)
	return err
}
