// Package record holds the persistent records of the out-of-band services (server/oob):
// tokens, sessions and dispatch targets. Store backends (server/store/sqlite) read and write
// them; the oob package gives them meaning.
package record

import (
	"errors"
	"time"
)

// ErrExpired reports a token whose lifetime is over.
var ErrExpired = errors.New("record: token expired")

// ErrNameTaken reports that the user already has a dispatch target of that name; backends
// wrap it together with store.ErrAlreadyExists.
var ErrNameTaken = errors.New("record: dispatch target name taken")

// Token is an out-of-band token. Only Hash (SHA-256 of the token) is stored, never the
// token itself.
type Token struct {
	Hash      []byte
	Op        string // "Reg", "Auth", "Dereg"
	SessionID string
	// Handle is the session's Handle (filled when the token is redeemed).
	Handle string
	// Context is the stringified GetUAFRequest context captured at creation; the request is
	// built from it when the token is redeemed.
	Context   string
	ExpiresAt time.Time
}

// Session statuses (nevisFIDO Status Service).
const (
	StatusTokenCreated         = "tokenCreated"
	StatusClientRegistering    = "clientRegistering"
	StatusClientAuthenticating = "clientAuthenticating"
	StatusSucceeded            = "succeeded"
	StatusFailed               = "failed"
	StatusUnknown              = "unknown"
)

// Token results (tokenInformation.tokenResult).
const (
	TokenRedeemed = "tokenRedeemed"
	TokenTimedOut = "tokenTimedOut"
)

// Authenticator names one authenticator of a finished operation.
type Authenticator struct {
	AAID  string `json:"aaid"`
	KeyID string `json:"keyId"`
	ExtID string `json:"extId,omitempty"`
}

// Session is the state of one out-of-band operation, as the Status Service reports it.
type Session struct {
	// ID is the session id the relying party polls with; it is never sent to the device.
	ID string
	// Handle identifies the session in the serverData of its UAF request, which the
	// device can read; it does not open the Status Service.
	Handle string
	Op     string
	Status string
	// Username is the user the operation is for; for usernameless authentication it is set
	// once the operation succeeded.
	Username        string
	UAFStatusCode   int
	ASMStatusCode   int
	ClientErrorCode int
	Authenticators  []Authenticator
	TokenResult     string // "", TokenRedeemed or TokenTimedOut
	DispatcherName  string
	DispatcherResp  string
	TargetExtID     string
	ResultToken     string
	TokenExpiresAt  time.Time
	CreatedAt       time.Time
	UpdatedAt       time.Time
	// ExpiresAt is when the session is forgotten (Status then answers unknown).
	ExpiresAt time.Time
}

// Final reports whether s is in a final state.
func (s *Session) Final() bool { return s.Status == StatusSucceeded || s.Status == StatusFailed }

// SessionUpdate moves a session to a new state. Zero fields other than Status are left
// unchanged, except that the codes are always written.
type SessionUpdate struct {
	Status string
	// TokenResult, when set, replaces the session's token result.
	TokenResult     string
	Username        string
	UAFStatusCode   int
	ASMStatusCode   int
	ClientErrorCode int
	Authenticators  []Authenticator
	ResultToken     string
}

// Target is a dispatch target: a device that out-of-band payloads can be sent to.
type Target struct {
	ID       string
	ExtID    string
	UserID   int64
	Username string
	Name     string
	DeviceID string
	// Dispatcher is the default dispatcher of the target.
	Dispatcher string
	// Target is the dispatcher address (FCM registration token); may be empty.
	Target string
	// SignatureKey and EncryptionKey are public JWKs (JSON); EncryptionKey may be empty.
	SignatureKey  string
	EncryptionKey string
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// TargetChange lists the fields a device-signed modification may change; nil fields stay.
type TargetChange struct {
	Name          *string
	Target        *string
	Dispatcher    *string
	EncryptionKey *string
}
