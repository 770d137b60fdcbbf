DROP TABLE audit_events;
ALTER TABLE users DROP COLUMN disabled_at;
