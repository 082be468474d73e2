package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

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
	if err := row.Scan(&c.ID, &c.UserID, &c.Username, &c.UserHandle, &c.RPID, &c.CredentialID, &c.PublicKey,
		&c.AAGUID, &c.SignCount, &flags, &c.AttestationFormat, &c.AttestationType, &c.Trust, &transports,
		&disc, &c.Name, &c.Record, &created, &used); err != nil {
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

// FIDO2Credentials lists username's credentials for rpID, oldest first (empty when the
// user is unknown).
func (db *DB) FIDO2Credentials(ctx context.Context, username, rpID string) ([]record.Credential, error) {
	return db.queryFIDO2Creds(ctx, "u.username = ? AND c.rp_id = ?", username, rpID)
}

// FIDO2CredentialsByHandle returns the user whose WebAuthn user handle is handle and that
// user's credentials for rpID; store.ErrNotFound when no user has the handle.
func (db *DB) FIDO2CredentialsByHandle(ctx context.Context, handle []byte, rpID string) (*store.User, []record.Credential, error) {
	u, err := scanUser(db.r.QueryRowContext(ctx, "SELECT "+userCols+" FROM users WHERE handle = ?", handle))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, store.ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("sqlite: user by handle: %w", err)
	}
	creds, err := db.queryFIDO2Creds(ctx, "c.user_id = ? AND c.rp_id = ?", u.ID, rpID)
	if err != nil {
		return nil, nil, err
	}
	return u, creds, nil
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
		_, err := tx.ExecContext(ctx, `INSERT INTO fido2_sessions(id, ceremony, challenge, user_id, username, data,
			status, error_message, credential_id, created_at, updated_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
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
	s, err := scanFIDO2Session(db.r.QueryRowContext(ctx, "SELECT "+fido2SessCols+" FROM fido2_sessions WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: fido2 session: %w", err)
	}
	return s, nil
}

// TakeFIDO2Session atomically moves the initialized, unexpired session of kind ceremony
// whose challenge is challenge to the verifying state and returns it: a session is taken
// once. It fails with store.ErrNotFound (no such session, other ceremony, or expired at
// now) or store.ErrReplay (already taken).
func (db *DB) TakeFIDO2Session(ctx context.Context, ceremony record.Ceremony, challenge []byte, now time.Time) (*record.Session, error) {
	var out *record.Session
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		s, err := scanFIDO2Session(tx.QueryRowContext(ctx, "SELECT "+fido2SessCols+
			" FROM fido2_sessions WHERE challenge = ?", challenge))
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("sqlite: fido2 session: %w", err)
		}
		switch {
		case s.Ceremony != ceremony:
			return store.ErrNotFound
		case s.Status != record.StatusInitialized:
			return store.ErrReplay
		case !now.Before(s.ExpiresAt):
			return store.ErrNotFound
		}
		if _, err := tx.ExecContext(ctx, "UPDATE fido2_sessions SET status = ?, updated_at = ? WHERE id = ?",
			string(record.StatusVerifying), ms(now), s.ID); err != nil {
			return fmt.Errorf("sqlite: fido2 session: %w", err)
		}
		s.Status, s.UpdatedAt = record.StatusVerifying, fromMS(ms(now))
		out = s
		return nil
	})
	return out, err
}

// FailFIDO2Session marks a session failed with msg (shown by the status service).
func (db *DB) FailFIDO2Session(ctx context.Context, id, msg string, now time.Time) error {
	return db.InTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE fido2_sessions SET status = ?, error_message = ?, updated_at = ?
			WHERE id = ? AND status != ?`, string(record.StatusFailed), msg, ms(now), id, string(record.StatusSucceeded))
		if err != nil {
			return fmt.Errorf("sqlite: fido2 session: %w", err)
		}
		return nil
	})
}

func succeedSessionTx(ctx context.Context, tx *sql.Tx, id string, userID int64, username string, credID []byte, now time.Time) error {
	res, err := tx.ExecContext(ctx, `UPDATE fido2_sessions SET status = ?, user_id = ?, username = ?, credential_id = ?,
		updated_at = ? WHERE id = ? AND status = ?`, string(record.StatusSucceeded), userID, username, credID, ms(now),
		id, string(record.StatusVerifying))
	if err != nil {
		return fmt.Errorf("sqlite: fido2 session: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: fido2 session: %w", err)
	} else if n == 0 {
		return fmt.Errorf("sqlite: fido2 session not verifying: %w", store.ErrReplay)
	}
	return nil
}

// CompleteFIDO2Registration stores c for the user c.UserID and marks the verifying session
// sessionID succeeded, in one transaction. It fails with store.ErrAlreadyExists when the
// credential ID is registered for c.RPID and store.ErrReplay when the session is not
// verifying; then nothing changes. The stored row is returned.
func (db *DB) CompleteFIDO2Registration(ctx context.Context, sessionID string, c record.Credential) (*record.Credential, error) {
	now := c.CreatedAt
	if now.IsZero() {
		now = db.now()
	}
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		var username string
		if err := tx.QueryRowContext(ctx, "SELECT username FROM users WHERE id = ?", c.UserID).Scan(&username); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("sqlite: fido2 credential user: %w", store.ErrNotFound)
			}
			return fmt.Errorf("sqlite: fido2 credential user: %w", err)
		}
		disc := 0
		if c.Discoverable {
			disc = 1
		}
		if c.AAGUID == nil {
			c.AAGUID = []byte{}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO fido2_credentials(user_id, rp_id, credential_id, public_key, aaguid,
			sign_count, flags, attestation_format, attestation_type, trust, transports, discoverable, name, record,
			created_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			c.UserID, c.RPID, c.CredentialID, c.PublicKey, c.AAGUID, c.SignCount, c.Flags.Bits(), c.AttestationFormat,
			c.AttestationType, c.Trust, strings.Join(c.Transports, ","), disc, c.Name, c.Record, ms(now), ms(now))
		if isUnique(err) {
			return fmt.Errorf("sqlite: fido2 credential: %w", store.ErrAlreadyExists)
		}
		if err != nil {
			return fmt.Errorf("sqlite: fido2 credential: %w", err)
		}
		return succeedSessionTx(ctx, tx, sessionID, c.UserID, username, c.CredentialID, now)
	})
	if err != nil {
		return nil, err
	}
	return db.FIDO2CredentialByID(ctx, c.RPID, c.CredentialID)
}

// CompleteFIDO2Authentication applies u and marks the verifying session sessionID
// succeeded for the credential's user, in one transaction. The update is refused with
// store.ErrCounter when the stored sign count is not lower than u.SignCount (unless both
// are zero); store.ErrNotFound when the credential is gone; store.ErrReplay when the
// session is not verifying. On error nothing changes.
func (db *DB) CompleteFIDO2Authentication(ctx context.Context, sessionID string, u record.CounterUpdate) error {
	now := u.UsedAt
	if now.IsZero() {
		now = db.now()
	}
	return db.InTx(ctx, func(tx *sql.Tx) error {
		var userID int64
		var username string
		var credID []byte
		err := tx.QueryRowContext(ctx, `SELECT c.user_id, u.username, c.credential_id FROM fido2_credentials c
			JOIN users u ON u.id = c.user_id WHERE c.id = ?`, u.CredentialRowID).Scan(&userID, &username, &credID)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("sqlite: fido2 credential: %w", err)
		}
		res, err := tx.ExecContext(ctx, `UPDATE fido2_credentials SET sign_count = ?, flags = ?, last_used_at = ?
			WHERE id = ? AND (sign_count < ? OR (sign_count = 0 AND ? = 0))`,
			u.SignCount, u.Flags.Bits(), ms(now), u.CredentialRowID, u.SignCount, u.SignCount)
		if err != nil {
			return fmt.Errorf("sqlite: fido2 counter: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("sqlite: fido2 counter: %w", err)
		} else if n == 0 {
			return store.ErrCounter
		}
		return succeedSessionTx(ctx, tx, sessionID, userID, username, credID, now)
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
