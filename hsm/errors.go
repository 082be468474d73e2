package hsm

import (
	"errors"

	"github.com/miekg/pkcs11"
)

// Sentinel errors callers branch on. Errors returned by this package wrap
// one of these (test with errors.Is) and, where a PKCS#11 call failed, also
// the pkcs11.Error return value, so errors.Is(err, pkcs11.Error(pkcs11.CKR_…))
// works as well.
var (
	// ErrUnavailable means the HSM cannot be used right now (device, library
	// or session failure, or a refused PIN). Operations fail fast with it
	// while the token is unhealthy; the server maps it to 503.
	ErrUnavailable = errors.New("hsm: unavailable")
	// ErrBusy means no worker session became free before the context
	// deadline or Config.AcquireTimeout (back-pressure, not an outage).
	ErrBusy = errors.New("hsm: no session available")
	// ErrBadMAC means a MAC tag did not verify.
	ErrBadMAC = errors.New("hsm: bad mac")
	// ErrUnknownKey means no key with the requested kid or version exists.
	ErrUnknownKey = errors.New("hsm: unknown key")
	// ErrNoKey means a key purpose that Open requires has no key in the token.
	ErrNoKey = errors.New("hsm: required key missing")
	// ErrPIN means the token refused the PIN (incorrect, locked, expired,
	// wrong length). It is never retried, to avoid locking the token.
	ErrPIN = errors.New("hsm: pin rejected")
	// ErrConfig means the configuration (URI, PIN source, module path) is
	// invalid.
	ErrConfig = errors.New("hsm: invalid configuration")
	// ErrInsecurePINFile means the PIN file is not a regular file, or is
	// readable or writable by group or others (mode must be 0400 or 0600),
	// or is owned by another user than the process or root.
	ErrInsecurePINFile = errors.New("hsm: insecure pin file")
	// ErrTokenNotFound means no slot holds a token with the configured label
	// or serial.
	ErrTokenNotFound = errors.New("hsm: token not found")
	// ErrKeyPolicy means a private or secret key does not satisfy the
	// custody policy (sensitive, never extractable); see [PolicyError].
	ErrKeyPolicy = errors.New("hsm: key violates policy")
	// ErrSelfTest means the start-up self-test of a key failed.
	ErrSelfTest = errors.New("hsm: self-test failed")
	// ErrModuleConfig means the PKCS#11 module is already initialised in
	// this process with another SOFTHSM2_CONF; SoftHSM reads it only at
	// C_Initialize, so both configurations cannot be used at once.
	ErrModuleConfig = errors.New("hsm: module already initialised with another SOFTHSM2_CONF")
	// ErrClosed means the Token was closed.
	ErrClosed = errors.New("hsm: token closed")
)

// PolicyError describes a key refused by the custody policy. It matches
// ErrKeyPolicy with errors.Is.
type PolicyError struct {
	Label  string // CKA_LABEL of the key
	ID     []byte // CKA_ID of the key
	Reason string // e.g. "CKA_EXTRACTABLE is true"
}

// Error implements error.
func (e *PolicyError) Error() string {
	return "hsm: key " + e.Label + " violates policy: " + e.Reason
}

// Is reports whether target is ErrKeyPolicy.
func (e *PolicyError) Is(target error) bool { return target == ErrKeyPolicy }

// errClass is the recovery class of a PKCS#11 error (reference §3 table).
type errClass int

const (
	classOther   errClass = iota // caller error or unknown: no retry
	classSession                 // discard the session, open a new one, retry once
	classHandle                  // re-login and re-find handles, retry once
	classDevice                  // unhealthy; background re-initialisation
	classPIN                     // unhealthy; never retried
)

func classify(err error) errClass {
	var rv pkcs11.Error
	if !errors.As(err, &rv) {
		return classOther
	}
	switch rv {
	case pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED, pkcs11.CKR_OPERATION_ACTIVE:
		return classSession
	case pkcs11.CKR_USER_NOT_LOGGED_IN, pkcs11.CKR_OBJECT_HANDLE_INVALID, pkcs11.CKR_KEY_HANDLE_INVALID:
		return classHandle
	case pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED, pkcs11.CKR_DEVICE_REMOVED, pkcs11.CKR_TOKEN_NOT_PRESENT,
		pkcs11.CKR_DEVICE_ERROR, pkcs11.CKR_GENERAL_ERROR, pkcs11.CKR_FUNCTION_FAILED, pkcs11.CKR_DEVICE_MEMORY,
		pkcs11.CKR_TOKEN_NOT_RECOGNIZED, pkcs11.CKR_SLOT_ID_INVALID:
		return classDevice
	case pkcs11.CKR_PIN_INCORRECT, pkcs11.CKR_PIN_LOCKED, pkcs11.CKR_PIN_EXPIRED, pkcs11.CKR_PIN_LEN_RANGE,
		pkcs11.CKR_PIN_INVALID:
		return classPIN
	}
	return classOther
}
