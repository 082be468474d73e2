package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/fidoserver/hwfido/server/oob/record"
	"github.com/fidoserver/hwfido/server/store"
)

// This file implements the persistence of the out-of-band services (server/oob): tokens,
// sessions and dispatch targets. Schema: migrations/0003_oob.sql and 0004_oob_changes.sql
// (change sequence of sessions, for the status watchers). Single use of a token is
// enforced here, in one immediate write transaction (UPDATE … WHERE redeemed_at IS NULL), so
// it holds across goroutines and across server processes sharing the database file.

const oobSessionCols = `id, uaf_handle, op, status, username, uaf_status, asm_status, client_error, authenticators,
	token_result, dispatcher_name, dispatcher_resp, target_ext_id, result_token, token_expires_at,
	created_at, updated_at, expires_at`

// oobNextSeq is the change sequence number of a session being inserted or updated: one more
// than the highest ever given (migrations/0004_oob_changes.sql). Writers are serialised, so
// it grows in commit order.
const oobNextSeq = oobMaxSeq + ` + 1`

// oobMaxSeq is the highest change sequence number given so far, also by purged sessions.
const oobMaxSeq = `max(coalesce((SELECT max(seq) FROM oob_sessions), 0), (SELECT seq FROM oob_session_seq WHERE id = 1))`

// Statements of the out-of-band hot paths. The write statements (and the reads made inside
// write transactions) are prepared on the writer at [Open] (see writeStmts); the reads are
// prepared on the read pool on first use. An unprepared statement is parsed on every call.
const (
	sqlInsertOOBSession = "INSERT INTO oob_sessions(" + oobSessionCols + `, seq)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ` + oobNextSeq + `)`
	sqlInsertOOBToken = `INSERT INTO oob_tokens(hash, op, session_id, context, expires_at) VALUES (?, ?, ?, ?, ?)`
	sqlSetOOBDispatch = `UPDATE oob_sessions SET dispatcher_name = ?, dispatcher_resp = ?, target_ext_id = ?,
		updated_at = ?, seq = ` + oobNextSeq + ` WHERE id = ?`
	sqlRedeemOOBToken = `UPDATE oob_tokens SET redeemed_at = ?
			WHERE hash = ? AND op = ? AND redeemed_at IS NULL AND expires_at > ?`
	sqlOOBTokenByHash   = `SELECT op, session_id, context, expires_at, redeemed_at FROM oob_tokens WHERE hash = ?`
	sqlRedeemOOBSession = `UPDATE oob_sessions SET status = ?, token_result = ?, updated_at = ?, seq = ` + oobNextSeq + `
			WHERE id = ? RETURNING uaf_handle`
	sqlOOBSessionHandle = "SELECT uaf_handle FROM oob_sessions WHERE id = ?"
	sqlUpdateOOBSession = `UPDATE oob_sessions SET status = ?,
		token_result = CASE WHEN ? = '' THEN token_result ELSE ? END,
		username = CASE WHEN ? = '' THEN username ELSE ? END,
		uaf_status = ?, asm_status = ?, client_error = ?,
		authenticators = CASE WHEN ? = '' THEN authenticators ELSE ? END,
		result_token = CASE WHEN ? = '' THEN result_token ELSE ? END,
		updated_at = ?, seq = ` + oobNextSeq + `
		WHERE (id = ? OR uaf_handle = ?) AND status NOT IN ('succeeded', 'failed') RETURNING id`
	sqlOOBSessionByID     = "SELECT " + oobSessionCols + " FROM oob_sessions WHERE id = ?"
	sqlOOBSessionByHandle = "SELECT " + oobSessionCols + " FROM oob_sessions WHERE uaf_handle = ?"
	sqlOOBSessionSeq      = `SELECT ` + oobMaxSeq
	sqlOOBSessionsChanged = `SELECT id, seq FROM oob_sessions WHERE seq > ? ORDER BY seq LIMIT ?`
	sqlOOBTarget          = "SELECT " + oobTargetCols + ` FROM oob_targets t
		JOIN users u ON u.id = t.user_id WHERE t.id = ?`
	sqlOOBTargets = "SELECT " + oobTargetCols + ` FROM oob_targets t
		JOIN users u ON u.id = t.user_id WHERE u.username = ? ORDER BY t.created_at, t.id`
	sqlTouchOOBStream = `INSERT INTO oob_stream_conns(conn_id, target_id, seen_at) VALUES (?, ?, ?)
		ON CONFLICT(conn_id) DO UPDATE SET seen_at = excluded.seen_at`
	sqlRefreshOOBStream = "UPDATE oob_stream_conns SET seen_at = ? WHERE conn_id = ? AND target_id = ?"
	sqlDropOOBStream    = "DELETE FROM oob_stream_conns WHERE conn_id = ?"
	sqlOOBStreamOpen    = "SELECT count(*) FROM oob_stream_conns WHERE target_id = ? AND seen_at >= ?"
	sqlQueueOOBPush     = `INSERT INTO oob_push_queue(target_id, origin, payload, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?)`
	sqlOOBPushQueue = `SELECT id, target_id, payload, created_at FROM oob_push_queue WHERE id > ? AND origin != ?
		AND created_at >= ? ORDER BY id LIMIT ?`
)

func init() {
	writeStmts = append(writeStmts, sqlInsertOOBSession, sqlInsertOOBToken, sqlSetOOBDispatch, sqlRedeemOOBToken,
		sqlOOBTokenByHash, sqlRedeemOOBSession, sqlOOBSessionHandle, sqlUpdateOOBSession, sqlTouchOOBStream, sqlRefreshOOBStream, sqlDropOOBStream, sqlQueueOOBPush)
}

// wexec runs a write statement prepared at [Open] outside a transaction.
func (db *DB) wexec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := db.stmt(ctx, true, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// CreateOOBSession stores a new session and its token in one transaction.
func (db *DB) CreateOOBSession(ctx context.Context, s record.Session, t record.Token) error {
	auths, err := marshalAuths(s.Authenticators)
	if err != nil {
		return err
	}
	return db.InTx(ctx, func(tx *sql.Tx) error {
		st, err := db.txStmt(ctx, tx, sqlInsertOOBSession)
		if err != nil {
			return err
		}
		_, err = st.ExecContext(ctx,
			s.ID, s.Handle, s.Op, s.Status, s.Username, s.UAFStatusCode, s.ASMStatusCode, s.ClientErrorCode, auths,
			s.TokenResult, s.DispatcherName, s.DispatcherResp, s.TargetExtID, s.ResultToken, ms(s.TokenExpiresAt),
			ms(s.CreatedAt), ms(s.UpdatedAt), ms(s.ExpiresAt))
		if isUnique(err) {
			return store.ErrAlreadyExists
		}
		if err != nil {
			return fmt.Errorf("sqlite: insert oob session: %w", err)
		}
		if st, err = db.txStmt(ctx, tx, sqlInsertOOBToken); err != nil {
			return err
		}
		_, err = st.ExecContext(ctx, t.Hash, t.Op, t.SessionID, t.Context, ms(t.ExpiresAt))
		if isUnique(err) {
			return store.ErrAlreadyExists
		}
		if err != nil {
			return fmt.Errorf("sqlite: insert oob token: %w", err)
		}
		return nil
	})
}

// SetOOBDispatch records the dispatcher output of a session (after the token was created).
func (db *DB) SetOOBDispatch(ctx context.Context, id, name, response, targetExtID string) error {
	_, err := db.wexec(ctx, sqlSetOOBDispatch, name, response, targetExtID, ms(db.now()), id)
	if err != nil {
		return fmt.Errorf("sqlite: oob dispatch: %w", err)
	}
	return nil
}

// RedeemOOBToken marks the token with that hash and operation as redeemed at now and moves
// its session to status (status "" leaves the session unchanged), in one transaction, and
// returns the token. Exactly one of any
// number of concurrent calls for one token succeeds. It fails with store.ErrNotFound for an
// unknown token or one of another operation (nothing changes), store.ErrReplay for a token
// redeemed before and record.ErrExpired for an expired one.
func (db *DB) RedeemOOBToken(ctx context.Context, hash []byte, op string, now time.Time, status string) (*record.Token, error) {
	var t record.Token
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		st, err := db.txStmt(ctx, tx, sqlRedeemOOBToken)
		if err != nil {
			return err
		}
		res, err := st.ExecContext(ctx, ms(now), hash, op, ms(now))
		if err != nil {
			return fmt.Errorf("sqlite: redeem: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("sqlite: redeem: %w", err)
		}
		var gotOp string
		var exp int64
		var redeemed sql.NullInt64
		if st, err = db.txStmt(ctx, tx, sqlOOBTokenByHash); err != nil {
			return err
		}
		err = st.QueryRowContext(ctx, hash).Scan(&gotOp, &t.SessionID, &t.Context, &exp, &redeemed)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("sqlite: redeem: %w", err)
		}
		t.Hash, t.Op, t.ExpiresAt = hash, gotOp, fromMS(exp)
		switch {
		case n == 1:
		case gotOp != op:
			return store.ErrNotFound
		case redeemed.Valid:
			return store.ErrReplay
		default:
			return record.ErrExpired
		}
		if status == "" {
			// The session is left as it is (and its change sequence too): the caller
			// records the redemption with the operation's outcome.
			if st, err = db.txStmt(ctx, tx, sqlOOBSessionHandle); err != nil {
				return err
			}
			err = st.QueryRowContext(ctx, t.SessionID).Scan(&t.Handle)
		} else {
			if st, err = db.txStmt(ctx, tx, sqlRedeemOOBSession); err != nil {
				return err
			}
			err = st.QueryRowContext(ctx, status, record.TokenRedeemed, ms(now), t.SessionID).Scan(&t.Handle)
		}
		if err != nil {
			return fmt.Errorf("sqlite: redeem: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// ReleaseOOBToken undoes the redemption of the token with that hash, for a redeem whose
// request could not be built (an HSM or store outage): the token may be redeemed again
// until it expires, and its session, unless it ended meanwhile, is back to tokenCreated.
// It returns the session id ("" when the token is unknown or not redeemed).
func (db *DB) ReleaseOOBToken(ctx context.Context, hash []byte) (string, error) {
	var sid string
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `UPDATE oob_tokens SET redeemed_at = NULL
			WHERE hash = ? AND redeemed_at IS NOT NULL RETURNING session_id`, hash).Scan(&sid)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("sqlite: release token: %w", err)
		}
		_, err = tx.ExecContext(ctx, `UPDATE oob_sessions SET status = ?, token_result = '', updated_at = ?, seq = `+oobNextSeq+`
			WHERE id = ? AND status IN (?, ?, ?)`, record.StatusTokenCreated, ms(db.now()), sid,
			record.StatusTokenCreated, record.StatusClientRegistering, record.StatusClientAuthenticating)
		if err != nil {
			return fmt.Errorf("sqlite: release token: %w", err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return sid, nil
}

// OOBSession returns the session with that id or store.ErrNotFound.
func (db *DB) OOBSession(ctx context.Context, id string) (*record.Session, error) {
	return db.oobSession(ctx, sqlOOBSessionByID, id)
}

// OOBSessionByHandle returns the session with that UAF handle or store.ErrNotFound.
func (db *DB) OOBSessionByHandle(ctx context.Context, handle string) (*record.Session, error) {
	return db.oobSession(ctx, sqlOOBSessionByHandle, handle)
}

func (db *DB) oobSession(ctx context.Context, query, key string) (*record.Session, error) {
	var s record.Session
	var auths string
	var tokExp, created, updated, exp int64
	err := db.queryRow(ctx, query, key).Scan(
		&s.ID, &s.Handle, &s.Op, &s.Status, &s.Username, &s.UAFStatusCode, &s.ASMStatusCode, &s.ClientErrorCode, &auths,
		&s.TokenResult, &s.DispatcherName, &s.DispatcherResp, &s.TargetExtID, &s.ResultToken, &tokExp,
		&created, &updated, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: oob session: %w", err)
	}
	if auths != "" {
		if err := json.Unmarshal([]byte(auths), &s.Authenticators); err != nil {
			return nil, fmt.Errorf("sqlite: oob session authenticators: %w", err)
		}
	}
	s.TokenExpiresAt, s.CreatedAt, s.UpdatedAt, s.ExpiresAt = fromMS(tokExp), fromMS(created), fromMS(updated), fromMS(exp)
	return &s, nil
}

// UpdateOOBSession applies u to the session with that id or handle unless it is already in
// a final state (the first final state wins); it returns the session id when the session
// changed and "" otherwise.
func (db *DB) UpdateOOBSession(ctx context.Context, key string, u record.SessionUpdate) (string, error) {
	auths, err := marshalAuths(u.Authenticators)
	if err != nil {
		return "", err
	}
	st, err := db.stmt(ctx, true, sqlUpdateOOBSession)
	if err != nil {
		return "", err
	}
	var id string
	err = st.QueryRowContext(ctx, u.Status, u.TokenResult, u.TokenResult, u.Username, u.Username, u.UAFStatusCode, u.ASMStatusCode, u.ClientErrorCode, auths, auths,
		u.ResultToken, u.ResultToken, ms(db.now()), key, key).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("sqlite: oob session update: %w", err)
	}
	return id, nil
}

func marshalAuths(a []record.Authenticator) (string, error) {
	if len(a) == 0 {
		return "", nil
	}
	b, err := json.Marshal(a)
	if err != nil {
		return "", fmt.Errorf("sqlite: authenticators: %w", err)
	}
	return string(b), nil
}

// PurgeOOB forgets sessions whose retention ended and tokens that expired before now.
func (db *DB) PurgeOOB(ctx context.Context, now time.Time) (int64, error) {
	var total int64
	// The highest change sequence number is kept before the sessions go, in the same
	// transaction, so that it is never given again (see OOBSessionsChanged).
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE oob_session_seq SET seq = `+oobMaxSeq+` WHERE id = 1`); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM oob_sessions WHERE expires_at < ?", ms(now))
		if err != nil {
			return err
		}
		total, _ = res.RowsAffected()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: oob purge: %w", err)
	}
	for _, q := range []string{"DELETE FROM oob_tokens WHERE expires_at < ?",
		"DELETE FROM oob_push_queue WHERE expires_at < ?", "DELETE FROM oob_stream_conns WHERE seen_at < ? - 600000"} {
		res, err := db.w.ExecContext(ctx, q, ms(now))
		if err != nil {
			return total, fmt.Errorf("sqlite: oob purge: %w", err)
		}
		n, _ := res.RowsAffected()
		total += n
	}
	return total, nil
}

// OOBSessionSeq returns the highest change sequence number given to a session so far: the
// starting point of [DB.OOBSessionsChanged].
func (db *DB) OOBSessionSeq(ctx context.Context) (int64, error) {
	var seq int64
	if err := db.queryRow(ctx, sqlOOBSessionSeq).Scan(&seq); err != nil {
		return 0, fmt.Errorf("sqlite: oob session seq: %w", err)
	}
	return seq, nil
}

// OOBSessionsChanged returns the ids of up to limit sessions created or changed (by any
// process sharing the database) after the change sequence number after, in the order of
// the changes, and the sequence number of the last one (after when none). Every change
// committed after a call has a higher number than the one it returned, so a loop that passes
// the last number back sees each change once; a session that changed several times in
// between appears once. Sessions deleted by PurgeOOB are not reported.
func (db *DB) OOBSessionsChanged(ctx context.Context, after int64, limit int) ([]string, int64, error) {
	st, err := db.stmt(ctx, false, sqlOOBSessionsChanged)
	if err != nil {
		return nil, after, err
	}
	rows, err := st.QueryContext(ctx, after, limit)
	if err != nil {
		return nil, after, fmt.Errorf("sqlite: oob sessions changed: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id, &after); err != nil {
			return nil, after, fmt.Errorf("sqlite: oob sessions changed: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, after, rows.Err()
}

const oobTargetCols = `t.id, t.ext_id, t.user_id, u.username, t.name, t.device_id, t.dispatcher, t.target,
	t.signature_key, t.encryption_key, t.created_at, t.updated_at`

func scanTarget(row interface{ Scan(...any) error }) (*record.Target, error) {
	var t record.Target
	var created, updated int64
	if err := row.Scan(&t.ID, &t.ExtID, &t.UserID, &t.Username, &t.Name, &t.DeviceID, &t.Dispatcher, &t.Target,
		&t.SignatureKey, &t.EncryptionKey, &created, &updated); err != nil {
		return nil, err
	}
	t.CreatedAt, t.UpdatedAt = fromMS(created), fromMS(updated)
	return &t, nil
}

func insertTarget(ctx context.Context, tx *sql.Tx, userID int64, t record.Target, now time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO oob_targets(id, ext_id, user_id, name, device_id, dispatcher, target,
		signature_key, encryption_key, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.ExtID, userID, t.Name, t.DeviceID, t.Dispatcher, t.Target, t.SignatureKey, t.EncryptionKey, ms(now), ms(now))
	if isUnique(err) {
		return fmt.Errorf("%w: %w", store.ErrAlreadyExists, record.ErrNameTaken)
	}
	if err != nil {
		return fmt.Errorf("sqlite: insert dispatch target: %w", err)
	}
	return nil
}

// CreateOOBTarget stores t for the existing user t.Username; it fails with store.ErrNotFound
// for an unknown user and store.ErrAlreadyExists when the user has a target of that name.
func (db *DB) CreateOOBTarget(ctx context.Context, t record.Target) error {
	now := db.now()
	return db.InTx(ctx, func(tx *sql.Tx) error {
		var uid int64
		err := tx.QueryRowContext(ctx, "SELECT id FROM users WHERE username = ?", t.Username).Scan(&uid)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("sqlite: dispatch target user: %w", err)
		}
		return insertTarget(ctx, tx, uid, t, now)
	})
}

// RegisterUAFWithTarget is [DB.RegisterUAF] that also stores the dispatch target t for the
// user, in the same transaction: on any error nothing is stored.
func (db *DB) RegisterUAFWithTarget(ctx context.Context, c store.Consumption, username string, regs []store.UAFRegistration, t record.Target) error {
	now := db.now()
	return db.InTx(ctx, func(tx *sql.Tx) error {
		uid, err := db.registerUAFTx(ctx, tx, c, username, regs, now)
		if err != nil {
			return err
		}
		return insertTarget(ctx, tx, uid, t, now)
	})
}

// OOBTarget returns the dispatch target with that id or store.ErrNotFound.
func (db *DB) OOBTarget(ctx context.Context, id string) (*record.Target, error) {
	t, err := scanTarget(db.queryRow(ctx, sqlOOBTarget, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: dispatch target: %w", err)
	}
	return t, nil
}

// OOBTargets lists the dispatch targets of a user, oldest first.
func (db *DB) OOBTargets(ctx context.Context, username string) ([]record.Target, error) {
	st, err := db.stmt(ctx, false, sqlOOBTargets)
	if err != nil {
		return nil, err
	}
	rows, err := st.QueryContext(ctx, username)
	if err != nil {
		return nil, fmt.Errorf("sqlite: dispatch targets: %w", err)
	}
	defer rows.Close()
	var out []record.Target
	for rows.Next() {
		t, err := scanTarget(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: dispatch targets: %w", err)
		}
		out = append(out, *t)
	}
	return out, rows.Err()
}

// UpdateOOBTarget consumes c (the signed request's id) and applies ch to the target, in one
// transaction. Errors: store.ErrReplay, store.ErrNotFound, store.ErrAlreadyExists (name
// taken); then nothing changes.
func (db *DB) UpdateOOBTarget(ctx context.Context, id string, c store.Consumption, ch record.TargetChange) error {
	return db.InTx(ctx, func(tx *sql.Tx) error {
		if err := db.consume(ctx, tx, c); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE oob_targets SET
			name = COALESCE(?, name), target = COALESCE(?, target), dispatcher = COALESCE(?, dispatcher),
			encryption_key = COALESCE(?, encryption_key), updated_at = ? WHERE id = ?`,
			ch.Name, ch.Target, ch.Dispatcher, ch.EncryptionKey, ms(db.now()), id)
		if isUnique(err) {
			return store.ErrAlreadyExists
		}
		if err != nil {
			return fmt.Errorf("sqlite: update dispatch target: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return store.ErrNotFound
		}
		return nil
	})
}

// DeleteOOBTarget consumes c (when given) and deletes the target, in one transaction.
func (db *DB) DeleteOOBTarget(ctx context.Context, id string, c *store.Consumption) error {
	return db.InTx(ctx, func(tx *sql.Tx) error {
		if c != nil {
			if err := db.consume(ctx, tx, *c); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM oob_targets WHERE id = ?", id)
		if err != nil {
			return fmt.Errorf("sqlite: delete dispatch target: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return store.ErrNotFound
		}
		return nil
	})
}

// ConsumeOOB records a single-use value (store.ErrReplay when it was used).
func (db *DB) ConsumeOOB(ctx context.Context, c store.Consumption) error {
	return db.InTx(ctx, func(tx *sql.Tx) error { return db.consume(ctx, tx, c) })
}

// ClearOOBPushToken empties the target's push address if it is still old (FCM answered
// UNREGISTERED for it).
func (db *DB) ClearOOBPushToken(ctx context.Context, id, old string) error {
	_, err := db.w.ExecContext(ctx, "UPDATE oob_targets SET target = '', updated_at = ? WHERE id = ? AND target = ?",
		ms(db.now()), id, old)
	if err != nil {
		return fmt.Errorf("sqlite: clear push token: %w", err)
	}
	return nil
}

// TouchOOBStream records that the push stream connID of target is open (now).
func (db *DB) TouchOOBStream(ctx context.Context, connID, targetID string, now time.Time) error {
	_, err := db.wexec(ctx, sqlTouchOOBStream, connID, targetID, ms(now))
	if err != nil {
		return fmt.Errorf("sqlite: oob stream: %w", err)
	}
	return nil
}

// DropOOBStream forgets the push stream connID.
func (db *DB) DropOOBStream(ctx context.Context, connID string) error {
	if _, err := db.wexec(ctx, sqlDropOOBStream, connID); err != nil {
		return fmt.Errorf("sqlite: oob stream: %w", err)
	}
	return nil
}

// OOBStreamOpen reports whether some process has a push stream of target seen since since.
func (db *DB) OOBStreamOpen(ctx context.Context, targetID string, since time.Time) (bool, error) {
	var n int
	err := db.queryRow(ctx, sqlOOBStreamOpen, targetID, ms(since)).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("sqlite: oob stream: %w", err)
	}
	return n > 0, nil
}

// QueueOOBPush queues payload for the push streams of target open in other processes.
func (db *DB) QueueOOBPush(ctx context.Context, targetID, origin string, payload []byte, now, expires time.Time) error {
	_, err := db.wexec(ctx, sqlQueueOOBPush, targetID, origin, payload, ms(now), ms(expires))
	if err != nil {
		return fmt.Errorf("sqlite: oob push: %w", err)
	}
	return nil
}

// OOBPushQueue returns, in order, up to limit payloads queued by processes other than
// origin with id > after and created at or after since, for every target, and the last id
// returned (after when none). One query serves all the push streams of a process.
func (db *DB) OOBPushQueue(ctx context.Context, origin string, after int64, since time.Time, limit int) ([]store.OOBPush, int64, error) {
	st, err := db.stmt(ctx, false, sqlOOBPushQueue)
	if err != nil {
		return nil, after, err
	}
	rows, err := st.QueryContext(ctx, after, origin, ms(since), limit)
	if err != nil {
		return nil, after, fmt.Errorf("sqlite: oob push: %w", err)
	}
	defer rows.Close()
	var out []store.OOBPush
	for rows.Next() {
		var p store.OOBPush
		var created int64
		if err := rows.Scan(&after, &p.TargetID, &p.Payload, &created); err != nil {
			return nil, after, fmt.Errorf("sqlite: oob push: %w", err)
		}
		p.CreatedAt = fromMS(created)
		out = append(out, p)
	}
	return out, after, rows.Err()
}

// TouchOOBStreams records, in one transaction, that the push streams conns are still open
// (now). It only refreshes records that exist: a stream dropped since the caller listed
// it stays dropped.
func (db *DB) TouchOOBStreams(ctx context.Context, conns []store.OOBStreamConn, now time.Time) error {
	if len(conns) == 0 {
		return nil
	}
	return db.InTx(ctx, func(tx *sql.Tx) error {
		st, err := db.txStmt(ctx, tx, sqlRefreshOOBStream)
		if err != nil {
			return err
		}
		for _, c := range conns {
			if _, err := st.ExecContext(ctx, ms(now), c.ConnID, c.TargetID); err != nil {
				return fmt.Errorf("sqlite: oob stream: %w", err)
			}
		}
		return nil
	})
}
