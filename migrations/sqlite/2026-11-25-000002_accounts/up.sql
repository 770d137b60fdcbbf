CREATE TABLE users (
    id              TEXT      PRIMARY KEY NOT NULL,
    username        TEXT      NOT NULL,
    username_lower  TEXT      NOT NULL UNIQUE,
    email           TEXT      NOT NULL,
    email_lower     TEXT      NOT NULL UNIQUE,
    display_name    TEXT      NOT NULL,
    password_hash   TEXT,
    is_admin        BOOLEAN   NOT NULL DEFAULT 0,
    created_at      TIMESTAMP NOT NULL
);

CREATE TABLE sessions (
    id            TEXT      PRIMARY KEY NOT NULL,
    token_hash    TEXT      NOT NULL UNIQUE,
    user_id       TEXT      NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at    TIMESTAMP NOT NULL,
    last_seen_at  TIMESTAMP NOT NULL,
    expires_at    TIMESTAMP NOT NULL,
    user_agent    TEXT      NOT NULL,
    ip            TEXT      NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);
