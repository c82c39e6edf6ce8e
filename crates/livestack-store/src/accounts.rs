//! Accounts: the owners of every resource.

use crate::db::{Connection, OptionalExtension};

use crate::{AccountId, StoreResult};

/// An account, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Internal id; every resource row refers to it.
    pub id: AccountId,
    /// The account's UIN, as Tencent Cloud numbers accounts.
    pub uin: String,
    /// The account's AppId (appears in callbacks and storage paths).
    pub app_id: i64,
    /// A human name ("root" for the first account).
    pub name: String,
}

impl Account {
    fn from_row(row: &crate::db::Row) -> crate::db::DbResult<Account> {
        Ok(Account {
            id: AccountId(row.get(0)?),
            uin: row.get(1)?,
            app_id: row.get(2)?,
            name: row.get(3)?,
        })
    }
}

const COLUMNS: &str = "id, uin, app_id, name";

/// Finds an account by name.
pub fn find_by_name(conn: &Connection, name: &str) -> StoreResult<Option<Account>> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM accounts WHERE name = ?1"),
            [name],
            Account::from_row,
        )
        .optional()?)
}

/// Finds an account by its id.
pub fn get(conn: &Connection, id: AccountId) -> StoreResult<Option<Account>> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM accounts WHERE id = ?1"),
            [id.0],
            Account::from_row,
        )
        .optional()?)
}

/// Lists every account, oldest first.
pub fn list(conn: &Connection) -> StoreResult<Vec<Account>> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM accounts ORDER BY id"))?;
    let rows = stmt.query_map((), Account::from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Returns the account called `name`, creating it if it does not exist.
///
/// UINs and AppIds are handed out in sequence from the first account's,
/// which mimics the shape of real ones (10-digit UIN, 1250000000-range AppId).
pub fn ensure(conn: &Connection, name: &str) -> StoreResult<Account> {
    if let Some(account) = find_by_name(conn, name)? {
        return Ok(account);
    }
    let next: i64 = conn.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM accounts", (), |r| {
        r.get(0)
    })?;
    conn.execute(
        "INSERT INTO accounts (id, uin, app_id, name, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        (
            next,
            (100_000_000_000_i64 + next).to_string(),
            1_250_000_000_i64 + next,
            name,
            livestack_core::Clock::system().unix(),
        ),
    )?;
    find_by_name(conn, name)?.ok_or(crate::StoreError::Query(crate::DbError::NoRows))
}
