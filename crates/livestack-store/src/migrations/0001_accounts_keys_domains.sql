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
    created_at           BIGINT  NOT NULL
);
CREATE INDEX domains_by_account ON domains (account_id, name);
