package agent

import (
	"os"
	"testing"
	"time"
)

// TestBackoffBounded: the reconnect delay doubles from MinBackoff, never
// exceeds MaxBackoff by more than the jitter, and never overflows.
func TestBackoffBounded(t *testing.T) {
	a := &Agent{o: Options{MinBackoff: time.Second, MaxBackoff: time.Minute}}
	for n := range 200 {
		d := a.backoff(n)
		want := min(time.Second<<min(n, 20), time.Minute)
		if d < want*8/10 || d > want*12/10 {
			t.Fatalf("backoff(%d) = %v, want %v ±20%%", n, d, want)
		}
	}
}

// FuzzStoreFile: the per-user target store is decoded strictly; whatever
// a corrupted file holds, loading fails or yields a bounded store.
func FuzzStoreFile(f *testing.F) {
	f.Add([]byte(`{"version":1,"deviceId":"d","targets":[{"id":"t","server":"https://s","username":"u","name":"n","dispatcher":"hwfido-stream","signKey":{"public":"AA==","private":"AA=="},"encKey":{"public":"AA==","private":"AA=="},"created":"2026-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"version":2}`))
	dir := f.TempDir()
	s := &store{dir: dir}
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(s.path(7), b, 0o600); err != nil {
			t.Fatal(err)
		}
		uf, err := s.view(7)
		if err != nil {
			return
		}
		if uf.Version != storeVersion || uf.DeviceID == "" || len(uf.Targets) > maxTargets {
			t.Fatalf("accepted %+v", uf)
		}
		for _, r := range uf.Targets {
			if r == nil || r.Server == "" || r.Username == "" {
				t.Fatalf("accepted a bad record %+v", r)
			}
		}
	})
}
