package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/fidoserver/hwfido/server/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is a [store.Store] backed by one SQLite file. It is safe for concurrent use.
type DB struct {
	w   *sql.DB // writer: one connection, immediate transactions
	r   *sql.DB // readers
	now func() time.Time

	mu    sync.Mutex
	stmts map[stmtKey]*sql.Stmt // prepared hot-path statements, per pool
}

type stmtKey struct {
	write bool
	query string
}

// Options configures [Open]. The zero value of every field but Path is usable.
type Options struct {
	// Path is the database file; it is created when missing.
	Path string
	// BusyTimeout bounds how long a statement waits for another process's lock (default 5s).
	BusyTimeout time.Duration
	// ReadConns is the size of the read pool (default 8).
	ReadConns int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Open opens (creating if needed) the database at opts.Path and applies pending migrations.
func Open(ctx context.Context, opts Options) (*DB, error) {
	if opts.Path == "" {
		return nil, errors.New("sqlite: path is required")
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 5 * time.Second
	}
	if opts.ReadConns <= 0 {
		opts.ReadConns = 8
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	// The database holds users, credentials and live session state: it is created readable
	// by the owner only (SQLite gives its -wal and -shm files the database file's mode). An
	// existing file keeps its mode; one that others may read is reported by OpenMode.
	if f, err := os.OpenFile(opts.Path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("sqlite: create: %w", err)
	}
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_foreign_keys", "on")
	q.Set("_synchronous", "NORMAL")
	q.Set("_busy_timeout", strconv.FormatInt(opts.BusyTimeout.Milliseconds(), 10))
	base := "file:" + opts.Path + "?"
	wq := url.Values{}
	for k, v := range q {
		wq[k] = v
	}
	wq.Set("_txlock", "immediate")
	w, err := sql.Open("sqlite3", base+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	r, err := sql.Open("sqlite3", base+q.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	r.SetMaxOpenConns(opts.ReadConns)
	r.SetMaxIdleConns(opts.ReadConns)
	db := &DB{w: w, r: r, now: opts.Now, stmts: map[stmtKey]*sql.Stmt{}}
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	// The writer has a single connection, which a transaction holds: preparing on the pool
	// from inside one would wait for itself, so write statements are prepared here, up front.
	for _, q := range writeStmts {
		if _, err := db.stmt(ctx, true, q); err != nil {
			db.Close()
			return nil, err
		}
	}
	return db, nil
}

// OpenMode reports whether the database file at path can be read or written by users other
// than its owner (mode bits of group or others set), for a start-up warning.
func OpenMode(path string) (os.FileMode, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, false
	}
	return fi.Mode().Perm(), fi.Mode().Perm()&0o077 != 0
}

// Close closes the prepared statements and both pools.
func (db *DB) Close() error {
	db.mu.Lock()
	var errs []error
	for _, st := range db.stmts {
		errs = append(errs, st.Close())
	}
	db.stmts = map[stmtKey]*sql.Stmt{}
	db.mu.Unlock()
	return errors.Join(append(errs, db.w.Close(), db.r.Close())...)
}

// stmt returns query prepared on the write (write=true) or read pool, preparing it once:
// SQLite parses a statement on every unprepared call, which costs more than most of the
// hot-path queries themselves.
func (db *DB) stmt(ctx context.Context, write bool, query string) (*sql.Stmt, error) {
	k := stmtKey{write, query}
	db.mu.Lock()
	defer db.mu.Unlock()
	if st, ok := db.stmts[k]; ok {
		return st, nil
	}
	pool := db.r
	if write {
		pool = db.w
	}
	st, err := pool.PrepareContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("sqlite: prepare: %w", err)
	}
	db.stmts[k] = st
	return st, nil
}

// queryRow runs a prepared read query.
func (db *DB) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := db.stmt(ctx, false, query)
	if err != nil {
		// A prepare failure resurfaces as the row's error on the unprepared path.
		return db.r.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// txStmt returns query bound to tx: the statement prepared at [Open] when query is one of
// [writeStmts], otherwise one prepared on the transaction itself (never on the writer pool,
// whose only connection tx holds).
func (db *DB) txStmt(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	db.mu.Lock()
	st, ok := db.stmts[stmtKey{true, query}]
	db.mu.Unlock()
	if !ok {
		st, err := tx.PrepareContext(ctx, query)
		if err != nil {
			return nil, fmt.Errorf("sqlite: prepare: %w", err)
		}
		return st, nil
	}
	return tx.StmtContext(ctx, st), nil
}

// Ping checks that the database answers a query.
func (db *DB) Ping(ctx context.Context) error {
	var one int
	if err := db.r.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

// Writer returns the single-connection write pool, for packages that add their own tables
// through migrations of this package.
func (db *DB) Writer() *sql.DB { return db.w }

// Reader returns the read pool.
func (db *DB) Reader() *sql.DB { return db.r }

// InTx runs fn in an immediate write transaction, committing when fn returns nil and
// rolling back otherwise; a rollback failure is reported together with fn's error.
func (db *DB) InTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		if rbErr := tx.Rollback(); rbErr != nil {
			return errors.Join(err, fmt.Errorf("sqlite: rollback: %w", rbErr))
		}
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	return nil
}

func (db *DB) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("sqlite: migrations: %w", err)
	}
	sort.Strings(names)
	return db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
			return fmt.Errorf("sqlite: migrations table: %w", err)
		}
		for _, name := range names {
			base := strings.TrimPrefix(name, "migrations/")
			v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
			if err != nil {
				return fmt.Errorf("sqlite: migration %s: bad version prefix", base)
			}
			var n int
			if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM schema_migrations WHERE version = ?", v).Scan(&n); err != nil {
				return fmt.Errorf("sqlite: migration %s: %w", base, err)
			}
			if n > 0 {
				continue
			}
			body, err := migrations.ReadFile(name)
			if err != nil {
				return fmt.Errorf("sqlite: migration %s: %w", base, err)
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return fmt.Errorf("sqlite: migration %s: %w", base, err)
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)",
				v, base, ms(db.now())); err != nil {
				return fmt.Errorf("sqlite: migration %s: %w", base, err)
			}
		}
		return nil
	})
}

// ms converts t to Unix milliseconds (UTC), the one time precision of the schema.
func ms(t time.Time) int64 { return t.UTC().UnixMilli() }

// fromMS converts Unix milliseconds back to a UTC time.
func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

// isUnique reports whether err is a UNIQUE or PRIMARY KEY constraint violation.
func isUnique(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey
	}
	return false
}

func newHandle() ([]byte, error) {
	h := make([]byte, 32)
	if _, err := rand.Read(h); err != nil {
		return nil, fmt.Errorf("sqlite: user handle: %w", err)
	}
	return h, nil
}

var _ store.Store = (*DB)(nil)
