CREATE TABLE organizations (
    id          TEXT      PRIMARY KEY NOT NULL,
    -- URL-safe and unique: lowercase letters, digits and '-'.
    slug        TEXT      NOT NULL UNIQUE,
    name        TEXT      NOT NULL,
    -- The organization every account gets at sign-up.
    personal    BOOLEAN   NOT NULL DEFAULT 0,
    created_at  TIMESTAMP NOT NULL
);

-- Custom roles of an organization. Built-in roles (org:owner, org:admin, org:member,
-- project:admin, project:editor, project:viewer) are defined in code, not stored.
CREATE TABLE roles (
    id           TEXT      PRIMARY KEY NOT NULL,
    org_id       TEXT      NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name         TEXT      NOT NULL,
    name_lower   TEXT      NOT NULL,
    -- 'org' or 'project': where the role can be given.
    scope        TEXT      NOT NULL,
    description  TEXT      NOT NULL,
    -- JSON array of permission patterns (module:resource:action, '*' per segment).
    permissions  TEXT      NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    UNIQUE (org_id, name_lower)
);

CREATE TABLE org_members (
    org_id      TEXT      NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id     TEXT      NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- A built-in role key (org:owner, org:admin, org:member) or a custom role id.
    role        TEXT      NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX org_members_user ON org_members(user_id);

CREATE TABLE projects (
    id          TEXT      PRIMARY KEY NOT NULL,
    org_id      TEXT      NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name        TEXT      NOT NULL,
    name_lower  TEXT      NOT NULL,
    created_by  TEXT      REFERENCES users(id) ON DELETE SET NULL,
    created_at  TIMESTAMP NOT NULL,
    UNIQUE (org_id, name_lower)
);

CREATE TABLE project_members (
    project_id  TEXT      NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    user_id     TEXT      NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- A built-in role key (project:admin, project:editor, project:viewer) or a custom role id.
    role        TEXT      NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_user ON project_members(user_id);

CREATE TABLE invitations (
    id           TEXT      PRIMARY KEY NOT NULL,
    org_id       TEXT      NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    email        TEXT      NOT NULL,
    email_lower  TEXT      NOT NULL,
    role         TEXT      NOT NULL,
    -- SHA-256 of the secret in the emailed link.
    token_hash   TEXT      NOT NULL UNIQUE,
    invited_by   TEXT      REFERENCES users(id) ON DELETE SET NULL,
    created_at   TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP NOT NULL,
    accepted_at  TIMESTAMP,
    accepted_by  TEXT      REFERENCES users(id) ON DELETE SET NULL
);
CREATE INDEX invitations_org ON invitations(org_id);
