package sqlite

import (
	"database/sql"
	"path/filepath"
	"testing"
)

// TestPushQueueMigration: migration 0005 keeps the queued payloads and their ids, and the
// ids it gives afterwards are above every id given before it, also those of rows purged
// before the upgrade (a process of the previous version may still read from one of them).
func TestPushQueueMigration(t *testing.T) {
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(t.TempDir(), "old.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, name := range []string{"0001_core.sql", "0002_fido2.sql", "0003_oob.sql", "0004_oob_changes.sql"} {
		b, err := migrations.ReadFile("migrations/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(string(b)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	for i := range 5 {
		if _, err := db.Exec(`INSERT INTO oob_push_queue(target_id, origin, payload, created_at, expires_at)
			VALUES ('t', 'o', ?, 1, 2)`, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec("DELETE FROM oob_push_queue WHERE id >= 4"); err != nil { // purged before the upgrade
		t.Fatal(err)
	}
	b, err := migrations.ReadFile("migrations/0005_oob_push_ids.sql")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(string(b)); err != nil {
		t.Fatalf("0005: %v", err)
	}
	var kept, maxID int64
	if err := db.QueryRow("SELECT count(*), max(id) FROM oob_push_queue").Scan(&kept, &maxID); err != nil || kept != 3 || maxID != 3 {
		t.Fatalf("after the migration: %d rows, max id %d, %v", kept, maxID, err)
	}
	res, err := db.Exec(`INSERT INTO oob_push_queue(target_id, origin, payload, created_at, expires_at) VALUES ('t', 'o', x'00', 1, 2)`)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := res.LastInsertId()
	if id <= 1_700_000_000_000 {
		t.Fatalf("first id after the migration %d: not above the ids given before it", id)
	}
}
