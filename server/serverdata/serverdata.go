// Package serverdata seals and opens the UAF serverData field: the server's state for one
// UAF request, echoed back by the client (UAF 1.1 protocol §3.1.3, OperationHeader).
//
// A sealed value is base64url(format ‖ keyVersion ‖ payload ‖ tag), where tag is an
// HMAC-SHA256 computed in the HSM by the serverData key of keyVersion over everything
// before it, so older keys still open values during a key rotation. The payload binds the
// operation, user, challenge, expiry, policy and transaction digests, and carries a random
// nonce that the store consumes to make the request single-use. Nothing in it is secret;
// it must only be unforgeable.
package serverdata

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// MaxLen is the UAF limit on serverData (OperationHeader.serverData: 1..1536 characters).
const MaxLen = 1536

const format byte = 1

// Errors returned by [Open].
var (
	// ErrInvalid reports a value that is malformed or whose tag does not verify.
	ErrInvalid = errors.New("serverdata: invalid")
	// ErrExpired reports an authentic value past its expiry.
	ErrExpired = errors.New("serverdata: expired")
)

// MAC is the keyed MAC serverData is sealed with; *hsm.Token provides it.
type MAC interface {
	// MAC tags data with the active key and returns the tag and that key's version.
	MAC(ctx context.Context, data []byte) (tag []byte, version uint32, err error)
	// VerifyMAC checks tag over data with the key of that version.
	VerifyMAC(ctx context.Context, version uint32, data, tag []byte) error
}

// Transaction is the digest set of one transaction content shown to the user; Digests maps
// a hash name ("SHA-256", "SHA-384", "SHA-512", "SHA-1") to the hash of the decoded content.
type Transaction struct {
	ContentType string            `json:"ct"`
	Digests     map[string][]byte `json:"d"`
}

// Data is the state sealed into one serverData value.
type Data struct {
	Op        string        `json:"o"`           // "Reg", "Auth" or "Dereg"
	Username  string        `json:"u,omitempty"` // empty: usernameless authentication
	Challenge string        `json:"c"`           // the base64url challenge sent
	Nonce     []byte        `json:"n"`           // single-use identifier (16 random bytes)
	Expires   int64         `json:"e"`           // Unix milliseconds
	Policy    string        `json:"p,omitempty"` // policy name
	Session   string        `json:"s,omitempty"` // out-of-band session, if any
	Tx        []Transaction `json:"t,omitempty"`
}

// ExpiresAt returns the expiry as a time.
func (d *Data) ExpiresAt() time.Time { return time.UnixMilli(d.Expires) }

// NewNonce returns 16 random bytes for Data.Nonce.
func NewNonce() ([]byte, error) {
	n := make([]byte, 16)
	if _, err := rand.Read(n); err != nil {
		return nil, fmt.Errorf("serverdata: nonce: %w", err)
	}
	return n, nil
}

// Seal MACs d with the active key and returns the serverData string.
func (s *Sealer) Seal(ctx context.Context, d Data) (string, error) {
	payload, err := json.Marshal(d)
	if err != nil {
		return "", fmt.Errorf("serverdata: %w", err)
	}
	// The key version is only known after MAC, so tag "format ‖ payload" and place the
	// version outside; VerifyMAC with the wrong version simply fails.
	msg := make([]byte, 0, 1+len(payload))
	msg = append(msg, format)
	msg = append(msg, payload...)
	tag, ver, err := s.mac.MAC(ctx, msg)
	if err != nil {
		return "", fmt.Errorf("serverdata: seal: %w", err)
	}
	out := make([]byte, 0, 5+len(payload)+len(tag))
	out = append(out, format)
	out = binary.BigEndian.AppendUint32(out, ver)
	out = append(out, payload...)
	out = append(out, tag...)
	str := base64.RawURLEncoding.EncodeToString(out)
	if len(str) > MaxLen {
		return "", fmt.Errorf("serverdata: sealed value is %d characters, more than %d", len(str), MaxLen)
	}
	return str, nil
}

// Open verifies str and returns its data. It fails with ErrInvalid (malformed or forged)
// or ErrExpired (authentic but expired at now); other errors come from the MAC (the HSM).
func (s *Sealer) Open(ctx context.Context, str string, now time.Time) (*Data, error) {
	if len(str) == 0 || len(str) > MaxLen {
		return nil, ErrInvalid
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(str)
	if err != nil || len(raw) < 1+4+2+32 || raw[0] != format {
		return nil, ErrInvalid
	}
	ver := binary.BigEndian.Uint32(raw[1:5])
	payload, tag := raw[5:len(raw)-32], raw[len(raw)-32:]
	msg := make([]byte, 0, 1+len(payload))
	msg = append(msg, format)
	msg = append(msg, payload...)
	if err := s.mac.VerifyMAC(ctx, ver, msg, tag); err != nil {
		if s.isMismatch(err) {
			return nil, ErrInvalid
		}
		return nil, fmt.Errorf("serverdata: open: %w", err)
	}
	var d Data
	if err := json.Unmarshal(payload, &d); err != nil {
		return nil, ErrInvalid
	}
	if len(d.Nonce) != 16 || d.Op == "" || d.Challenge == "" {
		return nil, ErrInvalid
	}
	if now.UnixMilli() > d.Expires {
		return nil, ErrExpired
	}
	return &d, nil
}

// Sealer seals and opens serverData with one MAC. It is safe for concurrent use.
type Sealer struct {
	mac      MAC
	mismatch []error
}

// NewSealer returns a Sealer using m. Errors in mismatch (for example the HSM's bad-MAC and
// unknown-key-version sentinels) mean "forged or foreign value" and make [Sealer.Open]
// answer ErrInvalid; any other MAC error is passed on as an HSM failure.
func NewSealer(m MAC, mismatch ...error) *Sealer { return &Sealer{mac: m, mismatch: mismatch} }

func (s *Sealer) isMismatch(err error) bool {
	for _, e := range s.mismatch {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
