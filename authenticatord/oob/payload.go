package oob

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/fidoserver/hwfido/internal/strictjson"
	"github.com/fidoserver/hwfido/uaf"
)

// Limits of the parsers. A payload with a JWE for a P-256 key and a few
// extra keys is under 2 KiB; the limits leave room without letting a QR
// code, link or push message make the daemon allocate much.
const (
	// MaxPayload bounds the payload JSON (and, base64url-encoded, links).
	MaxPayload = 16 << 10
	// MaxToken bounds the redeem token (ours: 43 characters).
	MaxToken = 512
	// MaxURL bounds redeem_url.
	MaxURL = 2048
	// MaxExtra bounds the number of extra keys in nma_data.
	MaxExtra = 32
)

// Content types of nma_data (docs/oob.md "Payload").
const (
	ContentJSON = "application/json"
	ContentJOSE = "application/jose"
)

// Version is the only nma_data_version.
const Version = "1"

// LinkParam is the query parameter of a link that carries the payload.
const LinkParam = "dispatchTokenResponse"

// RedeemPathPrefix is the path prefix of every redeem URL; the operation
// follows it.
const RedeemPathPrefix = "/nevisfido/token/redeem/"

// ErrInvalid is wrapped by every parse error of this package.
var ErrInvalid = errors.New("oob: invalid out-of-band payload")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// Payload is the out-of-band payload the server hands to a dispatcher
// (nevisFIDO API §5.1, docs/oob.md): nma_data is either the redeem data
// (application/json) or a compact JWE of it (application/jose).
type Payload struct {
	// ContentType is [ContentJSON] or [ContentJOSE].
	ContentType string
	// Data is the clear redeem data ([ContentJSON]); nil for [ContentJOSE].
	Data *RedeemData
	// JWE is the compact JWE ([ContentJOSE]); empty for [ContentJSON].
	JWE string
}

// wirePayload is the JSON form.
type wirePayload struct {
	Data        json.RawMessage `json:"nma_data"`
	ContentType string          `json:"nma_data_content_type"`
	Version     string          `json:"nma_data_version"`
}

// ParsePayload decodes the payload JSON of a push message (or the decoded
// body of a QR code or link) strictly: at most [MaxPayload] bytes, exactly
// one JSON object with the three nma_data_* keys (no others, no
// duplicates), version "1", and nma_data that matches the content type.
func ParsePayload(b []byte) (*Payload, error) {
	if len(b) > MaxPayload {
		return nil, invalid("payload larger than %d bytes", MaxPayload)
	}
	var w wirePayload
	if err := strictDecode(b, &w, 3); err != nil {
		return nil, err
	}
	if w.Version != Version {
		return nil, invalid("nma_data_version %q", w.Version)
	}
	if len(w.Data) == 0 {
		return nil, invalid("nma_data missing")
	}
	switch w.ContentType {
	case ContentJSON:
		d, err := ParseRedeemData(w.Data)
		if err != nil {
			return nil, err
		}
		return &Payload{ContentType: ContentJSON, Data: d}, nil
	case ContentJOSE:
		var s string
		if err := json.Unmarshal(w.Data, &s); err != nil {
			return nil, invalid("application/jose nma_data is not a string")
		}
		if strings.Count(s, ".") != 4 || strings.ContainsAny(s, " \t\r\n") {
			return nil, invalid("nma_data is not a compact JWE")
		}
		return &Payload{ContentType: ContentJOSE, JWE: s}, nil
	}
	return nil, invalid("nma_data_content_type %q", w.ContentType)
}

// strictDecode decodes one JSON object into v refusing unknown fields,
// duplicate keys (counted against maxKeys top-level keys) and trailing data.
func strictDecode(b []byte, v any, maxKeys int) error {
	if err := checkObjectKeys(b, maxKeys); err != nil {
		return err
	}
	if err := strictjson.Unmarshal(b, v); err != nil {
		return invalid("json: %v", err)
	}
	return nil
}

// checkObjectKeys checks that b is a JSON object with at most maxKeys
// distinct top-level keys and no duplicate key.
func checkObjectKeys(b []byte, maxKeys int) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return invalid("not a JSON object: %v", err)
	}
	if m == nil {
		return invalid("not a JSON object")
	}
	if len(m) > maxKeys {
		return invalid("more than %d keys", maxKeys)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil { // {
		return invalid("json: %v", err)
	}
	seen := make(map[string]bool, len(m))
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return invalid("json: %v", err)
		}
		k, _ := t.(string)
		if seen[k] {
			return invalid("duplicate key %q", k)
		}
		seen[k] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return invalid("json: %v", err)
		}
	}
	return nil
}

// RedeemData is nma_data in clear: the token, where to redeem it, and the
// extra keys the relying party put into dispatchInformation.data.
type RedeemData struct {
	Token     string
	RedeemURL string
	// Op is the operation named by RedeemURL's last path segment.
	Op uaf.Operation
	// Server is RedeemURL's scheme, host and the path before
	// [RedeemPathPrefix]: the base URL of the server's UAF API.
	Server string
	// Extra holds the other keys (at most [MaxExtra]) as raw JSON.
	Extra map[string]json.RawMessage
}

var redeemOps = map[string]uaf.Operation{
	"registration":   uaf.OpReg,
	"authentication": uaf.OpAuth,
	"deregistration": uaf.OpDereg,
}

// ParseRedeemData decodes nma_data: a JSON object with a non-empty string
// token (printable ASCII, at most [MaxToken]), a redeem_url that is https
// (http only to a loopback host) with a path ending in
// /nevisfido/token/redeem/<op>, no user info, query or fragment, and at most
// [MaxExtra] other keys. Duplicate keys are refused.
func ParseRedeemData(b []byte) (*RedeemData, error) {
	if len(b) > MaxPayload {
		return nil, invalid("nma_data larger than %d bytes", MaxPayload)
	}
	if err := checkObjectKeys(b, MaxExtra+2); err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, invalid("nma_data: %v", err)
	}
	d := &RedeemData{}
	for k, v := range m {
		switch k {
		case "token":
			if err := json.Unmarshal(v, &d.Token); err != nil {
				return nil, invalid("token is not a string")
			}
		case "redeem_url":
			if err := json.Unmarshal(v, &d.RedeemURL); err != nil {
				return nil, invalid("redeem_url is not a string")
			}
		default:
			if d.Extra == nil {
				d.Extra = map[string]json.RawMessage{}
			}
			d.Extra[k] = v
		}
	}
	if d.Token == "" || len(d.Token) > MaxToken || !printableASCII(d.Token) {
		return nil, invalid("token missing, too long or not printable ASCII")
	}
	op, server, err := CheckRedeemURL(d.RedeemURL)
	if err != nil {
		return nil, err
	}
	d.Op, d.Server = op, server
	return d, nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// CheckRedeemURL validates a redeem URL (see [ParseRedeemData]) and returns
// its operation and the server base URL.
func CheckRedeemURL(s string) (uaf.Operation, string, error) {
	if s == "" || len(s) > MaxURL || !utf8.ValidString(s) {
		return "", "", invalid("redeem_url missing or too long")
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", "", invalid("redeem_url: %v", err)
	}
	if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Opaque != "" || u.Host == "" {
		return "", "", invalid("redeem_url must be a plain absolute URL without user info, query or fragment")
	}
	if u.String() != s {
		// Only the canonical form: what is checked is what is requested,
		// and the server base URL is a prefix of the redeem URL.
		return "", "", invalid("redeem_url is not in canonical form")
	}
	if !SecureURL(u) {
		return "", "", invalid("redeem_url must be https (http only to a loopback host)")
	}
	i := strings.LastIndex(u.Path, RedeemPathPrefix)
	if i < 0 {
		return "", "", invalid("redeem_url path is not …%s<op>", RedeemPathPrefix)
	}
	op, ok := redeemOps[u.Path[i+len(RedeemPathPrefix):]]
	if !ok {
		return "", "", invalid("redeem_url names no known operation")
	}
	base := *u
	base.Path, base.RawPath = u.Path[:i], ""
	return op, base.String(), nil
}

// SecureURL reports whether u is https, or http to a loopback host
// (the rule uafclient applies to every server URL).
func SecureURL(u *url.URL) bool {
	switch u.Scheme {
	case "https":
		return true
	case "http":
		h := u.Hostname()
		if h == "localhost" {
			return true
		}
		ip := net.ParseIP(h)
		return ip != nil && ip.IsLoopback()
	}
	return false
}

// decodeB64URL decodes Base64URL with or without padding (the contract
// says no padding; padding is tolerated, other characters are not).
func decodeB64URL(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, invalid("not Base64URL: %v", err)
	}
	return b, nil
}

// ParseLink decodes a link "<base>?dispatchTokenResponse=<Base64URL(payload)>"
// (dispatchers link and link-png-qr-code): the base is any absolute URL
// (it only routes the link to this app), the parameter must occur exactly
// once and decode to a payload accepted by [ParsePayload].
func ParseLink(s string) (*Payload, error) {
	if len(s) > 2*MaxPayload || !utf8.ValidString(s) {
		return nil, invalid("link too long")
	}
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return nil, invalid("link: %v", err)
	}
	if u.Scheme == "" {
		return nil, invalid("link is not an absolute URL")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, invalid("link query: %v", err)
	}
	v := q[LinkParam]
	if len(v) != 1 {
		return nil, invalid("link must carry %s exactly once", LinkParam)
	}
	b, err := decodeB64URL(v[0])
	if err != nil {
		return nil, err
	}
	return ParsePayload(b)
}

// ParseText decodes what a QR code carries: a link (link-png-qr-code, see
// [ParseLink]) or Base64URL of the payload JSON (png-qr-code). A bare JSON
// object (a push message pasted by hand) is accepted too.
func ParseText(s string) (*Payload, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return nil, invalid("empty")
	case strings.HasPrefix(s, "{"):
		return ParsePayload([]byte(s))
	case strings.Contains(s, "?"):
		return ParseLink(s)
	}
	if len(s) > 2*MaxPayload {
		return nil, invalid("too long")
	}
	b, err := decodeB64URL(s)
	if err != nil {
		return nil, err
	}
	return ParsePayload(b)
}
