-- Users, groups, tokens and grants. Tokens belong to users and have an ID, a scope, an expiry
-- and a revocation; only their SHA-256 is kept, looked up through the unique index. Passwords
-- are argon2id hashes in the PHC string format. Roles are granted to users or groups, on one
-- pipeline or on all ('' in grants.pipeline).
--
-- The tokens of api_tokens move to tokens, each under an ID equal to its name and owned by a
-- user of that name with the global admin role, so every token keeps the access it had. The
-- user "admin", the bootstrap's, always exists with the global admin role.

-- +goose Up
CREATE TABLE users (
    name          TEXT    NOT NULL PRIMARY KEY,
    password_hash TEXT    NOT NULL DEFAULT '', -- '': no password, tokens only
    created_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE group_members (
    group_name TEXT NOT NULL,
    user_name  TEXT NOT NULL,
    PRIMARY KEY (group_name, user_name)
) STRICT, WITHOUT ROWID;

CREATE INDEX group_members_user ON group_members (user_name);

CREATE TABLE grants (
    subject_kind TEXT    NOT NULL CHECK (subject_kind IN ('user', 'group')),
    subject      TEXT    NOT NULL,
    role         TEXT    NOT NULL,
    pipeline     TEXT    NOT NULL DEFAULT '', -- '': every pipeline
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (subject_kind, subject, pipeline, role)
) STRICT, WITHOUT ROWID;

CREATE TABLE tokens (
    id           TEXT    NOT NULL PRIMARY KEY,
    user_name    TEXT    NOT NULL,
    hash         BLOB    NOT NULL UNIQUE,
    scope        TEXT    NOT NULL CHECK (scope IN ('api', 'worker')),
    description  TEXT    NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER, -- NULL: never
    revoked_at   INTEGER, -- NULL: not revoked
    last_used_at INTEGER  -- NULL: never used
) STRICT;

CREATE INDEX tokens_user ON tokens (user_name, created_at);

INSERT INTO users (name, created_at)
SELECT name, created_at FROM api_tokens
UNION ALL
SELECT 'admin', 0 WHERE NOT EXISTS (SELECT 1 FROM api_tokens WHERE name = 'admin');

INSERT INTO grants (subject_kind, subject, role, pipeline, created_at)
SELECT 'user', name, 'admin', '', created_at FROM users;

INSERT INTO tokens (id, user_name, hash, scope, created_at)
SELECT name, name, hash, 'api', created_at FROM api_tokens;

DROP TABLE api_tokens;

-- +goose Down
CREATE TABLE api_tokens (
    name       TEXT    NOT NULL PRIMARY KEY,
    hash       BLOB    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
) STRICT;

-- Before roles, every token could do everything: only global admins' tokens go back.
INSERT INTO api_tokens (name, hash, created_at)
SELECT id, hash, created_at FROM tokens AS t
WHERE scope = 'api' AND revoked_at IS NULL AND EXISTS (SELECT 1 FROM grants AS g
    WHERE g.subject_kind = 'user' AND g.subject = t.user_name AND g.role = 'admin' AND g.pipeline = '');

DROP TABLE tokens;
DROP TABLE grants;
DROP TABLE group_members;
DROP TABLE users;
