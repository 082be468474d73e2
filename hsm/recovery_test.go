package hsm_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/fidoserver/hwfido/hsm"
	"github.com/fidoserver/hwfido/hsm/hsmtest"
)

// load runs SignES256+MAC in n goroutines until stop is closed, counting
// successes and failures, and fails the test on an error that is neither
// ErrUnavailable nor ErrBusy (a "clean" failure).
type load struct {
	ok, failed atomic.Int64
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startLoad(t *testing.T, tok *hsm.Token, n int) *load {
	l := &load{stop: make(chan struct{})}
	for range n {
		l.wg.Go(func() {
			for i := 0; i < 100000; i++ { // bounded
				select {
				case <-l.stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, _, err := tok.SignES256(ctx, []byte("load"))
				if err == nil {
					var tag []byte
					var v uint32
					tag, v, err = tok.MAC(ctx, []byte("load"))
					if err == nil {
						err = tok.VerifyMAC(ctx, v, []byte("load"), tag)
					}
				}
				cancel()
				if err == nil {
					l.ok.Add(1)
					continue
				}
				l.failed.Add(1)
				if !errors.Is(err, hsm.ErrUnavailable) && !errors.Is(err, hsm.ErrBusy) {
					t.Errorf("unclean failure: %v", err)
					return
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	return l
}

func (l *load) halt() { close(l.stop); l.wg.Wait() }

// waitHealthy polls until the token is healthy and an operation works.
func waitHealthy(t *testing.T, tok *hsm.Token) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if tok.Healthy() == nil {
			if _, _, err := tok.SignES256(context.Background(), []byte("after")); err == nil {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("token did not heal: %v", tok.Healthy())
}

func TestRecoverClosedSessions(t *testing.T) {
	tok := hsmtest.NewTokenWith(t, hsmtest.Options{Sessions: 2, NoVendorCA: true})
	p := hsm.RawCtx(tok.Token)
	for _, sh := range hsm.PooledSessions(tok.Token) {
		if err := p.CloseSession(sh); err != nil {
			t.Fatal(err)
		}
	}
	// Session errors are fixed transparently by replacing the session.
	for range 4 {
		if _, _, err := tok.SignES256(context.Background(), []byte("x")); err != nil {
			t.Fatalf("sign after sessions closed: %v", err)
		}
	}
	if err := tok.Healthy(); err != nil {
		t.Fatal(err)
	}
}

func TestRecoverAllSessionsClosedUnderLoad(t *testing.T) {
	tok := hsmtest.NewTokenWith(t, hsmtest.Options{Sessions: 2, NoVendorCA: true})
	l := startLoad(t, tok.Token, 4)
	time.Sleep(50 * time.Millisecond)
	// C_CloseAllSessions also drops the anchor and so the login: handles
	// become invalid and the token must log in again by itself.
	if err := hsm.CloseAllSessions(tok.Token); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	l.halt()
	waitHealthy(t, tok.Token)
	if l.ok.Load() == 0 {
		t.Fatal("no operation succeeded")
	}
}

func TestRecoverLogoutFromOtherSession(t *testing.T) {
	tok := hsmtest.NewTokenWith(t, hsmtest.Options{Sessions: 2, NoVendorCA: true})
	p := hsm.RawCtx(tok.Token)
	sh, err := p.OpenSession(hsm.Slot(tok.Token), pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		t.Fatal(err)
	}
	defer p.CloseSession(sh)
	if err := p.Logout(sh); err != nil {
		t.Fatal(err)
	}
	// Handles vanished (CKR_OBJECT_HANDLE_INVALID); one call re-logs in,
	// re-finds the keys and retries.
	if _, _, err := tok.SignES256(context.Background(), []byte("x")); err != nil {
		t.Fatalf("sign after logout: %v", err)
	}
	if err := tok.Healthy(); err != nil {
		t.Fatal(err)
	}
}

func TestRecoverFinalizedLibraryUnderLoad(t *testing.T) {
	tok := hsmtest.NewTokenWith(t, hsmtest.Options{Sessions: 2, NoVendorCA: true})
	l := startLoad(t, tok.Token, 4)
	time.Sleep(50 * time.Millisecond)
	before := l.ok.Load()
	if err := hsm.FinalizeModule(tok.Token); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, tok.Token)
	time.Sleep(50 * time.Millisecond)
	l.halt()
	if l.failed.Load() == 0 {
		t.Log("no operation observed the outage (recovery was faster than the callers)")
	}
	if l.ok.Load() <= before {
		t.Fatal("no operation succeeded after recovery")
	}
	// Keys are the same after re-initialisation (found again by CKA_ID).
	raw, _ := tok.JWKS()
	if len(raw) == 0 {
		t.Fatal("empty JWKS after recovery")
	}
}

func TestDeviceErrorFailsFastThenHeals(t *testing.T) {
	tok := hsmtest.NewTokenWith(t, hsmtest.Options{Sessions: 2, NoVendorCA: true, RecoveryBackoff: 200 * time.Millisecond})
	var faults hsm.Faults
	cfg := tok.Config
	cfg.RecoveryBackoff = 200 * time.Millisecond
	ft, err := hsm.Open(context.Background(), hsm.WithFaults(cfg, &faults))
	if err != nil {
		t.Fatal(err)
	}
	defer ft.Close()
	faults.FailSigns(pkcs11.Error(pkcs11.CKR_DEVICE_ERROR))
	_, _, err = ft.SignES256(context.Background(), []byte("x"))
	if !errors.Is(err, hsm.ErrUnavailable) || !errors.Is(err, pkcs11.Error(pkcs11.CKR_DEVICE_ERROR)) {
		t.Fatalf("sign = %v, want ErrUnavailable wrapping CKR_DEVICE_ERROR", err)
	}
	if err := ft.Healthy(); !errors.Is(err, hsm.ErrUnavailable) {
		t.Fatalf("Healthy = %v, want ErrUnavailable", err)
	}
	// Fail fast: no C_Sign reaches the token while unhealthy.
	signs := faults.Signs.Load()
	if _, _, err := ft.SignES256(context.Background(), []byte("x")); !errors.Is(err, hsm.ErrUnavailable) {
		t.Fatalf("second sign = %v, want ErrUnavailable", err)
	}
	if _, _, err := ft.MAC(context.Background(), []byte("x")); !errors.Is(err, hsm.ErrUnavailable) {
		t.Fatalf("MAC = %v, want ErrUnavailable", err)
	}
	if faults.Signs.Load() != signs {
		t.Fatal("operations reached the token while unhealthy")
	}
	waitHealthy(t, ft)
}

func TestRecoveryRetriesWhileDeviceStaysDown(t *testing.T) {
	tok := hsmtest.NewTokenWith(t, hsmtest.Options{NoVendorCA: true, Quiet: true})
	var faults hsm.Faults
	cfg := tok.Config
	cfg.RecoveryBackoff = 5 * time.Millisecond
	ft, err := hsm.Open(context.Background(), hsm.WithFaults(cfg, &faults))
	if err != nil {
		t.Fatal(err)
	}
	defer ft.Close()
	// The device fails, and the first re-initialisation attempts cannot
	// open sessions either: the loop backs off and keeps trying.
	faults.FailOpens(pkcs11.Error(pkcs11.CKR_DEVICE_ERROR), pkcs11.Error(pkcs11.CKR_DEVICE_ERROR),
		pkcs11.Error(pkcs11.CKR_DEVICE_ERROR), pkcs11.Error(pkcs11.CKR_DEVICE_ERROR))
	faults.FailSigns(pkcs11.Error(pkcs11.CKR_DEVICE_REMOVED))
	if _, _, err := ft.SignES256(context.Background(), []byte("x")); !errors.Is(err, hsm.ErrUnavailable) {
		t.Fatalf("sign = %v", err)
	}
	waitHealthy(t, ft)
}

func TestSessionErrorIsRetriedOnce(t *testing.T) {
	tok := hsmtest.NewTokenWith(t, hsmtest.Options{NoVendorCA: true, Quiet: true})
	var faults hsm.Faults
	ft, err := hsm.Open(context.Background(), hsm.WithFaults(tok.Config, &faults))
	if err != nil {
		t.Fatal(err)
	}
	defer ft.Close()
	faults.FailSigns(pkcs11.Error(pkcs11.CKR_SESSION_HANDLE_INVALID))
	if _, _, err := ft.SignES256(context.Background(), []byte("x")); err != nil {
		t.Fatalf("one session error should be absorbed: %v", err)
	}
	// Two in a row: the retry fails too, the token turns unhealthy.
	faults.FailSigns(pkcs11.Error(pkcs11.CKR_SESSION_HANDLE_INVALID), pkcs11.Error(pkcs11.CKR_SESSION_HANDLE_INVALID))
	if _, _, err := ft.SignES256(context.Background(), []byte("x")); !errors.Is(err, hsm.ErrUnavailable) {
		t.Fatalf("sign = %v, want ErrUnavailable after a failed retry", err)
	}
	waitHealthy(t, ft)
	// A caller error is not retried and does not affect health.
	faults.FailSigns(pkcs11.Error(pkcs11.CKR_DATA_LEN_RANGE))
	before := faults.Signs.Load()
	if _, _, err := ft.SignES256(context.Background(), []byte("x")); !errors.Is(err, pkcs11.Error(pkcs11.CKR_DATA_LEN_RANGE)) {
		t.Fatalf("sign = %v", err)
	}
	if faults.Signs.Load()-before != 1 || ft.Healthy() != nil {
		t.Fatal("caller error was retried or changed health")
	}
}

func TestClosedTokenFails(t *testing.T) {
	tok := hsmtest.NewTokenWith(t, hsmtest.Options{NoVendorCA: true, Quiet: true})
	tok2, err := hsm.Open(context.Background(), tok.Config)
	if err != nil {
		t.Fatal(err)
	}
	tok2.Close()
	tok2.Close()
	if _, _, err := tok2.SignES256(context.Background(), []byte("x")); !errors.Is(err, hsm.ErrUnavailable) {
		t.Fatalf("sign on closed token = %v", err)
	}
}
