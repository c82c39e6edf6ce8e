-- Access management (CAM): the sub-accounts of a root account, their
-- groups, the account's custom policies and what they are attached to.
-- Preset policies (QcloudLIVEFullAccess, ...) are defined in code and
-- have no row; attachments name policies by their wire PolicyId.
CREATE TABLE cam_users (
    id             INTEGER PRIMARY KEY,
    account_id     BIGINT  NOT NULL REFERENCES accounts (id),
    name           TEXT    NOT NULL,
    remark         TEXT    NOT NULL DEFAULT '',
    console_login  BIGINT  NOT NULL DEFAULT 0,
    phone_num      TEXT    NOT NULL DEFAULT '',
    country_code   TEXT    NOT NULL DEFAULT '',
    email          TEXT    NOT NULL DEFAULT '',
    created_at     BIGINT  NOT NULL,
    UNIQUE (account_id, name)
);

CREATE TABLE cam_groups (
    id          INTEGER PRIMARY KEY,
    account_id  BIGINT  NOT NULL REFERENCES accounts (id),
    name        TEXT    NOT NULL,
    remark      TEXT    NOT NULL DEFAULT '',
    created_at  BIGINT  NOT NULL,
    UNIQUE (account_id, name)
);

CREATE TABLE cam_group_members (
    group_id    BIGINT NOT NULL,
    user_id     BIGINT NOT NULL,
    joined_at   BIGINT NOT NULL,
    PRIMARY KEY (group_id, user_id)
);

CREATE TABLE cam_policies (
    id           INTEGER PRIMARY KEY,
    account_id   BIGINT  NOT NULL REFERENCES accounts (id),
    name         TEXT    NOT NULL,
    description  TEXT    NOT NULL DEFAULT '',
    document     TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL,
    UNIQUE (account_id, name)
);

-- target_kind: 'user' or 'group'; target_id is the cam_users / cam_groups id.
CREATE TABLE cam_attachments (
    account_id   BIGINT NOT NULL REFERENCES accounts (id),
    policy_id    BIGINT NOT NULL,
    target_kind  TEXT   NOT NULL,
    target_id    BIGINT NOT NULL,
    attached_at  BIGINT NOT NULL,
    PRIMARY KEY (account_id, target_kind, target_id, policy_id)
);

-- A key belongs to the root account (user_id NULL) or to one sub-account.
-- A temporary key made by GetFederationToken carries its session name and
-- policy: its rights are its user's (or the root's) intersected with it.
ALTER TABLE api_keys ADD COLUMN user_id BIGINT;
ALTER TABLE api_keys ADD COLUMN session_name TEXT;
ALTER TABLE api_keys ADD COLUMN session_policy TEXT;
