package localapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fidoserver/hwfido/authenticatord/oob"
)

// TestOOBErrStatus: the errors of an OOB implementation map to their HTTP statuses, also
// when wrapped: a full pending list is 429 (not 500), a bad payload 400, an unknown id 404.
func TestOOBErrStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("agent: begin: %w", ErrTooMany), http.StatusTooManyRequests},
		{fmt.Errorf("parse: %w", oob.ErrInvalid), http.StatusBadRequest},
		{ErrNotFound, http.StatusNotFound},
	} {
		var he *httpError
		if err := oobErr(tc.err); !errors.As(err, &he) || he.status != tc.want {
			t.Errorf("oobErr(%v) = %v, want HTTP %d", tc.err, err, tc.want)
		}
	}
}

// TestDecodeStrict: one JSON object, no unknown field, nothing after it, bounded.
func TestDecodeStrict(t *testing.T) {
	for _, tc := range []struct {
		body string
		want int // 0: accepted
	}{
		{`{"session":"x"}`, 0},
		{`{"session":"x"} `, 0},
		{`{"session":"x"}}`, http.StatusBadRequest},
		{`{"session":"x"}]`, http.StatusBadRequest},
		{`{"session":"x"}{}`, http.StatusBadRequest},
		{`{"session":"x","other":1}`, http.StatusBadRequest},
		{`{"session":"` + strings.Repeat("a", 2<<20) + `"}`, http.StatusRequestEntityTooLarge},
	} {
		r := httptest.NewRequest("POST", "/v1/x", strings.NewReader(tc.body))
		r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, 1<<20)
		var v struct {
			Session string `json:"session"`
		}
		err := decode(r, &v)
		var he *httpError
		switch {
		case tc.want == 0 && err != nil:
			t.Errorf("%.40q: %v", tc.body, err)
		case tc.want != 0 && (!errors.As(err, &he) || he.status != tc.want):
			t.Errorf("%.40q: %v, want HTTP %d", tc.body, err, tc.want)
		}
	}
}
