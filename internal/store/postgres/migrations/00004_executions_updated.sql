-- +goose Up
-- Executions changed since a moment: what the API's live streams read when another server
-- changed them (ExecutionFilter.UpdatedAfter).
CREATE INDEX executions_updated ON executions (updated_at);

-- +goose Down
DROP INDEX executions_updated;
