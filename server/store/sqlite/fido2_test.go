package sqlite_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/server/fido2/record"
	"github.com/fidoserver/hwfido/server/store"
	"github.com/fidoserver/hwfido/server/store/sqlite"
)

func openFIDO2(t *testing.T) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(t.TempDir(), "f.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newSession(t *testing.T, db *sqlite.DB, id string, c record.Ceremony, u *store.User, ch []byte, exp time.Time) {
	t.Helper()
	now := time.Now().UTC()
	s := record.Session{ID: id, Ceremony: c, Challenge: ch, Data: []byte("{}"), Status: record.StatusInitialized,
		CreatedAt: now, UpdatedAt: now, ExpiresAt: exp}
	if u != nil {
		s.UserID, s.Username = u.ID, u.Username
	}
	if err := db.CreateFIDO2Session(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

func TestFIDO2CredentialLifecycle(t *testing.T) {
	ctx := context.Background()
	db := openFIDO2(t)
	u, err := db.EnsureUser(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Minute)
	newSession(t, db, "s1", record.CeremonyRegistration, u, []byte("challenge-1"), exp)
	if _, err := db.TakeFIDO2Session(ctx, record.CeremonyAuthentication, []byte("challenge-1"), time.Now()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("other ceremony: %v", err)
	}
	s, err := db.TakeFIDO2Session(ctx, record.CeremonyRegistration, []byte("challenge-1"), time.Now())
	if err != nil || s.ID != "s1" || s.Status != record.StatusVerifying {
		t.Fatalf("take: %v %+v", err, s)
	}
	if _, err := db.TakeFIDO2Session(ctx, record.CeremonyRegistration, []byte("challenge-1"), time.Now()); !errors.Is(err, store.ErrReplay) {
		t.Fatalf("second take: %v", err)
	}
	c := record.Credential{UserID: u.ID, RPID: "example.org", CredentialID: []byte{1, 2, 3}, PublicKey: []byte{9},
		AAGUID: make([]byte, 16), SignCount: 5, Flags: record.Flags{UserPresent: true, BackupEligible: true},
		AttestationFormat: "packed", AttestationType: "self", Trust: "trusted", Transports: []string{"usb", "nfc"},
		Discoverable: true, Name: "key", Record: []byte(`{"x":1}`)}
	got, err := db.CompleteFIDO2Registration(ctx, "s1", c)
	if err != nil {
		t.Fatal(err)
	}
	if got.Username != "alice" || string(got.UserHandle) != string(u.Handle) || got.SignCount != 5 ||
		!got.Flags.BackupEligible || got.Flags.UserVerified || len(got.Transports) != 2 || !got.Discoverable {
		t.Fatalf("stored %+v", got)
	}
	sess, _ := db.FIDO2Session(ctx, "s1")
	if sess.Status != record.StatusSucceeded || string(sess.CredentialID) != string(c.CredentialID) {
		t.Fatalf("session %+v", sess)
	}
	// Same credential ID again (another session) is refused and changes nothing.
	newSession(t, db, "s2", record.CeremonyRegistration, u, []byte("challenge-2"), exp)
	if _, err := db.TakeFIDO2Session(ctx, record.CeremonyRegistration, []byte("challenge-2"), time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CompleteFIDO2Registration(ctx, "s2", c); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if s2, _ := db.FIDO2Session(ctx, "s2"); s2.Status != record.StatusVerifying {
		t.Fatalf("session changed by a failed registration: %s", s2.Status)
	}
	hu, hc, err := db.FIDO2CredentialsByHandle(ctx, u.Handle, "example.org")
	if err != nil || hu.Username != "alice" || len(hc) != 1 {
		t.Fatalf("by handle: %v %v %d", err, hu, len(hc))
	}
	if _, _, err := db.FIDO2CredentialsByHandle(ctx, []byte("nope"), "example.org"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown handle: %v", err)
	}

	// Counter updates: increase accepted, equal/lower refused atomically.
	for i, tc := range []struct {
		count uint32
		want  error
	}{{6, nil}, {6, store.ErrCounter}, {3, store.ErrCounter}, {0, store.ErrCounter}, {7, nil}} {
		id := "a" + string(rune('0'+i))
		ch := []byte("auth-" + id)
		newSession(t, db, id, record.CeremonyAuthentication, nil, ch, exp)
		if _, err := db.TakeFIDO2Session(ctx, record.CeremonyAuthentication, ch, time.Now()); err != nil {
			t.Fatal(err)
		}
		err := db.CompleteFIDO2Authentication(ctx, id, record.CounterUpdate{CredentialRowID: got.ID, SignCount: tc.count,
			Flags: record.Flags{UserPresent: true, UserVerified: true, BackupEligible: true, BackupState: true}})
		if !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
			t.Fatalf("update to %d: %v, want %v", tc.count, err, tc.want)
		}
		s, _ := db.FIDO2Session(ctx, id)
		if (tc.want == nil) != (s.Status == record.StatusSucceeded) || (tc.want == nil && s.Username != "alice") {
			t.Fatalf("session after update %d: %+v", tc.count, s)
		}
	}
	now, _ := db.FIDO2CredentialByID(ctx, "example.org", c.CredentialID)
	if now.SignCount != 7 || !now.Flags.UserVerified || !now.Flags.BackupState {
		t.Fatalf("after updates %+v", now)
	}
	if err := db.FailFIDO2Session(ctx, "a1", "bad", time.Now()); err != nil {
		t.Fatal(err)
	}
	if s, _ := db.FIDO2Session(ctx, "a1"); s.Status != record.StatusFailed || s.ErrorMessage != "bad" {
		t.Fatalf("failed session %+v", s)
	}
	// Delete: only the owner's.
	if _, err := db.EnsureUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteFIDO2Credential(ctx, "bob", "example.org", c.CredentialID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete by other user: %v", err)
	}
	if err := db.DeleteFIDO2Credential(ctx, "alice", "example.org", c.CredentialID); err != nil {
		t.Fatal(err)
	}
	if l, _ := db.FIDO2Credentials(ctx, "alice", "example.org"); len(l) != 0 {
		t.Fatalf("left %d", len(l))
	}
}

func TestFIDO2SessionExpiryAndPurge(t *testing.T) {
	ctx := context.Background()
	db := openFIDO2(t)
	past := time.Now().Add(-time.Second)
	newSession(t, db, "old", record.CeremonyAuthentication, nil, []byte("old"), past)
	if _, err := db.TakeFIDO2Session(ctx, record.CeremonyAuthentication, []byte("old"), time.Now()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired take: %v", err)
	}
	if err := db.CreateFIDO2Session(ctx, record.Session{ID: "dup", Challenge: []byte("old"), Data: []byte("{}"),
		Status: record.StatusInitialized}); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("duplicate challenge: %v", err)
	}
	n, err := db.PurgeFIDO2Sessions(ctx, time.Now())
	if err != nil || n != 1 {
		t.Fatalf("purge %d %v", n, err)
	}
	if _, err := db.FIDO2Session(ctx, "old"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after purge: %v", err)
	}
}

// TestFIDO2CounterRace: concurrent assertions with the same counter; exactly one wins.
func TestFIDO2CounterRace(t *testing.T) {
	ctx := context.Background()
	db := openFIDO2(t)
	u, _ := db.EnsureUser(ctx, "racer")
	exp := time.Now().Add(time.Minute)
	newSession(t, db, "r", record.CeremonyRegistration, u, []byte("r"), exp)
	db.TakeFIDO2Session(ctx, record.CeremonyRegistration, []byte("r"), time.Now())
	c, err := db.CompleteFIDO2Registration(ctx, "r", record.Credential{UserID: u.ID, RPID: "x", CredentialID: []byte{7},
		PublicKey: []byte{1}, SignCount: 1, Record: []byte("{}")})
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		id := "race" + string(rune('a'+i))
		newSession(t, db, id, record.CeremonyAuthentication, nil, []byte(id), exp)
		if _, err := db.TakeFIDO2Session(ctx, record.CeremonyAuthentication, []byte(id), time.Now()); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- db.CompleteFIDO2Authentication(ctx, id, record.CounterUpdate{CredentialRowID: c.ID, SignCount: 2})
		}()
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		if err == nil {
			ok++
		} else if !errors.Is(err, store.ErrCounter) {
			t.Fatal(err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d concurrent updates to the same counter succeeded, want 1", ok)
	}
}
