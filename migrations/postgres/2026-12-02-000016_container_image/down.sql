ALTER TABLE containers DROP COLUMN image;
