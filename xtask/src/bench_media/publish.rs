//! The light publisher (`xtask bench-media --publish …`, hidden): many
//! streams pushed over RTMP from one process, for the many-streams runs,
//! where an ffmpeg per stream would cost the client's CPU more than the
//! server spends.
//!
//! It reads the source FLV once and, for each stream, connects, publishes
//! `NAME<k>` and replays the file's tags at their timestamps (looping,
//! timestamps carried on), as `ffmpeg -re -stream_loop -1 -c copy` does.
//! Streams start spread over [`SPREAD`], so their keyframes do not all
//! fall at once. Each stream wakes every [`TICK`] and sends what is due:
//! a few wake-ups a second per stream, on one thread. It prints
//! `publishing N` once every stream is publishing, and exits when its
//! standard input closes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use bytes::Bytes;
use livestack_formats::flv::{FlvReader, TagKind};
use livestack_rtmp::{ClientConfig, ClientEvent, ClientSession};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// How often a stream sends what is due.
const TICK: Duration = Duration::from_millis(40);
/// Streams start spread over this long.
const SPREAD: Duration = Duration::from_secs(2);
/// How long a stream may take to start publishing.
const START_LIMIT: Duration = Duration::from_secs(20);

const USAGE: &str = "usage: xtask bench-media --publish --addr ADDR --tc-url URL --app APP \
--name NAME [--query QUERY] --streams N --source FLV";

/// The source's tags, once.
struct Tags {
    /// (kind, timestamp ms, body).
    tags: Vec<(TagKind, u32, Bytes)>,
    /// One loop's length, ms.
    loop_ms: u32,
}

fn read_tags(path: &str) -> Result<Tags> {
    let data = std::fs::read(path).with_context(|| format!("cannot read {path}"))?;
    let mut reader = FlvReader::new();
    reader.push(&data);
    let mut tags = Vec::new();
    while let Some(tag) = reader.next_tag().map_err(|e| anyhow!("{path}: {e}"))? {
        tags.push((tag.kind, tag.timestamp_ms, tag.payload));
    }
    let last = tags.iter().map(|(_, ts, _)| *ts).max().context("no tags")?;
    // The next loop starts one frame after the last tag.
    Ok(Tags {
        tags,
        loop_ms: last + 40,
    })
}

/// `xtask bench-media --publish …`.
pub(super) fn main(args: &[&str]) -> Result<std::process::ExitCode> {
    let mut values = std::collections::BTreeMap::new();
    for pair in args.chunks(2) {
        match pair {
            [k, v] if k.starts_with("--") => {
                values.insert(*k, *v);
            }
            _ => bail!("{USAGE}"),
        }
    }
    let get = |k: &str| values.get(k).copied().context(USAGE);
    let addr: SocketAddr = get("--addr")?.parse().context("--addr")?;
    if !addr.ip().is_loopback() {
        bail!("the publisher only targets loopback addresses, not {addr}");
    }
    let streams: usize = get("--streams")?.parse().context("--streams")?;
    let tags = Arc::new(read_tags(get("--source")?)?);
    let stream = Stream {
        addr,
        app: get("--app")?.to_owned(),
        tc_url: get("--tc-url")?.to_owned(),
        name: get("--name")?.to_owned(),
        query: values
            .get("--query")
            .map_or(String::new(), |q| format!("?{q}")),
    };
    super::exit_when_stdin_closes();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(publish_all(
        Arc::new(stream),
        tags,
        streams.clamp(1, 10_000),
    ))
}

/// Where the streams go.
struct Stream {
    addr: SocketAddr,
    app: String,
    tc_url: String,
    name: String,
    query: String,
}

async fn publish_all(
    stream: Arc<Stream>,
    tags: Arc<Tags>,
    n: usize,
) -> Result<std::process::ExitCode> {
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<Result<()>>(n);
    let begin = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..n {
        let (stream, tags, ready) = (Arc::clone(&stream), Arc::clone(&tags), ready_tx.clone());
        let at = begin + SPREAD.mul_f64(k as f64 / n as f64);
        tasks.spawn(async move {
            tokio::time::sleep_until(at).await;
            let name = format!("{}{k}{}", stream.name, stream.query);
            if let Err(e) = publish(&stream, &name, &tags, &ready).await {
                // Before it published, the error is its readiness report.
                let _ = ready.send(Err(anyhow!("{name}: {e:#}"))).await;
                eprintln!("publisher {name}: {e:#}");
            }
        });
    }
    drop(ready_tx);
    for _ in 0..n {
        match ready_rx.recv().await {
            Some(Ok(())) => {}
            Some(Err(e)) => bail!("a stream did not start: {e:#}"),
            None => bail!("the streams ended before they all published"),
        }
    }
    println!("publishing {n}");
    while tasks.join_next().await.is_some() {}
    Ok(std::process::ExitCode::SUCCESS)
}

/// Publishes one stream until the server closes it.
async fn publish(
    stream: &Stream,
    name: &str,
    tags: &Tags,
    ready: &tokio::sync::mpsc::Sender<Result<()>>,
) -> Result<()> {
    let mut socket = TcpStream::connect(stream.addr)
        .await
        .context("connect failed")?;
    socket.set_nodelay(true).context("cannot set TCP_NODELAY")?;
    let mut session = ClientSession::new(ClientConfig::new(&stream.app, &stream.tc_url));
    session.publish(name, "live");
    let mut buf = vec![0u8; 16 * 1024];
    tokio::time::timeout(START_LIMIT, async {
        while !session.is_publishing() {
            while let Some(out) = session.take_output() {
                socket.write_all(&out).await.context("write failed")?;
            }
            let n = socket.read(&mut buf).await.context("read failed")?;
            if n == 0 {
                bail!("closed by the server before publishing");
            }
            session.feed(&buf[..n]).map_err(|e| anyhow!("RTMP: {e}"))?;
            while let Some(event) = session.poll_event() {
                match event {
                    ClientEvent::Status { level, code, .. } if level == "error" => {
                        bail!("publish refused: {code}")
                    }
                    ClientEvent::CommandFailed { command, code, .. } => {
                        bail!("{command} failed: {code}")
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    })
    .await
    .context("not publishing in time")??;
    let _ = ready.send(Ok(())).await;
    let start = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut next, mut round) = (0usize, 0u32);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            r = socket.read(&mut buf) => {
                let n = r.context("read failed")?;
                if n == 0 {
                    bail!("closed by the server");
                }
                // Acknowledgements and pings: read and answered.
                session.feed(&buf[..n]).map_err(|e| anyhow!("RTMP: {e}"))?;
                while session.poll_event().is_some() {}
            }
        }
        let now_ms = start.elapsed().as_millis();
        loop {
            let (kind, ts, body) = &tags.tags[next];
            let at = u64::from(round) * u64::from(tags.loop_ms) + u64::from(*ts);
            if u128::from(at) > now_ms {
                break;
            }
            let ts = u32::try_from(at).unwrap_or(u32::MAX);
            match kind {
                TagKind::Video => session.send_video(ts, body),
                TagKind::Audio => session.send_audio(ts, body),
                TagKind::Script => session.send_data(body),
            };
            next += 1;
            if next == tags.tags.len() {
                (next, round) = (0, round + 1);
            }
        }
        while let Some(out) = session.take_output() {
            socket.write_all(&out).await.context("write failed")?;
        }
    }
}
