//! Telling every node that the configuration changed (PostgreSQL only).
//!
//! Owns: the `livestack_changes` channel, sending on it and listening
//! to it on a connection of its own. Configuration changes are announced
//! by the database itself, from inside each writing transaction (the
//! triggers of migration 12), so a change is announced exactly when it
//! commits. Their payload is the writer's origin id ([`Store::origin`]),
//! never data: a listener reloads what it needs from the tables,
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
    /// Sends `payload` to every node listening (no-op on SQLite, where
    /// this process is the only server): the orders between nodes.
    /// Configuration changes need no call: the database announces them
    /// itself, from the writing transaction (migration 12's triggers).
    pub async fn send_on_channel(&self, payload: &str) -> StoreResult<()> {
        if self.backend() != Backend::Postgres {
            return Ok(());
        }
        let payload = payload.to_owned();
        self.run(move |c| {
            c.execute(&format!("SELECT pg_notify('{CHANNEL}', ?1)"), [payload])?;
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

#[cfg(test)]
mod tests {
    use std::sync::{mpsc, Arc};

    use super::*;

    /// Collects what a listener on `store` hears, on a thread of its own.
    fn listener(store: &Store) -> (Arc<AtomicBool>, mpsc::Receiver<Heard>) {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let (store, flag) = (store.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let _ = store.listen_for_changes(&flag, |heard| {
                let _ = tx.send(heard);
            });
        });
        (stop, rx)
    }

    #[test]
    fn the_database_announces_a_configuration_write_when_it_commits_and_never_a_rolled_back_or_other_write(
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_for_tests(dir.path()).expect("open");
        if store.backend() != Backend::Postgres {
            // One process on SQLite: there is nobody to tell.
            return;
        }
        let (stop, heard) = listener(&store);
        let wait = Duration::from_secs(10);
        assert_eq!(heard.recv_timeout(wait), Ok(Heard::Connected));

        // Not a configuration table: no announcement.
        store
            .run_blocking(|c| {
                c.execute_batch(
                    "INSERT INTO cluster_settings (name, value) VALUES ('unrelated', 'x')",
                )?;
                Ok(())
            })
            .expect("unrelated write");
        // A configuration write that rolls back: none either.
        let rolled_back = store.transaction_blocking(|c| {
            c.execute_batch("UPDATE domains SET name = name WHERE false")?;
            Err::<(), _>(StoreError::Refused {
                path: "test".into(),
                why: "rolled back on purpose".into(),
            })
        });
        assert!(rolled_back.is_err());
        // A committed one, with a statement that changes no row even: the
        // trigger is per statement, and the announcement carries the
        // writer's origin.
        store
            .transaction_blocking(|c| {
                c.execute_batch("UPDATE domains SET name = name WHERE false")?;
                c.execute_batch("UPDATE templates SET name = name WHERE false")?;
                Ok(())
            })
            .expect("committed write");

        // Notifications arrive in commit order, so anything the first two
        // had sent would come before this one.
        assert_eq!(
            heard.recv_timeout(wait),
            Ok(Heard::Change(store.origin().to_owned())),
            "the committed write is announced first and once"
        );
        stop.store(true, Ordering::Release);
        assert!(
            heard.recv_timeout(Duration::from_secs(1)).is_err(),
            "one transaction, one announcement"
        );
    }
}
