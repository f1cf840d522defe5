-- Conveyor's SQLite schema. Times are INTEGER unix nanoseconds (UTC), 0 for "not set", so that
-- comparisons are exact and indexable; documents are JSON text (encoding/json).
-- Tables are STRICT: a value of the wrong type is an error, not a silent conversion.

-- +goose Up
CREATE TABLE pipeline_versions (
    name       TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    definition BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (name, version)
) STRICT;

CREATE TABLE executions (
    id         TEXT    NOT NULL PRIMARY KEY,
    pipeline   TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    status     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    doc        TEXT    NOT NULL,
    UNIQUE (pipeline, seq)
) STRICT;
-- History pages of one pipeline, newest first; MAX(seq) for the next execution.
CREATE INDEX executions_pipeline_seq ON executions (pipeline, seq DESC);
-- Executions in a status, newest first (the engine reloads InProgress ones at start; the API
-- lists recent failures).
CREATE INDEX executions_status ON executions (status, created_at);
-- History across pipelines, newest first.
CREATE INDEX executions_created ON executions (created_at DESC);

CREATE TABLE stage_locks (
    pipeline TEXT NOT NULL,
    stage    TEXT NOT NULL,
    doc      TEXT NOT NULL,
    PRIMARY KEY (pipeline, stage)
) STRICT;

-- AUTOINCREMENT: a seq is never reused, even after the newest row is deleted by retention.
CREATE TABLE inbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    key          TEXT    NOT NULL UNIQUE,
    execution_id TEXT    NOT NULL,
    doc          TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    processed_at INTEGER
) STRICT;
-- Pending events in order; processed rows (kept for deduplication) stay out of it.
CREATE INDEX inbox_pending ON inbox (seq) WHERE processed_at IS NULL;

CREATE TABLE jobs (
    id           TEXT    NOT NULL PRIMARY KEY,
    execution_id TEXT    NOT NULL,
    pipeline     TEXT    NOT NULL,
    provider     TEXT    NOT NULL,
    spec         TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    worker       TEXT    NOT NULL DEFAULT '',
    epoch        INTEGER NOT NULL DEFAULT 0,
    lease_until  INTEGER NOT NULL DEFAULT 0,
    pgid         INTEGER NOT NULL DEFAULT 0,
    pstart       INTEGER NOT NULL DEFAULT 0, -- uint64 stored bit for bit
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;
-- LeaseJob: the oldest queued job of some providers, or of any provider.
CREATE INDEX jobs_queue ON jobs (state, provider, created_at, id);
CREATE INDEX jobs_fifo ON jobs (state, created_at, id);
-- ExpiredJobs: the sweep of leases that ended.
CREATE INDEX jobs_lease ON jobs (state, lease_until);

CREATE TABLE timers (
    id  TEXT    NOT NULL PRIMARY KEY,
    due INTEGER NOT NULL,
    doc TEXT    NOT NULL
) STRICT;
CREATE INDEX timers_due ON timers (due);

CREATE TABLE outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    key        TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    payload    BLOB,
    created_at INTEGER NOT NULL
) STRICT;

-- +goose Down
DROP TABLE outbox;
DROP TABLE timers;
DROP TABLE jobs;
DROP TABLE inbox;
DROP TABLE stage_locks;
DROP TABLE executions;
DROP TABLE pipeline_versions;
