-- Set once the owner of the address has proven it (a verification link, or a provider that
-- vouches for it).
ALTER TABLE users ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT 0;

-- One-time links sent by email: sign-in, password reset, email verification.
CREATE TABLE email_links (
    id          TEXT      PRIMARY KEY NOT NULL,
    -- SHA-256 of the secret in the link; the secret itself is never stored.
    token_hash  TEXT      NOT NULL UNIQUE,
    purpose     TEXT      NOT NULL,
    user_id     TEXT      NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- The address the link went to: verifying proves this one, not a later one.
    email       TEXT      NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    expires_at  TIMESTAMP NOT NULL,
    used_at     TIMESTAMP
);
CREATE INDEX email_links_user ON email_links(user_id);

-- Accounts at external sign-in providers (OIDC, GitHub, GitLab, Discord) linked to a user.
CREATE TABLE identities (
    id             TEXT      PRIMARY KEY NOT NULL,
    user_id        TEXT      NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider       TEXT      NOT NULL,
    subject        TEXT      NOT NULL,
    email          TEXT,
    -- What the provider calls the person (shown in account settings).
    display        TEXT      NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    last_login_at  TIMESTAMP,
    UNIQUE (provider, subject)
);
CREATE INDEX identities_user ON identities(user_id);

-- Server-side state of a ceremony that spans requests (a provider redirect, a passkey
-- registration or sign-in). The client holds a random handle; only its hash is stored.
CREATE TABLE ceremonies (
    handle_hash  TEXT      PRIMARY KEY NOT NULL,
    kind         TEXT      NOT NULL,
    user_id      TEXT      REFERENCES users(id) ON DELETE CASCADE,
    state        TEXT      NOT NULL,
    expires_at   TIMESTAMP NOT NULL
);
CREATE INDEX ceremonies_expiry ON ceremonies(expires_at);

CREATE TABLE passkeys (
    id             TEXT      PRIMARY KEY NOT NULL,
    user_id        TEXT      NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name           TEXT      NOT NULL,
    -- base64url credential id, unique across the instance.
    credential_id  TEXT      NOT NULL UNIQUE,
    -- The webauthn-rs credential (public key, counter, flags) as JSON. Public data only.
    passkey        TEXT      NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    last_used_at   TIMESTAMP,
    UNIQUE (user_id, name)
);
CREATE INDEX passkeys_user ON passkeys(user_id);
