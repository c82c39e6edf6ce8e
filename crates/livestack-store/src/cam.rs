//! Access management rows: sub-accounts, groups, custom policies and their
//! attachments, every one scoped by its root account.
//!
//! Owns: the SQL. Must not: parse or evaluate policy documents (core's
//! `cam` does), or know preset policies (the API layer defines them and
//! stores only their ids in attachments).

use crate::db::{Connection, OptionalExtension, Row};
use crate::{AccountId, StoreError, StoreResult};

/// A sub-account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Row id (the wire `Uin` and `Uid` are derived from it).
    pub id: i64,
    /// The root account.
    pub account: AccountId,
    /// Unique within the account.
    pub name: String,
    /// `Remark`.
    pub remark: String,
    /// `ConsoleLogin` (0 or 1).
    pub console_login: i64,
    /// `PhoneNum`.
    pub phone_num: String,
    /// `CountryCode`.
    pub country_code: String,
    /// `Email`.
    pub email: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// What an update may change (each `None` is left as it is).
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    /// A new name.
    pub name: Option<String>,
    /// `Remark`.
    pub remark: Option<String>,
    /// `ConsoleLogin`.
    pub console_login: Option<i64>,
    /// `PhoneNum`.
    pub phone_num: Option<String>,
    /// `CountryCode`.
    pub country_code: Option<String>,
    /// `Email`.
    pub email: Option<String>,
}

const USER_COLUMNS: &str =
    "id, account_id, name, remark, console_login, phone_num, country_code, email, created_at";

fn user_from_row(row: &Row) -> crate::db::DbResult<User> {
    Ok(User {
        id: row.get(0)?,
        account: AccountId(row.get(1)?),
        name: row.get(2)?,
        remark: row.get(3)?,
        console_login: row.get(4)?,
        phone_num: row.get(5)?,
        country_code: row.get(6)?,
        email: row.get(7)?,
        created_at: row.get(8)?,
    })
}

fn conflict(what: &'static str) -> impl Fn(crate::DbError) -> StoreError {
    move |e| {
        if e.is_unique_violation() {
            StoreError::Conflict { what }
        } else {
            e.into()
        }
    }
}

/// Stores a new sub-account; `Conflict` when the name is taken.
pub fn insert_user(conn: &Connection, user: &User) -> StoreResult<User> {
    let id: i64 = conn
        .query_row(
            "INSERT INTO cam_users (account_id, name, remark, console_login, phone_num,
                 country_code, email, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
            crate::params![
                user.account.0,
                user.name.as_str(),
                user.remark.as_str(),
                user.console_login,
                user.phone_num.as_str(),
                user.country_code.as_str(),
                user.email.as_str(),
                user.created_at,
            ],
            |r| r.get(0),
        )
        .map_err(conflict("user"))?;
    Ok(User { id, ..user.clone() })
}

/// The sub-account called `name`.
pub fn user_by_name(
    conn: &Connection,
    account: AccountId,
    name: &str,
) -> StoreResult<Option<User>> {
    Ok(conn
        .query_row(
            &format!("SELECT {USER_COLUMNS} FROM cam_users WHERE account_id = ?1 AND name = ?2"),
            crate::params![account.0, name],
            user_from_row,
        )
        .optional()?)
}

/// The sub-account with this row id.
pub fn user(conn: &Connection, account: AccountId, id: i64) -> StoreResult<Option<User>> {
    Ok(conn
        .query_row(
            &format!("SELECT {USER_COLUMNS} FROM cam_users WHERE account_id = ?1 AND id = ?2"),
            [account.0, id],
            user_from_row,
        )
        .optional()?)
}

/// Every sub-account of the account, oldest first.
pub fn users(conn: &Connection, account: AccountId) -> StoreResult<Vec<User>> {
    Ok(conn.query_map(
        &format!("SELECT {USER_COLUMNS} FROM cam_users WHERE account_id = ?1 ORDER BY id"),
        [account.0],
        user_from_row,
    )?)
}

/// Applies `change`; false when there is no such user, `Conflict` when the
/// new name is taken.
pub fn update_user(
    conn: &Connection,
    account: AccountId,
    id: i64,
    change: &UserChange,
) -> StoreResult<bool> {
    let Some(mut u) = user(conn, account, id)? else {
        return Ok(false);
    };
    if let Some(v) = &change.name {
        u.name = v.clone();
    }
    if let Some(v) = &change.remark {
        u.remark = v.clone();
    }
    if let Some(v) = change.console_login {
        u.console_login = v;
    }
    if let Some(v) = &change.phone_num {
        u.phone_num = v.clone();
    }
    if let Some(v) = &change.country_code {
        u.country_code = v.clone();
    }
    if let Some(v) = &change.email {
        u.email = v.clone();
    }
    conn.execute(
        "UPDATE cam_users SET name = ?3, remark = ?4, console_login = ?5, phone_num = ?6,
             country_code = ?7, email = ?8
         WHERE account_id = ?1 AND id = ?2",
        crate::params![
            account.0,
            id,
            u.name.as_str(),
            u.remark.as_str(),
            u.console_login,
            u.phone_num.as_str(),
            u.country_code.as_str(),
            u.email.as_str(),
        ],
    )
    .map_err(conflict("user"))?;
    Ok(true)
}

/// Deletes a sub-account with its keys, group memberships and policy
/// attachments; false when there is no such user.
pub fn delete_user(conn: &Connection, account: AccountId, id: i64) -> StoreResult<bool> {
    crate::keys::delete_for_user(conn, account, id)?;
    conn.execute("DELETE FROM cam_group_members WHERE user_id = ?1", [id])?;
    conn.execute(
        "DELETE FROM cam_attachments WHERE account_id = ?1 AND target_kind = 'user' AND target_id = ?2",
        [account.0, id],
    )?;
    Ok(conn.execute(
        "DELETE FROM cam_users WHERE account_id = ?1 AND id = ?2",
        [account.0, id],
    )? > 0)
}

// ------------------------------------------------------------------ groups

/// A user group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Row id, the wire `GroupId`.
    pub id: i64,
    /// The root account.
    pub account: AccountId,
    /// Unique within the account.
    pub name: String,
    /// `Remark`.
    pub remark: String,
    /// Unix seconds.
    pub created_at: i64,
}

fn group_from_row(row: &Row) -> crate::db::DbResult<Group> {
    Ok(Group {
        id: row.get(0)?,
        account: AccountId(row.get(1)?),
        name: row.get(2)?,
        remark: row.get(3)?,
        created_at: row.get(4)?,
    })
}

const GROUP_COLUMNS: &str = "id, account_id, name, remark, created_at";

/// Stores a new group; `Conflict` when the name is taken.
pub fn insert_group(
    conn: &Connection,
    account: AccountId,
    name: &str,
    remark: &str,
    now: i64,
) -> StoreResult<i64> {
    conn.query_row(
        "INSERT INTO cam_groups (account_id, name, remark, created_at) VALUES (?1, ?2, ?3, ?4)
         RETURNING id",
        crate::params![account.0, name, remark, now],
        |r| r.get(0),
    )
    .map_err(conflict("group"))
}

/// The group with this id.
pub fn group(conn: &Connection, account: AccountId, id: i64) -> StoreResult<Option<Group>> {
    Ok(conn
        .query_row(
            &format!("SELECT {GROUP_COLUMNS} FROM cam_groups WHERE account_id = ?1 AND id = ?2"),
            [account.0, id],
            group_from_row,
        )
        .optional()?)
}

/// Every group of the account, oldest first.
pub fn groups(conn: &Connection, account: AccountId) -> StoreResult<Vec<Group>> {
    Ok(conn.query_map(
        &format!("SELECT {GROUP_COLUMNS} FROM cam_groups WHERE account_id = ?1 ORDER BY id"),
        [account.0],
        group_from_row,
    )?)
}

/// Renames a group or changes its remark; false when there is none.
pub fn update_group(
    conn: &Connection,
    account: AccountId,
    id: i64,
    name: Option<&str>,
    remark: Option<&str>,
) -> StoreResult<bool> {
    let Some(g) = group(conn, account, id)? else {
        return Ok(false);
    };
    conn.execute(
        "UPDATE cam_groups SET name = ?3, remark = ?4 WHERE account_id = ?1 AND id = ?2",
        crate::params![
            account.0,
            id,
            name.unwrap_or(&g.name),
            remark.unwrap_or(&g.remark)
        ],
    )
    .map_err(conflict("group"))?;
    Ok(true)
}

/// Deletes a group, its memberships and attachments; false when there is none.
pub fn delete_group(conn: &Connection, account: AccountId, id: i64) -> StoreResult<bool> {
    if group(conn, account, id)?.is_none() {
        return Ok(false);
    }
    conn.execute("DELETE FROM cam_group_members WHERE group_id = ?1", [id])?;
    conn.execute(
        "DELETE FROM cam_attachments WHERE account_id = ?1 AND target_kind = 'group' AND target_id = ?2",
        [account.0, id],
    )?;
    conn.execute(
        "DELETE FROM cam_groups WHERE account_id = ?1 AND id = ?2",
        [account.0, id],
    )?;
    Ok(true)
}

/// Adds a user to a group (already a member: nothing changes).
pub fn add_member(conn: &Connection, group_id: i64, user_id: i64, now: i64) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO cam_group_members (group_id, user_id, joined_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (group_id, user_id) DO NOTHING",
        [group_id, user_id, now],
    )?;
    Ok(())
}

/// Removes a user from a group.
pub fn remove_member(conn: &Connection, group_id: i64, user_id: i64) -> StoreResult<bool> {
    Ok(conn.execute(
        "DELETE FROM cam_group_members WHERE group_id = ?1 AND user_id = ?2",
        [group_id, user_id],
    )? > 0)
}

/// The groups a user is in, by id.
pub fn groups_of_user(conn: &Connection, user_id: i64) -> StoreResult<Vec<i64>> {
    Ok(conn.query_map(
        "SELECT group_id FROM cam_group_members WHERE user_id = ?1 ORDER BY group_id",
        [user_id],
        |r| r.get(0),
    )?)
}

/// The members of a group, by user id, with when they joined.
pub fn members(conn: &Connection, group_id: i64) -> StoreResult<Vec<(i64, i64)>> {
    Ok(conn.query_map(
        "SELECT user_id, joined_at FROM cam_group_members WHERE group_id = ?1 ORDER BY user_id",
        [group_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

// ---------------------------------------------------------------- policies

/// A custom policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRow {
    /// Row id (the wire `PolicyId` is derived from it).
    pub id: i64,
    /// The root account.
    pub account: AccountId,
    /// Unique within the account.
    pub name: String,
    /// `Description`.
    pub description: String,
    /// The document as given.
    pub document: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

const POLICY_COLUMNS: &str = "id, account_id, name, description, document, created_at, updated_at";

fn policy_from_row(row: &Row) -> crate::db::DbResult<PolicyRow> {
    Ok(PolicyRow {
        id: row.get(0)?,
        account: AccountId(row.get(1)?),
        name: row.get(2)?,
        description: row.get(3)?,
        document: row.get(4)?,
        created_at: row.get(5)?,
        updated_at: row.get(6)?,
    })
}

/// Stores a new policy; `Conflict` when the name is taken.
pub fn insert_policy(
    conn: &Connection,
    account: AccountId,
    name: &str,
    description: &str,
    document: &str,
    now: i64,
) -> StoreResult<i64> {
    conn.query_row(
        "INSERT INTO cam_policies (account_id, name, description, document, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5) RETURNING id",
        crate::params![account.0, name, description, document, now],
        |r| r.get(0),
    )
    .map_err(conflict("policy"))
}

/// The policy with this row id.
pub fn policy(conn: &Connection, account: AccountId, id: i64) -> StoreResult<Option<PolicyRow>> {
    Ok(conn
        .query_row(
            &format!("SELECT {POLICY_COLUMNS} FROM cam_policies WHERE account_id = ?1 AND id = ?2"),
            [account.0, id],
            policy_from_row,
        )
        .optional()?)
}

/// The policy called `name`.
pub fn policy_by_name(
    conn: &Connection,
    account: AccountId,
    name: &str,
) -> StoreResult<Option<PolicyRow>> {
    Ok(conn
        .query_row(
            &format!(
                "SELECT {POLICY_COLUMNS} FROM cam_policies WHERE account_id = ?1 AND name = ?2"
            ),
            crate::params![account.0, name],
            policy_from_row,
        )
        .optional()?)
}

/// Every custom policy of the account, oldest first.
pub fn policies(conn: &Connection, account: AccountId) -> StoreResult<Vec<PolicyRow>> {
    Ok(conn.query_map(
        &format!("SELECT {POLICY_COLUMNS} FROM cam_policies WHERE account_id = ?1 ORDER BY id"),
        [account.0],
        policy_from_row,
    )?)
}

/// Replaces a policy's fields; false when there is none, `Conflict` when
/// the new name is taken.
pub fn update_policy(conn: &Connection, row: &PolicyRow) -> StoreResult<bool> {
    Ok(conn
        .execute(
            "UPDATE cam_policies SET name = ?3, description = ?4, document = ?5, updated_at = ?6
             WHERE account_id = ?1 AND id = ?2",
            crate::params![
                row.account.0,
                row.id,
                row.name.as_str(),
                row.description.as_str(),
                row.document.as_str(),
                row.updated_at,
            ],
        )
        .map_err(conflict("policy"))?
        > 0)
}

/// Deletes a policy and its attachments (`policy_id` is the wire id);
/// false when there is none.
pub fn delete_policy(
    conn: &Connection,
    account: AccountId,
    id: i64,
    policy_id: i64,
) -> StoreResult<bool> {
    conn.execute(
        "DELETE FROM cam_attachments WHERE account_id = ?1 AND policy_id = ?2",
        [account.0, policy_id],
    )?;
    Ok(conn.execute(
        "DELETE FROM cam_policies WHERE account_id = ?1 AND id = ?2",
        [account.0, id],
    )? > 0)
}

// ------------------------------------------------------------- attachments

/// What a policy is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A sub-account (row id).
    User(i64),
    /// A group (row id).
    Group(i64),
    /// A role (row id).
    Role(i64),
}

impl Target {
    fn parts(self) -> (&'static str, i64) {
        match self {
            Target::User(id) => ("user", id),
            Target::Group(id) => ("group", id),
            Target::Role(id) => ("role", id),
        }
    }
}

/// Attaches a policy (wire id); false when it already was.
pub fn attach(
    conn: &Connection,
    account: AccountId,
    policy_id: i64,
    target: Target,
    now: i64,
) -> StoreResult<bool> {
    let (kind, id) = target.parts();
    Ok(conn.execute(
        "INSERT INTO cam_attachments (account_id, policy_id, target_kind, target_id, attached_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (account_id, target_kind, target_id, policy_id) DO NOTHING",
        crate::params![account.0, policy_id, kind, id, now],
    )? > 0)
}

/// Detaches a policy; false when it was not attached.
pub fn detach(
    conn: &Connection,
    account: AccountId,
    policy_id: i64,
    target: Target,
) -> StoreResult<bool> {
    let (kind, id) = target.parts();
    Ok(conn.execute(
        "DELETE FROM cam_attachments
         WHERE account_id = ?1 AND policy_id = ?2 AND target_kind = ?3 AND target_id = ?4",
        crate::params![account.0, policy_id, kind, id],
    )? > 0)
}

/// The policies attached to `target`, (wire id, attached at), in the order
/// they were attached.
pub fn attached(
    conn: &Connection,
    account: AccountId,
    target: Target,
) -> StoreResult<Vec<(i64, i64)>> {
    let (kind, id) = target.parts();
    Ok(conn.query_map(
        "SELECT policy_id, attached_at FROM cam_attachments
         WHERE account_id = ?1 AND target_kind = ?2 AND target_id = ?3
         ORDER BY attached_at, policy_id",
        crate::params![account.0, kind, id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

/// How many users and groups a policy (wire id) is attached to.
pub fn attachment_count(conn: &Connection, account: AccountId, policy_id: i64) -> StoreResult<i64> {
    Ok(conn.query_row(
        "SELECT COUNT(*) FROM cam_attachments WHERE account_id = ?1 AND policy_id = ?2",
        [account.0, policy_id],
        |r| r.get(0),
    )?)
}

/// Every policy (wire id) that applies to a user: its own and its groups'.
pub fn policies_of_user(
    conn: &Connection,
    account: AccountId,
    user_id: i64,
) -> StoreResult<Vec<i64>> {
    let mut ids: Vec<i64> = conn.query_map(
        "SELECT policy_id FROM cam_attachments
         WHERE account_id = ?1 AND target_kind = 'user' AND target_id = ?2
         UNION
         SELECT a.policy_id FROM cam_attachments a
           JOIN cam_group_members m ON a.target_kind = 'group' AND a.target_id = m.group_id
         WHERE a.account_id = ?1 AND m.user_id = ?2",
        [account.0, user_id],
        |r| r.get(0),
    )?;
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

// ------------------------------------------------------------------- roles

/// A role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// Row id (the wire `RoleId` is derived from it).
    pub id: i64,
    /// The root account.
    pub account: AccountId,
    /// Unique within the account.
    pub name: String,
    /// `Description`.
    pub description: String,
    /// Who may assume it.
    pub trust_policy: String,
    /// `ConsoleLogin`.
    pub console_login: i64,
    /// The longest credentials it hands out (s; 0: the default).
    pub session_duration: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

const ROLE_COLUMNS: &str = "id, account_id, name, description, trust_policy, console_login, \
     session_duration, created_at, updated_at";

fn role_from_row(row: &Row) -> crate::db::DbResult<Role> {
    Ok(Role {
        id: row.get(0)?,
        account: AccountId(row.get(1)?),
        name: row.get(2)?,
        description: row.get(3)?,
        trust_policy: row.get(4)?,
        console_login: row.get(5)?,
        session_duration: row.get(6)?,
        created_at: row.get(7)?,
        updated_at: row.get(8)?,
    })
}

/// Stores a new role; `Conflict` when the name is taken.
pub fn insert_role(conn: &Connection, role: &Role) -> StoreResult<i64> {
    conn.query_row(
        "INSERT INTO cam_roles (account_id, name, description, trust_policy, console_login,
             session_duration, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) RETURNING id",
        crate::params![
            role.account.0,
            role.name.as_str(),
            role.description.as_str(),
            role.trust_policy.as_str(),
            role.console_login,
            role.session_duration,
            role.created_at,
        ],
        |r| r.get(0),
    )
    .map_err(conflict("role"))
}

/// The role with this row id.
pub fn role(conn: &Connection, account: AccountId, id: i64) -> StoreResult<Option<Role>> {
    Ok(conn
        .query_row(
            &format!("SELECT {ROLE_COLUMNS} FROM cam_roles WHERE account_id = ?1 AND id = ?2"),
            [account.0, id],
            role_from_row,
        )
        .optional()?)
}

/// The role called `name`.
pub fn role_by_name(
    conn: &Connection,
    account: AccountId,
    name: &str,
) -> StoreResult<Option<Role>> {
    Ok(conn
        .query_row(
            &format!("SELECT {ROLE_COLUMNS} FROM cam_roles WHERE account_id = ?1 AND name = ?2"),
            crate::params![account.0, name],
            role_from_row,
        )
        .optional()?)
}

/// Every role of the account, oldest first.
pub fn roles(conn: &Connection, account: AccountId) -> StoreResult<Vec<Role>> {
    Ok(conn.query_map(
        &format!("SELECT {ROLE_COLUMNS} FROM cam_roles WHERE account_id = ?1 ORDER BY id"),
        [account.0],
        role_from_row,
    )?)
}

/// Deletes a role and its attachments; credentials it handed out stay
/// until they expire (and are refused, their role being gone).
pub fn delete_role(conn: &Connection, account: AccountId, id: i64) -> StoreResult<bool> {
    conn.execute(
        "DELETE FROM cam_attachments WHERE account_id = ?1 AND target_kind = 'role' AND target_id = ?2",
        [account.0, id],
    )?;
    Ok(conn.execute(
        "DELETE FROM cam_roles WHERE account_id = ?1 AND id = ?2",
        [account.0, id],
    )? > 0)
}
