-- Nodes sharing the database, each alive while it renews its lease
-- (PostgreSQL; a single SQLite node never writes here). Times are the
-- database server's, in Unix ms, so nodes' clocks need not agree.
CREATE TABLE nodes (
    name            TEXT    PRIMARY KEY,
    advertise       TEXT    NOT NULL,
    started_ms      BIGINT  NOT NULL,
    lease_until_ms  BIGINT  NOT NULL
);
