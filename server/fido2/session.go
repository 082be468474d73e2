package fido2

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/go-webauthn/webauthn/protocol"

	"github.com/fidoserver/hwfido/server/fido2/record"
)

// Sealed sessions.
//
// The common ceremony (no extension inputs other than the boolean credProps, uvm,
// minPinLength and hmacCreateSecret) keeps no state at options time: everything the result
// call needs to rebuild go-webauthn's SessionData is sealed into the challenge itself with
// AES-256-GCM under the session key, and the result call recovers it from the challenge
// echoed in clientDataJSON. Single use is enforced when the result is recorded: the result
// transaction inserts the session row (primary key = the challenge), so a second result
// for the same challenge changes nothing and is refused as a replay. Requests with other
// extension inputs (appid, credProtect, arbitrary ones) fall back to a session row written
// at options time.
//
// Challenge layout (38–64 bytes, inside the 16–64 bytes the conformance tool accepts):
//
//	0x01 | nonce (12) | AES-GCM( flags (1) | extensions (1) | expires ms (6, big endian) | user ) | tag (16)
//
// flags: bit 0 authentication, bits 1–2 user verification (0 unset, 1 required, 2
// preferred, 3 discouraged), bit 3 new user. user is the user's row id (uvarint), or for
// a registration of a user the store does not know yet (bit 3) the username itself (at
// most [sealMaxName] bytes): that user is created by the result's write transaction, with
// the user handle derived from the username under the session key ([Service.newUserHandle]),
// so the options call writes nothing. The additional data binds the RP ID, so a challenge
// sealed for one RP does not open for another.
const (
	sealVersion   = 0x01
	sealNonceSize = 12
	sealMinSize   = 1 + sealNonceSize + 8 + 1 + 16
	sealMaxSize   = 64
	// sealMaxName is the longest username a sealed new-user registration carries.
	sealMaxName = sealMaxSize - (1 + sealNonceSize + 8 + 16)
	flagNewUser = 1 << 3
	// SessionKeySize is the size of [Deps.SessionKey] in bytes (AES-256).
	SessionKeySize = 32
)

// Boolean extension inputs that fit into a sealed session (bit values of sealedState.ext).
const (
	extCredProps uint8 = 1 << iota
	extUVM
	extMinPinLength
	extHMACCreateSecret
)

// sealedState is the ceremony state carried inside a sealed challenge.
type sealedState struct {
	ceremony record.Ceremony
	uv       protocol.UserVerificationRequirement
	ext      uint8
	userID   int64  // 0: discoverable authentication, or a new user (registration)
	username string // a registration's new user (userID 0), else empty
	expires  time.Time
}

var uvCodes = []protocol.UserVerificationRequirement{"", protocol.VerificationRequired, protocol.VerificationPreferred,
	protocol.VerificationDiscouraged}

// errNotSealed says a challenge is not a sealed session of this server (it may be a
// stored session's random challenge).
var errNotSealed = errors.New("fido2: challenge is not a sealed session")

// sealer seals and opens [sealedState] values. It is safe for concurrent use.
type sealer struct {
	aead cipher.AEAD
	ad   []byte
}

func newSealer(key []byte, rpID string) (*sealer, error) {
	if len(key) != SessionKeySize {
		return nil, fmt.Errorf("fido2: session key must be %d bytes, not %d", SessionKeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("fido2: session key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("fido2: session key: %w", err)
	}
	return &sealer{aead: aead, ad: []byte("hwfido fido2 session v1\x00" + rpID)}, nil
}

func (s *sealer) seal(st sealedState) ([]byte, error) {
	var flags uint8
	if st.ceremony == record.CeremonyAuthentication {
		flags |= 1
	}
	code := -1
	for i, u := range uvCodes {
		if u == st.uv {
			code = i
		}
	}
	if code < 0 {
		return nil, fmt.Errorf("fido2: seal: user verification %q", st.uv)
	}
	if st.userID < 0 {
		return nil, errors.New("fido2: seal: negative user id")
	}
	flags |= uint8(code) << 1
	if st.username != "" {
		if st.userID != 0 || st.ceremony != record.CeremonyRegistration || len(st.username) > sealMaxName {
			return nil, errors.New("fido2: seal: a new user goes only into a registration, by a short username")
		}
		flags |= flagNewUser
	}
	plain := make([]byte, 0, 8+sealMaxName)
	plain = append(plain, flags, st.ext)
	var exp [8]byte
	binary.BigEndian.PutUint64(exp[:], uint64(st.expires.UnixMilli()))
	plain = append(plain, exp[2:]...)
	if st.username != "" {
		plain = append(plain, st.username...)
	} else {
		plain = binary.AppendUvarint(plain, uint64(st.userID))
	}
	out := make([]byte, 1+sealNonceSize, sealMaxSize)
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("fido2: seal: %w", err)
	}
	return s.aead.Seal(out, out[1:1+sealNonceSize], plain, s.ad), nil
}

// open returns the state sealed into challenge, or errNotSealed.
func (s *sealer) open(challenge []byte) (sealedState, error) {
	var st sealedState
	if len(challenge) < sealMinSize || len(challenge) > sealMaxSize || challenge[0] != sealVersion {
		return st, errNotSealed
	}
	plain, err := s.aead.Open(nil, challenge[1:1+sealNonceSize], challenge[1+sealNonceSize:], s.ad)
	if err != nil || len(plain) < 9 {
		return st, errNotSealed
	}
	flags := plain[0]
	if flags&^(0x07|flagNewUser) != 0 {
		return st, errNotSealed
	}
	st.ceremony = record.CeremonyRegistration
	if flags&1 != 0 {
		st.ceremony = record.CeremonyAuthentication
	}
	st.uv = uvCodes[(flags>>1)&0x03]
	st.ext = plain[1]
	var exp [8]byte
	copy(exp[2:], plain[2:8])
	st.expires = time.UnixMilli(int64(binary.BigEndian.Uint64(exp[:]))).UTC()
	if flags&flagNewUser != 0 {
		if st.ceremony != record.CeremonyRegistration || len(plain) == 8 {
			return st, errNotSealed
		}
		st.username = string(plain[8:])
		return st, nil
	}
	id, n := binary.Uvarint(plain[8:])
	if n <= 0 || 8+n != len(plain) || id > 1<<62 {
		return st, errNotSealed
	}
	st.userID = int64(id)
	return st, nil
}

// sealableExtensions returns the bitmap for ext when its session form is exactly that of
// the boolean inputs the bitmap can carry; ok is false otherwise.
func sealableExtensions(ext protocol.AuthenticationExtensions) (bits uint8, ok bool) {
	if ext.CredProps {
		bits |= extCredProps
	}
	if ext.UVM {
		bits |= extUVM
	}
	if ext.MinPinLength {
		bits |= extMinPinLength
	}
	if ext.HMACCreateSecret {
		bits |= extHMACCreateSecret
	}
	return bits, reflect.DeepEqual(ext.Session(), extensionsOf(bits).Session())
}

// extensionsOf rebuilds the extension inputs of a sealed session.
func extensionsOf(bits uint8) protocol.AuthenticationExtensions {
	return protocol.AuthenticationExtensions{
		CredProps: bits&extCredProps != 0, UVM: bits&extUVM != 0, MinPinLength: bits&extMinPinLength != 0,
		HMACCreateSecret: bits&extHMACCreateSecret != 0,
	}
}
