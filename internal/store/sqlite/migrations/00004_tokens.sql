-- API tokens: only the SHA-256 of each token is kept; a request's token is hashed and looked
-- up through the unique index.

-- +goose Up
CREATE TABLE api_tokens (
    name       TEXT    NOT NULL PRIMARY KEY,
    hash       BLOB    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
) STRICT;

-- +goose Down
DROP TABLE api_tokens;
