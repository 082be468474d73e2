package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fidoserver/hwfido/server/store"
)

const userCols = "id, username, handle, created_at"

func scanUser(row interface{ Scan(...any) error }) (*store.User, error) {
	var u store.User
	var created int64
	if err := row.Scan(&u.ID, &u.Username, &u.Handle, &created); err != nil {
		return nil, err
	}
	u.CreatedAt = fromMS(created)
	return &u, nil
}

// UserByName implements [store.Store].
func (db *DB) UserByName(ctx context.Context, username string) (*store.User, error) {
	u, err := scanUser(db.queryRow(ctx, "SELECT "+userCols+" FROM users WHERE username = ?", username))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: user: %w", err)
	}
	return u, nil
}

// EnsureUser implements [store.Store].
func (db *DB) EnsureUser(ctx context.Context, username string) (*store.User, error) {
	if u, err := db.UserByName(ctx, username); !errors.Is(err, store.ErrNotFound) {
		return u, err
	}
	var u *store.User
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		u, err = ensureUserTx(ctx, tx, username, db.now())
		return err
	})
	return u, err
}

// ensureUserTx returns the user, inserting it inside tx when missing.
func ensureUserTx(ctx context.Context, tx *sql.Tx, username string, now time.Time) (*store.User, error) {
	u, err := scanUser(tx.QueryRowContext(ctx, "SELECT "+userCols+" FROM users WHERE username = ?", username))
	if err == nil {
		return u, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: user: %w", err)
	}
	h, err := newHandle()
	if err != nil {
		return nil, err
	}
	res, err := tx.ExecContext(ctx, "INSERT INTO users(username, handle, created_at) VALUES (?, ?, ?)", username, h, ms(now))
	if err != nil {
		return nil, fmt.Errorf("sqlite: insert user: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return nil, fmt.Errorf("sqlite: insert user: %w", err)
	}
	return &store.User{ID: id, Username: username, Handle: h, CreatedAt: fromMS(ms(now))}, nil
}

const regCols = `r.id, r.user_id, u.username, r.aaid, r.key_id, r.public_key, r.public_key_encoding,
	r.signature_algorithm, r.authenticator_version, r.sign_counter, r.reg_counter, r.attestation_type,
	r.attestation_cert, r.tc_display_png, r.device_id, r.created_at, r.last_used_at`

// regColsNoJoin is regCols for queries on uaf_registrations alone: the username comes from
// a scalar subquery. The hot-path reads use it because SQLite re-prepares a statement
// with a JOIN every time its parameters are re-bound (the planner marks them as
// plan-influencing), which made the cached statements cost a full parse and plan per call
// (docs/bench/uaf.md); without the JOIN the prepared plan is reused.
const regColsNoJoin = `r.id, r.user_id, (SELECT username FROM users WHERE id = r.user_id), r.aaid, r.key_id,
	r.public_key, r.public_key_encoding, r.signature_algorithm, r.authenticator_version, r.sign_counter,
	r.reg_counter, r.attestation_type, r.attestation_cert, r.tc_display_png, r.device_id, r.created_at, r.last_used_at`

func scanReg(row interface{ Scan(...any) error }) (*store.UAFRegistration, error) {
	var r store.UAFRegistration
	var created, used int64
	if err := row.Scan(&r.ID, &r.UserID, &r.Username, &r.AAID, &r.KeyID, &r.PublicKey, &r.PublicKeyEncoding,
		&r.SignatureAlgorithm, &r.AuthenticatorVersion, &r.SignCounter, &r.RegCounter, &r.AttestationType,
		&r.AttestationCert, &r.TCDisplayPNG, &r.DeviceID, &created, &used); err != nil {
		return nil, err
	}
	r.CreatedAt, r.LastUsedAt = fromMS(created), fromMS(used)
	return &r, nil
}

// UAFRegistrations implements [store.Store].
func (db *DB) UAFRegistrations(ctx context.Context, username string) ([]store.UAFRegistration, error) {
	st, err := db.stmt(ctx, false, "SELECT "+regColsNoJoin+` FROM uaf_registrations r
		WHERE r.user_id = (SELECT id FROM users WHERE username = ?) ORDER BY r.id`)
	if err != nil {
		return nil, err
	}
	rows, err := st.QueryContext(ctx, username)
	if err != nil {
		return nil, fmt.Errorf("sqlite: registrations: %w", err)
	}
	defer rows.Close()
	var out []store.UAFRegistration
	for rows.Next() {
		r, err := scanReg(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: registrations: %w", err)
		}
		out = append(out, *r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: registrations: %w", err)
	}
	return out, nil
}

// UAFRegistration implements [store.Store].
func (db *DB) UAFRegistration(ctx context.Context, aaid, keyID string) (*store.UAFRegistration, error) {
	r, err := scanReg(db.queryRow(ctx, "SELECT "+regColsNoJoin+` FROM uaf_registrations r
		WHERE r.aaid_norm = ? AND r.key_id = ?`, strings.ToLower(aaid), keyID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: registration: %w", err)
	}
	return r, nil
}

// Write statements of the hot paths, prepared on the writer connection at [Open].
const (
	sqlConsume       = "INSERT INTO consumed(nonce, expires_at) VALUES (?, ?)"
	sqlUpdateCounter = `UPDATE uaf_registrations SET sign_counter = ?, last_used_at = ?
		WHERE id = ? AND (sign_counter < ? OR (sign_counter = 0 AND ? = 0))`
)

// writeStmts lists the statements [Open] prepares on the writer.
var writeStmts = []string{sqlConsume, sqlUpdateCounter}

// consume inserts the consumption record; a duplicate means the value was used before. A
// value that has expired is refused as well (store.ErrReplay): its record may already
// have been purged, and a check of the expiry made before this transaction could have
// passed just before it.
func (db *DB) consume(ctx context.Context, tx *sql.Tx, c store.Consumption) error {
	if len(c.Nonce) == 0 {
		return errors.New("sqlite: consumption without nonce")
	}
	if !db.now().Before(c.ExpiresAt) {
		return fmt.Errorf("sqlite: consume: expired at %s: %w", c.ExpiresAt.UTC().Format(time.RFC3339), store.ErrReplay)
	}
	st, err := db.txStmt(ctx, tx, sqlConsume)
	if err != nil {
		return err
	}
	_, err = st.ExecContext(ctx, c.Nonce, ms(c.ExpiresAt))
	if isUnique(err) {
		return store.ErrReplay
	}
	if err != nil {
		return fmt.Errorf("sqlite: consume: %w", err)
	}
	return nil
}

// RegisterUAF implements [store.Store].
func (db *DB) RegisterUAF(ctx context.Context, c store.Consumption, username string, regs []store.UAFRegistration) error {
	now := db.now()
	return db.InTx(ctx, func(tx *sql.Tx) error {
		_, err := db.registerUAFTx(ctx, tx, c, username, regs, now)
		return err
	})
}

// registerUAFTx consumes c and stores regs for username (created if new) in tx, and returns
// the user's id.
func (db *DB) registerUAFTx(ctx context.Context, tx *sql.Tx, c store.Consumption, username string, regs []store.UAFRegistration, now time.Time) (int64, error) {
	if err := db.consume(ctx, tx, c); err != nil {
		return 0, err
	}
	u, err := ensureUserTx(ctx, tx, username, now)
	if err != nil {
		return 0, err
	}
	for _, r := range regs {
		_, err := tx.ExecContext(ctx, `INSERT INTO uaf_registrations(user_id, aaid, aaid_norm, key_id, public_key,
			public_key_encoding, signature_algorithm, authenticator_version, sign_counter, reg_counter,
			attestation_type, attestation_cert, tc_display_png, device_id, created_at, last_used_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			u.ID, r.AAID, strings.ToLower(r.AAID), r.KeyID, r.PublicKey, r.PublicKeyEncoding, r.SignatureAlgorithm,
			r.AuthenticatorVersion, r.SignCounter, r.RegCounter, r.AttestationType, r.AttestationCert,
			r.TCDisplayPNG, r.DeviceID, ms(now), ms(now))
		if isUnique(err) {
			return 0, store.ErrAlreadyExists
		}
		if err != nil {
			return 0, fmt.Errorf("sqlite: insert registration: %w", err)
		}
	}
	return u.ID, nil
}

// AuthenticateUAF implements [store.Store].
func (db *DB) AuthenticateUAF(ctx context.Context, c store.Consumption, updates []store.CounterUpdate) error {
	return db.InTx(ctx, func(tx *sql.Tx) error {
		if err := db.consume(ctx, tx, c); err != nil {
			return err
		}
		st, err := db.txStmt(ctx, tx, sqlUpdateCounter)
		if err != nil {
			return err
		}
		for _, u := range updates {
			// The counter must grow, unless the authenticator keeps none (stored and new both 0).
			res, err := st.ExecContext(ctx, u.SignCounter, ms(u.UsedAt), u.RegistrationID, u.SignCounter, u.SignCounter)
			if err != nil {
				return fmt.Errorf("sqlite: update counter: %w", err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("sqlite: update counter: %w", err)
			}
			if n == 0 {
				var exists int
				if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM uaf_registrations WHERE id = ?", u.RegistrationID).Scan(&exists); err != nil {
					return fmt.Errorf("sqlite: update counter: %w", err)
				}
				if exists == 0 {
					return store.ErrNotFound
				}
				return store.ErrCounter
			}
		}
		return nil
	})
}

// DeregisterUAF implements [store.Store].
func (db *DB) DeregisterUAF(ctx context.Context, username, aaid, keyID string) ([]store.UAFRegistration, error) {
	var out []store.UAFRegistration
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		q := "SELECT " + regCols + ` FROM uaf_registrations r JOIN users u ON u.id = r.user_id WHERE u.username = ?`
		args := []any{username}
		if aaid != "" {
			q += " AND r.aaid_norm = ?"
			args = append(args, strings.ToLower(aaid))
		}
		if keyID != "" {
			q += " AND r.key_id = ?"
			args = append(args, keyID)
		}
		rows, err := tx.QueryContext(ctx, q+" ORDER BY r.id", args...)
		if err != nil {
			return fmt.Errorf("sqlite: deregister: %w", err)
		}
		for rows.Next() {
			r, err := scanReg(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("sqlite: deregister: %w", err)
			}
			out = append(out, *r)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return fmt.Errorf("sqlite: deregister: %w", err)
		}
		for _, r := range out {
			if _, err := tx.ExecContext(ctx, "DELETE FROM uaf_registrations WHERE id = ?", r.ID); err != nil {
				return fmt.Errorf("sqlite: deregister: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RecordSecurityEvent implements [store.Store].
func (db *DB) RecordSecurityEvent(ctx context.Context, e store.SecurityEvent) error {
	if e.At.IsZero() {
		e.At = db.now()
	}
	_, err := db.w.ExecContext(ctx, `INSERT INTO security_events(kind, username, aaid, key_id, detail, at)
		VALUES (?, ?, ?, ?, ?, ?)`, e.Kind, e.Username, e.AAID, e.KeyID, e.Detail, ms(e.At))
	if err != nil {
		return fmt.Errorf("sqlite: security event: %w", err)
	}
	return nil
}

// SecurityEvents lists the recorded events of one kind, oldest first (for operators and tests).
func (db *DB) SecurityEvents(ctx context.Context, kind string) ([]store.SecurityEvent, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT kind, username, aaid, key_id, detail, at FROM security_events
		WHERE kind = ? ORDER BY id`, kind)
	if err != nil {
		return nil, fmt.Errorf("sqlite: security events: %w", err)
	}
	defer rows.Close()
	var out []store.SecurityEvent
	for rows.Next() {
		var e store.SecurityEvent
		var at int64
		if err := rows.Scan(&e.Kind, &e.Username, &e.AAID, &e.KeyID, &e.Detail, &at); err != nil {
			return nil, fmt.Errorf("sqlite: security events: %w", err)
		}
		e.At = fromMS(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// purgeMargin is how long a consumption record outlives its value: a node whose clock is
// behind the purging node's by less than this still finds the record.
const purgeMargin = 5 * time.Minute

// PurgeExpired implements [store.Store]: consumption records expired more than
// purgeMargin before now are deleted.
func (db *DB) PurgeExpired(ctx context.Context, now time.Time) (int64, error) {
	res, err := db.w.ExecContext(ctx, "DELETE FROM consumed WHERE expires_at < ?", ms(now.Add(-purgeMargin)))
	if err != nil {
		return 0, fmt.Errorf("sqlite: purge: %w", err)
	}
	return res.RowsAffected()
}
