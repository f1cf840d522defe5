-- rev counts the writes of an execution row, so a decoded copy of its document can be
-- reused exactly as long as the row has not changed since.

-- +goose Up
ALTER TABLE executions ADD COLUMN rev INTEGER NOT NULL DEFAULT 1;

-- +goose Down
ALTER TABLE executions DROP COLUMN rev;
