-- Change sequence of out-of-band sessions, so that one query per process and poll interval
-- finds the sessions other processes changed (status streams), instead of one read per
-- watcher. Every insert or update of a session sets seq to one more than the highest seq
-- ever given; writers are serialised by SQLite, so seq grows in commit order and a reader
-- that has seen every seq up to n finds all later changes with seq > n.
ALTER TABLE oob_sessions ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX oob_sessions_seq ON oob_sessions(seq);

-- The highest seq of the sessions purged so far: a purge may delete the session holding
-- the highest seq, which must not be given again.
CREATE TABLE oob_session_seq (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);
INSERT INTO oob_session_seq(id, seq) VALUES (1, 0);
