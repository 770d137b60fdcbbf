-- A session that passed the password but still owes a second factor.
ALTER TABLE sessions ADD COLUMN pending_second_factor BOOLEAN NOT NULL DEFAULT 0;

CREATE TABLE totp (
    user_id     TEXT      PRIMARY KEY NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- Base32 secret: the server must compute codes, so it cannot be stored hashed.
    secret      TEXT      NOT NULL,
    enabled     BOOLEAN   NOT NULL DEFAULT 0,
    -- The last accepted time step; a code of this step or earlier is refused (no replay).
    last_step   BIGINT    NOT NULL DEFAULT 0,
    created_at  TIMESTAMP NOT NULL
);

CREATE TABLE recovery_codes (
    id          TEXT      PRIMARY KEY NOT NULL,
    user_id     TEXT      NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash   TEXT      NOT NULL UNIQUE,
    used_at     TIMESTAMP
);
CREATE INDEX recovery_codes_user ON recovery_codes(user_id);
