package sqlite

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/fidoserver/hwfido/server/fido2/record"
	"github.com/fidoserver/hwfido/server/store"
)

// This file implements the persistence the FIDO2 service (server/fido2) needs: credential
// records per user and RP ID, and ceremony sessions. Schema: migrations/0002_fido2.sql.

const fido2CredCols = `c.id, c.user_id, u.username, u.handle, c.rp_id, c.credential_id, c.public_key, c.aaguid,
	c.sign_count, c.flags, c.attestation_format, c.attestation_type, c.trust, c.transports, c.discoverable,
	c.name, c.record, c.created_at, c.last_used_at`

func scanFIDO2Cred(row interface{ Scan(...any) error }) (*record.Credential, error) {
	var c record.Credential
	var flags uint8
	var transports string
	var disc int
	var created, used int64
	dest := []any{&c.ID, &c.UserID, &c.Username, &c.UserHandle, &c.RPID, &c.CredentialID, &c.PublicKey,
		&c.AAGUID, &c.SignCount, &flags, &c.AttestationFormat, &c.AttestationType, &c.Trust, &transports,
		&disc, &c.Name, &c.Record, &created, &used}
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	c.Flags = record.FlagsFromBits(flags)
	if transports != "" {
		c.Transports = strings.Split(transports, ",")
	}
	c.Discoverable = disc != 0
	c.CreatedAt, c.LastUsedAt = fromMS(created), fromMS(used)
	return &c, nil
}

// queryFIDO2Creds lists the credentials matching where (over c = fido2_credentials and
// u = users) in row order.
func (db *DB) queryFIDO2Creds(ctx context.Context, where string, args ...any) ([]record.Credential, error) {
	rows, err := db.r.QueryContext(ctx, "SELECT "+fido2CredCols+` FROM fido2_credentials c
		JOIN users u ON u.id = c.user_id WHERE `+where+` ORDER BY c.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: fido2 credentials: %w", err)
	}
	defer rows.Close()
	var out []record.Credential
	for rows.Next() {
		c, err := scanFIDO2Cred(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: fido2 credentials: %w", err)
		}
		out = append(out, *c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: fido2 credentials: %w", err)
	}
	return out, nil
}

// fido2UserCredSQL selects a user (WHERE <column> = ?2) with that user's credentials for
// an RP ID (?1): one row for the user (c_id = 0, credential columns empty) and one per
// credential (user columns empty), in one statement and so one read transaction. It is a
// UNION ALL of two single-table selects, not a join: SQLite (3.54) marks a prepared join
// for re-preparation whenever a parameter is rebound, and go-sqlite3 rebinds on every
// call, so the joined form was parsed and planned again on every options request
// (≈ 25 µs CPU; sqlite3Reprepare ≈ 13 % of the store's share of a login).
//
// The opaque record column (≈ 1 KB per credential, more with an attestation chain) is not
// read: a ceremony does not decode it, and [DB.FIDO2Credentials] returns it.
func fido2UserCredSQL(column string) string {
	return `SELECT id, username, handle, created_at, 0, '', x'', x'', x'', 0, 0, '', '', '', '', 0, '', x'', 0, 0
	FROM users WHERE ` + column + ` = ?2
	UNION ALL
	SELECT 0, '', x'', 0, c.id, c.rp_id, c.credential_id, c.public_key, c.aaguid, c.sign_count, c.flags,
		c.attestation_format, c.attestation_type, c.trust, c.transports, c.discoverable, c.name, x'',
		c.created_at, c.last_used_at
	FROM fido2_credentials c WHERE c.rp_id = ?1 AND c.user_id = (SELECT id FROM users WHERE ` + column + ` = ?2)`
}

// userCredentials reads a user (selected by column = key) and its credentials for rpID
// in one query.
func (db *DB) userCredentials(ctx context.Context, column string, key any, rpID string) (*store.User, []record.Credential, error) {
	st, err := db.stmt(ctx, false, fido2UserCredSQL(column))
	if err != nil {
		return nil, nil, err
	}
	rows, err := st.QueryContext(ctx, rpID, key)
	if err != nil {
		return nil, nil, fmt.Errorf("sqlite: fido2 user: %w", err)
	}
	defer rows.Close()
	var (
		u     *store.User
		creds []record.Credential
	)
	for rows.Next() {
		var user store.User
		var userCreated int64
		var c record.Credential
		var flags uint8
		var transports string
		var disc int
		var created, used int64
		if err := rows.Scan(&user.ID, &user.Username, &user.Handle, &userCreated, &c.ID, &c.RPID, &c.CredentialID,
			&c.PublicKey, &c.AAGUID, &c.SignCount, &flags, &c.AttestationFormat, &c.AttestationType, &c.Trust,
			&transports, &disc, &c.Name, &c.Record, &created, &used); err != nil {
			return nil, nil, fmt.Errorf("sqlite: fido2 user: %w", err)
		}
		if c.ID == 0 {
			user.CreatedAt = fromMS(userCreated)
			u = &user
			continue
		}
		c.Flags = record.FlagsFromBits(flags)
		if transports != "" {
			c.Transports = strings.Split(transports, ",")
		}
		c.Discoverable = disc != 0
		c.CreatedAt, c.LastUsedAt = fromMS(created), fromMS(used)
		creds = append(creds, c)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("sqlite: fido2 user: %w", err)
	}
	if u == nil {
		return nil, nil, store.ErrNotFound
	}
	// Oldest first; the order of a compound select's rows is not guaranteed.
	slices.SortFunc(creds, func(a, b record.Credential) int { return cmp.Compare(a.ID, b.ID) })
	for i := range creds {
		creds[i].UserID, creds[i].Username, creds[i].UserHandle = u.ID, u.Username, u.Handle
	}
	return u, creds, nil
}

// FIDO2UserCredentials returns the user with row id userID and that user's credentials
// for rpID (oldest first), or store.ErrNotFound when there is no such user.
func (db *DB) FIDO2UserCredentials(ctx context.Context, userID int64, rpID string) (*store.User, []record.Credential, error) {
	return db.userCredentials(ctx, "id", userID, rpID)
}

// FIDO2UserCredentialsByName returns the user named username and that user's credentials
// for rpID (oldest first), or store.ErrNotFound when there is no such user.
func (db *DB) FIDO2UserCredentialsByName(ctx context.Context, username, rpID string) (*store.User, []record.Credential, error) {
	return db.userCredentials(ctx, "username", username, rpID)
}

// FIDO2Credentials lists username's credentials for rpID, oldest first (empty when the
// user is unknown).
func (db *DB) FIDO2Credentials(ctx context.Context, username, rpID string) ([]record.Credential, error) {
	return db.queryFIDO2Creds(ctx, "u.username = ? AND c.rp_id = ?", username, rpID)
}

// FIDO2CredentialsByHandle returns the user whose WebAuthn user handle is handle and that
// user's credentials for rpID; store.ErrNotFound when no user has the handle.
func (db *DB) FIDO2CredentialsByHandle(ctx context.Context, handle []byte, rpID string) (*store.User, []record.Credential, error) {
	return db.userCredentials(ctx, "handle", handle, rpID)
}

// FIDO2CredentialByID returns the credential with that ID for rpID or store.ErrNotFound.
func (db *DB) FIDO2CredentialByID(ctx context.Context, rpID string, credentialID []byte) (*record.Credential, error) {
	cs, err := db.queryFIDO2Creds(ctx, "c.rp_id = ? AND c.credential_id = ?", rpID, credentialID)
	if err != nil {
		return nil, err
	}
	if len(cs) == 0 {
		return nil, store.ErrNotFound
	}
	return &cs[0], nil
}

// DeleteFIDO2Credential deletes username's credential credentialID for rpID; it returns
// store.ErrNotFound when the user has no such credential.
func (db *DB) DeleteFIDO2Credential(ctx context.Context, username, rpID string, credentialID []byte) error {
	return db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM fido2_credentials WHERE rp_id = ? AND credential_id = ?
			AND user_id = (SELECT id FROM users WHERE username = ?)`, rpID, credentialID, username)
		if err != nil {
			return fmt.Errorf("sqlite: delete fido2 credential: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("sqlite: delete fido2 credential: %w", err)
		} else if n == 0 {
			return store.ErrNotFound
		}
		return nil
	})
}

const fido2SessCols = `id, ceremony, challenge, user_id, username, data, status, error_message, credential_id,
	created_at, updated_at, expires_at`

func scanFIDO2Session(row interface{ Scan(...any) error }) (*record.Session, error) {
	var s record.Session
	var created, updated, expires int64
	var ceremony, status string
	if err := row.Scan(&s.ID, &ceremony, &s.Challenge, &s.UserID, &s.Username, &s.Data, &status,
		&s.ErrorMessage, &s.CredentialID, &created, &updated, &expires); err != nil {
		return nil, err
	}
	s.Ceremony, s.Status = record.Ceremony(ceremony), record.Status(status)
	s.CreatedAt, s.UpdatedAt, s.ExpiresAt = fromMS(created), fromMS(updated), fromMS(expires)
	return &s, nil
}

// CreateFIDO2Session stores a new session. It fails with store.ErrAlreadyExists when the
// ID or the challenge is taken.
func (db *DB) CreateFIDO2Session(ctx context.Context, s record.Session) error {
	return db.InTx(ctx, func(tx *sql.Tx) error {
		st, err := db.txStmt(ctx, tx, sqlCreateFIDO2Session)
		if err != nil {
			return err
		}
		_, err = st.ExecContext(ctx,
			s.ID, string(s.Ceremony), s.Challenge, s.UserID, s.Username, s.Data, string(s.Status), s.ErrorMessage,
			s.CredentialID, ms(s.CreatedAt), ms(s.UpdatedAt), ms(s.ExpiresAt))
		if isUnique(err) {
			return fmt.Errorf("sqlite: fido2 session: %w", store.ErrAlreadyExists)
		}
		if err != nil {
			return fmt.Errorf("sqlite: fido2 session: %w", err)
		}
		return nil
	})
}

// FIDO2Session returns the session with that ID or store.ErrNotFound.
func (db *DB) FIDO2Session(ctx context.Context, id string) (*record.Session, error) {
	s, err := scanFIDO2Session(db.queryRow(ctx, "SELECT "+fido2SessCols+" FROM fido2_sessions WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: fido2 session: %w", err)
	}
	return s, nil
}

// FIDO2SessionByChallenge returns the session whose challenge is challenge or
// store.ErrNotFound. It only reads: single use is enforced when the session is finished
// ([DB.FinishFIDO2Registration], [DB.FinishFIDO2Authentication], [DB.FailFIDO2Session]).
func (db *DB) FIDO2SessionByChallenge(ctx context.Context, challenge []byte) (*record.Session, error) {
	s, err := scanFIDO2Session(db.queryRow(ctx, "SELECT "+fido2SessCols+
		" FROM fido2_sessions WHERE challenge = ?", challenge))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: fido2 session: %w", err)
	}
	return s, nil
}

// finishSessionSQL records the outcome of a ceremony: it inserts the session row (a
// session sealed into its challenge has none before) or moves an initialized row of the
// same ceremony to the outcome. It changes no row when the session was already finished,
// which is how single use is enforced; a challenge that belongs to another row fails
// with a UNIQUE violation.
const finishSessionSQL = `INSERT INTO fido2_sessions(id, ceremony, challenge, user_id, username, data, status,
	error_message, credential_id, created_at, updated_at, expires_at) VALUES (?, ?, ?, ?, ?, x'', ?, ?, ?, ?, ?, ?)
	ON CONFLICT(id) DO UPDATE SET status = excluded.status, error_message = excluded.error_message,
		user_id = CASE WHEN excluded.user_id != 0 THEN excluded.user_id ELSE fido2_sessions.user_id END,
		username = CASE WHEN excluded.username != '' THEN excluded.username ELSE fido2_sessions.username END,
		credential_id = excluded.credential_id, updated_at = excluded.updated_at
	WHERE fido2_sessions.status = 'initialized' AND fido2_sessions.ceremony = excluded.ceremony
		AND fido2_sessions.challenge = excluded.challenge`

// finishSessionTx records s with status st inside tx; store.ErrReplay when the session was
// already finished (or its challenge belongs to another session).
func (db *DB) finishSessionTx(ctx context.Context, tx *sql.Tx, s *record.Session, st record.Status, msg string, credID []byte, now time.Time) error {
	created := s.CreatedAt
	if created.IsZero() {
		created = now
	}
	stmt, err := db.txStmt(ctx, tx, finishSessionSQL)
	if err != nil {
		return err
	}
	res, err := stmt.ExecContext(ctx, s.ID, string(s.Ceremony), s.Challenge, s.UserID, s.Username,
		string(st), msg, credID, ms(created), ms(now), ms(s.ExpiresAt))
	if isUnique(err) {
		return fmt.Errorf("sqlite: fido2 session: %w", store.ErrReplay)
	}
	if err != nil {
		return fmt.Errorf("sqlite: fido2 session: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: fido2 session: %w", err)
	} else if n == 0 {
		return fmt.Errorf("sqlite: fido2 session already finished: %w", store.ErrReplay)
	}
	return nil
}

// FailFIDO2Session records that the ceremony of s failed with msg (shown by the status
// service). It fails with store.ErrReplay when s was already finished; then nothing
// changes.
func (db *DB) FailFIDO2Session(ctx context.Context, s record.Session, msg string, now time.Time) error {
	return db.InTx(ctx, func(tx *sql.Tx) error {
		return db.finishSessionTx(ctx, tx, &s, record.StatusFailed, msg, nil, now)
	})
}

// FinishFIDO2Registration is [DB.RegisterFIDO2Credential] without the user.
func (db *DB) FinishFIDO2Registration(ctx context.Context, s record.Session, c record.Credential) error {
	_, err := db.RegisterFIDO2Credential(ctx, s, c)
	return err
}

// RegisterFIDO2Credential stores c and records session s as succeeded, in one write
// transaction, and returns c's user. With c.UserID set that user must exist
// (store.ErrNotFound). With c.UserID 0, c.Username and c.UserHandle name a new user,
// created in the same transaction; if it exists already with another handle the
// registration fails with record.ErrUserChanged. It fails with store.ErrAlreadyExists
// when the credential ID is registered for c.RPID and store.ErrReplay when s was already
// finished; on error nothing changes.
func (db *DB) RegisterFIDO2Credential(ctx context.Context, s record.Session, c record.Credential) (*store.User, error) {
	now := c.CreatedAt
	if now.IsZero() {
		now = db.now()
	}
	disc := 0
	if c.Discoverable {
		disc = 1
	}
	if c.AAGUID == nil {
		c.AAGUID = []byte{}
	}
	var u *store.User
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		if u, err = db.fido2UserTx(ctx, tx, c.UserID, c.Username, c.UserHandle, now); err != nil {
			return err
		}
		s.UserID, s.Username, c.UserID = u.ID, u.Username, u.ID
		if err := db.finishSessionTx(ctx, tx, &s, record.StatusSucceeded, "", c.CredentialID, now); err != nil {
			return err
		}
		st, err := db.txStmt(ctx, tx, sqlInsertFIDO2Credential)
		if err != nil {
			return err
		}
		_, err = st.ExecContext(ctx,
			c.UserID, c.RPID, c.CredentialID, c.PublicKey, c.AAGUID, c.SignCount, c.Flags.Bits(), c.AttestationFormat,
			c.AttestationType, c.Trust, strings.Join(c.Transports, ","), disc, c.Name, c.Record, ms(now), ms(now))
		if isUnique(err) {
			return fmt.Errorf("sqlite: fido2 credential: %w", store.ErrAlreadyExists)
		}
		if isForeignKey(err) {
			return fmt.Errorf("sqlite: fido2 credential user: %w", store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("sqlite: fido2 credential: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// fido2UserTx returns the user with row id (id != 0) or, for id 0, the user named
// username, creating it with handle when missing (record.ErrUserChanged when it exists
// with another handle; the user is returned with that error).
func (db *DB) fido2UserTx(ctx context.Context, tx *sql.Tx, id int64, username string, handle []byte, now time.Time) (*store.User, error) {
	if id == 0 {
		if username == "" || len(handle) == 0 {
			return nil, errors.New("sqlite: fido2 new user needs a username and a handle")
		}
		st, err := db.txStmt(ctx, tx, sqlInsertFIDO2User)
		if err != nil {
			return nil, err
		}
		if _, err := st.ExecContext(ctx, username, handle, ms(now)); err != nil {
			return nil, fmt.Errorf("sqlite: fido2 user: %w", err)
		}
	}
	q, key := sqlFIDO2UserByID, any(id)
	if id == 0 {
		q, key = sqlFIDO2UserByName, username
	}
	st, err := db.txStmt(ctx, tx, q)
	if err != nil {
		return nil, err
	}
	u, err := scanUser(st.QueryRowContext(ctx, key))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: fido2 user: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: fido2 user: %w", err)
	}
	if id == 0 && !bytes.Equal(u.Handle, handle) {
		return u, fmt.Errorf("sqlite: fido2 user %q: %w", username, record.ErrUserChanged)
	}
	return u, nil
}

// EnsureFIDO2User returns the user named username, creating it with handle when missing
// (an existing user keeps its own handle).
func (db *DB) EnsureFIDO2User(ctx context.Context, username string, handle []byte) (*store.User, error) {
	var u *store.User
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		u, err = db.fido2UserTx(ctx, tx, 0, username, handle, db.now())
		if errors.Is(err, record.ErrUserChanged) {
			err = nil
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// FinishFIDO2Authentication applies u to the credential row u.CredentialRowID and records
// session s as succeeded for that credential (s.UserID and s.Username name its user), in
// one write transaction. The update is refused with store.ErrCounter when the stored sign
// count is not lower than u.SignCount (unless both are zero); store.ErrNotFound when the
// credential is gone; store.ErrReplay when s was already finished. On error nothing
// changes.
func (db *DB) FinishFIDO2Authentication(ctx context.Context, s record.Session, credentialID []byte, u record.CounterUpdate) error {
	now := u.UsedAt
	if now.IsZero() {
		now = db.now()
	}
	return db.InTx(ctx, func(tx *sql.Tx) error {
		// The session first: a replay is reported as such, not as a counter regression.
		if err := db.finishSessionTx(ctx, tx, &s, record.StatusSucceeded, "", credentialID, now); err != nil {
			return err
		}
		st, err := db.txStmt(ctx, tx, sqlUpdateFIDO2Counter)
		if err != nil {
			return err
		}
		res, err := st.ExecContext(ctx,
			u.SignCount, u.Flags.Bits(), ms(now), u.CredentialRowID, u.SignCount, u.SignCount)
		if err != nil {
			return fmt.Errorf("sqlite: fido2 counter: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("sqlite: fido2 counter: %w", err)
		} else if n == 0 {
			var one int
			err := tx.QueryRowContext(ctx, "SELECT 1 FROM fido2_credentials WHERE id = ?", u.CredentialRowID).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return store.ErrNotFound
			}
			if err != nil {
				return fmt.Errorf("sqlite: fido2 counter: %w", err)
			}
			return store.ErrCounter
		}
		return nil
	})
}

// PurgeFIDO2Sessions forgets sessions that expired before before and returns how many.
func (db *DB) PurgeFIDO2Sessions(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM fido2_sessions WHERE expires_at < ?", ms(before))
		if err != nil {
			return fmt.Errorf("sqlite: purge fido2 sessions: %w", err)
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// Write statements of this file, prepared at [Open] (see writeStmts).
const (
	sqlCreateFIDO2Session = `INSERT INTO fido2_sessions(id, ceremony, challenge, user_id, username, data,
			status, error_message, credential_id, created_at, updated_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqlInsertFIDO2Credential = `INSERT INTO fido2_credentials(user_id, rp_id, credential_id, public_key, aaguid,
			sign_count, flags, attestation_format, attestation_type, trust, transports, discoverable, name, record,
			created_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqlInsertFIDO2User = `INSERT INTO users(username, handle, created_at) VALUES (?, ?, ?)
			ON CONFLICT(username) DO NOTHING`
	sqlFIDO2UserByID      = "SELECT " + userCols + " FROM users WHERE id = ?"
	sqlFIDO2UserByName    = "SELECT " + userCols + " FROM users WHERE username = ?"
	sqlUpdateFIDO2Counter = `UPDATE fido2_credentials SET sign_count = ?, flags = ?, last_used_at = ?
			WHERE id = ? AND (sign_count < ? OR (sign_count = 0 AND ? = 0))`
)

func init() {
	// The ceremony path's write statements join the ones Open prepares on the writer: a
	// statement prepared inside a transaction is parsed again on every ceremony.
	writeStmts = append(writeStmts, sqlCreateFIDO2Session, finishSessionSQL, sqlInsertFIDO2Credential,
		sqlUpdateFIDO2Counter, sqlInsertFIDO2User, sqlFIDO2UserByID, sqlFIDO2UserByName)
}

// isForeignKey reports whether err is a FOREIGN KEY constraint violation.
func isForeignKey(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintForeignKey
}
