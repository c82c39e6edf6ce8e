//! Everything PostgreSQL-specific: parsing the URL, connection timeouts
//! and what the log may show of the URL. The repository modules only use
//! the shared dialect ([`crate::db`] rewrites what differs).

use std::time::Duration;

use crate::{StoreError, StoreResult};

/// How long opening a connection may take before the caller hears
/// "cannot connect" (`InternalError.ConnectDbError`) rather than waiting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long sent data may go unacknowledged before the connection counts
/// as lost: a database host that vanished (power, network) fails calls in
/// seconds instead of the kernel's many minutes.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(5);

/// A longest statement: nothing livestack asks takes near this; a query
/// stuck behind a lock of someone else's fails instead of hanging a call.
const STATEMENT_TIMEOUT_MS: u64 = 10_000;

/// Whether `url` names a PostgreSQL database (`postgres://` or `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The URL with its password replaced, for logs and error messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((auth, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// Parses `url` and sets the timeouts livestack relies on (the URL's own
/// `connect_timeout` wins where it gives one).
pub(crate) fn config(url: &str) -> StoreResult<postgres::Config> {
    let mut config: postgres::Config = url.parse().map_err(|e| StoreError::Refused {
        path: redact(url),
        why: format!("is not a PostgreSQL URL livestack can use: {e}"),
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    config.tcp_user_timeout(TCP_USER_TIMEOUT);
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(10));
    config.options(&format!("-c statement_timeout={STATEMENT_TIMEOUT_MS}"));
    if config.get_application_name().is_none() {
        config.application_name("livestack");
    }
    Ok(config)
}

/// Opens one connection.
pub(crate) fn connect(config: &postgres::Config, shown: &str) -> StoreResult<postgres::Client> {
    config
        .connect(postgres::NoTls)
        .map_err(|e| StoreError::Connect {
            path: shown.to_owned(),
            source: e.into(),
        })
}

/// The environment variable naming a PostgreSQL server for tests and
/// benchmarks (`postgres://user@host:port/postgres`): set, every test store
/// is a fresh database on it instead of a SQLite file.
pub const TEST_SERVER_ENV: &str = "LIVESTACK_TEST_POSTGRES";

/// Creates an empty database with a fresh random name on the server at
/// `server_url` and returns its URL: one per test, so tests running in
/// parallel never see each other's rows.
pub fn create_scratch_database(server_url: &str) -> StoreResult<String> {
    let shown = redact(server_url);
    let mut client = connect(&config(server_url)?, &shown)?;
    let name = format!("livestack_t_{:016x}", rand::random::<u64>());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .map_err(|e| StoreError::Query(e.into()))?;
    Ok(with_database(server_url, &name))
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_kept_out_of_what_is_shown() {
        assert_eq!(
            redact("postgres://live:s3cret@db.example:5432/live"),
            "postgres://live:***@db.example:5432/live"
        );
        assert_eq!(redact("postgres://db/live"), "postgres://db/live");
        assert!(is_postgres_url("postgresql://x/y") && !is_postgres_url("/var/lib/x"));
    }

    #[test]
    fn the_database_name_of_a_url_is_replaced_and_the_rest_kept() {
        assert_eq!(
            with_database("postgres://u@127.0.0.1:5433/postgres?sslmode=disable", "t1"),
            "postgres://u@127.0.0.1:5433/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "t2"), "postgres://u@h/t2");
    }

    #[test]
    fn a_url_that_does_not_parse_is_refused_with_a_reason() {
        let err = config("postgres://a:b@host:notaport/db")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a PostgreSQL URL"), "{err}");
        assert!(!err.contains(":b@"), "the password leaked: {err}");
    }
}
