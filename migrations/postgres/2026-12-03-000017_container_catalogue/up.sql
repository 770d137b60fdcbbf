-- An organization's own catalogue entries, listed beside the built-in ones when a member
-- makes a container: an image, the web services it offers, the command that starts its
-- app (the agent runs and supervises it) and a shell step the `docker run` line runs
-- before it fetches the agent. Kept by those with `org:containers:manage`.
CREATE TABLE container_images (
    org_id          TEXT      NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    -- What events name it by (`image`); never a built-in entry's key.
    slug            TEXT      NOT NULL,
    title           TEXT      NOT NULL,
    description     TEXT      NOT NULL,
    image_ref       TEXT      NOT NULL,
    -- JSON: [{"name": "web", "port": 8080, "terminal": false}, ...]
    services        TEXT      NOT NULL,
    command         TEXT      NULL,
    prepare         TEXT      NULL,
    created_by      TEXT      NULL,
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL,
    PRIMARY KEY (org_id, slug)
);

-- The command that starts a custom image's app, copied from the project document with the
-- image at the first enrollment token; the agent runs it.
ALTER TABLE containers ADD COLUMN command TEXT NULL;
