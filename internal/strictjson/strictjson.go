// Package strictjson decodes exactly one JSON value into a Go value, refusing object
// fields the value does not declare and anything after the value. It is the one decoder
// of untrusted and configuration JSON in the project; callers map its errors to their
// protocol's status.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// ErrTrailingData says that something follows the JSON value: another value, a stray
// closing bracket or other bytes that are not white space.
var ErrTrailingData = errors.New("trailing data after the JSON value")

// Unmarshal decodes the single JSON value in b into v. It returns json's error for a
// malformed value or an unknown field, and ErrTrailingData when b continues after the
// value.
func Unmarshal(b []byte, v any) error {
	return Decode(bytes.NewReader(b), v)
}

// Decode is Unmarshal reading from r; r's errors (such as *http.MaxBytesError) are
// returned as they are, wrapped.
func Decode(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return ErrTrailingData
	}
	return nil
}
