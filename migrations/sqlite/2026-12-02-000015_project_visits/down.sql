DROP TABLE project_visits;
