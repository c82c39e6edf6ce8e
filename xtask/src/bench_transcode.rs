//! `cargo xtask bench-transcode`: what livestack adds to the CPU cost of a
//! transcode, against the same transcode run as a bare ffmpeg command on
//! the same input, measured in one run.
//!
//! Modes, in alternating rounds (A, B, [C], A, B, [C], …), each on a fresh
//! `livestack serve` (the same setup as `bench-media`: two domains, push
//! authentication off) with the same ~880 kbps source pushed by
//! `ffmpeg -re -c copy` from the pre-encoded file:
//! - **A, livestack**: a transcode template and a rule on the play domain,
//!   created through the signed API; one HTTP-FLV player asks for
//!   `bench_<template>.flv`, which makes livestack start its ffmpeg job
//!   (reading the source from livestack's RTMP port, publishing the output
//!   back to it). Counted: livestack and its ffmpeg child(ren).
//! - **B, bare**: no rule; this program runs ffmpeg itself with the job's
//!   exact argument list, read from `/proc/PID/cmdline` of A's child, with
//!   only the two internal URLs replaced: the input becomes an ordinary
//!   RTMP play of the source on the play domain, the output an ordinary
//!   push of `bench_<template>` on the push domain, which the same kind of
//!   player reads over HTTP-FLV. Livestack therefore relays the same
//!   streams in A and B, and A − B is what livestack's processing adds
//!   (job supervision, the reconciler, on-demand start, internal pushes).
//!   Counted: livestack and the bare ffmpeg.
//! - **C, null** (`--modes …,null`, for reference): as B, but the bare
//!   ffmpeg writes the FLV to its standard output, `/dev/null`, and nobody
//!   plays: livestack only
//!   serves the source. A − C adds the relay of the output to the player.
//!
//! The server and every transcoder run on one CPU (`taskset -c`, inherited
//! by livestack's children), the publisher and the player on the other; the
//! player is `bench-media`'s load generator with one player, which marks
//! the measured window and counts what it receives, so a transcoder that
//! falls behind real time shows. CPU is `utime + stime` from
//! `/proc/PID/stat` at the window's edges. Before each round the tool
//! waits for a quiet machine; "others" is the busy time of the server's CPU
//! that was not ours. This is a benchmark: it prints, it asserts nothing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use tokio::process::{Child, ChildStdin};

mod ladder;

use crate::bench::{binaries, until_interrupted};
use crate::bench_media::{
    api_call, children_of, cpu_busy_seconds, cpu_seconds, machine, run_load_generator,
    start_livestack, start_publisher, status_number, wait_for_quiet, Env, LoadReport, PlayTarget,
    RunningServer, APP, PLAY_DOMAIN, PUSH_DOMAIN, STREAM,
};

const USAGE: &str = "usage: cargo xtask bench-transcode [--rounds N] [--warmup SECS] \
[--window SECS] [--size WxH] [--kbps KBPS] [--modes livestack,bare[,null]] \
[--quiet-wait SECS] [--livestack PATH] [--no-build]";

/// The target: livestack's CPU at most this multiple of the bare
/// transcode's.
const TARGET_RATIO: f64 = 1.05;
/// The transcode template's name (letters and digits): players ask for
/// `bench_sd`.
const TEMPLATE: &str = "sd";
/// A round is disturbed when others used more than this share of the
/// server's CPU during its window.
const DISTURBED: f64 = 0.10;
/// A transcoder keeps up when the player gets at least this share of the
/// template's frame rate.
const REAL_TIME: f64 = 0.95;
/// How long the source may take to come online.
const SOURCE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Mode {
    /// A: livestack runs the transcode.
    Livestack,
    /// B: a bare ffmpeg with the job's arguments, output pushed to livestack.
    Bare,
    /// C: a bare ffmpeg writing to /dev/null.
    Null,
    /// `--ladder`: one ffmpeg for every rung (`shared_decode = true`).
    Shared,
    /// `--ladder`: an ffmpeg per rung (`shared_decode = false`).
    Separate,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Livestack => "A livestack",
            Mode::Bare => "B bare",
            Mode::Null => "C bare→null",
            Mode::Shared => "L one ffmpeg",
            Mode::Separate => "S ffmpeg per rung",
        }
    }

    fn parse(s: &str) -> Result<Mode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "livestack" | "a" => Ok(Mode::Livestack),
            "bare" | "b" => Ok(Mode::Bare),
            "null" | "c" => Ok(Mode::Null),
            other => bail!("unknown mode {other:?} (livestack, bare, null)"),
        }
    }
}

#[derive(Debug)]
struct Options {
    run: Rounds,
    width: u32,
    height: u32,
    kbps: u32,
    modes: Vec<Mode>,
}

/// The options both transcoding benchmarks (this one and `--ladder`)
/// take: how many alternating rounds, how each is timed, and which
/// livestack runs.
#[derive(Debug)]
struct Rounds {
    rounds: u32,
    warmup: u64,
    window: u64,
    quiet_wait: u64,
    livestack: Option<PathBuf>,
    build: bool,
}

impl Rounds {
    fn new(build: bool) -> Rounds {
        Rounds {
            rounds: 3,
            warmup: 10,
            window: 20,
            quiet_wait: 300,
            livestack: None,
            build,
        }
    }

    /// Reads `name` if it is one of the shared options: `Ok(false)` when
    /// it is not, for the command's own options.
    fn take(&mut self, name: &str, value: &str) -> Result<bool> {
        let positive = |v: &str| crate::cli::positive(name, v);
        match name {
            "--rounds" => self.rounds = u32::try_from(positive(value)?.min(20))?,
            // The load generator ramps its player in over 2 s.
            "--warmup" => self.warmup = positive(value)?.clamp(3, 600),
            "--window" => self.window = positive(value)?.min(600),
            // 0 is allowed: do not wait for a quiet machine.
            "--quiet-wait" => self.quiet_wait = crate::cli::number_up_to(name, value, 3600)?,
            "--livestack" => self.livestack = Some(PathBuf::from(value)),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// `WxH` for option `name`: even sizes up to 4096, as x264 and the
/// template checks want them.
fn even_size(name: &str, value: &str) -> Result<(u32, u32)> {
    let (w, h) = value
        .trim()
        .split_once(['x', 'X'])
        .with_context(|| format!("{name}: {value:?} is not WxH"))?;
    let even = |v: &str| -> Result<u32> {
        let n = u32::try_from(crate::cli::positive(name, v)?)?;
        if n % 2 != 0 || n > 4096 {
            bail!("{name}: {n} is not an even size up to 4096");
        }
        Ok(n)
    };
    Ok((even(w)?, even(h)?))
}

/// The template's frame rate (the source's), GOP and audio rate.
const FPS: u32 = 25;
const GOP_SECS: u32 = 2;
const AUDIO_KBPS: u32 = 64;

fn parse_options(args: &[&str]) -> Result<Options> {
    let parsed = crate::cli::parse(args, USAGE)?;
    let mut opts = Options {
        run: Rounds::new(parsed.build),
        width: 640,
        height: 360,
        kbps: 800,
        modes: vec![Mode::Livestack, Mode::Bare],
    };
    for crate::cli::Opt { arg, name, value } in parsed.options {
        if opts.run.take(name, value)? {
            continue;
        }
        match name {
            "--size" => (opts.width, opts.height) = even_size(name, value)?,
            "--kbps" => {
                opts.kbps = u32::try_from(crate::cli::positive(name, value)?.min(50_000))?;
            }
            "--modes" => {
                opts.modes = crate::cli::list(value, Mode::parse)?;
                opts.modes.sort();
                opts.modes.dedup();
            }
            _ => bail!("unknown option {arg:?}\n{USAGE}"),
        }
    }
    // The bare modes run the arguments livestack's job ran: A comes first
    // in every round.
    if opts.modes.first() != Some(&Mode::Livestack) || opts.modes.len() < 2 {
        bail!("--modes must include livestack and at least one of bare, null\n{USAGE}");
    }
    Ok(opts)
}

impl Options {
    /// The `CreateLiveTranscodeTemplate` parameters.
    fn template_json(&self) -> String {
        serde_json::json!({
            "TemplateName": TEMPLATE,
            "Vcodec": "h264",
            "Acodec": "aac",
            "VideoBitrate": self.kbps,
            "Width": self.width,
            "Height": self.height,
            "Fps": FPS,
            "Gop": GOP_SECS,
            "AudioBitrate": AUDIO_KBPS,
        })
        .to_string()
    }
}

/// `cargo xtask bench-transcode …`.
pub(crate) fn main(root: &Path, args: &[&str]) -> Result<ExitCode> {
    if args.contains(&"--ladder") {
        return ladder::main(root, args);
    }
    let opts = parse_options(args)?;
    let (target_dir, livestack) = binaries(root, opts.run.build, opts.run.livestack.as_deref())?;
    let env = Env::prepare(&target_dir, livestack)?;
    until_interrupted(run(&opts, &env), "processes")?;
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------
// The job's arguments.

/// Which of the internal URLs an argument is.
fn is_internal_url(arg: &str) -> bool {
    arg.starts_with("rtmp://") && arg.contains("livestack_internal=")
}

/// `app/stream` of an RTMP URL (without its query).
fn url_path(url: &str) -> Result<&str> {
    let rest = url
        .strip_prefix("rtmp://")
        .with_context(|| format!("{url:?} is not an RTMP URL"))?;
    let (_, path) = rest
        .split_once('/')
        .with_context(|| format!("{url:?} has no path"))?;
    Ok(path.split('?').next().unwrap_or(path))
}

/// Where the bare ffmpeg writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BareOutput {
    /// An ordinary push to livestack at this address.
    Push(SocketAddr),
    /// Standard output (`pipe:1`), which is `/dev/null`. Not the file
    /// `/dev/null`: ffmpeg would ask whether to overwrite it, on the stdin
    /// it shares with livestack's jobs, and wait for ever.
    Null,
}

/// The job's arguments (`job`, without the program) with its two internal
/// URLs replaced: the input (after `-i`) by an ordinary play of the same
/// stream on the play domain at `addr`, the output (the last argument) by
/// `output`. Everything else is kept as it is.
fn bare_args(job: &[String], addr: SocketAddr, output: BareOutput) -> Result<Vec<String>> {
    let internal: Vec<usize> = (0..job.len())
        .filter(|&i| is_internal_url(&job[i]))
        .collect();
    let [input, out] = internal.as_slice() else {
        bail!(
            "expected two internal URLs (input, output) in the job's arguments, found {}: {}",
            internal.len(),
            job.join(" ")
        );
    };
    if *input == 0 || job[input - 1] != "-i" || *out != job.len() - 1 {
        bail!(
            "the job's arguments are not `… -i INPUT … OUTPUT`: {}",
            job.join(" ")
        );
    }
    let mut args = job.to_vec();
    args[*input] = format!(
        "rtmp://{addr}/{}?domain={PLAY_DOMAIN}",
        url_path(&job[*input])?
    );
    args[*out] = match output {
        BareOutput::Push(addr) => format!(
            "rtmp://{addr}/{}?domain={PUSH_DOMAIN}",
            url_path(&job[*out])?
        ),
        BareOutput::Null => "pipe:1".to_owned(),
    };
    Ok(args)
}

/// The arguments with the internal URLs (which carry a fresh port and
/// token each run) replaced by placeholders, to compare runs.
fn normalized(job: &[String]) -> String {
    job.iter()
        .map(|a| {
            if is_internal_url(a) {
                format!("<{}>", url_path(a).unwrap_or("?"))
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A process's arguments, without the program.
fn cmdline(pid: u32) -> Result<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline"))
        .with_context(|| format!("cannot read /proc/{pid}/cmdline"))?;
    let mut args: Vec<String> = raw
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if args.last().is_some_and(String::is_empty) {
        args.pop();
    }
    if args.is_empty() {
        bail!("process {pid} has no command line (exited?)");
    }
    args.remove(0);
    Ok(args)
}

// ---------------------------------------------------------------------------
// Measuring.

/// The counters at one edge of the window.
struct Sample {
    at: Instant,
    livestack: Result<f64>,
    /// CPU seconds of each transcoding ffmpeg (livestack's children and the
    /// bare one), by pid.
    transcoders: Vec<(u32, f64)>,
    core0: Option<f64>,
    core1: Option<f64>,
    publisher: Option<f64>,
    load: Option<f64>,
}

fn sample(
    env: &Env,
    livestack: u32,
    bare: Option<u32>,
    publisher: u32,
    load: Option<u32>,
) -> Sample {
    let ticks = env.clock_ticks;
    let transcoders = children_of(livestack)
        .into_iter()
        .chain(bare)
        .filter_map(|pid| cpu_seconds(pid, ticks).ok().map(|c| (pid, c)))
        .collect();
    Sample {
        at: Instant::now(),
        livestack: cpu_seconds(livestack, ticks),
        transcoders,
        core0: env.pinning.server.and_then(|c| cpu_busy_seconds(c, ticks)),
        core1: env.pinning.client.and_then(|c| cpu_busy_seconds(c, ticks)),
        publisher: cpu_seconds(publisher, ticks).ok(),
        load: load.and_then(|pid| cpu_seconds(pid, ticks).ok()),
    }
}

/// One round of one mode.
#[derive(Debug, Clone)]
struct RoundResult {
    round: u32,
    mode: Mode,
    wall: f64,
    livestack: f64,
    transcoder: f64,
    /// Threads of the transcoder at the window's end.
    threads: Option<u64>,
    core0: Option<f64>,
    core1: Option<f64>,
    publisher: Option<f64>,
    load: Option<f64>,
    /// What the player got: video frames per second and payload kbit/s.
    delivered: Option<(f64, f64)>,
    quiet_before: bool,
    notes: Vec<String>,
}

impl RoundResult {
    fn total(&self) -> f64 {
        self.livestack + self.transcoder
    }

    fn pct(&self, cpu: f64) -> f64 {
        cpu / self.wall * 100.0
    }

    fn opt_pct(&self, cpu: Option<f64>) -> String {
        cpu.map_or("?".to_owned(), |c| format!("{:.1}", self.pct(c)))
    }

    /// Others' share of the server's CPU during the window.
    fn others(&self) -> Option<f64> {
        self.core0
            .map(|c| ((c - self.total()) / self.wall).max(0.0))
    }

    fn disturbed(&self) -> bool {
        self.others().is_some_and(|o| o > DISTURBED)
    }

    fn keeps_up(&self) -> bool {
        self.delivered
            .is_none_or(|(fps, _)| fps >= REAL_TIME * f64::from(FPS))
    }
}

/// Builds the result from the window's edges.
fn result(
    round: u32,
    mode: Mode,
    start: Sample,
    end: Sample,
    report: Option<&LoadReport>,
) -> Result<RoundResult> {
    let wall = end.at.duration_since(start.at).as_secs_f64();
    let (a, b) = match (start.livestack, end.livestack) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => bail!("livestack is gone: {e:#}"),
    };
    let mut notes = Vec::new();
    let mut transcoder = 0.0;
    for &(pid, cpu) in &end.transcoders {
        match start.transcoders.iter().find(|(p, _)| *p == pid) {
            Some((_, before)) => transcoder += cpu - before,
            None => {
                // Started inside the window: all its time is in it.
                transcoder += cpu;
                notes.push(format!("transcoder {pid} started during the window"));
            }
        }
    }
    for (pid, _) in &start.transcoders {
        if !end.transcoders.iter().any(|(p, _)| p == pid) {
            notes.push(format!(
                "transcoder {pid} exited during the window (its last CPU time is missing)"
            ));
        }
    }
    if end.transcoders.len() != 1 {
        notes.push(format!(
            "{} transcoders at the window's end",
            end.transcoders.len()
        ));
    }
    let delta = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| b - a);
    let delivered = match report {
        Some(r) => {
            let p = r
                .players
                .first()
                .context("the load generator reported no player")?;
            if let Some(e) = &p.error {
                notes.push(format!("player: {e}"));
            }
            Some((
                f64::from(p.video) / r.window_secs,
                p.payload as f64 * 8.0 / r.window_secs / 1000.0,
            ))
        }
        None => None,
    };
    Ok(RoundResult {
        round,
        mode,
        wall,
        livestack: b - a,
        transcoder,
        threads: end
            .transcoders
            .first()
            .and_then(|(pid, _)| status_number(*pid, "Threads")),
        core0: delta(start.core0, end.core0),
        core1: delta(start.core1, end.core1),
        publisher: delta(start.publisher, end.publisher),
        load: delta(start.load, end.load),
        delivered,
        quiet_before: true,
        notes,
    })
}

fn push_url(server: &RunningServer, stream: &str) -> String {
    format!("rtmp://{}/{APP}/{stream}?domain={PUSH_DOMAIN}", server.rtmp)
}

fn output_name() -> String {
    format!("{STREAM}_{TEMPLATE}")
}

fn player(server: &RunningServer) -> Result<PlayTarget> {
    Ok(PlayTarget::Flv {
        addr: server.http.context("livestack has no HTTP listener")?,
        path: format!("/{APP}/{}.flv?domain={PLAY_DOMAIN}", output_name()),
    })
}

/// Round A: livestack transcodes. Returns the result and the job's
/// arguments.
async fn run_livestack(
    round: u32,
    opts: &Options,
    env: &Env,
) -> Result<(RoundResult, Vec<String>)> {
    let server = start_livestack(env).await?;
    let api = server.api.context("no API address")?;
    crate::bench_media::template_for_every_stream(
        api,
        "CreateLiveTranscodeTemplate",
        &opts.template_json(),
        "CreateLiveTranscodeRule",
        PLAY_DOMAIN,
    )
    .await?;
    let log = server._dir.path().join("publisher.log");
    let mut publisher = start_publisher(env, &push_url(&server, STREAM), &log)?;
    let publisher_pid = publisher.id().context("the publisher exited at once")?;
    let pid = server.pid;
    let mut job = None;
    let outcome = run_load_generator(
        env,
        &player(&server)?,
        1,
        opts.run.warmup,
        opts.run.window,
        |load| {
            let s = sample(env, pid, None, publisher_pid, Some(load));
            // The job's command line, read while it runs.
            if let Some((child, _)) = s.transcoders.first() {
                job = cmdline(*child).ok().or(job.take());
            }
            s
        },
    )
    .await;
    let alive = publisher.try_wait()?.is_none();
    let (start, end, report) = outcome?;
    let mut r = result(round, Mode::Livestack, start, end, Some(&report))?;
    let _ = publisher.kill().await;
    server.stop().await;
    if !alive {
        r.notes.push("the publisher died".to_owned());
    }
    let job = job.context("livestack ran no ffmpeg job")?;
    Ok((r, job))
}

/// Waits until livestack lists the source as online.
async fn source_online(server: &RunningServer) -> Result<()> {
    let api = server.api.context("no API address")?;
    let began = Instant::now();
    loop {
        let list = api_call(api, "DescribeLiveStreamOnlineList", "{}").await?;
        if list.contains(&format!("\"StreamName\":\"{STREAM}\"")) {
            return Ok(());
        }
        if began.elapsed() > SOURCE_TIMEOUT {
            bail!("the source did not come online in {SOURCE_TIMEOUT:?}: {list}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A bare ffmpeg, as livestack starts its jobs (stdin piped, for `q`),
/// pinned to the server's CPU.
struct Bare {
    child: Child,
    _stdin: Option<ChildStdin>,
    pid: u32,
    log: PathBuf,
}

impl Bare {
    fn start(env: &Env, args: &[String], log: PathBuf) -> Result<Bare> {
        let file = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let mut child = env
            .command(env.pinning.server, &env.ffmpeg)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .context("cannot start the bare ffmpeg")?;
        let pid = child.id().context("the bare ffmpeg exited at once")?;
        Ok(Bare {
            _stdin: child.stdin.take(),
            child,
            pid,
            log,
        })
    }

    /// Fails, with its messages, if it has exited.
    fn check(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            bail!("the bare ffmpeg exited ({status}): {}", log.trim());
        }
        Ok(())
    }
}

/// Rounds B and C: the job's arguments run as a bare ffmpeg.
async fn run_bare(
    round: u32,
    mode: Mode,
    job: &[String],
    opts: &Options,
    env: &Env,
) -> Result<RoundResult> {
    let server = start_livestack(env).await?;
    let log = server._dir.path().join("publisher.log");
    let mut publisher = start_publisher(env, &push_url(&server, STREAM), &log)?;
    let publisher_pid = publisher.id().context("the publisher exited at once")?;
    source_online(&server).await?;
    let output = match mode {
        Mode::Null => BareOutput::Null,
        _ => BareOutput::Push(server.rtmp),
    };
    let args = bare_args(job, server.rtmp, output)?;
    let mut bare = Bare::start(env, &args, server._dir.path().join("bare.log"))?;
    let pid = server.pid;
    let (start, end, report) = match mode {
        Mode::Null => {
            // Nobody plays: the same ramp and warm-up, then the window.
            tokio::time::sleep(Duration::from_secs(2 + opts.run.warmup)).await;
            bare.check()?;
            let start = sample(env, pid, Some(bare.pid), publisher_pid, None);
            tokio::time::sleep(Duration::from_secs(opts.run.window)).await;
            let end = sample(env, pid, Some(bare.pid), publisher_pid, None);
            (start, end, None)
        }
        _ => {
            let bare_pid = bare.pid;
            let (start, end, report) = run_load_generator(
                env,
                &player(&server)?,
                1,
                opts.run.warmup,
                opts.run.window,
                |load| sample(env, pid, Some(bare_pid), publisher_pid, Some(load)),
            )
            .await?;
            (start, end, Some(report))
        }
    };
    bare.check()?;
    let alive = publisher.try_wait()?.is_none();
    let mut r = result(round, mode, start, end, report.as_ref())?;
    // What it printed (livestack reads the same lines from its jobs).
    let printed = std::fs::read_to_string(&bare.log).unwrap_or_default();
    if let Some(last) = printed.lines().last() {
        r.notes.push(format!(
            "the bare ffmpeg printed {} line(s), the last: {last}",
            printed.lines().count()
        ));
    }
    let _ = bare.child.kill().await;
    let _ = publisher.kill().await;
    server.stop().await;
    if !alive {
        r.notes.push("the publisher died".to_owned());
    }
    Ok(r)
}

// ---------------------------------------------------------------------------
// The run and its report.

async fn run(opts: &Options, env: &Env) -> Result<()> {
    let s = &env.source;
    println!();
    println!("bench-transcode: livestack's transcode against the same transcode as a bare ffmpeg");
    println!("  machine:   {}", machine());
    println!("  ffmpeg:    {}", ffmpeg_version(&env.ffmpeg));
    println!("  pinning:   {}", env.pinning.note);
    println!(
        "  source:    {} ({:.0} kbps payload, {:.2} fps video, {:.2} audio tags/s), pushed with \
         -re -c copy",
        s.path.display(),
        s.payload_kbps,
        s.video_fps,
        s.audio_per_sec,
    );
    println!(
        "  template:  CreateLiveTranscodeTemplate {}",
        opts.template_json()
    );
    println!(
        "  rounds:    {} × {:?}, {} s warm-up, {} s window",
        opts.run.rounds, opts.modes, opts.run.warmup, opts.run.window
    );
    println!("  livestack: {}", env.livestack.display());
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("  loadavg:   {} (before start)", load.trim());
    }

    let mut results: Vec<RoundResult> = Vec::new();
    let mut job: Option<Vec<String>> = None;
    for round in 1..=opts.run.rounds {
        for &mode in &opts.modes {
            println!();
            println!("round {round}: {}", mode.name());
            let quiet = wait_for_quiet(env, Duration::from_secs(opts.run.quiet_wait)).await;
            let mut r = match mode {
                Mode::Livestack => {
                    let (r, args) = run_livestack(round, opts, env)
                        .await
                        .with_context(|| format!("round {round} {}", mode.name()))?;
                    match &job {
                        None => {
                            println!("  the job ran: ffmpeg {}", args.join(" "));
                            job = Some(args);
                        }
                        Some(first) if normalized(first) != normalized(&args) => {
                            println!(
                                "  WARNING: the job's arguments changed: ffmpeg {}",
                                args.join(" ")
                            );
                        }
                        Some(_) => {}
                    }
                    r
                }
                Mode::Bare | Mode::Null => {
                    let args = job.as_deref().context("no job arguments yet")?;
                    run_bare(round, mode, args, opts, env)
                        .await
                        .with_context(|| format!("round {round} {}", mode.name()))?
                }
                Mode::Shared | Mode::Separate => bail!("{} is a --ladder mode", mode.name()),
            };
            r.quiet_before = quiet;
            print_round(&r);
            results.push(r);
        }
    }
    if let Some(job) = &job {
        let example = SocketAddr::from(([127, 0, 0, 1], 1935));
        println!();
        println!(
            "the bare command (B; port as an example): ffmpeg {}",
            bare_args(job, example, BareOutput::Push(example))?.join(" ")
        );
    }
    print_summary(&results);
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("loadavg: {} (at the end)", load.trim());
    }
    Ok(())
}

fn ffmpeg_version(ffmpeg: &Path) -> String {
    std::process::Command::new(ffmpeg)
        .arg("-version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

fn print_round(r: &RoundResult) {
    println!(
        "  CPU over {:.1} s: livestack {:.1}% + transcoder {:.1}% ({} threads) = {:.1}% of one \
         core; core0 busy {}% (others {}), core1 busy {}% (publisher {}%, player {}%)",
        r.wall,
        r.pct(r.livestack),
        r.pct(r.transcoder),
        r.threads.map_or("?".to_owned(), |t| t.to_string()),
        r.pct(r.total()),
        r.opt_pct(r.core0),
        r.others()
            .map_or("?".to_owned(), |o| format!("{:.1}%", o * 100.0)),
        r.opt_pct(r.core1),
        r.opt_pct(r.publisher),
        r.opt_pct(r.load),
    );
    if let Some((fps, kbps)) = r.delivered {
        println!("  player got {fps:.2} video frames/s, {kbps:.0} kbps of payload");
    }
    if !r.keeps_up() {
        println!("  WARNING: the transcoder fell behind real time");
    }
    for note in &r.notes {
        println!("  NOTE: {note}");
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = values.collect();
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Round A against another mode over paired rounds (same round number):
/// the ratio of the mean total CPU, and where the difference lies.
#[derive(Debug)]
struct Comparison {
    ratio: f64,
    a: f64,
    b: f64,
    livestack: f64,
    transcoder: f64,
    per_round: Vec<(u32, f64)>,
}

impl Comparison {
    fn of(pairs: &[(&RoundResult, &RoundResult)]) -> Option<Comparison> {
        if pairs.is_empty() {
            return None;
        }
        let mean_of = |f: &dyn Fn(&(&RoundResult, &RoundResult)) -> f64| mean(pairs.iter().map(f));
        let (a, b) = (
            mean_of(&|(ra, _)| ra.pct(ra.total())),
            mean_of(&|(_, rb)| rb.pct(rb.total())),
        );
        Some(Comparison {
            ratio: a / b,
            a,
            b,
            livestack: mean_of(&|(ra, rb)| ra.pct(ra.livestack) - rb.pct(rb.livestack)),
            transcoder: mean_of(&|(ra, rb)| ra.pct(ra.transcoder) - rb.pct(rb.transcoder)),
            per_round: pairs
                .iter()
                .map(|(ra, rb)| (ra.round, ra.pct(ra.total()) / rb.pct(rb.total())))
                .collect(),
        })
    }

    fn print(&self, label: &str) {
        let rounds: Vec<String> = self
            .per_round
            .iter()
            .map(|(n, r)| format!("{n}: {r:.3}"))
            .collect();
        println!(
            "{label}: {:.3} (means {:.1}% / {:.1}% of one core; per round {})",
            self.ratio,
            self.a,
            self.b,
            rounds.join(", ")
        );
        println!(
            "  difference {:+.1} points of a core: livestack {:+.1}, transcoder {:+.1}",
            self.a - self.b,
            self.livestack,
            self.transcoder
        );
    }
}

/// The rounds as a markdown table.
fn print_table(results: &[RoundResult]) {
    println!();
    println!("markdown:");
    println!();
    println!(
        "| Round | Mode | livestack CPU % | transcoder CPU % | total % | core0 busy % | \
         others on core0 % | core1 busy % | player fps / kbps | quiet before |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---|---|");
    for r in results {
        println!(
            "| {} | {} | {:.1} | {:.1} | **{:.1}** | {} | {} | {} | {} | {} |",
            r.round,
            r.mode.name(),
            r.pct(r.livestack),
            r.pct(r.transcoder),
            r.pct(r.total()),
            r.opt_pct(r.core0),
            r.others()
                .map_or("?".to_owned(), |o| format!("{:.1}", o * 100.0)),
            r.opt_pct(r.core1),
            r.delivered
                .map_or("—".to_owned(), |(f, k)| format!("{f:.2} / {k:.0}")),
            if r.quiet_before { "yes" } else { "no" },
        );
    }
    println!();
}

fn print_summary(results: &[RoundResult]) {
    print_table(results);
    let of =
        |mode: Mode| -> Vec<&RoundResult> { results.iter().filter(|r| r.mode == mode).collect() };
    let a = of(Mode::Livestack);
    for other in [Mode::Bare, Mode::Null] {
        let b = of(other);
        let pairs: Vec<(&RoundResult, &RoundResult)> = a
            .iter()
            .filter_map(|ra| Some((*ra, *b.iter().find(|rb| rb.round == ra.round)?)))
            .collect();
        let Some(all) = Comparison::of(&pairs) else {
            continue;
        };
        let label = format!("{} ÷ {}", Mode::Livestack.name(), other.name());
        all.print(&label);
        let quiet: Vec<_> = pairs
            .iter()
            .copied()
            .filter(|(ra, rb)| !ra.disturbed() && !rb.disturbed())
            .collect();
        let undisturbed = Comparison::of(&quiet);
        if quiet.len() < pairs.len() {
            match &undisturbed {
                Some(c) => c.print(&format!("{label}, undisturbed rounds only")),
                None => println!("  no round pair was undisturbed"),
            }
        }
        if other != Mode::Bare {
            continue;
        }
        let disturbed: Vec<String> = pairs
            .iter()
            .flat_map(|(ra, rb)| [*ra, *rb])
            .filter(|r| r.disturbed())
            .map(|r| format!("round {} {}", r.round, r.mode.name()))
            .collect();
        let behind = pairs
            .iter()
            .any(|(ra, rb)| !ra.keeps_up() || !rb.keeps_up());
        let judge = |ratio: f64| {
            if ratio <= TARGET_RATIO {
                "PASS"
            } else {
                "FAIL"
            }
        };
        let verdict = match (&undisturbed, behind) {
            (_, true) => "INCONCLUSIVE (a transcoder fell behind real time)".to_owned(),
            (_, false) if disturbed.is_empty() => judge(all.ratio).to_owned(),
            (Some(c), false) => format!(
                "{} on the {} undisturbed round pair(s)",
                judge(c.ratio),
                quiet.len()
            ),
            (None, false) => "INCONCLUSIVE (every round pair was disturbed)".to_owned(),
        };
        println!("  target {label} ≤ {TARGET_RATIO}: {verdict}");
        if !disturbed.is_empty() {
            println!(
                "  others used more than {:.0}% of the server's CPU in: {}",
                DISTURBED * 100.0,
                disturbed.join(", ")
            );
        }
    }
    if results.iter().any(|r| !r.quiet_before) {
        println!("NOTE: some rounds started on a busy machine (quiet before: no)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Vec<String> {
        "-hide_banner -loglevel warning -nostats -rw_timeout 15000000 \
         -i rtmp://127.0.0.1:40000/live/bench?livestack_internal=abc&domain=push.bench.local \
         -map 0:v:0? -vf scale=640:360 -map 0:a:0? -c:v libx264 -preset veryfast \
         -f flv rtmp://127.0.0.1:40000/live/bench_sd?livestack_internal=abc&domain=push.bench.local"
            .split(' ')
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn the_bare_command_is_the_job_with_ordinary_urls() {
        let addr: SocketAddr = "127.0.0.1:50000".parse().expect("addr");
        let args = bare_args(&job(), addr, BareOutput::Push(addr)).expect("rewritten");
        let (old, new) = (job().join(" "), args.join(" "));
        assert_eq!(
            new,
            old.replace(
                "rtmp://127.0.0.1:40000/live/bench?livestack_internal=abc&domain=push.bench.local",
                "rtmp://127.0.0.1:50000/live/bench?domain=play.bench.local"
            )
            .replace(
                "rtmp://127.0.0.1:40000/live/bench_sd?livestack_internal=abc&domain=push.bench.local",
                "rtmp://127.0.0.1:50000/live/bench_sd?domain=push.bench.local"
            )
        );
        let null = bare_args(&job(), addr, BareOutput::Null).expect("rewritten");
        assert!(null.join(" ").ends_with("-f flv pipe:1"));
        assert_eq!(null.len(), job().len());
    }

    #[test]
    fn arguments_without_the_two_internal_urls_are_refused() {
        let addr: SocketAddr = "127.0.0.1:50000".parse().expect("addr");
        let mut j = job();
        j.pop();
        assert!(bare_args(&j, addr, BareOutput::Null).is_err());
    }

    #[test]
    fn runs_compare_without_ports_and_tokens() {
        let other: Vec<String> = job()
            .iter()
            .map(|a| a.replace("40000", "40001").replace("abc", "xyz"))
            .collect();
        assert_eq!(normalized(&job()), normalized(&other));
        assert!(normalized(&job()).contains("-i <live/bench> "));
    }

    fn round(round: u32, mode: Mode, livestack: f64, transcoder: f64) -> RoundResult {
        RoundResult {
            round,
            mode,
            wall: 10.0,
            livestack,
            transcoder,
            threads: Some(1),
            core0: Some(livestack + transcoder),
            core1: None,
            publisher: None,
            load: None,
            delivered: Some((25.0, 870.0)),
            quiet_before: true,
            notes: Vec::new(),
        }
    }

    #[test]
    fn a_comparison_divides_the_mean_totals_of_paired_rounds() {
        let a1 = round(1, Mode::Livestack, 0.2, 2.0);
        let b1 = round(1, Mode::Bare, 0.2, 1.8);
        let a2 = round(2, Mode::Livestack, 0.2, 1.8);
        let b2 = round(2, Mode::Bare, 0.2, 2.0);
        let c = Comparison::of(&[(&a1, &b1), (&a2, &b2)]).expect("pairs");
        assert!((c.ratio - 1.0).abs() < 1e-9, "{c:?}");
        assert!(
            (c.a - 21.0).abs() < 1e-9 && c.transcoder.abs() < 1e-9,
            "{c:?}"
        );
        assert!((c.per_round[0].1 - 2.2 / 2.0).abs() < 1e-9, "{c:?}");
        assert!(Comparison::of(&[]).is_none());
        let mut busy = round(3, Mode::Bare, 0.2, 2.0);
        busy.core0 = Some(4.0);
        assert!(busy.disturbed() && !a1.disturbed());
    }

    #[test]
    fn options_parse_with_defaults_and_need_livestack_first() {
        let o = parse_options(&[]).expect("defaults");
        assert_eq!((o.run.rounds, o.run.warmup, o.run.window), (3, 10, 20));
        assert_eq!((o.width, o.height, o.kbps), (640, 360, 800));
        assert_eq!(o.modes, vec![Mode::Livestack, Mode::Bare]);
        let o = parse_options(&[
            "--modes=null,livestack,bare",
            "--size",
            "854x480",
            "--no-build",
        ])
        .expect("ok");
        assert_eq!(o.modes, vec![Mode::Livestack, Mode::Bare, Mode::Null]);
        assert_eq!((o.width, o.height, o.run.build), (854, 480, false));
        assert!(parse_options(&["--modes", "bare"]).is_err());
        assert!(parse_options(&["--modes", "livestack"]).is_err());
        assert!(parse_options(&["--size", "641x360"]).is_err());
        assert!(parse_options(&["--bogus"]).is_err());
    }
}
