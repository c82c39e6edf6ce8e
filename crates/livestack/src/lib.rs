//! livestack as a library: the whole server, built from a [`Config`] and a
//! [`Clock`], run until a shutdown token is cancelled.
//!
//! Owns: opening the store, the root key, the wiring of the control plane
//! (gateway, policy publisher, event recorder) to the media plane, the
//! listeners and graceful shutdown. Must not: parse command lines, read
//! the environment or install a log subscriber (the binary does those), or
//! hold business logic.
//!
//! The binary is `App::build` + `App::run` behind a CLI; the in-process
//! test tier builds the same `App` on port 0 with a manual clock.

pub mod config;
mod process_metrics;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use livestack_core::media::MediaControl;
use livestack_core::Clock;
use livestack_store::{accounts, keys, Store};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use crate::config::Config;

/// The root account's key as the operator gave it
/// (`LIVESTACK_SECRET_ID` / `LIVESTACK_SECRET_KEY`).
#[derive(Clone)]
pub struct RootKey {
    /// `AKID…`.
    pub secret_id: String,
    /// The secret.
    pub secret_key: String,
}

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootKey")
            .field("secret_id", &self.secret_id)
            .finish_non_exhaustive()
    }
}

/// Where a built [`App`] listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addrs {
    /// The Tencent Cloud API (and `GET /healthz`).
    pub api: SocketAddr,
    /// RTMP ingest and playback.
    pub rtmp: SocketAddr,
    /// HTTP-FLV, HLS and `/records/`.
    pub http: SocketAddr,
    /// The same over HTTPS.
    pub https: SocketAddr,
    /// RTMP over TLS.
    pub rtmps: SocketAddr,
    /// SRT ingest (UDP).
    pub srt: SocketAddr,
    /// WebRTC media (UDP).
    pub webrtc: SocketAddr,
    /// WebRTC media over ICE-TCP: the same address and port number, when
    /// that TCP port was free.
    pub webrtc_tcp: Option<SocketAddr>,
}

/// A server whose listeners are bound and whose store is open, ready to
/// [`run`](App::run).
pub struct App {
    config: Config,
    clock: Clock,
    store: Store,
    listeners: Listeners,
    addrs: Addrs,
    generated_key: Option<RootKey>,
    policy: Arc<livestack_api::PolicyPublisher>,
    fetch: livestack_net::FetchPolicy,
}

struct Listeners {
    api: TcpListener,
    rtmp: TcpListener,
    http: TcpListener,
    https: TcpListener,
    rtmps: TcpListener,
    srt: tokio::net::UdpSocket,
    webrtc: tokio::net::UdpSocket,
    webrtc_tcp: Option<TcpListener>,
}

impl App {
    /// Opens the store in `config.data_dir`, makes sure the root account
    /// has a key (`root_key`, or on a brand-new data directory a generated
    /// one, see [`generated_key`](App::generated_key)), and binds every
    /// listener. Nothing is served until [`run`](App::run).
    pub async fn build(
        config: Config,
        root_key: Option<RootKey>,
        clock: Clock,
    ) -> anyhow::Result<App> {
        // Checked now so a mistake stops the start before anything is
        // bound; `run` builds the settings again with the bound HTTP port.
        config
            .storage
            .to_storage(&config.data_dir, config.http.listen)
            .context("invalid [storage] configuration")?;
        let fetch = config.fetch.policy()?;
        let store = Store::open_configured(&config.data_dir, config.database_url())
            .with_context(|| format!("cannot open {}", config.database_shown()))?;
        match store.backend() {
            livestack_store::Backend::Sqlite => {
                tracing::info!(database = %store.describe(), "using SQLite")
            }
            livestack_store::Backend::Postgres => {
                tracing::info!(database = %store.describe(), "using PostgreSQL")
            }
        }
        let generated_key = bootstrap_root_key(&store, root_key)?;
        let bind = |addr: SocketAddr, what: &'static str| async move {
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for {what} on {addr}"))
        };
        let mut listeners = Listeners {
            rtmp: bind(config.rtmp.listen, "RTMP").await?,
            http: bind(config.http.listen, "HTTP playback").await?,
            https: bind(config.https.listen, "HTTPS playback").await?,
            rtmps: bind(config.rtmps.listen, "RTMPS").await?,
            srt: tokio::net::UdpSocket::bind(config.srt.listen)
                .await
                .with_context(|| format!("cannot listen for SRT on {}", config.srt.listen))?,
            webrtc: tokio::net::UdpSocket::bind(config.webrtc.listen)
                .await
                .with_context(|| format!("cannot listen for WebRTC on {}", config.webrtc.listen))?,
            webrtc_tcp: None,
            api: bind(config.api.listen, "the API").await?,
        };
        // ICE-TCP on the UDP socket's own port number (which port 0 chose),
        // for players whose networks block UDP; WebRTC works without it.
        let udp = listeners
            .webrtc
            .local_addr()
            .context("WebRTC socket has no address")?;
        listeners.webrtc_tcp = match TcpListener::bind(udp).await {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(%udp, "WebRTC over TCP is off: cannot listen on TCP there: {e}");
                None
            }
        };
        let addrs = Addrs {
            api: listeners
                .api
                .local_addr()
                .context("API listener has no address")?,
            rtmp: listeners
                .rtmp
                .local_addr()
                .context("RTMP listener has no address")?,
            http: listeners
                .http
                .local_addr()
                .context("HTTP listener has no address")?,
            https: listeners
                .https
                .local_addr()
                .context("HTTPS listener has no address")?,
            rtmps: listeners
                .rtmps
                .local_addr()
                .context("RTMPS listener has no address")?,
            srt: listeners
                .srt
                .local_addr()
                .context("SRT listener has no address")?,
            webrtc: udp,
            webrtc_tcp: listeners
                .webrtc_tcp
                .as_ref()
                .and_then(|l| l.local_addr().ok()),
        };
        let policy = Arc::new(livestack_api::PolicyPublisher::new(
            store.clone(),
            clock.clone(),
        ));
        Ok(App {
            config,
            clock,
            store,
            listeners,
            addrs,
            generated_key,
            policy,
            fetch,
        })
    }

    /// The bound addresses (port 0 in the configuration is a real port here).
    pub fn addrs(&self) -> Addrs {
        self.addrs
    }

    /// The publisher of the media plane's policy, to compare what is in
    /// force with what the store holds (tests).
    pub fn policy(&self) -> Arc<livestack_api::PolicyPublisher> {
        Arc::clone(&self.policy)
    }

    /// The root key generated for a brand-new data directory, to show the
    /// operator once; `None` when one was given or already existed.
    pub fn generated_key(&self) -> Option<&RootKey> {
        self.generated_key.as_ref()
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, lets
    /// API requests in flight finish, stops every media task and job and
    /// drains the event recorder. Returns when everything has stopped.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let App {
            config,
            clock,
            store,
            listeners,
            addrs,
            policy,
            fetch,
            ..
        } = self;

        // Nothing of this node's is live when it starts: close what a
        // crash left open (other nodes' sessions are theirs to close).
        let node = config.cluster.node_name();
        let now = clock.unix();
        let closed = store
            .run({
                let node = node.clone();
                move |c| livestack_store::streams::close_all_open(c, &node, now, "server restarted")
            })
            .await
            .context("cannot tidy the stream history")?;
        if closed > 0 {
            tracing::info!(closed, "closed push sessions left open by the last run");
        }
        store
            .run({
                let node = node.clone();
                move |c| {
                    livestack_store::usage::close_open_recordings(c, &node)?;
                    livestack_store::usage::close_open_transcodes(c, &node)
                }
            })
            .await
            .context("cannot tidy the recording history")?;

        policy
            .refresh()
            .await
            .context("cannot load the configuration for the media plane")?;

        // The media plane is made once the HTTP port is bound: the URLs of
        // locally stored recordings name it.
        let mut media_config = config.to_media();
        media_config.callbacks.fetch = fetch.clone();
        media_config.work_dir = config.data_dir.join("processing");
        media_config.timeshift_dir = config.data_dir.join("timeshift");
        media_config.access_log_dir = config.data_dir.join("logs");
        media_config.storage = config
            .storage
            .to_storage(&config.data_dir, addrs.http)
            .context("invalid [storage] configuration")?;
        let media_shutdown = shutdown.child_token();
        let (events_tx, events_rx) = tokio::sync::mpsc::channel(4096);
        let media = livestack_media::MediaServer::new(
            media_config,
            policy.subscribe(),
            events_tx,
            clock.clone(),
            media_shutdown.clone(),
        );
        // Owned here and awaited below: it ends when the media plane's
        // last event sender goes.
        let recorder = tokio::spawn(livestack_api::events::record(
            store.clone(),
            Arc::clone(&policy),
            Arc::from(node.as_str()),
            events_rx,
        ));
        // With PostgreSQL, a node among others: players here can play
        // what is pushed there (edge relays), signed with a secret the
        // database keeps for every node.
        if store.backend() == livestack_store::Backend::Postgres {
            let secret = store
                .run(livestack_store::cluster::shared_secret)
                .await
                .context("cannot read the cluster's relay secret")?;
            media.join_cluster(livestack_core::media::ClusterLink {
                node: node.clone(),
                secret: secret.into_bytes(),
                ownership: Arc::new(livestack_api::propagation::StoreOwnership::new(
                    store.clone(),
                    Arc::from(node.as_str()),
                )),
            });
        }
        media.serve_rtmp(listeners.rtmp);
        media.serve_http(listeners.http);
        media
            .serve_https(listeners.https)
            .context("cannot set up TLS for HTTPS playback")?;
        media
            .serve_rtmps(listeners.rtmps)
            .context("cannot set up TLS for RTMPS")?;
        media.serve_srt(listeners.srt);
        media
            .serve_webrtc(
                listeners.webrtc,
                listeners.webrtc_tcp,
                config.webrtc.candidate,
            )
            .context("cannot serve WebRTC")?;

        let settings = livestack_api::ApiSettings {
            rate_limit: config.api.rate_limit,
            regions: config.api.regions.clone(),
            task_limits: livestack_api::TaskLimits {
                legacy_per_day: config.api.legacy_record_tasks_per_day,
                legacy_running: config.api.legacy_record_tasks_running,
                pull_tasks: config.api.pull_stream_tasks,
            },
            fetch,
            node: node.clone(),
            owner: livestack_api::OwnerVerification {
                required: config.api.verify_domain_owner,
                dns_server: match config.api.owner_dns_server.trim() {
                    "" => None,
                    s => Some(s.parse().with_context(|| {
                        format!("[api] owner_dns_server `{s}` is not an address like 127.0.0.1:53")
                    })?),
                },
                txt_name: config.api.owner_txt_name.clone(),
                file_url: config.api.owner_file_url.clone(),
            },
            cam: config.cam.to_api(),
        };
        let control: Arc<dyn MediaControl> = Arc::new(media.clone());
        // Other nodes' configuration writes and drop orders (PostgreSQL):
        // owned here, stopped and awaited at shutdown below.
        let follower_shutdown = shutdown.child_token();
        let follower = tokio::spawn(livestack_api::propagation::follow_changes(
            store.clone(),
            Arc::clone(&policy),
            Arc::from(node.as_str()),
            Arc::clone(&control),
            follower_shutdown.clone(),
        ));
        let store_for_metrics = store.clone();
        let gateway =
            livestack_api::Gateway::new(store, &settings, control, Arc::clone(&policy), clock)
                .context("cannot make the HTTP client for watermark pictures")?;
        // One registry for `GET /metrics`: every metric is named
        // livestack_…, the plane's own and the process's.
        let mut registry = prometheus_client::registry::Registry::with_prefix("livestack");
        gateway.metrics().register(&mut registry);
        media.register_metrics(&mut registry);
        registry.register_collector(Box::new(process_metrics::ProcessCollector));
        let store_latency = prometheus_client::metrics::histogram::Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.0, 16),
        );
        registry.register(
            "store_duration_seconds",
            "Time of each database call, waiting for a connection included",
            store_latency.clone(),
        );
        store_for_metrics.observe(move |d| store_latency.observe(d.as_secs_f64()));
        let gateway = Arc::new(
            gateway
                .with_registry(Arc::new(registry))
                .with_console(addrs.http.port()),
        );
        tracing::info!(api_addr = %addrs.api, rtmp_addr = %addrs.rtmp, http_addr = %addrs.http,
            data_dir = %config.data_dir.display(), "livestack ready");

        // This node's lease (PostgreSQL): owned here, released at shutdown.
        let lease_shutdown = shutdown.child_token();
        let host = config.cluster.advertise_host(addrs.api);
        let advertised = livestack_store::cluster::NodeAddrs {
            api: format!("{host}:{}", addrs.api.port()),
            relay: format!("{host}:{}", addrs.http.port()),
        };
        let lease = tokio::spawn(keep_lease(
            store_for_metrics.clone(),
            media.clone(),
            Arc::clone(&policy),
            node.clone(),
            advertised,
            config.cluster.clone(),
            lease_shutdown.clone(),
        ));

        let stop = shutdown.clone();
        let served = gateway
            .serve(
                listeners.api,
                async move { stop.cancelled().await },
                media.connections(),
            )
            .await
            .context("API server failed");
        if shutdown.is_cancelled() {
            tracing::info!("shutting down");
        }
        // Whatever ended the API server ends the media plane too.
        media_shutdown.cancel();
        media.shutdown().await;
        // The lease keeper holds a media handle: it goes before the
        // recorder is awaited.
        lease_shutdown.cancel();
        if let Err(e) = lease.await {
            tracing::error!("the lease keeper failed: {e}");
        }
        // The media plane's event sender goes with its last handle; the
        // recorder then drains what is left and ends.
        drop(media);
        if let Err(e) = recorder.await {
            tracing::error!("event recorder failed: {e}");
        }
        follower_shutdown.cancel();
        if let Err(e) = follower.await {
            tracing::error!("the change follower failed: {e}");
        }
        served
    }
}

/// Renews this node's lease until `shutdown`, then gives it up, so its
/// streams leave the other nodes' lists at once. A renewal that finds the
/// lease had run out (this node was paused or cut off) has the media
/// plane check its pushes' claims before they go on. When the set of live
/// nodes changes (a node joined, or one's lease ran out), the policy is
/// read again: relay tasks are shared out over the live nodes, so every
/// node must see the same set soon. Nothing to do on SQLite.
async fn keep_lease(
    store: Store,
    media: livestack_media::MediaServer,
    policy: Arc<livestack_api::PolicyPublisher>,
    node: String,
    advertise: livestack_store::cluster::NodeAddrs,
    cluster: config::ClusterConfig,
    shutdown: CancellationToken,
) {
    if store.backend() != livestack_store::Backend::Postgres {
        return;
    }
    let lease_ms = i64::try_from(cluster.lease_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let every = std::time::Duration::from_secs(cluster.lease_renew_secs.max(1));
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first renewal finds the lease of the last run over: nothing to
    // check yet.
    let mut first = true;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let (n, a) = (node.clone(), advertise.clone());
        match store
            .run(move |c| livestack_store::cluster::renew_lease_checked(c, &n, &a, lease_ms))
            .await
        {
            Ok(false) => {}
            Ok(true) if first => {}
            Ok(true) => {
                let ended = media.recheck_claims().await;
                tracing::warn!(
                    node,
                    ended,
                    "this node's lease had run out: its pushes' claims were checked"
                );
            }
            Err(e) => tracing::warn!(node, "cannot renew this node's lease: {e}"),
        }
        first = false;
        match store.run(livestack_store::cluster::live_nodes).await {
            Ok(now) => {
                let names: Vec<String> = now.into_iter().map(|n| n.name).collect();
                if policy.current().processing.nodes != names {
                    tracing::info!(nodes = ?names, "the cluster's live nodes changed");
                    if let Err(e) = policy.refresh().await {
                        tracing::warn!(node, "cannot reload the policy: {e}");
                    }
                }
            }
            Err(e) => tracing::warn!(node, "cannot read the cluster's live nodes: {e}"),
        }
    }
    let n = node.clone();
    if let Err(e) = store
        .run(move |c| livestack_store::cluster::release_lease(c, &n))
        .await
    {
        tracing::warn!(node, "cannot release this node's lease: {e}");
    }
}

/// Makes sure the root account has a key: `given`, or on a brand-new
/// data directory a generated one, which is returned to be shown once.
fn bootstrap_root_key(store: &Store, given: Option<RootKey>) -> anyhow::Result<Option<RootKey>> {
    if let Some(key) = &given {
        anyhow::ensure!(
            keys::is_well_formed_secret_id(&key.secret_id),
            "LIVESTACK_SECRET_ID must look like a Tencent Cloud key id: AKID followed by letters and digits"
        );
    }
    let generated = store.transaction_blocking(move |conn| {
        let root = accounts::ensure(conn, "root")?;
        match given {
            Some(RootKey {
                secret_id,
                secret_key,
            }) => {
                let key = keys::NewKey {
                    secret_id: secret_id.clone(),
                    secret_key,
                    account_id: root.id,
                    temporary: None,
                    user_id: None,
                    session_name: None,
                    session_policy: None,
                    role_id: None,
                };
                if keys::upsert(conn, &key)? {
                    tracing::info!(secret_id, "root API key set from LIVESTACK_SECRET_ID");
                }
                Ok(None)
            }
            None if keys::count(conn)? == 0 => {
                let key = keys::NewKey::generate(root.id, None);
                keys::insert(conn, &key)?;
                Ok(Some(RootKey {
                    secret_id: key.secret_id,
                    secret_key: key.secret_key,
                }))
            }
            None => Ok(None),
        }
    })?;
    Ok(generated)
}
