-- Instance settings an admin changes on the admin page (instance name, open sign-up). A row
-- overrides the config file's value; no row means the config file's value holds.
CREATE TABLE instance_settings (
    -- `name`, `open_signup`.
    key         TEXT      PRIMARY KEY NOT NULL,
    -- The value as JSON (`"Acme"`, `false`).
    value       TEXT      NOT NULL,
    updated_at  TIMESTAMP NOT NULL,
    -- The admin who set it (a user id; NULL once that account is gone).
    updated_by  TEXT      NULL
);
