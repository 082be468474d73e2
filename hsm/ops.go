package hsm

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/miekg/pkcs11"
)

// acquire borrows a worker session, waiting at most until the context
// deadline or AcquireTimeout, whichever is earlier. Waiters are woken when
// the pool is rebuilt and then wait on the new pool.
func (t *Token) acquire(ctx context.Context) (session, error) {
	p := t.poolPtr.Load()
	select {
	case s := <-p.ch:
		return s, nil
	default:
	}
	timer := time.NewTimer(t.cfg.AcquireTimeout)
	defer timer.Stop()
	for {
		select {
		case s := <-p.ch:
			return s, nil
		case <-p.replaced:
			if e := t.health.Load(); e != nil {
				return session{}, *e
			}
			p = t.poolPtr.Load()
		case <-ctx.Done():
			return session{}, fmt.Errorf("%w: %w", ErrBusy, ctx.Err())
		case <-timer.C:
			return session{}, fmt.Errorf("%w: waited %v", ErrBusy, t.cfg.AcquireTimeout)
		case <-t.stop:
			return session{}, fmt.Errorf("%w: %w", ErrUnavailable, ErrClosed)
		}
	}
}

// poolChan returns the current pool's channel.
func (t *Token) poolChan() chan session {
	if p := t.poolPtr.Load(); p != nil {
		return p.ch
	}
	return nil
}

// release returns a session to the pool, or closes it if it belongs to an
// older epoch (the pool was rebuilt meanwhile) or the pool is full.
func (t *Token) release(s session) {
	if s.epoch == t.epoch.Load() {
		select {
		case t.poolChan() <- s:
			return
		default:
		}
	}
	_ = t.p.CloseSession(s.h)
}

// discard closes a broken session and opens a replacement of the same epoch.
func (t *Token) replace(s session) (session, error) {
	_ = t.p.CloseSession(s.h)
	t.mu.Lock()
	slot := t.slot
	t.mu.Unlock()
	h, err := t.p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		return session{}, fmt.Errorf("hsm: C_OpenSession: %w", err)
	}
	return session{h: h, epoch: s.epoch}, nil
}

// do runs op on a worker session with the error → recovery policy of the
// package documentation: at most one retry, after replacing the session
// (session errors) or re-login and re-finding handles (handle errors).
// Device errors and failed retries turn the token unhealthy.
func (t *Token) do(ctx context.Context, op func(sh pkcs11.SessionHandle, ks *keySet) error) error {
	if e := t.health.Load(); e != nil {
		return *e
	}
	if t.closed.Load() {
		return fmt.Errorf("%w: %w", ErrUnavailable, ErrClosed)
	}
	s, err := t.acquire(ctx)
	if err != nil {
		return err
	}
	t.mod.gate.RLock()
	defer t.mod.gate.RUnlock()
	for attempt := 0; ; attempt++ {
		ks := t.keys.Load()
		err = op(s.h, ks)
		if err == nil {
			t.release(s)
			return nil
		}
		class := classify(err)
		if class == classOther {
			t.release(s)
			return err
		}
		if attempt > 0 || class == classDevice || class == classPIN {
			_ = t.p.CloseSession(s.h)
			return t.fail(err)
		}
		switch class {
		case classSession:
			t.log.Warn("hsm: session failed; replacing it", "err", err)
			s, err = t.replace(s)
			if err != nil {
				return t.fail(err)
			}
		case classHandle:
			t.log.Warn("hsm: key handle or login lost; logging in and re-finding keys", "err", err)
			if rerr := t.relogin(ks.gen); rerr != nil {
				_ = t.p.CloseSession(s.h)
				return t.fail(rerr)
			}
		}
	}
}

// relogin (called from do, with the gate held for reading) logs in again on the anchor (opening a new anchor if needed) and
// re-finds all key handles, unless another goroutine did so since gen.
func (t *Token) relogin(gen uint64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur := t.keys.Load(); cur.gen != gen {
		return nil
	}
	if _, err := t.p.GetSessionInfo(t.anchor); err != nil {
		h, err := t.p.OpenSession(t.slot, pkcs11.CKF_SERIAL_SESSION)
		if err != nil {
			return fmt.Errorf("hsm: C_OpenSession: %w", err)
		}
		t.anchor, t.hasAnchor = h, true
	}
	if err := t.login(); err != nil {
		return err
	}
	ks, err := t.findKeys(t.anchor)
	if err != nil {
		return err
	}
	// Copies that survived (same anchor, still live) are kept, so operations that loaded
	// the previous key set keep working when they retry.
	prev := t.keys.Load()
	t.copyKeys(ks, prev)
	ks.gen = gen + 1
	t.keys.Store(ks)
	t.destroyCopies(prev, ks)
	t.log.Info("hsm: keys re-found after re-login", "keys", len(ks.byKID))
	return nil
}

// fail marks the token unhealthy with cause and starts the background
// recovery (not for PIN errors). It returns the error to give the caller.
func (t *Token) fail(cause error) error {
	isPIN := classify(cause) == classPIN || errors.Is(cause, ErrPIN)
	var e error
	if isPIN {
		e = fmt.Errorf("%w: %w: %w", ErrUnavailable, ErrPIN, cause)
	} else {
		e = fmt.Errorf("%w: %w", ErrUnavailable, cause)
	}
	if t.health.CompareAndSwap(nil, &e) {
		// Audit only the first error of an outage.
		t.log.Error("hsm: token unhealthy", "err", cause, "token", t.info.Label)
	} else if p := t.health.Load(); p != nil {
		e = *p
	}
	if isPIN {
		return e
	}
	t.mu.Lock()
	if !t.recovering && !t.closed.Load() {
		t.recovering = true
		t.wg.Add(1)
		go t.recover()
	}
	t.mu.Unlock()
	return e
}

// recover re-initialises the token with exponential backoff until it works,
// a PIN error occurs, or the token is closed.
func (t *Token) recover() {
	defer t.wg.Done()
	delay := t.cfg.RecoveryBackoff
	for attempt := 1; ; attempt++ {
		select {
		case <-t.stop:
			return
		case <-time.After(delay):
		}
		err := t.reinit()
		t.mu.Lock()
		if err == nil {
			t.recovering = false
			t.health.Store(nil)
			t.mu.Unlock()
			t.log.Info("hsm: token recovered", "attempts", attempt, "token", t.info.Label)
			return
		}
		if errors.Is(err, ErrPIN) {
			e := fmt.Errorf("%w: %w", ErrUnavailable, err)
			t.health.Store(&e)
			t.recovering = false
			t.mu.Unlock()
			t.log.Error("hsm: recovery stopped: pin refused; restart after fixing the pin", "token", t.info.Label)
			return
		}
		t.mu.Unlock()
		t.log.Warn("hsm: recovery attempt failed", "attempt", attempt, "err", err, "next_in", delay)
		delay = min(2*delay, t.cfg.MaxRecoveryBackoff)
	}
}

// reinit tries a soft re-initialisation (new sessions, login, keys), and if
// that fails, resets the module (C_Finalize + C_Initialize, single-flight
// across the Tokens sharing it) and tries again.
func (t *Token) reinit() error {
	soft := func() error {
		t.mod.gate.RLock()
		defer t.mod.gate.RUnlock()
		t.mu.Lock()
		defer t.mu.Unlock()
		t.teardown()
		err := t.initLocked(context.Background())
		if err != nil {
			t.teardown()
		}
		return err
	}
	gen := t.mod.generation()
	err := soft()
	if err == nil || errors.Is(err, ErrPIN) {
		return err
	}
	if rerr := t.mod.reset(gen); rerr != nil {
		return rerr
	}
	return soft()
}

// selfTest signs with every EC key and verifies with its exported public
// key, and MACs with every MAC key and verifies the tag (and that other data
// gives another tag).
func (t *Token) selfTest(_ context.Context, sh pkcs11.SessionHandle, ks *keySet) error {
	for p, l := range ks.byPurpose {
		for _, k := range l {
			msg := []byte("hwfido hsm self-test " + k.Label)
			if Purpose(p).IsEC() {
				d := sha256.Sum256(msg)
				raw, err := t.rawSign(sh, t.mechE, k.use, d[:])
				if err != nil {
					return fmt.Errorf("%w: %s: %w", ErrSelfTest, k.Label, err)
				}
				if !ecdsa.Verify(k.Public, d[:], bigInt(raw[:32]), bigInt(raw[32:])) {
					return fmt.Errorf("%w: %s: signature does not verify with CKA_EC_POINT", ErrSelfTest, k.Label)
				}
				continue
			}
			tag1, err := t.rawSign(sh, t.mechH, k.use, msg)
			if err != nil {
				return fmt.Errorf("%w: %s: %w", ErrSelfTest, k.Label, err)
			}
			tag2, err := t.rawSign(sh, t.mechH, k.use, msg)
			if err != nil {
				return fmt.Errorf("%w: %s: %w", ErrSelfTest, k.Label, err)
			}
			tag3, err := t.rawSign(sh, t.mechH, k.use, append(msg, '!'))
			if err != nil {
				return fmt.Errorf("%w: %s: %w", ErrSelfTest, k.Label, err)
			}
			if len(tag1) != 32 || subtle.ConstantTimeCompare(tag1, tag2) != 1 || subtle.ConstantTimeCompare(tag1, tag3) == 1 {
				return fmt.Errorf("%w: %s: hmac tags inconsistent", ErrSelfTest, k.Label)
			}
		}
	}
	return nil
}

// rawSign is C_SignInit + C_Sign.
func (t *Token) rawSign(sh pkcs11.SessionHandle, mech []*pkcs11.Mechanism, h pkcs11.ObjectHandle, data []byte) ([]byte, error) {
	if err := t.p.SignInit(sh, mech, h); err != nil {
		return nil, fmt.Errorf("hsm: C_SignInit: %w", err)
	}
	out, err := t.p.Sign(sh, data)
	if err != nil {
		return nil, fmt.Errorf("hsm: C_Sign: %w", err)
	}
	return out, nil
}

// SignDigest signs a 32-byte SHA-256 digest with the active key of an EC
// purpose and returns the raw 64-byte r||s signature and the key's kid.
func (t *Token) SignDigest(ctx context.Context, p Purpose, digest []byte) (sig []byte, kid string, err error) {
	if len(digest) != sha256.Size {
		return nil, "", fmt.Errorf("hsm: digest has %d bytes, want 32", len(digest))
	}
	return t.signWith(ctx, p, 0, digest)
}

// signWith signs with version v of purpose p (0 = active).
func (t *Token) signWith(ctx context.Context, p Purpose, v uint32, digest []byte) (sig []byte, kid string, err error) {
	if !p.IsEC() {
		return nil, "", fmt.Errorf("%w: %s is not a signing purpose", ErrUnknownKey, p)
	}
	err = t.do(ctx, func(sh pkcs11.SessionHandle, ks *keySet) error {
		k := ks.active(p)
		if v != 0 {
			k = ks.version(p, v)
		}
		if k == nil {
			return fmt.Errorf("%w: no %s key", ErrUnknownKey, p)
		}
		s, err := t.rawSign(sh, t.mechE, k.use, digest)
		if err != nil {
			return err
		}
		if len(s) != 64 {
			return fmt.Errorf("hsm: C_Sign returned %d bytes, want 64", len(s))
		}
		sig, kid = s, k.KID
		return nil
	})
	return sig, kid, err
}

// SignES256 hashes msg with SHA-256 and signs it with the active
// token-signing key. sig is the 64-byte r||s form of JWS ES256 (RFC 7518
// §3.4); kid is the key's RFC 7638 thumbprint.
func (t *Token) SignES256(ctx context.Context, msg []byte) (sig []byte, kid string, err error) {
	d := sha256.Sum256(msg)
	return t.signWith(ctx, PurposeTokenSigning, 0, d[:])
}

// Signer returns a crypto.Signer for the currently active key of an EC
// purpose. The signer stays bound to that key version (its Public() is fixed)
// even after a rotation. Sign accepts SHA-256 digests only and returns ASN.1
// DER; it waits for a session at most Config.AcquireTimeout.
func (t *Token) Signer(p Purpose) (crypto.Signer, error) {
	if !p.IsEC() {
		return nil, fmt.Errorf("%w: %s is not a signing purpose", ErrUnknownKey, p)
	}
	k := t.keys.Load().active(p)
	if k == nil {
		return nil, fmt.Errorf("%w: no %s key", ErrUnknownKey, p)
	}
	return &signer{t: t, purpose: p, version: k.Version, pub: k.Public, kid: k.KID}, nil
}

type signer struct {
	t       *Token
	purpose Purpose
	version uint32
	pub     *ecdsa.PublicKey
	kid     string
}

func (s *signer) Public() crypto.PublicKey { return s.pub }

// KID returns the signer key's RFC 7638 thumbprint.
func (s *signer) KID() string { return s.kid }

func (s *signer) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts == nil || opts.HashFunc() != crypto.SHA256 || len(digest) != sha256.Size {
		return nil, errors.New("hsm: signer supports SHA-256 digests only")
	}
	raw, _, err := s.t.signWith(context.Background(), s.purpose, s.version, digest)
	if err != nil {
		return nil, err
	}
	return ECDSASignatureDER(raw)
}

// MAC computes HMAC-SHA256 over data in the token with the active serverData
// MAC key and returns the 32-byte tag and the key version to store beside
// the data.
func (t *Token) MAC(ctx context.Context, data []byte) (tag []byte, version uint32, err error) {
	err = t.do(ctx, func(sh pkcs11.SessionHandle, ks *keySet) error {
		k := ks.active(PurposeServerDataMAC)
		if k == nil {
			return fmt.Errorf("%w: no %s key", ErrUnknownKey, PurposeServerDataMAC)
		}
		out, err := t.rawSign(sh, t.mechH, k.use, data)
		if err != nil {
			return err
		}
		tag, version = out, k.Version
		return nil
	})
	return tag, version, err
}

// VerifyMAC recomputes the tag with MAC key version in the token and
// compares it in constant time. It returns ErrUnknownKey for an unknown
// version and ErrBadMAC for a wrong tag.
func (t *Token) VerifyMAC(ctx context.Context, version uint32, data, tag []byte) error {
	return t.verifyMAC(ctx, version, data, tag, sha256.Size)
}

// MACWithVersion computes HMAC-SHA256 over data in the token with MAC key version (an older
// version that is still loaded, or the active one). Callers that derive a value with the
// key that sealed something else use it to stay on that key across a rotation.
func (t *Token) MACWithVersion(ctx context.Context, version uint32, data []byte) ([]byte, error) {
	var tag []byte
	err := t.do(ctx, func(sh pkcs11.SessionHandle, ks *keySet) error {
		k := ks.version(PurposeServerDataMAC, version)
		if k == nil {
			return fmt.Errorf("%w: %s version %d", ErrUnknownKey, PurposeServerDataMAC, version)
		}
		out, err := t.rawSign(sh, t.mechH, k.use, data)
		tag = out
		return err
	})
	return tag, err
}

// MinTruncatedMAC is the shortest tag [Token.VerifyTruncatedMAC] accepts (128 bits).
const MinTruncatedMAC = 16

// VerifyTruncatedMAC is [Token.VerifyMAC] for a tag truncated to its first len(tag) bytes
// (at least [MinTruncatedMAC]), for formats with no room for the full tag.
func (t *Token) VerifyTruncatedMAC(ctx context.Context, version uint32, data, tag []byte) error {
	return t.verifyMAC(ctx, version, data, tag, MinTruncatedMAC)
}

// verifyMAC checks a tag of minLen to 32 bytes against the first len(tag) bytes of the MAC
// with key version. An unknown version or a tag of the wrong length is refused before a
// session is taken (both reach it from unauthenticated input).
func (t *Token) verifyMAC(ctx context.Context, version uint32, data, tag []byte, minLen int) error {
	// A closed token has no key set: t.do below reports it.
	if ks := t.keys.Load(); ks != nil && ks.version(PurposeServerDataMAC, version) == nil {
		return fmt.Errorf("%w: %s version %d", ErrUnknownKey, PurposeServerDataMAC, version)
	}
	if len(tag) < minLen || len(tag) > sha256.Size {
		return ErrBadMAC
	}
	want, err := t.MACWithVersion(ctx, version, data)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(want[:len(tag)], tag) != 1 {
		return ErrBadMAC
	}
	return nil
}

// JWKS returns the JSON Web Key Set (RFC 7517 §5) of all token-signing
// public keys, the active one and the older ones still published so that
// tokens they signed keep verifying. The bytes are built at load time.
func (t *Token) JWKS() ([]byte, error) {
	ks := t.keys.Load()
	if ks == nil {
		return nil, ErrClosed
	}
	return ks.jwks, nil
}

// PublicKey returns the public key of the EC key with this kid (any EC
// purpose, any version).
func (t *Token) PublicKey(kid string) (*ecdsa.PublicKey, bool) {
	k, ok := t.keys.Load().byKID[kid]
	if !ok || k.Public == nil {
		return nil, false
	}
	return k.Public, true
}

// ActiveKID returns the kid of the active key of purpose p, or "".
func (t *Token) ActiveKID(p Purpose) string {
	if k := t.keys.Load().active(p); k != nil {
		return k.KID
	}
	return ""
}

// Reload re-scans the token for keys (e.g. after `fidoctl hsm rotate` in
// another process), checks and self-tests them, and swaps the key set in.
// Call it on a signal or timer, never per request.
func (t *Token) Reload(ctx context.Context) error {
	if err := t.Healthy(); err != nil {
		return err
	}
	t.mod.gate.RLock()
	defer t.mod.gate.RUnlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	ks, err := t.refreshKeysLocked(ctx)
	if err != nil {
		return err
	}
	t.log.Info("hsm: keys reloaded", "keys", len(ks.byKID))
	return nil
}

// refreshKeysLocked re-finds the keys on the anchor session, copies new ones
// (reusing the copies of keys already loaded), self-tests the set and swaps it
// in. t.mu is held.
func (t *Token) refreshKeysLocked(ctx context.Context) (*keySet, error) {
	ks, err := t.findKeys(t.anchor)
	if err != nil {
		return nil, err
	}
	prev := t.keys.Load()
	t.copyKeys(ks, prev)
	if err := t.selfTest(ctx, t.anchor, ks); err != nil {
		t.destroyCopies(ks, prev)
		return nil, err
	}
	ks.gen = prev.gen + 1
	t.keys.Store(ks)
	t.destroyCopies(prev, ks)
	return ks, nil
}
