//! Everything SQLite-specific: opening the file, pragmas, file modes and the
//! connection pool. The repository modules only use portable SQL.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::{StoreError, StoreResult};

/// The database file name inside the data directory.
pub const DB_FILE: &str = "livestack.db";

/// How many idle connections are kept; more are opened on demand under load.
const MAX_IDLE: usize = 8;

/// A small pool of SQLite connections to one WAL-mode database file.
///
/// WAL lets readers run beside the single writer; `busy_timeout` makes a
/// writer wait for another instead of failing (the offline `keys` commands
/// may write while the server runs).
pub struct Pool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Pool {
    /// Creates the data directory (mode 0700) and the database (mode 0600):
    /// it holds secret keys, so nobody but the owner may read it.
    pub(crate) fn open(data_dir: &Path) -> StoreResult<Pool> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| StoreError::Io { path, source }
        };
        if !data_dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(data_dir)
                .map_err(io(data_dir))?;
        } else {
            // Keys and certificates live here: only the owner may look.
            let mode = fs::metadata(data_dir)
                .map_err(io(data_dir))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                fs::set_permissions(data_dir, fs::Permissions::from_mode(0o700))
                    .map_err(io(data_dir))?;
                tracing::warn!(
                    "the data directory {} was open to others (mode {:o}); it is now 0700",
                    data_dir.display(),
                    mode & 0o777
                );
            }
        }
        let path = data_dir.join(DB_FILE);
        if fs::metadata(&path).is_ok_and(|m| m.len() == 0) {
            return Err(StoreError::Refused {
                path: path.display().to_string(),
                why: "is an empty file, not a livestack database: remove it to start afresh, or use another --data-dir".to_owned(),
            });
        }
        let pool = Pool {
            path: path.clone(),
            idle: Mutex::new(Vec::new()),
        };
        let conn = pool.connect()?;
        for suffix in ["", "-wal", "-shm"] {
            let file = PathBuf::from(format!("{}{suffix}", path.display()));
            if file.exists() {
                fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).map_err(io(&file))?;
            }
        }
        pool.put_back(conn);
        Ok(pool)
    }

    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn connect(&self) -> StoreResult<Connection> {
        let connect_err = |source| StoreError::Connect {
            path: self.path.display().to_string(),
            source,
        };
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(connect_err)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(connect_err)?;
        // synchronous=FULL: an acknowledged write survives a power cut, not
        // only a kill -9. Config writes are rare, so the fsync is cheap.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;",
        )
        .map_err(connect_err)?;
        Ok(conn)
    }

    fn take(&self) -> StoreResult<Connection> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => self.connect(),
        }
    }

    fn put_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    /// Runs `f` with a connection taken from the pool; blocking.
    pub(crate) fn with_conn<T>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let conn = self.take()?;
        let result = f(&conn);
        // A connection left inside a failed transaction is not reused.
        if conn.is_autocommit() {
            self.put_back(conn);
        }
        result
    }
}

/// Starts a transaction that takes the write lock at once
/// (`BEGIN IMMEDIATE`), waiting up to the busy timeout for it. A deferred
/// transaction that reads first would instead fail with `SQLITE_BUSY` at its
/// first write if another connection wrote in between.
/// Starts a read transaction: in WAL mode every read inside it sees the
/// one snapshot taken at its first read, whatever commits meanwhile.
pub(crate) fn begin_read(conn: &Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Deferred)
}

pub(crate) fn begin_write(conn: &Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)
}

/// True when `err` is a UNIQUE or PRIMARY KEY violation.
pub(crate) fn is_unique_violation(err: &rusqlite::Error) -> bool {
    matches!(
        err,
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}
