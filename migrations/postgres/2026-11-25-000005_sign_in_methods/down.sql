DROP TABLE passkeys;
DROP TABLE ceremonies;
DROP TABLE identities;
DROP TABLE email_links;
ALTER TABLE users DROP COLUMN email_verified;
