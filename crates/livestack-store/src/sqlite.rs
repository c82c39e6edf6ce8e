//! Everything SQLite-specific: opening the file, pragmas, file modes and the
//! busy handling. The repository modules only use the shared dialect.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::{StoreError, StoreResult};

/// The database file name inside the data directory.
pub const DB_FILE: &str = "livestack.db";

/// Prepares the data directory (created 0700, or tightened to it: it holds
/// secret keys, so nobody but the owner may look) and refuses an empty
/// database file. Returns the database file's path.
pub(crate) fn prepare(data_dir: &Path) -> StoreResult<PathBuf> {
    private_dir(data_dir)?;
    let path = data_dir.join(DB_FILE);
    if fs::metadata(&path).is_ok_and(|m| m.len() == 0) {
        return Err(StoreError::Refused {
            path: path.display().to_string(),
            why: "is an empty file, not a livestack database: remove it to start afresh, or use another --data-dir".to_owned(),
        });
    }
    Ok(path)
}

/// Creates `data_dir` with mode 0700, or tightens it to that: whatever the
/// backend, it holds files only the owner may read (the SQLite database,
/// watermark pictures, recordings being made).
pub(crate) fn private_dir(data_dir: &Path) -> StoreResult<()> {
    if !data_dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)
            .map_err(io(data_dir))?;
    } else {
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
    Ok(())
}

/// Sets the database file and its WAL companions to 0600 (run once the
/// first connection has created them).
pub(crate) fn tighten(path: &Path) -> StoreResult<()> {
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        if file.exists() {
            fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).map_err(io(&file))?;
        }
    }
    Ok(())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.display().to_string();
    move |source| StoreError::Io { path, source }
}

/// Opens one connection to a WAL-mode database file.
///
/// WAL lets readers run beside the single writer; `busy_timeout` makes a
/// writer wait for another instead of failing (the offline `keys` commands
/// may write while the server runs).
pub(crate) fn connect(path: &Path) -> StoreResult<Connection> {
    let connect_err = |source: rusqlite::Error| StoreError::Connect {
        path: path.display().to_string(),
        source: source.into(),
    };
    let conn = Connection::open_with_flags(
        path,
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
