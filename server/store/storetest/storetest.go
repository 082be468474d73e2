// Package storetest is the conformance suite every [store.Store] backend must pass. A
// backend's test calls [Run] with a factory that opens a fresh, empty store; [RunShared]
// additionally needs a factory that opens a second handle on the same database, to check
// that single-use guarantees hold across processes.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/server/store"
)

// Factory opens a new, empty store for one test and registers its cleanup on t.
type Factory func(t *testing.T) store.Store

// Run runs the conformance suite against stores made by open.
func Run(t *testing.T, open Factory) {
	t.Run("Users", func(t *testing.T) { testUsers(t, open(t)) })
	t.Run("RegisterAndLookup", func(t *testing.T) { testRegister(t, open(t)) })
	t.Run("RegisterRefusals", func(t *testing.T) { testRegisterRefusals(t, open(t)) })
	t.Run("Counters", func(t *testing.T) { testCounters(t, open(t)) })
	t.Run("Deregister", func(t *testing.T) { testDeregister(t, open(t)) })
	t.Run("ConcurrentConsume", func(t *testing.T) { testConcurrentConsume(t, open(t), open) })
	t.Run("PurgeAndEvents", func(t *testing.T) { testPurgeAndEvents(t, open(t)) })
}

func nonce(i int) store.Consumption {
	return store.Consumption{Nonce: []byte(fmt.Sprintf("nonce-%d", i)), ExpiresAt: time.Now().Add(time.Minute)}
}

func reg(aaid, keyID string) store.UAFRegistration {
	return store.UAFRegistration{AAID: aaid, KeyID: keyID, PublicKey: []byte{4, 1, 2, 3}, PublicKeyEncoding: 0x100,
		SignatureAlgorithm: 1, AuthenticatorVersion: 1, SignCounter: 0, RegCounter: 1, AttestationType: 0x3E08}
}

func testUsers(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.UserByName(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UserByName(missing) = %v, want ErrNotFound", err)
	}
	a, err := s.EnsureUser(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.EnsureUser(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != b.ID || !bytes.Equal(a.Handle, b.Handle) || len(a.Handle) < 16 {
		t.Fatalf("EnsureUser not stable: %+v vs %+v", a, b)
	}
	c, err := s.EnsureUser(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if c.ID == a.ID || bytes.Equal(c.Handle, a.Handle) {
		t.Fatal("two users share an id or handle")
	}
}

func testRegister(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := reg("ABCD#ef01", "key-1")
	r.AttestationCert = []byte{0x30, 0x01}
	r.DeviceID = "dev-1"
	if err := s.RegisterUAF(ctx, nonce(1), "alice", []store.UAFRegistration{r}); err != nil {
		t.Fatal(err)
	}
	got, err := s.UAFRegistration(ctx, "abcd#EF01", "key-1")
	if err != nil {
		t.Fatalf("lookup ignoring AAID case: %v", err)
	}
	if got.Username != "alice" || got.AAID != "ABCD#ef01" || !bytes.Equal(got.PublicKey, r.PublicKey) ||
		got.PublicKeyEncoding != 0x100 || got.RegCounter != 1 || got.DeviceID != "dev-1" ||
		!bytes.Equal(got.AttestationCert, r.AttestationCert) || got.CreatedAt.IsZero() {
		t.Fatalf("stored registration differs: %+v", got)
	}
	list, err := s.UAFRegistrations(ctx, "alice")
	if err != nil || len(list) != 1 {
		t.Fatalf("UAFRegistrations = %v, %v", list, err)
	}
	if list, _ := s.UAFRegistrations(ctx, "nobody"); len(list) != 0 {
		t.Fatalf("unknown user has registrations: %v", list)
	}
	if _, err := s.UAFRegistration(ctx, "ABCD#EF01", "other"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
}

func testRegisterRefusals(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.RegisterUAF(ctx, nonce(1), "alice", []store.UAFRegistration{reg("AAAA#0001", "k")}); err != nil {
		t.Fatal(err)
	}
	// Same nonce again: replay, and nothing stored.
	err := s.RegisterUAF(ctx, nonce(1), "bob", []store.UAFRegistration{reg("AAAA#0001", "k2")})
	if !errors.Is(err, store.ErrReplay) {
		t.Fatalf("reused nonce: %v, want ErrReplay", err)
	}
	if _, err := s.UserByName(ctx, "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rejected registration created a user: %v", err)
	}
	// Duplicate AAID+KeyID (other case): refused, and the nonce stays unused.
	err = s.RegisterUAF(ctx, nonce(2), "bob", []store.UAFRegistration{reg("aaaa#0001", "k")})
	if !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("duplicate key: %v, want ErrAlreadyExists", err)
	}
	if err := s.RegisterUAF(ctx, nonce(2), "bob", []store.UAFRegistration{reg("AAAA#0001", "k3")}); err != nil {
		t.Fatalf("nonce of a refused registration was consumed: %v", err)
	}
	if list, _ := s.UAFRegistrations(ctx, "bob"); len(list) != 1 {
		t.Fatalf("bob has %d registrations, want 1", len(list))
	}
}

func testCounters(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.RegisterUAF(ctx, nonce(1), "alice", []store.UAFRegistration{reg("AAAA#0001", "k")}); err != nil {
		t.Fatal(err)
	}
	r, _ := s.UAFRegistration(ctx, "AAAA#0001", "k")
	up := func(n int, c uint32) error {
		return s.AuthenticateUAF(ctx, nonce(n), []store.CounterUpdate{{RegistrationID: r.ID, SignCounter: c, UsedAt: time.Now()}})
	}
	// Stored 0, received 0: authenticator without counters, accepted.
	if err := up(2, 0); err != nil {
		t.Fatalf("0 -> 0: %v", err)
	}
	if err := up(3, 5); err != nil {
		t.Fatalf("0 -> 5: %v", err)
	}
	for i, c := range []uint32{5, 4, 0} {
		if err := up(10+i, c); !errors.Is(err, store.ErrCounter) {
			t.Fatalf("5 -> %d: %v, want ErrCounter", c, err)
		}
	}
	// The failed attempts consumed nothing: nonce 10 is still usable.
	if err := up(10, 6); err != nil {
		t.Fatalf("nonce of a refused authentication was consumed: %v", err)
	}
	if err := up(10, 7); !errors.Is(err, store.ErrReplay) {
		t.Fatalf("replayed nonce: %v", err)
	}
	got, _ := s.UAFRegistration(ctx, "AAAA#0001", "k")
	if got.SignCounter != 6 {
		t.Fatalf("counter = %d, want 6", got.SignCounter)
	}
	err := s.AuthenticateUAF(ctx, nonce(20), []store.CounterUpdate{{RegistrationID: r.ID + 1000, SignCounter: 9}})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown registration: %v", err)
	}
}

func testDeregister(t *testing.T, s store.Store) {
	ctx := context.Background()
	regs := []store.UAFRegistration{reg("AAAA#0001", "k1"), reg("AAAA#0001", "k2"), reg("BBBB#0002", "k3")}
	if err := s.RegisterUAF(ctx, nonce(1), "alice", regs); err != nil {
		t.Fatal(err)
	}
	if err := s.RegisterUAF(ctx, nonce(2), "bob", []store.UAFRegistration{reg("AAAA#0001", "k4")}); err != nil {
		t.Fatal(err)
	}
	// Another user's key is not touched.
	if del, err := s.DeregisterUAF(ctx, "alice", "AAAA#0001", "k4"); err != nil || len(del) != 0 {
		t.Fatalf("deregistered bob's key as alice: %v %v", del, err)
	}
	if del, err := s.DeregisterUAF(ctx, "alice", "aaaa#0001", "k1"); err != nil || len(del) != 1 || del[0].KeyID != "k1" {
		t.Fatalf("one key: %v %v", del, err)
	}
	if del, err := s.DeregisterUAF(ctx, "alice", "AAAA#0001", ""); err != nil || len(del) != 1 || del[0].KeyID != "k2" {
		t.Fatalf("by AAID: %v %v", del, err)
	}
	if del, err := s.DeregisterUAF(ctx, "alice", "", ""); err != nil || len(del) != 1 || del[0].KeyID != "k3" {
		t.Fatalf("all: %v %v", del, err)
	}
	if list, _ := s.UAFRegistrations(ctx, "bob"); len(list) != 1 {
		t.Fatalf("bob lost registrations: %v", list)
	}
}

func testConcurrentConsume(t *testing.T, s store.Store, open Factory) {
	ctx := context.Background()
	if err := s.RegisterUAF(ctx, nonce(1), "alice", []store.UAFRegistration{reg("AAAA#0001", "k")}); err != nil {
		t.Fatal(err)
	}
	r, _ := s.UAFRegistration(ctx, "AAAA#0001", "k")
	var ok, replay atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			err := s.AuthenticateUAF(ctx, nonce(99), []store.CounterUpdate{{RegistrationID: r.ID, SignCounter: uint32(i + 1), UsedAt: time.Now()}})
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, store.ErrReplay):
				replay.Add(1)
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}(i)
	}
	wg.Wait()
	if ok.Load() != 1 || replay.Load() != 49 {
		t.Fatalf("50 concurrent uses of one nonce: %d succeeded, %d replays", ok.Load(), replay.Load())
	}
}

func testPurgeAndEvents(t *testing.T, s store.Store) {
	ctx := context.Background()
	// A value that has expired cannot be consumed any more (its record may be gone).
	if err := s.AuthenticateUAF(ctx, store.Consumption{Nonce: []byte("late"), ExpiresAt: time.Now().Add(-time.Second)}, nil); !errors.Is(err, store.ErrReplay) {
		t.Fatalf("expired value consumed: %v", err)
	}
	old := store.Consumption{Nonce: []byte("old"), ExpiresAt: time.Now().Add(time.Second)}
	if err := s.AuthenticateUAF(ctx, old, nil); err != nil {
		t.Fatal(err)
	}
	fresh := store.Consumption{Nonce: []byte("fresh"), ExpiresAt: time.Now().Add(time.Hour)}
	if err := s.AuthenticateUAF(ctx, fresh, nil); err != nil {
		t.Fatal(err)
	}
	// Records are kept a while past their expiry (clock skew between nodes): one expired
	// two minutes ago stays, one expired ten minutes ago goes.
	if n, err := s.PurgeExpired(ctx, time.Now().Add(2*time.Minute)); err != nil || n != 0 {
		t.Fatalf("PurgeExpired two minutes after expiry = %d, %v; want 0", n, err)
	}
	n, err := s.PurgeExpired(ctx, time.Now().Add(10*time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("PurgeExpired = %d, %v; want 1", n, err)
	}
	if err := s.AuthenticateUAF(ctx, fresh, nil); !errors.Is(err, store.ErrReplay) {
		t.Fatalf("unexpired record purged: %v", err)
	}
	e := store.SecurityEvent{Kind: store.EventPossibleClone, Username: "alice", AAID: "AAAA#0001", KeyID: "k", Detail: "5 -> 5"}
	if err := s.RecordSecurityEvent(ctx, e); err != nil {
		t.Fatal(err)
	}
	got, err := s.SecurityEvents(ctx, store.EventPossibleClone)
	if err != nil || len(got) != 1 || got[0].Username != "alice" || got[0].At.IsZero() {
		t.Fatalf("SecurityEvents = %+v, %v", got, err)
	}
}

// RunShared checks that two handles on one database (as two server processes have) agree on
// single use: a value consumed through one is refused through the other, also under races.
func RunShared(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	var ok, replay atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s := a
			if i%2 == 1 {
				s = b
			}
			err := s.AuthenticateUAF(ctx, nonce(7), nil)
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, store.ErrReplay):
				replay.Add(1)
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}(i)
	}
	wg.Wait()
	if ok.Load() != 1 || replay.Load() != 39 {
		t.Fatalf("two handles, one nonce: %d succeeded, %d replays", ok.Load(), replay.Load())
	}
}
