-- Every accepted Yjs update of a project's document, in order. Appended before the update
-- reaches any other client; loading replays them.
CREATE TABLE doc_updates (
    project_id  TEXT      NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    seq         BIGINT    NOT NULL,
    data        BYTEA      NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (project_id, seq)
);
