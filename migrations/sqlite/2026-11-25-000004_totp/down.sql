DROP TABLE recovery_codes;
DROP TABLE totp;
ALTER TABLE sessions DROP COLUMN pending_second_factor;
