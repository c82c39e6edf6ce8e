-- HTTPS certificates of play domains. Each row is one certificate chain
-- with its private key, owned by one account. `id` is the legacy API's
-- numeric CertId; `cloud_id` is the current API's CloudCertId (livestack
-- is its own certificate manager). The private key never leaves the store
-- through the API: only the media plane reads it (see certs.rs).
CREATE TABLE certificates (
    id           BIGINT  PRIMARY KEY,
    account_id   BIGINT  NOT NULL REFERENCES accounts (id),
    cloud_id     TEXT    NOT NULL UNIQUE,
    name         TEXT    NOT NULL,
    description  TEXT    NOT NULL,
    -- 0 the user's own certificate, 1 a hosted ("cloud") certificate.
    cert_type    BIGINT  NOT NULL,
    chain_pem    TEXT    NOT NULL,
    key_pem      TEXT    NOT NULL,
    -- The DNS names the leaf covers (SANs, or the CN without SANs),
    -- newline-separated, lower-case, as parsed when the row was written.
    names        TEXT    NOT NULL,
    expires_at   BIGINT  NOT NULL,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL
);
CREATE INDEX certificates_by_account ON certificates (account_id, id);

-- Which certificate a play domain serves, and whether HTTPS is on. One
-- rule per domain; deleting the domain drops its rule, while a certificate
-- that still has rules cannot be deleted.
CREATE TABLE domain_certificates (
    domain_id      BIGINT  PRIMARY KEY REFERENCES domains (id) ON DELETE CASCADE,
    cert_id        BIGINT  NOT NULL REFERENCES certificates (id),
    https_enabled  BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL
);
CREATE INDEX domain_certificates_by_cert ON domain_certificates (cert_id);
