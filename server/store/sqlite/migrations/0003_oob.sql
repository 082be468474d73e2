-- Out-of-band tokens, sessions (Status Service) and dispatch targets. Times are Unix
-- milliseconds, UTC. Tokens are stored as their SHA-256 only.
CREATE TABLE oob_sessions (
    id                TEXT    PRIMARY KEY,      -- the relying party's handle (Status Service)
    uaf_handle        TEXT    NOT NULL UNIQUE,  -- the device's handle (in the UAF request's serverData)
    op                TEXT    NOT NULL,
    status            TEXT    NOT NULL,
    username          TEXT    NOT NULL DEFAULT '',
    uaf_status        INTEGER NOT NULL DEFAULT 0,
    asm_status        INTEGER NOT NULL DEFAULT 0,
    client_error      INTEGER NOT NULL DEFAULT 0,
    authenticators    TEXT    NOT NULL DEFAULT '',  -- JSON array
    token_result      TEXT    NOT NULL DEFAULT '',
    dispatcher_name   TEXT    NOT NULL DEFAULT '',
    dispatcher_resp   TEXT    NOT NULL DEFAULT '',
    target_ext_id     TEXT    NOT NULL DEFAULT '',
    result_token      TEXT    NOT NULL DEFAULT '',
    token_expires_at  INTEGER NOT NULL,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX oob_sessions_expiry ON oob_sessions(expires_at);

CREATE TABLE oob_tokens (
    hash        BLOB    PRIMARY KEY,            -- SHA-256 of the token
    op          TEXT    NOT NULL,
    session_id  TEXT    NOT NULL,
    context     TEXT    NOT NULL,
    expires_at  INTEGER NOT NULL,
    redeemed_at INTEGER                         -- NULL until redeemed (single use)
) WITHOUT ROWID;
CREATE INDEX oob_tokens_expiry ON oob_tokens(expires_at);

CREATE TABLE oob_targets (
    id             TEXT    PRIMARY KEY,
    ext_id         TEXT    NOT NULL UNIQUE,
    user_id        INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name           TEXT    NOT NULL,
    device_id      TEXT    NOT NULL DEFAULT '',
    dispatcher     TEXT    NOT NULL,
    target         TEXT    NOT NULL DEFAULT '',
    signature_key  TEXT    NOT NULL,
    encryption_key TEXT    NOT NULL DEFAULT '',
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    UNIQUE (user_id, name)
) WITHOUT ROWID;
CREATE INDEX oob_targets_user ON oob_targets(user_id);

-- Push streams (hwfido-stream) open in some server process, refreshed while open, and the
-- payloads queued for them by other processes.
CREATE TABLE oob_stream_conns (
    conn_id   TEXT    PRIMARY KEY,
    target_id TEXT    NOT NULL,
    seen_at   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX oob_stream_conns_target ON oob_stream_conns(target_id, seen_at);

CREATE TABLE oob_push_queue (
    id         INTEGER PRIMARY KEY,
    target_id  TEXT    NOT NULL,
    origin     TEXT    NOT NULL,  -- process that queued it (it delivers locally itself)
    payload    BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX oob_push_queue_target ON oob_push_queue(target_id, id);
