package hsm

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/pkcs11"
)

// Config configures Open. The zero value of every field except URI is usable.
type Config struct {
	// URI is the RFC 7512 pkcs11: URI naming module, token, PIN source and
	// key namespace; see [URI].
	URI string
	// Sessions is the number of pooled worker sessions. 0 means the URI's
	// max-sessions, else 4. It is capped below the token's MaxRwSessionCount.
	Sessions int
	// AcquireTimeout bounds the wait for a free session when the context has
	// no earlier deadline. 0 means 2s.
	AcquireTimeout time.Duration
	// Logger receives key-load, login, health and recovery events. nil
	// discards them. PINs are never logged.
	Logger *slog.Logger
	// RecoveryBackoff is the first delay of the background re-initialisation
	// after the HSM became unusable; it doubles up to MaxRecoveryBackoff.
	// 0 means 100ms and 10s.
	RecoveryBackoff, MaxRecoveryBackoff time.Duration
	// AllowMissingKeys lets Open succeed without a token-signing or
	// serverData MAC key (for provisioning with GenerateKey). Servers leave
	// it false.
	AllowMissingKeys bool
	// NoSessionCopies makes operations use the token objects themselves. By
	// default each key is copied once, at load, into a session object of the
	// anchor session (C_CopyObject with CKA_TOKEN false): the copy stays inside
	// the HSM, sensitive and not extractable, and vanishes with the session,
	// but operations on it skip the per-use consistency checks of persistent
	// objects (SoftHSM re-reads a token object's file on every C_SignInit:
	// ECDSA 81 → 57 µs, HMAC 46 → 16 µs per call on the reference VM). A token
	// whose policy forbids the copy (CKA_COPYABLE false) is used directly.
	NoSessionCopies bool

	// wrap, set only by tests in this package, decorates the PKCS#11
	// context to inject faults.
	wrap func(p11) p11
}

// TokenInfo describes the token a Token is logged in to.
type TokenInfo struct {
	Label, Serial, Manufacturer, Model string
	Slot                               uint
	ModulePath                         string
	Sessions                           int // pooled worker sessions
}

// pool is one generation of worker sessions; replaced is closed when a
// newer pool takes its place.
type pool struct {
	ch       chan session
	replaced chan struct{}
}

type session struct {
	h     pkcs11.SessionHandle
	epoch uint64
}

// Token is a logged-in PKCS#11 token holding the server's keys. It keeps one
// anchor session that carries the login, a bounded pool of worker sessions,
// and cached key handles and public keys. All methods are safe for
// concurrent use.
//
// When the HSM fails (device, library or session errors that a retry does
// not fix) the Token turns unhealthy: [Token.Healthy] and every operation
// return an error wrapping ErrUnavailable at once, and a background
// goroutine re-initialises the module, finds the token again by label or
// serial, logs in, re-finds the keys and self-tests them, with exponential
// backoff, until it succeeds or the Token is closed. PIN errors stop this:
// the Token stays unhealthy (wrapping ErrPIN) until restarted.
type Token struct {
	cfg   Config
	uri   *URI
	log   *slog.Logger
	mod   *module
	p     p11
	pin   []byte
	size  int
	mechE []*pkcs11.Mechanism
	mechH []*pkcs11.Mechanism

	poolPtr atomic.Pointer[pool]
	epoch   atomic.Uint64
	keys    atomic.Pointer[keySet]
	health  atomic.Pointer[error] // nil = healthy
	closed  atomic.Bool

	mu         sync.Mutex // serialises re-login, re-init, admin operations
	slot       uint
	anchor     pkcs11.SessionHandle
	hasAnchor  bool
	info       TokenInfo
	recovering bool
	stop       chan struct{}
	wg         sync.WaitGroup
}

// Open loads the module, finds the token by label or serial, logs in, finds
// the keys, checks their policy, self-tests each one and fills the session
// pool. On any failure nothing is left open.
func Open(ctx context.Context, cfg Config) (*Token, error) {
	u, err := ParseURI(cfg.URI)
	if err != nil {
		return nil, err
	}
	if cfg.AcquireTimeout <= 0 {
		cfg.AcquireTimeout = 2 * time.Second
	}
	if cfg.RecoveryBackoff <= 0 {
		cfg.RecoveryBackoff = 100 * time.Millisecond
	}
	if cfg.MaxRecoveryBackoff <= 0 {
		cfg.MaxRecoveryBackoff = 10 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	size := cfg.Sessions
	if size <= 0 {
		size = u.MaxSessions
	}
	if size <= 0 {
		size = 4
	}
	pin, err := readPIN(u)
	if err != nil {
		return nil, err
	}
	mod, err := acquireModule(u.ModulePath)
	if err != nil {
		return nil, err
	}
	t := &Token{
		cfg: cfg, uri: u, log: log.With("module", mod.path), mod: mod, p: mod.ctx, pin: pin, size: size,
		mechE: []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)},
		mechH: []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_SHA256_HMAC, nil)},
		stop:  make(chan struct{}),
	}
	if cfg.wrap != nil {
		t.p = cfg.wrap(t.p)
	}
	mod.gate.RLock()
	t.mu.Lock()
	err = t.initLocked(ctx)
	if err != nil {
		t.teardown()
	}
	t.mu.Unlock()
	mod.gate.RUnlock()
	if err != nil {
		mod.release()
		return nil, err
	}
	return t, nil
}

// Close drains the pool, closes all sessions and releases the module (the
// last Token on a module finalizes it). It never logs out: login state is
// per application and other Tokens may share it. Close is idempotent.
func (t *Token) Close() error {
	if t.closed.Swap(true) {
		return nil
	}
	close(t.stop)
	t.wg.Wait()
	t.mod.gate.RLock()
	t.mu.Lock()
	t.teardown()
	t.mu.Unlock()
	t.mod.gate.RUnlock()
	clear(t.pin)
	t.mod.release()
	return nil
}

// Healthy returns nil when the token is usable, otherwise an error wrapping
// ErrUnavailable (and ErrPIN after a refused PIN) describing the cause.
func (t *Token) Healthy() error {
	if t.closed.Load() {
		return fmt.Errorf("%w: %w", ErrUnavailable, ErrClosed)
	}
	if e := t.health.Load(); e != nil {
		return *e
	}
	return nil
}

// Info returns the token's identity and pool size.
func (t *Token) Info() TokenInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.info
}

// Keys returns every key found, ordered by purpose and version.
func (t *Token) Keys() []KeyInfo {
	ks := t.keys.Load()
	var out []KeyInfo
	for _, l := range ks.byPurpose {
		for _, k := range l {
			out = append(out, k.KeyInfo)
		}
	}
	return out
}

// teardown closes the pooled sessions and the anchor; t.mu is held.
func (t *Token) teardown() {
	if pool := t.poolChan(); pool != nil {
	drain:
		for {
			select {
			case s := <-pool:
				_ = t.p.CloseSession(s.h)
			default:
				break drain
			}
		}
	}
	if t.hasAnchor {
		_ = t.p.CloseSession(t.anchor)
		t.hasAnchor = false
	}
}

// initLocked does the whole start-up sequence on the current module state:
// slot by label/serial → anchor session → login → keys → policy → self-test
// → pool. t.mu is held.
func (t *Token) initLocked(ctx context.Context) error {
	slot, ti, err := t.findSlot()
	if err != nil {
		return err
	}
	size := t.size
	if m := ti.MaxRwSessionCount; m > 1 && m != ^uint(0) && uint(size) > m-1 {
		size = int(m - 1)
	}
	if m := ti.MaxSessionCount; m > 1 && m != ^uint(0) && uint(size) > m-1 {
		size = int(m - 1)
	}
	t.slot = slot
	t.info = TokenInfo{
		Label: strings.TrimRight(ti.Label, " "), Serial: strings.TrimRight(ti.SerialNumber, " "),
		Manufacturer: strings.TrimRight(ti.ManufacturerID, " "), Model: strings.TrimRight(ti.Model, " "),
		Slot: slot, ModulePath: t.mod.path, Sessions: size,
	}
	anchor, err := t.p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		return fmt.Errorf("hsm: C_OpenSession: %w", err)
	}
	t.anchor, t.hasAnchor = anchor, true
	if err := t.login(); err != nil {
		return err
	}
	ks, err := t.findKeys(anchor)
	if err != nil {
		return err
	}
	t.copyKeys(ks, nil)
	if err := t.selfTest(ctx, anchor, ks); err != nil {
		return err
	}
	epoch := t.epoch.Add(1)
	np := &pool{ch: make(chan session, size), replaced: make(chan struct{})}
	pool := np.ch
	for range size {
		h, err := t.p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
		if err != nil {
			for len(pool) > 0 {
				_ = t.p.CloseSession((<-pool).h)
			}
			return fmt.Errorf("hsm: C_OpenSession: %w", err)
		}
		pool <- session{h: h, epoch: epoch}
	}
	if prev := t.keys.Load(); prev != nil {
		ks.gen = prev.gen + 1
	}
	t.keys.Store(ks)
	oldp := t.poolPtr.Swap(np)
	if oldp != nil {
		close(oldp.replaced)
		old := oldp.ch
		// Borrowed sessions of the old epoch are closed on return.
	drain:
		for {
			select {
			case s := <-old:
				_ = t.p.CloseSession(s.h)
			default:
				break drain
			}
		}
	}
	t.info.Sessions = size
	for _, k := range t.Keys() {
		t.log.Info("hsm: key loaded", "purpose", k.Purpose.String(), "version", k.Version, "kid", k.KID,
			"label", k.Label, "id", fmt.Sprintf("%x", k.ID), "active", k.Active, "token_serial", t.info.Serial)
	}
	t.log.Info("hsm: token ready", "token", t.info.Label, "serial", t.info.Serial, "slot", slot, "sessions", size)
	return nil
}

// findSlot finds the token by label or serial among present tokens.
func (t *Token) findSlot() (uint, pkcs11.TokenInfo, error) {
	slots, err := t.p.GetSlotList(true)
	if err != nil {
		return 0, pkcs11.TokenInfo{}, fmt.Errorf("hsm: C_GetSlotList: %w", err)
	}
	found := -1
	var info pkcs11.TokenInfo
	for i, s := range slots {
		ti, err := t.p.GetTokenInfo(s)
		if err != nil {
			continue
		}
		if ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
			continue
		}
		match := t.uri.Token != "" && strings.TrimRight(ti.Label, " ") == t.uri.Token ||
			t.uri.Serial != "" && strings.TrimRight(ti.SerialNumber, " ") == t.uri.Serial
		if !match {
			continue
		}
		if found >= 0 {
			return 0, info, fmt.Errorf("%w: more than one token matches %q", ErrConfig, t.uri.Token+t.uri.Serial)
		}
		found, info = i, ti
	}
	if found < 0 {
		return 0, info, fmt.Errorf("%w: token=%q serial=%q", ErrTokenNotFound, t.uri.Token, t.uri.Serial)
	}
	return slots[found], info, nil
}

// login logs the user in on the anchor session. Already-logged-in is
// success. A PIN error is returned wrapping ErrPIN and is never retried.
func (t *Token) login() error {
	err := t.p.Login(t.anchor, pkcs11.CKU_USER, string(t.pin))
	if err == nil || errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)) {
		t.log.Info("hsm: logged in", "token", t.info.Label, "serial", t.info.Serial)
		return nil
	}
	if classify(err) == classPIN {
		t.log.Error("hsm: login refused; not retrying", "token", t.info.Label, "err", err)
		return fmt.Errorf("hsm: C_Login: %w: %w", ErrPIN, err)
	}
	return fmt.Errorf("hsm: C_Login: %w", err)
}

// findObjects returns the handles matching tmpl (bounded).
func (t *Token) findObjects(sh pkcs11.SessionHandle, tmpl []*pkcs11.Attribute) ([]pkcs11.ObjectHandle, error) {
	if err := t.p.FindObjectsInit(sh, tmpl); err != nil {
		return nil, fmt.Errorf("hsm: C_FindObjectsInit: %w", err)
	}
	var out []pkcs11.ObjectHandle
	for len(out) < 10000 {
		hs, _, err := t.p.FindObjects(sh, 100)
		if err != nil {
			_ = t.p.FindObjectsFinal(sh)
			return nil, fmt.Errorf("hsm: C_FindObjects: %w", err)
		}
		if len(hs) == 0 {
			break
		}
		out = append(out, hs...)
	}
	if err := t.p.FindObjectsFinal(sh); err != nil {
		return nil, fmt.Errorf("hsm: C_FindObjectsFinal: %w", err)
	}
	return out, nil
}

func (t *Token) attrs(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, types ...uint) (map[uint]*pkcs11.Attribute, error) {
	m := make(map[uint]*pkcs11.Attribute, len(types))
	for _, typ := range types {
		// One attribute per call: a token answers CKR_ATTRIBUTE_TYPE_INVALID
		// for the whole template if any one is unknown.
		got, err := t.p.GetAttributeValue(sh, o, []*pkcs11.Attribute{pkcs11.NewAttribute(typ, nil)})
		if err != nil {
			if errors.Is(err, pkcs11.Error(pkcs11.CKR_ATTRIBUTE_TYPE_INVALID)) || errors.Is(err, pkcs11.Error(pkcs11.CKR_ATTRIBUTE_SENSITIVE)) {
				continue
			}
			return nil, fmt.Errorf("hsm: C_GetAttributeValue: %w", err)
		}
		if len(got) == 1 {
			m[typ] = got[0]
		}
	}
	return m, nil
}

// findKeys finds and checks all keys in the configured namespace.
func (t *Token) findKeys(sh pkcs11.SessionHandle) (*keySet, error) {
	ks := &keySet{byKID: map[string]*key{}}
	for _, class := range []uint{pkcs11.CKO_PRIVATE_KEY, pkcs11.CKO_SECRET_KEY} {
		// Only persistent objects: the session copies (see copyKeys) share CKA_ID.
		hs, err := t.findObjects(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true)})
		if err != nil {
			return nil, err
		}
		for _, h := range hs {
			a, err := t.attrs(sh, h, pkcs11.CKA_ID, pkcs11.CKA_LABEL, pkcs11.CKA_KEY_TYPE, pkcs11.CKA_VALUE_LEN,
				pkcs11.CKA_SENSITIVE, pkcs11.CKA_EXTRACTABLE, pkcs11.CKA_ALWAYS_SENSITIVE, pkcs11.CKA_NEVER_EXTRACTABLE,
				pkcs11.CKA_TOKEN, pkcs11.CKA_PRIVATE, pkcs11.CKA_SIGN, pkcs11.CKA_DECRYPT, pkcs11.CKA_UNWRAP,
				pkcs11.CKA_DERIVE, pkcs11.CKA_WRAP, pkcs11.CKA_ENCRYPT)
			if err != nil {
				return nil, err
			}
			var id []byte
			if a[pkcs11.CKA_ID] != nil {
				id = a[pkcs11.CKA_ID].Value
			}
			purpose, version, ok := parseKeyID(t.uri.ID, id)
			if !ok {
				continue // not ours
			}
			label := ""
			if a[pkcs11.CKA_LABEL] != nil {
				label = string(a[pkcs11.CKA_LABEL].Value)
			}
			if purpose.IsEC() != (class == pkcs11.CKO_PRIVATE_KEY) {
				return nil, &PolicyError{Label: label, ID: id, Reason: "object class does not match the purpose in CKA_ID"}
			}
			if err := checkPolicy(label, id, a, func(attr string) {
				t.log.Warn("hsm: key allows more than signing", "label", label, "attribute", attr)
			}); err != nil {
				return nil, err
			}
			k := &key{KeyInfo: KeyInfo{Purpose: purpose, Version: version, Label: label, ID: id}, handle: h, use: h}
			if purpose.IsEC() {
				if kt := attrUint(a[pkcs11.CKA_KEY_TYPE]); kt != pkcs11.CKK_EC {
					return nil, &PolicyError{Label: label, ID: id, Reason: fmt.Sprintf("key type %#x, want CKK_EC", kt)}
				}
				pub, err := t.findPublic(sh, id)
				if err != nil {
					return nil, fmt.Errorf("hsm: key %s: %w", label, err)
				}
				k.Public, k.KID = pub, Thumbprint(pub)
			} else {
				if kt := attrUint(a[pkcs11.CKA_KEY_TYPE]); kt != pkcs11.CKK_GENERIC_SECRET && kt != pkcs11.CKK_SHA256_HMAC {
					return nil, &PolicyError{Label: label, ID: id, Reason: fmt.Sprintf("key type %#x, want a generic secret", kt)}
				}
				if n := attrUint(a[pkcs11.CKA_VALUE_LEN]); n != 0 && n < 32 {
					return nil, &PolicyError{Label: label, ID: id, Reason: fmt.Sprintf("HMAC key of %d bytes, want >= 32", n)}
				}
				k.KID = purpose.String() + "-v" + fmt.Sprint(version)
			}
			if ks.version(purpose, version) != nil {
				return nil, fmt.Errorf("%w: two keys with CKA_ID %x", ErrConfig, id)
			}
			ks.byPurpose[purpose] = append(ks.byPurpose[purpose], k)
		}
	}
	var signing []*key
	for p := range ks.byPurpose {
		l := ks.byPurpose[p]
		if len(l) == 0 {
			continue
		}
		sortKeys(l)
		l[len(l)-1].Active = true
		for _, k := range l {
			ks.byKID[k.KID] = k
		}
		if Purpose(p) == PurposeTokenSigning {
			signing = l
		}
	}
	if !t.cfg.AllowMissingKeys {
		for _, p := range []Purpose{PurposeTokenSigning, PurposeServerDataMAC} {
			if ks.active(p) == nil {
				return nil, fmt.Errorf("%w: no %s key (CKA_ID prefix %x) in token %q", ErrNoKey, p, t.uri.ID, t.info.Label)
			}
		}
	}
	jwks, err := buildJWKS(signing)
	if err != nil {
		return nil, fmt.Errorf("hsm: jwks: %w", err)
	}
	ks.jwks = jwks
	return ks, nil
}

func sortKeys(l []*key) {
	for i := 1; i < len(l); i++ {
		for j := i; j > 0 && l[j].Version < l[j-1].Version; j-- {
			l[j], l[j-1] = l[j-1], l[j]
		}
	}
}

func (t *Token) findPublic(sh pkcs11.SessionHandle, id []byte) (*ecdsa.PublicKey, error) {
	hs, err := t.findObjects(sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	})
	if err != nil {
		return nil, err
	}
	if len(hs) != 1 {
		return nil, fmt.Errorf("%w: want one public key with CKA_ID %x, found %d", ErrConfig, id, len(hs))
	}
	a, err := t.attrs(sh, hs[0], pkcs11.CKA_EC_PARAMS, pkcs11.CKA_EC_POINT)
	if err != nil {
		return nil, err
	}
	if a[pkcs11.CKA_EC_PARAMS] == nil || string(a[pkcs11.CKA_EC_PARAMS].Value) != string(p256Params) {
		return nil, fmt.Errorf("%w: public key %x is not on P-256", ErrConfig, id)
	}
	if a[pkcs11.CKA_EC_POINT] == nil {
		return nil, fmt.Errorf("%w: public key %x has no CKA_EC_POINT", ErrConfig, id)
	}
	return ParseECPoint(a[pkcs11.CKA_EC_POINT].Value)
}
