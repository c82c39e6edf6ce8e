//! Keeping this node's policy in step with writes made on other nodes.
//!
//! Owns: the listener that hears other nodes' announcements (see
//! `livestack_store::changes`), the reload after every (re)connection and
//! the slow periodic reload that catches anything a lost notification
//! missed. Must not: read or interpret the tables (the publisher does a
//! full, consistent reload), or give up when the database is away (it
//! retries with backoff until shutdown).
//!
//! Also carries the one order a node gives another today: "drop this
//! push" (`DropLiveStream` sent to a node that does not hold the stream).
//! It travels on the same channel, authenticated by the database itself
//! (only a client with the database's credentials can send it), and names
//! the node that holds the push; only that node acts on it.
//!
//! And it answers the media plane's questions about other nodes
//! ([`StoreOwnership`]): who owns a stream this node does not have (for
//! edge relays), and the claims of this node's pushes (a push claims its
//! stream; a claim taken from another node sends that node a replace
//! order on the same channel).
//!
//! On SQLite this does nothing: the one process is the only writer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use livestack_core::media::{EndReason, MediaControl, StreamKey};
use livestack_core::AccountId;
use livestack_store::changes::Heard;
use livestack_store::{Backend, Store};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::policy::PolicyPublisher;

/// A reload at least this often, whatever was heard: the bound on how long
/// a change goes unseen when its announcement was lost some way this node
/// could not notice (its listening connection is re-established, and
/// reloads, as soon as it is found down).
pub const SLOW_RELOAD: Duration = Duration::from_secs(30);

/// Longest pause between attempts to listen again.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// An order to the node holding a push, sent on the changes channel as
/// JSON (a configuration change's payload is a bare origin id instead).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropOrder {
    /// The node that holds the push; every other node ignores the order.
    pub node: String,
    /// The stream's account.
    pub account: i64,
    /// AppName.
    pub app: String,
    /// StreamName.
    pub stream: String,
    /// Why: `true` when the stream was forbidden (the end is reported as
    /// forbidden-while-live, as on one node), else dropped.
    #[serde(default)]
    pub forbidden: bool,
    /// `true` when a push of the same stream on another node took it over
    /// (reported as replaced, 21/102).
    #[serde(default)]
    pub replaced: bool,
}

/// Asks the node holding a push to disconnect it (see [`DropOrder`]).
pub async fn send_drop(store: &Store, order: &DropOrder) -> livestack_store::StoreResult<()> {
    let payload = serde_json::to_string(order).unwrap_or_default();
    store.send_on_channel(&payload).await
}

/// Follows other nodes' changes until `shutdown`: every announcement from
/// another origin, every reconnection and every [`SLOW_RELOAD`] reloads
/// the policy, and a [`DropOrder`] naming `node` drops that push on
/// `media`. Returns at once on SQLite.
pub async fn follow_changes(
    store: Store,
    policy: Arc<PolicyPublisher>,
    node: Arc<str>,
    media: Arc<dyn MediaControl>,
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
        let act = move |order: DropOrder| {
            if order.node.as_str() != &*node {
                return;
            }
            let key = StreamKey {
                account: AccountId(order.account),
                app: order.app,
                stream: order.stream,
            };
            let reason = if order.replaced {
                EndReason::Replaced
            } else if order.forbidden {
                EndReason::ForbiddenWhileLive
            } else {
                EndReason::Dropped
            };
            let dropped = media.drop_stream(&key, reason);
            tracing::info!(app = %key.app, stream = %key.stream, dropped, "drop ordered by another node");
        };
        tokio::task::spawn_blocking(move || listen(&store, &origin, &wake, &stop, &act))
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
fn listen(
    store: &Store,
    origin: &str,
    wake: &Notify,
    stop: &AtomicBool,
    act: &(dyn Fn(DropOrder) + Send + Sync),
) {
    let mut backoff = Duration::from_millis(100);
    while !stop.load(Ordering::Acquire) {
        let mut connected = false;
        let outcome = store.listen_for_changes(stop, |heard| match heard {
            Heard::Connected => {
                tracing::debug!("listening for configuration changes");
                connected = true;
                wake.notify_one();
            }
            Heard::Change(payload) if payload.starts_with('{') => {
                match serde_json::from_str::<DropOrder>(&payload) {
                    Ok(order) => act(order),
                    Err(e) => tracing::warn!("an order from another node did not parse: {e}"),
                }
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

/// Stream ownership as the store records it: claims, and the push
/// sessions of live nodes.
pub struct StoreOwnership {
    store: Store,
    node: Arc<str>,
}

impl StoreOwnership {
    /// Ownership as `store` knows it, seen from node `node`.
    pub fn new(store: Store, node: Arc<str>) -> StoreOwnership {
        StoreOwnership { store, node }
    }
}

/// A session number as the store keeps it (every number is below 2^62).
fn session_id(session: u64) -> i64 {
    i64::try_from(session).unwrap_or(i64::MAX)
}

impl livestack_core::media::Ownership for StoreOwnership {
    fn locate(
        &self,
        key: &StreamKey,
    ) -> livestack_core::media::MediaFuture<Option<livestack_core::media::Upstream>> {
        let store = self.store.clone();
        let node = Arc::clone(&self.node);
        let key = key.clone();
        Box::pin(async move {
            let found = store
                .run(move |c| {
                    livestack_store::cluster::owner_of(c, key.account, &key.app, &key.stream, &node)
                })
                .await;
            match found {
                Ok(owner) => {
                    owner.map(|(node, addr)| livestack_core::media::Upstream { node, addr })
                }
                Err(e) => {
                    tracing::warn!("cannot look up the node that owns a stream: {e}");
                    None
                }
            }
        })
    }

    fn claim(
        &self,
        key: &StreamKey,
        session: u64,
    ) -> livestack_core::media::MediaFuture<Result<i64, String>> {
        let store = self.store.clone();
        let node = Arc::clone(&self.node);
        let key = key.clone();
        Box::pin(async move {
            let claimed = {
                let (key, node) = (key.clone(), Arc::clone(&node));
                store
                    .transaction(move |c| {
                        livestack_store::cluster::claim(
                            c,
                            key.account,
                            &key.app,
                            &key.stream,
                            &node,
                            session_id(session),
                        )
                    })
                    .await
                    .map_err(|e| e.to_string())?
            };
            if let Some(previous) = claimed.previous {
                // The push there ends as a second push here ends the first
                // on one node. If the order is lost (that node is down),
                // its lease says it is not live anyway, and it checks its
                // claims before going on.
                tracing::info!(app = %key.app, stream = %key.stream, previous, "the stream was live on another node: replacing it there");
                let order = DropOrder {
                    node: previous,
                    account: key.account.0,
                    app: key.app.clone(),
                    stream: key.stream.clone(),
                    forbidden: false,
                    replaced: true,
                };
                if let Err(e) = send_drop(&store, &order).await {
                    tracing::warn!(
                        node = order.node,
                        "cannot tell the node to end its push: {e}"
                    );
                }
            }
            Ok(claimed.epoch)
        })
    }

    fn holds(
        &self,
        key: &StreamKey,
        epoch: i64,
    ) -> livestack_core::media::MediaFuture<Result<bool, String>> {
        let store = self.store.clone();
        let node = Arc::clone(&self.node);
        let key = key.clone();
        Box::pin(async move {
            store
                .run(move |c| {
                    livestack_store::cluster::holds(
                        c,
                        key.account,
                        &key.app,
                        &key.stream,
                        &node,
                        epoch,
                    )
                })
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn release(&self, key: &StreamKey, session: u64) -> livestack_core::media::MediaFuture<()> {
        let store = self.store.clone();
        let node = Arc::clone(&self.node);
        let key = key.clone();
        Box::pin(async move {
            let released = store
                .run(move |c| {
                    livestack_store::cluster::release_claim(
                        c,
                        key.account,
                        &key.app,
                        &key.stream,
                        &node,
                        session_id(session),
                    )
                })
                .await;
            if let Err(e) = released {
                // A stale claim only names this node until a push takes it.
                tracing::warn!("cannot release a stream's claim: {e}");
            }
        })
    }
}
