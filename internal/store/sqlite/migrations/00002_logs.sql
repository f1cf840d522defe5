-- Job logs: each job's output as chunks appended in order (at least every second or 64 KiB
-- while it runs, and the last one with its result), so any reader can follow a live tail
-- by (job, seq).

-- +goose Up
CREATE TABLE logs (
    job_id     TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    data       BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (job_id, seq)
) STRICT, WITHOUT ROWID;

-- +goose Down
DROP TABLE logs;
