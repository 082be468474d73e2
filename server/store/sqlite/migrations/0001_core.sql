-- Users, UAF registrations, single-use consumption records, security events.
CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    username    TEXT    NOT NULL UNIQUE,
    handle      BLOB    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL            -- Unix milliseconds, UTC
);

CREATE TABLE uaf_registrations (
    id                    INTEGER PRIMARY KEY,
    user_id               INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    aaid                  TEXT    NOT NULL,
    aaid_norm             TEXT    NOT NULL,  -- lower-case AAID for lookups
    key_id                TEXT    NOT NULL,  -- base64url
    public_key            BLOB    NOT NULL,
    public_key_encoding   INTEGER NOT NULL,
    signature_algorithm   INTEGER NOT NULL,
    authenticator_version INTEGER NOT NULL,
    sign_counter          INTEGER NOT NULL,
    reg_counter           INTEGER NOT NULL,
    attestation_type      INTEGER NOT NULL,
    attestation_cert      BLOB,
    tc_display_png        BLOB,
    device_id             TEXT    NOT NULL DEFAULT '',
    created_at            INTEGER NOT NULL,
    last_used_at          INTEGER NOT NULL,
    UNIQUE (aaid_norm, key_id)
);
CREATE INDEX uaf_registrations_user ON uaf_registrations(user_id);

-- A row per used single-use value (serverData nonce); kept until the value expires.
CREATE TABLE consumed (
    nonce      BLOB    PRIMARY KEY,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX consumed_expiry ON consumed(expires_at);

CREATE TABLE security_events (
    id       INTEGER PRIMARY KEY,
    kind     TEXT    NOT NULL,
    username TEXT    NOT NULL,
    aaid     TEXT    NOT NULL,
    key_id   TEXT    NOT NULL,
    detail   TEXT    NOT NULL,
    at       INTEGER NOT NULL
);
