-- The compacted state of a project's document: every update up to seq folded into one.
-- Loading reads the snapshot, then the log entries after it.
CREATE TABLE doc_snapshots (
    project_id  TEXT      NOT NULL PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    seq         BIGINT    NOT NULL,
    data        BLOB      NOT NULL,
    created_at  TIMESTAMP NOT NULL
);

-- Named history points: the whole document at one moment (automatic or on demand).
CREATE TABLE doc_history (
    id          TEXT      NOT NULL PRIMARY KEY,
    project_id  TEXT      NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name        TEXT      NOT NULL,
    seq         BIGINT    NOT NULL,
    data        BLOB      NOT NULL,
    automatic   BOOLEAN   NOT NULL,
    created_by  TEXT      REFERENCES users(id) ON DELETE SET NULL,
    created_at  TIMESTAMP NOT NULL
);
CREATE INDEX doc_history_project ON doc_history (project_id, created_at);
