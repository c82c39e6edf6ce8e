//! Persistence for livestack: accounts, API keys and every configured resource.
//!
//! Owns: the database schema (embedded migrations), the connection pool and
//! one repository module per resource family. Returns typed [`StoreError`]s.
//! Must not: know Tencent error codes or wire names (the API layer maps
//! errors), or hold a connection across an `.await` (every query runs on the
//! blocking pool through [`Store::run`]).
//!
//! The SQL in the repository modules is kept to the subset that SQLite and
//! PostgreSQL share (placeholders are written `?N`, which a PostgreSQL
//! backend rewrites to `$N`); everything SQLite-specific (pragmas, file permissions,
//! busy handling) lives in [`sqlite`], so a PostgreSQL backend only has to
//! replace that module.

pub mod accounts;
pub mod callbacks;
pub mod certs;
pub mod domains;
pub mod keys;
mod migrate;
pub mod samples;
pub mod sqlite;
pub mod streams;
pub mod tasks;
pub mod templates;
pub mod usage;

use std::path::Path;
use std::sync::Arc;

pub use accounts::Account;
pub use domains::{Domain, DomainFilter, NewDomain};
pub use keys::{ApiKey, NewKey};
pub use livestack_core::AccountId;
/// The connection repository functions take (what [`Store::run`] and
/// [`Store::transaction`] hand to their closures).
pub use rusqlite::Connection;

/// What can go wrong in the store. The API layer decides what a client sees.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or a connection could not be made.
    #[error("cannot open the database at {path}: {source}")]
    Connect {
        /// The database file.
        path: String,
        /// The driver's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A query failed (I/O error, corrupt file, constraint the caller did not expect).
    #[error("database query failed: {0}")]
    Query(#[from] rusqlite::Error),
    /// A row with the same unique key already exists.
    #[error("{what} already exists")]
    Conflict {
        /// What collided, for the message.
        what: &'static str,
    },
    /// A migration could not be applied.
    #[error("database migration {version} failed: {source}")]
    Migration {
        /// The migration that failed.
        version: u32,
        /// The driver's error.
        #[source]
        source: rusqlite::Error,
    },
    /// Setting up the data directory failed.
    #[error("cannot prepare {path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The database file is not one livestack can use: empty, another
    /// program's, or written by a newer livestack.
    #[error("{path} {why}")]
    Refused {
        /// The database file.
        path: String,
        /// What is wrong, as a sentence to show the operator.
        why: String,
    },
    /// The blocking task running the query died (a panic inside the query code).
    #[error("database task failed: {0}")]
    Task(String),
}

/// Result alias for store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// A handle on the database; cheap to clone and share between tasks.
#[derive(Clone)]
pub struct Store {
    pool: Arc<sqlite::Pool>,
    /// Told how long each async call took, pool wait included (the
    /// binary's store-latency metric); set once, shared by every clone.
    observer: Arc<std::sync::OnceLock<Observer>>,
}

/// See [`Store::observe`].
type Observer = Box<dyn Fn(std::time::Duration) + Send + Sync>;

impl Store {
    /// Opens (creating if needed) the database file `livestack.db` in `data_dir`
    /// and brings its schema up to date. Refuses a file that is empty,
    /// another program's, or of a newer schema than this build knows.
    pub fn open(data_dir: &Path) -> StoreResult<Store> {
        let pool = sqlite::Pool::open(data_dir)?;
        let path = pool.path().display().to_string();
        pool.with_conn(|c| migrate::run(c, &path))?;
        Ok(Store {
            pool: Arc::new(pool),
            observer: Arc::new(std::sync::OnceLock::new()),
        })
    }

    /// Has `f` told how long every [`Store::run`] (and so every
    /// transaction and snapshot) took, waiting for a connection and the
    /// blocking pool included. Only the first call takes effect.
    pub fn observe(&self, f: impl Fn(std::time::Duration) + Send + Sync + 'static) {
        let _ = self.observer.set(Box::new(f));
    }

    /// Opens the database of a data directory that must exist already
    /// (the offline commands: they never create a data directory).
    pub fn open_existing(data_dir: &Path) -> StoreResult<Store> {
        let path = data_dir.join(sqlite::DB_FILE);
        if !path.is_file() {
            return Err(StoreError::Refused {
                path: path.display().to_string(),
                why: "does not exist: this is not a livestack data directory (start `livestack serve` there first, or pass --data-dir)".to_owned(),
            });
        }
        Store::open(data_dir)
    }

    /// The database file this store uses.
    pub fn path(&self) -> &Path {
        self.pool.path()
    }

    /// Runs `f` with a pooled connection on tokio's blocking pool.
    ///
    /// This is the only way async code reaches the database: the connection
    /// never crosses an `.await`, and a slow disk never stalls a runtime worker.
    pub async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> StoreResult<T> + Send + 'static,
    {
        let pool = Arc::clone(&self.pool);
        let started = std::time::Instant::now();
        let out = tokio::task::spawn_blocking(move || pool.with_conn(f))
            .await
            .map_err(|e| StoreError::Task(e.to_string()));
        if let Some(observe) = self.observer.get() {
            observe(started.elapsed());
        }
        out?
    }

    /// Runs `f` inside one write transaction on the blocking pool: the
    /// reads, checks and writes of one API action see and leave one
    /// consistent state. `Ok` commits; `Err` (a store failure or a caller's
    /// business error such as "in use") rolls everything back.
    ///
    /// The transaction takes the write lock when it starts, so a
    /// read-check-write sequence never fails half-way because another
    /// writer got in between; it waits for its turn instead.
    pub async fn transaction<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> Result<T, E> + Send + 'static,
    {
        let outcome = self
            .run(move |conn| {
                let tx = sqlite::begin_write(conn)?;
                let out = f(&tx);
                if out.is_ok() {
                    tx.commit()?;
                }
                Ok(out)
            })
            .await;
        match outcome {
            Ok(out) => out,
            Err(e) => Err(E::from(e)),
        }
    }

    /// Runs the reads of `f` in one read transaction on the blocking pool:
    /// together they see one committed state, never half of a write that
    /// lands between two of them.
    pub async fn snapshot<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> StoreResult<T> + Send + 'static,
    {
        self.run(move |conn| {
            let tx = sqlite::begin_read(conn)?;
            let out = f(&tx)?;
            // Nothing was written; ending the transaction releases the
            // snapshot so the WAL can be checkpointed.
            tx.rollback()?;
            Ok(out)
        })
        .await
    }

    /// Runs `f` synchronously; for the offline CLI commands and start-up.
    pub fn run_blocking<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(&rusqlite::Connection) -> StoreResult<T>,
    {
        self.pool.with_conn(f)
    }
}
