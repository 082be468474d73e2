package uaf

import (
	"encoding/base64"
	"encoding/json"
	"strings"
)

// Size bounds for decoding untrusted input.
const (
	// MaxMessageSize bounds a uafRequest/uafResponse string and transport bodies.
	MaxMessageSize = 1 << 20
	// MaxMessages bounds the number of messages (versions) in one array.
	MaxMessages = 8
	// MaxAssertions bounds the assertions of one response message.
	MaxAssertions = 16
	// MaxAssertionLen bounds one base64url assertion string.
	MaxAssertionLen = 64 << 10
	// MaxFCParamsLen bounds the fcParams string.
	MaxFCParamsLen = 8 << 10
	// MaxAppIDLen bounds appID and facetID (UAF Protocol §3.1.2).
	MaxAppIDLen = 512
	// MaxServerDataLen bounds serverData (UAF Protocol §3.1.2).
	MaxServerDataLen = 1536
)

var (
	schemaExtension = obj(req("id", str(1, 32)), req("data", str(0, 4096)), req("fail_if_unknown", boolean()))
	schemaExts      = arr(schemaExtension, 0, 32)
	schemaVersion   = obj(req("major", num(0xFF)), req("minor", num(0xFF)))
	schemaHeader    = obj(req("upv", schemaVersion), req("op", str(1, 16)),
		opt("appID", str(0, MaxAppIDLen)), opt("serverData", str(1, MaxServerDataLen)), opt("exts", schemaExts))
	schemaPNG = obj(req("width", num(0xFFFFFFFF)), req("height", num(0xFFFFFFFF)), req("bitDepth", num(0xFF)),
		req("colorType", num(0xFF)), req("compression", num(0xFF)), req("filter", num(0xFF)),
		req("interlace", num(0xFF)),
		opt("plte", arr(obj(req("r", num(0xFFFF)), req("g", num(0xFFFF)), req("b", num(0xFFFF))), 1, 256)))
	schemaRegAssertion = obj(req("assertionScheme", str(1, 32)), req("assertion", str(1, MaxAssertionLen)),
		opt("tcDisplayPNGCharacteristics", arr(schemaPNG, 0, 16)), opt("exts", schemaExts))
	schemaSignAssertion = obj(req("assertionScheme", str(1, 32)), req("assertion", str(1, MaxAssertionLen)),
		opt("exts", schemaExts))
	// An empty assertions array is well-formed: it is how a client reports a failure (the codes
	// travel in the SendUAFResponse context); the server decides whether such a report is valid.
	schemaRegResponse = obj(req("header", schemaHeader), req("fcParams", str(1, MaxFCParamsLen)),
		req("assertions", arr(schemaRegAssertion, 0, MaxAssertions)))
	schemaAuthResponse = obj(req("header", schemaHeader), req("fcParams", str(1, MaxFCParamsLen)),
		req("assertions", arr(schemaSignAssertion, 0, MaxAssertions)))
	schemaFCParams = obj(req("appID", str(0, MaxAppIDLen)), req("challenge", str(0, 1024)),
		req("facetID", str(0, MaxAppIDLen)),
		req("channelBinding", obj(opt("serverEndPoint", str(0, 0)), opt("tlsServerCertificate", str(0, 0)),
			opt("tlsUnique", str(0, 0)), opt("cid_pubkey", str(0, 0)))))
	schemaMatchCriteria = obj(opt("aaid", arr(str(1, 9), 0, 256)), opt("vendorID", arr(str(1, 4), 0, 256)),
		opt("keyIDs", arr(str(1, 4096), 0, 256)), opt("userVerification", num(0xFFFFFFFF)),
		opt("keyProtection", num(0xFFFF)), opt("matcherProtection", num(0xFFFF)),
		opt("attachmentHint", num(0xFFFFFFFF)), opt("tcDisplay", num(0xFFFF)),
		opt("authenticationAlgorithms", arr(num(0xFFFF), 0, 64)), opt("assertionSchemes", arr(str(1, 32), 0, 16)),
		opt("attestationTypes", arr(num(0xFFFF), 0, 16)), opt("authenticatorVersion", num(0xFFFF)),
		opt("exts", schemaExts))
	schemaPolicy = obj(req("accepted", arr(arr(schemaMatchCriteria, 0, 64), 0, 256)),
		opt("disallowed", arr(schemaMatchCriteria, 0, 1024)))
	schemaRegRequest = obj(req("header", schemaHeader), req("challenge", str(1, 1024)),
		req("username", str(1, 128)), req("policy", schemaPolicy))
	schemaAuthRequest = obj(req("header", schemaHeader), req("challenge", str(1, 1024)),
		opt("transaction", arr(obj(req("contentType", str(1, 64)), req("content", str(1, 1<<20)),
			opt("tcDisplayPNGCharacteristics", schemaPNG)), 0, 16)),
		req("policy", schemaPolicy))
	schemaDeregRequest = obj(req("header", schemaHeader),
		req("authenticators", arr(obj(req("aaid", str(0, 9)), req("keyID", str(0, 4096))), 1, 1024)))
	schemaSendUAFResponse = obj(req("uafResponse", str(1, 0)), opt("context", str(0, 0)))
	schemaGetUAFRequest   = obj(opt("op", str(1, 16)), opt("previousRequest", str(0, 0)), opt("context", str(0, 0)))
	schemaReturnRequest   = obj(req("statusCode", num(0xFFFF)), opt("uafRequest", str(0, 0)), opt("op", str(1, 16)),
		opt("lifetimeMillis", num(1<<53)))
	schemaServerResponse = obj(req("statusCode", num(0xFFFF)), opt("description", str(0, 0)),
		opt("additionalTokens", arr(obj(req("type", str(1, 32)), req("value", str(0, 0))), 0, 64)),
		opt("location", str(0, 0)), opt("postData", str(0, 0)), opt("newUAFRequest", str(0, 0)))
)

// Response is a decoded uafResponse: exactly one of Registration and
// Authentication is set, according to the header's op.
type Response struct {
	Registration   *RegistrationResponse
	Authentication *AuthenticationResponse
}

// Header returns the operation header of the message.
func (r *Response) Header() OperationHeader {
	if r.Registration != nil {
		return r.Registration.Header
	}
	return r.Authentication.Header
}

// Request is a decoded uafRequest: exactly one member is set.
type Request struct {
	Registration   *RegistrationRequest
	Authentication *AuthenticationRequest
	Deregistration *DeregistrationRequest
}

// Header returns the operation header of the message.
func (r *Request) Header() OperationHeader {
	switch {
	case r.Registration != nil:
		return r.Registration.Header
	case r.Authentication != nil:
		return r.Authentication.Header
	}
	return r.Deregistration.Header
}

// splitMessages checks that data is a JSON array of 1..MaxMessages objects
// with a valid header each, refuses duplicate versions and returns the UAF 1.1
// message with its op.
func splitMessages(data []byte, what string, only11 bool) (json.RawMessage, Operation, error) {
	raw, err := single(data, MaxMessageSize, what)
	if err != nil {
		return nil, "", err
	}
	if len(raw) == 0 || raw[0] != '[' {
		return nil, "", jsonErr(what, "not an array")
	}
	msgs, err := elements(raw, what, MaxMessages)
	if err != nil {
		return nil, "", err
	}
	if len(msgs) == 0 {
		return nil, "", contentErr(ErrVersion, "%s: no message", what)
	}
	seen := map[Version]bool{}
	var sel json.RawMessage
	var op Operation
	for i, m := range msgs {
		path := what + "[" + string(rune('0'+i)) + "]"
		if len(m) == 0 || m[0] != '{' {
			return nil, "", jsonErr(path, "not an object")
		}
		_, vals, err := members(m, path)
		if err != nil {
			return nil, "", err
		}
		h, ok := vals["header"]
		if !ok {
			return nil, "", jsonErr(path+".header", "missing")
		}
		if err := schemaHeader.check(h, path+".header"); err != nil {
			return nil, "", err
		}
		var hdr OperationHeader
		if err := json.Unmarshal(h, &hdr); err != nil {
			return nil, "", contentErr(ErrMalformedJSON, "%s.header: %v", path, err)
		}
		if seen[hdr.UPV] {
			return nil, "", contentErr(ErrVersion, "%s: duplicate version %d.%d", path, hdr.UPV.Major, hdr.UPV.Minor)
		}
		if only11 && hdr.UPV != Version11 {
			return nil, "", contentErr(ErrVersion, "%s: version %d.%d was not requested (only 1.1)", path, hdr.UPV.Major, hdr.UPV.Minor)
		}
		seen[hdr.UPV] = true
		switch hdr.Op {
		case OpReg, OpAuth, OpDereg:
		default:
			return nil, "", contentErr(ErrValue, "%s.header.op: unknown operation %q", path, hdr.Op)
		}
		if hdr.UPV == Version11 {
			sel, op = m, hdr.Op
		}
	}
	if sel == nil {
		return nil, "", contentErr(ErrVersion, "%s: no message with version 1.1", what)
	}
	return sel, op, nil
}

// DecodeResponse decodes a uafResponse string (the JSON array of response
// messages) strictly: JSON types of every member, no null, no duplicate
// members, bounded sizes, no trailing data, and one message, of version 1.1
// (the only version a server of this package requests). It returns that
// message; op must be Reg or Auth. All errors are [*Error] with
// StatusUnacceptableContent (1498).
func DecodeResponse(data []byte) (*Response, error) {
	m, op, err := splitMessages(data, "uafResponse", true)
	if err != nil {
		return nil, err
	}
	switch op {
	case OpReg:
		var r RegistrationResponse
		if err := decodeChecked(m, "uafResponse", schemaRegResponse, &r); err != nil {
			return nil, err
		}
		return &Response{Registration: &r}, nil
	case OpAuth:
		var r AuthenticationResponse
		if err := decodeChecked(m, "uafResponse", schemaAuthResponse, &r); err != nil {
			return nil, err
		}
		return &Response{Authentication: &r}, nil
	}
	return nil, contentErr(ErrValue, "uafResponse: op %q has no response", op)
}

// DecodeRequest decodes a uafRequest string (the JSON array of request
// messages) with the same strictness as [DecodeResponse] and returns the UAF
// 1.1 message. An authenticator daemon uses it on server data.
func DecodeRequest(data []byte) (*Request, error) {
	m, op, err := splitMessages(data, "uafRequest", false)
	if err != nil {
		return nil, err
	}
	switch op {
	case OpReg:
		var r RegistrationRequest
		if err := decodeChecked(m, "uafRequest", schemaRegRequest, &r); err != nil {
			return nil, err
		}
		return &Request{Registration: &r}, nil
	case OpAuth:
		var r AuthenticationRequest
		if err := decodeChecked(m, "uafRequest", schemaAuthRequest, &r); err != nil {
			return nil, err
		}
		return &Request{Authentication: &r}, nil
	}
	var r DeregistrationRequest
	if err := decodeChecked(m, "uafRequest", schemaDeregRequest, &r); err != nil {
		return nil, err
	}
	return &Request{Deregistration: &r}, nil
}

// DecodeFinalChallengeParams decodes the fcParams string: base64url (padding
// optional) of a FinalChallengeParams JSON object whose four members must all
// be present with the right types (channelBinding an object of strings).
func DecodeFinalChallengeParams(fcParams string) (*FinalChallengeParams, error) {
	if len(fcParams) > MaxFCParamsLen {
		return nil, contentErr(ErrTooLarge, "fcParams: %d bytes", len(fcParams))
	}
	b, err := DecodeBase64URL(fcParams)
	if err != nil {
		return nil, contentErr(err, "fcParams: not base64url")
	}
	var p FinalChallengeParams
	if err := decodeStrict(b, MaxFCParamsLen, "fcParams", schemaFCParams, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// DecodeBase64URL decodes base64url as UAF uses it: the URL alphabet, padding
// optional but correct when present, no whitespace.
func DecodeBase64URL(s string) ([]byte, error) {
	if strings.HasSuffix(s, "=") {
		return base64.URLEncoding.Strict().DecodeString(s)
	}
	return base64.RawURLEncoding.Strict().DecodeString(s)
}

// EncodeBase64URL encodes b as unpadded base64url.
func EncodeBase64URL(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// DecodeSendUAFResponse decodes a SendUAFResponse HTTP body strictly.
func DecodeSendUAFResponse(data []byte) (*SendUAFResponse, error) {
	var v SendUAFResponse
	if err := decodeStrict(data, 2*MaxMessageSize, "SendUAFResponse", schemaSendUAFResponse, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// DecodeGetUAFRequest decodes a GetUAFRequest HTTP body strictly.
func DecodeGetUAFRequest(data []byte) (*GetUAFRequest, error) {
	var v GetUAFRequest
	if err := decodeStrict(data, MaxMessageSize, "GetUAFRequest", schemaGetUAFRequest, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// DecodeReturnUAFRequest decodes a ReturnUAFRequest HTTP body strictly.
func DecodeReturnUAFRequest(data []byte) (*ReturnUAFRequest, error) {
	var v ReturnUAFRequest
	if err := decodeStrict(data, 2*MaxMessageSize, "ReturnUAFRequest", schemaReturnRequest, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// DecodeServerResponse decodes a ServerResponse HTTP body strictly.
func DecodeServerResponse(data []byte) (*ServerResponse, error) {
	var v ServerResponse
	if err := decodeStrict(data, 2*MaxMessageSize, "ServerResponse", schemaServerResponse, &v); err != nil {
		return nil, err
	}
	return &v, nil
}
