//! `cargo xtask bench-record`: what recording N live streams costs when
//! livestack writes the files itself against the same recordings made by
//! an ffmpeg process each (`[media] record_in_process = false`), measured
//! in one run.
//!
//! Modes, in alternating rounds, each on a fresh `livestack serve` (the
//! `bench-media` setup) with N copies of the same ~880 kbps source pushed
//! by `ffmpeg -re -c copy`, one process each:
//! - **none**: no record rule: what ingesting the N streams costs;
//! - **inprocess**: a record template (the formats given, files cut every
//!   `--interval` s) and a rule for every stream, recorded in-process;
//! - **ffmpeg**: the same rule, recorded by ffmpeg processes.
//!
//! The server and its children run on one CPU, the publishers on the
//! other. Counted over the window: livestack's own CPU (`utime + stime`),
//! that of its running children, and that of children that ended inside
//! it (`cutime + cstime`: an MP4's faststart rewrite by ffmpeg, say); RSS
//! is livestack's plus its children's at the window's end. A recording's
//! cost is its mode minus **none** of the same round. "written" is what the
//! recordings put on disk during the window (working files and delivered
//! ones), to show that both modes recorded the same. This is a benchmark:
//! it prints, it asserts nothing.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use tokio::process::Child;

use crate::bench::{binaries, until_interrupted};
use crate::bench_media::{
    api_call, children_of, cpu_seconds, cpu_seconds_with_reaped, launch_livestack, machine,
    start_publisher, status_number, wait_for_quiet, Env, Launch, RunningServer, APP, PUSH_DOMAIN,
};

const USAGE: &str = "usage: cargo xtask bench-record [--streams N] [--formats flv,mp4,hls,aac] \
[--interval SECS] [--rounds N] [--warmup SECS] [--window SECS] [--modes none,inprocess,ffmpeg] \
[--quiet-wait SECS] [--livestack PATH] [--no-build]";

/// The issue's targets: in-process recording at most these multiples of
/// the ffmpeg jobs' CPU and memory (each over the no-recording baseline).
const TARGET_CPU: f64 = 0.2;
const TARGET_RSS: f64 = 0.1;
/// How long the streams may take to come online.
const ONLINE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Mode {
    None,
    InProcess,
    Ffmpeg,
}

impl Mode {
    fn parse(s: &str) -> Result<Mode> {
        Ok(match s.trim() {
            "none" => Mode::None,
            "inprocess" => Mode::InProcess,
            "ffmpeg" => Mode::Ffmpeg,
            other => bail!("unknown mode {other:?} (none, inprocess, ffmpeg)"),
        })
    }

    fn name(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::InProcess => "inprocess",
            Mode::Ffmpeg => "ffmpeg",
        }
    }
}

#[derive(Debug)]
struct Options {
    streams: usize,
    formats: Vec<String>,
    interval: u64,
    rounds: u32,
    warmup: u64,
    window: u64,
    modes: Vec<Mode>,
    quiet_wait: u64,
    livestack: Option<PathBuf>,
    build: bool,
}

fn parse_options(args: &[&str]) -> Result<Options> {
    let mut opts = Options {
        streams: 50,
        formats: vec!["flv".into(), "mp4".into()],
        interval: 30,
        rounds: 2,
        warmup: 15,
        window: 60,
        modes: vec![Mode::None, Mode::InProcess, Mode::Ffmpeg],
        quiet_wait: 120,
        livestack: None,
        build: true,
    };
    let parsed = crate::cli::parse(args, USAGE)?;
    opts.build = parsed.build;
    for crate::cli::Opt { arg, name, value } in parsed.options {
        let positive = |v: &str| crate::cli::positive(name, v);
        match name {
            "--streams" => opts.streams = usize::try_from(positive(value)?.min(500))?,
            "--formats" => {
                opts.formats = value.split(',').map(|f| f.trim().to_owned()).collect();
                for f in &opts.formats {
                    if !["flv", "mp4", "hls", "aac"].contains(&f.as_str()) {
                        bail!("--formats: {f:?} is not one of flv, mp4, hls, aac");
                    }
                }
            }
            "--interval" => opts.interval = positive(value)?.clamp(5, 3600),
            "--rounds" => opts.rounds = u32::try_from(positive(value)?.min(20))?,
            "--warmup" => opts.warmup = positive(value)?.clamp(3, 600),
            "--window" => opts.window = positive(value)?.min(1800),
            "--modes" => {
                opts.modes = crate::cli::list(value, Mode::parse)?;
                opts.modes.sort();
                opts.modes.dedup();
            }
            "--quiet-wait" => opts.quiet_wait = value.trim().parse::<u64>()?.min(3600),
            "--livestack" => opts.livestack = Some(PathBuf::from(value)),
            _ => bail!("unknown option {arg:?}\n{USAGE}"),
        }
    }
    Ok(opts)
}

/// `cargo xtask bench-record …`.
pub(crate) fn main(root: &Path, args: &[&str]) -> Result<ExitCode> {
    let opts = parse_options(args)?;
    let (target_dir, livestack) = binaries(root, opts.build, opts.livestack.as_deref())?;
    let env = Env::prepare(&target_dir, livestack)?;
    until_interrupted(run(&opts, &env), "processes")?;
    Ok(ExitCode::SUCCESS)
}

/// Bytes in the files under `dir`.
fn bytes_under(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => bytes_under(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

struct Sample {
    at: Instant,
    own: f64,
    reaped: f64,
    children: Vec<(u32, f64)>,
    written: u64,
}

fn sample(env: &Env, server: &RunningServer) -> Result<Sample> {
    let (own, reaped) = cpu_seconds_with_reaped(server.pid, env.clock_ticks)?;
    let children = children_of(server.pid)
        .into_iter()
        .filter_map(|pid| cpu_seconds(pid, env.clock_ticks).ok().map(|c| (pid, c)))
        .collect();
    let data = server._dir.path();
    Ok(Sample {
        at: Instant::now(),
        own,
        reaped,
        children,
        written: bytes_under(&data.join("processing")) + bytes_under(&data.join("records")),
    })
}

#[derive(Debug, Clone)]
struct RoundResult {
    round: u32,
    mode: Mode,
    wall: f64,
    /// livestack's own CPU seconds.
    own: f64,
    /// Its children's (running and ended).
    children: f64,
    /// RSS in KiB: livestack's, and its children's summed.
    rss_own: u64,
    rss_children: u64,
    child_count: usize,
    written: u64,
    notes: Vec<String>,
}

impl RoundResult {
    fn cpu(&self) -> f64 {
        (self.own + self.children) / self.wall * 100.0
    }

    fn rss_mb(&self) -> f64 {
        (self.rss_own + self.rss_children) as f64 / 1024.0
    }
}

fn result(round: u32, mode: Mode, server: &RunningServer, a: Sample, b: Sample) -> RoundResult {
    let mut notes = Vec::new();
    let mut children = b.reaped - a.reaped;
    for &(pid, cpu) in &b.children {
        match a.children.iter().find(|(p, _)| *p == pid) {
            Some((_, before)) => children += cpu - before,
            None => children += cpu,
        }
    }
    let gone = a
        .children
        .iter()
        .filter(|(p, _)| !b.children.iter().any(|(q, _)| q == p))
        .count();
    if gone > 0 {
        notes.push(format!(
            "{gone} children ended during the window (counted when reaped)"
        ));
    }
    let rss_children = b
        .children
        .iter()
        .filter_map(|(pid, _)| status_number(*pid, "VmRSS"))
        .sum();
    RoundResult {
        round,
        mode,
        wall: b.at.duration_since(a.at).as_secs_f64(),
        own: b.own - a.own,
        children,
        rss_own: status_number(server.pid, "VmRSS").unwrap_or(0),
        rss_children,
        child_count: b.children.len(),
        written: b.written.saturating_sub(a.written),
        notes,
    }
}

/// Creates the record template and rule (every stream of the push domain).
async fn record_everything(server: &RunningServer, opts: &Options) -> Result<()> {
    let api = server.api.context("no API address")?;
    let mut template = serde_json::json!({"TemplateName": "bench"});
    for f in &opts.formats {
        let key = match f.as_str() {
            "flv" => "FlvParam",
            "mp4" => "Mp4Param",
            "hls" => "HlsParam",
            _ => "AacParam",
        };
        template[key] = serde_json::json!({"Enable": 1, "RecordInterval": 1800});
    }
    crate::bench_media::template_for_every_stream(
        api,
        "CreateLiveRecordTemplate",
        &template.to_string(),
        "CreateLiveRecordRule",
        PUSH_DOMAIN,
    )
    .await?;
    Ok(())
}

/// Waits until livestack lists `n` streams online.
async fn online(server: &RunningServer, n: usize) -> Result<()> {
    let api = server.api.context("no API address")?;
    let began = Instant::now();
    loop {
        let list = api_call(api, "DescribeLiveStreamOnlineList", r#"{"PageSize":100}"#).await?;
        let total = serde_json::from_str::<serde_json::Value>(&list)
            .ok()
            .and_then(|v| v["Response"]["TotalNum"].as_u64())
            .unwrap_or(0);
        if total as usize >= n {
            return Ok(());
        }
        if began.elapsed() > ONLINE_TIMEOUT {
            bail!("{total} of {n} streams online after {ONLINE_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn run_round(round: u32, mode: Mode, opts: &Options, env: &Env) -> Result<RoundResult> {
    let media = match mode {
        Mode::Ffmpeg => format!(
            "record_in_process = false\nmax_record_interval_secs = {}\n",
            opts.interval
        ),
        _ => format!(
            "record_in_process = true\nmax_record_interval_secs = {}\n",
            opts.interval
        ),
    };
    let server = launch_livestack(
        env,
        Launch {
            cpu: env.pinning.server,
            media_config: &media,
            ..Launch::default()
        },
    )
    .await?;
    crate::bench_media::add_bench_domains(server.api.context("no API address")?).await?;
    if mode != Mode::None {
        record_everything(&server, opts).await?;
    }
    let mut publishers: Vec<Child> = Vec::with_capacity(opts.streams);
    for i in 0..opts.streams {
        let url = format!("rtmp://{}/{APP}/rec{i}?domain={PUSH_DOMAIN}", server.rtmp);
        let log = server._dir.path().join(format!("publisher-{i}.log"));
        publishers.push(start_publisher(env, &url, &log)?);
    }
    let outcome = async {
        online(&server, opts.streams).await?;
        tokio::time::sleep(Duration::from_secs(opts.warmup)).await;
        let a = sample(env, &server)?;
        tokio::time::sleep(Duration::from_secs(opts.window)).await;
        let b = sample(env, &server)?;
        Ok::<_, anyhow::Error>(result(round, mode, &server, a, b))
    }
    .await;
    let mut died = 0;
    for p in &mut publishers {
        if !matches!(p.try_wait(), Ok(None)) {
            died += 1;
        }
        let _ = p.kill().await;
    }
    server.stop().await;
    let mut r = outcome?;
    if died > 0 {
        r.notes.push(format!("{died} publishers died"));
    }
    Ok(r)
}

async fn run(opts: &Options, env: &Env) -> Result<()> {
    let s = &env.source;
    println!();
    println!("bench-record: N live streams recorded in-process against by an ffmpeg process each");
    println!("  machine:   {}", machine());
    println!("  pinning:   {}", env.pinning.note);
    println!(
        "  source:    {} ({:.0} kbps payload), {} copies pushed with -re -c copy",
        s.path.display(),
        s.payload_kbps,
        opts.streams
    );
    println!(
        "  recording: {} of every stream, files cut every {} s",
        opts.formats.join(", "),
        opts.interval
    );
    println!(
        "  rounds:    {} × {:?}, {} s warm-up, {} s window",
        opts.rounds, opts.modes, opts.warmup, opts.window
    );
    println!("  livestack: {}", env.livestack.display());
    let mut results = Vec::new();
    for round in 1..=opts.rounds {
        for &mode in &opts.modes {
            println!();
            println!("round {round}: {}", mode.name());
            let quiet = wait_for_quiet(env, Duration::from_secs(opts.quiet_wait)).await;
            let mut r = run_round(round, mode, opts, env)
                .await
                .with_context(|| format!("round {round} {}", mode.name()))?;
            if !quiet {
                r.notes.push("started on a busy machine".to_owned());
            }
            println!(
                "  CPU {:.1}% of one core (livestack {:.1}%, {} children {:.1}%); RSS {:.0} MB \
                 (livestack {:.0}, children {:.0}); written {:.1} MB",
                r.cpu(),
                r.own / r.wall * 100.0,
                r.child_count,
                r.children / r.wall * 100.0,
                r.rss_mb(),
                r.rss_own as f64 / 1024.0,
                r.rss_children as f64 / 1024.0,
                r.written as f64 / 1e6,
            );
            for n in &r.notes {
                println!("  NOTE: {n}");
            }
            results.push(r);
        }
    }
    print_summary(opts, &results);
    Ok(())
}

fn print_summary(opts: &Options, results: &[RoundResult]) {
    println!();
    println!("markdown:");
    println!();
    println!(
        "| Round | Mode | CPU % of one core | livestack % | children % (count) | RSS MB | \
         livestack MB | children MB | written MB |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        println!(
            "| {} | {} | **{:.1}** | {:.1} | {:.1} ({}) | **{:.0}** | {:.0} | {:.0} | {:.1} |",
            r.round,
            r.mode.name(),
            r.cpu(),
            r.own / r.wall * 100.0,
            r.children / r.wall * 100.0,
            r.child_count,
            r.rss_mb(),
            r.rss_own as f64 / 1024.0,
            r.rss_children as f64 / 1024.0,
            r.written as f64 / 1e6,
        );
    }
    // The recordings' own cost: each mode minus `none` of its round.
    let cost = |mode: Mode| -> Vec<(f64, f64)> {
        results
            .iter()
            .filter(|r| r.mode == mode)
            .filter_map(|r| {
                let base = results
                    .iter()
                    .find(|b| b.mode == Mode::None && b.round == r.round)?;
                Some((r.cpu() - base.cpu(), r.rss_mb() - base.rss_mb()))
            })
            .collect()
    };
    let mean = |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| {
        v.iter().map(f).sum::<f64>() / v.len().max(1) as f64
    };
    let (inproc, ffmpeg) = (cost(Mode::InProcess), cost(Mode::Ffmpeg));
    println!();
    if inproc.is_empty() || ffmpeg.is_empty() {
        println!("(run the modes none, inprocess and ffmpeg for the ratios)");
        return;
    }
    let (ic, im) = (mean(&inproc, |c| c.0), mean(&inproc, |c| c.1));
    let (fc, fm) = (mean(&ffmpeg, |c| c.0), mean(&ffmpeg, |c| c.1));
    let n = opts.streams as f64;
    println!(
        "recording {} streams ({}), over the no-recording baseline: in-process {ic:.1}% CPU, \
         {im:.0} MB; ffmpeg {fc:.1}% CPU, {fm:.0} MB",
        opts.streams,
        opts.formats.join("+"),
    );
    println!(
        "  per stream: in-process {:.2}% CPU, {:.2} MB; ffmpeg {:.2}% CPU, {:.2} MB",
        ic / n,
        im / n,
        fc / n,
        fm / n
    );
    let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
    println!(
        "  CPU ratio {:.3} (target ≤ {TARGET_CPU}: {}); memory ratio {:.3} (target ≤ {TARGET_RSS}: {})",
        ic / fc,
        verdict(ic / fc <= TARGET_CPU),
        im / fm,
        verdict(im / fm <= TARGET_RSS)
    );
}
