-- Main domains an account has proven it controls (AuthenticateDomainOwner
-- with dnsCheck or fileCheck): one success covers every domain under it.
CREATE TABLE domain_owners (
    account_id   BIGINT NOT NULL REFERENCES accounts (id),
    main_domain  TEXT   NOT NULL,
    method       TEXT   NOT NULL,
    verified_at  BIGINT NOT NULL,
    PRIMARY KEY (account_id, main_domain)
);
