DROP TABLE container_enrollments;
DROP TABLE container_routes;
DROP TABLE containers;
