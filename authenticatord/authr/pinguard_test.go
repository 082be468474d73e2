package authr

import (
	"testing"
	"time"
)

// TestPINGuard: a user who made limit wrong PINs waits until the oldest of them is
// forgotten; other users are not affected.
func TestPINGuard(t *testing.T) {
	g := newPINGuard(3, 10*time.Minute)
	t0 := time.Unix(1_800_000_000, 0)
	for i := range 3 {
		if d := g.retryAfter(1000, t0.Add(time.Duration(i)*time.Minute)); d != 0 {
			t.Fatalf("try %d refused (%v)", i, d)
		}
		g.failed(1000, t0.Add(time.Duration(i)*time.Minute))
	}
	if d := g.retryAfter(1000, t0.Add(3*time.Minute)); d != 7*time.Minute {
		t.Fatalf("after 3 wrong PINs: wait %v, want 7m", d)
	}
	if d := g.retryAfter(1001, t0.Add(3*time.Minute)); d != 0 {
		t.Fatalf("another user waits %v", d)
	}
	// The first failure is forgotten at t0+10m: one more try.
	if d := g.retryAfter(1000, t0.Add(10*time.Minute)); d != 0 {
		t.Fatalf("after recovery: wait %v", d)
	}
	g.failed(1000, t0.Add(10*time.Minute))
	if d := g.retryAfter(1000, t0.Add(10*time.Minute)); d != time.Minute {
		t.Fatalf("after a fourth wrong PIN: wait %v, want 1m", d)
	}
	if d := (*pinGuard)(nil).retryAfter(1, t0); d != 0 {
		t.Fatal("nil guard refuses")
	}
	if d := newPINGuard(0, time.Minute).retryAfter(1, t0); d != 0 {
		t.Fatal("guard without limit refuses")
	}
}
