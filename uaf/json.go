package uaf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// jkind is the JSON type a schema node requires.
type jkind uint8

const (
	jString jkind = iota + 1
	jUint
	jBool
	jObject
	jArray
)

var kindNames = [...]string{jString: "string", jUint: "unsigned integer", jBool: "boolean", jObject: "object", jArray: "array"}

// jfield is one member of an object schema.
type jfield struct {
	name string
	req  bool
	s    *jschema
}

// jschema checks the JSON type of a value before encoding/json sees it, so
// that wrong types, nulls, duplicate members and case-folded member names are
// refused. min/max bound string length (runes) or array length; max 0 means
// unbounded. maxUint bounds numbers.
type jschema struct {
	kind     jkind
	fields   []jfield
	elem     *jschema
	min, max int
	maxUint  uint64
}

func str(min, max int) *jschema { return &jschema{kind: jString, min: min, max: max} }
func num(max uint64) *jschema   { return &jschema{kind: jUint, maxUint: max} }
func boolean() *jschema         { return &jschema{kind: jBool} }
func obj(f ...jfield) *jschema  { return &jschema{kind: jObject, fields: f} }
func arr(e *jschema, min, max int) *jschema {
	return &jschema{kind: jArray, elem: e, min: min, max: max}
}
func req(name string, s *jschema) jfield { return jfield{name: name, req: true, s: s} }
func opt(name string, s *jschema) jfield { return jfield{name: name, s: s} }

func jsonErr(path, format string, args ...any) error {
	return contentErr(ErrMalformedJSON, "%s: %s", path, fmt.Sprintf(format, args...))
}

// members splits a JSON object into its members, refusing duplicates.
func members(raw []byte, path string) (keys []string, vals map[string]json.RawMessage, err error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, nil, jsonErr(path, "not an object")
	}
	vals = map[string]json.RawMessage{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, nil, jsonErr(path, "invalid member name")
		}
		k, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, jsonErr(path+"."+k, "invalid value")
		}
		if _, dup := vals[k]; dup {
			return nil, nil, jsonErr(path+"."+k, "duplicate member")
		}
		keys = append(keys, k)
		vals[k] = v
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return nil, nil, jsonErr(path, "unterminated object")
	}
	return keys, vals, nil
}

// elements splits a JSON array into its elements, at most max (0: any).
func elements(raw []byte, path string, max int) ([]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('[') {
		return nil, jsonErr(path, "not an array")
	}
	var out []json.RawMessage
	for dec.More() {
		if max > 0 && len(out) >= max {
			return nil, contentErr(ErrTooLarge, "%s: more than %d elements", path, max)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, jsonErr(path, "invalid element")
		}
		out = append(out, v)
	}
	if t, err := dec.Token(); err != nil || t != json.Delim(']') {
		return nil, jsonErr(path, "unterminated array")
	}
	return out, nil
}

func (s *jschema) check(raw []byte, path string) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return jsonErr(path, "empty value")
	}
	c := raw[0]
	switch s.kind {
	case jString:
		if c != '"' {
			return jsonErr(path, "want %s", kindNames[s.kind])
		}
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return jsonErr(path, "invalid string")
		}
		n := utf8.RuneCountInString(v)
		if n < s.min || (s.max > 0 && n > s.max) {
			return contentErr(ErrLength, "%s: length %d outside %d..%d", path, n, s.min, s.max)
		}
	case jUint:
		if c < '0' || c > '9' {
			return jsonErr(path, "want %s", kindNames[s.kind])
		}
		v, err := strconv.ParseUint(string(raw), 10, 64)
		if err != nil || v > s.maxUint || (len(raw) > 1 && raw[0] == '0') {
			return jsonErr(path, "want %s up to %d", kindNames[s.kind], s.maxUint)
		}
	case jBool:
		if string(raw) != "true" && string(raw) != "false" {
			return jsonErr(path, "want %s", kindNames[s.kind])
		}
	case jObject:
		if c != '{' {
			return jsonErr(path, "want %s", kindNames[s.kind])
		}
		keys, vals, err := members(raw, path)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if s.field(k) != nil {
				continue
			}
			for _, f := range s.fields {
				if strings.EqualFold(f.name, k) {
					return jsonErr(path+"."+k, "member name differs from %q only in case", f.name)
				}
			}
		}
		for _, f := range s.fields {
			v, ok := vals[f.name]
			if !ok {
				if f.req {
					return jsonErr(path+"."+f.name, "missing")
				}
				continue
			}
			if err := f.s.check(v, path+"."+f.name); err != nil {
				return err
			}
		}
	case jArray:
		if c != '[' {
			return jsonErr(path, "want %s", kindNames[s.kind])
		}
		els, err := elements(raw, path, s.max)
		if err != nil {
			return err
		}
		if len(els) < s.min {
			return contentErr(ErrLength, "%s: fewer than %d elements", path, s.min)
		}
		for i, e := range els {
			if err := s.elem.check(e, path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *jschema) field(name string) *jfield {
	for i := range s.fields {
		if s.fields[i].name == name {
			return &s.fields[i]
		}
	}
	return nil
}

// single returns the one JSON value in data, refusing invalid UTF-8, inputs
// larger than max and trailing data.
func single(data []byte, max int, what string) (json.RawMessage, error) {
	if len(data) > max {
		return nil, contentErr(ErrTooLarge, "%s: %d bytes exceed %d", what, len(data), max)
	}
	if !utf8.Valid(data) {
		return nil, jsonErr(what, "invalid utf-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, jsonErr(what, "invalid json")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, jsonErr(what, "trailing data")
	}
	return raw, nil
}

// decodeStrict checks data against s and unmarshals it into v.
func decodeStrict(data []byte, max int, what string, s *jschema, v any) error {
	raw, err := single(data, max, what)
	if err != nil {
		return err
	}
	if err := s.check(raw, what); err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return contentErr(ErrMalformedJSON, "%s: %v", what, err)
	}
	return nil
}
