-- Custom action types (internal/api, action_types.go): action providers that Conveyor does
-- not run itself, whose jobs custom workers poll for (CodePipeline's custom actions), with
-- the configuration properties their actions take (a JSON array, kept as TEXT). And the
-- acknowledgements of their jobs: a worker that leased one acknowledges it under the lease's
-- epoch; a lease left unacknowledged goes back to the queue.

-- +goose Up
CREATE TABLE action_types (
    category    TEXT COLLATE "C" NOT NULL,
    provider    TEXT COLLATE "C" NOT NULL,
    version     TEXT    NOT NULL,
    description TEXT    NOT NULL,
    properties  TEXT    NOT NULL, -- JSON array of {name, required, secret, description}
    created_at  BIGINT  NOT NULL,
    created_by  TEXT    NOT NULL,
    updated_at  BIGINT  NOT NULL,
    updated_by  TEXT    NOT NULL,
    PRIMARY KEY (category, provider)
);

CREATE TABLE job_acks (
    job_id   TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    epoch    BIGINT NOT NULL,
    acked_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE job_acks;
DROP TABLE action_types;
