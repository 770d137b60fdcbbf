-- ACME (RFC 8555): the account at each certificate authority, and the certificates it issued.
-- Private keys are sealed with the data directory's secrets key (never stored in the clear),
-- so a copy of the database alone cannot serve the instance's names.
CREATE TABLE acme_accounts (
    -- The CA's directory URL: one account per CA.
    directory    TEXT      PRIMARY KEY NOT NULL,
    -- instant-acme's account credentials (JSON with the account key), sealed.
    credentials  TEXT      NOT NULL,
    created_at   TIMESTAMP NOT NULL
);
-- One row per certificate the server keeps ("main": the domain; "containers": its wildcard).
CREATE TABLE acme_certificates (
    name         TEXT      PRIMARY KEY NOT NULL,
    directory    TEXT      NOT NULL,
    -- The names it covers, comma-separated, in order.
    domains      TEXT      NOT NULL,
    -- The chain in PEM, leaf first.
    chain_pem    TEXT      NOT NULL,
    -- The certificate's private key in PEM, sealed.
    key_pem      TEXT      NOT NULL,
    issuer       TEXT      NOT NULL,
    not_before   TIMESTAMP NOT NULL,
    not_after    TIMESTAMP NOT NULL,
    issued_at    TIMESTAMP NOT NULL
);
