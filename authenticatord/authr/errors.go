package authr

import (
	"errors"
	"fmt"

	"github.com/fidoserver/hwfido/authenticatord/keystore"
	"github.com/fidoserver/hwfido/authenticatord/tpm"
	"github.com/fidoserver/hwfido/uaf"
)

// Error is an authenticator failure carrying the ASM status code to report
// (UAF ASM API §3.3.1). errors.Is(err, uaf.ASMUserLockout) does not work on
// plain ints, so compare with [StatusOf].
type Error struct {
	Status uaf.ASMStatus
	Msg    string
	Err    error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return "authr: " + e.Msg + ": " + e.Err.Error()
	}
	return "authr: " + e.Msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Sentinel errors callers branch on; each maps to an ASM status in [StatusOf].
var (
	// ErrBadRequest: malformed or out-of-range arguments (ASM ERROR).
	ErrBadRequest = errors.New("authr: bad request")
	// ErrNoKey: no registration matches (ASM ACCESS_DENIED, as the
	// authenticator Sign command answers for "no matching key handle").
	ErrNoKey = errors.New("authr: no matching registration")
	// ErrAttestationUnavailable: Basic Full was asked for but no attestation
	// certificate is installed.
	ErrAttestationUnavailable = errors.New("authr: attestation type not available")
	// ErrNotAllowed: the caller may not use an administrative operation.
	ErrNotAllowed = errors.New("authr: operation not allowed for this caller")
)

func fail(status uaf.ASMStatus, msg string, err error) error {
	return &Error{Status: status, Msg: msg, Err: err}
}

// StatusOf maps an error to the ASM status code the local API returns: the
// one place where TPM and key-store errors become ASM codes. nil → OK; a
// wrong PIN → ACCESS_DENIED (0x02); TPM lockout → USER_LOCKOUT (0x10); a
// key that no longer loads → KEY_DISAPPEARED_PERMANENTLY (0x09); no slot →
// INSUFFICIENT_AUTHENTICATOR_RESOURCES; unknown key → ACCESS_DENIED;
// anything else → ERROR.
func StatusOf(err error) uaf.ASMStatus {
	if err == nil {
		return uaf.ASMOk
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	switch {
	case errors.Is(err, ErrNoKey), errors.Is(err, keystore.ErrNotFound), errors.Is(err, ErrNotAllowed):
		return uaf.ASMAccessDenied
	case errors.Is(err, tpm.ErrEmptyPIN):
		return uaf.ASMAccessDenied
	}
	switch tpm.StatusOf(err) {
	case tpm.StatusAccessDenied:
		return uaf.ASMAccessDenied
	case tpm.StatusUserLockout:
		return uaf.ASMUserLockout
	case tpm.StatusKeyDisappearedPermanently:
		return uaf.ASMKeyDisappearedPermanently
	case tpm.StatusInsufficientResources:
		return uaf.ASMInsufficientAuthenticatorResources
	case tpm.StatusAuthenticatorDisconnected:
		return uaf.ASMAuthenticatorDisconnected
	}
	return uaf.ASMError
}

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadRequest}, args...)...)
}
