CREATE TABLE api_tokens (
    id            TEXT      PRIMARY KEY NOT NULL,
    user_id       TEXT      NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name          TEXT      NOT NULL,
    token_hash    TEXT      NOT NULL UNIQUE,
    created_at    TIMESTAMP NOT NULL,
    expires_at    TIMESTAMP,
    last_used_at  TIMESTAMP,
    UNIQUE (user_id, name)
);
