-- When each person last opened each board: the home page's "recent boards", and who was
-- on a board lately.
CREATE TABLE project_visits (
    user_id     TEXT      NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    project_id  TEXT      NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    opened_at   TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, project_id)
);
CREATE INDEX project_visits_project ON project_visits (project_id, opened_at);
