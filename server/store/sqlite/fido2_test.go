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
	if _, _, err := db.FIDO2UserCredentialsByName(ctx, "nobody", "example.org"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
	if gu, gc, err := db.FIDO2UserCredentials(ctx, u.ID, "example.org"); err != nil || gu.Username != "alice" ||
		string(gu.Handle) != string(u.Handle) || len(gc) != 0 || !gu.CreatedAt.Equal(u.CreatedAt) {
		t.Fatalf("user without credentials: %v %+v %d", err, gu, len(gc))
	}
	exp := time.Now().Add(time.Minute)
	// A stored session (options with extension inputs) is found by challenge.
	newSession(t, db, "s1", record.CeremonyRegistration, u, []byte("challenge-1"), exp)
	s1, err := db.FIDO2SessionByChallenge(ctx, []byte("challenge-1"))
	if err != nil || s1.ID != "s1" || s1.Status != record.StatusInitialized || s1.UserID != u.ID {
		t.Fatalf("by challenge: %v %+v", err, s1)
	}
	if _, err := db.FIDO2SessionByChallenge(ctx, []byte("nope")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown challenge: %v", err)
	}
	c := record.Credential{UserID: u.ID, RPID: "example.org", CredentialID: []byte{1, 2, 3}, PublicKey: []byte{9},
		AAGUID: make([]byte, 16), SignCount: 5, Flags: record.Flags{UserPresent: true, BackupEligible: true},
		AttestationFormat: "packed", AttestationType: "self", Trust: "trusted", Transports: []string{"usb", "nfc"},
		Discoverable: true, Name: "key", Record: []byte(`{"x":1}`)}
	// The wrong ceremony does not finish it.
	wrong := *s1
	wrong.Ceremony = record.CeremonyAuthentication
	if err := db.FinishFIDO2Registration(ctx, wrong, c); !errors.Is(err, store.ErrReplay) {
		t.Fatalf("other ceremony: %v", err)
	}
	if err := db.FinishFIDO2Registration(ctx, *s1, c); err != nil {
		t.Fatal(err)
	}
	got, err := db.FIDO2CredentialByID(ctx, "example.org", c.CredentialID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Username != "alice" || string(got.UserHandle) != string(u.Handle) || got.SignCount != 5 ||
		!got.Flags.BackupEligible || got.Flags.UserVerified || len(got.Transports) != 2 || !got.Discoverable ||
		string(got.Record) != `{"x":1}` {
		t.Fatalf("stored %+v", got)
	}
	sess, _ := db.FIDO2Session(ctx, "s1")
	if sess.Status != record.StatusSucceeded || string(sess.CredentialID) != string(c.CredentialID) || sess.Username != "alice" {
		t.Fatalf("session %+v", sess)
	}
	// Single use: the finished session cannot finish again, nor fail.
	c2 := c
	c2.CredentialID = []byte{4}
	if err := db.FinishFIDO2Registration(ctx, *s1, c2); !errors.Is(err, store.ErrReplay) {
		t.Fatalf("second finish: %v", err)
	}
	if err := db.FailFIDO2Session(ctx, *s1, "late", time.Now()); !errors.Is(err, store.ErrReplay) {
		t.Fatalf("fail after success: %v", err)
	}
	if _, err := db.FIDO2CredentialByID(ctx, "example.org", c2.CredentialID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("replayed registration stored a credential: %v", err)
	}
	// A sealed session (no row yet): finishing inserts the row. The same credential ID
	// again is refused and leaves no session row.
	sealed := record.Session{ID: "sealed-2", Ceremony: record.CeremonyRegistration, Challenge: []byte("challenge-2"),
		UserID: u.ID, Username: "alice", ExpiresAt: exp}
	if err := db.FinishFIDO2Registration(ctx, sealed, c); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := db.FIDO2Session(ctx, "sealed-2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("session row left by a failed registration: %v", err)
	}
	// A sealed session whose challenge is another session's is a replay.
	clash := sealed
	clash.Challenge = []byte("challenge-1")
	if err := db.FinishFIDO2Registration(ctx, clash, c2); !errors.Is(err, store.ErrReplay) {
		t.Fatalf("challenge clash: %v", err)
	}
	// A registration for a user that is gone.
	gone := sealed
	gone.ID, gone.Challenge = "sealed-gone", []byte("challenge-gone")
	c3 := c2
	c3.UserID = 999
	if err := db.FinishFIDO2Registration(ctx, gone, c3); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
	hu, hc, err := db.FIDO2CredentialsByHandle(ctx, u.Handle, "example.org")
	if err != nil || hu.Username != "alice" || len(hc) != 1 || hc[0].SignCount != 5 {
		t.Fatalf("by handle: %v %v %d", err, hu, len(hc))
	}
	// The ceremony reads leave the opaque record out.
	if len(hc[0].Record) != 0 {
		t.Fatalf("ceremony read returned the record: %q", hc[0].Record)
	}
	if _, _, err := db.FIDO2CredentialsByHandle(ctx, []byte("nope"), "example.org"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown handle: %v", err)
	}
	if nu, nc, err := db.FIDO2UserCredentialsByName(ctx, "alice", "example.org"); err != nil || nu.ID != u.ID ||
		len(nc) != 1 || !nu.CreatedAt.Equal(u.CreatedAt) {
		t.Fatalf("by name: %v %+v %d", err, nu, len(nc))
	}
	if _, nc, err := db.FIDO2UserCredentialsByName(ctx, "alice", "other.org"); err != nil || len(nc) != 0 {
		t.Fatalf("other RP: %v %d", err, len(nc))
	}

	// Counter updates (sealed sessions): increase accepted, equal/lower refused atomically.
	for i, tc := range []struct {
		count uint32
		want  error
	}{{6, nil}, {6, store.ErrCounter}, {3, store.ErrCounter}, {0, store.ErrCounter}, {7, nil}} {
		id := "a" + string(rune('0'+i))
		s := record.Session{ID: id, Ceremony: record.CeremonyAuthentication, Challenge: []byte("auth-" + id),
			UserID: u.ID, Username: "alice", ExpiresAt: exp}
		err := db.FinishFIDO2Authentication(ctx, s, got.CredentialID, record.CounterUpdate{CredentialRowID: got.ID,
			SignCount: tc.count, Flags: record.Flags{UserPresent: true, UserVerified: true, BackupEligible: true, BackupState: true}})
		if !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
			t.Fatalf("update to %d: %v, want %v", tc.count, err, tc.want)
		}
		row, rerr := db.FIDO2Session(ctx, id)
		if tc.want == nil && (rerr != nil || row.Status != record.StatusSucceeded || row.Username != "alice" ||
			string(row.CredentialID) != string(got.CredentialID)) {
			t.Fatalf("session after update %d: %v %+v", tc.count, rerr, row)
		}
		if tc.want != nil && !errors.Is(rerr, store.ErrNotFound) {
			t.Fatalf("refused update %d left a session row: %v", tc.count, rerr)
		}
		if tc.want == nil {
			// Replaying the finished session changes nothing, even with a higher counter.
			if err := db.FinishFIDO2Authentication(ctx, s, got.CredentialID, record.CounterUpdate{CredentialRowID: got.ID,
				SignCount: 100}); !errors.Is(err, store.ErrReplay) {
				t.Fatalf("replay: %v", err)
			}
		}
	}
	now, _ := db.FIDO2CredentialByID(ctx, "example.org", c.CredentialID)
	if now.SignCount != 7 || !now.Flags.UserVerified || !now.Flags.BackupState {
		t.Fatalf("after updates %+v", now)
	}
	// Failing: a sealed session gets a failed row; a second outcome is refused.
	failed := record.Session{ID: "f1", Ceremony: record.CeremonyAuthentication, Challenge: []byte("f1"), ExpiresAt: exp}
	if err := db.FailFIDO2Session(ctx, failed, "bad", time.Now()); err != nil {
		t.Fatal(err)
	}
	if s, _ := db.FIDO2Session(ctx, "f1"); s.Status != record.StatusFailed || s.ErrorMessage != "bad" {
		t.Fatalf("failed session %+v", s)
	}
	if err := db.FinishFIDO2Authentication(ctx, failed, got.CredentialID, record.CounterUpdate{CredentialRowID: got.ID,
		SignCount: 50}); !errors.Is(err, store.ErrReplay) {
		t.Fatalf("success after failure: %v", err)
	}
	// A credential that is gone.
	missing := record.Session{ID: "m1", Ceremony: record.CeremonyAuthentication, Challenge: []byte("m1"), ExpiresAt: exp}
	if err := db.FinishFIDO2Authentication(ctx, missing, []byte{0}, record.CounterUpdate{CredentialRowID: 12345,
		SignCount: 1}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing credential: %v", err)
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
	if err := db.CreateFIDO2Session(ctx, record.Session{ID: "dup", Challenge: []byte("old"), Data: []byte("{}"),
		Status: record.StatusInitialized}); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("duplicate challenge: %v", err)
	}
	newSession(t, db, "new", record.CeremonyAuthentication, nil, []byte("new"), time.Now().Add(time.Hour))
	n, err := db.PurgeFIDO2Sessions(ctx, time.Now())
	if err != nil || n != 1 {
		t.Fatalf("purge %d %v", n, err)
	}
	if _, err := db.FIDO2Session(ctx, "old"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after purge: %v", err)
	}
	if _, err := db.FIDO2Session(ctx, "new"); err != nil {
		t.Fatalf("unexpired session purged: %v", err)
	}
}

// TestFIDO2CounterRace: concurrent assertions with the same counter; exactly one wins.
// The "session" case: concurrent results for one session; exactly one is recorded.
func TestFIDO2CounterRace(t *testing.T) {
	ctx := context.Background()
	db := openFIDO2(t)
	u, _ := db.EnsureUser(ctx, "racer")
	exp := time.Now().Add(time.Minute)
	reg := record.Session{ID: "r", Ceremony: record.CeremonyRegistration, Challenge: []byte("r"), UserID: u.ID,
		Username: u.Username, ExpiresAt: exp}
	if err := db.FinishFIDO2Registration(ctx, reg, record.Credential{UserID: u.ID, RPID: "x", CredentialID: []byte{7},
		PublicKey: []byte{1}, SignCount: 1, Record: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	c, err := db.FIDO2CredentialByID(ctx, "x", []byte{7})
	if err != nil {
		t.Fatal(err)
	}
	race := func(t *testing.T, session func(i int) record.Session, count func(i int) uint32, loser error) {
		t.Helper()
		const n = 8
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- db.FinishFIDO2Authentication(ctx, session(i), c.CredentialID,
					record.CounterUpdate{CredentialRowID: c.ID, SignCount: count(i)})
			}()
		}
		wg.Wait()
		close(errs)
		ok := 0
		for err := range errs {
			if err == nil {
				ok++
			} else if !errors.Is(err, loser) {
				t.Fatal(err)
			}
		}
		if ok != 1 {
			t.Fatalf("%d concurrent finishes succeeded, want 1", ok)
		}
	}
	t.Run("counter", func(t *testing.T) {
		race(t, func(i int) record.Session {
			id := "race" + string(rune('a'+i))
			return record.Session{ID: id, Ceremony: record.CeremonyAuthentication, Challenge: []byte(id), ExpiresAt: exp}
		}, func(int) uint32 { return 2 }, store.ErrCounter)
	})
	t.Run("session", func(t *testing.T) {
		s := record.Session{ID: "one", Ceremony: record.CeremonyAuthentication, Challenge: []byte("one"), ExpiresAt: exp}
		race(t, func(int) record.Session { return s }, func(i int) uint32 { return uint32(10 + i) }, store.ErrReplay)
	})
}

// TestFIDO2NewUserRegistration covers a registration whose user is created by the result
// transaction (the options call wrote nothing).
func TestFIDO2NewUserRegistration(t *testing.T) {
	ctx := context.Background()
	db := openFIDO2(t)
	now := time.Now().UTC()
	sess := func(id string) record.Session {
		return record.Session{ID: id, Ceremony: record.CeremonyRegistration, Challenge: []byte("ch-" + id),
			Username: "dora", Status: record.StatusInitialized, ExpiresAt: now.Add(time.Minute)}
	}
	cred := func(id byte, handle []byte) record.Credential {
		return record.Credential{Username: "dora", UserHandle: handle, RPID: "x", CredentialID: []byte{id},
			PublicKey: []byte{1}, Record: []byte{}, CreatedAt: now}
	}
	h1 := []byte("handle-one-0123456789abcdef01234")
	u, err := db.RegisterFIDO2Credential(ctx, sess("n1"), cred(1, h1))
	if err != nil || u.ID == 0 || u.Username != "dora" || string(u.Handle) != string(h1) {
		t.Fatalf("new user: %v %+v", err, u)
	}
	// A concurrent first registration with the same (derived) handle joins the user.
	if u2, err := db.RegisterFIDO2Credential(ctx, sess("n2"), cred(2, h1)); err != nil || u2.ID != u.ID {
		t.Fatalf("same handle: %v %+v", err, u2)
	}
	// Another handle means the user was created elsewhere meanwhile: nothing is stored.
	if _, err := db.RegisterFIDO2Credential(ctx, sess("n3"), cred(3, []byte("another-handle"))); !errors.Is(err, record.ErrUserChanged) {
		t.Fatalf("other handle: %v", err)
	}
	if _, creds, err := db.FIDO2UserCredentialsByName(ctx, "dora", "x"); err != nil || len(creds) != 2 {
		t.Fatalf("credentials after the refused registration: %v %d", err, len(creds))
	}
	if s, err := db.FIDO2Session(ctx, "n3"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused registration left a session: %v %+v", err, s)
	}
	// A replayed session creates nothing, not even the user.
	c := cred(4, []byte("eve-handle"))
	c.Username = "eve"
	s := sess("n1")
	s.Username = "eve"
	if _, err := db.RegisterFIDO2Credential(ctx, s, c); !errors.Is(err, store.ErrReplay) {
		t.Fatalf("replay: %v", err)
	}
	if _, err := db.UserByName(ctx, "eve"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("replay created the user: %v", err)
	}
	// EnsureFIDO2User keeps an existing user's handle and creates a missing one with the given one.
	if eu, err := db.EnsureFIDO2User(ctx, "dora", []byte("other")); err != nil || string(eu.Handle) != string(h1) {
		t.Fatalf("ensure existing: %v %+v", err, eu)
	}
	if eu, err := db.EnsureFIDO2User(ctx, "frank", []byte("frank-handle")); err != nil || string(eu.Handle) != "frank-handle" {
		t.Fatalf("ensure new: %v %+v", err, eu)
	}
	// A registration naming a user row that does not exist fails.
	gone := cred(5, nil)
	gone.UserID = 9999
	if _, err := db.RegisterFIDO2Credential(ctx, sess("n5"), gone); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("vanished user: %v", err)
	}
}
