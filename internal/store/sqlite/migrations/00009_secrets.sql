-- Secrets (package vault): each value is kept only sealed with the server's master keys
-- (keyring.Seal, with the scope and the name as associated data), never in the clear. scope
-- is the name of the pipeline the secret belongs to, or '' for a global secret that every
-- pipeline listing it may use; a pipeline's own secret wins over a global one of the same
-- name. Who set a secret and when is kept for listings; the value never leaves the server
-- but to the jobs that take it.

-- +goose Up
CREATE TABLE secrets (
    scope      TEXT    NOT NULL, -- pipeline name; '': global
    name       TEXT    NOT NULL,
    sealed     BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT    NOT NULL,
    PRIMARY KEY (scope, name)
) STRICT, WITHOUT ROWID;

-- +goose Down
DROP TABLE secrets;
