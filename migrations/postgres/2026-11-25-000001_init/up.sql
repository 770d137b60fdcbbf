CREATE TABLE vpn_peers (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        TEXT      NOT NULL UNIQUE,
    public_key  TEXT      NOT NULL UNIQUE,
    address     TEXT      NOT NULL UNIQUE,
    created_at  TIMESTAMP NOT NULL
);
