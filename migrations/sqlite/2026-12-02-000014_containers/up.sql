-- User containers, as far as connecting and routing go (what a project shows is in its
-- document; docs/decisions/containers.md). A row exists from the first enrollment token on.
CREATE TABLE containers (
    -- The id the project document gave it.
    id              TEXT      PRIMARY KEY NOT NULL,
    org_id          TEXT      NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    project_id      TEXT      NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    created_by      TEXT      NULL,
    created_at      TIMESTAMP NOT NULL,
    -- The agent's credential (SHA-256, hex), once it enrolled.
    credential_hash TEXT      NULL UNIQUE,
    enrolled_at     TIMESTAMP NULL,
    -- Its WireGuard peer (a row of vpn_peers, by name), once it enrolled.
    vpn_peer        TEXT      NULL
);
CREATE INDEX containers_project ON containers (project_id);

-- Where a service's host name (<label>.containers.<domain>) goes.
CREATE TABLE container_routes (
    label           TEXT      PRIMARY KEY NOT NULL,
    container_id    TEXT      NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
    service         TEXT      NOT NULL,
    port            INTEGER   NOT NULL,
    terminal        BOOLEAN   NOT NULL
);
CREATE INDEX container_routes_container ON container_routes (container_id);

-- One-time tokens for the `docker run` line: SHA-256 only, used once, short-lived, shown
-- only to the person who asked.
CREATE TABLE container_enrollments (
    token_hash      TEXT      PRIMARY KEY NOT NULL,
    container_id    TEXT      NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
    user_id         TEXT      NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at      TIMESTAMP NOT NULL,
    expires_at      TIMESTAMP NOT NULL,
    used_at         TIMESTAMP NULL
);
CREATE INDEX container_enrollments_container ON container_enrollments (container_id);
