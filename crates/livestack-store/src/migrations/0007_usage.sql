-- What was processed, for the bookkeeping queries: snapshots stored per
-- push domain in 5-minute slots (DescribeScreenShotSheetNumList), and one
-- span per recording job (DescribeConcurrentRecordStreamNum).
CREATE TABLE snapshot_counts (
    account_id  BIGINT NOT NULL REFERENCES accounts (id),
    domain      TEXT   NOT NULL,
    slot        BIGINT NOT NULL,
    num         BIGINT NOT NULL,
    PRIMARY KEY (account_id, domain, slot)
);
CREATE TABLE recording_spans (
    id          INTEGER PRIMARY KEY,
    account_id  BIGINT  NOT NULL REFERENCES accounts (id),
    span        BIGINT  NOT NULL UNIQUE,
    domain      TEXT    NOT NULL,
    app         TEXT    NOT NULL,
    stream      TEXT    NOT NULL,
    slow_live   BOOLEAN NOT NULL,
    started_ms  BIGINT  NOT NULL,
    ended_ms    BIGINT
);
CREATE INDEX recording_spans_by_time ON recording_spans (account_id, started_ms);
