CREATE TABLE vpn_peers (
    id          INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    name        TEXT    NOT NULL UNIQUE,
    public_key  TEXT    NOT NULL UNIQUE,
    address     TEXT    NOT NULL UNIQUE,
    created_at  TIMESTAMP NOT NULL
);
