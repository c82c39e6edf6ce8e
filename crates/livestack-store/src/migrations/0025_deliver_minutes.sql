-- Bytes relay tasks pushed out (CSS's 转推), per account and minute, kept
-- three months, for DescribeDeliverBandwidthList.
CREATE TABLE deliver_minutes (
    account_id  BIGINT NOT NULL REFERENCES accounts (id),
    minute      BIGINT NOT NULL,
    bytes       BIGINT NOT NULL,
    PRIMARY KEY (account_id, minute)
);
CREATE INDEX deliver_minutes_by_time ON deliver_minutes (minute);
