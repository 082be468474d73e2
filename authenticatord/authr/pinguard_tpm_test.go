package authr_test

import (
	"log/slog"
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
		t.Fatalf("after the failures are forgotten: status %v", st)
	}
}
