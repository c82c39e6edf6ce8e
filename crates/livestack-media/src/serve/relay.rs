//! Edge relays: a stream pushed to another node of the cluster, pulled
//! from its owner when a player here asks for it and served here as a
//! local stream (SRS's edge is the model).
//!
//! Owns: at most one relay per stream on this node, whatever the number
//! of players (the first player starts it, the others attach to its hub);
//! the pull itself (HTTP-FLV from the owner's playback listener, signed
//! with the cluster secret); stopping it [`LINGER`] after its last player
//! left; and, on the owner, checking a pull's signature. Must not: touch
//! the database (the control plane's [`Ownership`] says who owns what), run
//! processing on a relayed stream or report it as a push (the owner does
//! both: a relay is `internal`), or relay what is itself a relay (pulls
//! are answered from local pushes only, so relays never chain).
//!
//! [`Ownership`]: livestack_core::media::Ownership

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use livestack_core::media::StreamKey;
use livestack_formats::flv::FlvReader;
use livestack_formats::hls::SegmenterConfig;
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::Instrument as _;

use crate::stream::live::{Live, Publisher};
use crate::Inner;

/// The path prefix of relay pulls on the HTTP playback listener. App
/// names cannot start with a dot, so no player's URL is taken.
pub(crate) const PULL_PATH: &str = "/.livestack/relay/";
/// How far a pull's timestamp may be from this node's clock (nodes'
/// clocks need only roughly agree).
const MAX_SKEW_SECS: i64 = 300;
/// How long connecting to the owner and reading its answer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a player waits for a relay that is starting.
const START_WAIT: Duration = Duration::from_secs(5);
/// A relay with no player attached and no HLS request for this long is
/// stopped (HLS players ask every segment duration; a player that
/// reconnects at once finds the relay still up).
const LINGER: Duration = Duration::from_secs(5);
/// How often a relay looks whether anyone still watches.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// The merged-write time of what an owner sends a relay: one connection
/// per stream per edge, so latency matters more than syscalls.
pub(crate) const PULL_MERGE: Duration = Duration::from_millis(20);

/// Where a relay is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Asking who owns the stream, connecting.
    Starting,
    /// Registered here: players attach to its hub.
    Up,
    /// Ended (or never came up).
    Ended,
}

/// The relays of this node, by the stream they serve.
#[derive(Default)]
pub(crate) struct Relays {
    map: Mutex<HashMap<StreamKey, watch::Receiver<State>>>,
}

impl Relays {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StreamKey, watch::Receiver<State>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The relay of `key`, or a new entry for one about to start (the
    /// sender is `Some` then: the caller must start it).
    fn join_or_reserve(
        &self,
        key: &StreamKey,
    ) -> (watch::Receiver<State>, Option<watch::Sender<State>>) {
        let mut map = self.lock();
        if let Some(rx) = map.get(key) {
            return (rx.clone(), None);
        }
        let (tx, rx) = watch::channel(State::Starting);
        map.insert(key.clone(), rx.clone());
        (rx, Some(tx))
    }

    /// Forgets the relay of `key` if it is still the one `tx` drives.
    fn forget(&self, key: &StreamKey, tx: &watch::Sender<State>) {
        let mut map = self.lock();
        if map
            .get(key)
            .is_some_and(|rx| rx.same_channel(&tx.subscribe()))
        {
            map.remove(key);
        }
    }
}

/// The signature of a pull of `account`'s `app/stream` as play domain
/// `domain` asks for it, at Unix time `t`.
pub(crate) fn sign(
    secret: &[u8],
    account: i64,
    app: &str,
    stream: &str,
    domain: &str,
    t: i64,
) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(format!("livestack-relay\n{account}\n{app}\n{stream}\n{domain}\n{t}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A pull as the owner reads it from the request.
#[derive(Debug)]
pub(crate) struct Pull {
    /// The stream asked for.
    pub(crate) key: StreamKey,
    /// The play domain the edge's player asked on (transcoded outputs and
    /// watermarks are resolved by it, here on the owner).
    pub(crate) domain: String,
}

/// Why a pull is refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PullRefusal {
    /// This node is in no cluster, or the path names no stream.
    NotFound,
    /// No valid signature: not another node of this cluster.
    Forbidden,
}

/// Reads and checks a pull: `rest` is the path after [`PULL_PATH`]
/// (`app/stream.flv`), `query` carries `account`, `domain`, `t`, `sign`.
pub(crate) fn check_pull(inner: &Inner, rest: &str, query: &str) -> Result<Pull, PullRefusal> {
    let link = inner.cluster.get().ok_or(PullRefusal::NotFound)?;
    let (app, file) = rest.split_once('/').ok_or(PullRefusal::NotFound)?;
    let stream = file.strip_suffix(".flv").ok_or(PullRefusal::NotFound)?;
    let get = |name: &str| crate::serve::access::query_get(query, name);
    let account: i64 = get("account")
        .and_then(|a| a.parse().ok())
        .ok_or(PullRefusal::Forbidden)?;
    let domain = get("domain").unwrap_or_default();
    let t: i64 = get("t")
        .and_then(|t| t.parse().ok())
        .ok_or(PullRefusal::Forbidden)?;
    let given = get("sign").ok_or(PullRefusal::Forbidden)?;
    if (inner.clock.unix() - t).abs() > MAX_SKEW_SECS {
        return Err(PullRefusal::Forbidden);
    }
    let want = sign(&link.secret, account, app, stream, &domain, t);
    // Compared in constant time: the signature is the only credential.
    let same = want.len() == given.len()
        && want
            .bytes()
            .zip(given.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !same {
        return Err(PullRefusal::Forbidden);
    }
    Ok(Pull {
        key: StreamKey {
            account: livestack_core::AccountId(account),
            app: app.to_owned(),
            stream: stream.to_owned(),
        },
        domain,
    })
}

/// The relay of `key` (as a player on play domain `domain` asked for it;
/// `source` is the push it comes from, which the directory knows),
/// started if need be; waits up to [`START_WAIT`] for it to come up.
/// `None` when this node is in no cluster or no other node has it.
pub(crate) async fn from_owner(
    inner: &Arc<Inner>,
    key: &StreamKey,
    domain: &str,
    source: &StreamKey,
) -> Option<Arc<Live>> {
    inner.cluster.get()?;
    let (mut rx, starter) = inner.relays.join_or_reserve(key);
    if let Some(tx) = starter {
        let span = tracing::info_span!("relay", app = %key.app, stream = %key.stream);
        inner.tasks.spawn(
            run(
                Arc::clone(inner),
                key.clone(),
                domain.to_owned(),
                source.clone(),
                tx,
            )
            .instrument(span),
        );
    }
    let deadline = tokio::time::Instant::now() + START_WAIT;
    loop {
        let state = *rx.borrow_and_update();
        match state {
            State::Up => return inner.live(key).filter(|l| l.publisher.relay),
            State::Ended => return None,
            State::Starting => {}
        }
        tokio::select! {
            r = tokio::time::timeout_at(deadline, rx.changed()) => match r {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return None,
            },
            () = inner.shutdown.cancelled() => return None,
        }
    }
}

/// One relay, from asking who owns the stream to its end.
async fn run(
    inner: Arc<Inner>,
    key: StreamKey,
    domain: String,
    source: StreamKey,
    tx: watch::Sender<State>,
) {
    match pull(&inner, &key, &domain, &source, &tx).await {
        Ok(why) => tracing::info!("relay ended: {why}"),
        Err(e) => tracing::info!("relay failed: {e}"),
    }
    inner.relays.forget(&key, &tx);
    tx.send_replace(State::Ended);
}

/// Why a relay could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("no other node has the stream")]
    NoOwner,
    #[error("cannot reach the owner {node} at {addr}: {source}")]
    Connect {
        node: String,
        addr: String,
        source: std::io::Error,
    },
    #[error("the owner {node} did not answer within {CONNECT_TIMEOUT:?}")]
    Timeout { node: String },
    #[error("the owner {node} answered {status}")]
    Refused { node: String, status: String },
    #[error("the stream is pushed here now")]
    LocalPush,
    #[error("reading from the owner: {0}")]
    Io(#[from] std::io::Error),
    #[error("the owner sent malformed FLV: {0}")]
    Flv(#[from] livestack_formats::flv::FlvError),
}

/// Connects to the owner, registers the relay and feeds it until the
/// owner's stream ends or nobody watches.
async fn pull(
    inner: &Arc<Inner>,
    key: &StreamKey,
    domain: &str,
    source: &StreamKey,
    tx: &watch::Sender<State>,
) -> Result<&'static str, RelayError> {
    let link = inner.cluster.get().ok_or(RelayError::NoOwner)?;
    let owner = tokio::select! {
        o = link.ownership.locate(source) => o.ok_or(RelayError::NoOwner)?,
        () = inner.shutdown.cancelled() => return Ok("shutting down"),
    };
    let t = inner.clock.unix();
    let signature = sign(
        &link.secret,
        key.account.0,
        &key.app,
        &key.stream,
        domain,
        t,
    );
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("account", &key.account.0.to_string())
        .append_pair("domain", domain)
        .append_pair("t", &t.to_string())
        .append_pair("sign", &signature)
        .finish();
    let request = format!(
        "GET {PULL_PATH}{}/{}.flv?{query} HTTP/1.1\r\nHost: {}\r\nUser-Agent: livestack-relay/{}\r\n\
         X-Livestack-Node: {}\r\nConnection: close\r\n\r\n",
        key.app,
        key.stream,
        owner.addr,
        env!("CARGO_PKG_VERSION"),
        link.node,
    );
    let connect = async {
        let mut socket = TcpStream::connect(owner.addr.as_str())
            .await
            .map_err(|source| RelayError::Connect {
                node: owner.node.clone(),
                addr: owner.addr.clone(),
                source,
            })?;
        let _ = socket.set_nodelay(true);
        socket.write_all(request.as_bytes()).await?;
        let mut head = Vec::with_capacity(1024);
        let mut byte = [0u8; 4096];
        loop {
            let n = socket.read(&mut byte).await?;
            if n == 0 {
                return Err(RelayError::Refused {
                    node: owner.node.clone(),
                    status: "nothing".into(),
                });
            }
            head.extend_from_slice(&byte[..n]);
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                let rest = head.split_off(end + 4);
                return Ok((socket, head, rest));
            }
            if head.len() > 16 * 1024 {
                return Err(RelayError::Refused {
                    node: owner.node.clone(),
                    status: "an oversized head".into(),
                });
            }
        }
    };
    let (mut socket, head, rest) = tokio::select! {
        r = tokio::time::timeout(CONNECT_TIMEOUT, connect) => r.map_err(|_| RelayError::Timeout { node: owner.node.clone() })??,
        () = inner.shutdown.cancelled() => return Ok("shutting down"),
    };
    let status = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    if !status.starts_with("HTTP/1.1 200") && !status.starts_with("HTTP/1.0 200") {
        return Err(RelayError::Refused {
            node: owner.node,
            status,
        });
    }
    let peer = socket
        .peer_addr()
        .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
    let local = socket
        .local_addr()
        .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
    let session = inner.next_session();
    let publisher = Publisher {
        key: key.clone(),
        domain: domain.to_owned(),
        client: peer,
        server: local,
        started: inner.clock.unix(),
        params: String::new(),
        session,
        internal: true,
        watermark: None,
        relay: true,
        epoch: None,
        relay_task: None,
        generation: 0,
    };
    let segmenter = SegmenterConfig {
        target_duration_ms: inner.config.hls_segment.as_millis() as u64,
        window: inner.config.hls_window,
        name: key.stream.clone(),
        ..SegmenterConfig::default()
    };
    let cancel = inner.shutdown.child_token();
    let live = inner
        .streams
        .insert_if_absent(key, session, |feed| {
            Arc::new(Live::new(
                publisher,
                feed,
                cancel,
                segmenter,
                inner.config.chunk_size,
            ))
        })
        .ok_or(RelayError::LocalPush)?;
    tracing::info!(owner = owner.node, addr = owner.addr, "relay started");
    inner.metrics.relays.inc();
    tx.send_replace(State::Up);
    let fed = feed(inner, &live, &mut socket, rest).await;
    live.finish_hls();
    inner.streams.remove_if_current(key, session, false);
    fed
}

/// Reads FLV tags from the owner into the relay's hub until the owner's
/// stream ends, the relay is stopped, or [`LINGER`] passes without a
/// player.
async fn feed(
    inner: &Inner,
    live: &Arc<Live>,
    socket: &mut TcpStream,
    first: Vec<u8>,
) -> Result<&'static str, RelayError> {
    let mut reader = FlvReader::new();
    reader.push(&first);
    let mut buf = vec![0u8; 64 * 1024];
    let mut watch = tokio::time::interval(WATCH_EVERY);
    watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_player = tokio::time::Instant::now();
    loop {
        while let Some(tag) = reader.next_tag()? {
            live.publish(tag.kind.into(), tag.timestamp_ms, tag.payload);
        }
        let n = tokio::select! {
            r = tokio::time::timeout(inner.config.idle_timeout, socket.read(&mut buf)) => match r {
                Ok(r) => r?,
                Err(_) => return Ok("the owner sent nothing for the idle timeout"),
            },
            () = live.cancelled() => return Ok("replaced by a push here, or stopped"),
            _ = watch.tick() => {
                if live.hub.players() > 0 {
                    last_player = tokio::time::Instant::now();
                }
                if last_player.elapsed() >= LINGER && live.untouched_for() >= LINGER {
                    return Ok("no players left");
                }
                continue;
            }
        };
        if n == 0 {
            return Ok("the owner's stream ended");
        }
        reader.push(&buf[..n]);
    }
}
