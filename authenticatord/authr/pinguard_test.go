package authr

import (
	"testing"
	"time"
)

// TestPINGuard: a user holds at most limit failures; one is forgotten per recovery
// period (not all of them), like the TPM's counter; concurrent tries are reserved; other
// users are not affected.
func TestPINGuard(t *testing.T) {
	g := newPINGuard(3, 10*time.Minute)
	t0 := time.Unix(1_800_000_000, 0)
	try := func(uid uint32, at time.Time, wrong bool) time.Duration {
		t.Helper()
		done, wait := g.reserve(uid, at)
		if wait > 0 {
			return wait
		}
		done(wrong, at)
		return 0
	}
	for i := range 3 {
		if d := try(1000, t0.Add(time.Duration(i)*time.Minute), true); d != 0 {
			t.Fatalf("try %d refused (%v)", i, d)
		}
	}
	if d := try(1000, t0.Add(3*time.Minute), true); d != 7*time.Minute {
		t.Fatalf("after 3 wrong PINs: wait %v, want 7m", d)
	}
	if d := try(1001, t0.Add(3*time.Minute), false); d != 0 {
		t.Fatalf("another user waits %v", d)
	}
	// One failure is forgotten per period: after 10 min one more try, not three.
	if d := try(1000, t0.Add(10*time.Minute), true); d != 0 {
		t.Fatalf("after one period: wait %v", d)
	}
	if d := try(1000, t0.Add(10*time.Minute+time.Second), true); d == 0 {
		t.Fatal("two tries after one recovery period")
	}
	// Three periods later all are forgotten.
	for i := range 3 {
		if d := try(1000, t0.Add(40*time.Minute+time.Duration(i)*time.Second), true); d != 0 {
			t.Fatalf("try %d after 30 more minutes refused (%v)", i, d)
		}
	}
	// Concurrent tries: reservations count before the TPM answers.
	var dones []func(bool, time.Time)
	for range 3 {
		done, wait := g.reserve(2000, t0)
		if wait > 0 {
			t.Fatal("reservation refused below the limit")
		}
		dones = append(dones, done)
	}
	if _, wait := g.reserve(2000, t0); wait == 0 {
		t.Fatal("a fourth concurrent try was reserved")
	}
	// One failure held and two tries in flight: the third try waits a second (the
	// tries in flight may succeed), not a recovery period.
	done, wait := g.reserve(3000, t0)
	if wait > 0 {
		t.Fatal("first try refused")
	}
	done(true, t0)
	var more []func(bool, time.Time)
	for range 2 {
		d, w := g.reserve(3000, t0)
		if w > 0 {
			t.Fatal("try below the limit refused")
		}
		more = append(more, d)
	}
	if _, w := g.reserve(3000, t0); w != time.Second {
		t.Fatalf("limit reached by tries in flight: wait %v, want 1s", w)
	}
	for _, d := range more {
		d(false, t0)
	}
	for _, d := range dones {
		d(false, t0)
	}
	if _, wait := g.reserve(2000, t0); wait != 0 {
		t.Fatal("tries that succeeded still counted")
	}
	if _, wait := (*pinGuard)(nil).reserve(1, t0); wait != 0 {
		t.Fatal("nil guard refuses")
	}
}
