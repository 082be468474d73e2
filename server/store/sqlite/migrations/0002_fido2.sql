-- FIDO2 / WebAuthn credentials and ceremony sessions. Users come from 0001 (one user may
-- hold UAF registrations and FIDO2 credentials). Times are Unix milliseconds, UTC.
CREATE TABLE fido2_credentials (
    id                 INTEGER PRIMARY KEY,
    user_id            INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    rp_id              TEXT    NOT NULL,
    credential_id      BLOB    NOT NULL,
    public_key         BLOB    NOT NULL,
    aaguid             BLOB    NOT NULL,
    sign_count         INTEGER NOT NULL,
    flags              INTEGER NOT NULL,  -- authenticator data flag bits UP|UV|BE|BS
    attestation_format TEXT    NOT NULL,
    attestation_type   TEXT    NOT NULL,
    trust              TEXT    NOT NULL,
    transports         TEXT    NOT NULL,  -- comma separated
    discoverable       INTEGER NOT NULL,
    name               TEXT    NOT NULL DEFAULT '',
    record             BLOB    NOT NULL,  -- opaque, written by server/fido2
    created_at         INTEGER NOT NULL,
    last_used_at       INTEGER NOT NULL,
    UNIQUE (rp_id, credential_id)
);
CREATE INDEX fido2_credentials_user ON fido2_credentials(user_id);

CREATE TABLE fido2_sessions (
    id            TEXT    PRIMARY KEY,
    ceremony      TEXT    NOT NULL,
    challenge     BLOB    NOT NULL UNIQUE,
    user_id       INTEGER NOT NULL DEFAULT 0,  -- 0 = not yet known (discoverable login)
    username      TEXT    NOT NULL DEFAULT '',
    data          BLOB    NOT NULL,
    status        TEXT    NOT NULL,
    error_message TEXT    NOT NULL DEFAULT '',
    credential_id BLOB,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX fido2_sessions_expiry ON fido2_sessions(expires_at);
