ALTER TABLE containers DROP COLUMN command;
DROP TABLE container_images;
