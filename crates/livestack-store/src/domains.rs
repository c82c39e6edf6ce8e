//! Live domains: push and play hostnames, each owned by one account, with
//! their URL-signing keys and (for play domains) referer rules.

use crate::db::{Connection, OptionalExtension};

use livestack_core::DomainKind;

use crate::{AccountId, StoreError, StoreResult};

/// The `domain_type` column: 0 push, 1 play (the wire values, so the
/// column reads as the API documents it).
fn kind_column(kind: DomainKind) -> i64 {
    match kind {
        DomainKind::Push => 0,
        DomainKind::Play => 1,
    }
}

fn kind_from_column(v: i64) -> DomainKind {
    if v == 0 {
        DomainKind::Push
    } else {
        DomainKind::Play
    }
}

/// The URL-signing settings of a domain (`txSecret`/`txTime`).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct AuthKeys {
    /// Whether URLs must be signed.
    pub enabled: bool,
    /// The master key (push) or key (play).
    pub key: String,
    /// The backup key; empty when unset. Both keys are accepted.
    pub backup_key: String,
    /// Seconds a URL stays valid after its `txTime`.
    pub delta: i64,
}

impl std::fmt::Debug for AuthKeys {
    // The keys are secrets: keep them out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthKeys")
            .field("enabled", &self.enabled)
            .field("delta", &self.delta)
            .finish_non_exhaustive()
    }
}

/// Referer allow/deny list of a play domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referer {
    /// Whether the list is checked.
    pub enabled: bool,
    /// 0 deny list, 1 allow list.
    pub list_type: i64,
    /// Whether requests without a Referer pass.
    pub allow_empty: bool,
    /// The rules, `;`-separated, as the API stores them.
    pub rules: String,
}

impl Default for Referer {
    fn default() -> Self {
        Referer {
            enabled: false,
            list_type: 0,
            allow_empty: true,
            rules: String::new(),
        }
    }
}

/// A live domain as stored. Enumerations keep their wire numbers; the API
/// layer validates them before they get here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// The owning account.
    pub account_id: AccountId,
    /// The DNS name, lower-case.
    pub name: String,
    /// Push or play (stored as 0 and 1, as on the wire).
    pub kind: DomainKind,
    /// Whether it serves (`ForbidLiveDomain` turns it off).
    pub enabled: bool,
    /// 1 mainland, 2 global, 3 outside the mainland.
    pub play_type: i64,
    /// 0 normal, 1 delayed ("slow") live.
    pub is_delay_live: i64,
    /// 0 standard, 1 mini-program live.
    pub is_mini_program_live: i64,
    /// When it was added (Unix seconds).
    pub created_at: i64,
    /// Push keys on a push domain, play keys on a play domain.
    pub auth: AuthKeys,
    /// Referer rules (play domains).
    pub referer: Referer,
}

/// A domain about to be stored.
pub type NewDomain = Domain;

/// Filters of `DescribeLiveDomains`; `None` matches everything. The API
/// answers that action from its in-memory read model of the domains.
#[derive(Debug, Clone, Default)]
pub struct DomainFilter {
    /// Only this kind.
    pub kind: Option<DomainKind>,
    /// Only enabled (`Some(true)`) or disabled domains.
    pub enabled: Option<bool>,
    /// Only this play type.
    pub play_type: Option<i64>,
    /// Only this delay flag.
    pub is_delay_live: Option<i64>,
    /// Only names starting with this.
    pub prefix: Option<String>,
}

impl DomainFilter {
    /// Whether `d` passes the filter (the same test `list` makes in SQL).
    pub fn matches(&self, d: &Domain) -> bool {
        self.kind.is_none_or(|v| d.kind == v)
            && self.enabled.is_none_or(|v| d.enabled == v)
            && self.play_type.is_none_or(|v| d.play_type == v)
            && self.is_delay_live.is_none_or(|v| d.is_delay_live == v)
            && self.prefix.as_deref().is_none_or(|p| d.name.starts_with(p))
    }
}

impl Domain {
    /// A domain as `AddLiveDomain` makes it by default: enabled, mainland
    /// play type, normal live, no keys and no referer rules.
    pub fn new(
        account_id: AccountId,
        name: impl Into<String>,
        kind: DomainKind,
        created_at: i64,
    ) -> Domain {
        Domain {
            account_id,
            name: name.into(),
            kind,
            enabled: true,
            play_type: 1,
            is_delay_live: 0,
            is_mini_program_live: 0,
            created_at,
            auth: AuthKeys::default(),
            referer: Referer::default(),
        }
    }

    fn from_row(row: &crate::db::Row) -> crate::db::DbResult<Domain> {
        Ok(Domain {
            account_id: AccountId(row.get(0)?),
            name: row.get(1)?,
            kind: kind_from_column(row.get(2)?),
            enabled: row.get::<i64>(3)? != 0,
            play_type: row.get(4)?,
            is_delay_live: row.get(5)?,
            is_mini_program_live: row.get(6)?,
            created_at: row.get(7)?,
            auth: AuthKeys {
                enabled: row.get::<i64>(8)? != 0,
                key: row.get(9)?,
                backup_key: row.get(10)?,
                delta: row.get(11)?,
            },
            referer: Referer {
                enabled: row.get::<i64>(12)? != 0,
                list_type: row.get(13)?,
                allow_empty: row.get::<i64>(14)? != 0,
                rules: row.get(15)?,
            },
        })
    }
}

const COLUMNS: &str = "account_id, name, domain_type, status, play_type, is_delay_live, \
                       is_mini_program_live, created_at, auth_enabled, auth_key, \
                       auth_backup_key, auth_delta, referer_enabled, referer_type, \
                       referer_allow_empty, referer_rules";

/// How many domains an account has (for the per-account quota).
pub fn count(conn: &Connection, account: AccountId) -> StoreResult<u64> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM domains WHERE account_id = ?1",
        [account.0],
        |r| r.get(0),
    )?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Finds one of `account`'s domains by name.
pub fn find(conn: &Connection, account: AccountId, name: &str) -> StoreResult<Option<Domain>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM domains WHERE account_id = ?1 AND name = ?2"
    ))?;
    Ok(stmt
        .query_row((account.0, name), Domain::from_row)
        .optional()?)
}

/// Finds a domain by name, whoever owns it (names are unique across
/// accounts; the media plane and the `url` command look domains up by name).
pub fn find_any(conn: &Connection, name: &str) -> StoreResult<Option<Domain>> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM domains WHERE name = ?1"),
            [name],
            Domain::from_row,
        )
        .optional()?)
}

/// Every domain of every account (for the media plane's policy).
pub fn all(conn: &Connection) -> StoreResult<Vec<Domain>> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM domains ORDER BY name"))?;
    let rows = stmt.query_map((), Domain::from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Stores a new domain; `Conflict` if the name is taken by any account.
pub fn insert(conn: &Connection, d: &NewDomain) -> StoreResult<()> {
    conn.execute(
        &format!(
            "INSERT INTO domains ({COLUMNS}) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
        ),
        crate::params![
            d.account_id.0,
            d.name,
            kind_column(d.kind),
            i64::from(d.enabled),
            d.play_type,
            d.is_delay_live,
            d.is_mini_program_live,
            d.created_at,
            i64::from(d.auth.enabled),
            d.auth.key,
            d.auth.backup_key,
            d.auth.delta,
            i64::from(d.referer.enabled),
            d.referer.list_type,
            i64::from(d.referer.allow_empty),
            d.referer.rules,
        ],
    )
    .map_err(|e| {
        if e.is_unique_violation() {
            StoreError::Conflict { what: "domain" }
        } else {
            e.into()
        }
    })?;
    Ok(())
}

/// Writes every mutable field of an existing domain (matched by owner and
/// name); false when there is no such domain.
pub fn update(conn: &Connection, d: &Domain) -> StoreResult<bool> {
    let n = conn.execute(
        "UPDATE domains SET status = ?3, play_type = ?4, is_delay_live = ?5,
             is_mini_program_live = ?6, auth_enabled = ?7, auth_key = ?8,
             auth_backup_key = ?9, auth_delta = ?10, referer_enabled = ?11,
             referer_type = ?12, referer_allow_empty = ?13, referer_rules = ?14
         WHERE account_id = ?1 AND name = ?2",
        crate::params![
            d.account_id.0,
            d.name,
            i64::from(d.enabled),
            d.play_type,
            d.is_delay_live,
            d.is_mini_program_live,
            i64::from(d.auth.enabled),
            d.auth.key,
            d.auth.backup_key,
            d.auth.delta,
            i64::from(d.referer.enabled),
            d.referer.list_type,
            i64::from(d.referer.allow_empty),
            d.referer.rules,
        ],
    )?;
    Ok(n > 0)
}

/// Deletes one of `account`'s domains of the given type; false when there
/// is no such domain.
pub fn delete(
    conn: &Connection,
    account: AccountId,
    name: &str,
    kind: DomainKind,
) -> StoreResult<bool> {
    let n = conn.execute(
        "DELETE FROM domains WHERE account_id = ?1 AND name = ?2 AND domain_type = ?3",
        (account.0, name, kind_column(kind)),
    )?;
    Ok(n > 0)
}

/// Whether `account` has proven it controls `main_domain`.
pub fn owner_verified(
    conn: &Connection,
    account: AccountId,
    main_domain: &str,
) -> StoreResult<bool> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM domain_owners WHERE account_id = ?1 AND main_domain = ?2",
        crate::params![account.0, main_domain],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

/// Records that `account` proved it controls `main_domain` by `method`
/// at `now` (again: the latest proof is kept).
pub fn record_owner(
    conn: &Connection,
    account: AccountId,
    main_domain: &str,
    method: &str,
    now: i64,
) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO domain_owners (account_id, main_domain, method, verified_at)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (account_id, main_domain) DO UPDATE SET method = excluded.method,
             verified_at = excluded.verified_at",
        crate::params![account.0, main_domain, method, now],
    )?;
    Ok(())
}

/// Whether an account other than `account` has `main_domain` or a domain
/// under it. Domain names hold letters, digits, `-` and `.` only, so the
/// pattern has nothing to escape.
pub fn held_by_another(
    conn: &Connection,
    account: AccountId,
    main_domain: &str,
) -> StoreResult<bool> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM domains
         WHERE account_id <> ?1 AND (name = ?2 OR name LIKE ?3)",
        crate::params![account.0, main_domain, format!("%.{main_domain}")],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}
