package sqlite_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fidoserver/hwfido/server/fido2/record"
	"github.com/fidoserver/hwfido/server/store/sqlite"
)

func benchCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFIDO2StoreLogin is the store's share of one FIDO2 login: the options read
// (user and credentials by name) and the result's write transaction (session row and
// counter update), 8 callers over 64 users.
func BenchmarkFIDO2StoreLogin(b *testing.B) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(b.TempDir(), "f.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if v := os.Getenv("BENCH_WAL_AUTOCHECKPOINT"); v != "" {
		if _, err := db.Writer().Exec("PRAGMA wal_autocheckpoint = " + v); err != nil {
			b.Fatal(err)
		}
	}
	const users = 64
	now := time.Now()
	for i := range users {
		name := fmt.Sprintf("user%02d", i)
		h := make([]byte, 32)
		rand.Read(h)
		cid := make([]byte, 32)
		rand.Read(cid)
		c := record.Credential{Username: name, UserHandle: h, RPID: "localhost", CredentialID: cid,
			PublicKey: make([]byte, 77), AAGUID: make([]byte, 16), SignCount: 0, AttestationFormat: "packed",
			AttestationType: "self", Trust: "none", Record: make([]byte, 1072), CreatedAt: now}
		s := record.Session{ID: fmt.Sprintf("reg%02d", i), Ceremony: record.CeremonyRegistration,
			Challenge: []byte(fmt.Sprintf("regch%02d", i)), ExpiresAt: now.Add(time.Minute)}
		if _, err := db.RegisterFIDO2Credential(ctx, s, c); err != nil {
			b.Fatal(err)
		}
	}
	var seq atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	cpu0 := benchCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			u, creds, err := db.FIDO2UserCredentialsByName(ctx, fmt.Sprintf("user%02d", n%users), "localhost")
			if err != nil || len(creds) != 1 {
				b.Error(err)
				return
			}
			ch := make([]byte, 32)
			rand.Read(ch)
			s := record.Session{ID: fmt.Sprintf("s%d", n), Ceremony: record.CeremonyAuthentication, Challenge: ch,
				UserID: u.ID, Username: u.Username, ExpiresAt: now.Add(time.Minute)}
			if err := db.FinishFIDO2Authentication(ctx, s, creds[0].CredentialID, record.CounterUpdate{
				CredentialRowID: creds[0].ID, SignCount: 0, Flags: creds[0].Flags}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64((benchCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}

// BenchmarkFIDO2StoreRegister is the store's share of one FIDO2 registration of a new
// user: the options read (user unknown) and the result's write transaction (user,
// session row, credential), 8 callers.
func BenchmarkFIDO2StoreRegister(b *testing.B) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(b.TempDir(), "f.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if v := os.Getenv("BENCH_WAL_AUTOCHECKPOINT"); v != "" {
		if _, err := db.Writer().Exec("PRAGMA wal_autocheckpoint = " + v); err != nil {
			b.Fatal(err)
		}
	}
	var seq atomic.Int64
	base := time.Now().UnixNano()
	b.SetParallelism(4)
	b.ResetTimer()
	cpu0 := benchCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			name := fmt.Sprintf("u%d-%d", base, n)
			if _, _, err := db.FIDO2UserCredentialsByName(ctx, name, "localhost"); err == nil {
				b.Error("user exists")
				return
			}
			h := make([]byte, 32)
			rand.Read(h)
			cid := make([]byte, 32)
			rand.Read(cid)
			ch := make([]byte, 32)
			rand.Read(ch)
			now := time.Now()
			c := record.Credential{Username: name, UserHandle: h, RPID: "localhost", CredentialID: cid,
				PublicKey: make([]byte, 77), AAGUID: make([]byte, 16), AttestationFormat: "packed",
				AttestationType: "self", Trust: "none", Record: make([]byte, 1072), CreatedAt: now}
			s := record.Session{ID: fmt.Sprintf("r%d", n), Ceremony: record.CeremonyRegistration, Challenge: ch,
				ExpiresAt: now.Add(time.Minute)}
			if _, err := db.RegisterFIDO2Credential(ctx, s, c); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64((benchCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}
