-- Record and screenshot tasks: CreateRecordTask and CreateScreenshotTask
-- (legacy = FALSE) and the legacy CreateLiveRecord (kind 'record',
-- legacy = TRUE), one row each.
--
-- `token` is random: it is part of the public TaskId of current tasks, so
-- a TaskId cannot be guessed from the row id. A stopped task keeps its row
-- with `stopped_at` set; a deleted one keeps it with `deleted_at` set (it
-- is gone for the API, and still records while the push it was recording
-- at deletion lasts, as DeleteRecordTask documents).
CREATE TABLE tasks (
    id            INTEGER PRIMARY KEY,
    account_id    BIGINT  NOT NULL REFERENCES accounts (id),
    kind          TEXT    NOT NULL,
    legacy        BOOLEAN NOT NULL,
    token         BIGINT  NOT NULL,
    domain        TEXT    NOT NULL,
    app           TEXT    NOT NULL,
    stream        TEXT    NOT NULL,
    start_time    BIGINT  NOT NULL,
    end_time      BIGINT  NOT NULL,
    template_id   BIGINT,
    stream_type   BIGINT  NOT NULL,
    format        TEXT    NOT NULL,
    audio_only    BOOLEAN NOT NULL,
    extension     TEXT    NOT NULL,
    stream_param  TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    stopped_at    BIGINT  NOT NULL,
    deleted_at    BIGINT
);
-- Running tasks of a family (the overlap limits), a day's tasks (the
-- legacy daily limit), tasks in force (the media plane's policy).
CREATE INDEX tasks_running ON tasks (account_id, kind, legacy, stopped_at, end_time);
CREATE INDEX tasks_by_created ON tasks (account_id, kind, legacy, created_at);
CREATE INDEX tasks_in_force ON tasks (stopped_at, end_time);
