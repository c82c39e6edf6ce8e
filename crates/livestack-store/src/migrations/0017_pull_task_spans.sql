-- When each relay task pushed: one row per run, from the report that it
-- started to the report that it stopped (open while it runs). Kept after
-- the task is deleted, as a bill's durations are:
-- DescribePullTransformPushInfo. `source_type` is the task's SourceType
-- as the media plane reports it.
CREATE TABLE pull_task_spans (
    id          INTEGER PRIMARY KEY,
    task_id     BIGINT NOT NULL,
    account_id  BIGINT NOT NULL,
    source_type TEXT   NOT NULL,
    started_at  BIGINT NOT NULL,
    ended_at    BIGINT
);
CREATE INDEX pull_task_spans_by_time ON pull_task_spans (account_id, started_at);
CREATE INDEX pull_task_spans_open ON pull_task_spans (task_id) WHERE ended_at IS NULL;
