package localapi

import (
	"github.com/fidoserver/hwfido/authenticatord/asm"
	"github.com/fidoserver/hwfido/uaf"
)

// Paths of the local API. Every request is a POST with a JSON body except
// the GETs noted.
const (
	PathASM             = "/v1/asm"              // ASMCall → asm.Response
	PathClientBegin     = "/v1/client/begin"     // BeginRequest → BeginResponse
	PathClientFinish    = "/v1/client/finish"    // FinishRequest → FinishResponse
	PathChangePIN       = "/v1/pin/change"       // ChangePINRequest → ChangePINResponse
	PathMetadata        = "/v1/metadata"         // GET → metadata statement JSON
	PathStatus          = "/v1/status"           // GET → StatusResponse
	PathAttestationKey  = "/v1/attestation/key"  // POST (admin) → AttestationKeyResponse; GET → current key
	PathAttestationCert = "/v1/attestation/cert" // POST (admin) InstallCertRequest → {}
)

// Host is the Host header clients must send ("http://authenticatord/…").
const Host = "authenticatord"

// ASMCall is an ASM request plus the PIN that unlocks the key for Register
// and Authenticate (the daemon has no UI of its own; the caller collected
// the PIN). The PIN never appears in logs.
type ASMCall struct {
	Request asm.Request `json:"request"`
	PIN     string      `json:"pin,omitempty"`
}

// BeginRequest starts a client-level operation against a server.
type BeginRequest struct {
	// Op is "Reg", "Auth" or "Dereg".
	Op uaf.Operation `json:"op"`
	// Server is the server's base URL.
	Server string `json:"server"`
	// Context is the GetUAFRequest context (stringified JSON).
	Context string `json:"context,omitempty"`
	// BearerToken is the caller token for the server (Reg, Dereg).
	BearerToken string `json:"bearerToken,omitempty"`
}

// BeginResponse says what to show the user before [FinishRequest]. For
// Dereg the operation is already done and Session is empty.
type BeginResponse struct {
	Session         string              `json:"session,omitempty"`
	Op              uaf.Operation       `json:"op"`
	AppID           string              `json:"appID"`
	Username        string              `json:"username,omitempty"`
	Transaction     string              `json:"transaction,omitempty"`
	HasTransaction  bool                `json:"hasTransaction,omitempty"`
	KeyIDs          []string            `json:"keyIDs,omitempty"`
	AttestationType uaf.AttestationType `json:"attestationType,omitempty"`
	Deregistered    int                 `json:"deregistered,omitempty"`
}

// FinishRequest completes a session: Confirm false rejects (reported to the
// server as USER_CANCELLED).
type FinishRequest struct {
	Session string `json:"session"`
	Confirm bool   `json:"confirm"`
	PIN     string `json:"pin,omitempty"`
}

// FinishResponse is the outcome. ServerResponse is set whenever the server
// answered (also for a reported failure).
type FinishResponse struct {
	ServerResponse  *uaf.ServerResponse `json:"serverResponse,omitempty"`
	ASMStatusCode   uaf.ASMStatus       `json:"asmStatusCode"`
	ClientErrorCode uaf.ErrorCode       `json:"clientErrorCode"`
	Error           string              `json:"error,omitempty"`
}

// ChangePINRequest changes the PIN of every key of the caller.
type ChangePINRequest struct {
	OldPIN string `json:"oldPIN"`
	NewPIN string `json:"newPIN"`
}

// ChangePINResponse reports how many keys were re-wrapped.
type ChangePINResponse struct {
	Changed int `json:"changed"`
}

// StatusResponse describes the daemon's authenticator.
type StatusResponse struct {
	AAID             string   `json:"aaid"`
	AttestationTypes []string `json:"attestationTypes"`
	Keys             int      `json:"keys"`
	DAFailures       uint32   `json:"daFailures"`
	DAMaxTries       uint32   `json:"daMaxTries"`
	DARemaining      uint32   `json:"daRemaining"`
	InLockout        bool     `json:"inLockout"`
	RetryAfterSecs   int64    `json:"retryAfterSeconds,omitempty"`
}

// AttestationKeyResponse carries the attestation public key (PEM SPKI).
type AttestationKeyResponse struct {
	PublicKeyPEM string `json:"publicKeyPEM"`
}

// InstallCertRequest installs the vendor-issued attestation certificate.
type InstallCertRequest struct {
	CertPEM string `json:"certPEM"`
	RootPEM string `json:"rootPEM"`
}

// ErrorResponse is the body of every non-200 answer.
type ErrorResponse struct {
	Error           string        `json:"error"`
	ASMStatusCode   uaf.ASMStatus `json:"asmStatusCode"`
	ClientErrorCode uaf.ErrorCode `json:"clientErrorCode,omitempty"`
}
