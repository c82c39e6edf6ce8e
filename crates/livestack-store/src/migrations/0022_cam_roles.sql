-- CAM roles: a trust policy says who may assume one (STS AssumeRole);
-- its attached policies (cam_attachments, target_kind 'role') say what
-- the credentials it hands out may do.
CREATE TABLE cam_roles (
    id                INTEGER PRIMARY KEY,
    account_id        BIGINT  NOT NULL REFERENCES accounts (id),
    name              TEXT    NOT NULL,
    description       TEXT    NOT NULL DEFAULT '',
    trust_policy      TEXT    NOT NULL,
    console_login     BIGINT  NOT NULL DEFAULT 0,
    session_duration  BIGINT  NOT NULL DEFAULT 0,
    created_at        BIGINT  NOT NULL,
    updated_at        BIGINT  NOT NULL,
    UNIQUE (account_id, name)
);

-- Credentials from AssumeRole act as their role.
ALTER TABLE api_keys ADD COLUMN role_id BIGINT;
