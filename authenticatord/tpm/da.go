package tpm

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-tpm/tpm2"
)

// DAStatus is the TPM's dictionary-attack state (TPM_PT_LOCKOUT_* and the
// inLockout bit of TPM_PT_PERMANENT). The lockout is global: one user's
// wrong PINs lock every DA-protected key on the TPM.
type DAStatus struct {
	// Counter is the current number of authorisation failures.
	Counter uint32
	// MaxTries is the number of failures that puts the TPM in lockout.
	MaxTries uint32
	// RecoveryTime is the time after which one failure is forgotten
	// (TPM_PT_LOCKOUT_INTERVAL); zero means failures are never forgotten.
	RecoveryTime time.Duration
	// LockoutRecovery is the wait after a failed lockoutAuth attempt.
	LockoutRecovery time.Duration
	// InLockout reports whether DA-protected keys are currently refused.
	InLockout bool
}

// Remaining returns the number of wrong PINs the TPM still accepts before
// lockout.
func (s DAStatus) Remaining() uint32 {
	if s.InLockout || s.Counter >= s.MaxTries {
		return 0
	}
	return s.MaxTries - s.Counter
}

// RetryAfter returns how long until the TPM forgets one failure and leaves
// lockout, as a coarse upper bound for the "retry after" hint (the TPM does
// not report time already elapsed); zero when not locked out.
func (s DAStatus) RetryAfter() time.Duration {
	if !s.InLockout {
		return 0
	}
	return s.RecoveryTime
}

// DAStatus reads the dictionary-attack state.
func (t *TPM) DAStatus() (DAStatus, error) {
	if err := t.lock(); err != nil {
		return DAStatus{}, err
	}
	defer t.mu.Unlock()
	rsp, err := tpm2.GetCapability{
		Capability:    tpm2.TPMCapTPMProperties,
		Property:      uint32(tpm2.TPMPTPermanent),
		PropertyCount: 32,
	}.Execute(t.tpm)
	if err != nil {
		return DAStatus{}, classify("get DA properties", err)
	}
	props, err := rsp.CapabilityData.Data.TPMProperties()
	if err != nil {
		return DAStatus{}, fmt.Errorf("tpm: get DA properties: %w", err)
	}
	var s DAStatus
	seen := 0
	for _, p := range props.TPMProperty {
		switch p.Property {
		case tpm2.TPMPTPermanent:
			s.InLockout = p.Value&(1<<9) != 0 // TPMA_PERMANENT.inLockout
			seen++
		case tpm2.TPMPTLockoutCounter:
			s.Counter = p.Value
			seen++
		case tpm2.TPMPTMaxAuthFail:
			s.MaxTries = p.Value
			seen++
		case tpm2.TPMPTLockoutInterval:
			s.RecoveryTime = time.Duration(p.Value) * time.Second
			seen++
		case tpm2.TPMPTLockoutRecovery:
			s.LockoutRecovery = time.Duration(p.Value) * time.Second
			seen++
		}
	}
	if seen != 5 {
		return DAStatus{}, fmt.Errorf("tpm: get DA properties: %d of 5 properties reported", seen)
	}
	return s, nil
}

// DAParams are the dictionary-attack parameters set with
// TPM2_DictionaryAttackParameters (Part 3, 25.3). Durations are truncated to
// whole seconds.
type DAParams struct {
	// MaxTries is the number of wrong PINs that triggers lockout (≥ 1).
	MaxTries uint32
	// RecoveryTime is the time after which one failure is forgotten; zero
	// disables automatic recovery (only the owner's reset helps).
	RecoveryTime time.Duration
	// LockoutRecovery is the wait after a wrong lockoutAuth; zero means a
	// wrong lockoutAuth locks the lockout hierarchy until the next
	// TPM2_Startup(CLEAR).
	LockoutRecovery time.Duration
}

// Validate checks p.
func (p DAParams) Validate() error {
	if p.MaxTries == 0 {
		return errors.New("tpm: DAParams.MaxTries must be at least 1")
	}
	if p.RecoveryTime < 0 || p.LockoutRecovery < 0 ||
		p.RecoveryTime/time.Second > 0xFFFFFFFF || p.LockoutRecovery/time.Second > 0xFFFFFFFF {
		return errors.New("tpm: DAParams durations out of range")
	}
	// The TPM counts whole seconds: a fraction would be cut off (0: never forget).
	if p.RecoveryTime%time.Second != 0 || p.LockoutRecovery%time.Second != 0 {
		return errors.New("tpm: DAParams durations must be whole seconds")
	}
	return nil
}

// DefaultDAParams are the parameters [TPM.Provision] sets when none are
// given: 10 wrong PINs lock the TPM; one failure is forgotten every 10
// minutes (so a locked TPM allows one more try after ≤ 10 min); a wrong
// lockoutAuth blocks the owner's reset for 1 hour.
var DefaultDAParams = DAParams{MaxTries: 10, RecoveryTime: 10 * time.Minute, LockoutRecovery: time.Hour}

const (
	ccHierarchyChangeAuth = 0x00000129 // TPM_CC_HierarchyChangeAuth
	ccDALockReset         = 0x00000139 // TPM_CC_DictionaryAttackLockReset
	ccDAParameters        = 0x0000013A // TPM_CC_DictionaryAttackParameters
)

// daCommand hand-marshals a DA command (go-tpm v0.9.8 lacks both) on TPM_RH_LOCKOUT,
// authorised by an HMAC session salted to the SRK (a one-shot [authSession]), so
// lockoutAuth never crosses the bus: the TPM gets an HMAC keyed with sessionKey ‖
// lockoutAuth, and sessionKey derives from a salt only the TPM can decrypt. The response
// HMAC is checked. The caller holds t.mu.
func (t *TPM) daCommand(cc uint32, lockoutAuth []byte, params []byte) error {
	if len(lockoutAuth) > authSize {
		return fmt.Errorf("tpm: lockoutAuth longer than %d bytes", authSize)
	}
	// The DA parameters are integers: nothing to encrypt.
	return t.lockoutCommand(cc, lockoutAuth, lockoutAuth, params, false)
}

// lockoutCommand sends command cc on TPM_RH_LOCKOUT with params, authorised by a one-shot
// HMAC session salted to the SRK that proves knowledge of auth and, with encrypt, sends
// the first parameter (a TPM2B) encrypted. The response HMAC is checked with rspAuth (the
// hierarchy's authValue after the command). The caller holds t.mu.
func (t *TPM) lockoutCommand(cc uint32, auth, rspAuth, params []byte, encrypt bool) error {
	s, err := startSession(t.tpm, t.srkHandle, t.srkPub)
	if err != nil {
		return err
	}
	// One command: the TPM ends the session when it completes.
	s.attrs = tpm2.TPMASession{Decrypt: encrypt}
	s.auth = auth
	defer func() { clear(s.sessionKey) }()
	if encrypt {
		// The TPM2B's size stays in clear; its bytes are encrypted (Part 1 §21.1), and
		// the command's HMAC covers the parameters as sent.
		if err := s.Encrypt(params[2:]); err != nil {
			_, _ = (tpm2.FlushContext{FlushHandle: s.handle}).Execute(t.tpm)
			return err
		}
	}
	// The Name of a permanent handle is its handle value (Part 1 §16).
	name := tpm2.TPM2BName{Buffer: binary.BigEndian.AppendUint32(nil, uint32(tpm2.TPMRHLockout))}
	ac, err := s.Authorize(tpm2.TPMCC(cc), params, nil, []tpm2.TPM2BName{name}, 0)
	if err != nil {
		_, _ = (tpm2.FlushContext{FlushHandle: s.handle}).Execute(t.tpm)
		return err
	}
	area := binary.BigEndian.AppendUint32(nil, uint32(ac.Handle))
	area = binary.BigEndian.AppendUint16(area, uint16(len(ac.Nonce.Buffer)))
	area = append(area, ac.Nonce.Buffer...)
	area = append(area, attrByte(ac.Attributes))
	area = binary.BigEndian.AppendUint16(area, uint16(len(ac.Authorization.Buffer)))
	area = append(area, ac.Authorization.Buffer...)

	cmd := binary.BigEndian.AppendUint16(nil, uint16(tpm2.TPMSTSessions))
	cmd = binary.BigEndian.AppendUint32(cmd, 0) // size, patched below
	cmd = binary.BigEndian.AppendUint32(cmd, cc)
	cmd = binary.BigEndian.AppendUint32(cmd, uint32(tpm2.TPMRHLockout))
	cmd = binary.BigEndian.AppendUint32(cmd, uint32(len(area)))
	cmd = append(cmd, area...)
	cmd = append(cmd, params...)
	binary.BigEndian.PutUint32(cmd[2:6], uint32(len(cmd)))

	// From here on the TPM may have carried the command out whatever reaches us (a
	// response code carries no HMAC): errors are marked errMaybeApplied.
	rsp, err := t.tpm.Send(cmd)
	if err != nil {
		_, _ = (tpm2.FlushContext{FlushHandle: s.handle}).Execute(t.tpm)
		return fmt.Errorf("%w: %w", errMaybeApplied, classify("lockout command", err))
	}
	if len(rsp) < headerSize {
		_, _ = (tpm2.FlushContext{FlushHandle: s.handle}).Execute(t.tpm)
		return fmt.Errorf("%w: %w: short response", errMaybeApplied, ErrTransport)
	}
	if rc := tpm2.TPMRC(binary.BigEndian.Uint32(rsp[6:10])); rc != tpm2.TPMRCSuccess {
		// A failed authorisation does not end the session by itself.
		_, _ = (tpm2.FlushContext{FlushHandle: s.handle}).Execute(t.tpm)
		return fmt.Errorf("%w: %w", errMaybeApplied, classify("lockout command", rc))
	}
	// TPM_ST_SESSIONS response: header ‖ parameterSize (0: no parameters) ‖ nonceTPM
	// (TPM2B) ‖ attributes ‖ hmac (TPM2B).
	ra, err := parseAuthResponse(rsp)
	if err != nil {
		return fmt.Errorf("%w: %w", errMaybeApplied, err)
	}
	s.auth = rspAuth
	if err := s.Validate(tpm2.TPMRCSuccess, tpm2.TPMCC(cc), nil, nil, 0, ra); err != nil {
		return fmt.Errorf("%w: %w: lockout command: %v", errMaybeApplied, ErrTransport, err)
	}
	return nil
}

// errMaybeApplied marks a lockout command that failed after it was sent: the TPM may have
// done what was asked (e.g. taken a new lockoutAuth), since neither a lost answer nor a
// response code (which carries no HMAC) proves otherwise.
var errMaybeApplied = errors.New("tpm: the command was sent; the TPM may have carried it out")

// parseAuthResponse reads the one response authorisation of a TPM_ST_SESSIONS response
// without response parameters.
func parseAuthResponse(rsp []byte) (*tpm2.TPMSAuthResponse, error) {
	short := fmt.Errorf("%w: dictionary attack response too short", ErrTransport)
	if binary.BigEndian.Uint16(rsp[0:2]) != uint16(tpm2.TPMSTSessions) || len(rsp) < headerSize+4+2 {
		return nil, short
	}
	b := rsp[headerSize:]
	if n := binary.BigEndian.Uint32(b); n != 0 {
		return nil, fmt.Errorf("%w: dictionary attack response has %d parameter bytes", ErrTransport, n)
	}
	b = b[4:]
	read2B := func() ([]byte, bool) {
		if len(b) < 2 {
			return nil, false
		}
		n := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+n {
			return nil, false
		}
		v := b[2 : 2+n]
		b = b[2+n:]
		return v, true
	}
	nonce, ok := read2B()
	if !ok || len(b) < 1 {
		return nil, short
	}
	attrs := b[0]
	b = b[1:]
	mac, ok := read2B()
	if !ok || len(b) != 0 {
		return nil, short
	}
	return &tpm2.TPMSAuthResponse{
		Nonce: tpm2.TPM2BNonce{Buffer: nonce},
		Attributes: tpm2.TPMASession{ContinueSession: attrs&1 != 0, AuditExclusive: attrs&2 != 0,
			AuditReset: attrs&4 != 0, Decrypt: attrs&0x20 != 0, Encrypt: attrs&0x40 != 0, Audit: attrs&0x80 != 0},
		Authorization: tpm2.TPM2BData{Buffer: mac},
	}, nil
}

// SetDAParams sets the dictionary-attack parameters, authorised by
// lockoutAuth.
func (t *TPM) SetDAParams(lockoutAuth []byte, p DAParams) error {
	if err := p.Validate(); err != nil {
		return err
	}
	params := binary.BigEndian.AppendUint32(nil, p.MaxTries)
	params = binary.BigEndian.AppendUint32(params, uint32(p.RecoveryTime/time.Second))
	params = binary.BigEndian.AppendUint32(params, uint32(p.LockoutRecovery/time.Second))
	if err := t.lock(); err != nil {
		return err
	}
	defer t.mu.Unlock()
	if err := t.daCommand(ccDAParameters, lockoutAuth, params); err != nil {
		return fmt.Errorf("tpm: set DA parameters: %w", err)
	}
	t.log.Info("tpm: set dictionary-attack parameters", "maxTries", p.MaxTries,
		"recoveryTime", p.RecoveryTime, "lockoutRecovery", p.LockoutRecovery)
	return nil
}

// ResetLockout clears the dictionary-attack counter and lockout
// (TPM2_DictionaryAttackLockReset), authorised by lockoutAuth. This is an
// operator action; the daemon's normal path never holds lockoutAuth.
func (t *TPM) ResetLockout(lockoutAuth []byte) error {
	if err := t.lock(); err != nil {
		return err
	}
	defer t.mu.Unlock()
	if err := t.daCommand(ccDALockReset, lockoutAuth, nil); err != nil {
		return fmt.Errorf("tpm: reset lockout: %w", err)
	}
	t.log.Info("tpm: dictionary-attack lockout reset")
	return nil
}

// ChangeLockoutAuth changes the lockout hierarchy's authValue from oldAuth
// to newAuth (≤ 32 bytes each, no zero bytes) with
// TPM2_HierarchyChangeAuth, hand-marshalled and authorised by a one-shot HMAC
// session salted to the SRK (go-tpm checks the response HMAC with the old value,
// but the TPM computes it with the new one): neither value crosses the bus in
// clear, newAuth is sent encrypted by the session, and the response HMAC is
// checked with newAuth.
func (t *TPM) ChangeLockoutAuth(oldAuth, newAuth []byte) error {
	if len(newAuth) == 0 || len(newAuth) > authSize || bytes.IndexByte(newAuth, 0) >= 0 {
		return fmt.Errorf("tpm: new lockoutAuth must be 1..%d non-zero bytes", authSize)
	}
	if len(oldAuth) > authSize {
		return fmt.Errorf("tpm: lockoutAuth longer than %d bytes", authSize)
	}
	if err := t.lock(); err != nil {
		return err
	}
	defer t.mu.Unlock()
	params := binary.BigEndian.AppendUint16(nil, uint16(len(newAuth)))
	params = append(params, newAuth...)
	defer clear32(params)
	return t.lockoutCommand(ccHierarchyChangeAuth, oldAuth, newAuth, params, true)
}

// ProvisionOptions configures [TPM.Provision].
type ProvisionOptions struct {
	// LockoutAuthFile is where the new random lockoutAuth is written (mode
	// 0600, must not exist). It belongs to the operator: keep it off the
	// daemon's host or readable only by root. Required.
	LockoutAuthFile string
	// CurrentLockoutAuth is the lockout hierarchy's current authValue
	// (empty on a fresh or cleared TPM).
	CurrentLockoutAuth []byte
	// DA are the dictionary-attack parameters; the zero value means
	// [DefaultDAParams].
	DA DAParams
}

// Provision takes ownership of the TPM's lockout hierarchy: it generates a
// random 32-byte lockoutAuth, writes it to opts.LockoutAuthFile (created
// exclusively with mode 0600 and synced before the TPM is changed, so it
// cannot be lost), sets it with TPM2_HierarchyChangeAuth and sets the
// dictionary-attack parameters. If the change fails before it reaches the TPM, the file
// is removed; once it was sent, the file is kept whatever comes back (the TPM may hold
// the value; a response code carries no proof).
func (t *TPM) Provision(opts ProvisionOptions) error {
	if opts.LockoutAuthFile == "" {
		return errors.New("tpm: ProvisionOptions.LockoutAuthFile is required")
	}
	da := opts.DA
	if da == (DAParams{}) {
		da = DefaultDAParams
	}
	if err := da.Validate(); err != nil {
		return err
	}
	rnd := make([]byte, 3*authSize)
	if _, err := rand.Read(rnd); err != nil {
		return fmt.Errorf("tpm: provision: %w", err)
	}
	// No zero bytes: see deriveAuth for the go-tpm HMAC truncation bug.
	newAuth, err := nonZero(rnd)
	clear32(rnd)
	if err != nil {
		return fmt.Errorf("tpm: provision: %w", err)
	}
	defer clear32(newAuth)
	if err := writeSecretFile(opts.LockoutAuthFile, newAuth); err != nil {
		return err
	}
	undo := func(err error) error {
		if rerr := os.Remove(opts.LockoutAuthFile); rerr != nil {
			return errors.Join(err, fmt.Errorf("tpm: provision: remove lockout auth file: %w", rerr))
		}
		return err
	}
	if err := t.ChangeLockoutAuth(opts.CurrentLockoutAuth, newAuth); err != nil {
		if errors.Is(err, errMaybeApplied) {
			// The TPM may hold newAuth: deleting the file could leave nobody knowing it.
			return fmt.Errorf("tpm: provision: %w (the new lockoutAuth is kept in %s: try it; if the TPM refuses it, "+
				"the previous value is still in force and the file can be deleted)", err, opts.LockoutAuthFile)
		}
		return undo(fmt.Errorf("tpm: provision: %w", err))
	}
	if err := t.SetDAParams(newAuth, da); err != nil {
		// The TPM already holds newAuth, so keep the file.
		return fmt.Errorf("tpm: provision: %w", err)
	}
	return nil
}

// ReadLockoutAuthFile reads a lockoutAuth written by [TPM.Provision].
func ReadLockoutAuthFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path) //nolint:gosec // operator-supplied path
	if err != nil {
		return nil, fmt.Errorf("tpm: read lockout auth file: %w", err)
	}
	if len(b) == 0 || len(b) > authSize {
		return nil, fmt.Errorf("tpm: lockout auth file: %d bytes, want 1..%d", len(b), authSize)
	}
	return b, nil
}

func writeSecretFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) //nolint:gosec // operator path
	if err != nil {
		return fmt.Errorf("tpm: create lockout auth file: %w", err)
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("tpm: write lockout auth file: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
