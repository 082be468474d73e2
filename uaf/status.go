package uaf

import (
	"errors"
	"fmt"
	"strconv"
)

// StatusCode is the statusCode of a UAF ServerResponse or ReturnUAFRequest
// (UAF Client-API-Transport §3.1). StatusCode implements error, so
// errors.Is(err, uaf.StatusUnacceptableContent) tests the code an [*Error]
// carries.
type StatusCode int

// Server status codes (UAF Client-API-Transport §3.1.1).
const (
	StatusOK                             StatusCode = 1200
	StatusAccepted                       StatusCode = 1202
	StatusBadRequest                     StatusCode = 1400
	StatusUnauthorized                   StatusCode = 1401
	StatusForbidden                      StatusCode = 1403
	StatusNotFound                       StatusCode = 1404
	StatusRequestTimeout                 StatusCode = 1408
	StatusUnknownAAID                    StatusCode = 1480
	StatusUnknownKeyID                   StatusCode = 1481
	StatusChannelBindingRefused          StatusCode = 1490
	StatusRequestInvalid                 StatusCode = 1491
	StatusUnacceptableAuthenticator      StatusCode = 1492
	StatusRevokedAuthenticator           StatusCode = 1493
	StatusUnacceptableKey                StatusCode = 1494
	StatusUnacceptableAlgorithm          StatusCode = 1495
	StatusUnacceptableAttestation        StatusCode = 1496
	StatusUnacceptableClientCapabilities StatusCode = 1497
	StatusUnacceptableContent            StatusCode = 1498
	StatusInternalServerError            StatusCode = 1500
)

var statusText = map[StatusCode]string{
	StatusOK:                             "OK",
	StatusAccepted:                       "Accepted",
	StatusBadRequest:                     "Bad Request",
	StatusUnauthorized:                   "Unauthorized",
	StatusForbidden:                      "Forbidden",
	StatusNotFound:                       "Not Found",
	StatusRequestTimeout:                 "Request Timeout",
	StatusUnknownAAID:                    "Unknown AAID",
	StatusUnknownKeyID:                   "Unknown KeyID",
	StatusChannelBindingRefused:          "Channel Binding Refused",
	StatusRequestInvalid:                 "Request Invalid",
	StatusUnacceptableAuthenticator:      "Unacceptable Authenticator",
	StatusRevokedAuthenticator:           "Revoked Authenticator",
	StatusUnacceptableKey:                "Unacceptable Key",
	StatusUnacceptableAlgorithm:          "Unacceptable Algorithm",
	StatusUnacceptableAttestation:        "Unacceptable Attestation",
	StatusUnacceptableClientCapabilities: "Unacceptable Client Capabilities",
	StatusUnacceptableContent:            "Unacceptable Content",
	StatusInternalServerError:            "Internal Server Error",
}

// Text returns the specification's description of c ("Unacceptable Content"),
// or "" for an unknown code. It is safe to send to clients.
func (c StatusCode) Text() string { return statusText[c] }

// String returns "1498 Unacceptable Content".
func (c StatusCode) String() string {
	if t := statusText[c]; t != "" {
		return strconv.Itoa(int(c)) + " " + t
	}
	return strconv.Itoa(int(c))
}

// Error implements error.
func (c StatusCode) Error() string { return "uaf: status " + c.String() }

// Error is a UAF protocol error: Code is the status the server answers, Msg a
// lowercase description (never secrets), Err the optional cause.
type Error struct {
	Code StatusCode
	Msg  string
	Err  error
}

// Error returns "uaf: msg: cause".
func (e *Error) Error() string {
	s := "uaf: " + e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is e's StatusCode, or an *Error with the same Code
// (and the same Msg when target.Msg is not empty).
func (e *Error) Is(target error) bool {
	switch t := target.(type) {
	case StatusCode:
		return e.Code == t
	case *Error:
		return e.Code == t.Code && (t.Msg == "" || t.Msg == e.Msg)
	}
	return false
}

// StatusOf returns the StatusCode carried by the first [*Error] (or bare
// StatusCode) in err's chain, StatusOK for nil and StatusInternalServerError
// for any other error.
func StatusOf(err error) StatusCode {
	if err == nil {
		return StatusOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	var c StatusCode
	if errors.As(err, &c) {
		return c
	}
	return StatusInternalServerError
}

// contentErr returns a 1498 error.
func contentErr(cause error, format string, args ...any) *Error {
	return &Error{Code: StatusUnacceptableContent, Msg: fmt.Sprintf(format, args...), Err: cause}
}

// Sentinel causes wrapped by [*Error] values of this package; test with
// errors.Is.
var (
	// ErrMalformedJSON: the JSON is not valid or a member has the wrong type.
	ErrMalformedJSON = errors.New("malformed json")
	// ErrTooLarge: an input exceeds a size bound.
	ErrTooLarge = errors.New("too large")
	// ErrVersion: no message with a supported protocol version, or a duplicate.
	ErrVersion = errors.New("unsupported or duplicate version")
	// ErrTruncated: a TLV length runs past the end of its container.
	ErrTruncated = errors.New("truncated tlv")
	// ErrLeftover: bytes follow the outermost TLV element.
	ErrLeftover = errors.New("leftover bytes")
	// ErrMissingTag: a mandatory tag is absent.
	ErrMissingTag = errors.New("missing tag")
	// ErrDuplicateTag: a tag that may occur once occurs twice.
	ErrDuplicateTag = errors.New("duplicate tag")
	// ErrUnexpectedTag: a tag is not allowed at this place.
	ErrUnexpectedTag = errors.New("unexpected tag")
	// ErrLength: a value has a wrong (fixed or bounded) length.
	ErrLength = errors.New("wrong length")
	// ErrValue: a field holds a value outside its allowed set.
	ErrValue = errors.New("invalid value")
	// ErrUnsupportedAlg: the algorithm or key encoding is not implemented.
	ErrUnsupportedAlg = errors.New("unsupported algorithm")
	// ErrKeyMismatch: a key does not fit the declared algorithm or encoding.
	ErrKeyMismatch = errors.New("key does not fit algorithm")
	// ErrBadSignature: a signature does not verify.
	ErrBadSignature = errors.New("signature verification failed")
	// ErrHashMismatch: a FinalChallengeHash or TransactionContentHash differs.
	ErrHashMismatch = errors.New("hash mismatch")
)

// ErrorCode is the client ErrorCode of the UAF Application API (§3.2.1),
// reported by FIDO clients to applications.
type ErrorCode int

// Client error codes.
const (
	ErrorNoError                            ErrorCode = 0x00
	ErrorWaitUserAction                     ErrorCode = 0x01
	ErrorInsecureTransport                  ErrorCode = 0x02
	ErrorUserCancelled                      ErrorCode = 0x03
	ErrorUnsupportedVersion                 ErrorCode = 0x04
	ErrorNoSuitableAuthenticator            ErrorCode = 0x05
	ErrorProtocolError                      ErrorCode = 0x06
	ErrorUntrustedFacetID                   ErrorCode = 0x07
	ErrorKeyDisappearedPermanently          ErrorCode = 0x09
	ErrorAuthenticatorAccessDenied          ErrorCode = 0x0C
	ErrorInvalidTransactionContent          ErrorCode = 0x0D
	ErrorUserNotResponsive                  ErrorCode = 0x0E
	ErrorInsufficientAuthenticatorResources ErrorCode = 0x0F
	ErrorUserLockout                        ErrorCode = 0x10
	ErrorUserNotEnrolled                    ErrorCode = 0x11
	ErrorUnknown                            ErrorCode = 0xFF
)

// ASMStatus is the statusCode of an ASM response (UAF ASM API §3.1).
type ASMStatus int

// ASM status codes.
const (
	ASMOk                                 ASMStatus = 0x00
	ASMError                              ASMStatus = 0x01
	ASMAccessDenied                       ASMStatus = 0x02
	ASMUserCancelled                      ASMStatus = 0x03
	ASMCannotRenderTransactionContent     ASMStatus = 0x04
	ASMKeyDisappearedPermanently          ASMStatus = 0x09
	ASMAuthenticatorDisconnected          ASMStatus = 0x0B
	ASMUserNotResponsive                  ASMStatus = 0x0E
	ASMInsufficientAuthenticatorResources ASMStatus = 0x0F
	ASMUserLockout                        ASMStatus = 0x10
	ASMUserNotEnrolled                    ASMStatus = 0x11
)

// CmdStatus is the status of an authenticator command response (UAF
// Authenticator Commands §6.3, UAF_CMD_STATUS_*).
type CmdStatus uint16

// Authenticator command status codes.
const (
	CmdOK                             CmdStatus = 0x00
	CmdErrUnknown                     CmdStatus = 0x01
	CmdAccessDenied                   CmdStatus = 0x02
	CmdUserNotEnrolled                CmdStatus = 0x03
	CmdCannotRenderTransactionContent CmdStatus = 0x04
	CmdUserCancelled                  CmdStatus = 0x05
	CmdNotSupported                   CmdStatus = 0x06
	CmdAttestationNotSupported        CmdStatus = 0x07
	CmdParamsInvalid                  CmdStatus = 0x08
	CmdKeyDisappearedPermanently      CmdStatus = 0x09
	CmdTimeout                        CmdStatus = 0x0A
	CmdUserNotResponsive              CmdStatus = 0x0E
	CmdInsufficientResources          CmdStatus = 0x0F
	CmdUserLockout                    CmdStatus = 0x10
)
