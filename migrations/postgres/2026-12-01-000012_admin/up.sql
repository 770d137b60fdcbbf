-- An instance admin can disable an account: it cannot sign in, and its sessions and tokens
-- stop working, until it is enabled again.
ALTER TABLE users ADD COLUMN disabled_at TIMESTAMP NULL;

-- Security events (sign-ins, failed sign-ins, tokens, role changes, admin actions), newest
-- read first. Never a secret: no passwords, codes or tokens, and a failed sign-in names an
-- account only when the login matched one.
CREATE TABLE audit_events (
    id          TEXT      PRIMARY KEY NOT NULL,
    at          TIMESTAMP NOT NULL,
    -- `sign_in`, `sign_in_failed`, `second_factor_failed`, `token_created`, `role_changed`,
    -- `admin.user_disabled`, ...
    kind        TEXT      NOT NULL,
    -- Who acted (NULL: nobody signed in).
    actor_id    TEXT      NULL,
    -- Whom or what it was about (a user id, an organization id).
    target      TEXT      NULL,
    ip          TEXT      NOT NULL,
    -- A sentence for people.
    detail      TEXT      NOT NULL
);
CREATE INDEX audit_events_at ON audit_events (at);
