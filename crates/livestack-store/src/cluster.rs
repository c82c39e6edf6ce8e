//! Nodes and their leases, and the streams live on other nodes
//! (PostgreSQL: several nodes share the database; on SQLite there is one
//! node and these are not called).
//!
//! Owns: the `nodes` table and the cluster's shared secret. A node is alive while its lease, renewed every
//! few seconds, is in the future by the database server's clock (so nodes'
//! clocks need not agree). Must not: decide what a lost lease means for the
//! media plane (the binary does), or be called on SQLite (the SQL uses
//! PostgreSQL's clock).

use crate::db::Connection;
use crate::{AccountId, StoreResult};

/// The database server's time in Unix ms, as SQL.
const DB_NOW_MS: &str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";

/// Where a node is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddrs {
    /// Its API (`host:port`).
    pub api: String,
    /// Its HTTP playback listener, which serves relay pulls (`host:port`).
    pub relay: String,
}

/// Renews `node`'s lease for `lease_ms` from now (creating its row).
pub fn renew_lease(
    conn: &Connection,
    node: &str,
    addrs: &NodeAddrs,
    lease_ms: i64,
) -> StoreResult<()> {
    conn.execute(
        &format!(
            "INSERT INTO nodes (name, advertise, relay, started_ms, lease_until_ms)
             VALUES (?1, ?2, ?3, {DB_NOW_MS}, {DB_NOW_MS} + ?4)
             ON CONFLICT (name) DO UPDATE
             SET advertise = excluded.advertise, relay = excluded.relay,
                 lease_until_ms = excluded.lease_until_ms"
        ),
        (node, addrs.api.as_str(), addrs.relay.as_str(), lease_ms),
    )?;
    Ok(())
}

/// The secret every node of the cluster signs relay pulls with: made by
/// the first node that asks (128 random bits), then the same for all.
pub fn shared_secret(conn: &Connection) -> StoreResult<String> {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    let fresh: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    // Of nodes starting together, the first insert wins and every node
    // reads the winner.
    conn.execute(
        "INSERT INTO cluster_settings (name, value) VALUES ('relay_secret', ?1)
         ON CONFLICT (name) DO NOTHING",
        [fresh.as_str()],
    )?;
    Ok(conn.query_row(
        "SELECT value FROM cluster_settings WHERE name = 'relay_secret'",
        (),
        |r| r.get(0),
    )?)
}

/// The live node other than `this_node` where `account`'s `app/stream`
/// is pushed now, with the address its relay pulls go to.
pub fn owner_of(
    conn: &Connection,
    account: AccountId,
    app: &str,
    stream: &str,
    this_node: &str,
) -> StoreResult<Option<(String, String)>> {
    use crate::db::OptionalExtension as _;
    Ok(conn
        .query_row(
            &format!(
                "SELECT n.name, n.relay
                 FROM stream_sessions s JOIN nodes n ON n.name = s.node
                 WHERE s.account_id = ?1 AND s.app = ?2 AND s.stream = ?3
                   AND s.ended_at IS NULL AND s.succeeded = TRUE
                   AND s.node <> ?4 AND n.relay <> '' AND n.lease_until_ms > {DB_NOW_MS}
                 ORDER BY s.started_at DESC, s.id DESC LIMIT 1"
            ),
            (account.0, app, stream, this_node),
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

/// Gives up `node`'s lease (a clean shutdown): its streams leave every
/// node's lists at once instead of when the lease runs out.
pub fn release_lease(conn: &Connection, node: &str) -> StoreResult<()> {
    conn.execute(
        &format!("UPDATE nodes SET lease_until_ms = {DB_NOW_MS} WHERE name = ?1"),
        [node],
    )?;
    Ok(())
}

/// A live node as the database knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Its name.
    pub name: String,
    /// The address the others reach it at.
    pub advertise: String,
}

/// The nodes whose lease has not run out.
pub fn live_nodes(conn: &Connection) -> StoreResult<Vec<Node>> {
    Ok(conn.query_map(
        &format!(
            "SELECT name, advertise FROM nodes WHERE lease_until_ms > {DB_NOW_MS} ORDER BY name"
        ),
        (),
        |r| {
            Ok(Node {
                name: r.get(0)?,
                advertise: r.get(1)?,
            })
        },
    )?)
}

/// A stream live on another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteStream {
    /// Push domain.
    pub domain: String,
    /// AppName.
    pub app: String,
    /// StreamName.
    pub stream: String,
    /// When its push started (Unix seconds).
    pub started_at: i64,
    /// The node it is pushed to.
    pub node: String,
    /// The publisher's IP address.
    pub client_ip: String,
}

/// `account`'s streams pushed to live nodes other than `this_node`: the
/// open push sessions those nodes recorded. A node that died stops
/// counting when its lease runs out; it closes its sessions when it comes
/// back.
pub fn remote_online(
    conn: &Connection,
    account: AccountId,
    this_node: &str,
) -> StoreResult<Vec<RemoteStream>> {
    Ok(conn.query_map(
        &format!(
            "SELECT s.domain, s.app, s.stream, s.started_at, s.node, s.client_ip
             FROM stream_sessions s JOIN nodes n ON n.name = s.node
             WHERE s.account_id = ?1 AND s.ended_at IS NULL AND s.succeeded = TRUE
               AND s.node <> ?2 AND n.lease_until_ms > {DB_NOW_MS}
             ORDER BY s.app, s.stream, s.started_at"
        ),
        (account.0, this_node),
        |r| {
            Ok(RemoteStream {
                domain: r.get(0)?,
                app: r.get(1)?,
                stream: r.get(2)?,
                started_at: r.get(3)?,
                node: r.get(4)?,
                client_ip: r.get(5)?,
            })
        },
    )?)
}

/// A stream's claim as a push takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// One more than the claim's epoch before (1 for a first claim).
    pub epoch: i64,
    /// The other node that held the claim until now: its push is to end
    /// (replaced, as a second push on one node replaces the first).
    pub previous: Option<String>,
}

/// Claims `account`'s `app/stream` for push session `session` on `node`.
/// Call inside a write transaction ([`crate::Store::transaction`]): two
/// claims of one stream never interleave, so each sees the one before.
pub fn claim(
    conn: &Connection,
    account: AccountId,
    app: &str,
    stream: &str,
    node: &str,
    session: i64,
) -> StoreResult<Claimed> {
    use crate::db::OptionalExtension as _;
    let before: Option<(String, i64)> = conn
        .query_row(
            "SELECT node, epoch FROM stream_claims
             WHERE account_id = ?1 AND app = ?2 AND stream = ?3",
            (account.0, app, stream),
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let epoch = before.as_ref().map_or(1, |(_, e)| e + 1);
    conn.execute(
        "INSERT INTO stream_claims (account_id, app, stream, node, session, epoch)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (account_id, app, stream) DO UPDATE
         SET node = excluded.node, session = excluded.session, epoch = excluded.epoch",
        (account.0, app, stream, node, session, epoch),
    )?;
    Ok(Claimed {
        epoch,
        previous: before.map(|(n, _)| n).filter(|n| n != node),
    })
}

/// Whether `node` still holds the claim of `account`'s `app/stream` at
/// `epoch` (nobody took it over meanwhile).
pub fn holds(
    conn: &Connection,
    account: AccountId,
    app: &str,
    stream: &str,
    node: &str,
    epoch: i64,
) -> StoreResult<bool> {
    use crate::db::OptionalExtension as _;
    Ok(conn
        .query_row(
            "SELECT 1 FROM stream_claims
             WHERE account_id = ?1 AND app = ?2 AND stream = ?3 AND node = ?4 AND epoch = ?5",
            (account.0, app, stream, node, epoch),
            |r| r.get::<i64>(0),
        )
        .optional()?
        .is_some())
}

/// Gives up the claim push session `session` on `node` holds, if it still
/// does (a push that replaced it keeps its own).
pub fn release_claim(
    conn: &Connection,
    account: AccountId,
    app: &str,
    stream: &str,
    node: &str,
    session: i64,
) -> StoreResult<()> {
    conn.execute(
        "DELETE FROM stream_claims
         WHERE account_id = ?1 AND app = ?2 AND stream = ?3 AND node = ?4 AND session = ?5",
        (account.0, app, stream, node, session),
    )?;
    Ok(())
}

/// Renews `node`'s lease like [`renew_lease`] and says whether it had
/// run out before (the node was paused or cut off past its lease: its
/// claims may have been taken over and must be checked).
pub fn renew_lease_checked(
    conn: &Connection,
    node: &str,
    addrs: &NodeAddrs,
    lease_ms: i64,
) -> StoreResult<bool> {
    use crate::db::OptionalExtension as _;
    let lapsed: Option<bool> = conn
        .query_row(
            &format!("SELECT lease_until_ms <= {DB_NOW_MS} FROM nodes WHERE name = ?1"),
            [node],
            |r| r.get(0),
        )
        .optional()?;
    renew_lease(conn, node, addrs, lease_ms)?;
    Ok(lapsed.unwrap_or(false))
}
