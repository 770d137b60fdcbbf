-- Login keys fold ASCII letters only (auth::login_key): Unicode folding made distinct
-- addresses collide. PostgreSQL's lower() follows the locale, so fold A-Z by hand. Folding
-- less never makes two distinct keys equal, so the unique indexes hold.
UPDATE users SET
    email_lower = translate(email, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'),
    username_lower = translate(username, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz');
UPDATE invitations SET
    email_lower = translate(email, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz');
