package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors returned by every backend. Callers branch on them with [errors.Is].
var (
	// ErrNotFound reports that the requested record does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrAlreadyExists reports a uniqueness violation (an AAID+KeyID registered twice,
	// a username taken).
	ErrAlreadyExists = errors.New("store: already exists")
	// ErrReplay reports that a single-use value (serverData nonce, token) was already used.
	ErrReplay = errors.New("store: already used")
	// ErrCounter reports that an authenticator's signature counter did not increase.
	ErrCounter = errors.New("store: signature counter did not increase")
)

// User is a person known to the server. Username is the caller-facing identifier
// (nevisIDM's loginId); Handle is an opaque random value used where an identifier must not
// reveal the username (the WebAuthn user handle).
type User struct {
	ID        int64
	Username  string
	Handle    []byte
	CreatedAt time.Time
}

// UAFRegistration is one FIDO UAF key registered for a user (UAF 1.1 protocol §3.4.6.5
// step "store"). AAID is kept in the case the authenticator sent; lookups ignore case.
type UAFRegistration struct {
	ID                   int64
	UserID               int64
	Username             string // filled on reads
	AAID                 string
	KeyID                string // base64url, as on the wire
	PublicKey            []byte // as received, in PublicKeyEncoding
	PublicKeyEncoding    uint16 // ALG_KEY_*
	SignatureAlgorithm   uint16 // ALG_SIGN_*
	AuthenticatorVersion uint16
	SignCounter          uint32
	RegCounter           uint32
	AttestationType      uint16 // TAG_ATTESTATION_* value
	// AttestationCert is, for Basic Full, the verified attestation chain, leaf first up
	// to the metadata anchor, as concatenated DER (x509.ParseCertificates; registrations
	// stored before 2026-11-23 hold the leaf alone); nil otherwise.
	AttestationCert []byte
	TCDisplayPNG    []byte // JSON of tcDisplayPNGCharacteristics, if any
	DeviceID        string
	CreatedAt       time.Time
	LastUsedAt      time.Time
}

// Consumption marks a single-use value as used. Nonce is the value's identifier (never the
// secret itself); ExpiresAt says when the record may be forgotten because the value it
// guards has expired anyway.
type Consumption struct {
	Nonce     []byte
	ExpiresAt time.Time
}

// OOBPush is a payload queued for the push streams of a dispatch target that are open in
// another server process.
type OOBPush struct {
	TargetID  string
	Payload   []byte
	CreatedAt time.Time
}

// OOBStreamConn names one open push stream: its connection id and its target.
type OOBStreamConn struct {
	ConnID, TargetID string
}

// CounterUpdate is applied when an authentication succeeds: the registration's counter
// moves to SignCounter, which must be greater than the stored one unless both are zero
// (an authenticator without counters).
type CounterUpdate struct {
	RegistrationID int64
	SignCounter    uint32
	UsedAt         time.Time
}

// EventPossibleClone is the [SecurityEvent] kind recorded when a signature counter did not
// increase.
const EventPossibleClone = "possible-clone"

// SecurityEvent records something an operator must see, such as a possibly cloned
// authenticator (UAF 1.1 protocol §3.5.7.5: a counter that did not increase).
type SecurityEvent struct {
	Kind     string
	Username string
	AAID     string
	KeyID    string
	Detail   string
	At       time.Time
}

// Store is the credential repository. Implementations are safe for concurrent use, also by
// several server processes sharing one database.
type Store interface {
	// UserByName returns the user with that username or ErrNotFound.
	UserByName(ctx context.Context, username string) (*User, error)
	// EnsureUser returns the user with that username, creating it if needed.
	EnsureUser(ctx context.Context, username string) (*User, error)

	// UAFRegistrations lists a user's UAF registrations (empty when the user is unknown).
	UAFRegistrations(ctx context.Context, username string) ([]UAFRegistration, error)
	// UAFRegistration returns the registration of AAID (any case) and KeyID or ErrNotFound.
	UAFRegistration(ctx context.Context, aaid, keyID string) (*UAFRegistration, error)
	// RegisterUAF consumes c and stores reg for username (creating the user) in one
	// transaction. It fails with ErrReplay when c was used and ErrAlreadyExists when the
	// AAID+KeyID is registered; then nothing is stored.
	RegisterUAF(ctx context.Context, c Consumption, username string, reg []UAFRegistration) error
	// AuthenticateUAF consumes c and applies every counter update in one transaction; it
	// fails with ErrReplay or ErrCounter and then changes nothing.
	AuthenticateUAF(ctx context.Context, c Consumption, updates []CounterUpdate) error
	// DeregisterUAF deletes registrations of username: one key (aaid and keyID set), every
	// key of an AAID (keyID empty), or all of them (both empty). It returns the deleted ones.
	DeregisterUAF(ctx context.Context, username, aaid, keyID string) ([]UAFRegistration, error)

	// RecordSecurityEvent appends e to the security event log.
	RecordSecurityEvent(ctx context.Context, e SecurityEvent) error
	// SecurityEvents lists the recorded events of one kind, oldest first.
	SecurityEvents(ctx context.Context, kind string) ([]SecurityEvent, error)
	// PurgeExpired forgets consumption records that expired before now.
	PurgeExpired(ctx context.Context, now time.Time) (int64, error)

	// Ping reports whether the backend is usable (for /healthz).
	Ping(ctx context.Context) error
	// Close releases the backend's resources.
	Close() error
}
