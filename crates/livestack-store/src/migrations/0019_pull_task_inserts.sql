-- Files inserted into running relay tasks (InsertTaskTemporaryFiles), to
-- play once between the task's own files; `played_at` is set once the
-- media plane has started them, so a restarted job does not play them
-- again. `files` is a JSON array of URLs.
CREATE TABLE pull_task_inserts (
    id           INTEGER PRIMARY KEY,
    task_id      BIGINT NOT NULL,
    after_index  BIGINT NOT NULL,
    priority     BIGINT NOT NULL,
    context      TEXT   NOT NULL,
    files        TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    played_at    BIGINT
);
CREATE INDEX pull_task_inserts_pending ON pull_task_inserts (task_id) WHERE played_at IS NULL;
