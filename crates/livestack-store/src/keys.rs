//! API keys (SecretId / SecretKey pairs), permanent or temporary.

use crate::db::{Connection, OptionalExtension};
use rand::distributions::{Alphanumeric, DistString};

use crate::{AccountId, StoreError, StoreResult};

/// An API key as stored. `secret_key` is a secret: never log this struct.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// The public key id (`AKID…`).
    pub secret_id: String,
    /// The signing secret.
    pub secret_key: String,
    /// The account the key acts for.
    pub account_id: AccountId,
    /// Disabled keys authenticate nothing.
    pub enabled: bool,
    /// The session token of a temporary key; `None` for a permanent key.
    pub token: Option<String>,
    /// When a temporary key stops working (Unix seconds).
    pub expires_at: Option<i64>,
    /// When the key was made (Unix seconds).
    pub created_at: i64,
    /// The sub-account (`cam_users` id) the key belongs to; `None` for the
    /// root account's own keys.
    pub user_id: Option<i64>,
    /// The name a federation token was asked for (`GetFederationToken`).
    pub session_name: Option<String>,
    /// The policy a federation token was limited to.
    pub session_policy: Option<String>,
    /// The role (`cam_roles` id) credentials from AssumeRole act as.
    pub role_id: Option<i64>,
}

impl std::fmt::Debug for ApiKey {
    // Hand-written so that a stray `{:?}` never prints a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("secret_id", &self.secret_id)
            .field("account_id", &self.account_id)
            .field("enabled", &self.enabled)
            .field("temporary", &self.token.is_some())
            .field("expires_at", &self.expires_at)
            .field("user_id", &self.user_id)
            .field("session_name", &self.session_name)
            .finish_non_exhaustive()
    }
}

/// A key about to be stored.
#[derive(Clone)]
pub struct NewKey {
    /// The public key id.
    pub secret_id: String,
    /// The signing secret.
    pub secret_key: String,
    /// The owning account.
    pub account_id: AccountId,
    /// Session token and expiry, for a temporary key.
    pub temporary: Option<(String, i64)>,
    /// The sub-account it belongs to; `None` for the root account.
    pub user_id: Option<i64>,
    /// The session name of a federation token or a role's credentials.
    pub session_name: Option<String>,
    /// The policy a federation token or a role's credentials are limited to.
    pub session_policy: Option<String>,
    /// The role credentials from AssumeRole act as.
    pub role_id: Option<i64>,
}

impl NewKey {
    /// A fresh random key in Tencent's shapes: a 36-character `AKID…` id and
    /// a 32-character secret. With `ttl_secs`, the key is temporary and gets
    /// a session token that requests must carry (`X-TC-Token`).
    pub fn generate(account_id: AccountId, ttl_secs: Option<i64>) -> NewKey {
        let mut rng = rand::thread_rng();
        NewKey {
            secret_id: format!("AKID{}", Alphanumeric.sample_string(&mut rng, 32)),
            secret_key: Alphanumeric.sample_string(&mut rng, 32),
            account_id,
            temporary: ttl_secs.map(|ttl| {
                (
                    Alphanumeric.sample_string(&mut rng, 64),
                    livestack_core::Clock::system().unix() + ttl,
                )
            }),
            user_id: None,
            session_name: None,
            session_policy: None,
            role_id: None,
        }
    }

    /// The same key, acting as the role `role_id`.
    pub fn for_role(mut self, role_id: i64) -> NewKey {
        self.role_id = Some(role_id);
        self
    }

    /// The same key, belonging to the sub-account `user_id`.
    pub fn for_user(mut self, user_id: Option<i64>) -> NewKey {
        self.user_id = user_id;
        self
    }

    /// The same key, with a session name and, if given, limited to a
    /// session policy.
    pub fn with_session(mut self, name: String, policy: Option<String>) -> NewKey {
        self.session_name = Some(name);
        self.session_policy = policy;
        self
    }
}

/// True when `id` has the shape of a Tencent Cloud API key id: `AKID`
/// followed by letters and digits (real ids are 36 characters long; any
/// length from 8 to 64 in all is accepted for keys users bring).
pub fn is_well_formed_secret_id(id: &str) -> bool {
    id.len() >= 8
        && id.len() <= 64
        && id.starts_with("AKID")
        && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl ApiKey {
    fn from_row(row: &crate::db::Row) -> crate::db::DbResult<ApiKey> {
        Ok(ApiKey {
            secret_id: row.get(0)?,
            secret_key: row.get(1)?,
            account_id: AccountId(row.get(2)?),
            enabled: row.get(3)?,
            token: row.get(4)?,
            expires_at: row.get(5)?,
            created_at: row.get(6)?,
            user_id: row.get(7)?,
            session_name: row.get(8)?,
            session_policy: row.get(9)?,
            role_id: row.get(10)?,
        })
    }
}

const COLUMNS: &str = "secret_id, secret_key, account_id, enabled, token, expires_at, created_at, \
     user_id, session_name, session_policy, role_id";

/// Looks a key up by its id.
pub fn find(conn: &Connection, secret_id: &str) -> StoreResult<Option<ApiKey>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM api_keys WHERE secret_id = ?1"
    ))?;
    Ok(stmt.query_row([secret_id], ApiKey::from_row).optional()?)
}

/// Stores a new key; `Conflict` if the id is taken.
pub fn insert(conn: &Connection, key: &NewKey) -> StoreResult<()> {
    let (token, expires_at) = match &key.temporary {
        Some((token, expires_at)) => (Some(token.as_str()), Some(*expires_at)),
        None => (None, None),
    };
    conn.execute(
        &format!(
            "INSERT INTO api_keys ({COLUMNS}) VALUES (?1, ?2, ?3, TRUE, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
        ),
        crate::params![
            key.secret_id.as_str(),
            key.secret_key.as_str(),
            key.account_id.0,
            token,
            expires_at,
            livestack_core::Clock::system().unix(),
            key.user_id,
            key.session_name.as_deref(),
            key.session_policy.as_deref(),
            key.role_id,
        ],
    )
    .map_err(|e| {
        if e.is_unique_violation() {
            StoreError::Conflict { what: "API key" }
        } else {
            e.into()
        }
    })?;
    Ok(())
}

/// Makes sure a permanent key with this id and secret exists, enabled, for
/// `account_id` (used for keys given through the environment). Returns true
/// when anything changed.
pub fn upsert(conn: &Connection, key: &NewKey) -> StoreResult<bool> {
    match find(conn, &key.secret_id)? {
        Some(existing)
            if existing.secret_key == key.secret_key
                && existing.account_id == key.account_id
                && existing.enabled
                && existing.token.is_none()
                && existing.user_id.is_none()
                && existing.role_id.is_none() =>
        {
            Ok(false)
        }
        Some(_) => {
            conn.execute(
                "UPDATE api_keys SET secret_key = ?2, account_id = ?3, enabled = TRUE,
                     token = NULL, expires_at = NULL, user_id = NULL, session_name = NULL,
                     session_policy = NULL, role_id = NULL
                 WHERE secret_id = ?1",
                (&key.secret_id, &key.secret_key, key.account_id.0),
            )?;
            Ok(true)
        }
        None => {
            insert(conn, key)?;
            Ok(true)
        }
    }
}

/// Every key, oldest first.
pub fn list(conn: &Connection) -> StoreResult<Vec<ApiKey>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM api_keys ORDER BY created_at, secret_id"
    ))?;
    let rows = stmt.query_map((), ApiKey::from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Enables or disables a key; false when there is no such key.
pub fn set_enabled(conn: &Connection, secret_id: &str, enabled: bool) -> StoreResult<bool> {
    let n = conn.execute(
        "UPDATE api_keys SET enabled = ?2 WHERE secret_id = ?1",
        (secret_id, enabled),
    )?;
    Ok(n > 0)
}

/// The permanent keys of one owner in an account (the root's own with
/// `user_id` `None`), oldest first.
pub fn list_permanent(
    conn: &Connection,
    account: AccountId,
    user_id: Option<i64>,
) -> StoreResult<Vec<ApiKey>> {
    let rows = match user_id {
        None => conn.query_map(
            &format!(
                "SELECT {COLUMNS} FROM api_keys
                 WHERE account_id = ?1 AND token IS NULL AND user_id IS NULL
                 ORDER BY created_at, secret_id"
            ),
            [account.0],
            ApiKey::from_row,
        )?,
        Some(user) => conn.query_map(
            &format!(
                "SELECT {COLUMNS} FROM api_keys
                 WHERE account_id = ?1 AND token IS NULL AND user_id = ?2
                 ORDER BY created_at, secret_id"
            ),
            [account.0, user],
            ApiKey::from_row,
        )?,
    };
    Ok(rows)
}

/// Deletes a key; false when there is no such key.
pub fn delete(conn: &Connection, secret_id: &str) -> StoreResult<bool> {
    Ok(conn.execute("DELETE FROM api_keys WHERE secret_id = ?1", [secret_id])? > 0)
}

/// Deletes the permanent keys of a sub-account. Its federation tokens
/// stay until they expire, and answer `InternalError.InvalidUser`.
pub fn delete_for_user(conn: &Connection, account: AccountId, user_id: i64) -> StoreResult<usize> {
    Ok(conn.execute(
        "DELETE FROM api_keys WHERE account_id = ?1 AND user_id = ?2 AND token IS NULL",
        (account.0, user_id),
    )?)
}

/// How many keys exist (zero on a brand-new data directory).
pub fn count(conn: &Connection) -> StoreResult<i64> {
    Ok(conn.query_row("SELECT COUNT(*) FROM api_keys", (), |r| r.get(0))?)
}
