package metadata

import (
	"errors"
	"fmt"
)

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrInvalidStatement reports a metadata statement that cannot be used
	// (malformed JSON, a bad identifier, no identifier at all).
	ErrInvalidStatement = errors.New("metadata: invalid statement")
	// ErrInvalidBLOB reports a metadata BLOB that is not a well-formed JWS
	// or whose payload is malformed.
	ErrInvalidBLOB = errors.New("metadata: invalid blob")
	// ErrUnsupportedAlgorithm reports a BLOB `alg` outside the allow-list
	// (RS/PS/ES 256/384/512) or not matching the signing key.
	ErrUnsupportedAlgorithm = errors.New("metadata: unsupported blob algorithm")
	// ErrX5UUnsupported reports a BLOB whose header carries `x5u`: this
	// package never fetches anything, so such BLOBs are refused.
	ErrX5UUnsupported = errors.New("metadata: x5u certificate URLs are not supported")
	// ErrSignature reports a BLOB whose JWS signature does not verify.
	ErrSignature = errors.New("metadata: blob signature invalid")
	// ErrUntrustedChain reports a BLOB signing chain that does not build to
	// one of the pinned anchors at the verification time.
	ErrUntrustedChain = errors.New("metadata: blob signing chain not trusted")
	// ErrStale reports a BLOB whose nextUpdate has passed (only when
	// enforcement is requested).
	ErrStale = errors.New("metadata: blob is past nextUpdate")
	// ErrReplayed reports a BLOB whose serial number `no` is not greater
	// than the last accepted one.
	ErrReplayed = errors.New("metadata: blob serial number not increasing")
	// ErrLegalHeader reports a BLOB whose legalHeader is not allowed.
	ErrLegalHeader = errors.New("metadata: blob legalHeader not accepted")
	// ErrRevoked reports a certificate in the BLOB signing chain listed in
	// a CRL.
	ErrRevoked = errors.New("metadata: certificate revoked")
	// ErrCRLUnavailable reports that revocation information was required
	// but no valid CRL covered a certificate at the verification time.
	ErrCRLUnavailable = errors.New("metadata: no valid crl for certificate")
	// ErrUnacceptableStatus reports an authenticator whose current status
	// report is refused by the [StatusPolicy].
	ErrUnacceptableStatus = errors.New("metadata: authenticator status not acceptable")
	// ErrNotFound reports a lookup without a matching statement.
	ErrNotFound = errors.New("metadata: statement not found")
)

// Warning records a non-fatal problem found while parsing a statement or BLOB
// entry, such as an attestation root that failed to parse and was disabled.
type Warning struct {
	// Field is the JSON location, e.g. "attestationRootCertificates[2]".
	Field string
	// Reason is a human-readable explanation; it never contains secrets.
	Reason string
}

// String returns "field: reason".
func (w Warning) String() string { return w.Field + ": " + w.Reason }

// StatusError is returned by [StatusPolicy.Check] when the report that
// decides an authenticator's status is refused. It matches
// [ErrUnacceptableStatus] with errors.Is.
type StatusError struct {
	// Status is the refused status.
	Status Status
	// Report is the deciding report.
	Report StatusReport
}

// Error implements error.
func (e *StatusError) Error() string {
	if e.Report.EffectiveDate.IsZero() {
		return fmt.Sprintf("metadata: authenticator status %s not acceptable", e.Status)
	}
	return fmt.Sprintf("metadata: authenticator status %s (effective %s) not acceptable",
		e.Status, e.Report.EffectiveDate.Format(dateLayout))
}

// Is reports whether target is [ErrUnacceptableStatus].
func (e *StatusError) Is(target error) bool { return target == ErrUnacceptableStatus }
