-- One span per transcoding job (transcode, watermark, WebRTC baseline):
-- what it made and from when to when, for DescribeLiveTranscodeDetailInfo,
-- DescribeLiveTranscodeTotalInfo and DescribeTranscodeTaskNum. `node`
-- names the node that ran it, so its next start closes what a crash left
-- open.
CREATE TABLE transcode_spans (
    id            INTEGER PRIMARY KEY,
    account_id    BIGINT  NOT NULL REFERENCES accounts (id),
    span          BIGINT  NOT NULL UNIQUE,
    domain        TEXT    NOT NULL,
    app           TEXT    NOT NULL,
    stream        TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    codec         TEXT    NOT NULL,
    width         BIGINT  NOT NULL,
    height        BIGINT  NOT NULL,
    bitrate_kbps  BIGINT  NOT NULL,
    started_ms    BIGINT  NOT NULL,
    ended_ms      BIGINT,
    node          TEXT    NOT NULL
);
CREATE INDEX transcode_spans_by_time ON transcode_spans (account_id, started_ms);
