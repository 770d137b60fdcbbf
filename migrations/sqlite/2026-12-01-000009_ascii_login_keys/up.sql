-- Login keys fold ASCII letters only (auth::login_key): Unicode folding made distinct
-- addresses collide. SQLite's lower() folds ASCII only. Folding less never makes two
-- distinct keys equal, so the unique indexes hold.
UPDATE users SET email_lower = lower(email), username_lower = lower(username);
UPDATE invitations SET email_lower = lower(email);
