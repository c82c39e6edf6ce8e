//! Keeping this node's policy in step with writes made on other nodes.
//!
//! Owns: the listener that hears other nodes' announcements (see
//! `livestack_store::changes`), the reload after every (re)connection and
//! the slow periodic reload that catches anything a lost notification
//! missed. Must not: read or interpret the tables (the publisher does a
//! full, consistent reload), or give up when the database is away (it
//! retries with backoff until shutdown).
//!
//! On SQLite this does nothing: the one process is the only writer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use livestack_store::changes::Heard;
use livestack_store::{Backend, Store};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::policy::PolicyPublisher;

/// A reload at least this often, whatever was heard: the bound on how long
/// a change announced while this node's listening connection was down (or
/// never announced, when the writer died before it could) goes unseen.
pub const SLOW_RELOAD: Duration = Duration::from_secs(30);

/// Longest pause between attempts to listen again.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Follows other nodes' changes until `shutdown`: every announcement from
/// another origin, every reconnection and every [`SLOW_RELOAD`] reloads
/// the policy. Returns at once on SQLite.
pub async fn follow_changes(
    store: Store,
    policy: Arc<PolicyPublisher>,
    shutdown: CancellationToken,
) {
    if store.backend() != Backend::Postgres {
        return;
    }
    let wake = Arc::new(Notify::new());
    let stop = Arc::new(AtomicBool::new(false));
    let listener = {
        let (store, wake, stop) = (store.clone(), Arc::clone(&wake), Arc::clone(&stop));
        let origin = policy.origin().to_owned();
        // Owned: joined below after `stop` is set; it checks `stop` every
        // few hundred milliseconds.
        tokio::task::spawn_blocking(move || listen(&store, &origin, &wake, &stop))
    };
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = wake.notified() => {}
            () = tokio::time::sleep(SLOW_RELOAD) => {}
        }
        if let Err(e) = policy.refresh().await {
            tracing::warn!("cannot reload the configuration from the database: {e}");
        }
    }
    stop.store(true, Ordering::Release);
    if let Err(e) = listener.await {
        tracing::error!("the change listener failed: {e}");
    }
}

/// The blocking listener: listens, and listens again after a lost
/// connection, until `stop`.
fn listen(store: &Store, origin: &str, wake: &Notify, stop: &AtomicBool) {
    let mut backoff = Duration::from_millis(100);
    while !stop.load(Ordering::Acquire) {
        let mut connected = false;
        let outcome = store.listen_for_changes(stop, |heard| match heard {
            Heard::Connected => {
                tracing::debug!("listening for configuration changes");
                connected = true;
                wake.notify_one();
            }
            Heard::Change(from) if from != origin => wake.notify_one(),
            Heard::Change(_) => {}
        });
        if connected {
            backoff = Duration::from_millis(100);
        }
        match outcome {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(
                    "lost the connection that hears other nodes' changes ({e}); listening again in {backoff:?}"
                );
            }
        }
        // Sleep in small steps so shutdown is not held up by the backoff.
        let until = std::time::Instant::now() + backoff;
        while std::time::Instant::now() < until && !stop.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(50));
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
