package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/fidoserver/hwfido/server/store"
	"github.com/fidoserver/hwfido/server/store/sqlite"
	"github.com/fidoserver/hwfido/server/store/storetest"
)

func open(t *testing.T, path string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), sqlite.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "fido.db"))
	})
}

func TestSharedDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fido.db")
	storetest.RunShared(t, open(t, path), open(t, path))
}

func TestMigrationsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fido.db")
	a := open(t, path)
	var n1 int
	if err := a.Reader().QueryRow("SELECT count(*) FROM schema_migrations").Scan(&n1); err != nil {
		t.Fatal(err)
	}
	a.Close()
	b := open(t, path)
	var n2 int
	if err := b.Reader().QueryRow("SELECT count(*) FROM schema_migrations").Scan(&n2); err != nil {
		t.Fatal(err)
	}
	if n1 == 0 || n1 != n2 {
		t.Fatalf("migrations applied %d then %d times", n1, n2)
	}
	var mode string
	if err := b.Reader().QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v", mode, err)
	}
	var fk int
	if err := b.Writer().QueryRow("PRAGMA foreign_keys").Scan(&fk); err != nil || fk != 1 {
		t.Fatalf("foreign_keys = %d, %v", fk, err)
	}
}
