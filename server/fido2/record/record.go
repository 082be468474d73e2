package record

import (
	"errors"
	"time"
)

// ErrUserChanged reports that a registration for a new user found the user created in
// the meantime with another user handle than the one its options carried.
var ErrUserChanged = errors.New("record: user was created with another handle during the registration")

// Flags are the authenticator data flags a credential record keeps (WebAuthn L3 §6.1
// "flags"). They are written at registration and after every successful assertion.
type Flags struct {
	UserPresent    bool
	UserVerified   bool
	BackupEligible bool
	BackupState    bool
}

// Bits encodes f as the authenticator data flag byte (UP=0x01, UV=0x04, BE=0x08, BS=0x10).
func (f Flags) Bits() uint8 {
	var b uint8
	if f.UserPresent {
		b |= 0x01
	}
	if f.UserVerified {
		b |= 0x04
	}
	if f.BackupEligible {
		b |= 0x08
	}
	if f.BackupState {
		b |= 0x10
	}
	return b
}

// FlagsFromBits decodes the authenticator data flag byte; other bits are ignored.
func FlagsFromBits(b uint8) Flags {
	return Flags{
		UserPresent:    b&0x01 != 0,
		UserVerified:   b&0x04 != 0,
		BackupEligible: b&0x08 != 0,
		BackupState:    b&0x10 != 0,
	}
}

// Credential is one FIDO2 credential registered for a user. CredentialID is unique per
// RPID. Record is an opaque encoding written by the FIDO2 service (it holds the raw
// attestation so the credential can be re-verified later); backends store and return it
// unchanged. SignCount and Flags are the current values and take precedence over any copy
// inside Record.
type Credential struct {
	ID                int64 // backend row id, set on reads
	UserID            int64
	Username          string // filled on reads
	UserHandle        []byte // the user's WebAuthn handle, filled on reads
	RPID              string
	CredentialID      []byte
	PublicKey         []byte // COSE_Key as in the attested credential data
	AAGUID            []byte // 16 bytes; all zero for U2F authenticators
	SignCount         uint32
	Flags             Flags
	AttestationFormat string   // "packed", "fido-u2f", … (WebAuthn §8)
	AttestationType   string   // "basic_full", "self", "none", … as reported by verification
	Trust             string   // outcome of the attestation trust decision ("trusted", "untrusted", "not-checked")
	Transports        []string // as reported by the client
	Discoverable      bool     // credProps rk=true was reported
	Name              string   // user-friendly name given at registration (may be empty)
	Record            []byte
	CreatedAt         time.Time
	LastUsedAt        time.Time
}

// CounterUpdate is applied after a successful assertion (WebAuthn L3 §7.2 steps 22–24).
// The stored sign count must be lower than SignCount unless both are zero (authenticators
// without a counter); otherwise the update is refused.
type CounterUpdate struct {
	CredentialRowID int64
	SignCount       uint32
	Flags           Flags
	UsedAt          time.Time
}

// Ceremony names the kind of a [Session].
type Ceremony string

// Ceremony kinds.
const (
	CeremonyRegistration   Ceremony = "registration"
	CeremonyAuthentication Ceremony = "authentication"
)

// Status is the state of a [Session] as reported by /nevisfido/fido2/status.
type Status string

// Session states. A session starts Initialized when options are returned; a result call
// moves it to Verifying (single use), then to Succeeded or Failed.
const (
	StatusInitialized Status = "initialized"
	StatusVerifying   Status = "verifying"
	StatusSucceeded   Status = "succeeded"
	StatusFailed      Status = "failed"
	StatusUnknown     Status = "unknown" // reported for unknown or forgotten sessions; never stored
)

// Session ties a ceremony's options to its result. Challenge is unique: the result call
// finds its session through the challenge echoed in clientDataJSON. Data is an opaque
// encoding of the verifier's session state written by the FIDO2 service. UserID is zero
// for a discoverable (username-less) authentication until it succeeds.
type Session struct {
	ID           string
	Ceremony     Ceremony
	Challenge    []byte
	UserID       int64
	Username     string
	Data         []byte
	Status       Status
	ErrorMessage string
	CredentialID []byte // the credential registered or used, once succeeded
	CreatedAt    time.Time
	UpdatedAt    time.Time
	ExpiresAt    time.Time
}
