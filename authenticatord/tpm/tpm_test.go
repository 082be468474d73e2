package tpm

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/authenticatord/tpm/swtpmtest"
	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

var (
	pin1 = []byte("123456")
	pin2 = []byte("correct horse")
)

// openSim opens a TPM on sim and closes it (with Shutdown) at cleanup.
func openSim(t testing.TB, sim *swtpmtest.Sim) *TPM {
	t.Helper()
	tr := dial(t, sim)
	tp, err := Open(Options{Transport: tr, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := tp.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return tp
}

func dial(t testing.TB, sim *swtpmtest.Sim) transport.TPMCloser {
	t.Helper()
	var tr transport.TPMCloser
	var err error
	if sim.Network() == "unix" {
		tr, err = OpenUnix(sim.Addr())
	} else {
		tr, err = OpenTCP(sim.Addr())
	}
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	return tr
}

func digest(s string) []byte {
	d := sha256.Sum256([]byte(s))
	return d[:]
}

func verifyRaw(t *testing.T, pub *ecdsa.PublicKey, d, raw []byte) {
	t.Helper()
	if len(raw) != 64 {
		t.Fatalf("raw signature is %d bytes", len(raw))
	}
	r, s := new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])
	if !ecdsa.Verify(pub, d, r, s) {
		t.Fatal("signature does not verify")
	}
	der, err := RawToDER(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(pub, d, der) {
		t.Fatal("DER signature does not verify")
	}
}

func mustStatus(t *testing.T, err error, want Status) {
	t.Helper()
	if got := StatusOf(err); got != want {
		t.Fatalf("status = %v (err %v), want %v", got, err, want)
	}
	if !errors.Is(err, want) {
		t.Fatalf("errors.Is(%v, %v) = false", err, want)
	}
}

func daStatus(t *testing.T, tp *TPM) DAStatus {
	t.Helper()
	s, err := tp.DAStatus()
	if err != nil {
		t.Fatalf("DAStatus: %v", err)
	}
	return s
}

func TestSRKPersistentAndStable(t *testing.T) {
	t.Parallel()
	sim := swtpmtest.Start(t, swtpmtest.Options{})
	tp := openSim(t, sim)
	name1 := tp.srkName
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	// The SRK is now a persistent object.
	tr := dial(t, sim)
	rp, err := tpm2.ReadPublic{ObjectHandle: DefaultSRKHandle}.Execute(tr)
	if err != nil {
		t.Fatalf("persistent SRK missing: %v", err)
	}
	if !bytes.Equal(rp.Name.Buffer, name1.Buffer) {
		t.Fatal("persistent SRK name differs")
	}
	// Evict it: Open must re-create the same key deterministically.
	if _, err := (tpm2.EvictControl{
		Auth:             tpm2.TPMRHOwner,
		ObjectHandle:     tpm2.NamedHandle{Handle: DefaultSRKHandle, Name: rp.Name},
		PersistentHandle: DefaultSRKHandle,
	}).Execute(tr); err != nil {
		t.Fatalf("evict: %v", err)
	}
	_ = tr.Close()
	sim.Restart()
	tp2 := openSim(t, sim)
	if !bytes.Equal(tp2.srkName.Buffer, name1.Buffer) {
		t.Fatal("re-created SRK has a different name")
	}
}

func TestOpenRejectsForeignObjectAtSRKHandle(t *testing.T) {
	t.Parallel()
	sim := swtpmtest.Start(t, swtpmtest.Options{})
	tr := dial(t, sim)
	// Persist an RSA SRK where we expect the ECC one.
	cp, err := tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHOwner, InPublic: tpm2.New2B(tpm2.RSASRKTemplate)}.Execute(tr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (tpm2.EvictControl{Auth: tpm2.TPMRHOwner,
		ObjectHandle:     tpm2.NamedHandle{Handle: cp.ObjectHandle, Name: cp.Name},
		PersistentHandle: DefaultSRKHandle}).Execute(tr); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Options{Transport: tr}); err == nil {
		t.Fatal("Open accepted an RSA key at the SRK handle")
	}
}

func TestCreateSignVerify(t *testing.T) {
	t.Parallel()
	for _, unix := range []bool{false, true} {
		t.Run(map[bool]string{false: "tcp", true: "unix"}[unix], func(t *testing.T) {
			sim := swtpmtest.Start(t, swtpmtest.Options{Unix: unix})
			tp := openSim(t, sim)
			kb, err := tp.CreateKey(pin1)
			if err != nil {
				t.Fatalf("CreateKey: %v", err)
			}
			if len(kb.Salt) != SaltSize || len(kb.Public) == 0 || len(kb.Private) == 0 {
				t.Fatalf("bad blob sizes %d/%d/%d", len(kb.Salt), len(kb.Public), len(kb.Private))
			}
			pub, err := kb.PublicKey()
			if err != nil {
				t.Fatal(err)
			}
			d := digest("KRD")
			raw, err := tp.Sign(kb, pin1, d)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			verifyRaw(t, pub, d, raw)
			raw, err = tp.SignMessage(kb, pin1, []byte("SIGNED_DATA"))
			if err != nil {
				t.Fatalf("SignMessage: %v", err)
			}
			verifyRaw(t, pub, digest("SIGNED_DATA"), raw)
			// Two keys with the same PIN are distinct keys with distinct salts.
			kb2, err := tp.CreateKey(pin1)
			if err != nil {
				t.Fatal(err)
			}
			pub2, _ := kb2.PublicKey()
			if pub2.Equal(pub) || bytes.Equal(kb2.Salt, kb.Salt) {
				t.Fatal("second key equals the first")
			}
		})
	}
}

func TestSignInputValidation(t *testing.T) {
	t.Parallel()
	sim := swtpmtest.Start(t, swtpmtest.Options{})
	tp := openSim(t, sim)
	kb, err := tp.CreateKey(pin1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tp.CreateKey(nil); !errors.Is(err, ErrEmptyPIN) {
		t.Fatalf("CreateKey(empty PIN) = %v", err)
	}
	if _, err := tp.Sign(kb, pin1, make([]byte, 20)); err == nil {
		t.Fatal("20-byte digest accepted")
	}
	if _, err := tp.Sign(nil, pin1, digest("x")); !errors.Is(err, ErrInvalidBlob) {
		t.Fatalf("nil blob: %v", err)
	}
	if _, err := tp.Sign(&KeyBlob{Public: []byte{1}, Private: kb.Private, Salt: kb.Salt}, pin1, digest("x")); !errors.Is(err, ErrInvalidBlob) {
		t.Fatalf("garbage public: %v", err)
	}
	// A tampered private blob fails the TPM's integrity check.
	bad := *kb
	bad.Private = append([]byte(nil), kb.Private...)
	bad.Private[len(bad.Private)-5] ^= 0x40
	_, err = tp.Sign(&bad, pin1, digest("x"))
	mustStatus(t, err, StatusKeyDisappearedPermanently)

	// A blob from another TPM (different owner seed) has disappeared here.
	other := openSim(t, swtpmtest.Start(t, swtpmtest.Options{}))
	kbOther, err := other.CreateKey(pin1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tp.Sign(kbOther, pin1, digest("x"))
	mustStatus(t, err, StatusKeyDisappearedPermanently)

	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := tp.Sign(kb, pin1, digest("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("sign after close: %v", err)
	}
}

func TestWrongPINAccessDenied(t *testing.T) {
	t.Parallel()
	sim := swtpmtest.Start(t, swtpmtest.Options{})
	tp := openSim(t, sim)
	kb, err := tp.CreateKey(pin1)
	if err != nil {
		t.Fatal(err)
	}
	before := daStatus(t, tp)
	_, err = tp.Sign(kb, []byte("654321"), digest("x"))
	mustStatus(t, err, StatusAccessDenied)
	if !errors.Is(err, tpm2.TPMRCAuthFail) {
		t.Fatalf("underlying TPM error not kept: %v", err)
	}
	after := daStatus(t, tp)
	if after.Counter != before.Counter+1 {
		t.Fatalf("DA counter %d → %d, want +1 (the TPM, not software, checked the PIN)", before.Counter, after.Counter)
	}
	if _, err := tp.Sign(kb, pin1, digest("x")); err != nil {
		t.Fatalf("correct PIN after one failure: %v", err)
	}
}

func TestLockout(t *testing.T) {
	t.Parallel()
	sim := swtpmtest.Start(t, swtpmtest.Options{})
	tp := openSim(t, sim)
	authFile := filepath.Join(t.TempDir(), "lockout.auth")
	params := DAParams{MaxTries: 3, RecoveryTime: 1000 * time.Second, LockoutRecovery: 10 * time.Second}
	if err := tp.Provision(ProvisionOptions{LockoutAuthFile: authFile, DA: params}); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	fi, err := os.Stat(authFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("lockout auth file mode %v", fi.Mode().Perm())
	}
	lockoutAuth, err := ReadLockoutAuthFile(authFile)
	if err != nil {
		t.Fatal(err)
	}
	// Provisioning twice must not overwrite the operator's file.
	if err := tp.Provision(ProvisionOptions{LockoutAuthFile: authFile, CurrentLockoutAuth: lockoutAuth}); err == nil {
		t.Fatal("second Provision overwrote the lockout auth file")
	}
	s := daStatus(t, tp)
	if s.MaxTries != 3 || s.RecoveryTime != 1000*time.Second || s.LockoutRecovery != 10*time.Second {
		t.Fatalf("DA params not applied: %+v", s)
	}
	kb, err := tp.CreateKey(pin1)
	if err != nil {
		t.Fatal(err)
	}
	ak, akPub, err := tp.CreateAttestationKey()
	if err != nil {
		t.Fatal(err)
	}
	wrong := []byte("000000")
	for i := range 3 {
		_, err := tp.Sign(kb, wrong, digest("x"))
		mustStatus(t, err, StatusAccessDenied)
		if got := daStatus(t, tp).Remaining(); got != uint32(2-i) {
			t.Fatalf("after %d failures Remaining = %d", i+1, got)
		}
	}
	_, err = tp.Sign(kb, wrong, digest("x"))
	mustStatus(t, err, StatusUserLockout)
	_, err = tp.Sign(kb, pin1, digest("x"))
	mustStatus(t, err, StatusUserLockout) // the correct PIN is refused too
	s = daStatus(t, tp)
	if !s.InLockout || s.Remaining() != 0 || s.RetryAfter() != 1000*time.Second {
		t.Fatalf("status during lockout: %+v", s)
	}
	// The lockout persists across an orderly restart.
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	sim.Restart()
	tp = openSim(t, sim)
	_, err = tp.Sign(kb, pin1, digest("x"))
	mustStatus(t, err, StatusUserLockout)
	// The NoDA attestation key keeps working during lockout.
	raw, err := tp.AttestationSign(ak, digest("krd"))
	if err != nil {
		t.Fatalf("attestation sign during lockout: %v", err)
	}
	verifyRaw(t, akPub, digest("krd"), raw)

	if err := tp.ResetLockout(lockoutAuth); err != nil {
		t.Fatalf("ResetLockout: %v", err)
	}
	if s := daStatus(t, tp); s.InLockout || s.Counter != 0 {
		t.Fatalf("after reset: %+v", s)
	}
	pub, _ := kb.PublicKey()
	raw, err = tp.Sign(kb, pin1, digest("x"))
	if err != nil {
		t.Fatalf("sign after reset: %v", err)
	}
	verifyRaw(t, pub, digest("x"), raw)
}

// TestLockoutAuthRequired checks that after provisioning the lockout
// hierarchy needs the new lockoutAuth, and that one wrong lockoutAuth blocks
// even the right one for LockoutRecovery.
func TestLockoutAuthRequired(t *testing.T) {
	t.Parallel()
	sim := swtpmtest.Start(t, swtpmtest.Options{})
	tp := openSim(t, sim)
	sp := &spy{TPMCloser: tp.tpm}
	tp.tpm = sp
	authFile := filepath.Join(t.TempDir(), "lockout.auth")
	if err := tp.Provision(ProvisionOptions{LockoutAuthFile: authFile}); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	lockoutAuth, err := ReadLockoutAuthFile(authFile)
	if err != nil {
		t.Fatal(err)
	}
	if s := daStatus(t, tp); s.MaxTries != DefaultDAParams.MaxTries || s.RecoveryTime != DefaultDAParams.RecoveryTime {
		t.Fatalf("default DA params not applied: %+v", s)
	}
	if err := tp.ResetLockout(lockoutAuth); err != nil {
		t.Fatalf("ResetLockout with the provisioned auth: %v", err)
	}
	// Setting it (encrypted), setting the DA parameters and resetting the lockout with it
	// (HMAC sessions) never put lockoutAuth on the bus.
	for _, c := range sp.take() {
		if bytes.Contains(c, lockoutAuth) {
			t.Fatalf("lockoutAuth in clear in command %v: %x", commandCode(c), c)
		}
	}
	if err := tp.ResetLockout(nil); !errors.Is(err, tpm2.TPMRCAuthFail) && !errors.Is(err, tpm2.TPMRCBadAuth) {
		t.Fatalf("ResetLockout with the old empty auth: %v", err)
	}
	if err := tp.ResetLockout(lockoutAuth); !errors.Is(err, tpm2.TPMRCLockout) {
		t.Fatalf("right lockoutAuth right after a wrong one: %v, want TPM_RC_LOCKOUT", err)
	}
}

func TestChangePIN(t *testing.T) {
	t.Parallel()
	sim := swtpmtest.Start(t, swtpmtest.Options{})
	tp := openSim(t, sim)
	old, err := tp.CreateKey(pin1)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := old.PublicKey()
	_, err = tp.ChangePIN(old, []byte("999999"), pin2)
	mustStatus(t, err, StatusAccessDenied)
	nb, err := tp.ChangePIN(old, pin1, pin2)
	if err != nil {
		t.Fatalf("ChangePIN: %v", err)
	}
	if bytes.Equal(nb.Private, old.Private) || bytes.Equal(nb.Salt, old.Salt) || !bytes.Equal(nb.Public, old.Public) {
		t.Fatal("ChangePIN did not re-wrap the private blob under a new salt")
	}
	raw, err := tp.Sign(nb, pin2, digest("x"))
	if err != nil {
		t.Fatalf("new PIN on new blob: %v", err)
	}
	verifyRaw(t, pub, digest("x"), raw) // same key
	_, err = tp.Sign(nb, pin1, digest("x"))
	mustStatus(t, err, StatusAccessDenied)
	// The old blob does not accept the new PIN. (It still accepts the old
	// PIN: the TPM cannot revoke a private blob; the store must drop it.)
	_, err = tp.Sign(old, pin2, digest("x"))
	mustStatus(t, err, StatusAccessDenied)
}

func TestRestartKeepsKeys(t *testing.T) {
	t.Parallel()
	sim := swtpmtest.Start(t, swtpmtest.Options{})
	tp := openSim(t, sim)
	kb, err := tp.CreateKey(pin1)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kb.PublicKey()
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	sim.Restart()
	tp = openSim(t, sim)
	raw, err := tp.Sign(kb, pin1, digest("after restart"))
	if err != nil {
		t.Fatalf("sign after restart: %v", err)
	}
	verifyRaw(t, pub, digest("after restart"), raw)
}

// TestOrderlyShutdownNoDACreep restarts swtpm several times after
// DA-protected use and checks that the DA counter does not move; a control
// run with a crash (no Shutdown) shows that the check can fail.
func TestOrderlyShutdownNoDACreep(t *testing.T) {
	t.Parallel()
	sim := swtpmtest.Start(t, swtpmtest.Options{})
	tp := openSim(t, sim)
	kb, err := tp.CreateKey(pin1)
	if err != nil {
		t.Fatal(err)
	}
	start := daStatus(t, tp).Counter
	for i := range 4 {
		if _, err := tp.Sign(kb, pin1, digest("x")); err != nil {
			t.Fatalf("round %d: sign: %v", i, err)
		}
		if err := tp.Close(); err != nil {
			t.Fatalf("round %d: close: %v", i, err)
		}
		sim.Restart()
		tp = openSim(t, sim)
		if c := daStatus(t, tp).Counter; c != start {
			t.Fatalf("round %d: DA counter %d, want %d", i, c, start)
		}
	}
	// Control: DA-protected use, then a crash without Shutdown.
	if _, err := tp.Sign(kb, pin1, digest("x")); err != nil {
		t.Fatal(err)
	}
	sim.Kill()
	_ = tp.tpm.Close()
	tp.closed = true
	sim.Restart()
	tp = openSim(t, sim)
	if c := daStatus(t, tp).Counter; c != start+1 {
		t.Fatalf("after a crash DA counter %d, want %d (control)", c, start+1)
	}
}

func TestRetryAfterStartup(t *testing.T) {
	t.Parallel()
	sim := swtpmtest.Start(t, swtpmtest.Options{})
	tp := openSim(t, sim)
	kb, err := tp.CreateKey(pin1)
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	sim.Restart()
	tp = openSim(t, sim)
	rt, ok := tp.tpm.(*retryTransport)
	if !ok {
		t.Fatalf("transport is %T", tp.tpm)
	}
	before := rt.retryCount()
	if _, err := tp.Sign(kb, pin1, digest("x")); err != nil {
		t.Fatalf("first DA-protected use after startup: %v", err)
	}
	if rt.retryCount() <= before {
		t.Fatal("expected TPM_RC_RETRY on the first DA-protected use after startup; none seen")
	}
}

func TestTransientSlots(t *testing.T) {
	t.Parallel()
	sim := swtpmtest.Start(t, swtpmtest.Options{})
	tp := openSim(t, sim)
	var keys []*KeyBlob
	for range 4 {
		kb, err := tp.CreateKey(pin1)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, kb)
	}
	// Many more operations than the 3 slots: at most one key stays cached.
	for i := range 12 {
		if _, err := tp.Sign(keys[i%len(keys)], pin1, digest("x")); err != nil {
			t.Fatalf("op %d: %v", i, err)
		}
		if n := tp.loadedKeys(); n > maxCachedKeys {
			t.Fatalf("op %d: %d keys cached, at most %d", i, n, maxCachedKeys)
		}
	}
	// Fill every slot behind the layer's back, as a crashed process would.
	fill := func(tr transport.TPM) int {
		n := 0
		for i := range 8 {
			pub, priv, _ := keys[i%len(keys)].decode()
			_, err := tpm2.Load{
				ParentHandle: tpm2.AuthHandle{Handle: tp.srkHandle, Name: tp.srkName, Auth: tpm2.PasswordAuth(nil)},
				InPrivate:    priv, InPublic: pub,
			}.Execute(tr)
			if errors.Is(err, tpm2.TPMRCObjectMemory) {
				return n
			}
			if err != nil {
				t.Fatalf("fill: %v", err)
			}
			n++
		}
		t.Fatal("TPM never ran out of object slots")
		return n
	}
	if n := fill(tp.tpm); n == 0 {
		t.Fatal("no slot was free")
	}
	// The layer recovers in place (flush + retry on TPM_RC_OBJECT_MEMORY)...
	if _, err := tp.Sign(keys[0], pin1, digest("x")); err != nil {
		t.Fatalf("sign with full slots: %v", err)
	}
	// ...and at Open after a "crash" left them full.
	fill(tp.tpm)
	_ = tp.tpm.Close()
	tp.closed = true
	tp = openSim(t, sim)
	hs, err := tp.handles(tpm2.TPMHandle(uint32(tpm2.TPMHTTransient) << 24))
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 0 {
		t.Fatalf("%d transient objects left after Open", len(hs))
	}
	if _, err := tp.Sign(keys[1], pin1, digest("x")); err != nil {
		t.Fatalf("sign after Open: %v", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	sim := swtpmtest.Start(t, swtpmtest.Options{})
	tp := openSim(t, sim)
	kb, err := tp.CreateKey(pin1)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kb.PublicKey()
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 3 {
				d := digest(string(rune('a'+g)) + string(rune('0'+i)))
				raw, err := tp.Sign(kb, pin1, d)
				if err != nil {
					errs <- err
					return
				}
				if !ecdsa.Verify(pub, d, new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])) {
					errs <- errors.New("bad signature")
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestAttestationKey(t *testing.T) {
	t.Parallel()
	sim := swtpmtest.Start(t, swtpmtest.Options{})
	tp := openSim(t, sim)
	ak, pub, err := tp.CreateAttestationKey()
	if err != nil {
		t.Fatal(err)
	}
	if ak.Salt != nil {
		t.Fatal("attestation key has a PIN salt")
	}
	krd := []byte{0x3e, 0x03, 0x04, 0x00, 1, 2, 3, 4}
	raw, err := tp.AttestationSignMessage(ak, krd)
	if err != nil {
		t.Fatal(err)
	}
	verifyRaw(t, pub, digest(string(krd)), raw)
	// The template is unrestricted, NoDA, fixed to this TPM.
	tp2, _ := tpm2.Unmarshal[tpm2.TPM2BPublic](ak.Public)
	c, _ := tp2.Contents()
	a := c.ObjectAttributes
	if a.Restricted || !a.NoDA || !a.FixedTPM || !a.SignEncrypt {
		t.Fatalf("attestation key attributes %+v", a)
	}
	// A UAF key is DA-protected.
	kb, _ := tp.CreateKey(pin1)
	up, _ := tpm2.Unmarshal[tpm2.TPM2BPublic](kb.Public)
	uc, _ := up.Contents()
	if uc.ObjectAttributes.NoDA || !uc.ObjectAttributes.UserWithAuth {
		t.Fatal("UAF key must be DA-protected and authorised by its authValue")
	}
}

// TestManyKeysAuthorise creates many keys and uses each once: with go-tpm's
// HMAC truncation at the first zero byte, ≈12% of raw random auth values
// would fail, so this catches a regression in deriveAuth.
func TestManyKeysAuthorise(t *testing.T) {
	t.Parallel()
	sim := swtpmtest.Start(t, swtpmtest.Options{})
	tp := openSim(t, sim)
	for i := range 40 {
		pin := []byte{byte('0' + i%10), byte('0' + i/10), '4', '2'}
		kb, err := tp.CreateKey(pin)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tp.Sign(kb, pin, digest("x")); err != nil {
			t.Fatalf("key %d: %v", i, err)
		}
	}
}

// TestReprovisionLockoutAuth: provisioning again with the current lockoutAuth replaces
// it without either value crossing the bus in clear (TPM2_HierarchyChangeAuth in a
// salted HMAC session, the new value encrypted), and the new value then authorises.
func TestReprovisionLockoutAuth(t *testing.T) {
	t.Parallel()
	sim := swtpmtest.Start(t, swtpmtest.Options{})
	tp := openSim(t, sim)
	dir := t.TempDir()
	first := filepath.Join(dir, "lockout-1.auth")
	if err := tp.Provision(ProvisionOptions{LockoutAuthFile: first}); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	auth1, err := ReadLockoutAuthFile(first)
	if err != nil {
		t.Fatal(err)
	}
	sp := &spy{TPMCloser: tp.tpm}
	tp.tpm = sp
	second := filepath.Join(dir, "lockout-2.auth")
	if err := tp.Provision(ProvisionOptions{LockoutAuthFile: second, CurrentLockoutAuth: auth1}); err != nil {
		t.Fatalf("re-Provision: %v", err)
	}
	auth2, err := ReadLockoutAuthFile(second)
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.ResetLockout(auth2); err != nil {
		t.Fatalf("ResetLockout with the new lockoutAuth: %v", err)
	}
	for _, c := range sp.take() {
		if bytes.Contains(c, auth1) || bytes.Contains(c, auth2) {
			t.Fatalf("a lockoutAuth in clear in command %v: %x", commandCode(c), c)
		}
	}
}

// tamper changes the last byte of the TPM's response to commands of code cc.
type tamper struct {
	transport.TPMCloser
	cc      tpm2.TPMCC
	forgeRC bool // replace the answer with an error code instead of altering its HMAC
}

func (s *tamper) Send(cmd []byte) ([]byte, error) {
	rsp, err := s.TPMCloser.Send(cmd)
	if err == nil && commandCode(cmd) == s.cc && len(rsp) > 0 {
		rsp = append([]byte(nil), rsp...)
		if s.forgeRC {
			// TPM_RC_FAILURE in a header-only answer.
			rsp = binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint16(nil,
				uint16(tpm2.TPMSTNoSessions)), 10), uint32(tpm2.TPMRCFailure))
		} else {
			rsp[len(rsp)-1] ^= 1
		}
	}
	return rsp, err
}

// TestProvisionKeepsAuthTheTPMMayHold: when the TPM answers the change of lockoutAuth with
// success but the answer does not verify (here its HMAC is altered on the way), or with
// an error code forged on the way (codes carry no HMAC), the new value is kept in its
// file: the TPM holds it, and deleting the file would leave nobody knowing it.
func TestProvisionKeepsAuthTheTPMMayHold(t *testing.T) {
	t.Parallel()
	for _, forge := range []bool{false, true} {
		sim := swtpmtest.Start(t, swtpmtest.Options{})
		tp := openSim(t, sim)
		orig := tp.tpm
		tp.tpm = &tamper{TPMCloser: orig, cc: tpm2.TPMCCHierarchyChanegAuth, forgeRC: forge}
		file := filepath.Join(t.TempDir(), "lockout.auth")
		if err := tp.Provision(ProvisionOptions{LockoutAuthFile: file}); err == nil {
			t.Fatalf("forged code %v: a response that does not verify was accepted", forge)
		}
		tp.tpm = orig
		auth, err := ReadLockoutAuthFile(file)
		if err != nil {
			t.Fatalf("forged code %v: the lockout auth file is gone: %v", forge, err)
		}
		if err := tp.ResetLockout(auth); err != nil {
			t.Fatalf("forged code %v: the kept value does not authorise: %v", forge, err)
		}
	}
}

// TestSRKNameBoundToKey: a Name that is not the digest of the public area it came with
// is refused (the SRK pin compares Names).
func TestSRKNameBoundToKey(t *testing.T) {
	pub := tpm2.ECCSRKTemplate
	name, err := tpm2.ObjectName(&pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkName(&pub, *name); err != nil {
		t.Fatalf("the right Name refused: %v", err)
	}
	other := *name
	other.Buffer = append([]byte(nil), name.Buffer...)
	other.Buffer[len(other.Buffer)-1] ^= 1
	if err := checkName(&pub, other); !errors.Is(err, ErrSRKName) {
		t.Fatalf("another Name: %v", err)
	}
}
