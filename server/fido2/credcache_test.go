package fido2

import (
	"fmt"
	"testing"
	"time"
)

// TestCredCacheFullSweepsAtMostOncePerSecond: a full cache drops expired entries to make
// room, but a flood of new sessions cannot make every call scan it.
func TestCredCacheFullSweepsAtMostOncePerSecond(t *testing.T) {
	c := newCredCache()
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	fill := func(prefix string, expires time.Time) {
		for i := len(c.m); i < credCacheMax; i++ {
			c.update(fmt.Sprintf("%s%d", prefix, i), expires, t0, func(*cachedCreds) {})
		}
	}
	has := func(id string) bool { _, ok := c.m[id]; return ok }

	fill("a", t0.Add(time.Second))
	c.update("x1", t0.Add(time.Minute), t0.Add(2*time.Second), func(*cachedCreds) {})
	if !has("x1") || len(c.m) != 1 {
		t.Fatalf("a full cache of expired entries was not swept: %d entries", len(c.m))
	}
	// The entries of the second fill have expired by the next call, but the last sweep was
	// less than a second ago: nothing is dropped and the new entry is not stored.
	fill("b", t0.Add(2*time.Second+500*time.Millisecond))
	c.update("x2", t0.Add(time.Minute), t0.Add(2*time.Second+900*time.Millisecond), func(*cachedCreds) {})
	if has("x2") || len(c.m) != credCacheMax {
		t.Fatalf("swept again within a second of the last sweep (%d entries)", len(c.m))
	}
	c.update("x4", t0.Add(time.Minute), t0.Add(3*time.Second), func(*cachedCreds) {})
	if !has("x4") || len(c.m) != 2 { // x1 and x4
		t.Fatalf("not swept a second after the last sweep (%d entries)", len(c.m))
	}
	// An existing entry is always updated.
	c.update("x4", t0.Add(2*time.Minute), t0.Add(4*time.Second), func(e *cachedCreds) { e.handle = []byte{1} })
	if e := c.m["x4"]; e.handle == nil || !e.expires.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("update of an existing entry: %+v", e)
	}
}
