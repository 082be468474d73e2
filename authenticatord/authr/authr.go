package authr

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"

	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/fidoserver/hwfido/authenticatord/asm"
	"github.com/fidoserver/hwfido/authenticatord/keystore"
	"github.com/fidoserver/hwfido/authenticatord/tpm"
	"github.com/fidoserver/hwfido/internal/atomicfile"
	"github.com/fidoserver/hwfido/uaf"
)

// DefaultAAID is the AAID of hwfido's TPM authenticator: vendor 0x4857
// ("HW" in ASCII, not a FIDO-assigned vendor ID — replace it with your own
// for production metadata), model 0x0001.
const DefaultAAID = "4857#0001"

// AuthenticatorVersion is the authenticatorVersion in ASSERTION_INFO and
// the metadata statement.
const AuthenticatorVersion uint16 = 1

// NonceSize is the size of the AUTHENTICATOR_NONCE in SIGNED_DATA.
const NonceSize = 32

// LocalCaller is the caller of local OS user uid (the peer of the daemon's socket).
func LocalCaller(uid uint32) Caller { return Caller{UID: uid, CallerID: "authenticatord-local"} }

// Bound is an Authenticator bound to one caller: the authenticator a FIDO client
// (uafclient) drives on that caller's behalf.
type Bound struct {
	a *Authenticator
	c Caller
}

// Bind returns a bound to caller c.
func (a *Authenticator) Bind(c Caller) Bound { return Bound{a: a, c: c} }

// Info is [Authenticator.Info] for the bound caller.
func (b Bound) Info() asm.AuthenticatorInfo { return b.a.Info(b.c) }

// KeyIDs lists the bound caller's key IDs for appID.
func (b Bound) KeyIDs(appID string) ([]string, error) {
	regs, err := b.a.Registrations(b.c)
	if err != nil {
		return nil, err
	}
	for _, r := range regs.AppRegs {
		if r.AppID == appID {
			return r.KeyIDs, nil
		}
	}
	return nil, nil
}

// Register is [Authenticator.Register] for the bound caller.
func (b Bound) Register(in asm.RegisterIn, pin []byte) (*asm.RegisterOut, error) {
	return b.a.Register(b.c, in, pin)
}

// Authenticate is [Authenticator.Authenticate] for the bound caller.
func (b Bound) Authenticate(in asm.AuthenticateIn, pin []byte) (*asm.AuthenticateOut, error) {
	return b.a.Authenticate(b.c, in, pin)
}

// Deregister is [Authenticator.Deregister] for the bound caller.
func (b Bound) Deregister(in asm.DeregisterIn) error { return b.a.Deregister(b.c, in) }

// StatusOf is [StatusOf].
func (b Bound) StatusOf(err error) uaf.ASMStatus { return StatusOf(err) }

// Caller identifies who is asking: the peer of the local socket.
type Caller struct {
	// UID is the peer's OS user (SO_PEERCRED); it selects the key store
	// file and is the ASM PersonaID.
	UID uint32
	// CallerID is the ASM CallerID (UAF ASM API §6); the daemon uses the
	// constant "authenticatord-local" since it cannot authenticate the
	// calling program beyond its uid.
	CallerID string
}

// Options configures [New].
type Options struct {
	// TPM is the open TPM holding the keys. Required.
	TPM *tpm.TPM
	// StateDir holds users/<uid>.json key stores, the ASM token and the
	// attestation material. Created 0700 if missing. Required.
	StateDir string
	// AAID is the authenticator's AAID; "" means [DefaultAAID].
	AAID string
	// Logger receives operational events; Audit receives key creation,
	// signing and deregistration events. Nil discards. Neither ever sees a
	// PIN, a key blob or the ASM token.
	Logger, Audit *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// PINTriesPerUser is how many wrong PINs one OS user may hold before its PIN tries
	// are refused without asking the TPM (USER_LOCKOUT), so that one user cannot lock the
	// TPM, whose failure counter is global, for all. 0 means no per-user limit.
	PINTriesPerUser int
	// PINTryRecovery is how often one of a user's wrong PINs is forgotten (the TPM's DA
	// recovery time); 0 means tpm.DefaultDAParams.RecoveryTime.
	PINTryRecovery time.Duration
}

// Authenticator is the UAF authenticator plus ASM: it owns the TPM, the
// per-user key stores and the attestation material. It is safe for
// concurrent use.
type Authenticator struct {
	tpm      *tpm.TPM
	dir      string
	aaid     string
	log      *slog.Logger
	audit    *slog.Logger
	now      func() time.Time
	asmToken []byte

	mu     sync.Mutex
	stores map[uint32]*keystore.Store
	ctrMu  sync.Mutex
	ctrs   map[string]*ctrWindow // uid/aaid/keyID → reserved sign counters, under ctrMu
	att    *attestation          // nil until a certificate is installed
	akPend *tpm.KeyBlob          // attestation key created but not yet certified
	pins   *pinGuard             // wrong PINs per OS user (nil: no limit)
}

// New opens the authenticator state in opts.StateDir.
func New(opts Options) (*Authenticator, error) {
	if opts.TPM == nil {
		return nil, errors.New("authr: Options.TPM is required")
	}
	if opts.StateDir == "" {
		return nil, errors.New("authr: Options.StateDir is required")
	}
	a := &Authenticator{tpm: opts.TPM, dir: opts.StateDir, aaid: opts.AAID, log: opts.Logger, audit: opts.Audit,
		now: opts.Now, stores: map[uint32]*keystore.Store{}, ctrs: map[string]*ctrWindow{}}
	if a.aaid == "" {
		a.aaid = DefaultAAID
	}
	if !uaf.ValidAAID(a.aaid) {
		return nil, fmt.Errorf("authr: AAID %q is not VVVV#MMMM", a.aaid)
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.audit == nil {
		a.audit = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if opts.PINTriesPerUser > 0 {
		rec := opts.PINTryRecovery
		if rec <= 0 {
			rec = tpm.DefaultDAParams.RecoveryTime
		}
		a.pins = newPINGuard(opts.PINTriesPerUser, rec)
	}
	for _, d := range []string{a.dir, filepath.Join(a.dir, "users"), filepath.Join(a.dir, "attestation")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("authr: state dir: %w", err)
		}
	}
	tok, err := loadOrCreateSecret(filepath.Join(a.dir, "asm-token"))
	if err != nil {
		return nil, err
	}
	a.asmToken = tok
	if err := a.loadAttestation(); err != nil {
		return nil, err
	}
	return a, nil
}

// AAID returns the authenticator's AAID.
func (a *Authenticator) AAID() string { return a.aaid }

// loadOrCreateSecret reads a 32-byte secret file, creating it (0600) if absent.
func loadOrCreateSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path) //nolint:gosec // path inside our state dir
	if err == nil {
		if len(b) != 32 {
			return nil, fmt.Errorf("authr: %s: %d bytes, want 32", filepath.Base(path), len(b))
		}
		return b, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("authr: read %s: %w", filepath.Base(path), err)
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("authr: asm token: %w", err)
	}
	if err := atomicfile.Write(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("authr: asm token: %w", err)
	}
	return b, nil
}

// store returns the key store of uid, opening it on first use.
func (a *Authenticator) store(uid uint32) (*keystore.Store, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s, ok := a.stores[uid]; ok {
		return s, nil
	}
	s, err := keystore.Open(filepath.Join(a.dir, "users", strconv.FormatUint(uint64(uid), 10)+".json"), keystore.Options{Now: a.now})
	if err != nil {
		return nil, fmt.Errorf("authr: key store of uid %d: %w", uid, err)
	}
	a.stores[uid] = s
	return s, nil
}

// khAccessToken computes KHAccessToken = SHA-256(AppID ‖ ASMToken ‖
// PersonaID ‖ CallerID) (UAF ASM API §6.1), each part length-prefixed so
// that no two inputs collide.
func (a *Authenticator) khAccessToken(c Caller, appID string) []byte {
	h := sha256.New()
	for _, p := range [][]byte{[]byte(appID), a.asmToken, []byte(strconv.FormatUint(uint64(c.UID), 10)), []byte(c.CallerID)} {
		var l [4]byte
		binary.BigEndian.PutUint32(l[:], uint32(len(p))) //nolint:gosec // lengths are small
		h.Write(l[:])
		h.Write(p)
	}
	return h.Sum(nil)
}

// Info returns the GetInfo description of this authenticator for c.
func (a *Authenticator) Info(c Caller) asm.AuthenticatorInfo {
	enrolled := false
	if s, err := a.store(c.UID); err == nil {
		enrolled = len(s.List("")) > 0
	}
	return asm.AuthenticatorInfo{
		AuthenticatorIndex: 0, ASMVersions: []uaf.Version{uaf.Version11}, IsUserEnrolled: enrolled,
		AAID: a.aaid, AssertionScheme: uaf.AssertionSchemeUAFV1TLV,
		AuthenticationAlgorithm: uaf.AlgSECP256R1ECDSASHA256Raw, AttestationTypes: a.AttestationTypes(),
		UserVerification: uaf.UserVerifyPasscode, KeyProtection: KeyProtection, MatcherProtection: uaf.MatcherProtectionOnChip,
		AttachmentHint: uaf.AttachmentInternal, SupportedExtensionIDs: []string{}, TCDisplay: uaf.TCDisplayAny,
		TCDisplayContentType: "text/plain", Title: "hwfido TPM", Description: Description,
	}
}

// AttestationTypes lists the attestation types this authenticator can
// produce now: Basic Full first when a certificate is installed, then
// Basic Surrogate.
func (a *Authenticator) AttestationTypes() []uaf.AttestationType {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.att != nil {
		return []uaf.AttestationType{uaf.AttestationBasicFull, uaf.AttestationBasicSurrogate}
	}
	return []uaf.AttestationType{uaf.AttestationBasicSurrogate}
}

func decodeB64URL(s string) ([]byte, error) {
	if b, err := base64.RawURLEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.URLEncoding.DecodeString(s)
}

func checkAppID(appID string) error {
	if appID == "" || len(appID) > 512 || !utf8.ValidString(appID) {
		return badRequest("appID must be 1..512 bytes of UTF-8")
	}
	return nil
}

// Register creates a new UAuth key in the TPM gated by pin and returns the
// registration assertion (UAF Authenticator Commands §6.2.4): a KRD with
// fresh KeyID, the FinalChallengeHash of in.FinalChallenge, counters
// (sign 0, reg n) and the public key (ALG_KEY_ECC_X962_RAW), signed with
// the attestation key (Basic Full) or the new key itself (Basic Surrogate).
func (a *Authenticator) Register(c Caller, in asm.RegisterIn, pin []byte) (*asm.RegisterOut, error) {
	if err := checkAppID(in.AppID); err != nil {
		return nil, fail(uaf.ASMError, "register", err)
	}
	if in.Username == "" || len(in.Username) > 128 {
		return nil, fail(uaf.ASMError, "register", badRequest("username must be 1..128 bytes"))
	}
	if in.FinalChallenge == "" {
		return nil, fail(uaf.ASMError, "register", badRequest("finalChallenge is required"))
	}
	if len(pin) == 0 {
		return nil, fail(uaf.ASMAccessDenied, "register", tpm.ErrEmptyPIN)
	}
	a.mu.Lock()
	att := a.att
	a.mu.Unlock()
	switch in.AttestationType {
	case uaf.AttestationBasicSurrogate:
	case uaf.AttestationBasicFull:
		if att == nil {
			return nil, fail(uaf.ASMError, "register", ErrAttestationUnavailable)
		}
	default:
		return nil, fail(uaf.ASMError, "register", fmt.Errorf("%w: 0x%04x", ErrAttestationUnavailable, uint16(in.AttestationType)))
	}
	st, err := a.store(c.UID)
	if err != nil {
		return nil, err
	}
	kb, err := a.tpm.CreateKey(pin)
	if err != nil {
		return nil, fmt.Errorf("authr: register: %w", err)
	}
	pub, err := kb.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("authr: register: %w", err)
	}
	// The PIN is verified by the TPM when the key is first used: a
	// Basic Surrogate registration signs with it below; for Basic Full we
	// prove the PIN with a throw-away signature so that a wrong PIN at
	// registration cannot create an unusable key (UAF: "verify the user").
	keyID, err := keystore.NewKeyID()
	if err != nil {
		return nil, err
	}
	regCtr, err := st.NextRegCounter()
	if err != nil {
		return nil, fmt.Errorf("authr: register: %w", err)
	}
	fch := sha256.Sum256([]byte(in.FinalChallenge))
	krd, err := buildKRD(krdFields{AAID: a.aaid, FinalChallengeHash: fch[:], KeyID: keyID, SignCounter: 0,
		RegCounter: regCtr, PublicKey: pub})
	if err != nil {
		return nil, fmt.Errorf("authr: register: %w", err)
	}
	var assertion []byte
	if in.AttestationType == uaf.AttestationBasicFull {
		if _, err := a.tpm.SignMessage(kb, pin, krd); err != nil {
			return nil, fmt.Errorf("authr: register: verify user: %w", err)
		}
		sig, err := a.tpm.AttestationSignMessage(att.key, krd)
		if err != nil {
			return nil, fmt.Errorf("authr: register: attestation sign: %w", err)
		}
		assertion, err = assembleReg(krd, uaf.AttestationBasicFull, sig, att.chainDER)
		if err != nil {
			return nil, fmt.Errorf("authr: register: %w", err)
		}
	} else {
		sig, err := a.tpm.SignMessage(kb, pin, krd)
		if err != nil {
			return nil, fmt.Errorf("authr: register: %w", err)
		}
		assertion, err = assembleReg(krd, uaf.AttestationBasicSurrogate, sig, nil)
		if err != nil {
			return nil, fmt.Errorf("authr: register: %w", err)
		}
	}
	rec := keystore.Record{AAID: a.aaid, KeyID: keyID, AppID: in.AppID, Username: in.Username,
		KHAccessToken: a.khAccessToken(c, in.AppID), Key: *kb}
	if err := st.Add(rec); err != nil {
		return nil, fmt.Errorf("authr: register: %w", err)
	}
	a.audit.Info("uaf key registered", "uid", c.UID, "aaid", a.aaid, "keyID", base64.RawURLEncoding.EncodeToString(keyID),
		"appID", in.AppID, "attestation", in.AttestationType.String(), "regCounter", regCtr)
	return &asm.RegisterOut{Assertion: base64.RawURLEncoding.EncodeToString(assertion), AssertionScheme: uaf.AssertionSchemeUAFV1TLV}, nil
}

// Authenticate signs a UAF authentication assertion (UAF Authenticator
// Commands §6.3.4) with the newest of c's keys bound to in.AppID and
// in.KeyIDs (any if empty) whose KHAccessToken matches. With a transaction
// (the caller has shown it and the user confirmed), the mode is 0x02 and
// TRANSACTION_CONTENT_HASH = SHA-256 of the decoded content; otherwise the
// mode is 0x01 and the hash empty. The sign counter is persisted before
// signing, so it never goes back.
func (a *Authenticator) Authenticate(c Caller, in asm.AuthenticateIn, pin []byte) (*asm.AuthenticateOut, error) {
	if err := checkAppID(in.AppID); err != nil {
		return nil, fail(uaf.ASMError, "authenticate", err)
	}
	if in.FinalChallenge == "" {
		return nil, fail(uaf.ASMError, "authenticate", badRequest("finalChallenge is required"))
	}
	if len(in.Transaction) > 1 {
		return nil, fail(uaf.ASMError, "authenticate", badRequest("at most one transaction (text/plain) is supported"))
	}
	var txHash []byte
	mode := byte(0x01)
	if len(in.Transaction) == 1 {
		tx := in.Transaction[0]
		if tx.ContentType != "text/plain" {
			return nil, fail(uaf.ASMCannotRenderTransactionContent, "authenticate", badRequest("content type %q", tx.ContentType))
		}
		content, err := decodeB64URL(tx.Content)
		if err != nil || len(content) == 0 || !utf8.Valid(content) {
			return nil, fail(uaf.ASMCannotRenderTransactionContent, "authenticate", badRequest("transaction content is not base64url UTF-8"))
		}
		if err := uaf.CheckTransactionText(string(content)); err != nil {
			return nil, fail(uaf.ASMCannotRenderTransactionContent, "authenticate", badRequest("%v", err))
		}
		h := sha256.Sum256(content)
		txHash, mode = h[:], 0x02
	}
	if len(pin) == 0 {
		return nil, fail(uaf.ASMAccessDenied, "authenticate", tpm.ErrEmptyPIN)
	}
	st, err := a.store(c.UID)
	if err != nil {
		return nil, err
	}
	rec, err := a.pick(c, st, in.AppID, in.KeyIDs)
	if err != nil {
		return nil, err
	}
	ctr, err := a.nextSignCounter(c, st, rec)
	if err != nil {
		return nil, fmt.Errorf("authr: authenticate: %w", err)
	}
	nonce := make([]byte, NonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("authr: nonce: %w", err)
	}
	fch := sha256.Sum256([]byte(in.FinalChallenge))
	sd, err := buildSignedData(signedDataFields{AAID: rec.AAID, Mode: mode, Nonce: nonce, FinalChallengeHash: fch[:],
		TransactionContentHash: txHash, KeyID: rec.KeyID, SignCounter: ctr})
	if err != nil {
		return nil, fmt.Errorf("authr: authenticate: %w", err)
	}
	done, err := a.pinTry(c)
	if err != nil {
		return nil, err
	}
	sig, err := a.tpm.SignMessage(&rec.Key, pin, sd)
	done(err)
	if err != nil {
		a.audit.Warn("uaf sign refused", "uid", c.UID, "keyID", base64.RawURLEncoding.EncodeToString(rec.KeyID),
			"status", StatusOf(err))
		return nil, fmt.Errorf("authr: authenticate: %w", err)
	}
	assertion, err := assembleAuth(sd, sig)
	if err != nil {
		return nil, fmt.Errorf("authr: authenticate: %w", err)
	}
	a.audit.Info("uaf assertion signed", "uid", c.UID, "keyID", base64.RawURLEncoding.EncodeToString(rec.KeyID),
		"appID", in.AppID, "signCounter", ctr, "transaction", mode == 0x02)
	return &asm.AuthenticateOut{Assertion: base64.RawURLEncoding.EncodeToString(assertion), AssertionScheme: uaf.AssertionSchemeUAFV1TLV}, nil
}

// pick selects the newest record of appID among keyIDs (any if empty)
// whose KHAccessToken matches c.
func (a *Authenticator) pick(c Caller, st *keystore.Store, appID string, keyIDs []string) (*keystore.Record, error) {
	var want [][]byte
	for _, k := range keyIDs {
		b, err := decodeB64URL(k)
		if err != nil {
			return nil, fail(uaf.ASMError, "authenticate", badRequest("keyID is not base64url"))
		}
		want = append(want, b)
	}
	tok := a.khAccessToken(c, appID)
	var best *keystore.Record
	recs := st.List(appID)
	for i := range recs {
		r := &recs[i]
		if !bytes.EqualFold([]byte(r.AAID), []byte(a.aaid)) || subtle.ConstantTimeCompare(r.KHAccessToken, tok) != 1 {
			continue
		}
		if len(want) > 0 && !containsKey(want, r.KeyID) {
			continue
		}
		if best == nil || !r.Created.Before(best.Created) {
			best = r
		}
	}
	if best == nil {
		return nil, fail(uaf.ASMAccessDenied, "authenticate", ErrNoKey)
	}
	return best, nil
}

func containsKey(list [][]byte, k []byte) bool {
	for _, w := range list {
		if len(w) == len(k) && subtle.ConstantTimeCompare(w, k) == 1 {
			return true
		}
	}
	return false
}

// Deregister deletes c's key in.KeyID of in.AppID, or all of c's keys of
// the AppID when KeyID is "" (UAF ASM API §4.4). It does not reveal
// whether a key existed.
func (a *Authenticator) Deregister(c Caller, in asm.DeregisterIn) error {
	if err := checkAppID(in.AppID); err != nil {
		return fail(uaf.ASMError, "deregister", err)
	}
	var keyID []byte
	if in.KeyID != "" {
		b, err := decodeB64URL(in.KeyID)
		if err != nil {
			return fail(uaf.ASMError, "deregister", badRequest("keyID is not base64url"))
		}
		keyID = b
	}
	st, err := a.store(c.UID)
	if err != nil {
		return err
	}
	if err := st.Delete(a.aaid, in.AppID, keyID); err != nil {
		return fmt.Errorf("authr: deregister: %w", err)
	}
	// The deleted key may be the one kept loaded for the next signature.
	a.tpm.ForgetKeys()
	a.audit.Info("uaf key deregistered", "uid", c.UID, "appID", in.AppID, "keyID", in.KeyID)
	return nil
}

// Registrations returns c's registrations grouped by AppID (ASM
// GetRegistrations), sorted by AppID.
func (a *Authenticator) Registrations(c Caller) (asm.GetRegistrationsOut, error) {
	st, err := a.store(c.UID)
	if err != nil {
		return asm.GetRegistrationsOut{}, err
	}
	byApp := map[string][]string{}
	for _, r := range st.List("") {
		byApp[r.AppID] = append(byApp[r.AppID], base64.RawURLEncoding.EncodeToString(r.KeyID))
	}
	out := asm.GetRegistrationsOut{AppRegs: []asm.AppRegistration{}}
	for app, ids := range byApp {
		out.AppRegs = append(out.AppRegs, asm.AppRegistration{AppID: app, KeyIDs: ids})
	}
	sort.Slice(out.AppRegs, func(i, j int) bool { return out.AppRegs[i].AppID < out.AppRegs[j].AppID })
	return out, nil
}

// Records returns c's key records (for listing; blobs included, never
// send them over the wire).
func (a *Authenticator) Records(c Caller) ([]keystore.Record, error) {
	st, err := a.store(c.UID)
	if err != nil {
		return nil, err
	}
	return st.List(""), nil
}

// ChangePIN re-wraps every key of c under newPIN (TPM2_ObjectChangeAuth,
// the TPM checks oldPIN) and returns how many keys were changed. It stops
// at the first failure: keys already changed keep the new PIN, the rest
// the old one, and the error says how many were done.
func (a *Authenticator) ChangePIN(c Caller, oldPIN, newPIN []byte) (int, error) {
	if len(newPIN) == 0 || len(oldPIN) == 0 {
		return 0, fail(uaf.ASMAccessDenied, "change pin", tpm.ErrEmptyPIN)
	}
	st, err := a.store(c.UID)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range st.List("") {
		done, err := a.pinTry(c)
		if err != nil {
			return n, err
		}
		nb, err := a.tpm.ChangePIN(&r.Key, oldPIN, newPIN)
		done(err)
		if err != nil {
			return n, fmt.Errorf("authr: change pin (%d keys changed): %w", n, err)
		}
		if err := st.ReplaceKey(r.AAID, r.KeyID, *nb); err != nil {
			return n, fmt.Errorf("authr: change pin (%d keys changed): %w", n, err)
		}
		n++
	}
	a.audit.Info("pin changed", "uid", c.UID, "keys", n)
	return n, nil
}

// CounterBlock is how many sign counter values are reserved on disk at a
// time (see [keystore.Store.ReserveSignCounters]): a restart skips at most
// this many values; counters never repeat or go back.
const CounterBlock = 32

// ctrWindow is a reserved block of sign counters: next..last are unused.
type ctrWindow struct{ next, last uint32 }

// nextSignCounter hands out the next signature counter of rec from the
// in-memory reserved block, reserving (and persisting) a new block when it
// is used up.
func (a *Authenticator) nextSignCounter(c Caller, st *keystore.Store, rec *keystore.Record) (uint32, error) {
	k := strconv.FormatUint(uint64(c.UID), 10) + "/" + rec.AAID + "/" + base64.RawURLEncoding.EncodeToString(rec.KeyID)
	a.ctrMu.Lock()
	defer a.ctrMu.Unlock()
	w := a.ctrs[k]
	if w == nil || w.next > w.last || w.next == 0 {
		first, last, err := st.ReserveSignCounters(rec.AAID, rec.KeyID, CounterBlock)
		if err != nil {
			return 0, err
		}
		w = &ctrWindow{next: first, last: last}
		a.ctrs[k] = w
	}
	v := w.next
	if w.next == w.last {
		w.next, w.last = 1, 0 // exhausted: reserve on next use
	} else {
		w.next++
	}
	return v, nil
}

// pinTry reserves a PIN try of c's user, or refuses it while the user holds its share of
// the TPM's dictionary-attack tries (see pinGuard). done records the TPM's answer: a wrong
// PIN (the TPM's authorisation failure) counts against the user.
func (a *Authenticator) pinTry(c Caller) (done func(error), err error) {
	release, wait := a.pins.reserve(c.UID, a.now())
	if wait > 0 {
		a.audit.Warn("pin try refused: too many wrong PINs from this user", "uid", c.UID, "retryAfter", wait.Round(time.Second))
		return nil, fail(uaf.ASMUserLockout, fmt.Sprintf("too many wrong PINs from this user; try again in %s", wait.Round(time.Second)), nil)
	}
	return func(err error) {
		release(err != nil && tpm.StatusOf(err) == tpm.StatusAccessDenied, a.now())
	}, nil
}
