package oob_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/server/oob"
	"github.com/fidoserver/hwfido/server/oob/record"
	"github.com/fidoserver/hwfido/server/resulttoken"
	"github.com/fidoserver/hwfido/server/store/sqlite"
)

// countingStore counts the session reads of status watchers and the change polls.
type countingStore struct {
	*sqlite.DB
	reads, polls atomic.Int64
}

func (c *countingStore) OOBSession(ctx context.Context, id string) (*record.Session, error) {
	c.reads.Add(1)
	return c.DB.OOBSession(ctx, id)
}

func (c *countingStore) OOBSessionsChanged(ctx context.Context, after int64, limit int) ([]string, int64, error) {
	c.polls.Add(1)
	return c.DB.OOBSessionsChanged(ctx, after, limit)
}

// twoProcesses opens two handles on one database file (two server processes' worth) and a
// service with counting store on the first.
func twoProcesses(t *testing.T, poll time.Duration) (*oob.Service, *countingStore, *sqlite.DB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "oob.db")
	open := func() *sqlite.DB {
		db, err := sqlite.Open(context.Background(), sqlite.Options{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	cs := &countingStore{DB: open()}
	other := open()
	svc, err := oob.New(oob.Options{Store: cs, Results: resulttoken.New(nil, resulttoken.Options{}), PollInterval: poll})
	if err != nil {
		t.Fatal(err)
	}
	return svc, cs, other
}

func createSession(t *testing.T, db *sqlite.DB, id string, tokenLife time.Duration) {
	t.Helper()
	now := time.Now()
	h := sha256.Sum256([]byte("token-" + id))
	s := record.Session{ID: id, Handle: "h-" + id, Op: "Auth", Status: record.StatusTokenCreated,
		TokenExpiresAt: now.Add(tokenLife), CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := db.CreateOOBSession(context.Background(), s, record.Token{Hash: h[:], Op: "Auth", SessionID: id,
		ExpiresAt: now.Add(tokenLife)}); err != nil {
		t.Fatal(err)
	}
}

func next(t *testing.T, ch <-chan *oob.StatusResponse, within time.Duration) *oob.StatusResponse {
	t.Helper()
	select {
	case r, ok := <-ch:
		if !ok {
			t.Fatal("watch ended")
		}
		return r
	case <-time.After(within):
		t.Fatalf("no status within %v", within)
	}
	return nil
}

// TestWatchSeesOtherProcess: changes made through another handle on the database (another
// server process) reach the watchers of this one within about the poll interval, while
// idle watchers do not read their sessions: the process polls once per interval for all.
func TestWatchSeesOtherProcess(t *testing.T) {
	svc, cs, other := twoProcesses(t, 200*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const n = 20
	watches := make([]<-chan *oob.StatusResponse, n)
	for i := range watches {
		id := fmt.Sprintf("s%d", i)
		createSession(t, other, id, time.Hour)
		watches[i] = svc.Watch(ctx, id)
		if r := next(t, watches[i], 5*time.Second); r.Status != record.StatusTokenCreated {
			t.Fatalf("first status %+v", r)
		}
	}
	// Idle (after the poller has seen the creations, which woke each watcher once more):
	// no watcher reads its session, the process polls once per interval.
	time.Sleep(500 * time.Millisecond)
	reads0, polls0 := cs.reads.Load(), cs.polls.Load()
	time.Sleep(time.Second)
	if reads, polls := cs.reads.Load()-reads0, cs.polls.Load()-polls0; reads != 0 || polls < 3 || polls > 7 {
		t.Fatalf("idle for 1s with %d watchers: %d session reads, %d change polls", n, reads, polls)
	}
	if reads0 > 3*n {
		t.Fatalf("%d session reads to start %d watchers", reads0, n)
	}

	// Another process redeems the token of s3 and then fails the session.
	start := time.Now()
	h := sha256.Sum256([]byte("token-s3"))
	if _, err := other.RedeemOOBToken(ctx, h[:], "Auth", time.Now(), record.StatusClientAuthenticating); err != nil {
		t.Fatal(err)
	}
	if r := next(t, watches[3], 3*time.Second); r.Status != record.StatusClientAuthenticating {
		t.Fatalf("after redeem: %+v", r)
	}
	if id, err := other.UpdateOOBSession(ctx, "h-s3", record.SessionUpdate{Status: record.StatusFailed, UAFStatusCode: 1498}); err != nil || id != "s3" {
		t.Fatalf("update: %q %v", id, err)
	}
	if r := next(t, watches[3], 3*time.Second); r.Status != record.StatusFailed || r.UAFStatusCode != 1498 {
		t.Fatalf("after update: %+v", r)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("two changes took %v to arrive", el)
	}
	if _, ok := <-watches[3]; ok {
		t.Fatal("watch not closed after the final status")
	}
	// The others saw nothing.
	for i, w := range watches {
		if i == 3 {
			continue
		}
		select {
		case r := <-w:
			t.Fatalf("watch %d: %+v", i, r)
		default:
		}
	}

	// Without watchers the poller stops.
	cancel()
	for _, w := range watches {
		for range w {
		}
	}
	time.Sleep(500 * time.Millisecond)
	polls := cs.polls.Load()
	time.Sleep(time.Second)
	if p := cs.polls.Load() - polls; p != 0 {
		t.Fatalf("%d change polls without watchers", p)
	}

	// A new watcher starts a new poller, which sees changes again.
	createSession(t, other, "late", time.Hour)
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	w := svc.Watch(ctx2, "late")
	next(t, w, 5*time.Second)
	if _, err := other.UpdateOOBSession(ctx2, "late", record.SessionUpdate{Status: record.StatusSucceeded, Username: "alice"}); err != nil {
		t.Fatal(err)
	}
	if r := next(t, w, 3*time.Second); r.Status != record.StatusSucceeded || r.UserID != "alice" {
		t.Fatalf("late watcher: %+v", r)
	}
}

// TestWatchTokenExpiry: a watcher learns of its token's expiry when it happens, from a
// timer, without any change in the store.
func TestWatchTokenExpiry(t *testing.T) {
	svc, cs, other := twoProcesses(t, time.Hour) // no poll within the test
	createSession(t, other, "s", 400*time.Millisecond)
	w := svc.Watch(context.Background(), "s")
	if r := next(t, w, 5*time.Second); r.Status != record.StatusTokenCreated {
		t.Fatalf("first: %+v", r)
	}
	r := next(t, w, 3*time.Second)
	if r.Status != record.StatusFailed || r.TokenInformation == nil || r.TokenInformation.TokenResult != record.TokenTimedOut {
		t.Fatalf("after expiry: %+v", r)
	}
	if _, ok := <-w; ok {
		t.Fatal("watch not closed after the final status")
	}
	if n := cs.reads.Load(); n > 3 {
		t.Fatalf("%d session reads", n)
	}
	if n := cs.polls.Load(); n != 0 {
		t.Fatalf("%d change polls: the expiry must come from the watcher's timer", n)
	}
}

// TestWatchDoesNotSkipClientPhase: a session that is redeemed and finished by another
// process between two polls still shows its client phase to a watcher that saw
// tokenCreated; a watcher that starts after the end sees only the final status, and a
// deregistration (no client phase) shows none.
func TestWatchDoesNotSkipClientPhase(t *testing.T) {
	svc, _, other := twoProcesses(t, 200*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, tc := range []struct {
		op, want string
	}{{"Auth", record.StatusClientAuthenticating}, {"Reg", record.StatusClientRegistering}, {"Dereg", ""}} {
		id := "skip-" + tc.op
		now := time.Now()
		h := sha256.Sum256([]byte("token-" + id))
		if err := other.CreateOOBSession(ctx, record.Session{ID: id, Handle: "h-" + id, Op: tc.op, Status: record.StatusTokenCreated,
			Username: "alice", TokenExpiresAt: now.Add(time.Minute), CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(time.Hour)},
			record.Token{Hash: h[:], Op: tc.op, SessionID: id, ExpiresAt: now.Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
		ch := svc.Watch(ctx, id)
		if r := next(t, ch, 5*time.Second); r.Status != record.StatusTokenCreated {
			t.Fatalf("%s first: %+v", tc.op, r)
		}
		// Both changes land within one poll interval of the watcher's process.
		status := record.StatusClientAuthenticating
		if tc.op == "Reg" {
			status = record.StatusClientRegistering
		}
		if tc.op == "Dereg" {
			status = ""
		}
		if _, err := other.RedeemOOBToken(ctx, h[:], tc.op, time.Now(), status); err != nil {
			t.Fatal(err)
		}
		if _, err := other.UpdateOOBSession(ctx, id, record.SessionUpdate{Status: record.StatusSucceeded, TokenResult: record.TokenRedeemed, UAFStatusCode: 1200}); err != nil {
			t.Fatal(err)
		}
		r := next(t, ch, 5*time.Second)
		if tc.want != "" {
			if r.Status != tc.want || r.UserID != "alice" || r.TokenInformation == nil || r.TokenInformation.TokenResult != record.TokenRedeemed ||
				r.UAFStatusCode != 0 || r.ResultToken != "" {
				t.Fatalf("%s: the client phase %+v", tc.op, r)
			}
			r = next(t, ch, 5*time.Second)
		}
		if r.Status != record.StatusSucceeded || r.UAFStatusCode != 1200 {
			t.Fatalf("%s: final %+v", tc.op, r)
		}
		if _, ok := <-ch; ok {
			t.Fatalf("%s: stream not closed after the final status", tc.op)
		}
		// A watcher that starts now sees the final status only.
		late := svc.Watch(ctx, id)
		if r := next(t, late, 5*time.Second); r.Status != record.StatusSucceeded {
			t.Fatalf("%s: late watcher %+v", tc.op, r)
		}
	}
}
