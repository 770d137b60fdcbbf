DROP TABLE invitations;
DROP TABLE project_members;
DROP TABLE projects;
DROP TABLE org_members;
DROP TABLE roles;
DROP TABLE organizations;
