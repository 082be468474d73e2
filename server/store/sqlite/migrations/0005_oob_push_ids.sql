-- A process's push poller reads the queue from the last id it saw (id > n) for as long as it
-- has streams open, so an id must never be given again. A plain INTEGER PRIMARY KEY reuses
-- ids once the purge has deleted the highest rows (an emptied queue starts again at 1);
-- AUTOINCREMENT does not. The poller reads by id alone: the per-target index goes.
CREATE TABLE oob_push_queue_v2 (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    target_id  TEXT    NOT NULL,
    origin     TEXT    NOT NULL,  -- process that queued it (it delivers locally itself)
    payload    BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
-- The ids of rows purged before this migration are unknown, and a process still running the
-- previous version may be reading from one of them: new ids start far above any of them
-- (the current Unix time in milliseconds).
INSERT INTO sqlite_sequence(name, seq) VALUES ('oob_push_queue_v2', CAST(strftime('%s', 'now') AS INTEGER) * 1000);
INSERT INTO oob_push_queue_v2(id, target_id, origin, payload, created_at, expires_at)
    SELECT id, target_id, origin, payload, created_at, expires_at FROM oob_push_queue;
DROP TABLE oob_push_queue;
ALTER TABLE oob_push_queue_v2 RENAME TO oob_push_queue;
