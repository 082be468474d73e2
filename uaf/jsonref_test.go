package uaf

// The schema checker as it was before the single-pass scanner of json.go: kept as the
// reference of FuzzSchemaCheckEquivalent, which requires both to accept and refuse the same
// inputs with the same errors.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// members splits a JSON object into its members, refusing duplicates.
func refMembers(raw []byte, path string) (keys []string, vals map[string]json.RawMessage, err error) {
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
func refElements(raw []byte, path string, max int) ([]json.RawMessage, error) {
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

func (s *jschema) refCheck(raw []byte, path string) error {
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
		keys, vals, err := refMembers(raw, path)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if s.refField(k) != nil {
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
			if err := f.s.refCheck(v, path+"."+f.name); err != nil {
				return err
			}
		}
	case jArray:
		if c != '[' {
			return jsonErr(path, "want %s", kindNames[s.kind])
		}
		els, err := refElements(raw, path, s.max)
		if err != nil {
			return err
		}
		if len(els) < s.min {
			return contentErr(ErrLength, "%s: fewer than %d elements", path, s.min)
		}
		for i, e := range els {
			if err := s.elem.refCheck(e, path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *jschema) refField(name string) *jfield {
	for i := range s.fields {
		if s.fields[i].name == name {
			return &s.fields[i]
		}
	}
	return nil
}

// single returns the one JSON value in data, refusing invalid UTF-8, inputs
// larger than max and trailing data.
func refSingle(data []byte, max int, what string) (json.RawMessage, error) {
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
func refDecodeStrict(data []byte, max int, what string, s *jschema, v any) error {
	raw, err := refSingle(data, max, what)
	if err != nil {
		return err
	}
	if err := s.refCheck(raw, what); err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return contentErr(ErrMalformedJSON, "%s: %v", what, err)
	}
	return nil
}

// FuzzSchemaCheckEquivalent requires the single-pass checker (json.go) and the reference
// checker above to accept and refuse the same inputs with the same error text, for every
// top-level schema the codec uses.
func FuzzSchemaCheckEquivalent(f *testing.F) {
	v := loadVectors(f)
	for _, m := range []any{v.Reg, v.Auth} {
		b, _ := json.Marshal(m)
		f.Add(b)
		b, _ = json.Marshal([]any{m})
		f.Add(b)
	}
	f.Add([]byte(goodReg))
	f.Add([]byte(`{"header":{"upv":{"major":1,"minor":1},"op":"Auth","op":"x","OP":1},"fcParams":"\u0041","assertions":[]}`))
	f.Add([]byte(`{"uafResponse":"[\"x\"]","context":"{\"a\":1}"}`))
	f.Add([]byte(`{"statusCode":1200,"additionalTokens":[{"type":"x","value":""}],"Description":"d"}`))
	f.Add([]byte(`{"appID":"a","challenge":"c\ud800","facetID":"f","channelBinding":{"cid_pubkey":"k","x":[1,{"y":[]}]}}`))
	schemas := []*jschema{schemaRegResponse, schemaAuthResponse, schemaRegRequest, schemaAuthRequest, schemaDeregRequest,
		schemaFCParams, schemaSendUAFResponse, schemaGetUAFRequest, schemaReturnRequest, schemaServerResponse,
		schemaHeader, schemaPolicy, arr(schemaHeader, 1, 2)}
	f.Fuzz(func(t *testing.T, b []byte) {
		raw, err1 := single(b, MaxMessageSize, "x")
		ref, err2 := refSingle(b, MaxMessageSize, "x")
		if fmt.Sprint(err1) != fmt.Sprint(err2) || !bytes.Equal(bytes.TrimSpace(raw), bytes.TrimSpace(ref)) {
			t.Fatalf("single: %v / %v", err1, err2)
		}
		if err1 != nil {
			return
		}
		for i, s := range schemas {
			e1, e2 := s.check(raw, "x"), s.refCheck(ref, "x")
			if fmt.Sprint(e1) != fmt.Sprint(e2) {
				t.Fatalf("schema %d: new %v, reference %v", i, e1, e2)
			}
		}
		if raw[0] == '{' {
			k1, v1, e1 := members(raw, "x")
			k2, v2, e2 := refMembers(ref, "x")
			if fmt.Sprint(e1) != fmt.Sprint(e2) || fmt.Sprint(k1) != fmt.Sprint(k2) || len(v1) != len(v2) {
				t.Fatalf("members: %v %v / %v %v", k1, e1, k2, e2)
			}
			for k := range v1 {
				if !bytes.Equal(bytes.TrimSpace(v1[k]), bytes.TrimSpace(v2[k])) {
					t.Fatalf("members %q: %s / %s", k, v1[k], v2[k])
				}
			}
		}
		if raw[0] == '[' {
			l1, e1 := elements(raw, "x", 3)
			l2, e2 := refElements(ref, "x", 3)
			if fmt.Sprint(e1) != fmt.Sprint(e2) || len(l1) != len(l2) {
				t.Fatalf("elements: %v / %v", e1, e2)
			}
		}
	})
}

// BenchmarkSchemaCheck compares the single-pass checker with the reference on a
// registration response message (the codec's largest hot-path input).
func BenchmarkSchemaCheck(b *testing.B) {
	v := loadVectors(b)
	v.Reg.Header.UPV = Version11
	msg, _ := json.Marshal(v.Reg)
	b.Run("impl=scanner", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := schemaRegResponse.check(msg, "x"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=reference", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := schemaRegResponse.refCheck(msg, "x"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
