package tpm

import (
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// Status is a UAF ASM / authenticator-command status code (UAF 1.1
// asm-api §3.3.1, authnr-cmds §6.3). Only the codes this layer can produce
// are named here.
type Status uint16

// ASM status codes produced by [StatusOf].
const (
	StatusOK                        Status = 0x00
	StatusError                     Status = 0x01
	StatusAccessDenied              Status = 0x02
	StatusKeyDisappearedPermanently Status = 0x09
	StatusAuthenticatorDisconnected Status = 0x0B
	StatusInsufficientResources     Status = 0x0F
	StatusUserLockout               Status = 0x10
)

// String returns the ASM name of s.
func (s Status) String() string {
	switch s {
	case StatusOK:
		return "OK"
	case StatusError:
		return "ERROR"
	case StatusAccessDenied:
		return "ACCESS_DENIED"
	case StatusKeyDisappearedPermanently:
		return "KEY_DISAPPEARED_PERMANENTLY"
	case StatusAuthenticatorDisconnected:
		return "AUTHENTICATOR_DISCONNECTED"
	case StatusInsufficientResources:
		return "INSUFFICIENT_AUTHENTICATOR_RESOURCES"
	case StatusUserLockout:
		return "USER_LOCKOUT"
	}
	return fmt.Sprintf("Status(0x%02x)", uint16(s))
}

// Error implements error so a Status can be a sentinel: errors returned by
// this package wrap one, and errors.Is(err, tpm.StatusUserLockout) works.
func (s Status) Error() string { return "tpm: " + s.String() }

// Sentinel errors callers branch on. Each is a [Status].
var (
	// ErrAccessDenied: the TPM refused the PIN (TPM_RC_AUTH_FAIL/BAD_AUTH);
	// the dictionary-attack counter was incremented.
	ErrAccessDenied error = StatusAccessDenied
	// ErrUserLockout: the TPM is in dictionary-attack lockout
	// (TPM_RC_LOCKOUT); even the correct PIN is refused until the counter
	// decays or the owner resets it.
	ErrUserLockout error = StatusUserLockout
	// ErrKeyDisappeared: the key blob does not load under this TPM's storage
	// root key (integrity/binding failure, e.g. the TPM was cleared).
	ErrKeyDisappeared error = StatusKeyDisappearedPermanently
	// ErrInsufficientResources: the TPM has no free object or session slot.
	ErrInsufficientResources error = StatusInsufficientResources
	// ErrDisconnected: the transport to the TPM failed.
	ErrDisconnected error = StatusAuthenticatorDisconnected
	// ErrClosed is returned by operations on a closed [TPM].
	ErrClosed = errors.New("tpm: closed")
	// ErrInvalidBlob is returned when a stored key blob cannot be decoded.
	ErrInvalidBlob = errors.New("tpm: invalid key blob")
)

// StatusOf maps an error from this package to the ASM status code the
// daemon returns. It is the single place where TPM response codes become
// UAF statuses: nil → OK; TPM_RC_AUTH_FAIL / TPM_RC_BAD_AUTH → ACCESS_DENIED
// (0x02); TPM_RC_LOCKOUT → USER_LOCKOUT (0x10); TPM_RC_OBJECT_MEMORY /
// SESSION_MEMORY → INSUFFICIENT_RESOURCES (0x0F); load integrity failure →
// KEY_DISAPPEARED_PERMANENTLY (0x09); transport failure →
// AUTHENTICATOR_DISCONNECTED (0x0B); anything else → ERROR (0x01).
func StatusOf(err error) Status {
	if err == nil {
		return StatusOK
	}
	var s Status
	if errors.As(err, &s) {
		return s
	}
	return StatusError
}

// classify wraps a TPM error with the Status sentinel it maps to, keeping the
// original error in the chain. op names the TPM command for the message.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var s Status
	switch {
	case errors.As(err, &s):
		return fmt.Errorf("tpm: %s: %w", op, err)
	case errors.Is(err, tpm2.TPMRCAuthFail), errors.Is(err, tpm2.TPMRCBadAuth):
		s = StatusAccessDenied
	case errors.Is(err, tpm2.TPMRCLockout):
		s = StatusUserLockout
	case errors.Is(err, tpm2.TPMRCObjectMemory), errors.Is(err, tpm2.TPMRCSessionMemory):
		s = StatusInsufficientResources
	case errors.Is(err, ErrTransport):
		s = StatusAuthenticatorDisconnected
	default:
		return fmt.Errorf("tpm: %s: %w", op, err)
	}
	return fmt.Errorf("tpm: %s: %w (%w)", op, s, err)
}

// classifyLoad is classify for TPM2_Load: a blob that fails its integrity or
// binding check under our SRK is a key that has permanently disappeared.
func classifyLoad(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, tpm2.TPMRCIntegrity) || errors.Is(err, tpm2.TPMRCBinding) ||
		errors.Is(err, tpm2.TPMRCSize) || errors.Is(err, tpm2.TPMRCValue) {
		return fmt.Errorf("tpm: load: %w (%w)", StatusKeyDisappearedPermanently, err)
	}
	return classify("load", err)
}
