-- +goose Up
-- The workers registry: each worker process that leases jobs, as it last said it was (labels
-- and providers as JSON arrays), and when the store's clock last saw it (unix nanoseconds).
CREATE TABLE workers (
    name      TEXT PRIMARY KEY,
    labels    TEXT NOT NULL DEFAULT '[]',
    providers TEXT NOT NULL DEFAULT '[]',
    version   TEXT NOT NULL DEFAULT '',
    slots     INTEGER NOT NULL DEFAULT 0,
    last_seen INTEGER NOT NULL
) STRICT;
CREATE INDEX workers_seen ON workers (last_seen);

-- +goose Down
DROP TABLE workers;
