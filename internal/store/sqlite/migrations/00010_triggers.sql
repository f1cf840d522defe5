-- Trigger leases (package trigger): each single-owner trigger duty (a Git poller, a schedule)
-- has a row saying which server runs it until when, and the state it keeps across restarts
-- and owners (a poller's last seen commit, a schedule's last fire time). A server takes a row
-- that is free or whose lease has ended, and renews it while it runs the duty.

-- +goose Up
CREATE TABLE trigger_leases (
    key         TEXT    NOT NULL PRIMARY KEY, -- "poll:PIPELINE:STAGE.ACTION", "schedule:PIPELINE:INDEX"
    owner       TEXT    NOT NULL,             -- '': released
    lease_until INTEGER NOT NULL,             -- unix nanoseconds
    state       TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- +goose Down
DROP TABLE trigger_leases;
