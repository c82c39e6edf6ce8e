-- Accounts own every resource; API keys authenticate requests to an account.
CREATE TABLE accounts (
    id          INTEGER PRIMARY KEY,
    uin         TEXT    NOT NULL UNIQUE,
    app_id      BIGINT  NOT NULL UNIQUE,
    name        TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);

CREATE TABLE api_keys (
    secret_id   TEXT    PRIMARY KEY,
    secret_key  TEXT    NOT NULL,
    account_id  BIGINT  NOT NULL REFERENCES accounts (id),
    enabled     BOOLEAN NOT NULL,
    -- Temporary credentials carry a session token and an expiry (Unix seconds).
    token       TEXT,
    expires_at  BIGINT,
    created_at  BIGINT  NOT NULL
);

-- Live domains (push and play). Names are unique across accounts, as in CSS.
CREATE TABLE domains (
    id                   INTEGER PRIMARY KEY,
    account_id           BIGINT  NOT NULL REFERENCES accounts (id),
    name                 TEXT    NOT NULL UNIQUE,
    domain_type          BIGINT  NOT NULL,
    status               BIGINT  NOT NULL,
    play_type            BIGINT  NOT NULL,
    is_delay_live        BIGINT  NOT NULL,
    is_mini_program_live BIGINT  NOT NULL,
    created_at           BIGINT  NOT NULL,
    -- URL signing (txSecret/txTime): the push key pair on push domains,
    -- the play key pair on play domains.
    auth_enabled         BIGINT  NOT NULL DEFAULT 0,
    auth_key             TEXT    NOT NULL DEFAULT '',
    auth_backup_key      TEXT    NOT NULL DEFAULT '',
    auth_delta           BIGINT  NOT NULL DEFAULT 0,
    -- Referer allow/deny list of play domains.
    referer_enabled      BIGINT  NOT NULL DEFAULT 0,
    referer_type         BIGINT  NOT NULL DEFAULT 0,
    referer_allow_empty  BIGINT  NOT NULL DEFAULT 1,
    referer_rules        TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX domains_by_account ON domains (account_id, name);
