package fido2

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/go-webauthn/webauthn/protocol"

	"github.com/fidoserver/hwfido/hsm"
	"github.com/fidoserver/hwfido/server/fido2/record"
)

// Sealed sessions.
//
// The common ceremony (no extension inputs other than the boolean credProps, uvm,
// minPinLength and hmacCreateSecret) keeps no state at options time: everything the result
// call needs to rebuild go-webauthn's SessionData is sealed into the challenge itself,
// authenticated with HMAC-SHA256 computed inside the HSM with the serverData MAC key (the
// same key that authenticates UAF serverData; it never leaves the token), and the result
// call recovers it from the challenge echoed in clientDataJSON. Single use is enforced when
// the result is recorded: the result transaction inserts the session row (primary key = the
// challenge), so a second result for the same challenge changes nothing and is refused as a
// replay. Requests with other extension inputs (appid, credProtect, arbitrary ones) fall
// back to a session row written at options time.
//
// Challenge layout (38–64 bytes, inside the 16–64 bytes the conformance tool accepts):
//
//	0x02 | key version (2, big endian) | nonce (10) | flags (1) | extensions (1) | expires ms (6, big endian) | user | tag (16)
//
// The tag is the first 16 bytes of HMAC(key version, "hwfido fido2 session v2" 0x00 RP ID
// 0x00 challenge-without-version-and-tag); a wrong version selects a wrong key and fails.
// The state is authenticated, not encrypted: nothing in it is secret (the browser is told
// the user's name and the options anyway). flags: bit 0 authentication, bits 1–2 user
// verification (0 unset, 1 required, 2 preferred, 3 discouraged), bit 3 new user. user is
// the user's row id (uvarint), or for a registration of a user the store does not know yet
// (bit 3) the username itself (at most [sealMaxName] bytes): that user is created by the
// result's write transaction, with the user handle derived from the username by the HSM
// under the same key version ([Service.newUserHandle]), so the options call writes nothing.
const (
	sealVersion   = 0x02
	sealNonceSize = 10
	sealTagSize   = 16
	sealHeader    = 1 + 2 + sealNonceSize
	sealMinSize   = sealHeader + 8 + 1 + sealTagSize
	sealMaxSize   = 64
	// sealMaxName is the longest username a sealed new-user registration carries.
	sealMaxName = sealMaxSize - (sealHeader + 8 + sealTagSize)
	flagNewUser = 1 << 3
)

// SessionMAC computes and checks HMAC-SHA256 tags inside the HSM with the serverData MAC
// key; [*hsm.Token] implements it. Sealed sessions and new users' handles use it.
type SessionMAC interface {
	// MAC returns the tag of data under the active key and the key's version.
	MAC(ctx context.Context, data []byte) (tag []byte, version uint32, err error)
	// MACWithVersion returns the tag of data under key version.
	MACWithVersion(ctx context.Context, version uint32, data []byte) ([]byte, error)
	// VerifyTruncatedMAC checks a tag truncated to its first len(tag) bytes in constant time.
	VerifyTruncatedMAC(ctx context.Context, version uint32, data, tag []byte) error
}

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
	// keyVersion is the MAC key version: set by open; for seal, 0 means the active key,
	// else that version (a new user's handle was derived with it).
	keyVersion uint32
}

var uvCodes = []protocol.UserVerificationRequirement{"", protocol.VerificationRequired, protocol.VerificationPreferred,
	protocol.VerificationDiscouraged}

// errNotSealed says a challenge is not a sealed session of this server (it may be a
// stored session's random challenge).
var errNotSealed = errors.New("fido2: challenge is not a sealed session")

// sealer seals and opens [sealedState] values. It is safe for concurrent use.
type sealer struct {
	mac SessionMAC
	ad  []byte
}

func newSealer(mac SessionMAC, rpID string) (*sealer, error) {
	if mac == nil {
		return nil, errors.New("fido2: a session MAC (the HSM) is required")
	}
	return &sealer{mac: mac, ad: []byte("hwfido fido2 session v2\x00" + rpID + "\x00")}, nil
}

// macInput is what the tag covers: the associated data and the challenge without its
// version field and tag.
func (s *sealer) macInput(ch []byte) []byte {
	in := make([]byte, 0, len(s.ad)+len(ch))
	in = append(in, s.ad...)
	in = append(in, ch[0])
	return append(in, ch[3:len(ch)-sealTagSize]...)
}

func (s *sealer) seal(ctx context.Context, st sealedState) ([]byte, error) {
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
	out := make([]byte, sealHeader, sealMaxSize)
	out[0] = sealVersion
	if _, err := rand.Read(out[3:sealHeader]); err != nil {
		return nil, fmt.Errorf("fido2: seal: %w", err)
	}
	out = append(out, flags, st.ext)
	var exp [8]byte
	binary.BigEndian.PutUint64(exp[:], uint64(st.expires.UnixMilli()))
	out = append(out, exp[2:]...)
	if st.username != "" {
		out = append(out, st.username...)
	} else {
		out = binary.AppendUvarint(out, uint64(st.userID))
	}
	out = append(out, make([]byte, sealTagSize)...) // room for the tag, not covered by it
	in := s.macInput(out)
	var tag []byte
	var err error
	v := st.keyVersion
	if v == 0 {
		tag, v, err = s.mac.MAC(ctx, in)
	} else {
		tag, err = s.mac.MACWithVersion(ctx, v, in)
	}
	if err != nil {
		return nil, fmt.Errorf("fido2: seal: %w", err)
	}
	if v > 0xFFFF || len(tag) < sealTagSize {
		return nil, fmt.Errorf("fido2: seal: MAC key version %d or tag length %d out of range", v, len(tag))
	}
	binary.BigEndian.PutUint16(out[1:3], uint16(v))
	copy(out[len(out)-sealTagSize:], tag[:sealTagSize])
	return out, nil
}

// open returns the state sealed into challenge; errNotSealed when challenge is not a
// sealed session of this server (or its key version is gone), another error when the HSM
// could not be asked.
func (s *sealer) open(ctx context.Context, challenge []byte) (sealedState, error) {
	var st sealedState
	if len(challenge) < sealMinSize || len(challenge) > sealMaxSize || challenge[0] != sealVersion {
		return st, errNotSealed
	}
	v := uint32(binary.BigEndian.Uint16(challenge[1:3]))
	err := s.mac.VerifyTruncatedMAC(ctx, v, s.macInput(challenge), challenge[len(challenge)-sealTagSize:])
	if errors.Is(err, hsm.ErrBadMAC) || errors.Is(err, hsm.ErrUnknownKey) {
		return st, errNotSealed
	}
	if err != nil {
		return st, fmt.Errorf("fido2: open session: %w", err)
	}
	st.keyVersion = v
	plain := challenge[sealHeader : len(challenge)-sealTagSize]
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
