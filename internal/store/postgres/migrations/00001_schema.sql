-- Conveyor's PostgreSQL schema: the SQLite store's ten migrations (store/sqlite/migrations)
-- as one, in PostgreSQL types. Times are BIGINT unix nanoseconds (UTC), 0 for "not set"
-- (NULL where the SQLite schema has NULL), so comparisons are exact and indexable, and both
-- stores read and write the same values. Documents are encoding/json text kept as TEXT, byte
-- for byte: JSONB would refuse the escape \u0000 that a job's output may hold, and only two
-- queries look inside a document (they cast it to json). Text compares bytewise (COLLATE
-- "C"), as in SQLite, whatever the database's locale: listings sort the same in both stores
-- and prefix ranges (AuditEntries' target) go through the indexes.

-- +goose Up
CREATE TABLE pipeline_versions (
    name       TEXT COLLATE "C"   NOT NULL,
    version    BIGINT NOT NULL,
    definition BYTEA  NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);

-- ord is the order of creation, the tie-break of listings across pipelines (SQLite's rowid).
-- rev counts the writes of a row.
CREATE TABLE executions (
    id         TEXT COLLATE "C"   NOT NULL PRIMARY KEY,
    ord        BIGINT GENERATED ALWAYS AS IDENTITY,
    pipeline   TEXT COLLATE "C"   NOT NULL,
    seq        BIGINT NOT NULL,
    status     TEXT COLLATE "C"   NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    rev        BIGINT NOT NULL DEFAULT 1,
    doc        TEXT COLLATE "C"   NOT NULL,
    UNIQUE (pipeline, seq)
);
-- History pages of one pipeline, newest first, and MAX(seq) for the next execution: served by
-- the unique index above. Executions in a status, newest first; history across pipelines;
-- CountExecutions of a capped pipeline.
CREATE INDEX executions_status ON executions (status, created_at);
CREATE INDEX executions_created ON executions (created_at DESC, ord DESC);
CREATE INDEX executions_pipeline_status ON executions (pipeline, status);

-- The actions of an execution, a row each, so a step writes the actions it changed.
CREATE TABLE execution_actions (
    execution_id TEXT COLLATE "C"    NOT NULL,
    stage        INTEGER NOT NULL, -- index of the stage in the execution
    idx          INTEGER NOT NULL, -- index of the action in the stage
    doc          TEXT COLLATE "C"    NOT NULL,
    PRIMARY KEY (execution_id, stage, idx)
);

CREATE TABLE stage_locks (
    pipeline TEXT COLLATE "C" NOT NULL,
    stage    TEXT COLLATE "C" NOT NULL,
    doc      TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (pipeline, stage)
);

-- Named locks are global, shared by every pipeline: one row per name.
CREATE TABLE named_locks (
    name TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    doc  TEXT COLLATE "C" NOT NULL
);

-- An identity never hands out a seq twice, even after the newest row is deleted.
CREATE TABLE inbox (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key          TEXT COLLATE "C"   NOT NULL UNIQUE,
    execution_id TEXT COLLATE "C"   NOT NULL,
    doc          TEXT COLLATE "C"   NOT NULL,
    created_at   BIGINT NOT NULL,
    processed_at BIGINT
);
-- Pending events in order; processed rows (kept for deduplication) stay out of it.
CREATE INDEX inbox_pending ON inbox (seq) WHERE processed_at IS NULL;

CREATE TABLE jobs (
    id           TEXT COLLATE "C"    NOT NULL PRIMARY KEY,
    execution_id TEXT COLLATE "C"    NOT NULL,
    pipeline     TEXT COLLATE "C"    NOT NULL,
    provider     TEXT COLLATE "C"    NOT NULL,
    spec         TEXT COLLATE "C"    NOT NULL,
    state        TEXT COLLATE "C"    NOT NULL,
    worker       TEXT COLLATE "C"    NOT NULL DEFAULT '',
    epoch        BIGINT  NOT NULL DEFAULT 0,
    lease_until  BIGINT  NOT NULL DEFAULT 0,
    pgid         INTEGER NOT NULL DEFAULT 0,
    pstart       BIGINT  NOT NULL DEFAULT 0, -- uint64 stored bit for bit
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL
);
-- LeaseJob: the oldest queued job of some providers, or of any provider (partial indexes:
-- the queue is small, the table is not). ExpiredJobs: the sweep of leases that ended.
CREATE INDEX jobs_queue ON jobs (provider, created_at, id) WHERE state = 'queued';
CREATE INDEX jobs_fifo ON jobs (created_at, id) WHERE state = 'queued';
CREATE INDEX jobs_lease ON jobs (lease_until) WHERE state = 'leased';
CREATE INDEX jobs_all ON jobs (state, created_at, id);
CREATE INDEX jobs_pipeline ON jobs (pipeline);

-- execution_id is the timer event's, beside the document, for DeletePipeline.
CREATE TABLE timers (
    id           TEXT COLLATE "C"   NOT NULL PRIMARY KEY,
    due          BIGINT NOT NULL,
    execution_id TEXT COLLATE "C"   NOT NULL,
    doc          TEXT COLLATE "C"   NOT NULL
);
CREATE INDEX timers_due ON timers (due, id);
CREATE INDEX timers_execution ON timers (execution_id);

CREATE TABLE outbox (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key        TEXT COLLATE "C"   NOT NULL,
    kind       TEXT COLLATE "C"   NOT NULL,
    payload    BYTEA,
    created_at BIGINT NOT NULL
);

-- Job logs: each job's output as chunks appended in order.
CREATE TABLE logs (
    job_id     TEXT COLLATE "C"   NOT NULL,
    seq        BIGINT NOT NULL,
    data       BYTEA  NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (job_id, seq)
);

-- The audit log (package audit). audit_head is the chain's tail: one row that every append
-- reads with SELECT ... FOR UPDATE and updates, so appenders serialize on it. details is TEXT:
-- the hash covers its bytes, which must come back exactly as written.
CREATE TABLE audit_entries (
    seq        BIGINT NOT NULL PRIMARY KEY,
    created_at BIGINT NOT NULL,
    actor      TEXT COLLATE "C"   NOT NULL,
    source     TEXT COLLATE "C"   NOT NULL,
    action     TEXT COLLATE "C"   NOT NULL,
    target     TEXT COLLATE "C"   NOT NULL,
    outcome    TEXT COLLATE "C"   NOT NULL,
    details    TEXT COLLATE "C"   NOT NULL,
    prev_hash  BYTEA  NOT NULL,
    hash       BYTEA  NOT NULL
);
CREATE INDEX audit_entries_actor ON audit_entries (actor, seq);
CREATE INDEX audit_entries_target ON audit_entries (target, seq);
CREATE INDEX audit_entries_created_at ON audit_entries (created_at);

CREATE TABLE audit_checkpoints (
    seq        BIGINT NOT NULL PRIMARY KEY,
    hash       BYTEA  NOT NULL,
    created_at BIGINT NOT NULL,
    signature  BYTEA  NOT NULL
);

CREATE TABLE audit_head (
    id   INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    seq  BIGINT  NOT NULL,
    hash BYTEA   NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '\x');

-- Users, groups, tokens and grants. Only tokens' SHA-256 is kept, looked up through the unique
-- index; passwords are argon2id hashes (PHC strings). The user "admin", the bootstrap's,
-- always exists with the global admin role.
CREATE TABLE users (
    name          TEXT COLLATE "C"   NOT NULL PRIMARY KEY,
    password_hash TEXT COLLATE "C"   NOT NULL DEFAULT '', -- '': no password, tokens only
    created_at    BIGINT NOT NULL
);

CREATE TABLE group_members (
    group_name TEXT COLLATE "C" NOT NULL,
    user_name  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (group_name, user_name)
);
CREATE INDEX group_members_user ON group_members (user_name);

CREATE TABLE grants (
    subject_kind TEXT COLLATE "C"   NOT NULL CHECK (subject_kind IN ('user', 'group')),
    subject      TEXT COLLATE "C"   NOT NULL,
    role         TEXT COLLATE "C"   NOT NULL,
    pipeline     TEXT COLLATE "C"   NOT NULL DEFAULT '', -- '': every pipeline
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (subject_kind, subject, pipeline, role)
);

CREATE TABLE tokens (
    id           TEXT COLLATE "C"   NOT NULL PRIMARY KEY,
    user_name    TEXT COLLATE "C"   NOT NULL,
    hash         BYTEA  NOT NULL UNIQUE,
    scope        TEXT COLLATE "C"   NOT NULL CHECK (scope IN ('api', 'worker')),
    description  TEXT COLLATE "C"   NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT, -- NULL: never
    revoked_at   BIGINT, -- NULL: not revoked
    last_used_at BIGINT  -- NULL: never used
);
CREATE INDEX tokens_user ON tokens (user_name, created_at);

INSERT INTO users (name, created_at) VALUES ('admin', 0);
INSERT INTO grants (subject_kind, subject, role, pipeline, created_at) VALUES ('user', 'admin', 'admin', '', 0);

-- Secrets (package vault), kept only sealed; scope is a pipeline name or '' for global.
CREATE TABLE secrets (
    scope      TEXT COLLATE "C"   NOT NULL,
    name       TEXT COLLATE "C"   NOT NULL,
    sealed     BYTEA  NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT COLLATE "C"   NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT COLLATE "C"   NOT NULL,
    PRIMARY KEY (scope, name)
);

-- Trigger leases (package trigger): which server runs a single-owner duty until when.
CREATE TABLE trigger_leases (
    key         TEXT COLLATE "C"   NOT NULL PRIMARY KEY,
    owner       TEXT COLLATE "C"   NOT NULL, -- '': released
    lease_until BIGINT NOT NULL,
    state       TEXT COLLATE "C"   NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- +goose Down
DROP TABLE trigger_leases;
DROP TABLE secrets;
DROP TABLE tokens;
DROP TABLE grants;
DROP TABLE group_members;
DROP TABLE users;
DROP TABLE audit_head;
DROP TABLE audit_checkpoints;
DROP TABLE audit_entries;
DROP TABLE logs;
DROP TABLE outbox;
DROP TABLE timers;
DROP TABLE jobs;
DROP TABLE inbox;
DROP TABLE named_locks;
DROP TABLE stage_locks;
DROP TABLE execution_actions;
DROP TABLE executions;
DROP TABLE pipeline_versions;
