-- Push sessions, for DescribeLiveStreamEventList and
-- DescribeLiveStreamPublishedList: one row per push attempt; refused pushes
-- have succeeded = FALSE and ended_at = started_at.
CREATE TABLE stream_sessions (
    id           INTEGER PRIMARY KEY,
    account_id   BIGINT  NOT NULL REFERENCES accounts (id),
    session      BIGINT  NOT NULL,
    domain       TEXT    NOT NULL,
    app          TEXT    NOT NULL,
    stream       TEXT    NOT NULL,
    client_ip    TEXT    NOT NULL,
    params       TEXT    NOT NULL,
    started_at   BIGINT  NOT NULL,
    ended_at     BIGINT,
    stop_reason  TEXT    NOT NULL,
    errcode      BIGINT  NOT NULL,
    sub_errcode  BIGINT  NOT NULL,
    resolution   TEXT    NOT NULL,
    succeeded    BOOLEAN NOT NULL
);
CREATE INDEX stream_sessions_by_account ON stream_sessions (account_id, started_at);
CREATE INDEX stream_sessions_open ON stream_sessions (session, ended_at);

-- ForbidLiveStream: the stream may not push until resume_at.
CREATE TABLE forbidden_streams (
    account_id  BIGINT NOT NULL REFERENCES accounts (id),
    app         TEXT   NOT NULL,
    stream      TEXT   NOT NULL,
    domain      TEXT   NOT NULL,
    resume_at   BIGINT NOT NULL,
    reason      TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (account_id, app, stream)
);

-- AddDelayLiveStream: players get the stream delay_time seconds late,
-- until expire_at.
CREATE TABLE delayed_streams (
    account_id  BIGINT NOT NULL REFERENCES accounts (id),
    app         TEXT   NOT NULL,
    stream      TEXT   NOT NULL,
    domain      TEXT   NOT NULL,
    delay_time  BIGINT NOT NULL,
    expire_at   BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (account_id, app, stream)
);
