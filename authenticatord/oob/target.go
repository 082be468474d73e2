package oob

import (
	"encoding/json"
	"time"
)

// Dispatcher is the dispatcher name of our own push channel (docs/oob.md
// "Our own push channel").
const Dispatcher = "hwfido-stream"

// TargetIDTokenType is the ServerResponse additionalTokens type that
// carries the id of a dispatch target created inside a registration.
const TargetIDTokenType = "dispatchTargetId"

// Target is a dispatch target as the device announces it in the
// RegistrationResponse context (docs/oob.md "Dispatch targets"; nevisFIDO
// API §6 Create): keys are JWK objects.
type Target struct {
	Name          string          `json:"name"`
	DeviceID      string          `json:"deviceId,omitempty"`
	Dispatcher    string          `json:"dispatcher,omitempty"`
	Target        string          `json:"target,omitempty"`
	SignatureKey  json.RawMessage `json:"signatureKey"`
	EncryptionKey json.RawMessage `json:"encryptionKey,omitempty"`
}

// Claims is the payload of the device-signed JWS of PATCH, DELETE and the
// stream's bearer token: a unique request id and the creation time (unix
// seconds) against replay, plus the changed fields for PATCH and aud
// "stream" for the stream.
type Claims struct {
	RequestID     string          `json:"requestId"`
	Timestamp     int64           `json:"timestamp"`
	Aud           string          `json:"aud,omitempty"`
	Name          string          `json:"name,omitempty"`
	Target        string          `json:"target,omitempty"`
	Dispatcher    string          `json:"dispatcher,omitempty"`
	EncryptionKey json.RawMessage `json:"encryptionKey,omitempty"`
}

// NewClaims returns claims with a fresh random request id and now.
func NewClaims(now time.Time) (Claims, error) {
	id, err := RandomID(16)
	if err != nil {
		return Claims{}, err
	}
	return Claims{RequestID: id, Timestamp: now.Unix()}, nil
}
