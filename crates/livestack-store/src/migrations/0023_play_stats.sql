-- Play statistics by minute: per stream, protocol and play domain (kept a
-- month), and per client address (kept a day), added to as the media
-- plane reports them. HTTP answers are counted by class and, for the
-- codes CSS lists one by one (PlayCodeTotalInfo), by code.
CREATE TABLE play_minutes (
    account_id  BIGINT NOT NULL REFERENCES accounts (id),
    minute      BIGINT NOT NULL,
    domain      TEXT   NOT NULL,
    app         TEXT   NOT NULL,
    stream      TEXT   NOT NULL,
    protocol    TEXT   NOT NULL,
    bytes       BIGINT NOT NULL,
    requests    BIGINT NOT NULL,
    online      BIGINT NOT NULL,
    s2xx        BIGINT NOT NULL,
    s3xx        BIGINT NOT NULL,
    s4xx        BIGINT NOT NULL,
    s5xx        BIGINT NOT NULL,
    s400        BIGINT NOT NULL,
    s403        BIGINT NOT NULL,
    s404        BIGINT NOT NULL,
    s500        BIGINT NOT NULL,
    s502        BIGINT NOT NULL,
    s503        BIGINT NOT NULL,
    s504        BIGINT NOT NULL,
    PRIMARY KEY (account_id, minute, domain, app, stream, protocol)
);
CREATE INDEX play_minutes_by_time ON play_minutes (minute);
CREATE TABLE play_clients (
    account_id  BIGINT NOT NULL REFERENCES accounts (id),
    minute      BIGINT NOT NULL,
    domain      TEXT   NOT NULL,
    ip          TEXT   NOT NULL,
    bytes       BIGINT NOT NULL,
    requests    BIGINT NOT NULL,
    failed      BIGINT NOT NULL,
    PRIMARY KEY (account_id, minute, domain, ip)
);
CREATE INDEX play_clients_by_time ON play_clients (minute);
