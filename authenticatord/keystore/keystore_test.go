package keystore

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/authenticatord/tpm"
	"github.com/fidoserver/hwfido/authenticatord/tpm/swtpmtest"
)

func testRecord(t *testing.T, appID string) Record {
	t.Helper()
	id, err := NewKeyID()
	if err != nil {
		t.Fatal(err)
	}
	return Record{
		AAID: "ABCD#0001", KeyID: id, AppID: appID, Username: "alice",
		KHAccessToken: bytes.Repeat([]byte{9}, 32),
		Key:           tpm.KeyBlob{Public: []byte{0, 2, 1, 2}, Private: []byte{0, 2, 3, 4}, Salt: bytes.Repeat([]byte{1}, 32)},
	}
}

func TestAddGetReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	fixed := time.Date(2025, 1, 2, 3, 4, 5, 600, time.FixedZone("x", 3600))
	s, err := Open(path, Options{Now: func() time.Time { return fixed }})
	if err != nil {
		t.Fatal(err)
	}
	r := testRecord(t, "https://a.example")
	if err := s.Add(r); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(r); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("duplicate Add: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode().Perm())
	}
	s2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s2.Get(r.AAID, r.KeyID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Created.Equal(fixed.UTC().Truncate(time.Second)) || got.Created.Location() != time.UTC {
		t.Fatalf("created %v", got.Created)
	}
	if !bytes.Equal(got.Key.Private, r.Key.Private) || got.Username != "alice" {
		t.Fatal("record not round-tripped")
	}
	if _, err := s2.Get(r.AAID, bytes.Repeat([]byte{0}, 32)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get unknown: %v", err)
	}
	// Mutating a returned record does not change the store.
	got.KeyID[0] ^= 1
	if _, err := s2.Get(r.AAID, r.KeyID); err != nil {
		t.Fatal("store aliased a returned slice")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

func TestCountersMonotonicAndPersisted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	s, _ := Open(path, Options{})
	r := testRecord(t, "https://a.example")
	if err := s.Add(r); err != nil {
		t.Fatal(err)
	}
	for want := uint32(1); want <= 3; want++ {
		c, err := s.NextSignCounter(r.AAID, r.KeyID)
		if err != nil || c != want {
			t.Fatalf("NextSignCounter = %d, %v; want %d", c, err, want)
		}
		// Each value is on disk before it is returned.
		s2, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := s2.Get(r.AAID, r.KeyID)
		if got.SignCounter != want {
			t.Fatalf("persisted counter %d, want %d", got.SignCounter, want)
		}
	}
	if c, err := s.NextRegCounter(); err != nil || c != 1 {
		t.Fatalf("NextRegCounter = %d, %v", c, err)
	}
	// A failed write does not advance the counter in memory either.
	dir := t.TempDir()
	bad := filepath.Join(dir, "keys.json")
	sb, _ := Open(bad, Options{})
	if err := sb.Add(r); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(bad); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(bad, 0o700); err != nil { // rename onto a directory fails
		t.Fatal(err)
	}
	if _, err := sb.NextSignCounter(r.AAID, r.KeyID); err == nil {
		t.Fatal("counter advanced although the write failed")
	}
	got, _ := sb.Get(r.AAID, r.KeyID)
	if got.SignCounter != 0 {
		t.Fatalf("in-memory counter %d after failed write", got.SignCounter)
	}
	// Exhaustion.
	sb2, _ := Open(filepath.Join(dir, "k2.json"), Options{})
	r2 := testRecord(t, "x")
	r2.SignCounter = 1<<32 - 1
	if err := sb2.Add(r2); err != nil {
		t.Fatal(err)
	}
	if _, err := sb2.NextSignCounter(r2.AAID, r2.KeyID); !errors.Is(err, ErrCounterExhausted) {
		t.Fatalf("exhausted counter: %v", err)
	}
}

func TestDeleteAndList(t *testing.T) {
	s, _ := Open(filepath.Join(t.TempDir(), "keys.json"), Options{})
	a1, a2, b1 := testRecord(t, "A"), testRecord(t, "A"), testRecord(t, "B")
	for _, r := range []Record{a1, a2, b1} {
		if err := s.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(s.List("A")); n != 2 {
		t.Fatalf("List(A) = %d", n)
	}
	// Wrong AppID: nothing deleted, no error (no existence oracle).
	if err := s.Delete(a1.AAID, "B", a1.KeyID); err != nil {
		t.Fatal(err)
	}
	if len(s.List("")) != 3 {
		t.Fatal("deleted across AppIDs")
	}
	if err := s.Delete(a1.AAID, "A", a1.KeyID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(a1.AAID, a1.KeyID); !errors.Is(err, ErrNotFound) {
		t.Fatal("a1 still there")
	}
	if err := s.Delete(a1.AAID, "A", nil); err != nil { // all of A
		t.Fatal(err)
	}
	if len(s.List("A")) != 0 || len(s.List("B")) != 1 {
		t.Fatal("delete-all wrong")
	}
}

func TestDecodeStrict(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ``},
		{"unknown field", `{"version":1,"records":[],"extra":1}`},
		{"wrong version", `{"version":2,"records":[]}`},
		{"trailing", `{"version":1,"records":[]} {}`},
		{"invalid record", `{"version":1,"records":[{"aaid":"A"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decode([]byte(tt.in)); !errors.Is(err, ErrInvalid) {
				t.Fatalf("decode(%q) = %v, want ErrInvalid", tt.in, err)
			}
		})
	}
	if _, err := decode([]byte(`{"version":1,"regCounter":5,"records":[]}`)); err != nil {
		t.Fatalf("valid file: %v", err)
	}
}

// TestWithTPM stores a real TPM key, reopens the store and signs with it.
func TestWithTPM(t *testing.T) {
	sim := swtpmtest.Start(t, swtpmtest.Options{})
	tr, err := tpm.OpenTCP(sim.Addr())
	if err != nil {
		t.Fatal(err)
	}
	tp, err := tpm.Open(tpm.Options{Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tp.Close() }()
	pin := []byte("2468")
	kb, err := tp.CreateKey(pin)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "keys.json")
	s, _ := Open(path, Options{})
	r := testRecord(t, "https://a.example")
	r.Key = *kb
	if err := s.Add(r); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s2.Get(r.AAID, r.KeyID)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("signed data"))
	raw, err := tp.Sign(&got.Key, pin, d[:])
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := got.Key.PublicKey()
	if !ecdsa.Verify(pub, d[:], new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])) {
		t.Fatal("signature with stored key does not verify")
	}
}
