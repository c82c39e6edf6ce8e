//! The one connection type every repository function takes, over either
//! backend: SQLite (one file, the default) or PostgreSQL (several nodes).
//!
//! Owns: values and rows in a backend-neutral form, the `?N` → `$N`
//! placeholder rewrite, the few function names the two dialects spell
//! differently, transactions with the same meaning on both, and telling a
//! lost connection from a failed query.
//! Must not: know any table (the repository modules do), or hand a
//! backend's native connection out (everything goes through these methods,
//! so a repository cannot write SQL that only one backend runs without the
//! whole suite on the other backend catching it).
//!
//! The API mirrors the subset of rusqlite's that the repositories used, so
//! they read as plain SQL with parameters.

use std::cell::RefCell;
use std::collections::HashMap;
use std::error::Error as _;

use postgres::types::{IsNull, ToSql, Type};

/// A value bound to a parameter or read from a column. Both schemas only
/// use these five kinds; PostgreSQL's typed columns are converted at the
/// edge (see [`Value::to_sql`] and [`pg_value`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// Any integer or boolean.
    Integer(i64),
    /// A float.
    Real(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Integer(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Integer(v.into())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_owned())
    }
}

/// What can go wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite's error.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL's error.
    #[error("{}", pg_message(.0))]
    Postgres(#[from] postgres::Error),
    /// The server closed the connection.
    #[error("the database server closed the connection")]
    Closed,
    /// A query that must return a row returned none.
    #[error("the query returned no rows")]
    NoRows,
    /// A column or parameter did not have the expected kind.
    #[error("column {index}: {why}")]
    Conversion {
        /// Column index.
        index: usize,
        /// What was wrong.
        why: String,
    },
}

/// PostgreSQL's errors print only "db error" by themselves; the server's
/// message is what an operator needs in the log.
fn pg_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => match e.source() {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

/// Result alias for database calls.
pub type DbResult<T> = Result<T, DbError>;

impl DbError {
    /// True when a UNIQUE or PRIMARY KEY constraint refused the write.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            }
            DbError::Postgres(e) => e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION),
            _ => false,
        }
    }

    /// True when the database could not be reached or the connection was
    /// lost (the server is down, restarting, or the network is): the
    /// caller answers "cannot connect", and the connection is not reused.
    pub fn is_connection_lost(&self) -> bool {
        match self {
            DbError::Closed => true,
            DbError::Postgres(e) => {
                if e.is_closed() {
                    return true;
                }
                match e.code() {
                    // Class 08 (connection exception), 57P01..57P03
                    // (shutdown, crash shutdown, cannot connect now).
                    Some(code) => {
                        code.code().starts_with("08")
                            || ["57P01", "57P02", "57P03"].contains(&code.code())
                    }
                    // No server answer at all: I/O or a timeout.
                    None => true,
                }
            }
            _ => false,
        }
    }
}

/// The `.optional()` of rusqlite: a missing row becomes `None`.
pub trait OptionalExtension<T> {
    /// `Ok(None)` instead of [`DbError::NoRows`].
    fn optional(self) -> DbResult<Option<T>>;
}

impl<T> OptionalExtension<T> for DbResult<T> {
    fn optional(self) -> DbResult<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(DbError::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Something that can be bound to a parameter.
pub trait ToValue {
    /// The value to bind.
    fn to_value(&self) -> Value;
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}

macro_rules! int_to_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                Value::Integer(i64::from(*self))
            }
        }
    )*};
}
int_to_value!(i64, i32, u32, i16, u16, u8, bool);

impl ToValue for u64 {
    fn to_value(&self) -> Value {
        // Counts and sizes; nothing stored comes near i64::MAX.
        Value::Integer(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl ToValue for usize {
    fn to_value(&self) -> Value {
        Value::Integer(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl ToValue for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}

impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}

impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl ToValue for [u8] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}

impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        match self {
            Some(v) => v.to_value(),
            None => Value::Null,
        }
    }
}

/// The parameters of one statement: `params![…]`, a tuple, an array, a
/// `Vec<Value>` or `()` for none.
pub trait Params {
    /// The values, in placeholder order.
    fn into_values(self) -> Vec<Value>;
}

impl Params for () {
    fn into_values(self) -> Vec<Value> {
        Vec::new()
    }
}

impl Params for Vec<Value> {
    fn into_values(self) -> Vec<Value> {
        self
    }
}

impl Params for &[Value] {
    fn into_values(self) -> Vec<Value> {
        self.to_vec()
    }
}

impl Params for &[&dyn ToValue] {
    fn into_values(self) -> Vec<Value> {
        self.iter().map(|v| v.to_value()).collect()
    }
}

impl<T: ToValue, const N: usize> Params for [T; N] {
    fn into_values(self) -> Vec<Value> {
        self.iter().map(ToValue::to_value).collect()
    }
}

macro_rules! tuple_params {
    ($(($($n:tt $t:ident),+))*) => {$(
        impl<$($t: ToValue),+> Params for ($($t,)+) {
            fn into_values(self) -> Vec<Value> {
                vec![$(self.$n.to_value()),+]
            }
        }
    )*};
}
tuple_params! {
    (0 A)
    (0 A, 1 B)
    (0 A, 1 B, 2 C)
    (0 A, 1 B, 2 C, 3 D)
    (0 A, 1 B, 2 C, 3 D, 4 E)
    (0 A, 1 B, 2 C, 3 D, 4 E, 5 F)
    (0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G)
    (0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H)
}

/// Parameters of mixed types: `params![a, b, c]`.
#[macro_export]
macro_rules! params {
    () => { () };
    ($($p:expr),+ $(,)?) => {
        &[$(&$p as &dyn $crate::db::ToValue),+] as &[&dyn $crate::db::ToValue]
    };
}

/// Something a column can be read as.
pub trait FromValue: Sized {
    /// Converts the column's value, or says why it cannot.
    fn from_value(v: &Value) -> Result<Self, String>;
}

impl FromValue for Value {
    fn from_value(v: &Value) -> Result<Self, String> {
        Ok(v.clone())
    }
}

impl FromValue for i64 {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Integer(i) => Ok(*i),
            other => Err(format!("expected an integer, found {other:?}")),
        }
    }
}

macro_rules! narrow_from_value {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(v: &Value) -> Result<Self, String> {
                let i = i64::from_value(v)?;
                <$t>::try_from(i).map_err(|_| format!("{i} is out of range for {}", stringify!($t)))
            }
        }
    )*};
}
narrow_from_value!(i32, u32, u64, usize, u16, u8);

impl FromValue for bool {
    fn from_value(v: &Value) -> Result<Self, String> {
        Ok(i64::from_value(v)? != 0)
    }
}

impl FromValue for f64 {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Real(f) => Ok(*f),
            // SQLite stores a whole-number REAL written as an integer.
            Value::Integer(i) => Ok(*i as f64),
            other => Err(format!("expected a number, found {other:?}")),
        }
    }
}

impl FromValue for String {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            other => Err(format!("expected text, found {other:?}")),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Blob(b) => Ok(b.clone()),
            Value::Text(s) => Ok(s.as_bytes().to_vec()),
            other => Err(format!("expected bytes, found {other:?}")),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// One result row.
pub struct Row {
    values: Vec<Value>,
}

impl Row {
    /// Column `index` as `T`.
    pub fn get<T: FromValue>(&self, index: usize) -> DbResult<T> {
        let v = self.values.get(index).ok_or_else(|| DbError::Conversion {
            index,
            why: format!("the row has {} columns", self.values.len()),
        })?;
        T::from_value(v).map_err(|why| DbError::Conversion { index, why })
    }
}

/// Which database a connection talks to; decides the SQL spelled
/// differently in the two dialects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, one file.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A connection to the database: what repository functions take.
pub struct Connection {
    inner: Inner,
}

enum Inner {
    Sqlite(rusqlite::Connection),
    // Boxed: a pool holds a few of these, and the PostgreSQL client is
    // several times the size of SQLite's handle.
    Postgres(Box<RefCell<PgConn>>),
}

/// A PostgreSQL client with the statements it has prepared, so a query
/// that runs often is parsed and planned once per connection.
pub(crate) struct PgConn {
    pub(crate) client: postgres::Client,
    statements: HashMap<String, postgres::Statement>,
    /// Whether a transaction is open (BEGIN sent, no COMMIT/ROLLBACK yet).
    in_transaction: bool,
}

/// The advisory lock every PostgreSQL write transaction takes first: the
/// writers of every node queue on it, which gives each write transaction
/// what SQLite's `BEGIN IMMEDIATE` gives it on one machine (no other writer
/// between its checks and its writes). Config writes are rare and short, so
/// one lock costs little and keeps every check-then-write (quotas, unique
/// names, `MAX(id) + 1`) correct without per-table locking rules.
pub const WRITE_LOCK: i64 = 0x6c69_7665_7374_6b01; // "livestk" + 1

impl Connection {
    pub(crate) fn sqlite(conn: rusqlite::Connection) -> Connection {
        Connection {
            inner: Inner::Sqlite(conn),
        }
    }

    pub(crate) fn postgres(client: postgres::Client) -> Connection {
        Connection {
            inner: Inner::Postgres(Box::new(RefCell::new(PgConn {
                client,
                statements: HashMap::new(),
                in_transaction: false,
            }))),
        }
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match &self.inner {
            Inner::Sqlite(_) => Backend::Sqlite,
            Inner::Postgres(_) => Backend::Postgres,
        }
    }

    /// Whether the connection can go back to the pool: not inside a
    /// transaction, and (PostgreSQL) not closed by the server.
    pub(crate) fn reusable(&self) -> bool {
        match &self.inner {
            Inner::Sqlite(c) => c.is_autocommit(),
            Inner::Postgres(c) => {
                let c = c.borrow();
                !c.in_transaction && !c.client.is_closed()
            }
        }
    }

    /// Runs statements without parameters or results (schema, pragmas).
    pub fn execute_batch(&self, sql: &str) -> DbResult<()> {
        match &self.inner {
            Inner::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Inner::Postgres(c) => Ok(c.borrow_mut().client.batch_execute(sql)?),
        }
    }

    /// Runs one statement; the number of rows it changed.
    pub fn execute(&self, sql: &str, params: impl Params) -> DbResult<usize> {
        let values = params.into_values();
        match &self.inner {
            Inner::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                Ok(stmt.execute(rusqlite::params_from_iter(values.iter().map(SqliteValue)))?)
            }
            Inner::Postgres(c) => {
                let mut c = c.borrow_mut();
                let stmt = c.prepare(sql)?;
                let refs: Vec<&(dyn ToSql + Sync)> =
                    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
                let n = c.client.execute(&stmt, &refs)?;
                Ok(usize::try_from(n).unwrap_or(usize::MAX))
            }
        }
    }

    /// Every row of a query, each turned into a `T` by `f`.
    pub fn query_map<T>(
        &self,
        sql: &str,
        params: impl Params,
        mut f: impl FnMut(&Row) -> DbResult<T>,
    ) -> DbResult<Vec<T>> {
        let values = params.into_values();
        let mut out = Vec::new();
        match &self.inner {
            Inner::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let width = stmt.column_count();
                let mut rows =
                    stmt.query(rusqlite::params_from_iter(values.iter().map(SqliteValue)))?;
                while let Some(r) = rows.next()? {
                    let mut row = Row {
                        values: Vec::with_capacity(width),
                    };
                    for i in 0..width {
                        row.values.push(sqlite_value(r.get_ref(i)?));
                    }
                    out.push(f(&row)?);
                }
            }
            Inner::Postgres(c) => {
                let mut c = c.borrow_mut();
                let stmt = c.prepare(sql)?;
                let refs: Vec<&(dyn ToSql + Sync)> =
                    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
                for r in c.client.query(&stmt, &refs)? {
                    let mut row = Row {
                        values: Vec::with_capacity(r.len()),
                    };
                    for i in 0..r.len() {
                        row.values.push(pg_value(&r, i)?);
                    }
                    out.push(f(&row)?);
                }
            }
        }
        Ok(out)
    }

    /// The first row of a query; [`DbError::NoRows`] when there is none.
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: impl Params,
        f: impl FnOnce(&Row) -> DbResult<T>,
    ) -> DbResult<T> {
        let mut f = Some(f);
        let mut first = None;
        // Every caller's query returns one row (a key lookup or an
        // aggregate); reading the rest would only waste time if one did not.
        for v in self.query_map(sql, params, |row| match f.take() {
            Some(f) => f(row).map(Some),
            None => Ok(None),
        })? {
            if first.is_none() {
                first = v;
            }
        }
        first.ok_or(DbError::NoRows)
    }

    /// A statement to run once or more (rusqlite's `prepare`; both
    /// backends cache the prepared form per connection anyway).
    pub fn prepare(&self, sql: &str) -> DbResult<Statement<'_>> {
        Ok(Statement {
            conn: self,
            sql: sql.to_owned(),
        })
    }

    /// The same as [`Connection::prepare`].
    pub fn prepare_cached(&self, sql: &str) -> DbResult<Statement<'_>> {
        self.prepare(sql)
    }

    /// Begins a write transaction that no other writer (on any node) runs
    /// beside: SQLite's `BEGIN IMMEDIATE`, or PostgreSQL's `BEGIN` and
    /// [`WRITE_LOCK`].
    pub(crate) fn begin_write(&self) -> DbResult<()> {
        match &self.inner {
            Inner::Sqlite(c) => Ok(c.execute_batch("BEGIN IMMEDIATE")?),
            Inner::Postgres(c) => {
                let mut c = c.borrow_mut();
                c.in_transaction = true;
                c.client.batch_execute(&format!(
                    "BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})"
                ))?;
                Ok(())
            }
        }
    }

    /// Begins a read transaction: every read in it sees one committed state.
    pub(crate) fn begin_read(&self) -> DbResult<()> {
        match &self.inner {
            Inner::Sqlite(c) => Ok(c.execute_batch("BEGIN DEFERRED")?),
            Inner::Postgres(c) => {
                let mut c = c.borrow_mut();
                c.in_transaction = true;
                c.client
                    .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
                Ok(())
            }
        }
    }

    /// Commits the open transaction.
    pub(crate) fn commit(&self) -> DbResult<()> {
        self.end("COMMIT")
    }

    /// Rolls the open transaction back.
    pub(crate) fn rollback(&self) -> DbResult<()> {
        self.end("ROLLBACK")
    }

    fn end(&self, verb: &str) -> DbResult<()> {
        match &self.inner {
            Inner::Sqlite(c) => Ok(c.execute_batch(verb)?),
            Inner::Postgres(c) => {
                let mut c = c.borrow_mut();
                c.client.batch_execute(verb)?;
                c.in_transaction = false;
                Ok(())
            }
        }
    }
}

/// The rows of [`Statement::query_map`], each already converted.
pub type Rows<T> = std::iter::Map<std::vec::IntoIter<T>, fn(T) -> DbResult<T>>;

/// A statement bound to its connection (see [`Connection::prepare`]).
pub struct Statement<'c> {
    conn: &'c Connection,
    sql: String,
}

impl Statement<'_> {
    /// Every row, each turned into a `T` by `f`, as an iterator of results
    /// (so `.collect::<Result<Vec<_>, _>>()` reads as with rusqlite).
    pub fn query_map<T>(
        &mut self,
        params: impl Params,
        f: impl FnMut(&Row) -> DbResult<T>,
    ) -> DbResult<Rows<T>> {
        let ok: fn(T) -> DbResult<T> = Ok;
        Ok(self
            .conn
            .query_map(&self.sql, params, f)?
            .into_iter()
            .map(ok))
    }

    /// The first row; [`DbError::NoRows`] when there is none.
    pub fn query_row<T>(
        &mut self,
        params: impl Params,
        f: impl FnOnce(&Row) -> DbResult<T>,
    ) -> DbResult<T> {
        self.conn.query_row(&self.sql, params, f)
    }

    /// Runs it; the number of rows changed.
    pub fn execute(&mut self, params: impl Params) -> DbResult<usize> {
        self.conn.execute(&self.sql, params)
    }
}

impl PgConn {
    fn prepare(&mut self, sql: &str) -> DbResult<postgres::Statement> {
        if let Some(stmt) = self.statements.get(sql) {
            return Ok(stmt.clone());
        }
        let stmt = self.client.prepare(&to_postgres(sql))?;
        // Statements are built from a fixed set of shapes; the bound
        // keeps a pathological caller from growing the cache without end.
        if self.statements.len() < 512 {
            self.statements.insert(sql.to_owned(), stmt.clone());
        }
        Ok(stmt)
    }
}

/// Rewrites the shared dialect for PostgreSQL: `?N` placeholders become
/// `$N`, and `instr(a, b)` becomes `strpos(a, b)` (same arguments, same
/// answer). String literals are left alone.
pub fn to_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.char_indices().peekable();
    let mut in_string = false;
    while let Some((i, ch)) = chars.next() {
        if in_string {
            out.push(ch);
            if ch == '\'' {
                in_string = false;
            }
            continue;
        }
        match ch {
            '\'' => {
                in_string = true;
                out.push(ch);
            }
            '?' => out.push('$'),
            'i' | 'I'
                if sql[i..].len() >= 6
                    && sql[i..i + 6].eq_ignore_ascii_case("instr(")
                    && !sql[..i]
                        .chars()
                        .next_back()
                        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                out.push_str("strpos(");
                for _ in 0..5 {
                    chars.next();
                }
            }
            _ => out.push(ch),
        }
    }
    out
}

/// Binds a [`Value`] to a rusqlite parameter.
struct SqliteValue<'a>(&'a Value);

impl rusqlite::ToSql for SqliteValue<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self.0 {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

fn sqlite_value(v: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

/// Reads column `i` of a PostgreSQL row by its declared type.
fn pg_value(row: &postgres::Row, i: usize) -> DbResult<Value> {
    /// Column `i` as `T` (NULL as `None`), turned into a [`Value`] by `f`.
    fn col<'a, T: postgres::types::FromSql<'a>>(
        row: &'a postgres::Row,
        i: usize,
        f: impl FnOnce(T) -> Value,
    ) -> DbResult<Option<Value>> {
        Ok(row.try_get::<_, Option<T>>(i)?.map(f))
    }
    let ty = row.columns()[i].type_();
    let v = if *ty == Type::INT8 {
        col(row, i, Value::Integer)?
    } else if *ty == Type::INT4 {
        col(row, i, |v: i32| Value::Integer(v.into()))?
    } else if *ty == Type::INT2 {
        col(row, i, |v: i16| Value::Integer(v.into()))?
    } else if *ty == Type::BOOL {
        col(row, i, |v: bool| Value::Integer(v.into()))?
    } else if *ty == Type::FLOAT8 {
        col(row, i, Value::Real)?
    } else if *ty == Type::FLOAT4 {
        col(row, i, |v: f32| Value::Real(v.into()))?
    } else if *ty == Type::BYTEA {
        col(row, i, Value::Blob)?
    } else if [Type::TEXT, Type::VARCHAR, Type::BPCHAR, Type::NAME].contains(ty) {
        col(row, i, Value::Text)?
    } else {
        return Err(DbError::Conversion {
            index: i,
            why: format!(
                "PostgreSQL type {ty} is not one the store reads (cast it to BIGINT, DOUBLE PRECISION or TEXT)"
            ),
        });
    };
    Ok(v.unwrap_or(Value::Null))
}

/// Binds a [`Value`] to whatever type PostgreSQL inferred for the
/// parameter, as SQLite's loose typing would: an integer to an INT4,
/// INT8 or BOOLEAN column, text to text, and so on.
impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let mismatch = || -> Box<dyn std::error::Error + Sync + Send> {
            format!("cannot bind {self:?} to a parameter of type {ty}").into()
        };
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Integer(i) => {
                if *ty == Type::INT8 {
                    i.to_sql(ty, out)
                } else if *ty == Type::INT4 {
                    i32::try_from(*i).map_err(|_| mismatch())?.to_sql(ty, out)
                } else if *ty == Type::INT2 {
                    i16::try_from(*i).map_err(|_| mismatch())?.to_sql(ty, out)
                } else if *ty == Type::BOOL {
                    (*i != 0).to_sql(ty, out)
                } else if *ty == Type::FLOAT8 {
                    (*i as f64).to_sql(ty, out)
                } else if [Type::TEXT, Type::VARCHAR, Type::UNKNOWN].contains(ty) {
                    i.to_string().to_sql(&Type::TEXT, out)
                } else {
                    Err(mismatch())
                }
            }
            Value::Real(f) => {
                if *ty == Type::FLOAT8 {
                    f.to_sql(ty, out)
                } else if *ty == Type::FLOAT4 {
                    (*f as f32).to_sql(ty, out)
                } else {
                    Err(mismatch())
                }
            }
            Value::Text(s) => {
                if [
                    Type::TEXT,
                    Type::VARCHAR,
                    Type::BPCHAR,
                    Type::NAME,
                    Type::UNKNOWN,
                ]
                .contains(ty)
                {
                    s.as_str().to_sql(&Type::TEXT, out)
                } else if *ty == Type::BYTEA {
                    s.as_bytes().to_sql(ty, out)
                } else {
                    Err(mismatch())
                }
            }
            Value::Blob(b) => {
                if *ty == Type::BYTEA {
                    b.as_slice().to_sql(ty, out)
                } else {
                    Err(mismatch())
                }
            }
        }
    }

    fn accepts(_: &Type) -> bool {
        // Checked per value in `to_sql`, which knows what it holds.
        true
    }

    postgres::types::to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_instr_are_rewritten_outside_string_literals() {
        assert_eq!(
            to_postgres("SELECT a FROM t WHERE b = ?1 AND instr(c, ?2) > 0 AND d = '?3 instr('"),
            "SELECT a FROM t WHERE b = $1 AND strpos(c, $2) > 0 AND d = '?3 instr('"
        );
        assert_eq!(to_postgres("SELECT myinstr(x)"), "SELECT myinstr(x)");
    }

    #[test]
    fn values_convert_both_ways_and_say_what_did_not_fit() {
        let row = Row {
            values: vec![Value::Integer(1), Value::Null, Value::Text("x".into())],
        };
        assert!(row.get::<bool>(0).unwrap());
        assert_eq!(row.get::<Option<i64>>(1).unwrap(), None);
        assert_eq!(row.get::<String>(2).unwrap(), "x");
        let err = row.get::<i64>(2).unwrap_err().to_string();
        assert!(err.contains("column 2") && err.contains("integer"), "{err}");
        assert!(row.get::<i64>(9).is_err());
    }
}
