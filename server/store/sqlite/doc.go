// Package sqlite implements [store.Store] on SQLite through github.com/mattn/go-sqlite3.
//
// The database runs in WAL mode with foreign keys on. Writes go through one connection pool
// of size one with BEGIN IMMEDIATE transactions, so writers queue in Go instead of spinning
// on SQLITE_BUSY; reads use a separate pool. Several processes may share one database file:
// the busy timeout covers their contention and every single-use check is a constraint
// inside the writing transaction, never a read followed by a write.
//
// The schema is a sequence of versioned files embedded from migrations/, applied in order
// at [Open] and recorded in schema_migrations.
package sqlite
