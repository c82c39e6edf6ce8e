//! Persistence for livestack: accounts, API keys and every configured resource.
//!
//! Owns: the database schema (embedded migrations), the connection pool and
//! one repository module per resource family. Returns typed [`StoreError`]s.
//! Must not: know Tencent error codes or wire names (the API layer maps
//! errors), or hold a connection across an `.await` (every query runs on the
//! blocking pool through [`Store::run`]).
//!
//! Two backends: SQLite in the data directory (the default, one machine)
//! and PostgreSQL (`--database-url`, several nodes sharing one database).
//! The repository modules are written once, in the SQL the two share, over
//! [`db::Connection`]; what differs lives in [`sqlite`], [`pg`] and the
//! small rewrites of [`db`].

pub mod accounts;
pub mod callbacks;
pub mod cam;
pub mod certs;
pub mod changes;
pub mod cluster;
pub mod db;
pub mod domains;
pub mod keys;
mod migrate;
pub mod mixes;
pub mod pg;
pub mod pull_tasks;
pub mod samples;
pub mod sqlite;
pub mod stats;
pub mod streams;
pub mod tasks;
pub mod templates;
pub mod usage;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use accounts::Account;
/// The connection repository functions take (what [`Store::run`] and
/// [`Store::transaction`] hand to their closures).
pub use db::{Backend, Connection, DbError};
pub use domains::{Domain, DomainFilter, NewDomain};
pub use keys::{ApiKey, NewKey};
pub use livestack_core::AccountId;

/// What can go wrong in the store. The API layer decides what a client sees.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened, a connection could not be made,
    /// or it was lost mid-call (the server is down or unreachable).
    #[error("cannot reach the database at {path}: {source}")]
    Connect {
        /// The database file or (redacted) URL.
        path: String,
        /// The driver's error.
        #[source]
        source: DbError,
    },
    /// A query failed (I/O error, corrupt file, constraint the caller did not expect).
    #[error("database query failed: {0}")]
    Query(DbError),
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
        source: DbError,
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

impl From<DbError> for StoreError {
    /// A lost connection is told apart from a failed query: the first is
    /// "cannot connect" to a client, the second "database error".
    fn from(e: DbError) -> StoreError {
        if e.is_connection_lost() {
            StoreError::Connect {
                path: "PostgreSQL".to_owned(),
                source: e,
            }
        } else {
            StoreError::Query(e)
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Query(DbError::Sqlite(e))
    }
}

/// Result alias for store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// Where the connections go.
enum Source {
    /// A database file.
    Sqlite(PathBuf),
    /// A PostgreSQL server; `shown` is the URL without its password.
    Postgres {
        config: Box<postgres::Config>,
        shown: String,
    },
}

/// How many idle connections are kept; more are opened on demand under load.
const MAX_IDLE: usize = 8;

/// A small pool of connections to one database.
struct Pool {
    source: Source,
    /// Files kept beside the database (watermark pictures).
    data_dir: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// This store's id in change announcements (see [`Store::origin`]).
    origin: String,
}

impl Pool {
    fn connect(&self) -> StoreResult<Connection> {
        match &self.source {
            Source::Sqlite(path) => sqlite::connect(path).map(Connection::sqlite),
            Source::Postgres { config, shown } => {
                pg::connect(config, shown).map(Connection::postgres)
            }
        }
    }

    fn shown(&self) -> String {
        match &self.source {
            Source::Sqlite(path) => path.display().to_string(),
            Source::Postgres { shown, .. } => shown.clone(),
        }
    }

    /// Runs `f` with a connection taken from the pool; blocking.
    fn with_conn<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.connect()?,
        };
        let result = f(&conn);
        // A connection left inside a failed transaction, or closed by the
        // server, is not reused: the next call opens a fresh one, which is
        // how a restarted PostgreSQL is picked up again without a restart
        // of ours.
        if conn.reusable() {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
        result.map_err(|e| match e {
            StoreError::Connect { source, .. } => StoreError::Connect {
                path: self.shown(),
                source,
            },
            e => e,
        })
    }
}

/// A fresh origin id: 64 random bits in hex (only letters and digits, so
/// it needs no quoting in a connection's options).
fn new_origin() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A handle on the database; cheap to clone and share between tasks.
#[derive(Clone)]
pub struct Store {
    pool: Arc<Pool>,
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
        let path = sqlite::prepare(data_dir)?;
        let store = Store::with_source(Source::Sqlite(path.clone()), data_dir);
        // The first connection creates the file and its WAL companions;
        // then they are made private.
        store.pool.with_conn(|_| sqlite::tighten(&path))?;
        store.migrate()?;
        Ok(store)
    }

    /// Connects to the PostgreSQL database at `url` and brings its schema
    /// up to date (one node at a time, under an advisory lock, so nodes
    /// starting together do not race). Refuses a database that holds
    /// another program's tables, or a newer schema than this build knows.
    /// Files the store keeps beside the database (watermark pictures) go
    /// to `data_dir`.
    pub fn connect(url: &str, data_dir: &Path) -> StoreResult<Store> {
        let mut config = pg::config(url)?;
        sqlite::private_dir(data_dir)?;
        let origin = new_origin();
        // Read by the triggers that announce configuration changes
        // (migration 12), so that a node can tell its own writes apart.
        let options = format!(
            "{} -c livestack.origin={origin}",
            config.get_options().unwrap_or_default()
        );
        config.options(options.trim_start());
        let store = Store::with_origin(
            Source::Postgres {
                config: Box::new(config),
                shown: pg::redact(url),
            },
            data_dir,
            origin,
        );
        store.migrate()?;
        Ok(store)
    }

    /// PostgreSQL when `database_url` is set, else SQLite in `data_dir`:
    /// what `livestack serve` opens.
    pub fn open_configured(data_dir: &Path, database_url: Option<&str>) -> StoreResult<Store> {
        match database_url {
            Some(url) if !url.is_empty() => {
                if !pg::is_postgres_url(url) {
                    return Err(StoreError::Refused {
                        path: pg::redact(url),
                        why: "is not a database URL livestack knows: use postgres://user:password@host:port/database, or leave it unset for SQLite in the data directory".to_owned(),
                    });
                }
                Store::connect(url, data_dir)
            }
            _ => Store::open(data_dir),
        }
    }

    /// A store for tests: SQLite in `data_dir`, or, when the environment
    /// names a PostgreSQL server ([`pg::TEST_SERVER_ENV`]), a fresh
    /// database of its own there. The one switch that runs every test of
    /// the store on both backends.
    pub fn open_for_tests(data_dir: &Path) -> StoreResult<Store> {
        match std::env::var(pg::TEST_SERVER_ENV) {
            Ok(server) if !server.is_empty() => {
                let url = off_runtime(|| pg::create_scratch_database(&server))?;
                Store::connect(&url, data_dir)
            }
            _ => Store::open(data_dir),
        }
    }

    fn with_source(source: Source, data_dir: &Path) -> Store {
        Store::with_origin(source, data_dir, new_origin())
    }

    fn with_origin(source: Source, data_dir: &Path, origin: String) -> Store {
        Store {
            pool: Arc::new(Pool {
                source,
                data_dir: data_dir.to_owned(),
                idle: Mutex::new(Vec::new()),
                origin,
            }),
            observer: Arc::new(std::sync::OnceLock::new()),
        }
    }

    fn migrate(&self) -> StoreResult<()> {
        let shown = self.pool.shown();
        off_runtime(|| self.pool.with_conn(|c| migrate::run(c, &shown)))
    }

    /// Has `f` told how long every [`Store::run`] (and so every
    /// transaction and snapshot) took, waiting for a connection and the
    /// blocking pool included. Only the first call takes effect.
    pub fn observe(&self, f: impl Fn(std::time::Duration) + Send + Sync + 'static) {
        let _ = self.observer.set(Box::new(f));
    }

    /// Opens the database of a data directory that must exist already
    /// (the offline commands: they never create a data directory), or the
    /// PostgreSQL database when `database_url` is set.
    pub fn open_existing(data_dir: &Path, database_url: Option<&str>) -> StoreResult<Store> {
        if database_url.is_some_and(|u| !u.is_empty()) {
            return Store::open_configured(data_dir, database_url);
        }
        let path = data_dir.join(sqlite::DB_FILE);
        if !path.is_file() {
            return Err(StoreError::Refused {
                path: path.display().to_string(),
                why: "does not exist: this is not a livestack data directory (start `livestack serve` there first, or pass --data-dir)".to_owned(),
            });
        }
        Store::open(data_dir)
    }

    /// This store's id in change announcements: random per opened store
    /// (so per node, and per app when several run in one process). On
    /// PostgreSQL every connection carries it as `livestack.origin`, and
    /// the triggers of migration 12 announce each committed configuration
    /// write with it; a listener skips announcements of its own origin.
    pub fn origin(&self) -> &str {
        &self.pool.origin
    }

    /// Which backend this store uses.
    pub fn backend(&self) -> Backend {
        match self.pool.source {
            Source::Sqlite(_) => Backend::Sqlite,
            Source::Postgres { .. } => Backend::Postgres,
        }
    }

    /// The data directory: files the store keeps beside the database.
    pub fn data_dir(&self) -> &Path {
        &self.pool.data_dir
    }

    /// The database file, or the PostgreSQL URL without its password.
    pub fn describe(&self) -> String {
        self.pool.shown()
    }

    /// Runs `f` with a pooled connection on tokio's blocking pool.
    ///
    /// This is the only way async code reaches the database: the connection
    /// never crosses an `.await`, and a slow disk never stalls a runtime worker.
    pub async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
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
    /// No other write transaction runs beside it, on this node or (on
    /// PostgreSQL) any other: it waits for its turn when it starts, so a
    /// read-check-write sequence (a quota, a unique name, a next id) never
    /// interleaves with another writer's.
    pub async fn transaction<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        let outcome = self.run(move |conn| write_transaction(conn, f)).await;
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
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.run(move |conn| {
            conn.begin_read()?;
            let out = f(conn);
            // Nothing was written; ending the transaction releases the
            // snapshot (so SQLite's WAL can be checkpointed).
            conn.rollback()?;
            out
        })
        .await
    }

    /// Runs `f` synchronously; for the offline CLI commands and start-up.
    pub fn run_blocking<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send,
        F: FnOnce(&Connection) -> StoreResult<T> + Send,
    {
        off_runtime(|| self.pool.with_conn(f))
    }

    /// Runs `f` synchronously inside one write transaction (see
    /// [`Store::transaction`]); for start-up and the offline commands,
    /// which may run while other nodes write.
    pub fn transaction_blocking<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send,
        F: FnOnce(&Connection) -> StoreResult<T> + Send,
    {
        off_runtime(|| self.pool.with_conn(|conn| write_transaction(conn, f)))?
    }
}

/// Runs `f` where blocking is allowed. The PostgreSQL client blocks on a
/// small runtime of its own, which tokio forbids on a thread that drives
/// async tasks; the synchronous entry points (start-up, tests, the offline
/// commands) may be called from one, so there `f` runs on a scoped thread
/// of its own, joined before this returns. [`Store::run`] needs none of
/// this: it is on the blocking pool already.
fn off_runtime<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(r) => r,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

impl Drop for Pool {
    /// Idle PostgreSQL connections each own a small runtime, which may not
    /// be dropped on a thread driving async tasks (where the last clone
    /// of a store often goes): they are closed on a thread of their own.
    fn drop(&mut self) {
        let idle = std::mem::take(self.idle.get_mut().unwrap_or_else(|e| e.into_inner()));
        if !idle.is_empty() {
            off_runtime(move || drop(idle));
        }
    }
}

/// `f` in a write transaction on `conn`: committed when it returns `Ok`,
/// rolled back otherwise. The outer result is the store's own failure
/// (begin or commit); the inner one is `f`'s.
fn write_transaction<T, E>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, E>,
) -> StoreResult<Result<T, E>> {
    conn.begin_write()?;
    let out = f(conn);
    if out.is_ok() {
        if let Err(e) = conn.commit() {
            // A failed COMMIT leaves SQLite's transaction open; end it so
            // the connection is clean (or dropped) for the next caller.
            let _ = conn.rollback();
            return Err(e.into());
        }
    } else {
        conn.rollback()?;
    }
    Ok(out)
}
