-- +goose Up
-- The workers registry: each worker process that leases jobs, as it last said it was, and
-- when the database's clock last saw it (unix nanoseconds).
CREATE TABLE workers (
    name      TEXT PRIMARY KEY,
    labels    TEXT[] NOT NULL DEFAULT '{}',
    providers TEXT[] NOT NULL DEFAULT '{}',
    version   TEXT NOT NULL DEFAULT '',
    slots     INTEGER NOT NULL DEFAULT 0,
    last_seen BIGINT NOT NULL
);
CREATE INDEX workers_seen ON workers (last_seen);

-- +goose Down
DROP TABLE workers;
