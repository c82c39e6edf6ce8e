-- One quality sample per live push per sampling interval (a minute by
-- default), kept 7 days, for DescribeStreamPushInfoList.
CREATE TABLE push_samples (
    id               INTEGER PRIMARY KEY,
    account_id       BIGINT  NOT NULL REFERENCES accounts (id),
    domain           TEXT    NOT NULL,
    app              TEXT    NOT NULL,
    stream           TEXT    NOT NULL,
    at_ms            BIGINT  NOT NULL,
    started_ms       BIGINT  NOT NULL,
    client_ip        TEXT    NOT NULL,
    server_ip        TEXT    NOT NULL,
    sequence         TEXT    NOT NULL,
    params           TEXT    NOT NULL,
    video_codec      TEXT    NOT NULL,
    audio_codec      TEXT    NOT NULL,
    width            BIGINT  NOT NULL,
    height           BIGINT  NOT NULL,
    fps              DOUBLE PRECISION NOT NULL,
    video_bps        BIGINT  NOT NULL,
    audio_fps        DOUBLE PRECISION NOT NULL,
    audio_bps        BIGINT  NOT NULL,
    video_ts         BIGINT  NOT NULL,
    audio_ts         BIGINT  NOT NULL,
    meta_video_kbps  BIGINT  NOT NULL,
    meta_audio_kbps  BIGINT  NOT NULL,
    meta_fps         BIGINT  NOT NULL,
    gop_ms           BIGINT  NOT NULL,
    bytes            BIGINT  NOT NULL,
    interval_ms      BIGINT  NOT NULL
);
CREATE INDEX push_samples_by_stream ON push_samples (account_id, stream, at_ms);
CREATE INDEX push_samples_by_time ON push_samples (at_ms);
