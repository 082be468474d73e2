package keystore

import (
	"path/filepath"
	"testing"

	"github.com/fidoserver/hwfido/authenticatord/tpm"
)

func TestReserveSignCounters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "u.json")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := NewKeyID()
	rec := Record{AAID: "4857#0001", KeyID: id, AppID: "https://a.example", Username: "u",
		Key: tpm.KeyBlob{Public: []byte{1}, Private: []byte{2}}}
	if err := s.Add(rec); err != nil {
		t.Fatal(err)
	}
	first, last, err := s.ReserveSignCounters(rec.AAID, id, 32)
	if err != nil || first != 1 || last != 32 {
		t.Fatalf("reserve = %d..%d, %v", first, last, err)
	}
	// A reopened store (restart) continues after the whole block.
	s2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := s2.NextSignCounter(rec.AAID, id); err != nil || c != 33 {
		t.Fatalf("after restart NextSignCounter = %d, %v", c, err)
	}
	for _, n := range []uint32{0, 1<<16 + 1} {
		if _, _, err := s2.ReserveSignCounters(rec.AAID, id, n); err == nil {
			t.Errorf("reserve %d accepted", n)
		}
	}
	if _, _, err := s2.ReserveSignCounters(rec.AAID, []byte("nope-nope-nope-nope-nope-nope-nope"), 1); err != ErrNotFound {
		t.Errorf("unknown key: %v", err)
	}
}
