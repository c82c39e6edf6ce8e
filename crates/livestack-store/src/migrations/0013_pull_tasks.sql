-- Relay (pull-stream) tasks: CreateLivePullStreamTask (legacy = FALSE)
-- and the legacy CreatePullStreamConfig (legacy = TRUE), one row each.
--
-- `spec` is the task as the caller gave it (JSON, written and read only
-- by livestack-store's pull_tasks module): what pulls and pushes, the
-- options Describe echoes. The columns are what queries filter and sort
-- on. `token` is random and part of the public TaskId, as for record
-- tasks. `generation` changes when the task must start over (restart, a
-- change of source or target). A deleted task keeps its row with
-- `deleted_at` set until nothing refers to it.
CREATE TABLE pull_tasks (
    id              INTEGER PRIMARY KEY,
    account_id      BIGINT  NOT NULL REFERENCES accounts (id),
    legacy          BOOLEAN NOT NULL,
    token           BIGINT  NOT NULL,
    specify_task_id TEXT    NOT NULL,
    spec            TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    start_time      BIGINT  NOT NULL,
    end_time        BIGINT  NOT NULL,
    generation      BIGINT  NOT NULL,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    created_by      TEXT    NOT NULL,
    updated_by      TEXT    NOT NULL,
    deleted_at      BIGINT
);
-- SpecifyTaskId is unique among an account's tasks (it deduplicates
-- retried creates).
CREATE UNIQUE INDEX pull_tasks_specified ON pull_tasks (account_id, specify_task_id)
    WHERE specify_task_id <> '' AND deleted_at IS NULL;
CREATE INDEX pull_tasks_by_update ON pull_tasks (account_id, legacy, updated_at);
-- What each task's job last reported (the node running it writes it):
-- DescribeLivePullStreamTaskStatus and RecentPullInfo. Kept apart from
-- pull_tasks so that these frequent writes are not configuration changes.
CREATE TABLE pull_task_runs (
    task_id      BIGINT  PRIMARY KEY,
    node         TEXT    NOT NULL,
    active       BOOLEAN NOT NULL,
    file_url     TEXT    NOT NULL,
    file_index   BIGINT  NOT NULL,
    looped       BIGINT  NOT NULL,
    offset_secs  BIGINT  NOT NULL,
    last_error   TEXT    NOT NULL,
    reported_at  BIGINT  NOT NULL
);
