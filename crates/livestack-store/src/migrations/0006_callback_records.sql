-- Every event-callback attempt and its answer, for
-- DescribeCallbackRecordsList (kept 14 days, the action's query window).
CREATE TABLE callback_records (
    id           INTEGER PRIMARY KEY,
    account_id   BIGINT  NOT NULL REFERENCES accounts (id),
    stream       TEXT    NOT NULL,
    event_type   BIGINT  NOT NULL,
    request      TEXT    NOT NULL,
    response     TEXT    NOT NULL,
    result_code  BIGINT  NOT NULL,
    sent_ms      BIGINT  NOT NULL,
    answered_ms  BIGINT  NOT NULL
);
CREATE INDEX callback_records_by_stream ON callback_records (account_id, stream, sent_ms);
CREATE INDEX callback_records_by_time ON callback_records (sent_ms);
