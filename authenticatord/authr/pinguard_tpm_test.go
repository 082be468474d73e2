package authr_test

import (
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/authenticatord/asm"
	"github.com/fidoserver/hwfido/authenticatord/authr"
	"github.com/fidoserver/hwfido/authenticatord/tpm"
	"github.com/fidoserver/hwfido/authenticatord/tpm/swtpmtest"
	"github.com/fidoserver/hwfido/uaf"
)

// TestPINTriesPerUser runs against swtpm: one OS user who keeps sending wrong PINs is
// refused (USER_LOCKOUT) after its share of tries without the TPM being asked, so the
// TPM (4 tries) does not lock and another user's correct PIN still signs; the user may
// try again once its failures are forgotten.
func TestPINTriesPerUser(t *testing.T) {
	sim := swtpmtest.Start(t, swtpmtest.Options{})
	tr, err := tpm.OpenTCP(sim.Addr())
	if err != nil {
		t.Fatal(err)
	}
	tp, err := tpm.Open(tpm.Options{Transport: tr, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tp.Close() })
	if err := tp.SetDAParams(nil, tpm.DAParams{MaxTries: 4, RecoveryTime: time.Hour, LockoutRecovery: time.Hour}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	a, err := authr.New(authr.Options{TPM: tp, StateDir: t.TempDir(), Now: func() time.Time { return now },
		PINTriesPerUser: 3, PINTryRecovery: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	const appID = "https://fido.example/facets"
	mallory, alice := authr.Caller{UID: 2001, CallerID: "t"}, authr.Caller{UID: 2002, CallerID: "t"}
	pin, wrong := []byte("123456"), []byte("000000")
	for _, c := range []authr.Caller{mallory, alice} {
		if _, err := a.Register(c, asm.RegisterIn{AppID: appID, Username: "u", FinalChallenge: "fc",
			AttestationType: uaf.AttestationBasicSurrogate}, pin); err != nil {
			t.Fatal(err)
		}
	}
	auth := func(c authr.Caller, p []byte) uaf.ASMStatus {
		_, err := a.Authenticate(c, asm.AuthenticateIn{AppID: appID, FinalChallenge: "fc"}, p)
		return authr.StatusOf(err)
	}
	for i := range 3 {
		if st := auth(mallory, wrong); st != uaf.ASMAccessDenied {
			t.Fatalf("wrong PIN %d: status %v", i, st)
		}
	}
	if st := auth(mallory, wrong); st != uaf.ASMUserLockout {
		t.Fatalf("fourth wrong PIN of one user: status %v, want USER_LOCKOUT", st)
	}
	da, err := tp.DAStatus()
	if err != nil || da.InLockout {
		t.Fatalf("the TPM locked: %+v %v", da, err)
	}
	if st := auth(alice, pin); st != uaf.ASMOk {
		t.Fatalf("another user's correct PIN: status %v", st)
	}
	if st := auth(mallory, pin); st != uaf.ASMUserLockout {
		t.Fatalf("the throttled user's correct PIN: status %v", st)
	}
	now = now.Add(10 * time.Minute)
	if st := auth(mallory, pin); st != uaf.ASMOk {
		t.Fatalf("after one failure is forgotten: status %v", st)
	}
	// One recovery period forgets one failure, not all: a second wrong PIN now puts the
	// user back at its limit.
	if st := auth(mallory, wrong); st != uaf.ASMAccessDenied {
		t.Fatalf("wrong PIN after one period: status %v", st)
	}
	if st := auth(mallory, wrong); st != uaf.ASMUserLockout {
		t.Fatalf("second wrong PIN after one period: status %v, want USER_LOCKOUT", st)
	}
}

// TestPINTriesPerUserConcurrent: eight wrong PINs of one user at once reach the TPM at
// most limit times, so the TPM (4 tries) does not lock.
func TestPINTriesPerUserConcurrent(t *testing.T) {
	sim := swtpmtest.Start(t, swtpmtest.Options{})
	tr, err := tpm.OpenTCP(sim.Addr())
	if err != nil {
		t.Fatal(err)
	}
	tp, err := tpm.Open(tpm.Options{Transport: tr, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tp.Close() })
	if err := tp.SetDAParams(nil, tpm.DAParams{MaxTries: 4, RecoveryTime: time.Hour, LockoutRecovery: time.Hour}); err != nil {
		t.Fatal(err)
	}
	a, err := authr.New(authr.Options{TPM: tp, StateDir: t.TempDir(), PINTriesPerUser: 3, PINTryRecovery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	const appID = "https://fido.example/facets"
	c := authr.Caller{UID: 3001, CallerID: "t"}
	if _, err := a.Register(c, asm.RegisterIn{AppID: appID, Username: "u", FinalChallenge: "fc",
		AttestationType: uaf.AttestationBasicSurrogate}, []byte("123456")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_, _ = a.Authenticate(c, asm.AuthenticateIn{AppID: appID, FinalChallenge: "fc"}, []byte("000000"))
		})
	}
	wg.Wait()
	da, err := tp.DAStatus()
	if err != nil || da.InLockout || da.Counter > 3 {
		t.Fatalf("after 8 concurrent wrong PINs of one user: %+v %v", da, err)
	}
}
