//! Telling every node that the configuration changed (PostgreSQL only).
//!
//! Owns: the `livestack_changes` channel, announcing on it and listening
//! to it on a connection of its own. The payload is the announcing node's
//! origin id, never data: a listener reloads what it needs from the tables,
//! so a lost or duplicated notification costs a reload, not a wrong state.
//! Must not: decide what a change means (the API's policy publisher does),
//! or hide a lost listening connection (the caller reconnects and reloads,
//! since notifications sent while it was down are gone).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;

use crate::db::{Backend, DbError};
use crate::{pg, Source, Store, StoreError, StoreResult};

/// The channel every node announces configuration changes on.
pub const CHANNEL: &str = "livestack_changes";

/// The `application_name` of listening connections.
pub const LISTENER_NAME: &str = "livestack-listener";

/// How often the listener wakes to check `stop`.
const POLL: Duration = Duration::from_millis(200);

/// How often the listener proves its connection alive with a round trip:
/// a killed backend or a dead network is noticed within this, not at the
/// next notification that never comes.
const PROBE: Duration = Duration::from_secs(2);

/// What a listener hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// The listening connection is (re)established: anything may have
    /// changed while it was down, so reload everything.
    Connected,
    /// A node announced a change; the payload is its origin id.
    Change(String),
}

impl Store {
    /// Announces a configuration change to every node listening (no-op on
    /// SQLite, where this process is the only server).
    pub async fn announce_change(&self, origin: &str) -> StoreResult<()> {
        if self.backend() != Backend::Postgres {
            return Ok(());
        }
        let origin = origin.to_owned();
        self.run(move |c| {
            c.execute(&format!("SELECT pg_notify('{CHANNEL}', ?1)"), [origin])?;
            Ok(())
        })
        .await
    }

    /// Listens for announcements until `stop` is set or the connection is
    /// lost (`Err`: reconnect by calling again, after a pause). Blocking:
    /// run it on a thread of its own or the blocking pool. `heard` is
    /// called with [`Heard::Connected`] once listening, then once per
    /// announcement. Returns `Ok` at once on SQLite.
    pub fn listen_for_changes(
        &self,
        stop: &AtomicBool,
        mut heard: impl FnMut(Heard),
    ) -> StoreResult<()> {
        let Source::Postgres { config, shown } = &self.pool.source else {
            return Ok(());
        };
        let lost = |e: postgres::Error| StoreError::Connect {
            path: shown.clone(),
            source: e.into(),
        };
        // Named apart from the pool's connections, so an operator (or a
        // test) can tell which one carries the notifications.
        let mut config = (**config).clone();
        config.application_name(LISTENER_NAME);
        let mut client = pg::connect(&config, shown)?;
        client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .map_err(lost)?;
        heard(Heard::Connected);
        let mut probed = Instant::now();
        while !stop.load(Ordering::Acquire) {
            {
                let mut notifications = client.notifications();
                let mut waiting = notifications.timeout_iter(POLL);
                while let Some(note) = waiting.next().map_err(lost)? {
                    heard(Heard::Change(note.payload().to_owned()));
                }
            }
            if client.is_closed() {
                return Err(lost_connection(shown));
            }
            if probed.elapsed() >= PROBE {
                client.batch_execute("SELECT 1").map_err(lost)?;
                probed = Instant::now();
            }
        }
        Ok(())
    }
}

fn lost_connection(shown: &str) -> StoreError {
    StoreError::Connect {
        path: shown.to_owned(),
        source: DbError::Closed,
    }
}
