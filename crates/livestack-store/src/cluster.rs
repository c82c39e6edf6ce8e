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
            "SELECT s.domain, s.app, s.stream, s.started_at, s.node
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
            })
        },
    )?)
}
