package sqlite_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/server/oob/record"
	"github.com/fidoserver/hwfido/server/store"
	"github.com/fidoserver/hwfido/server/store/sqlite"
)

func newOOBSession(t *testing.T, db interface {
	CreateOOBSession(context.Context, record.Session, record.Token) error
}, id, op, secret string, now time.Time, life time.Duration) []byte {
	t.Helper()
	h := sha256.Sum256([]byte(secret))
	s := record.Session{ID: id, Handle: "h-" + id, Op: op, Status: record.StatusTokenCreated, TokenExpiresAt: now.Add(life), CreatedAt: now,
		UpdatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := db.CreateOOBSession(context.Background(), s, record.Token{Hash: h[:], Op: op, SessionID: id, Context: `{"x":1}`, ExpiresAt: now.Add(life)}); err != nil {
		t.Fatal(err)
	}
	return h[:]
}

func TestOOBRedeem(t *testing.T) {
	ctx := context.Background()
	db := open(t, filepath.Join(t.TempDir(), "fido.db"))
	now := time.Now()
	h := newOOBSession(t, db, "s1", "Auth", "tok", now, time.Minute)
	if _, err := db.RedeemOOBToken(ctx, h, "Reg", now, record.StatusClientRegistering); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("other operation: %v", err)
	}
	unknown := sha256.Sum256([]byte("other"))
	if _, err := db.RedeemOOBToken(ctx, unknown[:], "Auth", now, record.StatusClientAuthenticating); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	tok, err := db.RedeemOOBToken(ctx, h, "Auth", now, record.StatusClientAuthenticating)
	if err != nil || tok.SessionID != "s1" || tok.Handle != "h-s1" || tok.Context != `{"x":1}` {
		t.Fatalf("redeem: %+v %v", tok, err)
	}
	if _, err := db.RedeemOOBToken(ctx, h, "Auth", now, record.StatusClientAuthenticating); !errors.Is(err, store.ErrReplay) {
		t.Fatalf("second redeem: %v", err)
	}
	s, err := db.OOBSession(ctx, "s1")
	if err != nil || s.Status != record.StatusClientAuthenticating || s.TokenResult != record.TokenRedeemed {
		t.Fatalf("session: %+v %v", s, err)
	}
	h2 := newOOBSession(t, db, "s2", "Auth", "tok2", now, time.Second)
	if _, err := db.RedeemOOBToken(ctx, h2, "Auth", now.Add(time.Second), record.StatusClientAuthenticating); !errors.Is(err, record.ErrExpired) {
		t.Fatalf("expired: %v", err)
	}
	// The first final state wins.
	if id, err := db.UpdateOOBSession(ctx, "h-s1", record.SessionUpdate{Status: record.StatusFailed, UAFStatusCode: 1498}); id != "s1" || err != nil {
		t.Fatalf("fail by handle: %q %v", id, err)
	}
	if id, _ := db.UpdateOOBSession(ctx, "s1", record.SessionUpdate{Status: record.StatusSucceeded, Username: "eve"}); id != "" {
		t.Fatal("a final session changed")
	}
	if s, _ := db.OOBSession(ctx, "s1"); s.Status != record.StatusFailed || s.Username != "" || s.UAFStatusCode != 1498 {
		t.Fatalf("session: %+v", s)
	}
	if n, err := db.PurgeOOB(ctx, now.Add(2*time.Hour)); err != nil || n != 4 {
		t.Fatalf("purge: %d %v", n, err)
	}
	if _, err := db.OOBSession(ctx, "s1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("purged session: %v", err)
	}
}

// TestOOBRedeemRace: concurrent redeems through two handles on one file (two processes'
// worth of connections): exactly one wins.
func TestOOBRedeemRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fido.db")
	a, b := open(t, path), open(t, path)
	now := time.Now()
	h := newOOBSession(t, a, "s", "Reg", "tok", now, time.Minute)
	var won, replay atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		db := a
		if i%2 == 1 {
			db = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := db.RedeemOOBToken(context.Background(), h, "Reg", now, record.StatusClientRegistering)
			switch {
			case err == nil:
				won.Add(1)
			case errors.Is(err, store.ErrReplay):
				replay.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 || replay.Load() != 99 {
		t.Fatalf("%d won, %d replays", won.Load(), replay.Load())
	}
}

func TestOOBTargets(t *testing.T) {
	ctx := context.Background()
	db := open(t, filepath.Join(t.TempDir(), "fido.db"))
	tg := record.Target{ID: "t1", ExtID: "e1", Username: "alice", Name: "phone", Dispatcher: "link", SignatureKey: "{}"}
	if err := db.CreateOOBTarget(ctx, tg); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
	for _, u := range []string{"alice", "bob"} {
		if _, err := db.EnsureUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.CreateOOBTarget(ctx, tg); err != nil {
		t.Fatal(err)
	}
	dup := tg
	dup.ID, dup.ExtID = "t2", "e2"
	if err := db.CreateOOBTarget(ctx, dup); !errors.Is(err, store.ErrAlreadyExists) || !errors.Is(err, record.ErrNameTaken) {
		t.Fatalf("duplicate name: %v", err)
	}
	dup.Username = "bob"
	if err := db.CreateOOBTarget(ctx, dup); err != nil {
		t.Fatalf("same name for another user: %v", err)
	}
	// A registration whose target name is taken stores nothing and consumes nothing.
	c := store.Consumption{Nonce: []byte("nonce-1"), ExpiresAt: time.Now().Add(time.Minute)}
	reg := store.UAFRegistration{AAID: "FFFF#0001", KeyID: "k1", PublicKey: []byte{1}}
	t3 := record.Target{ID: "t3", ExtID: "e3", Name: "phone", Dispatcher: "link", SignatureKey: "{}"}
	if err := db.RegisterUAFWithTarget(ctx, c, "alice", []store.UAFRegistration{reg}, t3); !errors.Is(err, record.ErrNameTaken) {
		t.Fatalf("taken name: %v", err)
	}
	if regs, _ := db.UAFRegistrations(ctx, "alice"); len(regs) != 0 {
		t.Fatal("registration stored despite the failed target")
	}
	t3.Name = "tablet"
	if err := db.RegisterUAFWithTarget(ctx, c, "alice", []store.UAFRegistration{reg}, t3); err != nil {
		t.Fatalf("register with target: %v", err)
	}
	if err := db.RegisterUAFWithTarget(ctx, c, "alice", nil, record.Target{ID: "t4", ExtID: "e4", Name: "x", Dispatcher: "link", SignatureKey: "{}"}); !errors.Is(err, store.ErrReplay) {
		t.Fatalf("replayed nonce: %v", err)
	}
	ts, err := db.OOBTargets(ctx, "alice")
	if err != nil || len(ts) != 2 || ts[0].ID != "t1" || ts[1].ID != "t3" {
		t.Fatalf("targets: %+v %v", ts, err)
	}
	name := "work"
	uc := store.Consumption{Nonce: []byte("req-1"), ExpiresAt: time.Now().Add(time.Minute)}
	if err := db.UpdateOOBTarget(ctx, "t1", uc, record.TargetChange{Name: &name}); err != nil {
		t.Fatal(err)
	}
	other := "other"
	if err := db.UpdateOOBTarget(ctx, "t1", uc, record.TargetChange{Name: &other}); !errors.Is(err, store.ErrReplay) {
		t.Fatalf("replayed update: %v", err)
	}
	taken := "tablet"
	if err := db.UpdateOOBTarget(ctx, "t1", store.Consumption{Nonce: []byte("req-2"), ExpiresAt: time.Now().Add(time.Minute)},
		record.TargetChange{Name: &taken}); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("rename to a taken name: %v", err)
	}
	if got, _ := db.OOBTarget(ctx, "t1"); got.Name != "work" || got.Username != "alice" {
		t.Fatalf("after refused updates: %+v", got)
	}
	if err := db.DeleteOOBTarget(ctx, "t1", nil); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteOOBTarget(ctx, "t1", nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

// TestOOBSessionsChanged: the change sequence reports every session created or changed
// after a point, through any handle on the file, once per call; a purge does not make a
// number be given again.
func TestOOBSessionsChanged(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fido.db")
	a, b := open(t, path), open(t, path)
	now := time.Now()
	seq0, err := a.OOBSessionSeq(ctx)
	if err != nil || seq0 != 0 {
		t.Fatalf("empty: %d %v", seq0, err)
	}
	newOOBSession(t, a, "s1", "Auth", "t1", now, time.Minute)
	h2 := newOOBSession(t, b, "s2", "Auth", "t2", now, time.Minute)
	ids, last, err := a.OOBSessionsChanged(ctx, seq0, 10)
	if err != nil || len(ids) != 2 || ids[0] != "s1" || ids[1] != "s2" || last <= seq0 {
		t.Fatalf("after creation: %v %d %v", ids, last, err)
	}
	if ids, l, _ := a.OOBSessionsChanged(ctx, last, 10); len(ids) != 0 || l != last {
		t.Fatalf("nothing new: %v %d", ids, l)
	}
	// Each write path moves the session past last: dispatch, redeem, update.
	if err := b.SetOOBDispatch(ctx, "s1", "link", "x", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.RedeemOOBToken(ctx, h2, "Auth", now, record.StatusClientAuthenticating); err != nil {
		t.Fatal(err)
	}
	if _, err := b.UpdateOOBSession(ctx, "h-s1", record.SessionUpdate{Status: record.StatusFailed}); err != nil {
		t.Fatal(err)
	}
	ids, last2, err := b.OOBSessionsChanged(ctx, last, 10)
	if err != nil || len(ids) != 2 || ids[0] != "s2" || ids[1] != "s1" || last2 <= last {
		t.Fatalf("after changes: %v %d %v", ids, last2, err)
	}
	// Paging.
	ids, l, _ := a.OOBSessionsChanged(ctx, seq0, 1)
	if len(ids) != 1 || ids[0] != "s2" {
		t.Fatalf("page 1: %v", ids)
	}
	if ids, _, _ = a.OOBSessionsChanged(ctx, l, 1); len(ids) != 1 || ids[0] != "s1" {
		t.Fatalf("page 2: %v", ids)
	}
	// A refused update (final session) is no change.
	if id, _ := a.UpdateOOBSession(ctx, "s1", record.SessionUpdate{Status: record.StatusSucceeded}); id != "" {
		t.Fatal("final session changed")
	}
	if ids, _, _ := a.OOBSessionsChanged(ctx, last2, 10); len(ids) != 0 {
		t.Fatalf("refused update reported: %v", ids)
	}
	// Purge everything, then a new session still gets a number above last2.
	if _, err := a.PurgeOOB(ctx, now.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if s, err := b.OOBSessionSeq(ctx); err != nil || s != last2 {
		t.Fatalf("seq after purge: %d %v, want %d", s, err, last2)
	}
	newOOBSession(t, b, "s3", "Auth", "t3", now, time.Minute)
	if ids, l, _ := a.OOBSessionsChanged(ctx, last2, 10); len(ids) != 1 || ids[0] != "s3" || l <= last2 {
		t.Fatalf("after purge: %v %d", ids, l)
	}
}

// TestOOBRedeemLeavesSession: a redeem with no status (deregistration) consumes the token
// but leaves the session and its change sequence as they are; the outcome then records the
// token result with the final status.
func TestOOBRedeemLeavesSession(t *testing.T) {
	ctx := context.Background()
	db := open(t, filepath.Join(t.TempDir(), "fido.db"))
	now := time.Now()
	h := newOOBSession(t, db, "d1", "Dereg", "tok", now, time.Minute)
	seq, err := db.OOBSessionSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := db.RedeemOOBToken(ctx, h, "Dereg", now, "")
	if err != nil || tok.SessionID != "d1" || tok.Handle != "h-d1" {
		t.Fatalf("redeem: %+v %v", tok, err)
	}
	if _, err := db.RedeemOOBToken(ctx, h, "Dereg", now, ""); !errors.Is(err, store.ErrReplay) {
		t.Fatalf("second redeem: %v", err)
	}
	s, err := db.OOBSession(ctx, "d1")
	if err != nil || s.Status != record.StatusTokenCreated || s.TokenResult != "" {
		t.Fatalf("session after redeem: %+v %v", s, err)
	}
	if after, _ := db.OOBSessionSeq(ctx); after != seq {
		t.Fatalf("change sequence moved %d → %d", seq, after)
	}
	u := record.SessionUpdate{Status: record.StatusSucceeded, TokenResult: record.TokenRedeemed, UAFStatusCode: 1200}
	if id, err := db.UpdateOOBSession(ctx, "d1", u); id != "d1" || err != nil {
		t.Fatalf("outcome: %q %v", id, err)
	}
	if s, _ := db.OOBSession(ctx, "d1"); s.Status != record.StatusSucceeded || s.TokenResult != record.TokenRedeemed {
		t.Fatalf("session after the outcome: %+v", s)
	}
	// An update without a token result keeps the recorded one.
	h2 := newOOBSession(t, db, "a1", "Auth", "tok2", now, time.Minute)
	if _, err := db.RedeemOOBToken(ctx, h2, "Auth", now, record.StatusClientAuthenticating); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateOOBSession(ctx, "a1", record.SessionUpdate{Status: record.StatusSucceeded}); err != nil {
		t.Fatal(err)
	}
	if s, _ := db.OOBSession(ctx, "a1"); s.TokenResult != record.TokenRedeemed {
		t.Fatalf("token result lost: %+v", s)
	}
}

// TestDatabaseFileMode: a new database (and its WAL and shared-memory files) is readable by
// the owner only, whatever the umask.
func TestDatabaseFileMode(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fido.db")
	db := open(t, p)
	ctx := context.Background()
	newOOBSession(t, db, "m1", "Auth", "tok", time.Now(), time.Minute) // a write: the WAL exists
	if _, err := db.OOBSession(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{p, p + "-wal", p + "-shm"} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", filepath.Base(f), fi.Mode().Perm())
		}
	}
	if _, open := sqlite.OpenMode(p); open {
		t.Fatal("OpenMode reports an owner-only file as open")
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if mode, open := sqlite.OpenMode(p); !open || mode != 0o644 {
		t.Fatalf("OpenMode(0644) = %v %v", mode, open)
	}
}

// TestOOBPushQueueIDsNotReused: a poller reading id > the last id it saw finds a payload
// queued after the purge emptied the queue (ids are never given again), and the stream
// refresh does not bring back the record of a stream that was dropped.
func TestOOBPushQueueIDsNotReused(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fido.db")
	a, b := open(t, path), open(t, path)
	now := time.Now()
	for i := range 3 {
		if err := a.QueueOOBPush(ctx, "t1", "proc-a", []byte{byte(i)}, now, now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	got, last, err := b.OOBPushQueue(ctx, "proc-b", 0, now.Add(-time.Second), 16)
	if err != nil || len(got) != 3 || got[2].TargetID != "t1" || got[2].Payload[0] != 2 {
		t.Fatalf("queue: %+v %v", got, err)
	}
	if mine, _, _ := a.OOBPushQueue(ctx, "proc-a", 0, now.Add(-time.Second), 16); len(mine) != 0 {
		t.Fatalf("a process read its own payloads: %+v", mine)
	}
	if _, err := a.PurgeOOB(ctx, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := a.QueueOOBPush(ctx, "t1", "proc-a", []byte("after"), now, now.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, next, err := b.OOBPushQueue(ctx, "proc-b", last, now.Add(-time.Second), 16)
	if err != nil || len(got) != 1 || string(got[0].Payload) != "after" || next <= last {
		t.Fatalf("after the purge emptied the queue: %+v, last id %d → %d, %v", got, last, next, err)
	}

	// Stream records: the batch refresh only touches records that exist.
	if err := a.TouchOOBStream(ctx, "c1", "t1", now); err != nil {
		t.Fatal(err)
	}
	if err := a.DropOOBStream(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if err := a.TouchOOBStreams(ctx, []store.OOBStreamConn{{ConnID: "c1", TargetID: "t1"}}, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if open, err := b.OOBStreamOpen(ctx, "t1", now.Add(-time.Minute)); err != nil || open {
		t.Fatalf("a dropped stream is open again after a refresh: %v %v", open, err)
	}
}
