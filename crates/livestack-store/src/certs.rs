//! TLS certificates and their bindings to domains (play domains serve
//! them over HTTPS and RTMPS, push domains over RTMPS).
//!
//! Owns: the `certificates` and `domain_certificates` tables. A certificate
//! has two ids: the numeric `id` (the legacy API's CertId) and `cloud_id`
//! (the current API's CloudCertId, 8 random alphanumerics). Every query an
//! API handler makes is scoped by the owning [`AccountId`]; the one that is
//! not, [`binding_for_domain`], is the media plane's entry point.
//!
//! Must not: parse certificates (the API layer does, before anything is
//! written, and hands over the names and expiry it found), choose error
//! codes, or let a private key out except through [`private_key`] and
//! [`binding_for_domain`]. [`Certificate`] deliberately has no key field,
//! so nothing that describes a certificate can leak one.

use std::fmt;

use crate::db::Value;
use crate::db::{Connection, OptionalExtension};
use rand::distributions::{Alphanumeric, DistString};

use crate::{AccountId, StoreError, StoreResult};

/// Length of a CloudCertId.
pub const CLOUD_ID_LEN: usize = 8;

/// A PEM private key. Its `Debug` shows nothing, so it cannot reach a log
/// by accident; [`PrivateKeyPem::expose`] is the one way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKeyPem(String);

impl PrivateKeyPem {
    /// Wraps a PEM key.
    pub fn new(pem: impl Into<String>) -> PrivateKeyPem {
        PrivateKeyPem(pem.into())
    }

    /// The PEM text, for the TLS stack or a key/certificate match check.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PrivateKeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKeyPem(<redacted>)")
    }
}

/// The cryptographic content of a certificate, checked by the caller: the
/// chain and key parse, the key belongs to the leaf, and `names` and
/// `expires_at` were read from the leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Material {
    /// The PEM chain, leaf first.
    pub chain_pem: String,
    /// The leaf's private key.
    pub key_pem: PrivateKeyPem,
    /// The DNS names the leaf covers, lower-case (`*.` wildcards kept).
    pub names: Vec<String>,
    /// The leaf's notAfter (Unix seconds).
    pub expires_at: i64,
}

/// A certificate to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCertificate {
    /// The owner.
    pub account_id: AccountId,
    /// Name (CertName, CertificateAlias).
    pub name: String,
    /// Free-form description.
    pub description: String,
    /// 0 the user's own, 1 hosted.
    pub cert_type: i64,
    /// Chain, key, names and expiry.
    pub material: Material,
    /// When it is created (Unix seconds).
    pub now: i64,
}

/// A stored certificate, without its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// The numeric id (CertId).
    pub id: i64,
    /// The string id (CloudCertId).
    pub cloud_id: String,
    /// The owner.
    pub account_id: AccountId,
    /// Name (CertName, CertificateAlias).
    pub name: String,
    /// Free-form description.
    pub description: String,
    /// 0 the user's own, 1 hosted.
    pub cert_type: i64,
    /// The PEM chain, leaf first (public).
    pub chain_pem: String,
    /// The DNS names the leaf covers.
    pub names: Vec<String>,
    /// The leaf's notAfter (Unix seconds).
    pub expires_at: i64,
    /// When it was stored (Unix seconds).
    pub created_at: i64,
    /// When it last changed (Unix seconds).
    pub updated_at: i64,
}

/// What `ModifyLiveCert` changes; `None` keeps the stored value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertChange {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New type.
    pub cert_type: Option<i64>,
    /// New chain and key.
    pub material: Option<Material>,
}

/// A play domain's certificate rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The domain name.
    pub domain_name: String,
    /// The certificate it serves.
    pub cert: Certificate,
    /// Whether HTTPS is on.
    pub https_enabled: bool,
    /// When the rule last changed (Unix seconds).
    pub updated_at: i64,
}

/// How [`list_bindings`] orders its rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BindingOrder {
    /// By domain name.
    #[default]
    DomainName,
    /// Soonest-expiring certificate first.
    ExpiryAsc,
    /// Latest-expiring certificate first.
    ExpiryDesc,
}

/// Filters of [`list_bindings`]; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BindingFilter {
    /// Only this domain.
    pub domain_name: Option<String>,
    /// Only domains whose name contains this.
    pub search: Option<String>,
    /// Row order.
    pub order: BindingOrder,
}

/// What the media plane needs to serve HTTPS for one play domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsBinding {
    /// The PEM chain, leaf first.
    pub chain_pem: String,
    /// The leaf's private key.
    pub key_pem: PrivateKeyPem,
    /// Whether HTTPS is switched on for the domain.
    pub https_enabled: bool,
}

const COLUMNS: &str = "c.id, c.cloud_id, c.account_id, c.name, c.description, c.cert_type, \
                       c.chain_pem, c.names, c.expires_at, c.created_at, c.updated_at";

impl Certificate {
    /// Reads [`COLUMNS`] starting at column `at`.
    fn from_row_at(row: &crate::db::Row, at: usize) -> crate::db::DbResult<Certificate> {
        Ok(Certificate {
            id: row.get(at)?,
            cloud_id: row.get(at + 1)?,
            account_id: AccountId(row.get(at + 2)?),
            name: row.get(at + 3)?,
            description: row.get(at + 4)?,
            cert_type: row.get(at + 5)?,
            chain_pem: row.get(at + 6)?,
            names: split_names(&row.get::<String>(at + 7)?),
            expires_at: row.get(at + 8)?,
            created_at: row.get(at + 9)?,
            updated_at: row.get(at + 10)?,
        })
    }

    fn from_row(row: &crate::db::Row) -> crate::db::DbResult<Certificate> {
        Certificate::from_row_at(row, 0)
    }
}

fn split_names(joined: &str) -> Vec<String> {
    joined
        .split('\n')
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Stores a new certificate under a fresh CertId and CloudCertId.
pub fn insert(conn: &Connection, c: &NewCertificate) -> StoreResult<Certificate> {
    // CloudCertIds are random; a collision (1 in 62^8 per pair) just draws again.
    for _ in 0..8 {
        let cloud_id = Alphanumeric.sample_string(&mut rand::thread_rng(), CLOUD_ID_LEN);
        // MAX + 1 in the INSERT itself: one statement, so two writers cannot
        // take the same id, and no SQLite-only AUTOINCREMENT is needed.
        let inserted = conn.execute(
            "INSERT INTO certificates (id, account_id, cloud_id, name, description, cert_type,
                 chain_pem, key_pem, names, expires_at, created_at, updated_at)
             SELECT COALESCE(MAX(id), 0) + 1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10
             FROM certificates",
            crate::params![
                c.account_id.0,
                cloud_id,
                c.name,
                c.description,
                c.cert_type,
                c.material.chain_pem,
                c.material.key_pem.expose(),
                c.material.names.join("\n"),
                c.material.expires_at,
                c.now,
            ],
        );
        match inserted {
            Ok(_) => {
                return find_by_cloud_id(conn, c.account_id, &cloud_id)?
                    .ok_or(StoreError::Query(crate::DbError::NoRows));
            }
            Err(e) if e.is_unique_violation() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict {
        what: "certificate id",
    })
}

/// One of `account`'s certificates by CertId.
pub fn get(conn: &Connection, account: AccountId, id: i64) -> StoreResult<Option<Certificate>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM certificates c WHERE c.account_id = ?1 AND c.id = ?2"
    ))?;
    Ok(stmt
        .query_row((account.0, id), Certificate::from_row)
        .optional()?)
}

/// One of `account`'s certificates by CloudCertId.
pub fn find_by_cloud_id(
    conn: &Connection,
    account: AccountId,
    cloud_id: &str,
) -> StoreResult<Option<Certificate>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM certificates c WHERE c.account_id = ?1 AND c.cloud_id = ?2"
    ))?;
    Ok(stmt
        .query_row((account.0, cloud_id), Certificate::from_row)
        .optional()?)
}

/// Every certificate of `account`, by CertId.
pub fn list(conn: &Connection, account: AccountId) -> StoreResult<Vec<Certificate>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM certificates c WHERE c.account_id = ?1 ORDER BY c.id"
    ))?;
    let rows = stmt.query_map([account.0], Certificate::from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The private key of one of `account`'s certificates, to check a new
/// chain against it. Never put it in a response.
pub fn private_key(
    conn: &Connection,
    account: AccountId,
    id: i64,
) -> StoreResult<Option<PrivateKeyPem>> {
    Ok(conn
        .query_row(
            "SELECT key_pem FROM certificates WHERE account_id = ?1 AND id = ?2",
            (account.0, id),
            |r| r.get::<String>(0),
        )
        .optional()?
        .map(PrivateKeyPem))
}

/// Applies `change` to one of `account`'s certificates; false when there
/// is no such certificate.
pub fn update(
    conn: &Connection,
    account: AccountId,
    id: i64,
    change: &CertChange,
    now: i64,
) -> StoreResult<bool> {
    let mut sets = vec!["updated_at = ?3".to_owned()];
    let mut args: Vec<Value> = vec![
        Value::Integer(account.0),
        Value::Integer(id),
        Value::Integer(now),
    ];
    let mut set = |column: &str, value: Value| {
        args.push(value);
        sets.push(format!("{column} = ?{}", args.len()));
    };
    if let Some(name) = &change.name {
        set("name", Value::Text(name.clone()));
    }
    if let Some(description) = &change.description {
        set("description", Value::Text(description.clone()));
    }
    if let Some(cert_type) = change.cert_type {
        set("cert_type", Value::Integer(cert_type));
    }
    if let Some(m) = &change.material {
        set("chain_pem", Value::Text(m.chain_pem.clone()));
        set("key_pem", Value::Text(m.key_pem.expose().to_owned()));
        set("names", Value::Text(m.names.join("\n")));
        set("expires_at", Value::Integer(m.expires_at));
    }
    let n = conn.execute(
        &format!(
            "UPDATE certificates SET {} WHERE account_id = ?1 AND id = ?2",
            sets.join(", ")
        ),
        &args[..],
    )?;
    Ok(n > 0)
}

/// Deletes one of `account`'s certificates; false when there is no such
/// certificate. The caller checks first that no domain uses it: a bound
/// certificate fails here with a foreign-key error.
pub fn delete(conn: &Connection, account: AccountId, id: i64) -> StoreResult<bool> {
    let n = conn.execute(
        "DELETE FROM certificates WHERE account_id = ?1 AND id = ?2",
        (account.0, id),
    )?;
    Ok(n > 0)
}

/// The names of `account`'s domains bound to certificate `id`, sorted.
pub fn domains_of(conn: &Connection, account: AccountId, id: i64) -> StoreResult<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.name FROM domain_certificates b
         JOIN domains d ON d.id = b.domain_id
         WHERE d.account_id = ?1 AND b.cert_id = ?2
         ORDER BY d.name",
    )?;
    let rows = stmt.query_map((account.0, id), |r| r.get::<String>(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The row id of one of `account`'s domains (the key of its binding).
pub fn id_of(conn: &Connection, account: AccountId, domain_name: &str) -> StoreResult<Option<i64>> {
    Ok(conn
        .query_row(
            "SELECT id FROM domains WHERE account_id = ?1 AND name = ?2",
            (account.0, domain_name),
            |r| r.get(0),
        )
        .optional()?)
}

/// Binds certificate `cert_id` to the domain `domain_name`, both
/// `account`'s, replacing any previous rule; false when either does not
/// belong to `account`.
pub fn bind(
    conn: &Connection,
    account: AccountId,
    domain_name: &str,
    cert_id: i64,
    https_enabled: bool,
    now: i64,
) -> StoreResult<bool> {
    let Some(domain_id) = id_of(conn, account, domain_name)? else {
        return Ok(false);
    };
    if get(conn, account, cert_id)?.is_none() {
        return Ok(false);
    }
    // Upsert: `ON CONFLICT … DO UPDATE` is spelled the same in SQLite and
    // PostgreSQL.
    conn.execute(
        "INSERT INTO domain_certificates (domain_id, cert_id, https_enabled, updated_at)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (domain_id) DO UPDATE
         SET cert_id = excluded.cert_id, https_enabled = excluded.https_enabled,
             updated_at = excluded.updated_at",
        (domain_id, cert_id, i64::from(https_enabled), now),
    )?;
    Ok(true)
}

/// Switches HTTPS on or off for one of `account`'s bound domains; false
/// when the domain has no rule.
pub fn set_https(
    conn: &Connection,
    account: AccountId,
    domain_name: &str,
    https_enabled: bool,
    now: i64,
) -> StoreResult<bool> {
    let Some(domain_id) = id_of(conn, account, domain_name)? else {
        return Ok(false);
    };
    let n = conn.execute(
        "UPDATE domain_certificates SET https_enabled = ?2, updated_at = ?3 WHERE domain_id = ?1",
        (domain_id, i64::from(https_enabled), now),
    )?;
    Ok(n > 0)
}

/// Removes the certificate rule of one of `account`'s domains; false when
/// it had none.
pub fn unbind(conn: &Connection, account: AccountId, domain_name: &str) -> StoreResult<bool> {
    let Some(domain_id) = id_of(conn, account, domain_name)? else {
        return Ok(false);
    };
    let n = conn.execute(
        "DELETE FROM domain_certificates WHERE domain_id = ?1",
        [domain_id],
    )?;
    Ok(n > 0)
}

const BINDING_COLUMNS: &str = "d.name, b.https_enabled, b.updated_at";

fn binding_from_row(row: &crate::db::Row) -> crate::db::DbResult<Binding> {
    Ok(Binding {
        domain_name: row.get(0)?,
        https_enabled: row.get::<i64>(1)? != 0,
        updated_at: row.get(2)?,
        cert: Certificate::from_row_at(row, 3)?,
    })
}

/// The certificate rule of one of `account`'s domains.
pub fn binding(
    conn: &Connection,
    account: AccountId,
    domain_name: &str,
) -> StoreResult<Option<Binding>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {BINDING_COLUMNS}, {COLUMNS} FROM domain_certificates b
         JOIN domains d ON d.id = b.domain_id
         JOIN certificates c ON c.id = b.cert_id
         WHERE d.account_id = ?1 AND c.account_id = ?1 AND d.name = ?2"
    ))?;
    Ok(stmt
        .query_row((account.0, domain_name), binding_from_row)
        .optional()?)
}

/// One page of `account`'s certificate rules matching `filter`, and the
/// number of matches in all.
pub fn list_bindings(
    conn: &Connection,
    account: AccountId,
    filter: &BindingFilter,
    offset: u64,
    limit: u64,
) -> StoreResult<(u64, Vec<Binding>)> {
    let mut clauses = vec![
        "d.account_id = ?1".to_owned(),
        "c.account_id = ?1".to_owned(),
    ];
    let mut args: Vec<Value> = vec![Value::Integer(account.0)];
    if let Some(name) = &filter.domain_name {
        args.push(Value::Text(name.clone()));
        clauses.push(format!("d.name = ?{}", args.len()));
    }
    if let Some(search) = &filter.search {
        // Escape LIKE's wildcards so the search is a plain substring on
        // every database; names are stored lower-case, so lower-casing the
        // needle makes SQLite's and PostgreSQL's LIKE agree on case.
        let escaped: String = search
            .to_ascii_lowercase()
            .chars()
            .flat_map(|ch| match ch {
                '%' | '_' | '\\' => vec!['\\', ch],
                other => vec![other],
            })
            .collect();
        args.push(Value::Text(format!("%{escaped}%")));
        clauses.push(format!("d.name LIKE ?{} ESCAPE '\\'", args.len()));
    }
    let from = format!(
        "FROM domain_certificates b
         JOIN domains d ON d.id = b.domain_id
         JOIN certificates c ON c.id = b.cert_id
         WHERE {}",
        clauses.join(" AND ")
    );
    let total: i64 = conn.query_row(&format!("SELECT COUNT(*) {from}"), &args[..], |r| r.get(0))?;
    let order = match filter.order {
        BindingOrder::DomainName => "d.name",
        BindingOrder::ExpiryAsc => "c.expires_at ASC, d.name",
        BindingOrder::ExpiryDesc => "c.expires_at DESC, d.name",
    };
    let n = args.len();
    args.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
    args.push(Value::Integer(i64::try_from(offset).unwrap_or(i64::MAX)));
    let mut stmt = conn.prepare(&format!(
        "SELECT {BINDING_COLUMNS}, {COLUMNS} {from} ORDER BY {order} LIMIT ?{} OFFSET ?{}",
        n + 1,
        n + 2
    ))?;
    let rows = stmt.query_map(&args[..], binding_from_row)?;
    Ok((
        u64::try_from(total).unwrap_or(0),
        rows.collect::<Result<_, _>>()?,
    ))
}

/// The media plane's entry point for HTTPS and RTMPS: the certificate
/// chain, private key and switch of the domain `domain_name` (play
/// domains serve HTTPS and RTMPS, push domains RTMPS), whoever owns it
/// (domain names are unique across accounts, and a TLS handshake only
/// knows the SNI name). `None` when the name is not a domain or has no
/// certificate rule; a rule with `https_enabled == false` should not be
/// served. The key is for the TLS stack only: never log it.
pub fn binding_for_domain(conn: &Connection, domain_name: &str) -> StoreResult<Option<TlsBinding>> {
    Ok(conn
        .query_row(
            "SELECT c.chain_pem, c.key_pem, b.https_enabled FROM domain_certificates b
             JOIN domains d ON d.id = b.domain_id
             JOIN certificates c ON c.id = b.cert_id AND c.account_id = d.account_id
             WHERE d.name = ?1",
            [domain_name],
            |r| {
                Ok(TlsBinding {
                    chain_pem: r.get(0)?,
                    key_pem: PrivateKeyPem(r.get(1)?),
                    https_enabled: r.get::<i64>(2)? != 0,
                })
            },
        )
        .optional()?)
}

/// [`binding_for_domain`] for every domain that has a certificate
/// rule, by domain name: what the media plane's policy snapshot loads in
/// one query. Keys are for the TLS stack only: never log them.
pub fn all_tls_bindings(conn: &Connection) -> StoreResult<Vec<(String, TlsBinding)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.name, c.chain_pem, c.key_pem, b.https_enabled FROM domain_certificates b
         JOIN domains d ON d.id = b.domain_id
         JOIN certificates c ON c.id = b.cert_id AND c.account_id = d.account_id
         ORDER BY d.name",
    )?;
    let rows = stmt.query_map((), |r| {
        Ok((
            r.get::<String>(0)?,
            TlsBinding {
                chain_pem: r.get(1)?,
                key_pem: PrivateKeyPem(r.get(2)?),
                https_enabled: r.get::<i64>(3)? != 0,
            },
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{accounts, Store};

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open_for_tests(&dir.path().join("data")).expect("open");
        (dir, store)
    }

    fn account(conn: &Connection, name: &str) -> AccountId {
        accounts::ensure(conn, name).expect("account").id
    }

    fn add_domain(conn: &Connection, account: AccountId, name: &str, domain_type: i64) {
        conn.execute(
            "INSERT INTO domains (id, account_id, name, domain_type, status, play_type,
                 is_delay_live, is_mini_program_live, created_at)
             SELECT COALESCE(MAX(id), 0) + 1, ?1, ?2, ?3, 1, 1, 0, 0, 0 FROM domains",
            (account.0, name, domain_type),
        )
        .expect("domain");
    }

    fn new_cert(account: AccountId, name: &str) -> NewCertificate {
        NewCertificate {
            account_id: account,
            name: name.to_owned(),
            description: "d".to_owned(),
            cert_type: 0,
            material: Material {
                chain_pem: format!("chain of {name}"),
                key_pem: PrivateKeyPem::new(format!("key of {name}")),
                names: vec!["*.example.com".to_owned(), "example.com".to_owned()],
                expires_at: 2_000_000_000,
            },
            now: 1_700_000_000,
        }
    }

    #[test]
    fn a_certificate_round_trips_with_two_ids_and_no_key_in_its_description() {
        let (_dir, store) = store();
        store
            .run_blocking(|c| {
                let a = account(c, "a");
                let one = insert(c, &new_cert(a, "one"))?;
                let two = insert(c, &new_cert(a, "two"))?;
                assert_eq!(two.id, one.id + 1);
                assert_eq!(one.cloud_id.len(), CLOUD_ID_LEN);
                assert!(one.cloud_id.chars().all(|ch| ch.is_ascii_alphanumeric()));
                assert_ne!(one.cloud_id, two.cloud_id);
                assert_eq!(one.names, ["*.example.com", "example.com"]);
                assert_eq!(get(c, a, one.id)?, Some(one.clone()));
                assert_eq!(find_by_cloud_id(c, a, &one.cloud_id)?, Some(one.clone()));
                assert_eq!(list(c, a)?, vec![one.clone(), two]);
                assert_eq!(
                    private_key(c, a, one.id)?.map(|k| k.expose().to_owned()),
                    Some("key of one".to_owned())
                );
                assert!(!format!("{one:?}").contains("key of"));
                assert!(!format!("{:?}", new_cert(a, "x")).contains("key of"));
                Ok(())
            })
            .expect("store");
    }

    #[test]
    fn another_account_cannot_see_change_bind_or_delete_a_certificate() {
        let (_dir, store) = store();
        store
            .run_blocking(|c| {
                let a = account(c, "a");
                let b = account(c, "b");
                add_domain(c, b, "play.b.com", 1);
                let cert = insert(c, &new_cert(a, "one"))?;
                assert_eq!(get(c, b, cert.id)?, None);
                assert_eq!(find_by_cloud_id(c, b, &cert.cloud_id)?, None);
                assert!(list(c, b)?.is_empty());
                assert_eq!(private_key(c, b, cert.id)?, None);
                let change = CertChange {
                    name: Some("stolen".into()),
                    ..CertChange::default()
                };
                assert!(!update(c, b, cert.id, &change, 1)?);
                assert!(!bind(c, b, "play.b.com", cert.id, true, 1)?);
                assert!(!delete(c, b, cert.id)?);
                assert_eq!(get(c, a, cert.id)?.map(|x| x.name), Some("one".into()));
                Ok(())
            })
            .expect("store");
    }

    #[test]
    fn updates_change_only_what_they_name() {
        let (_dir, store) = store();
        store
            .run_blocking(|c| {
                let a = account(c, "a");
                let cert = insert(c, &new_cert(a, "one"))?;
                let change = CertChange {
                    description: Some("new".into()),
                    material: Some(Material {
                        chain_pem: "chain2".into(),
                        key_pem: PrivateKeyPem::new("key2"),
                        names: vec!["x.com".into()],
                        expires_at: 5,
                    }),
                    ..CertChange::default()
                };
                assert!(update(c, a, cert.id, &change, 42)?);
                let after = get(c, a, cert.id)?.expect("still there");
                assert_eq!(after.name, "one");
                assert_eq!(after.description, "new");
                assert_eq!(after.chain_pem, "chain2");
                assert_eq!(after.names, ["x.com"]);
                assert_eq!((after.expires_at, after.updated_at), (5, 42));
                assert_eq!(
                    private_key(c, a, cert.id)?.map(|k| k.expose().to_owned()),
                    Some("key2".into())
                );
                Ok(())
            })
            .expect("store");
    }

    #[test]
    fn bindings_are_listed_filtered_switched_and_dropped_with_their_domain() {
        let (_dir, store) = store();
        store
            .run_blocking(|c| {
                let a = account(c, "a");
                for name in ["a.example.com", "b.example.com", "c_x.example.com"] {
                    add_domain(c, a, name, 1);
                }
                add_domain(c, a, "push.example.com", 0);
                let early = insert(c, &new_cert(a, "early"))?;
                let mut late = new_cert(a, "late");
                late.material.expires_at += 10;
                let late = insert(c, &late)?;
                assert!(bind(c, a, "a.example.com", late.id, true, 10)?);
                assert!(bind(c, a, "b.example.com", early.id, false, 11)?);
                assert!(bind(c, a, "c_x.example.com", early.id, true, 12)?);
                assert!(!bind(c, a, "nope.example.com", early.id, true, 12)?);
                assert_eq!(
                    domains_of(c, a, early.id)?,
                    ["b.example.com", "c_x.example.com"]
                );

                let names = |filter: &BindingFilter, offset, limit| -> StoreResult<_> {
                    let (total, rows) = list_bindings(c, a, filter, offset, limit)?;
                    let names: Vec<String> = rows.into_iter().map(|b| b.domain_name).collect();
                    Ok((total, names))
                };
                let all = BindingFilter::default();
                assert_eq!(names(&all, 0, 50)?.0, 3);
                assert_eq!(names(&all, 1, 1)?, (3, vec!["b.example.com".to_owned()]));
                let by_expiry = BindingFilter {
                    order: BindingOrder::ExpiryDesc,
                    ..BindingFilter::default()
                };
                assert_eq!(names(&by_expiry, 0, 1)?.1, ["a.example.com"]);
                // `_` is literal, not LIKE's any-character.
                let search = BindingFilter {
                    search: Some("C_X".into()),
                    ..BindingFilter::default()
                };
                assert_eq!(names(&search, 0, 50)?.1, ["c_x.example.com"]);
                let search = BindingFilter {
                    search: Some("b_e".into()),
                    ..BindingFilter::default()
                };
                assert_eq!(names(&search, 0, 50)?.0, 0);

                assert!(set_https(c, a, "b.example.com", true, 20)?);
                let b = binding(c, a, "b.example.com")?.expect("bound");
                assert!(b.https_enabled);
                assert_eq!((b.cert.id, b.updated_at), (early.id, 20));

                let tls = binding_for_domain(c, "a.example.com")?.expect("served");
                assert_eq!(tls.chain_pem, "chain of late");
                assert_eq!(tls.key_pem.expose(), "key of late");
                assert!(tls.https_enabled);
                assert_eq!(binding_for_domain(c, "push.example.com")?, None);
                let all = all_tls_bindings(c)?;
                let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
                assert_eq!(names, ["a.example.com", "b.example.com", "c_x.example.com"]);
                assert_eq!(all[0].1, tls);

                assert!(unbind(c, a, "b.example.com")?);
                assert!(!unbind(c, a, "b.example.com")?);
                assert!(!set_https(c, a, "b.example.com", true, 21)?);

                // Deleting a domain drops its rule.
                c.execute("DELETE FROM domains WHERE name = 'c_x.example.com'", ())?;
                assert!(domains_of(c, a, early.id)?.is_empty());
                assert!(delete(c, a, early.id)?);
                // A bound certificate is protected by the foreign key.
                assert!(delete(c, a, late.id).is_err());
                Ok(())
            })
            .expect("store");
    }
}
