package strictjson_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fidoserver/hwfido/internal/strictjson"
)

type msg struct {
	A int    `json:"a"`
	B string `json:"b"`
}

func TestUnmarshal(t *testing.T) {
	for _, c := range []struct {
		in       string
		trailing bool
		ok       bool
	}{
		{`{"a":1,"b":"x"}`, false, true},
		{" {\"a\":1}\n\t ", false, true},
		{`{"a":1,"c":2}`, false, false}, // unknown field
		{`{"a":"1"}`, false, false},     // wrong type
		{`{"a":1`, false, false},        // truncated
		{``, false, false},              // empty
		{`{"a":1}{"a":2}`, true, false}, // second value
		{`{"a":1}}`, true, false},       // stray bracket
		{`{"a":1} x`, true, false},      // garbage
		{`{"a":1} null`, true, false},   // another value
	} {
		var m msg
		err := strictjson.Unmarshal([]byte(c.in), &m)
		if (err == nil) != c.ok {
			t.Errorf("%q: err %v, want ok=%v", c.in, err, c.ok)
		}
		if errors.Is(err, strictjson.ErrTrailingData) != c.trailing {
			t.Errorf("%q: err %v, want trailing=%v", c.in, err, c.trailing)
		}
	}
}

func TestDecodeKeepsReaderErrors(t *testing.T) {
	rec := httptest.NewRecorder()
	r := http.MaxBytesReader(rec, nopCloser{strings.NewReader(`{"b":"` + strings.Repeat("x", 100) + `"}`)}, 10)
	var m msg
	var tooBig *http.MaxBytesError
	if err := strictjson.Decode(r, &m); !errors.As(err, &tooBig) {
		t.Fatalf("Decode over a MaxBytesReader: %v, want *http.MaxBytesError", err)
	}
}

type nopCloser struct{ *strings.Reader }

func (nopCloser) Close() error { return nil }
