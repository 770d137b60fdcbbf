-- After a password reset, the account's owner is asked to review the passkeys and provider
-- accounts that can still sign in (someone who had the account may have added one). One row
-- per account with a review pending; answering it deletes the row.
CREATE TABLE sign_in_reviews (
    user_id   TEXT      PRIMARY KEY NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    asked_at  TIMESTAMP NOT NULL
);
