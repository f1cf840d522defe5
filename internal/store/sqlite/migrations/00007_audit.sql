-- The audit log (package audit): a hash chain of entries, each sealed with an HMAC whose key
-- is kept outside the database, and signed checkpoints from which the chain is verified once
-- retention has pruned the entries before them. audit_head is the chain's tail (seq and hash
-- of the newest entry ever appended): one row, which every append reads and updates, so that
-- appenders serialize on it (PostgreSQL: SELECT ... FOR UPDATE) and pruning never loses it.
-- details is TEXT: the hash covers its bytes, which must come back exactly as written.

-- +goose Up
CREATE TABLE audit_entries (
    seq        INTEGER NOT NULL PRIMARY KEY,
    created_at INTEGER NOT NULL,
    actor      TEXT    NOT NULL,
    source     TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    target     TEXT    NOT NULL,
    outcome    TEXT    NOT NULL,
    details    TEXT    NOT NULL,
    prev_hash  BLOB    NOT NULL,
    hash       BLOB    NOT NULL
) STRICT;
CREATE INDEX audit_entries_actor ON audit_entries (actor, seq);
CREATE INDEX audit_entries_target ON audit_entries (target, seq);
CREATE INDEX audit_entries_created_at ON audit_entries (created_at);

CREATE TABLE audit_checkpoints (
    seq        INTEGER NOT NULL PRIMARY KEY,
    hash       BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    signature  BLOB    NOT NULL
) STRICT;

CREATE TABLE audit_head (
    id   INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash BLOB    NOT NULL
) STRICT;
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, X'');

-- +goose Down
DROP TABLE audit_head;
DROP TABLE audit_checkpoints;
DROP TABLE audit_entries;
