//! `cargo xtask bench-edge`: what serving players from an edge node costs.
//! One ~880 kbps stream is published on an origin node and played by N
//! players on an edge node of the same cluster (both on one PostgreSQL
//! database), beside the same N players on a single node in the same run.
//!
//! For each N and protocol it makes two runs with `bench-media`'s method
//! (pinning, sampling, the load generator, the quiet gate):
//! - **single node:** `livestack serve` on SQLite on CPU 0, the publisher
//!   and the players on CPU 1, exactly as `bench-media` does;
//! - **edge:** the edge on CPU 0 and the origin on CPU 1 with the publisher
//!   and the players, a fresh database for the pair. The publisher pushes
//!   to the origin, the players play from the edge, whose relay pulls the
//!   stream from the origin. The first-frame figures of these players are
//!   those of a player arriving while the relay is up (the load
//!   generator's probe started it).
//!
//! The edge run also counts the TCP connections established to the
//! origin's playback listener at the window's edges (from
//! `/proc/net/tcp`: the edge's relays, since nothing else plays there) and
//! reads the edge's `livestack_relays_total` after it. Then it measures
//! the first frame of a player that starts a relay **on demand**: M more
//! streams are pushed to the origin, and for each of them in turn one
//! player on the edge plays it from nothing, in several rounds with the
//! edge's relays stopped in between.
//!
//! It prints tables and verdicts; it asserts nothing.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::process::Child;

use super::{
    add_bench_domains, api_call, launch_livestack, machine, measure, print_run, quantile,
    start_livestack, urls, wait_for_quiet, Env, FirstFrames, Launch, Load, Origin, Proto,
    RunResult, RunningServer, APP, PLAY_DOMAIN, PUSH_DOMAIN, RAMP,
};
use crate::bench::{binaries, until_interrupted};

const USAGE: &str = "usage: cargo xtask bench-edge --database-url postgres://... \
    [--players 1000,2000] [--proto rtmp,flv] [--warmup SECS] [--window SECS] \
    [--on-demand STREAMS] [--on-demand-rounds R] [--quiet-wait SECS] [--livestack PATH] \
    [--no-build]";

/// Edge CPU per player-second ÷ the single node's, at most.
const TARGET_CPU_RATIO: f64 = 1.15;
/// First frame p99 on an edge whose relay is up, ms.
const TARGET_FIRST_FRAME_UP_MS: f64 = 100.0;
/// First frame p99 when the player starts the relay, ms.
const TARGET_FIRST_FRAME_ON_DEMAND_MS: f64 = 1000.0;
/// How long an edge may take to stop its idle relays (its linger is 5 s).
const RELAYS_STOP_WAIT: Duration = Duration::from_secs(30);
/// How long the on-demand streams may take to be live on the origin.
const ONLINE_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug)]
struct Options {
    database_url: String,
    players: Vec<usize>,
    protos: Vec<Proto>,
    warmup: u64,
    window: u64,
    /// Streams pushed for the on-demand first frames.
    on_demand: usize,
    /// Rounds over those streams.
    rounds: usize,
    quiet_wait: u64,
    livestack: Option<PathBuf>,
    build: bool,
}

fn parse_options(args: &[&str]) -> Result<Options> {
    let mut database_url = None;
    let mut opts = Options {
        database_url: String::new(),
        players: vec![1000, 2000],
        protos: vec![Proto::Rtmp, Proto::Flv],
        warmup: 10,
        window: 20,
        on_demand: 10,
        rounds: 3,
        quiet_wait: 300,
        livestack: None,
        build: true,
    };
    let parsed = crate::cli::parse(args, USAGE)?;
    opts.build = parsed.build;
    for crate::cli::Opt { arg, name, value } in parsed.options {
        let positive = |v: &str| crate::cli::positive(name, v);
        match name {
            "--database-url" => database_url = Some(value.to_owned()),
            "--players" => {
                opts.players =
                    crate::cli::list(value, |v| Ok(usize::try_from(positive(v)?.min(20_000))?))?;
            }
            "--proto" => opts.protos = crate::cli::list(value, Proto::parse)?,
            "--warmup" => opts.warmup = positive(value)?.clamp(RAMP.as_secs() + 1, 600),
            "--window" => opts.window = positive(value)?.min(600),
            "--on-demand" => opts.on_demand = usize::try_from(positive(value)?.min(50))?,
            "--on-demand-rounds" => opts.rounds = usize::try_from(positive(value)?.min(20))?,
            "--quiet-wait" => opts.quiet_wait = crate::cli::number_up_to(name, value, 3600)?,
            "--livestack" => opts.livestack = Some(PathBuf::from(value)),
            _ => bail!("unknown option {arg:?}\n{USAGE}"),
        }
    }
    opts.database_url = match database_url {
        Some(url) if livestack_store::pg::is_postgres_url(&url) => url,
        Some(url) => bail!("--database-url {url:?} is not a postgres:// URL\n{USAGE}"),
        None => bail!(
            "bench-edge needs a PostgreSQL server for its cluster: --database-url URL \
             (`scripts/postgres start $(mktemp -d /tmp/pg.XXXXXX)` starts a throwaway one \
             and prints its URL)\n{USAGE}"
        ),
    };
    opts.protos.sort();
    opts.protos.dedup();
    Ok(opts)
}

/// `cargo xtask bench-edge …`.
pub(crate) fn main(root: &Path, args: &[&str]) -> Result<ExitCode> {
    let opts = parse_options(args)?;
    let (target_dir, livestack) = binaries(root, opts.build, opts.livestack.as_deref())?;
    let env = Env::prepare(&target_dir, livestack)?;
    until_interrupted(run_matrix(&opts, &env), "processes")?;
    Ok(ExitCode::SUCCESS)
}

/// One N and protocol: the single node, the edge, and the on-demand
/// first frames measured on that edge's cluster.
struct Pair {
    single: RunResult,
    edge: RunResult,
    /// The edge's `livestack_relays_total` after the run.
    relays_started: Option<f64>,
    on_demand: Vec<super::FirstFrame>,
    /// Relays the edge started during the on-demand rounds: one per
    /// player when each really started its relay.
    on_demand_relays: Option<f64>,
}

async fn run_matrix(opts: &Options, env: &Env) -> Result<()> {
    println!();
    println!("bench-edge: one ~880 kbps stream to N players on an edge node, beside one node");
    println!("  machine:   {}", machine());
    println!("  pinning:   {}", env.pinning.note);
    println!(
        "  source:    {} ({:.0} kbps payload)",
        env.source.path.display(),
        env.source.payload_kbps
    );
    println!(
        "  load:      {:?} players, started over {} s, {} s warm-up, {} s window; \
         on demand: {} streams x {} rounds",
        opts.players,
        RAMP.as_secs(),
        opts.warmup,
        opts.window,
        opts.on_demand,
        opts.rounds
    );
    println!("  livestack: {}", env.livestack.display());
    println!(
        "  database:  {}",
        livestack_store::pg::redact(&opts.database_url)
    );
    let mut pairs = Vec::new();
    for &n in &opts.players {
        for &proto in &opts.protos {
            let load = Load {
                proto,
                players: n,
                warmup: opts.warmup,
                window: opts.window,
            };
            println!();
            println!("run: single node {} N={n}", proto.name());
            let quiet = wait_for_quiet(env, Duration::from_secs(opts.quiet_wait)).await;
            let server = start_livestack(env).await?;
            let publish = urls(&server).publish;
            let single = measure(&server, &publish, None, load, env).await;
            server.stop().await;
            let mut single =
                single.with_context(|| format!("single node {} N={n}", proto.name()))?;
            single.label = "single node".to_owned();
            single.quiet_before = quiet;
            print_run(&single);

            println!();
            println!("run: edge {} N={n}", proto.name());
            let quiet = wait_for_quiet(env, Duration::from_secs(opts.quiet_wait)).await;
            let mut pair = edge_run(opts, env, load, single)
                .await
                .with_context(|| format!("edge {} N={n}", proto.name()))?;
            pair.edge.quiet_before = quiet;
            pairs.push(pair);
        }
    }
    print_summary(&pairs);
    Ok(())
}

/// The edge run of `load`, then the on-demand first frames, on a cluster
/// of two nodes on a fresh database.
async fn edge_run(opts: &Options, env: &Env, load: Load, single: RunResult) -> Result<Pair> {
    let url = opts.database_url.clone();
    // The PostgreSQL client blocks: off the async runtime.
    let database =
        tokio::task::spawn_blocking(move || livestack_store::pg::create_scratch_database(&url))
            .await
            .context("the database set-up task failed")?
            .context("cannot make a database for the run")?;
    let origin = launch_livestack(
        env,
        Launch {
            cpu: env.pinning.client,
            database_url: Some(&database),
            node_name: Some("origin"),
            ..Launch::default()
        },
    )
    .await
    .context("the origin")?;
    add_bench_domains(origin.api.context("no API address")?).await?;
    let edge = launch_livestack(
        env,
        Launch {
            cpu: env.pinning.server,
            database_url: Some(&database),
            node_name: Some("edge"),
            ..Launch::default()
        },
    )
    .await
    .context("the edge")?;
    let outcome = edge_phases(opts, env, load, &origin, &edge).await;
    edge.stop().await;
    origin.stop().await;
    let (mut edge_result, relays_started, (on_demand, on_demand_relays)) = outcome?;
    edge_result.label = "edge".to_owned();
    print_run(&edge_result);
    print_edge_extras(&edge_result, relays_started, &on_demand, on_demand_relays);
    Ok(Pair {
        single,
        edge: edge_result,
        relays_started,
        on_demand,
        on_demand_relays,
    })
}

async fn edge_phases(
    opts: &Options,
    env: &Env,
    load: Load,
    origin: &RunningServer,
    edge: &RunningServer,
) -> Result<(RunResult, Option<f64>, OnDemand)> {
    let origin_http = origin.http.context("the origin has no HTTP listener")?;
    let publish = urls(origin).publish;
    let origin_info = Origin {
        pid: origin.pid,
        http_port: origin_http.port(),
    };
    let result = measure(edge, &publish, Some(origin_info), load, env).await?;
    let edge_api = edge.api.context("the edge has no API address")?;
    let relays_started = metric(edge_api, "livestack_relays_total").await.ok();
    let on_demand = on_demand_first_frames(opts, env, load.proto, origin, edge).await?;
    Ok((result, relays_started, on_demand))
}

/// The on-demand players' first frames, and how many relays the edge
/// started meanwhile.
type OnDemand = (Vec<super::FirstFrame>, Option<f64>);

/// The first frame of a player that starts its edge's relay: M streams
/// pushed to the origin, then, for each round, one player per stream in
/// turn on the edge once the edge has no relay left.
async fn on_demand_first_frames(
    opts: &Options,
    env: &Env,
    proto: Proto,
    origin: &RunningServer,
    edge: &RunningServer,
) -> Result<OnDemand> {
    let names: Vec<String> = (1..=opts.on_demand).map(|i| format!("od{i}")).collect();
    let rtmp = origin.rtmp;
    let publish: Vec<String> = names
        .iter()
        .map(|s| format!("rtmp://{rtmp}/{APP}/{s}?domain={PUSH_DOMAIN}"))
        .collect();
    let log = origin._dir.path().join("ffmpeg-on-demand.log");
    let mut publisher = start_publishers(env, &publish, &log)?;
    let outcome = async {
        let origin_api = origin.api.context("the origin has no API address")?;
        wait_online(origin_api, names.len()).await?;
        let edge_api = edge.api.context("the edge has no API address")?;
        let (addr, targets): (_, Vec<String>) = match proto {
            Proto::Rtmp => (
                edge.rtmp,
                names
                    .iter()
                    .map(|s| format!("{s}?domain={PLAY_DOMAIN}"))
                    .collect(),
            ),
            Proto::Flv => (
                edge.http.context("the edge has no HTTP listener")?,
                names
                    .iter()
                    .map(|s| format!("/{APP}/{s}.flv?domain={PLAY_DOMAIN}"))
                    .collect(),
            ),
            Proto::Webrtc => (
                edge.http.context("the edge has no HTTP listener")?,
                names
                    .iter()
                    .map(|s| format!("/{APP}/{s}/whep?domain={PLAY_DOMAIN}"))
                    .collect(),
            ),
        };
        let mut all = Vec::new();
        let mut started = Some(0.0);
        for round in 1..=opts.rounds {
            wait_no_relays(edge_api)
                .await
                .with_context(|| format!("before round {round}"))?;
            let before = metric(edge_api, "livestack_relays_total").await.ok();
            let mut frames = run_first_frames(env, proto, addr, &targets).await?;
            let after = metric(edge_api, "livestack_relays_total").await.ok();
            started = match (started, before, after) {
                (Some(s), Some(b), Some(a)) => Some(s + a - b),
                _ => None,
            };
            all.append(&mut frames);
        }
        anyhow::Ok((all, started))
    }
    .await;
    let alive = publisher.try_wait()?.is_none();
    let _ = publisher.kill().await;
    if outcome.is_err() && !alive {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        bail!("the on-demand publisher died: {}", log.trim());
    }
    outcome
}

/// One ffmpeg pushing the source to every URL of `urls` (pinned to the
/// client's CPU), its messages in `log`.
fn start_publishers(env: &Env, urls: &[String], log: &Path) -> Result<Child> {
    let log =
        std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let mut cmd = env.command(env.pinning.client, &env.ffmpeg);
    cmd.args([
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "warning",
        "-nostats",
    ])
    .args(["-re", "-stream_loop", "-1", "-i"])
    .arg(&env.source.path);
    for url in urls {
        cmd.args(["-map", "0", "-c", "copy", "-f", "flv", url]);
    }
    cmd.stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("cannot start the ffmpeg publisher")
}

/// Waits until `count` streams are live on the push domain.
async fn wait_online(api: std::net::SocketAddr, count: usize) -> Result<()> {
    let began = Instant::now();
    loop {
        let body = api_call(
            api,
            "DescribeLiveStreamOnlineList",
            &format!(r#"{{"DomainName":"{PUSH_DOMAIN}","PageSize":100}}"#),
        )
        .await?;
        let online: serde_json::Value =
            serde_json::from_str(&body).context("unreadable DescribeLiveStreamOnlineList")?;
        let total = online["Response"]["TotalNum"].as_u64().unwrap_or(0);
        if total >= count as u64 {
            return Ok(());
        }
        if began.elapsed() > ONLINE_WAIT {
            bail!(
                "only {total} of {count} streams were live on the origin after {} s",
                ONLINE_WAIT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the edge at `api` has no relay up.
async fn wait_no_relays(api: std::net::SocketAddr) -> Result<()> {
    let began = Instant::now();
    loop {
        let up = metric(api, "livestack_relays_up").await?;
        if up == 0.0 {
            return Ok(());
        }
        if began.elapsed() > RELAYS_STOP_WAIT {
            bail!(
                "the edge still had {up} relays up {} s after its players left",
                RELAYS_STOP_WAIT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The load generator in `--first-frames` mode: one player per target in
/// turn, on the client's CPU.
async fn run_first_frames(
    env: &Env,
    proto: Proto,
    addr: std::net::SocketAddr,
    targets: &[String],
) -> Result<Vec<super::FirstFrame>> {
    let mut cmd = env.command(env.pinning.client, &env.helper);
    cmd.args(["bench-media", "--load"])
        .args(["--addr", &addr.to_string()])
        .args(["--first-frames", &targets.join(",")]);
    match proto {
        Proto::Rtmp => {
            cmd.args(["--proto", "rtmp"])
                .args(["--app", APP])
                .args(["--tc-url", &format!("rtmp://{addr}/{APP}")]);
        }
        Proto::Flv => {
            cmd.args(["--proto", "flv"]);
        }
        Proto::Webrtc => {
            cmd.args(["--proto", "webrtc"]);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().context("cannot start the load generator")?;
    let stdout = child.stdout.take().context("stdout is not piped")?;
    let mut lines = BufReader::new(stdout).lines();
    let limit = Duration::from_secs(10 * targets.len() as u64 + 30);
    let report = tokio::time::timeout(limit, async {
        let mut report = None;
        while let Some(line) = lines.next_line().await? {
            if line.starts_with('{') {
                report = Some(
                    serde_json::from_str::<FirstFrames>(&line)
                        .context("unreadable first-frames report")?,
                );
            } else {
                println!("  load: {line}");
            }
        }
        anyhow::Ok(report)
    })
    .await
    .context("the first-frame players did not finish in time")??;
    let status = child.wait().await.context("cannot wait for the players")?;
    if !status.success() {
        bail!("the first-frame load generator failed ({status})");
    }
    Ok(report
        .context("the load generator ended without a report")?
        .first_frames)
}

/// A value of livestack's `GET /metrics` on `api`.
async fn metric(api: std::net::SocketAddr, name: &str) -> Result<f64> {
    let body = tokio::time::timeout(Duration::from_secs(10), async {
        let mut s = TcpStream::connect(api).await?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            .await?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await?;
        std::io::Result::Ok(out)
    })
    .await
    .context("no /metrics answer in 10 s")??;
    let body = String::from_utf8_lossy(&body);
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .with_context(|| format!("no {name} in {api}'s metrics"))
}

/// The on-demand first frames: milliseconds of those that came, sorted,
/// and how many did not.
fn on_demand_ms(frames: &[super::FirstFrame]) -> (Vec<f64>, usize) {
    let mut ms: Vec<f64> = frames.iter().filter_map(|f| f.ms).collect();
    ms.sort_by(f64::total_cmp);
    let failed = frames.len() - ms.len();
    (ms, failed)
}

fn print_edge_extras(
    r: &RunResult,
    relays_started: Option<f64>,
    frames: &[super::FirstFrame],
    on_demand_relays: Option<f64>,
) {
    println!(
        "    origin CPU {}% of one core; connections to the origin's playback port \
         at the window's start / end: {}; relays the edge started: {}",
        r.pct(r.origin_cpu),
        r.relay_conns
            .map_or("?".to_owned(), |(a, b)| format!("{a} / {b}")),
        relays_started.map_or("?".to_owned(), |n| format!("{n:.0}")),
    );
    let (ms, failed) = on_demand_ms(frames);
    println!(
        "    on-demand first frame ({} players, {} relays started): p50 {:.1} ms / p99 \
         {:.1} ms / max {:.1} ms, failed {failed}",
        frames.len(),
        on_demand_relays.map_or("?".to_owned(), |n| format!("{n:.0}")),
        quantile(&ms, 0.5),
        quantile(&ms, 0.99),
        ms.last().copied().unwrap_or(f64::NAN),
    );
    for f in frames.iter().filter(|f| f.error.is_some()) {
        println!(
            "    {}: {}",
            f.target,
            f.error.as_deref().unwrap_or_default()
        );
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

fn print_summary(pairs: &[Pair]) {
    println!();
    println!("summary (µs of server CPU per player-second; first frames in ms, p99 / max)");
    println!(
        "| Proto | N | single µs/player-s | edge µs/player-s | edge ÷ single | origin CPU % \
         | relay conns start / end | relays started | full bitrate single / edge \
         | disc. single / edge | first frame, relay up p99 / max \
         | on demand p50 / p99 / max (players, relays started) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|---:|---|---|---|---|");
    for p in pairs {
        let (s, e) = (p.single.derive(), p.edge.derive());
        let (od, failed) = on_demand_ms(&p.on_demand);
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.2} | {} | {} | {} | {}/{} / {}/{} | {} / {} \
             | {:.1} / {:.1} | {:.1} / {:.1} / {:.1} ({}, {}{}) |",
            p.edge.proto.name(),
            p.edge.players,
            p.single.us_per_player_sec(),
            p.edge.us_per_player_sec(),
            p.edge.us_per_player_sec() / p.single.us_per_player_sec(),
            p.edge.pct(p.edge.origin_cpu),
            p.edge
                .relay_conns
                .map_or("?".to_owned(), |(a, b)| format!("{a} / {b}")),
            p.relays_started
                .map_or("?".to_owned(), |n| format!("{n:.0}")),
            s.full,
            p.single.players,
            e.full,
            p.edge.players,
            s.disconnects,
            e.disconnects,
            e.ff_p99,
            e.ff_max,
            quantile(&od, 0.5),
            quantile(&od, 0.99),
            od.last().copied().unwrap_or(f64::NAN),
            p.on_demand.len(),
            p.on_demand_relays
                .map_or("?".to_owned(), |n| format!("{n:.0}")),
            if failed > 0 {
                format!(", {failed} failed")
            } else {
                String::new()
            },
        );
    }
    println!();
    for p in pairs {
        let e = p.edge.derive();
        let (od, failed) = on_demand_ms(&p.on_demand);
        let ratio = p.edge.us_per_player_sec() / p.single.us_per_player_sec();
        let one_relay = p.edge.relay_conns == Some((1, 1)) && p.relays_started == Some(1.0);
        let disturbed = !p.single.quiet_before
            || !p.edge.quiet_before
            || [&p.single, &p.edge]
                .iter()
                .any(|r| r.others_pct().is_some_and(|o| o > 10.0));
        println!(
            "{} N={}: CPU edge ÷ single {ratio:.2} (≤ {TARGET_CPU_RATIO}) {}; one relay \
             connection {}; first frame with the relay up p99 {:.1} ms (< \
             {TARGET_FIRST_FRAME_UP_MS}) {}; on demand p99 {:.1} ms (< \
             {TARGET_FIRST_FRAME_ON_DEMAND_MS}) {}; full bitrate on the edge {}{}",
            p.edge.proto.name(),
            p.edge.players,
            verdict(ratio <= TARGET_CPU_RATIO),
            verdict(one_relay),
            e.ff_p99,
            verdict(e.ff_p99 < TARGET_FIRST_FRAME_UP_MS && e.no_frame == 0),
            quantile(&od, 0.99),
            verdict(
                failed == 0
                    && p.on_demand_relays == Some(p.on_demand.len() as f64)
                    && quantile(&od, 0.99) < TARGET_FIRST_FRAME_ON_DEMAND_MS
            ),
            verdict(e.full == p.edge.players && e.disconnects == 0),
            if disturbed {
                " (INCONCLUSIVE: the machine was busy)"
            } else {
                ""
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_need_a_postgres_url_and_take_lists() {
        assert!(parse_options(&[]).is_err());
        assert!(parse_options(&["--database-url", "sqlite:x"]).is_err());
        let o = parse_options(&["--database-url", "postgres://u@127.0.0.1:5/p"]).expect("ok");
        assert_eq!(o.players, vec![1000, 2000]);
        assert_eq!((o.on_demand, o.rounds, o.build), (10, 3, true));
        let o = parse_options(&[
            "--database-url=postgres://u@127.0.0.1:5/p",
            "--players",
            "10",
            "--proto",
            "flv",
            "--on-demand",
            "4",
            "--no-build",
        ])
        .expect("ok");
        assert_eq!((o.players, o.protos), (vec![10], vec![Proto::Flv]));
        assert_eq!((o.on_demand, o.build), (4, false));
        assert!(parse_options(&["--database-url", "postgres://x/y", "--bogus", "1"]).is_err());
    }
}
