//! Embedded schema migrations, applied in order at start-up.
//!
//! Applied versions are recorded in `schema_migrations` (portable SQL, not
//! SQLite's `user_version`) so the same list can run on PostgreSQL.

use rusqlite::Connection;

use crate::{StoreError, StoreResult};

/// Every migration, in order. Never edit one that has shipped: add a new one.
const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("migrations/0001_accounts_keys_domains.sql")),
    (2, include_str!("migrations/0002_certificates.sql")),
    (3, include_str!("migrations/0003_streams.sql")),
    (4, include_str!("migrations/0004_templates_rules.sql")),
    (5, include_str!("migrations/0005_tasks.sql")),
    (6, include_str!("migrations/0006_callback_records.sql")),
    (7, include_str!("migrations/0007_usage.sql")),
    (8, include_str!("migrations/0008_push_samples.sql")),
];

pub(crate) fn run(conn: &Connection, path: &str) -> StoreResult<()> {
    let refuse = |why: String| StoreError::Refused {
        path: path.to_owned(),
        why,
    };
    let has_ledger: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations')",
        [],
        |row| row.get(0),
    )?;
    let tables: i64 = conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'",
        [],
        |row| row.get(0),
    )?;
    if !has_ledger && tables > 0 {
        return Err(refuse(
            "is another program's SQLite database (it has tables but no schema_migrations): use another --data-dir".to_owned(),
        ));
    }
    if has_ledger {
        let newest: Option<i64> =
            conn.query_row("SELECT MAX(version) FROM schema_migrations", [], |row| {
                row.get(0)
            })?;
        let known = MIGRATIONS.last().map_or(0, |m| i64::from(m.0));
        if let Some(newest) = newest.filter(|v| *v > known) {
            return Err(refuse(format!(
                "was written by a newer livestack (schema version {newest}; this one knows up to {known}): run that version, or restore a backup"
            )));
        }
    }
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    BIGINT PRIMARY KEY,
             applied_at BIGINT NOT NULL
         )",
    )?;
    for &(version, sql) in MIGRATIONS {
        let done: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?1)",
            [version],
            |row| row.get(0),
        )?;
        if done {
            continue;
        }
        let fail = |source| StoreError::Migration { version, source };
        let tx = conn.unchecked_transaction().map_err(fail)?;
        tx.execute_batch(sql).map_err(fail)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            (version, livestack_core::Clock::system().unix()),
        )
        .map_err(fail)?;
        tx.commit().map_err(fail)?;
        tracing::info!(version, "applied database migration");
    }
    Ok(())
}
