-- +goose Up
-- The labels a worker must offer to lease a job (the action's runOn); empty for the usual
-- job, which any worker may take.
ALTER TABLE jobs ADD COLUMN run_on TEXT[] NOT NULL DEFAULT '{}';

-- +goose Down
ALTER TABLE jobs DROP COLUMN run_on;
