package fido2

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"unicode"

	"github.com/go-webauthn/webauthn/protocol"

	"github.com/fidoserver/hwfido/internal/strictjson"
)

// decodeStrict decodes one JSON value from r's body into v, refusing unknown fields,
// trailing data and bodies over the limit.
func decodeStrict(r *http.Request, v any) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	return decodeStrictBytes(body, v)
}

// readBody reads the (size-limited) body; an oversized body answers 413.
func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &Error{Code: http.StatusRequestEntityTooLarge, Msg: "request body too large", Err: err}
		}
		return nil, badRequest("cannot read request body", err)
	}
	return body, nil
}

func decodeStrictBytes(body []byte, v any) error {
	err := strictjson.Unmarshal(body, v)
	if errors.Is(err, strictjson.ErrTrailingData) {
		return badRequest("malformed request: trailing data after JSON value", err)
	}
	if err != nil {
		return badRequest("malformed request: "+jsonErrorText(err), err)
	}
	return nil
}

// jsonErrorText describes a decoding error without echoing request content at length.
func jsonErrorText(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q must be %s, not %s", te.Field, te.Type.String(), te.Value)
	}
	s := err.Error()
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

// decodeB64URL decodes unpadded (or padded) base64url, refusing the standard alphabet.
func decodeB64URL(s string) ([]byte, error) {
	return base64.RawURLEncoding.Strict().DecodeString(strings.TrimRight(s, "="))
}

// credentialJSON is a ServerPublicKeyCredential as the conformance tool sends it
// (getClientExtensionResults, no rawId) or as a browser's PublicKeyCredential.toJSON()
// produces it (rawId, clientExtensionResults, authenticatorAttachment), plus nevisFIDO's
// userFriendlyName and userAgent. Pointers tell absent from empty.
type credentialJSON struct {
	ID                        *string         `json:"id"`
	RawID                     *string         `json:"rawId"`
	Type                      *string         `json:"type"`
	Response                  *responseJSON   `json:"response"`
	ClientExtensionResults    json.RawMessage `json:"clientExtensionResults"`
	GetClientExtensionResults json.RawMessage `json:"getClientExtensionResults"`
	AuthenticatorAttachment   *string         `json:"authenticatorAttachment"`
	UserFriendlyName          string          `json:"userFriendlyName"`
	UserAgent                 string          `json:"userAgent"`
}

// responseJSON covers both AuthenticatorAttestationResponse and
// AuthenticatorAssertionResponse members (WebAuthn L3 §5.2.1, §5.2.2 JSON forms).
type responseJSON struct {
	ClientDataJSON     *string  `json:"clientDataJSON"`
	AttestationObject  *string  `json:"attestationObject"`
	AuthenticatorData  *string  `json:"authenticatorData"`
	Signature          *string  `json:"signature"`
	UserHandle         *string  `json:"userHandle"`
	Transports         []string `json:"transports"`
	PublicKey          *string  `json:"publicKey"`
	PublicKeyAlgorithm *int64   `json:"publicKeyAlgorithm"`
}

// clientDataJSON holds the members of CollectedClientData (WebAuthn L3 §5.8.1) that are
// checked before go-webauthn sees the response: the challenge finds the session.
type clientDataJSON struct {
	Type         *string `json:"type"`
	Challenge    *string `json:"challenge"`
	Origin       *string `json:"origin"`
	TokenBinding *struct {
		Status string `json:"status"`
	} `json:"tokenBinding"`
}

// parsedCredential is a validated credentialJSON with the decoded members go-webauthn
// verifies and the challenge from clientDataJSON. It is handed to go-webauthn as its
// response structs (see creation and assertion), so the body is decoded once.
type parsedCredential struct {
	id         []byte
	idText     string
	challenge  []byte
	origin     string // clientDataJSON.origin
	name       string
	cdj        []byte
	attObj     []byte // attestation
	transports []string
	authData   []byte // assertion
	sig        []byte
	userHandle []byte
	ext        protocol.AuthenticationExtensionsClientOutputs
	attachment string
}

func requireB64(field string, v *string) ([]byte, error) {
	if v == nil {
		return nil, badRequest(field+" is missing", nil)
	}
	if *v == "" {
		return nil, badRequest(field+" is empty", nil)
	}
	b, err := decodeB64URL(*v)
	if err != nil {
		return nil, badRequest(field+" is not base64url", err)
	}
	if len(b) == 0 {
		return nil, badRequest(field+" is empty", nil)
	}
	return b, nil
}

// parseCredential validates the structure of a result body (FIDO2 conformance
// "ServerPublicKeyCredential" checks) for the given ceremony ("webauthn.create" or
// "webauthn.get") and normalises it for go-webauthn: rawId is id and the extension
// results come from clientExtensionResults or getClientExtensionResults.
func parseCredential(body []byte, ceremony string) (*parsedCredential, error) {
	var c credentialJSON
	if err := decodeStrictBytes(body, &c); err != nil {
		return nil, err
	}
	id, err := requireB64("id", c.ID)
	if err != nil {
		return nil, err
	}
	if c.RawID != nil && *c.RawID != *c.ID {
		return nil, badRequest("rawId does not match id", nil)
	}
	if c.Type == nil {
		return nil, badRequest("type is missing", nil)
	}
	if *c.Type != "public-key" {
		return nil, badRequest(`type is not "public-key"`, nil)
	}
	if c.Response == nil {
		return nil, badRequest("response is missing", nil)
	}
	resp := c.Response
	pc := &parsedCredential{id: id, idText: *c.ID, name: c.UserFriendlyName}
	if pc.cdj, err = requireB64("response.clientDataJSON", resp.ClientDataJSON); err != nil {
		return nil, err
	}
	if ceremony == "webauthn.create" {
		if pc.attObj, err = requireB64("response.attestationObject", resp.AttestationObject); err != nil {
			return nil, err
		}
		pc.transports = resp.Transports
	} else {
		if pc.authData, err = requireB64("response.authenticatorData", resp.AuthenticatorData); err != nil {
			return nil, err
		}
		if pc.sig, err = requireB64("response.signature", resp.Signature); err != nil {
			return nil, err
		}
		if resp.UserHandle != nil && *resp.UserHandle != "" {
			if pc.userHandle, err = decodeB64URL(*resp.UserHandle); err != nil {
				return nil, badRequest("response.userHandle is not base64url", err)
			}
		}
	}
	if pc.challenge, pc.origin, err = clientDataChallenge(pc.cdj, ceremony); err != nil {
		return nil, err
	}
	ext := c.ClientExtensionResults
	if len(ext) == 0 {
		ext = c.GetClientExtensionResults
	}
	if len(ext) == 0 || string(ext) == "null" {
		ext = json.RawMessage("{}")
	}
	if ext[0] != '{' {
		return nil, badRequest("clientExtensionResults is not an object", nil)
	}
	if string(ext) != "{}" {
		if err := json.Unmarshal(ext, &pc.ext); err != nil {
			return nil, badRequest("clientExtensionResults is malformed: "+jsonErrorText(err), err)
		}
	}
	if c.AuthenticatorAttachment != nil {
		pc.attachment = *c.AuthenticatorAttachment
	}
	if len(c.UserFriendlyName) > 128 {
		return nil, badRequest("userFriendlyName is longer than 128 bytes", nil)
	}
	return pc, nil
}

func (pc *parsedCredential) publicKeyCredential() protocol.PublicKeyCredential {
	return protocol.PublicKeyCredential{
		Credential: protocol.Credential{ID: pc.idText, Type: "public-key"}, RawID: pc.id,
		ClientExtensionResults: pc.ext, AuthenticatorAttachment: pc.attachment,
	}
}

// clientDataChallenge checks the clientData members the conformance tool mutates (type,
// challenge, origin presence and types, tokenBinding) and returns the decoded challenge
// and the origin.
func clientDataChallenge(cdj []byte, ceremony string) ([]byte, string, error) {
	var cd clientDataJSON
	dec := json.NewDecoder(bytes.NewReader(cdj))
	if err := dec.Decode(&cd); err != nil {
		return nil, "", badRequest("clientDataJSON is malformed: "+jsonErrorText(err), err)
	}
	switch {
	case cd.Type == nil:
		return nil, "", badRequest("clientDataJSON.type is missing", nil)
	case *cd.Type != ceremony:
		return nil, "", badRequest(fmt.Sprintf("clientDataJSON.type is not %q", ceremony), nil)
	case cd.Origin == nil || *cd.Origin == "":
		return nil, "", badRequest("clientDataJSON.origin is missing or empty", nil)
	case cd.TokenBinding != nil && cd.TokenBinding.Status == "present":
		// WebAuthn L3 §7.1 step 10 / §7.2 step 14 (Level 2): "present" says the TLS
		// connection used Token Binding, which a connection to this server never does.
		return nil, "", badRequest("clientDataJSON.tokenBinding.status is present, but this connection has no token binding", nil)
	}
	ch, err := requireB64("clientDataJSON.challenge", cd.Challenge)
	if err != nil {
		return nil, "", err
	}
	return ch, *cd.Origin, nil
}

// serializedOrigin returns the ASCII serialization of an http(s) origin (RFC 6454 §6.2:
// lower-case scheme and host, the port only when it is not the scheme's default), as
// browsers put it into clientDataJSON.origin. A path other than "/", a query, a fragment
// or user information is an error.
func serializedOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	if err != nil {
		return "", err
	}
	scheme := strings.ToLower(u.Scheme)
	if (scheme != "https" && scheme != "http") || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") ||
		u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", errors.New("not an http(s) origin without path")
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	for _, r := range host {
		if r > unicode.MaxASCII {
			return "", errors.New("host is not ASCII (write an IDN in its xn-- form)")
		}
	}
	if strings.Contains(host, ":") {
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", errors.New("not an IPv6 address")
		}
		host = "[" + a.String() + "]"
	}
	if host == "" {
		return "", errors.New("no host")
	}
	if port != "" {
		return scheme + "://" + host + ":" + port, nil
	}
	return scheme + "://" + host, nil
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// formatAAGUID renders 16 bytes as a UUID string (empty for other lengths).
func formatAAGUID(b []byte) string {
	if len(b) != 16 {
		return ""
	}
	const hexd = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hexd[c>>4], hexd[c&0xf])
	}
	return string(out)
}

// creation parses pc as an attestation response for go-webauthn.
func (pc *parsedCredential) creation() (*protocol.ParsedCredentialCreationData, error) {
	return protocol.CredentialCreationResponse{
		PublicKeyCredential: pc.publicKeyCredential(),
		AttestationResponse: protocol.AuthenticatorAttestationResponse{
			AuthenticatorResponse: protocol.AuthenticatorResponse{ClientDataJSON: pc.cdj},
			AttestationObject:     pc.attObj, Transports: pc.transports,
		},
	}.Parse()
}

// assertion parses pc as an assertion response for go-webauthn.
func (pc *parsedCredential) assertion() (*protocol.ParsedCredentialAssertionData, error) {
	return protocol.CredentialAssertionResponse{
		PublicKeyCredential: pc.publicKeyCredential(),
		AssertionResponse: protocol.AuthenticatorAssertionResponse{
			AuthenticatorResponse: protocol.AuthenticatorResponse{ClientDataJSON: pc.cdj},
			AuthenticatorData:     pc.authData, Signature: pc.sig, UserHandle: pc.userHandle,
		},
	}.Parse()
}
