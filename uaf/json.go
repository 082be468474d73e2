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

// The checker below walks JSON that [single] has already validated (json.Valid), in one
// pass per nesting level, without encoding/json's token API, maps or per-member path
// strings: before it, schema checking was the largest CPU cost of decoding a UAF message
// (docs/bench/uaf.md). It still refuses what the previous checker refused, with the same
// errors (FuzzSchemaCheckEquivalent compares both); defensive bounds checks make it return
// an error, never panic, on input that is not valid JSON.

// jpath is a lazily built member path for error messages (e.g. uafResponse.header.op).
type jpath struct {
	parent *jpath
	name   string // member name; "" for an array element
	idx    int    // array index when name is ""
	root   string // set on the root only
}

func (p *jpath) String() string {
	if p.parent == nil {
		return p.root
	}
	if p.name == "" {
		return p.parent.String() + "[" + strconv.Itoa(p.idx) + "]"
	}
	return p.parent.String() + "." + p.name
}

func (p *jpath) err(format string, args ...any) error { return jsonErr(p.String(), format, args...) }

var errSyntax = errors.New("uaf: malformed json")

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipWS(b []byte, i int) int {
	for i < len(b) && isWS(b[i]) {
		i++
	}
	return i
}

// stringEnd returns the index after the closing quote of the string starting at b[i] ('"')
// and whether it contains escapes.
func stringEnd(b []byte, i int) (int, bool, error) {
	esc := false
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '"':
			return j + 1, esc, nil
		case '\\':
			esc = true
			j++
		}
	}
	return 0, false, errSyntax
}

// valueEnd returns the index after the JSON value starting at b[i] (no leading space).
func valueEnd(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errSyntax
	}
	switch b[i] {
	case '"':
		e, _, err := stringEnd(b, i)
		return e, err
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				e, _, err := stringEnd(b, j)
				if err != nil {
					return 0, err
				}
				j = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errSyntax
	default: // number, true, false, null
		j := i
		for j < len(b) && !isWS(b[j]) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ':' {
			j++
		}
		if j == i {
			return 0, errSyntax
		}
		return j, nil
	}
}

// unquote returns the string value of the JSON string s (quotes included).
func unquote(s []byte, esc bool) (string, error) {
	if !esc {
		return string(s[1 : len(s)-1]), nil
	}
	var v string
	if err := json.Unmarshal(s, &v); err != nil {
		return "", err
	}
	return v, nil
}

// span is one member value or array element of a validated JSON text.
type span struct{ s, e int }

// member is one object member found by forMembers.
type member struct {
	key []byte // raw key, quotes included
	esc bool   // the key has escapes
	val span
}

// forMembers calls fn for each member of the object at b[i] ('{'), in order.
func forMembers(b []byte, i int, fn func(m member) error) (end int, err error) {
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return 0, errSyntax
		}
		ke, esc, err := stringEnd(b, i)
		if err != nil {
			return 0, err
		}
		m := member{key: b[i:ke], esc: esc}
		i = skipWS(b, ke)
		if i >= len(b) || b[i] != ':' {
			return 0, errSyntax
		}
		i = skipWS(b, i+1)
		ve, err := valueEnd(b, i)
		if err != nil {
			return 0, err
		}
		m.val = span{i, ve}
		if err := fn(m); err != nil {
			return 0, err
		}
		i = skipWS(b, ve)
		if i >= len(b) {
			return 0, errSyntax
		}
		if b[i] == '}' {
			return i + 1, nil
		}
		if b[i] != ',' {
			return 0, errSyntax
		}
		i = skipWS(b, i+1)
	}
}

// forElements calls fn for each element of the array at b[i] ('['), in order.
func forElements(b []byte, i int, fn func(n int, v span) error) (end int, err error) {
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for n := 0; ; n++ {
		ve, err := valueEnd(b, i)
		if err != nil {
			return 0, err
		}
		if err := fn(n, span{i, ve}); err != nil {
			return 0, err
		}
		i = skipWS(b, ve)
		if i >= len(b) {
			return 0, errSyntax
		}
		if b[i] == ']' {
			return i + 1, nil
		}
		if b[i] != ',' {
			return 0, errSyntax
		}
		i = skipWS(b, i+1)
	}
}

// members splits a validated JSON object into its members, refusing duplicates.
func members(raw []byte, path string) (keys []string, vals map[string]json.RawMessage, err error) {
	raw = trimWS(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, nil, jsonErr(path, "not an object")
	}
	vals = map[string]json.RawMessage{}
	_, err = forMembers(raw, 0, func(m member) error {
		k, err := unquote(m.key, m.esc)
		if err != nil {
			return jsonErr(path, "invalid member name")
		}
		if _, dup := vals[k]; dup {
			return jsonErr(path+"."+k, "duplicate member")
		}
		keys = append(keys, k)
		vals[k] = raw[m.val.s:m.val.e]
		return nil
	})
	if err != nil {
		if errors.Is(err, errSyntax) {
			return nil, nil, jsonErr(path, "invalid value")
		}
		return nil, nil, err
	}
	return keys, vals, nil
}

// elements splits a validated JSON array into its elements, at most max (0: any).
func elements(raw []byte, path string, max int) ([]json.RawMessage, error) {
	raw = trimWS(raw)
	if len(raw) == 0 || raw[0] != '[' {
		return nil, jsonErr(path, "not an array")
	}
	var out []json.RawMessage
	_, err := forElements(raw, 0, func(n int, v span) error {
		if max > 0 && n >= max {
			return contentErr(ErrTooLarge, "%s: more than %d elements", path, max)
		}
		out = append(out, raw[v.s:v.e])
		return nil
	})
	if err != nil {
		if errors.Is(err, errSyntax) {
			return nil, jsonErr(path, "invalid element")
		}
		return nil, err
	}
	return out, nil
}

func trimWS(b []byte) []byte {
	i, j := 0, len(b)
	for i < j && isWS(b[i]) {
		i++
	}
	for j > i && isWS(b[j-1]) {
		j--
	}
	return b[i:j]
}

func (s *jschema) check(raw []byte, path string) error {
	return s.checkAt(trimWS(raw), &jpath{root: path})
}

// checkAt checks the validated JSON value raw (no surrounding space) against s.
func (s *jschema) checkAt(raw []byte, p *jpath) error {
	if len(raw) == 0 {
		return p.err("empty value")
	}
	c := raw[0]
	switch s.kind {
	case jString:
		if c != '"' {
			return p.err("want %s", kindNames[s.kind])
		}
		e, esc, err := stringEnd(raw, 0)
		if err != nil || e != len(raw) {
			return p.err("invalid string")
		}
		var n int
		if esc {
			v, err := unquote(raw, true)
			if err != nil {
				return p.err("invalid string")
			}
			n = utf8.RuneCountInString(v)
		} else {
			n = utf8.RuneCount(raw[1 : len(raw)-1])
		}
		if n < s.min || (s.max > 0 && n > s.max) {
			return contentErr(ErrLength, "%s: length %d outside %d..%d", p, n, s.min, s.max)
		}
	case jUint:
		if c < '0' || c > '9' {
			return p.err("want %s", kindNames[s.kind])
		}
		var v uint64
		ok := !(len(raw) > 1 && raw[0] == '0') && len(raw) <= 20
		for _, d := range raw {
			if d < '0' || d > '9' {
				ok = false
				break
			}
			nv := v*10 + uint64(d-'0')
			if nv/10 != v { // overflow
				ok = false
				break
			}
			v = nv
		}
		if !ok || v > s.maxUint {
			return p.err("want %s up to %d", kindNames[s.kind], s.maxUint)
		}
	case jBool:
		if string(raw) != "true" && string(raw) != "false" {
			return p.err("want %s", kindNames[s.kind])
		}
	case jObject:
		if c != '{' {
			return p.err("want %s", kindNames[s.kind])
		}
		return s.checkObject(raw, p)
	case jArray:
		if c != '[' {
			return p.err("want %s", kindNames[s.kind])
		}
		return s.checkArray(raw, p)
	}
	return nil
}

// checkObject: members in order (duplicates, case-folded names of unknown members), then
// the schema's fields in schema order — the order of the errors of the previous checker.
func (s *jschema) checkObject(raw []byte, p *jpath) error {
	var buf [16]span
	vals := buf[:0]
	if len(s.fields) > len(buf) {
		vals = make([]span, 0, len(s.fields))
	}
	vals = vals[:len(s.fields)]
	for i := range vals {
		vals[i] = span{-1, -1}
	}
	var unknown []string
	var caseErr error
	_, err := forMembers(raw, 0, func(m member) error {
		var k string
		idx := -1
		if !m.esc {
			name := m.key[1 : len(m.key)-1]
			for i := range s.fields {
				if s.fields[i].name == string(name) {
					idx = i
					break
				}
			}
			if idx >= 0 {
				k = s.fields[idx].name
			} else {
				k = string(name)
			}
		} else {
			var err error
			if k, err = unquote(m.key, true); err != nil {
				return p.err("invalid member name")
			}
			for i := range s.fields {
				if s.fields[i].name == k {
					idx = i
					break
				}
			}
		}
		if idx >= 0 {
			if vals[idx].s >= 0 {
				return jsonErr(p.String()+"."+k, "duplicate member")
			}
			vals[idx] = m.val
			return nil
		}
		for _, u := range unknown {
			if u == k {
				return jsonErr(p.String()+"."+k, "duplicate member")
			}
		}
		unknown = append(unknown, k)
		if caseErr == nil {
			for _, f := range s.fields {
				if strings.EqualFold(f.name, k) {
					caseErr = jsonErr(p.String()+"."+k, "member name differs from %q only in case", f.name)
					break
				}
			}
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, errSyntax) {
			return p.err("invalid value")
		}
		return err
	}
	if caseErr != nil {
		return caseErr
	}
	for i := range s.fields {
		f := &s.fields[i]
		v := vals[i]
		if v.s < 0 {
			if f.req {
				return jsonErr(p.String()+"."+f.name, "missing")
			}
			continue
		}
		if err := f.s.checkAt(raw[v.s:v.e], &jpath{parent: p, name: f.name}); err != nil {
			return err
		}
	}
	return nil
}

// checkArray: the element count bounds first, then each element in order.
func (s *jschema) checkArray(raw []byte, p *jpath) error {
	n := 0
	_, err := forElements(raw, 0, func(i int, _ span) error {
		if s.max > 0 && i >= s.max {
			return contentErr(ErrTooLarge, "%s: more than %d elements", p, s.max)
		}
		n++
		return nil
	})
	if err != nil {
		if errors.Is(err, errSyntax) {
			return p.err("invalid element")
		}
		return err
	}
	if n < s.min {
		return contentErr(ErrLength, "%s: fewer than %d elements", p, s.min)
	}
	_, err = forElements(raw, 0, func(i int, v span) error {
		return s.elem.checkAt(raw[v.s:v.e], &jpath{parent: p, idx: i})
	})
	return err
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
	if json.Valid(data) {
		return trimWS(data), nil
	}
	// Refused: let the decoder say whether the value or what follows it is wrong.
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, jsonErr(what, "invalid json")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, jsonErr(what, "trailing data")
	}
	return nil, jsonErr(what, "invalid json")
}

// decodeStrict checks data against s and unmarshals it into v.
func decodeStrict(data []byte, max int, what string, s *jschema, v any) error {
	raw, err := single(data, max, what)
	if err != nil {
		return err
	}
	return decodeChecked(raw, what, s, v)
}

// decodeChecked is decodeStrict for a value [single] already accepted.
func decodeChecked(raw []byte, what string, s *jschema, v any) error {
	if err := s.check(raw, what); err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return contentErr(ErrMalformedJSON, "%s: %v", what, err)
	}
	return nil
}
