-- Processing templates of every family (transcode, watermark, record,
-- snapshot, callback), one row each. `kind` names the family; `spec`
-- holds its settings as JSON text with livestack's own field names
-- (livestack_core::rules), which keeps the SQL the same on every database
-- and lets a family gain a setting without a migration.
CREATE TABLE templates (
    id           BIGINT  PRIMARY KEY,
    account_id   BIGINT  NOT NULL REFERENCES accounts (id),
    kind         TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    description  TEXT    NOT NULL,
    spec         TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL
);
CREATE INDEX templates_by_account ON templates (account_id, kind, id);

-- The last template id handed out. Templates, watermarks and the children
-- of adaptive-bitrate templates (which live inside their parent's spec)
-- all take their ids from this one counter, so every id is unique.
CREATE TABLE template_ids (
    singleton  BIGINT  PRIMARY KEY,
    last_id    BIGINT  NOT NULL
);
INSERT INTO template_ids (singleton, last_id) VALUES (1, 1000);

-- Rules bind a template to a domain (app = stream = ''), to an app of a
-- domain (stream = ''), or to a stream. Deleting the domain drops its
-- rules; a template with rules cannot be deleted.
CREATE TABLE template_rules (
    id           INTEGER PRIMARY KEY,
    account_id   BIGINT  NOT NULL REFERENCES accounts (id),
    kind         TEXT    NOT NULL,
    domain_id    BIGINT  NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    app          TEXT    NOT NULL,
    stream       TEXT    NOT NULL,
    template_id  BIGINT  NOT NULL REFERENCES templates (id),
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL,
    UNIQUE (kind, domain_id, app, stream, template_id)
);
CREATE INDEX template_rules_by_account ON template_rules (account_id, kind);
CREATE INDEX template_rules_by_template ON template_rules (template_id);
