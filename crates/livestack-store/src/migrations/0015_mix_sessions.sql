-- Mix sessions: CreateCommonMixStream, one row per MixStreamSessionId of
-- an account, deleted by CancelCommonMixStream.
--
-- `spec` is the session's layout (JSON, written and read only by the
-- API's mix actions). `generation` changes with every update of the
-- session, so the media plane starts the new layout as a new job.
CREATE TABLE mix_sessions (
    id          INTEGER PRIMARY KEY,
    account_id  BIGINT NOT NULL REFERENCES accounts (id),
    session_id  TEXT   NOT NULL,
    spec        TEXT   NOT NULL,
    generation  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (account_id, session_id)
);
