-- Named locks (`lock:` on a stage or an action) are global, shared by every pipeline: one row
-- per name, holder and FIFO of waiters in the document. The index serves CountExecutions,
-- asked on every start of a pipeline with maxConcurrency.

-- +goose Up
CREATE TABLE named_locks (
    name TEXT NOT NULL PRIMARY KEY,
    doc  TEXT NOT NULL
) STRICT;
CREATE INDEX executions_pipeline_status ON executions (pipeline, status);

-- +goose Down
DROP INDEX executions_pipeline_status;
DROP TABLE named_locks;
