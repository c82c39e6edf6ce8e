//! `cargo xtask bench-media`: the media plane's fan-out cost. One ~880 kbps
//! stream is published with ffmpeg and played by N RTMP or N HTTP-FLV
//! players, against livestack and, in the same run, against Debian's
//! nginx-rtmp (`libnginx-mod-rtmp`) on the same stream.
//!
//! The method follows `shared/reference/media-plane.md` §3: the server runs
//! on CPU 0 (`taskset -c 0`), the publisher and the load generator on CPU 1.
//! The load generator starts the players over ~2 s; after the warm-up it
//! marks a measured window, and the orchestrator samples the server's CPU
//! time (`utime + stime` of every process of the server, all threads), the
//! busy time of both CPUs (`/proc/stat`) and the server's `VmRSS` at the
//! window's edges. Players count bytes, tags and keyframes (not only
//! bytes), the time from connect to the first video keyframe, the longest
//! gap between tags inside the window, and whether they were disconnected.
//!
//! Processes:
//! - the server (`livestack serve`, or `nginx -g 'daemon off;'` with a
//!   generated configuration in a temporary prefix);
//! - the publisher: `ffmpeg -re -stream_loop -1 -i SRC -c copy -f flv URL`;
//! - the load generator: this program again as `xtask bench-media --load …`
//!   (hidden), an optimised build, one tokio thread;
//! - this orchestrator, which kills everything at the end of each run, on
//!   error and on Ctrl-C/SIGTERM (children are killed on drop, started with
//!   a parent-death signal where `setpriv` exists, and the load generator
//!   exits when its stdin, held here, closes).
//!
//! Everything stays on 127.0.0.1 and every step has a time limit. This is a
//! benchmark, not a test: it prints tables and verdicts, it asserts nothing.
//!
//! `bench-transcode` reuses the pieces marked `pub(crate)`: the machine and
//! its pinning, `/proc` sampling, the source, livestack's start and its
//! signed API client, the publisher, the load generator and the quiet gate.

mod bare;
pub(crate) mod edge;
mod publish;
mod webrtc;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};

// Shared with the API benchmark: building, CPU lists, signals, the clock.
use crate::bench::{
    allowed_cpus, build, clock_ticks, exit_when_stdin_closes, unix_now, until_interrupted,
};
use livestack_api::auth::tc3;
use livestack_formats::flv::{FlvReader, TagKind, VideoInfo};
use livestack_rtmp::{ClientConfig, ClientEvent, ClientSession};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

const USAGE: &str = "usage: cargo xtask bench-media [--players 1000,2000] [--warmup SECS] \
[--window SECS] [--proto rtmp,flv,webrtc] [--servers livestack,nginx,srs,bare] [--srs PATH] \
[--merge-write-ms MS] [--load-tool ours|sb] [--sb PATH] \
[--streams N] [--churn SECS] [--ingest rtmp|srt] [--quiet-wait SECS] [--livestack PATH] [--no-build]";

/// The root key livestack is started with.
const SECRET_ID: &str = "AKIDmediabench00000000000000000000000";
const SECRET_KEY: &str = "mediabenchsecretmediabenchsecret";
const API_VERSION: &str = "2018-08-01";
pub(crate) const PUSH_DOMAIN: &str = "push.bench.local";
pub(crate) const PLAY_DOMAIN: &str = "play.bench.local";
pub(crate) const APP: &str = "live";
pub(crate) const STREAM: &str = "bench";

/// Players are started evenly over this long.
const RAMP: Duration = Duration::from_secs(2);
/// How long a server may take to come up.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the load generator waits for the stream to be playable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
/// One player's TCP connect limit.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Read buffer per player: large, so the client stays cheap.
const READ_BUF: usize = 64 * 1024;
/// A player got "the full bitrate" when it received at least this share of
/// the source's payload rate and of its tag rate over the window.
const FULL_SHARE: f64 = 0.95;
/// Before each run, both CPUs must be below this busy share (other people's
/// builds on a shared machine skew every figure) for a few seconds, or
/// `--quiet-wait` must run out.
const QUIET_BUSY: f64 = 0.15;

// The issue's targets.
const TARGET_CPU_RATIO: f64 = 0.5;
/// Issue 17: livestack's CPU per player-second at most this share of SRS's.
const TARGET_SRS_RATIO: f64 = 0.5;
/// Issue 17: livestack's CPU per player-second within this factor of the
/// bare sender's (the kernel's cost of the same writes).
const TARGET_FLOOR_RATIO: f64 = 2.0;
/// Many streams: livestack's RSS at most this share of SRS's.
const TARGET_SRS_RSS_RATIO: f64 = 0.1;
const TARGET_RSS_MB: f64 = 150.0;
/// WebRTC at most this many times RTMP's CPU per player-second (issue 14).
const TARGET_WEBRTC_RATIO: f64 = 3.0;
const TARGET_RSS_AT: usize = 2000;
const TARGET_FIRST_FRAME_MS: f64 = 100.0;

// ---------------------------------------------------------------------------
// Options.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum Proto {
    Rtmp,
    Flv,
    /// WHEP players (livestack only: nginx-rtmp has no WebRTC).
    Webrtc,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::Rtmp => "RTMP",
            Proto::Flv => "HTTP-FLV",
            Proto::Webrtc => "WebRTC",
        }
    }

    fn parse(s: &str) -> Result<Proto> {
        match s.trim().to_ascii_lowercase().as_str() {
            "rtmp" => Ok(Proto::Rtmp),
            "flv" | "http-flv" | "httpflv" => Ok(Proto::Flv),
            "webrtc" | "whep" => Ok(Proto::Webrtc),
            other => bail!("unknown protocol {other:?} (rtmp, flv, webrtc)"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ServerKind {
    Livestack,
    Nginx,
    /// SRS, a binary the user built (`--srs PATH`).
    Srs,
    /// The floor: a bare RTMP and HTTP-FLV sender (`bench_media/bare.rs`).
    Bare,
}

impl ServerKind {
    fn name(self) -> &'static str {
        match self {
            ServerKind::Livestack => "livestack",
            ServerKind::Nginx => "nginx-rtmp",
            ServerKind::Srs => "srs",
            ServerKind::Bare => "bare-sender",
        }
    }

    fn parse(s: &str) -> Result<ServerKind> {
        match s.trim().to_ascii_lowercase().as_str() {
            "livestack" => Ok(ServerKind::Livestack),
            "nginx" | "nginx-rtmp" => Ok(ServerKind::Nginx),
            "srs" => Ok(ServerKind::Srs),
            "bare" | "bare-sender" => Ok(ServerKind::Bare),
            other => bail!("unknown server {other:?} (livestack, nginx, srs, bare)"),
        }
    }
}

#[derive(Debug)]
struct Options {
    players: Vec<usize>,
    warmup: u64,
    window: u64,
    protos: Vec<Proto>,
    servers: Vec<ServerKind>,
    /// `[media] merge_write_ms` for livestack; `None` keeps the default.
    merge_write_ms: Option<u64>,
    /// How the publisher pushes to livestack: RTMP, or SRT (MPEG-TS).
    ingest_srt: bool,
    /// Longest wait for a quiet machine before each run, seconds.
    quiet_wait: u64,
    livestack: Option<PathBuf>,
    /// The SRS binary (`objs/srs` of a local build).
    srs: Option<PathBuf>,
    /// SRS's own RTMP load tool (`sb_rtmp_load` of ossrs/srs-bench master)
    /// instead of this benchmark's players.
    sb: Option<PathBuf>,
    /// Streams published (by the light publisher when more than one);
    /// the players are spread evenly over them.
    streams: usize,
    /// Players leave and come back every SECS on average (0: they stay).
    churn: u64,
    build: bool,
}

fn parse_options(args: &[&str]) -> Result<Options> {
    let mut opts = Options {
        players: vec![1000, 2000],
        warmup: 10,
        window: 20,
        protos: vec![Proto::Rtmp, Proto::Flv],
        servers: vec![ServerKind::Livestack, ServerKind::Nginx],
        merge_write_ms: None,
        ingest_srt: false,
        quiet_wait: 300,
        livestack: None,
        srs: None,
        sb: None,
        streams: 1,
        churn: 0,
        build: true,
    };
    let mut load_tool = "ours".to_owned();
    let parsed = crate::cli::parse(args, USAGE)?;
    opts.build = parsed.build;
    for crate::cli::Opt { arg, name, value } in parsed.options {
        let positive = |v: &str| crate::cli::positive(name, v);
        match name {
            "--srs" => opts.srs = Some(PathBuf::from(value)),
            "--sb" => opts.sb = Some(PathBuf::from(value)),
            "--load-tool" => load_tool = value.trim().to_owned(),
            "--streams" => opts.streams = usize::try_from(positive(value)?.min(5_000))?,
            "--churn" => opts.churn = positive(value)?.min(3600),
            "--players" => {
                opts.players =
                    crate::cli::list(value, |v| Ok(usize::try_from(positive(v)?.min(20_000))?))?;
            }
            "--warmup" => opts.warmup = positive(value)?.clamp(RAMP.as_secs() + 1, 600),
            "--window" => opts.window = positive(value)?.min(600),
            "--proto" => opts.protos = crate::cli::list(value, Proto::parse)?,
            "--servers" => opts.servers = crate::cli::list(value, ServerKind::parse)?,
            "--merge-write-ms" => {
                opts.merge_write_ms = Some(value.trim().parse::<u64>().with_context(|| {
                    format!("--merge-write-ms: {value:?} is not a number of milliseconds")
                })?);
            }
            "--quiet-wait" => opts.quiet_wait = crate::cli::number_up_to(name, value, 3600)?,
            "--livestack" => opts.livestack = Some(PathBuf::from(value)),
            "--ingest" => {
                opts.ingest_srt = match value.trim() {
                    "rtmp" => false,
                    "srt" => true,
                    other => bail!("--ingest: {other:?} is not rtmp or srt"),
                }
            }
            _ => bail!("unknown option {arg:?}\n{USAGE}"),
        }
    }
    opts.protos.sort();
    opts.protos.dedup();
    opts.servers.sort();
    opts.servers.dedup();
    match load_tool.as_str() {
        "ours" => opts.sb = None,
        "sb" if opts.sb.is_some() && opts.streams > 1 => {
            bail!("--load-tool sb plays one stream: --streams needs our players")
        }
        "sb" if opts.sb.is_some() => {
            // sb_rtmp_load plays RTMP only.
            opts.protos.retain(|p| *p == Proto::Rtmp);
            opts.protos.push(Proto::Rtmp);
            opts.protos.dedup();
        }
        "sb" => bail!("--load-tool sb needs --sb PATH (sb_rtmp_load of a local srs-bench build)"),
        other => bail!("--load-tool: {other:?} is not ours or sb"),
    }
    if opts.servers.contains(&ServerKind::Srs) && opts.srs.is_none() {
        bail!("--servers srs needs --srs PATH (the srs binary of a local build; see docs/benchmarks.md)");
    }
    Ok(opts)
}

// ---------------------------------------------------------------------------
// Entry point.

/// `cargo xtask bench-media …`, and the hidden `… --load …` helper.
pub(crate) fn main(root: &Path, args: &[&str]) -> Result<ExitCode> {
    if args.first() == Some(&"--bare-sender") {
        return bare::main(&args[1..]);
    }
    if args.first() == Some(&"--load") {
        return load_main(&args[1..]);
    }
    if args.first() == Some(&"--publish") {
        return publish::main(&args[1..]);
    }
    let opts = parse_options(args)?;
    let target_dir = target_dir(root)?;
    if opts.build {
        build(root, &target_dir)?;
    }
    let livestack = opts
        .livestack
        .clone()
        .unwrap_or_else(|| target_dir.join("release").join("livestack"));
    if opts.servers.contains(&ServerKind::Livestack) && !livestack.is_file() {
        bail!(
            "no livestack binary at {} (build it with `cargo build --release -p livestack`, \
             or point --livestack at it)",
            livestack.display()
        );
    }
    let nginx = if opts.servers.contains(&ServerKind::Nginx) {
        match find_nginx() {
            Ok(n) => Some(n),
            Err(why) => {
                println!(
                    "NOTE: skipping nginx-rtmp: {why}. Install it with \
                     `apt-get install nginx libnginx-mod-rtmp`."
                );
                None
            }
        }
    } else {
        None
    };
    let mut env = Env::prepare(&target_dir, livestack)?;
    env.nginx = nginx;
    if let Some(srs) = &opts.srs {
        if !srs.is_file() {
            bail!("no SRS binary at {}", srs.display());
        }
        env.srs = Some(std::path::absolute(srs)?);
    }
    if let Some(sb) = &opts.sb {
        if !sb.is_file() {
            bail!("no sb_rtmp_load at {}", sb.display());
        }
        env.sb = Some(std::path::absolute(sb)?);
    }
    env.merge_write_ms = opts.merge_write_ms;
    env.streams = opts.streams;
    env.churn = opts.churn;
    until_interrupted(run_matrix(&opts, &env), "processes")?;
    Ok(ExitCode::SUCCESS)
}

/// Cargo's target directory: `CARGO_TARGET_DIR`, else `<root>/target`.
pub(crate) fn target_dir(root: &Path) -> Result<PathBuf> {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            std::path::absolute(PathBuf::from(dir)).context("cannot resolve CARGO_TARGET_DIR")
        }
        _ => Ok(root.join("target")),
    }
}

/// The load generator must be optimised: this binary when it is, else the
/// release build next to it.
pub(crate) fn helper_binary(target_dir: &Path) -> Result<PathBuf> {
    if !cfg!(debug_assertions) {
        return std::env::current_exe().context("cannot find the running xtask binary");
    }
    let release = target_dir.join("release").join("xtask");
    if release.is_file() {
        Ok(release)
    } else {
        bail!(
            "the load generator must be optimised, but {} does not exist \
             (run without --no-build, or `cargo build --release -p xtask`)",
            release.display()
        )
    }
}

pub(crate) fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

// ---------------------------------------------------------------------------
// The machine.

pub(crate) struct Pinning {
    pub(crate) server: Option<usize>,
    pub(crate) client: Option<usize>,
    pub(crate) note: String,
}

pub(crate) fn detect_pinning() -> Pinning {
    let unpinned = |why: String| Pinning {
        server: None,
        client: None,
        note: format!("UNPINNED ({why}): server and load share the CPUs"),
    };
    if which("taskset").is_none() {
        return unpinned("taskset not found".to_owned());
    }
    match allowed_cpus().as_slice() {
        [server, client, ..] => Pinning {
            server: Some(*server),
            client: Some(*client),
            note: format!(
                "server on CPU {server}; publisher and load generator on CPU {client} (taskset -c)"
            ),
        },
        cpus => unpinned(format!("{} CPU(s) available, 2 needed", cpus.len())),
    }
}

/// The hard RLIMIT_NOFILE, which children raise their soft limit to.
pub(crate) fn nofile_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(4).map(str::to_owned))
        })
        .and_then(|hard| hard.parse::<u64>().ok())
        .unwrap_or(1024)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

pub(crate) fn machine() -> String {
    let n = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    format!("{}, nproc {n}, Linux {kernel}", cpu_model())
}

// ---------------------------------------------------------------------------
// /proc sampling.

fn proc_stat_fields(pid: u32) -> Result<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    // The command may contain spaces and parentheses: fields after the
    // last ')' start with the state (field 3).
    let (_, after) = stat
        .rsplit_once(')')
        .with_context(|| format!("malformed /proc/{pid}/stat"))?;
    Ok(after.split_whitespace().map(str::to_owned).collect())
}

/// Seconds of CPU in `/proc/PID/stat`, counting fields after the name
/// from 0 (the state): `utime + stime` of `pid`'s threads, and `cutime +
/// cstime` of the children it has waited for.
fn stat_cpu_seconds(pid: u32, ticks: f64) -> Result<(f64, f64)> {
    let f = proc_stat_fields(pid)?;
    let field = |i: usize| -> Result<u64> {
        f.get(i)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("malformed /proc/{pid}/stat"))
    };
    Ok((
        (field(11)? + field(12)?) as f64 / ticks,
        (field(13)? + field(14)?) as f64 / ticks,
    ))
}

/// User + system CPU seconds of every thread of `pid`.
pub(crate) fn cpu_seconds(pid: u32, ticks: f64) -> Result<f64> {
    stat_cpu_seconds(pid, ticks).map(|(own, _)| own)
}

/// CPU seconds of `pid` itself, and of the children it has waited for.
pub(crate) fn cpu_seconds_with_reaped(pid: u32, ticks: f64) -> Result<(f64, f64)> {
    stat_cpu_seconds(pid, ticks)
}

/// Busy seconds (all but idle and iowait) of one CPU.
pub(crate) fn cpu_busy_seconds(cpu: usize, ticks: f64) -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let prefix = format!("cpu{cpu} ");
    let line = stat.lines().find(|l| l.starts_with(&prefix))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy: u64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| v.get(i)).sum();
    Some(busy as f64 / ticks)
}

/// The number a `/proc/PID/status` field starts with (kB for the memory
/// fields, a count for `Threads`).
pub(crate) fn status_number(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix(field)?
            .strip_prefix(':')?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// Processes whose parent is `pid`.
pub(crate) fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| {
            proc_stat_fields(p)
                .ok()
                .and_then(|f| f.get(1).and_then(|v| v.parse::<u32>().ok()))
                == Some(pid)
        })
        .collect()
}

pub(crate) fn process_name(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_owned())
}

/// SIGKILL by process id, through kill(1) (this crate has no unsafe code).
fn kill_pid(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

// ---------------------------------------------------------------------------
// The source stream.

/// What the publisher sends, measured from the file.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub(crate) path: PathBuf,
    /// Media duration, seconds.
    pub(crate) secs: f64,
    /// Audio + video tag bodies, kbit/s.
    pub(crate) payload_kbps: f64,
    /// Audio + video tags per second.
    pub(crate) tags_per_sec: f64,
    pub(crate) video_fps: f64,
    pub(crate) audio_per_sec: f64,
    pub(crate) keyframes: usize,
    /// Lowest and highest payload rate over any window of the benchmark's
    /// length (the file loops), kbit/s.
    pub(crate) window_kbps: Option<(f64, f64)>,
}

pub(crate) fn ensure_source(ffmpeg: &Path, dir: &Path, cpu: Option<usize>) -> Result<Source> {
    ensure_source_of(ffmpeg, dir, cpu, (640, 360), 800)
}

/// The benchmark's source stream at `size` and `video_kbps` (made once,
/// cached in `dir`).
pub(crate) fn ensure_source_of(
    ffmpeg: &Path,
    dir: &Path,
    cpu: Option<usize>,
    (width, height): (u32, u32),
    video_kbps: u32,
) -> Result<Source> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // No B-frames (as low-latency encoders and WebRTC publishers send):
    // WebRTC players get such a stream passed through, so the WebRTC rows
    // measure per-player work, not a per-stream baseline re-encode. The
    // first source's name (880k: with its audio) is kept for its cache.
    let name = if (width, height, video_kbps) == (640, 360, 800) {
        "src-880k-640x360-25fps-60s-nobf.flv".to_owned()
    } else {
        format!("src-{video_kbps}k-{width}x{height}-25fps-60s-nobf.flv")
    };
    let path = dir.join(name);
    if !path.is_file() {
        let tmp = dir.join("src.tmp.flv");
        println!("generating the source stream (once): {}", path.display());
        let mut cmd = match cpu {
            Some(cpu) => {
                let mut c = std::process::Command::new("taskset");
                c.args(["-c", &cpu.to_string()]).arg(ffmpeg);
                c
            }
            None => std::process::Command::new(ffmpeg),
        };
        // testsrc2 with temporal noise keeps the encoder at its rate cap
        // for the whole file, so every 20 s window carries ~880 kbps.
        let status = cmd
            .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
            .args(["-f", "lavfi", "-i"])
            .arg(format!("testsrc2=size={width}x{height}:rate=25"))
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
            .args(["-t", "60", "-vf", "noise=alls=10:allf=t"])
            .args([
                "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
            ])
            .args(["-b:v", &format!("{video_kbps}k")])
            .args(["-maxrate", &format!("{video_kbps}k")])
            .args(["-bufsize", &format!("{}k", 2 * video_kbps)])
            .args([
                "-g",
                "50",
                "-keyint_min",
                "50",
                "-sc_threshold",
                "0",
                "-bf",
                "0",
            ])
            .args(["-c:a", "aac", "-b:a", "64k", "-ac", "2"])
            .args(["-f", "flv"])
            .arg(&tmp)
            .status()
            .context("cannot run ffmpeg")?;
        if !status.success() {
            bail!("ffmpeg could not make the source stream ({status})");
        }
        std::fs::rename(&tmp, &path).context("cannot move the source into place")?;
    }
    source_stats(&path)
}

fn source_stats(path: &Path) -> Result<Source> {
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut reader = FlvReader::new();
    reader.push(&data);
    let (mut video, mut audio, mut keyframes) = (0usize, 0usize, 0usize);
    let mut payload = 0u64;
    let (mut first_ts, mut last_ts) = (u32::MAX, 0u32);
    // Payload bytes per media second, for the windowed rates.
    let mut per_sec: Vec<u64> = Vec::new();
    while let Some(tag) = reader.next_tag().context("the source is not valid FLV")? {
        if tag.kind == TagKind::Script {
            continue;
        }
        match tag.kind {
            TagKind::Video => {
                video += 1;
                if VideoInfo::parse(&tag.payload)
                    .is_ok_and(|v| v.is_keyframe() && !v.is_sequence_header())
                {
                    keyframes += 1;
                }
            }
            _ => audio += 1,
        }
        payload += tag.payload.len() as u64;
        first_ts = first_ts.min(tag.timestamp_ms);
        last_ts = last_ts.max(tag.timestamp_ms);
        let sec = tag.timestamp_ms as usize / 1000;
        if per_sec.len() <= sec {
            per_sec.resize(sec + 1, 0);
        }
        per_sec[sec] += tag.payload.len() as u64;
    }
    if video == 0 || last_ts <= first_ts {
        bail!("the source {} has no usable video", path.display());
    }
    // One frame interval past the last timestamp.
    let secs = f64::from(last_ts - first_ts) / 1000.0 + 0.04;
    Ok(Source {
        path: path.to_owned(),
        secs,
        payload_kbps: payload as f64 * 8.0 / secs / 1000.0,
        tags_per_sec: (video + audio) as f64 / secs,
        video_fps: video as f64 / secs,
        audio_per_sec: audio as f64 / secs,
        keyframes,
        window_kbps: None,
    }
    .with_windows(&per_sec))
}

impl Source {
    /// Fills `window_kbps` for 20 s windows over the looping file (whole
    /// seconds; the last, partial second is left out).
    fn with_windows(mut self, per_sec: &[u64]) -> Source {
        let full = &per_sec[..per_sec.len().saturating_sub(1)];
        let w = 20;
        if full.len() >= w {
            let rates: Vec<f64> = (0..full.len())
                .map(|start| {
                    let bytes: u64 = (0..w).map(|k| full[(start + k) % full.len()]).sum();
                    bytes as f64 * 8.0 / w as f64 / 1000.0
                })
                .collect();
            let lo = rates.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = rates.iter().copied().fold(0.0, f64::max);
            self.window_kbps = Some((lo, hi));
        }
        self
    }
}

// ---------------------------------------------------------------------------
// Orchestration.

pub(crate) struct NginxInstall {
    binary: PathBuf,
    module: PathBuf,
    version: String,
}

fn find_nginx() -> Result<NginxInstall, String> {
    let binary = which("nginx").ok_or("nginx is not installed")?;
    let module = [
        "/usr/lib/nginx/modules/ngx_rtmp_module.so",
        "/usr/share/nginx/modules/ngx_rtmp_module.so",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .ok_or("the nginx RTMP module (ngx_rtmp_module.so) is not installed")?;
    let version = std::process::Command::new(&binary)
        .arg("-v")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_owned())
        .unwrap_or_default();
    Ok(NginxInstall {
        binary,
        module,
        version,
    })
}

pub(crate) struct Env {
    pub(crate) livestack: PathBuf,
    pub(crate) helper: PathBuf,
    pub(crate) ffmpeg: PathBuf,
    pub(crate) nginx: Option<NginxInstall>,
    pub(crate) srs: Option<PathBuf>,
    /// `sb_rtmp_load`, when it plays instead of our load generator.
    pub(crate) sb: Option<PathBuf>,
    pub(crate) setpriv: Option<PathBuf>,
    pub(crate) pinning: Pinning,
    pub(crate) clock_ticks: f64,
    pub(crate) nofile: u64,
    pub(crate) source: Source,
    pub(crate) merge_write_ms: Option<u64>,
    /// Streams published and played (see `--streams`).
    pub(crate) streams: usize,
    /// Players' mean session length when they churn (see `--churn`).
    pub(crate) churn: u64,
}

impl Env {
    /// Finds ffmpeg, `setpriv` and the load generator, chooses the CPUs and
    /// makes the source stream (once, cached under `<target>/bench-media`).
    /// No nginx and livestack's default `merge_write_ms` until set.
    pub(crate) fn prepare(target_dir: &Path, livestack: PathBuf) -> Result<Env> {
        let ffmpeg = which("ffmpeg").context(
            "ffmpeg is needed to make and publish the source stream: apt-get install ffmpeg",
        )?;
        let pinning = detect_pinning();
        let source = ensure_source(&ffmpeg, &target_dir.join("bench-media"), pinning.client)?;
        Ok(Env {
            livestack,
            helper: helper_binary(target_dir)?,
            ffmpeg,
            nginx: None,
            srs: None,
            sb: None,
            setpriv: which("setpriv").filter(|p| {
                std::process::Command::new(p)
                    .args(["--pdeathsig", "KILL", "true"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            }),
            pinning,
            clock_ticks: clock_ticks(),
            nofile: nofile_limit(),
            source,
            merge_write_ms: None,
            streams: 1,
            churn: 0,
        })
    }

    /// `program` with the soft RLIMIT_NOFILE raised to the hard one, a
    /// parent-death SIGKILL where `setpriv` exists, and pinned to `cpu`.
    pub(crate) fn command(&self, cpu: Option<usize>, program: &Path) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            r#"ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@""#,
            "sh",
        ]);
        if let Some(setpriv) = &self.setpriv {
            cmd.arg(setpriv).args(["--pdeathsig", "KILL", "--"]);
        }
        if let Some(cpu) = cpu {
            cmd.args(["taskset", "-c", &cpu.to_string()]);
        }
        cmd.arg(program);
        cmd.stdin(Stdio::null()).kill_on_drop(true);
        cmd
    }
}

/// A running server: its main process (killed on drop) and, for nginx,
/// the worker processes (killed by id on drop).
pub(crate) struct RunningServer {
    pub(crate) kind: ServerKind,
    pub(crate) child: Child,
    pub(crate) pid: u32,
    pub(crate) workers: Vec<u32>,
    pub(crate) rtmp: SocketAddr,
    pub(crate) http: Option<SocketAddr>,
    pub(crate) api: Option<SocketAddr>,
    /// livestack's SRT listener (UDP).
    pub(crate) srt: Option<SocketAddr>,
    pub(crate) _dir: tempfile::TempDir,
}

impl RunningServer {
    fn pids(&self) -> Vec<u32> {
        std::iter::once(self.pid)
            .chain(self.workers.iter().copied())
            .collect()
    }

    pub(crate) async fn stop(mut self) {
        let _ = self.child.kill().await;
        self.kill_workers();
    }

    fn kill_workers(&mut self) {
        for pid in self.workers.drain(..) {
            if process_name(pid).is_some_and(|n| n.starts_with("nginx")) {
                kill_pid(pid);
            }
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        // The child itself is killed by `kill_on_drop`.
        self.kill_workers();
    }
}

/// How to start one livestack process.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Launch<'a> {
    /// The CPU to pin it to.
    pub(crate) cpu: Option<usize>,
    /// Its store on this PostgreSQL database instead of SQLite.
    pub(crate) database_url: Option<&'a str>,
    /// `--node-name`.
    pub(crate) node_name: Option<&'a str>,
    /// Lines added to the `[media]` section of its config file.
    pub(crate) media_config: &'a str,
}

/// Starts livestack on the server's CPU with a fresh SQLite store and the
/// benchmark's domains.
pub(crate) async fn start_livestack(env: &Env) -> Result<RunningServer> {
    let server = launch_livestack(
        env,
        Launch {
            cpu: env.pinning.server,
            ..Launch::default()
        },
    )
    .await?;
    add_bench_domains(server.api.context("no API address")?).await?;
    Ok(server)
}

/// Starts `livestack serve` as `launch` says, on a fresh data directory,
/// every listener on `127.0.0.1:0`; returns once it printed its addresses.
pub(crate) async fn launch_livestack(env: &Env, launch: Launch<'_>) -> Result<RunningServer> {
    let dir = tempfile::Builder::new()
        .prefix("livestack-mbench-")
        .tempdir()
        .context("cannot create a data directory")?;
    let mut cmd = env.command(launch.cpu, &env.livestack);
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--api-listen", "127.0.0.1:0"])
        .args(["--rtmp-listen", "127.0.0.1:0"])
        .args(["--http-listen", "127.0.0.1:0"])
        .args(["--https-listen", "127.0.0.1:0"])
        .args(["--rtmps-listen", "127.0.0.1:0"])
        .args(["--srt-listen", "127.0.0.1:0"])
        .args(["--webrtc-listen", "127.0.0.1:0"])
        .args(["--log", "warn"])
        .env("LIVESTACK_SECRET_ID", SECRET_ID)
        .env("LIVESTACK_SECRET_KEY", SECRET_KEY)
        .env_remove("RUST_LOG")
        .env_remove("LIVESTACK_CONFIG")
        .env_remove("LIVESTACK_DATABASE_URL")
        .env_remove("LIVESTACK_NODE_NAME")
        .env_remove("LIVESTACK_ADVERTISE")
        .current_dir(dir.path());
    if let Some(url) = launch.database_url {
        cmd.env("LIVESTACK_DATABASE_URL", url);
    }
    if let Some(name) = launch.node_name {
        cmd.args(["--node-name", name]);
    }
    let mut media = launch.media_config.to_owned();
    if let Some(ms) = env.merge_write_ms {
        media.push_str(&format!("merge_write_ms = {ms}\n"));
    }
    if !media.is_empty() {
        let config = dir.path().join("livestack.toml");
        std::fs::write(&config, format!("[media]\n{media}"))
            .context("cannot write the livestack config")?;
        cmd.arg("--config").arg(&config);
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = cmd.spawn().context("cannot start livestack")?;
    let pid = child.id().context("livestack exited at once")?;
    let stdout = child.stdout.take().context("stdout is not piped")?;
    let mut lines = BufReader::new(stdout).lines();
    let (mut rtmp, mut http, mut api, mut srt) = (None, None, None, None);
    tokio::time::timeout(STARTUP_TIMEOUT, async {
        while let Some(line) = lines.next_line().await? {
            let addr = |prefix: &str| -> Result<Option<SocketAddr>> {
                match line.strip_prefix(prefix) {
                    Some(a) => {
                        Ok(Some(a.trim().parse().with_context(|| {
                            format!("unreadable address in {line:?}")
                        })?))
                    }
                    None => Ok(None),
                }
            };
            rtmp = rtmp.or(addr("rtmp listening on rtmp://")?);
            http = http.or(addr("http listening on http://")?);
            srt = srt.or(addr("srt listening on srt://")?);
            if let Some(a) = addr("api listening on http://")? {
                api = Some(a);
                return Ok(());
            }
        }
        bail!("livestack exited before it was ready")
    })
    .await
    .context("livestack did not print its addresses in time")??;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let rtmp = rtmp.context("livestack printed no RTMP address")?;
    let http = http.context("livestack printed no HTTP address")?;
    Ok(RunningServer {
        kind: ServerKind::Livestack,
        child,
        pid,
        workers: Vec::new(),
        rtmp,
        http: Some(http),
        api,
        srt,
        _dir: dir,
    })
}

/// The benchmark's push and play domains, and push authentication off,
/// through livestack's API at `api`.
/// Creates a template with `create` and binds it to every stream of
/// `domain` with `rule` (`CreateLive…Template` / `CreateLive…Rule`).
pub(crate) async fn template_for_every_stream(
    api: SocketAddr,
    create: &str,
    template: &str,
    rule: &str,
    domain: &str,
) -> Result<i64> {
    let answer = api_call(api, create, template)
        .await
        .with_context(|| format!("{create} {template}"))?;
    let id = serde_json::from_str::<serde_json::Value>(&answer)
        .ok()
        .and_then(|v| v["Response"]["TemplateId"].as_i64())
        .with_context(|| format!("no TemplateId in {answer}"))?;
    let body = serde_json::json!({
        "DomainName": domain, "AppName": "", "StreamName": "", "TemplateId": id,
    })
    .to_string();
    api_call(api, rule, &body)
        .await
        .with_context(|| format!("{rule} {body}"))?;
    Ok(id)
}

pub(crate) async fn add_bench_domains(api: SocketAddr) -> Result<()> {
    for (action, body) in [
        (
            "AddLiveDomain",
            format!(r#"{{"DomainName":"{PUSH_DOMAIN}","DomainType":0}}"#),
        ),
        (
            "AddLiveDomain",
            format!(r#"{{"DomainName":"{PLAY_DOMAIN}","DomainType":1}}"#),
        ),
        (
            "ModifyLivePushAuthKey",
            format!(r#"{{"DomainName":"{PUSH_DOMAIN}","Enable":0}}"#),
        ),
    ] {
        api_call(api, action, &body)
            .await
            .with_context(|| format!("livestack API {action} {body}"))?;
    }
    Ok(())
}

/// A TC3-signed API call; fails on an HTTP error or an `"Error"` answer.
pub(crate) async fn api_call(addr: SocketAddr, action: &str, body: &str) -> Result<String> {
    let host = addr.to_string();
    let unix = unix_now();
    let date = livestack_api::time::utc_date(unix);
    let timestamp = unix.to_string();
    let content_type = "application/json";
    let canonical = tc3::canonical_request(
        "POST",
        "",
        &[("content-type", content_type), ("host", &host)],
        &tc3::sha256_hex(body.as_bytes()),
    );
    let to_sign = tc3::string_to_sign(&timestamp, &date, "live", &canonical);
    let signature = tc3::signature(&tc3::signing_key(SECRET_KEY, &date, "live"), &to_sign);
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\nX-TC-Action: {action}\r\n\
         X-TC-Version: {API_VERSION}\r\nX-TC-Timestamp: {timestamp}\r\n\
         Authorization: {} Credential={SECRET_ID}/{date}/live/tc3_request, \
         SignedHeaders=content-type;host, Signature={signature}\r\n\r\n{body}",
        body.len(),
        tc3::ALGORITHM
    );
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(request.as_bytes()).await?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await?;
        std::io::Result::Ok(out)
    })
    .await
    .context("no answer in 10 s")??;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    if !head.starts_with("HTTP/1.1 200") || body.contains("\"Error\"") {
        bail!("{}", answer.trim());
    }
    Ok(body.to_owned())
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(l.local_addr()?.port())
}

/// Whether the current user is root (nginx then needs `user root;` or its
/// worker drops to `nobody`).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn nginx_config(module: &Path, dir: &Path, port: u16, nofile: u64, players: usize) -> String {
    let user = if is_root() { "user root;\n" } else { "" };
    let connections = (2 * players + 100).max(10_000);
    format!(
        "load_module {module};\n\
         {user}worker_processes 1;\n\
         worker_rlimit_nofile {nofile};\n\
         pid {dir}/nginx.pid;\n\
         error_log {dir}/error.log warn;\n\
         events {{ worker_connections {connections}; }}\n\
         rtmp {{\n  server {{\n    listen 127.0.0.1:{port};\n    chunk_size 4096;\n\
         \x20   application {APP} {{ live on; }}\n  }}\n}}\n",
        module = module.display(),
        dir = dir.display(),
    )
}

async fn start_nginx(env: &Env, install: &NginxInstall, players: usize) -> Result<RunningServer> {
    let dir = tempfile::Builder::new()
        .prefix("nginx-mbench-")
        .tempdir()
        .context("cannot create the nginx prefix")?;
    let port = free_port()?;
    let conf = dir.path().join("nginx.conf");
    std::fs::write(
        &conf,
        nginx_config(&install.module, dir.path(), port, env.nofile, players),
    )
    .context("cannot write nginx.conf")?;
    let mut cmd = env.command(env.pinning.server, &install.binary);
    cmd.arg("-p")
        .arg(dir.path())
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .arg("-c")
        .arg(&conf)
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let child = cmd.spawn().context("cannot start nginx")?;
    let pid = child.id().context("nginx exited at once")?;
    let mut server = RunningServer {
        kind: ServerKind::Nginx,
        child,
        pid,
        workers: Vec::new(),
        rtmp: SocketAddr::from(([127, 0, 0, 1], port)),
        http: None,
        api: None,
        srt: None,
        _dir: dir,
    };
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Some(status) = server.child.try_wait()? {
            let log =
                std::fs::read_to_string(server._dir.path().join("error.log")).unwrap_or_default();
            bail!("nginx exited ({status}): {}", log.trim());
        }
        server.workers = children_of(pid);
        if !server.workers.is_empty() && TcpStream::connect(server.rtmp).await.is_ok() {
            break;
        }
        if Instant::now() > deadline {
            bail!("nginx did not come up in {} s", STARTUP_TIMEOUT.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(server)
}

/// SRS's configuration for a run: RTMP and HTTP-FLV (`http_remux`) on
/// loopback, logs in `dir`, RTC, SRT and the HTTP API off. `mw_latency`
/// is SRS's merged-write window (its default, 350 ms, when `None`).
fn srs_config(dir: &Path, rtmp: u16, http: u16, players: usize, mw_latency: Option<u64>) -> String {
    let connections = players + 1000;
    let play = match mw_latency {
        Some(ms) => format!("    play {{ mw_latency {ms}; }}\n"),
        None => String::new(),
    };
    format!(
        "listen 127.0.0.1:{rtmp};\n\
         max_connections {connections};\n\
         daemon off;\n\
         pid {dir}/srs.pid;\n\
         srs_log_tank file;\n\
         srs_log_file {dir}/srs.log;\n\
         srs_log_level warn;\n\
         http_api {{ enabled off; }}\n\
         http_server {{ enabled on; listen 127.0.0.1:{http}; dir {dir}/html; }}\n\
         rtc_server {{ enabled off; }}\n\
         srt_server {{ enabled off; }}\n\
         stats {{ network 0; }}\n\
         vhost __defaultVhost__ {{\n\
         \x20   http_remux {{ enabled on; mount [vhost]/[app]/[stream].flv; }}\n\
         {play}\
         }}\n",
        dir = dir.display(),
    )
}

async fn start_srs(
    env: &Env,
    binary: &Path,
    players: usize,
    mw_latency: Option<u64>,
) -> Result<RunningServer> {
    let dir = tempfile::Builder::new()
        .prefix("srs-mbench-")
        .tempdir()
        .context("cannot create the SRS directory")?;
    let (rtmp, http) = (free_port()?, free_port()?);
    let conf = dir.path().join("srs.conf");
    std::fs::write(
        &conf,
        srs_config(dir.path(), rtmp, http, players, mw_latency),
    )
    .context("cannot write srs.conf")?;
    std::fs::create_dir_all(dir.path().join("html"))?;
    // SRS finds some files relative to its build directory (objs/..).
    let workdir = binary
        .parent()
        .and_then(Path::parent)
        .unwrap_or(dir.path())
        .to_owned();
    let mut cmd = env.command(env.pinning.server, binary);
    cmd.arg("-c")
        .arg(&conf)
        .current_dir(workdir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let log = dir.path().join("srs.log");
    let http = SocketAddr::from(([127, 0, 0, 1], http));
    let mut server = spawn_server(cmd, ServerKind::Srs, dir, rtmp, Some(http))?;
    until_listening(&mut server, Some(&log)).await?;
    Ok(server)
}

/// Starts `cmd` as a server of `kind` listening for players on `port`.
fn spawn_server(
    mut cmd: tokio::process::Command,
    kind: ServerKind,
    dir: tempfile::TempDir,
    port: u16,
    http: Option<SocketAddr>,
) -> Result<RunningServer> {
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", kind.name()))?;
    let pid = child
        .id()
        .with_context(|| format!("{} exited at once", kind.name()))?;
    Ok(RunningServer {
        kind,
        child,
        pid,
        workers: Vec::new(),
        rtmp: SocketAddr::from(([127, 0, 0, 1], port)),
        http,
        api: None,
        srt: None,
        _dir: dir,
    })
}

/// Waits until `server` accepts connections on its player port; fails,
/// with `log`'s text, if it exits first or takes over [`STARTUP_TIMEOUT`].
async fn until_listening(server: &mut RunningServer, log: Option<&Path>) -> Result<()> {
    let name = server.kind.name();
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Some(status) = server.child.try_wait()? {
            let text = log
                .and_then(|l| std::fs::read_to_string(l).ok())
                .unwrap_or_default();
            bail!("{name} exited ({status}): {}", text.trim());
        }
        if TcpStream::connect(server.rtmp).await.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{name} did not come up in {} s", STARTUP_TIMEOUT.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts the bare sender (`bench_media/bare.rs`) on the server's CPU:
/// the same release xtask binary as the load generator.
async fn start_bare(env: &Env, merge_ms: u64) -> Result<RunningServer> {
    let dir = tempfile::Builder::new()
        .prefix("bare-mbench-")
        .tempdir()
        .context("cannot create a directory")?;
    let port = free_port()?;
    let rtmp_port = free_port()?;
    let mut cmd = env.command(env.pinning.server, &env.helper);
    cmd.args(["bench-media", "--bare-sender", "--port", &port.to_string()])
        .args(["--rtmp-port", &rtmp_port.to_string()])
        .arg("--source")
        .arg(&env.source.path)
        .args(["--merge-ms", &merge_ms.max(1).to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let http = SocketAddr::from(([127, 0, 0, 1], port));
    let mut server = spawn_server(cmd, ServerKind::Bare, dir, rtmp_port, Some(http))?;
    until_listening(&mut server, None).await?;
    Ok(server)
}

/// Where a run publishes and plays.
struct Urls {
    publish: String,
    rtmp_tc_url: String,
    rtmp_name: String,
    http_addr: Option<SocketAddr>,
    http_path: String,
    /// WHEP, on the HTTP listener.
    whep_path: String,
}

fn urls(server: &RunningServer) -> Urls {
    let rtmp = server.rtmp;
    match server.kind {
        ServerKind::Livestack => Urls {
            publish: format!("rtmp://{rtmp}/{APP}/{STREAM}?domain={PUSH_DOMAIN}"),
            rtmp_tc_url: format!("rtmp://{rtmp}/{APP}"),
            rtmp_name: format!("{STREAM}?domain={PLAY_DOMAIN}"),
            http_addr: server.http,
            http_path: format!("/{APP}/{STREAM}.flv?domain={PLAY_DOMAIN}"),
            whep_path: format!("/{APP}/{STREAM}/whep?domain={PLAY_DOMAIN}"),
        },
        ServerKind::Bare => Urls {
            // It plays the source file itself: nothing is published.
            publish: String::new(),
            rtmp_tc_url: format!("rtmp://{rtmp}/{APP}"),
            rtmp_name: STREAM.to_owned(),
            http_addr: server.http,
            http_path: format!("/{APP}/{STREAM}.flv"),
            whep_path: String::new(),
        },
        ServerKind::Srs => Urls {
            publish: format!("rtmp://{rtmp}/{APP}/{STREAM}"),
            rtmp_tc_url: format!("rtmp://{rtmp}/{APP}"),
            rtmp_name: STREAM.to_owned(),
            http_addr: server.http,
            http_path: format!("/{APP}/{STREAM}.flv"),
            whep_path: String::new(),
        },
        ServerKind::Nginx => Urls {
            publish: format!("rtmp://{rtmp}/{APP}/{STREAM}"),
            rtmp_tc_url: format!("rtmp://{rtmp}/{APP}"),
            rtmp_name: STREAM.to_owned(),
            http_addr: None,
            http_path: String::new(),
            whep_path: String::new(),
        },
    }
}

/// One measurement: a server, a protocol, a number of players.
#[derive(Debug, Clone)]
struct RunResult {
    server: ServerKind,
    label: String,
    proto: Proto,
    players: usize,
    /// Wall seconds between the window's start and end samples.
    wall: f64,
    server_cpu: f64,
    core0: Option<f64>,
    core1: Option<f64>,
    load_cpu: Option<f64>,
    publisher_cpu: Option<f64>,
    /// The origin's CPU over the window, when `server` is an edge.
    origin_cpu: Option<f64>,
    /// TCP connections established to the origin's playback listener at
    /// the window's start and end (the edge's relays), when on an edge.
    relay_conns: Option<(usize, usize)>,
    rss_mb: f64,
    /// RSS when the window opened.
    rss_start_mb: f64,
    hwm_mb: Option<f64>,
    report: LoadReport,
    source_kbps: f64,
    source_tags_per_sec: f64,
    /// Whether the machine was quiet when the run started.
    quiet_before: bool,
}

/// Per-run figures derived from the players' records.
#[derive(Debug, Clone)]
struct Derived {
    kbps_min: f64,
    kbps_median: f64,
    tags_min_share: f64,
    full: usize,
    disconnects: usize,
    ff_p50: f64,
    ff_p99: f64,
    ff_max: f64,
    /// Players that never saw a keyframe.
    no_frame: usize,
    max_stall_ms: f64,
    /// Players whose longest gap between tags exceeded 500 ms.
    stalled: usize,
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

impl RunResult {
    fn derive(&self) -> Derived {
        let secs = self.report.window_secs;
        let expected_tags = self.source_tags_per_sec * secs;
        let mut kbps: Vec<f64> = self
            .report
            .players
            .iter()
            .map(|p| p.payload as f64 * 8.0 / secs / 1000.0)
            .collect();
        kbps.sort_by(f64::total_cmp);
        let tags_min = self
            .report
            .players
            .iter()
            .map(|p| f64::from(p.audio + p.video))
            .fold(f64::INFINITY, f64::min);
        let full = self
            .report
            .players
            .iter()
            .filter(|p| {
                p.error.is_none()
                    && p.payload as f64 * 8.0 / secs / 1000.0 >= FULL_SHARE * self.source_kbps
                    && (self.report.aggregate
                        || f64::from(p.audio + p.video) >= FULL_SHARE * expected_tags)
            })
            .count();
        let mut ff: Vec<f64> = self
            .report
            .players
            .iter()
            .filter_map(|p| p.first_frame_ms)
            .collect();
        ff.sort_by(f64::total_cmp);
        Derived {
            kbps_min: kbps.first().copied().unwrap_or(0.0),
            kbps_median: quantile(&kbps, 0.5),
            tags_min_share: if expected_tags > 0.0 {
                tags_min / expected_tags
            } else {
                0.0
            },
            full,
            disconnects: self
                .report
                .players
                .iter()
                .filter(|p| p.error.is_some())
                .count(),
            ff_p50: quantile(&ff, 0.5),
            ff_p99: quantile(&ff, 0.99),
            ff_max: ff.last().copied().unwrap_or(f64::NAN),
            no_frame: self.report.players.len() - ff.len(),
            max_stall_ms: self
                .report
                .players
                .iter()
                .map(|p| p.max_gap_ms)
                .fold(0.0, f64::max),
            stalled: self
                .report
                .players
                .iter()
                .filter(|p| p.max_gap_ms > 500.0)
                .count(),
        }
    }

    fn pct(&self, cpu: Option<f64>) -> String {
        cpu.filter(|_| self.wall > 0.0)
            .map_or("?".to_owned(), |c| format!("{:.1}", c / self.wall * 100.0))
    }

    fn server_pct(&self) -> f64 {
        self.server_cpu / self.wall * 100.0
    }

    /// CPU time others spent on the server's core, as % of the window.
    fn others_pct(&self) -> Option<f64> {
        self.core0
            .map(|c| ((c - self.server_cpu) / self.wall * 100.0).max(0.0))
    }

    /// Server CPU microseconds per player-second.
    fn us_per_player_sec(&self) -> f64 {
        self.server_cpu * 1e6 / (self.wall * self.players as f64)
    }
}

fn print_run(r: &RunResult) {
    let d = r.derive();
    println!(
        "  {} {} N={}: server CPU {:.1}% of one core ({:.0} µs per player-second), \
         core0 busy {}% (others {}), core1 busy {}% (load {}%, ffmpeg {}%)",
        r.label,
        r.proto.name(),
        r.players,
        r.server_pct(),
        r.us_per_player_sec(),
        r.pct(r.core0),
        r.others_pct()
            .map_or("?".to_owned(), |o| format!("{o:.1}%")),
        r.pct(r.core1),
        r.pct(r.load_cpu),
        r.pct(r.publisher_cpu),
    );
    println!(
        "    RSS {:.1} MB (peak {}), delivered kbps per player min {:.0} / median {:.0} \
         (source {:.0}), tags min {:.1}% of the source's, full bitrate {}/{}",
        r.rss_mb,
        r.hwm_mb.map_or("?".to_owned(), |h| format!("{h:.1} MB")),
        d.kbps_min,
        d.kbps_median,
        r.source_kbps,
        d.tags_min_share * 100.0,
        d.full,
        r.players
    );
    println!(
        "    disconnects {}, first frame p50 {:.1} ms / p99 {:.1} ms / max {:.1} ms \
         (no keyframe: {}), max stall {:.0} ms ({} players > 500 ms), probe {:.0} ms",
        d.disconnects,
        d.ff_p50,
        d.ff_p99,
        d.ff_max,
        d.no_frame,
        d.max_stall_ms,
        d.stalled,
        r.report.probe_ms
    );
    let reconnects: u64 = r
        .report
        .players
        .iter()
        .map(|p| u64::from(p.reconnects))
        .sum();
    if reconnects > 0 {
        println!(
            "    churn: {reconnects} reconnects; RSS {:.1} MB when the window opened, {:.1} MB \
             when it closed ({:+.1} MB)",
            r.rss_start_mb,
            r.rss_mb,
            r.rss_mb - r.rss_start_mb
        );
    }
    let mut errors: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &r.report.players {
        if let Some(e) = &p.error {
            *errors.entry(e.as_str()).or_default() += 1;
        }
    }
    for (e, n) in errors {
        println!("    {n} player(s): {e}");
    }
}

async fn run_matrix(opts: &Options, env: &Env) -> Result<()> {
    let s = &env.source;
    println!();
    println!("bench-media: one ~880 kbps stream to N players");
    println!("  machine:   {}", machine());
    println!("  pinning:   {}", env.pinning.note);
    println!(
        "  source:    {} ({:.1} s, {:.0} kbps payload, {:.2} fps video, {:.2} audio tags/s, \
         {} keyframes{})",
        s.path.display(),
        s.secs,
        s.payload_kbps,
        s.video_fps,
        s.audio_per_sec,
        s.keyframes,
        s.window_kbps.map_or(String::new(), |(lo, hi)| format!(
            "; any 20 s window {lo:.0}..{hi:.0} kbps"
        ))
    );
    println!(
        "  load:      {:?} players, started over {} s, {} s warm-up, {} s window",
        opts.players,
        RAMP.as_secs(),
        opts.warmup,
        opts.window
    );
    println!(
        "  livestack: {}{}",
        env.livestack.display(),
        env.merge_write_ms
            .map_or(String::new(), |ms| format!(" (merge_write_ms = {ms})"))
    );
    match &env.nginx {
        Some(n) => println!(
            "  nginx:     {} ({}), {}",
            n.binary.display(),
            n.version,
            n.module.display()
        ),
        None => println!("  nginx:     not measured"),
    }
    println!("  RLIMIT_NOFILE for children: {}", env.nofile);
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("  loadavg:   {} (before start)", load.trim());
    }
    let need_fds = opts.players.iter().max().copied().unwrap_or(0) as u64 + 64;
    if env.nofile < need_fds {
        println!(
            "  WARNING: the open-file limit ({}) is below what {} players need",
            env.nofile, need_fds
        );
    }

    let mut results = Vec::new();
    for &n in &opts.players {
        for &server in &opts.servers {
            for &proto in &opts.protos {
                if server == ServerKind::Nginx && proto != Proto::Rtmp {
                    continue; // nginx-rtmp has no HTTP-FLV and no WebRTC.
                }
                if server == ServerKind::Nginx && (env.nginx.is_none() || opts.ingest_srt) {
                    continue; // nginx-rtmp takes RTMP only.
                }
                if server == ServerKind::Srs && (proto == Proto::Webrtc || opts.ingest_srt) {
                    continue; // SRS is built with RTC and SRT off.
                }
                if server == ServerKind::Bare && (proto == Proto::Webrtc || opts.streams > 1) {
                    continue; // The bare sender serves one stream over RTMP and HTTP-FLV.
                }
                println!();
                println!("run: {} {} N={n}", server.name(), proto.name());
                let quiet = wait_for_quiet(env, Duration::from_secs(opts.quiet_wait)).await;
                let mut r = run_once(server, proto, n, opts, env)
                    .await
                    .with_context(|| format!("{} {} N={n}", server.name(), proto.name()))?;
                r.quiet_before = quiet;
                print_run(&r);
                results.push(r);
            }
        }
    }
    print_summary(env, opts, &results);
    Ok(())
}

async fn run_once(
    kind: ServerKind,
    proto: Proto,
    players: usize,
    opts: &Options,
    env: &Env,
) -> Result<RunResult> {
    let server = match kind {
        ServerKind::Livestack => start_livestack(env).await?,
        ServerKind::Nginx => {
            let install = env.nginx.as_ref().context("nginx is not installed")?;
            start_nginx(env, install, players).await?
        }
        ServerKind::Srs => {
            let srs = env.srs.as_ref().context("no SRS binary")?;
            start_srs(env, srs, players + env.streams, opts.merge_write_ms).await?
        }
        ServerKind::Bare => start_bare(env, opts.merge_write_ms.unwrap_or(200)).await?,
    };
    let publish = match server.srt.filter(|_| opts.ingest_srt) {
        Some(srt) => {
            format!("srt://{srt}?streamid=#!::h={PUSH_DOMAIN},r={APP}/{STREAM}&latency=200000")
        }
        None => urls(&server).publish,
    };
    let load = Load {
        proto,
        players,
        warmup: opts.warmup,
        window: opts.window,
    };
    let result = measure(&server, &publish, None, load, env).await;
    server.stop().await;
    result
}

/// What the load generator plays in one run.
#[derive(Debug, Clone, Copy)]
struct Load {
    proto: Proto,
    players: usize,
    warmup: u64,
    window: u64,
}

/// The node a stream is published to when the players play another.
#[derive(Debug, Clone, Copy)]
struct Origin {
    pid: u32,
    /// Its HTTP playback port, where edges pull from.
    http_port: u16,
}

/// Publishes to `publish`, plays `server` with `load` and samples
/// `server`'s processes (and `origin`'s, when the players are on an edge)
/// over the window.
async fn measure(
    server: &RunningServer,
    publish: &str,
    origin: Option<Origin>,
    load: Load,
    env: &Env,
) -> Result<RunResult> {
    let Load {
        proto,
        players,
        warmup,
        window,
    } = load;
    let urls = urls(server);
    let log_dir = server._dir.path();
    let mut publisher = if publish.is_empty() {
        None
    } else if env.streams > 1 {
        Some(start_light_publisher(env, server).await?)
    } else {
        Some(start_publisher(env, publish, &log_dir.join("ffmpeg.log"))?)
    };
    let publisher_pid = match &publisher {
        Some(p) => Some(p.id().context("ffmpeg exited at once")?),
        None => None,
    };
    let target = match proto {
        Proto::Rtmp => PlayTarget::Rtmp {
            addr: server.rtmp,
            tc_url: urls.rtmp_tc_url.clone(),
            name: urls.rtmp_name.clone(),
        },
        Proto::Flv => PlayTarget::Flv {
            addr: urls
                .http_addr
                .context("this server has no HTTP-FLV listener")?,
            path: urls.http_path.clone(),
        },
        Proto::Webrtc => PlayTarget::Webrtc {
            addr: urls.http_addr.context("this server has no HTTP listener")?,
            path: urls.whep_path.clone(),
        },
    };
    let ticks = env.clock_ticks;
    let server_pids = server.pids();
    let sample = |load_pid: u32| Sample {
        at: Instant::now(),
        server: server_pids
            .iter()
            .map(|&p| cpu_seconds(p, ticks))
            .sum::<Result<f64>>(),
        core0: env.pinning.server.and_then(|c| cpu_busy_seconds(c, ticks)),
        core1: env.pinning.client.and_then(|c| cpu_busy_seconds(c, ticks)),
        load: cpu_seconds(load_pid, ticks).ok(),
        publisher: publisher_pid.and_then(|pid| cpu_seconds(pid, ticks).ok()),
        origin: origin.and_then(|o| cpu_seconds(o.pid, ticks).ok()),
        conns: origin.map(|o| established_to(o.http_port)),
        rss_kb: server_pids
            .iter()
            .filter_map(|&p| status_number(p, "VmRSS"))
            .sum::<u64>(),
        hwm_kb: status_number(server.pid, "VmHWM"),
    };
    let outcome = match (&env.sb, &target) {
        (Some(sb), PlayTarget::Rtmp { tc_url, name, .. }) => {
            run_sb(
                env,
                sb,
                &format!("{tc_url}/{name}"),
                players,
                warmup,
                window,
                sample,
            )
            .await
        }
        _ => run_load_generator(env, &target, players, warmup, window, sample).await,
    };
    let mut publisher_alive = true;
    if let Some(p) = &mut publisher {
        publisher_alive = p.try_wait()?.is_none();
        let _ = p.kill().await;
    }
    let (start, end, report) = outcome?;
    if !publisher_alive {
        let log = std::fs::read_to_string(log_dir.join("ffmpeg.log")).unwrap_or_default();
        bail!("the ffmpeg publisher died during the run: {}", log.trim());
    }
    let wall = end.at.duration_since(start.at).as_secs_f64();
    let (server_start, server_end) = match (start.server, end.server) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => bail!("the server is gone: {e:#}"),
    };
    let delta = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| b - a);
    let mut label = match (server.kind, env.merge_write_ms) {
        (ServerKind::Livestack, Some(ms)) => format!("livestack (merge {ms} ms)"),
        (ServerKind::Srs, Some(ms)) => format!("srs (mw_latency {ms} ms)"),
        (kind, _) => kind.name().to_owned(),
    };
    if publish.starts_with("srt://") {
        label.push_str(", SRT in");
    }
    if env.sb.is_some() {
        label.push_str(" [sb_rtmp_load]");
    }
    if env.streams > 1 {
        label.push_str(&format!(", {} streams", env.streams));
    }
    Ok(RunResult {
        server: server.kind,
        label,
        proto,
        players,
        wall,
        server_cpu: server_end - server_start,
        core0: delta(start.core0, end.core0),
        core1: delta(start.core1, end.core1),
        load_cpu: delta(start.load, end.load),
        publisher_cpu: delta(start.publisher, end.publisher),
        origin_cpu: delta(start.origin, end.origin),
        relay_conns: start.conns.zip(end.conns),
        rss_mb: end.rss_kb as f64 / 1024.0,
        rss_start_mb: start.rss_kb as f64 / 1024.0,
        hwm_mb: end.hwm_kb.map(|k| k as f64 / 1024.0),
        report,
        source_kbps: env.source.payload_kbps,
        source_tags_per_sec: env.source.tags_per_sec,
        quiet_before: true,
    })
}

/// TCP connections in state ESTABLISHED whose local end is
/// `127.0.0.1:port`, from `/proc/net/tcp` (0 when unreadable).
fn established_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let local = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let mut f = l.split_whitespace();
            f.nth(1) == Some(local.as_str()) && f.nth(1) == Some("01")
        })
        .count()
}

struct Sample {
    at: Instant,
    server: Result<f64>,
    core0: Option<f64>,
    core1: Option<f64>,
    load: Option<f64>,
    publisher: Option<f64>,
    origin: Option<f64>,
    conns: Option<usize>,
    rss_kb: u64,
    hwm_kb: Option<u64>,
}

/// Starts the publisher, pinned to the client's CPU:
/// `ffmpeg -re -stream_loop -1 -i SRC -c copy -f flv URL`, its messages in
/// `log`.
/// The light publisher (`--publish`, on the client's CPU) pushing
/// `env.streams` streams (`bench0`, `bench1`, …) to `server`; returns once
/// every stream publishes.
async fn start_light_publisher(env: &Env, server: &RunningServer) -> Result<Child> {
    let rtmp = server.rtmp;
    let mut cmd = env.command(env.pinning.client, &env.helper);
    cmd.args(["bench-media", "--publish"])
        .args(["--addr", &rtmp.to_string()])
        .args(["--tc-url", &format!("rtmp://{rtmp}/{APP}")])
        .args(["--app", APP, "--name", STREAM])
        .args(["--streams", &env.streams.to_string()])
        .arg("--source")
        .arg(&env.source.path);
    if server.kind == ServerKind::Livestack {
        cmd.args(["--query", &format!("domain={PUSH_DOMAIN}")]);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().context("cannot start the light publisher")?;
    let stdout = child.stdout.take().context("stdout is not piped")?;
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await? {
            if line.starts_with("publishing ") {
                return Ok(());
            }
        }
        bail!("the light publisher ended before every stream published")
    })
    .await
    .context("the streams did not all publish within 60 s")?;
    ready?;
    // Its later lines are not read: it prints nothing more.
    Ok(child)
}

pub(crate) fn start_publisher(env: &Env, url: &str, log: &Path) -> Result<Child> {
    let log =
        std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    env.command(env.pinning.client, &env.ffmpeg)
        .args([
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "warning",
            "-nostats",
        ])
        .args(["-re", "-stream_loop", "-1", "-i"])
        .arg(&env.source.path)
        // SRT carries MPEG-TS; RTMP, FLV.
        .args([
            "-c",
            "copy",
            "-f",
            if url.starts_with("srt://") {
                "mpegts"
            } else {
                "flv"
            },
            url,
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("cannot start the ffmpeg publisher")
}

/// What the load generator's players play.
pub(crate) enum PlayTarget {
    /// RTMP `play` of `name` (with its query) on `tc_url`.
    Rtmp {
        addr: SocketAddr,
        tc_url: String,
        name: String,
    },
    /// An HTTP-FLV `GET path`.
    Flv { addr: SocketAddr, path: String },
    /// A WHEP `POST path` on the HTTP listener.
    Webrtc { addr: SocketAddr, path: String },
}

/// Runs the load generator (`xtask bench-media --load`, pinned to the
/// client's CPU) with `players` players of `target`, and calls
/// `sample(load generator's pid)` when its measured window opens and when
/// it closes. Returns both samples and the players' report.
/// What `sb_rtmp_load` reported at one moment (its `[report]` line).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct SbReport {
    alive: u64,
    /// Seconds since it started.
    duration: f64,
    /// Mbit/s read on average since it started, all players together.
    nread_mbps: f64,
    /// Players that failed and started again.
    error_tasks: u64,
}

impl SbReport {
    /// Reads `[…] [report] [pid] threads:N alive:N duration:S tduration:S
    /// nread:Mbps nwrite:Mbps tasks:N etasks:N stasks:N estasks:N`.
    fn parse(line: &str) -> Option<SbReport> {
        let rest = line.split("[report]").nth(1)?;
        let field = |key: &str| {
            rest.split_whitespace()
                .find_map(|w| w.strip_prefix(key)?.strip_prefix(':'))
        };
        Some(SbReport {
            alive: field("alive")?.parse().ok()?,
            duration: field("duration")?.parse().ok()?,
            nread_mbps: field("nread")?.parse().ok()?,
            error_tasks: field("etasks")?.parse().ok()?,
        })
    }

    /// Megabits read since it started.
    fn megabits(&self) -> f64 {
        self.nread_mbps * self.duration
    }
}

/// Plays with SRS's `sb_rtmp_load` (`-c players`, all started within 2 s,
/// a report every second) on the client's CPU; samples at the window's
/// edges like [`run_load_generator`]. Its report has no per-player
/// figures: one record per player with the average bytes, and the
/// players sb restarted counted as errors.
async fn run_sb<S>(
    env: &Env,
    sb: &Path,
    url: &str,
    players: usize,
    warmup: u64,
    window: u64,
    mut sample: impl FnMut(u32) -> S,
) -> Result<(S, S, LoadReport)> {
    let mut cmd = env.command(env.pinning.client, sb);
    cmd.args(["-c", &players.to_string(), "-r", url, "-s", "2", "-m", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("cannot start sb_rtmp_load")?;
    let pid = child.id().context("sb_rtmp_load exited at once")?;
    let stderr = child.stderr.take().context("stderr is not piped")?;
    let latest = std::sync::Arc::new(std::sync::Mutex::new(SbReport::default()));
    let reader = {
        let latest = std::sync::Arc::clone(&latest);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(r) = SbReport::parse(&line) {
                    *latest.lock().unwrap_or_else(|e| e.into_inner()) = r;
                }
            }
        })
    };
    let report = |l: &std::sync::Arc<std::sync::Mutex<SbReport>>| {
        *l.lock().unwrap_or_else(|e| e.into_inner())
    };
    let outcome = async {
        tokio::time::sleep(RAMP + Duration::from_secs(warmup)).await;
        let a = report(&latest);
        let start = sample(pid);
        tokio::time::sleep(Duration::from_secs(window)).await;
        let end = sample(pid);
        // The report after the window's end covers it.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let b = report(&latest);
        Ok::<_, anyhow::Error>((start, end, a, b))
    }
    .await;
    let _ = child.kill().await;
    reader.abort();
    let (start, end, a, b) = outcome?;
    if b.duration <= a.duration {
        bail!("sb_rtmp_load reported nothing during the window");
    }
    let secs = b.duration - a.duration;
    let bytes_each = (b.megabits() - a.megabits()) * 1e6 / 8.0 / players.max(1) as f64;
    let failed = (b.error_tasks - a.error_tasks.min(b.error_tasks)) as usize;
    let dead = players.saturating_sub(usize::try_from(b.alive).unwrap_or(0));
    let mut records = Vec::with_capacity(players);
    for i in 0..players {
        let bad = i < failed.max(dead);
        records.push(PlayerRecord {
            payload: (bytes_each * window as f64 / secs) as u64,
            error: bad.then(|| "sb_rtmp_load: restarted or not alive".to_owned()),
            ..PlayerRecord::default()
        });
    }
    Ok((
        start,
        end,
        LoadReport {
            window_secs: window as f64,
            probe_ms: f64::NAN,
            players: records,
            aggregate: true,
        },
    ))
}

pub(crate) async fn run_load_generator<S>(
    env: &Env,
    target: &PlayTarget,
    players: usize,
    warmup: u64,
    window: u64,
    mut sample: impl FnMut(u32) -> S,
) -> Result<(S, S, LoadReport)> {
    let mut load_cmd = env.command(env.pinning.client, &env.helper);
    load_cmd
        .args(["bench-media", "--load"])
        .args(["--players", &players.to_string()])
        .args(["--warmup", &warmup.to_string()])
        .args(["--window", &window.to_string()])
        .args(["--streams", &env.streams.to_string()])
        .args(["--churn", &env.churn.to_string()]);
    match target {
        PlayTarget::Rtmp { addr, tc_url, name } => {
            load_cmd
                .args(["--proto", "rtmp"])
                .args(["--addr", &addr.to_string()])
                .args(["--app", APP])
                .args(["--tc-url", tc_url])
                .args(["--name", name]);
        }
        PlayTarget::Webrtc { addr, path } => {
            load_cmd
                .args(["--proto", "webrtc"])
                .args(["--addr", &addr.to_string()])
                .args(["--path", path]);
        }
        PlayTarget::Flv { addr, path } => {
            load_cmd
                .args(["--proto", "flv"])
                .args(["--addr", &addr.to_string()])
                .args(["--path", path]);
        }
    }
    load_cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut load = load_cmd
        .spawn()
        .context("cannot start the load generator")?;
    let load_pid = load.id().context("the load generator exited at once")?;
    let stdout = load.stdout.take().context("stdout is not piped")?;
    let mut lines = BufReader::new(stdout).lines();
    let limit =
        PROBE_TIMEOUT + RAMP + Duration::from_secs(warmup + window) + Duration::from_secs(30);
    let (start, end, report) = tokio::time::timeout(limit, async {
        let (mut start, mut end, mut report) = (None, None, None);
        while let Some(line) = lines.next_line().await? {
            match line.as_str() {
                "measure-start" => start = Some(sample(load_pid)),
                "measure-end" => end = Some(sample(load_pid)),
                l if l.starts_with('{') => {
                    report = Some(
                        serde_json::from_str::<LoadReport>(l)
                            .context("unreadable load generator report")?,
                    );
                }
                other => println!("  load: {other}"),
            }
        }
        anyhow::Ok((start, end, report))
    })
    .await
    .context("the load generator did not finish in time")??;
    let status = load
        .wait()
        .await
        .context("cannot wait for the load generator")?;
    if !status.success() {
        bail!("the load generator failed ({status})");
    }
    let (Some(start), Some(end), Some(report)) = (start, end, report) else {
        bail!("the load generator ended without a complete report");
    };
    Ok((start, end, report))
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

fn print_summary(env: &Env, opts: &Options, results: &[RunResult]) {
    println!();
    println!("markdown:");
    println!();
    println!(
        "| Server | Proto | Players | Server CPU (% of 1 core) | µs per player-s | core0 busy % | \
         others on core0 % | core1 busy % | RSS MB | kbps/player min / median | full bitrate | disconnects | \
         first frame p50 / p99 ms | max stall ms |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---:|");
    for r in results {
        let d = r.derive();
        println!(
            "| {} | {} | {} | {:.1} | {:.0} | {} | {} | {} | {:.1} | {:.0} / {:.0} | {}/{} | {} | \
             {:.1} / {:.1} | {:.0} |",
            r.label,
            r.proto.name(),
            r.players,
            r.server_pct(),
            r.us_per_player_sec(),
            r.pct(r.core0),
            r.others_pct().map_or("?".to_owned(), |o| format!("{o:.1}")),
            r.pct(r.core1),
            r.rss_mb,
            d.kbps_min,
            d.kbps_median,
            d.full,
            r.players,
            d.disconnects,
            d.ff_p50,
            d.ff_p99,
            d.max_stall_ms,
        );
    }
    println!();
    println!(
        "source: {:.0} kbps payload, {:.1} tags/s; \"full bitrate\" = at least {:.0}% of both \
         over the {} s window",
        env.source.payload_kbps,
        env.source.tags_per_sec,
        FULL_SHARE * 100.0,
        opts.window
    );

    println!();
    println!("targets:");
    let find = |server: ServerKind, proto: Proto, n: usize| {
        results
            .iter()
            .find(|r| r.server == server && r.proto == proto && r.players == n)
    };
    for &n in &opts.players {
        for proto in [Proto::Rtmp, Proto::Flv, Proto::Webrtc] {
            let Some(ls) = find(ServerKind::Livestack, proto, n) else {
                continue;
            };
            let d = ls.derive();
            println!(
                "  N={n} {}: full bitrate to every player, no disconnects: {} ({}/{} full, {} \
                 disconnects)",
                proto.name(),
                verdict(d.full == n && d.disconnects == 0),
                d.full,
                n,
                d.disconnects
            );
            if ls.report.aggregate {
                println!(
                    "  N={n} {}: first frame: not measured (sb_rtmp_load reports none)",
                    proto.name()
                );
            } else {
                println!(
                "  N={n} {}: first frame < {TARGET_FIRST_FRAME_MS} ms (p99): {} (p99 {:.1} ms, \
                 max {:.1} ms)",
                proto.name(),
                verdict(d.ff_p99 < TARGET_FIRST_FRAME_MS && d.no_frame == 0),
                d.ff_p99,
                d.ff_max
            );
            }
            if n == TARGET_RSS_AT {
                println!(
                    "  N={n} {}: RSS <= {TARGET_RSS_MB} MB: {} ({:.1} MB)",
                    proto.name(),
                    verdict(ls.rss_mb <= TARGET_RSS_MB),
                    ls.rss_mb
                );
            }
            if proto == Proto::Webrtc {
                if let Some(rtmp) = find(ServerKind::Livestack, Proto::Rtmp, n) {
                    let per = |r: &RunResult| r.server_cpu / r.wall / r.players as f64 * 1e6;
                    let ratio = per(ls) / per(rtmp);
                    println!(
                        "  N={n} WebRTC: CPU per player-second WebRTC / RTMP = {:.0} / {:.0} µs \
                         = {ratio:.2} (target <= {TARGET_WEBRTC_RATIO}): {}",
                        per(ls),
                        per(rtmp),
                        verdict(ratio <= TARGET_WEBRTC_RATIO)
                    );
                }
                continue;
            }
            if let Some(srs) = find(ServerKind::Srs, proto, n) {
                let per = |r: &RunResult| r.server_cpu / r.wall / r.players as f64 * 1e6;
                let ratio = per(ls) / per(srs);
                println!(
                    "  N={n} {}: CPU per player-second livestack / SRS = {:.0} / {:.0} µs = \
                     {ratio:.2} (target <= {TARGET_SRS_RATIO}): {}; RSS {:.0} / {:.0} MB",
                    proto.name(),
                    per(ls),
                    per(srs),
                    verdict(ratio <= TARGET_SRS_RATIO),
                    ls.rss_mb,
                    srs.rss_mb
                );
                if env.streams > 1 {
                    let per_stream = |r: &RunResult| r.rss_mb / env.streams as f64;
                    let ratio = ls.rss_mb / srs.rss_mb;
                    println!(
                        "  N={n} {}: RSS per stream ({} streams) livestack / SRS = {:.2} / {:.2} \
                         MB = {ratio:.3} (target <= {TARGET_SRS_RSS_RATIO}): {}",
                        proto.name(),
                        env.streams,
                        per_stream(ls),
                        per_stream(srs),
                        verdict(ratio <= TARGET_SRS_RSS_RATIO)
                    );
                }
            }
            if let Some(bare) = find(ServerKind::Bare, proto, n) {
                let per = |r: &RunResult| r.server_cpu / r.wall / r.players as f64 * 1e6;
                let ratio = per(ls) / per(bare);
                println!(
                    "  N={n} {}: CPU per player-second livestack / the floor (bare sender) = \
                     {:.0} / {:.0} µs = {ratio:.2} (target <= {TARGET_FLOOR_RATIO}): {}",
                    proto.name(),
                    per(ls),
                    per(bare),
                    verdict(ratio <= TARGET_FLOOR_RATIO)
                );
            }
            if let Some(ng) = find(ServerKind::Nginx, Proto::Rtmp, n) {
                let ratio = ls.server_cpu / ls.wall / (ng.server_cpu / ng.wall);
                if proto == Proto::Rtmp {
                    println!(
                        "  N={n} RTMP: CPU livestack / nginx-rtmp = {:.1}% / {:.1}% = {ratio:.2} \
                         (target <= {TARGET_CPU_RATIO}): {}",
                        ls.server_pct(),
                        ng.server_pct(),
                        verdict(ratio <= TARGET_CPU_RATIO)
                    );
                } else {
                    println!(
                        "  N={n} HTTP-FLV (for reference, against nginx-rtmp's RTMP): CPU ratio \
                         {ratio:.2}"
                    );
                }
            }
        }
    }
    let disturbed: Vec<String> = results
        .iter()
        .filter(|r| r.others_pct().is_some_and(|o| o > 10.0))
        .map(|r| format!("{} {} N={}", r.label, r.proto.name(), r.players))
        .collect();
    if !disturbed.is_empty() {
        println!(
            "  NOTE: other work used more than 10% of the server's core during: {}",
            disturbed.join(", ")
        );
    }
    let noisy: Vec<String> = results
        .iter()
        .filter(|r| !r.quiet_before)
        .map(|r| format!("{} {} N={}", r.label, r.proto.name(), r.players))
        .collect();
    if !noisy.is_empty() {
        println!(
            "  NOTE: the machine was still busy when these runs started: {}",
            noisy.join(", ")
        );
    }
    let busy_client: Vec<String> = results
        .iter()
        .filter(|r| r.core1.is_some_and(|c| c / r.wall > 0.9))
        .map(|r| format!("{} {} N={}", r.label, r.proto.name(), r.players))
        .collect();
    if !busy_client.is_empty() {
        println!(
            "  NOTE: the load generator's core was over 90% busy (the client may be the \
             bottleneck) during: {}",
            busy_client.join(", ")
        );
    }
}

/// Busy share of each of the two benchmark CPUs over `over`.
async fn busy_share(env: &Env, over: Duration) -> Option<(f64, f64)> {
    let (c0, c1) = (env.pinning.server?, env.pinning.client?);
    let ticks = env.clock_ticks;
    let a = (cpu_busy_seconds(c0, ticks)?, cpu_busy_seconds(c1, ticks)?);
    tokio::time::sleep(over).await;
    let b = (cpu_busy_seconds(c0, ticks)?, cpu_busy_seconds(c1, ticks)?);
    let secs = over.as_secs_f64();
    Some(((b.0 - a.0) / secs, (b.1 - a.1) / secs))
}

/// Waits, at most `limit`, until both CPUs are below [`QUIET_BUSY`] for
/// three seconds; false if the machine stayed busy.
pub(crate) async fn wait_for_quiet(env: &Env, limit: Duration) -> bool {
    let began = Instant::now();
    let mut said = false;
    loop {
        let Some((c0, c1)) = busy_share(env, Duration::from_secs(3)).await else {
            return true; // Unpinned: nothing to compare.
        };
        if c0 < QUIET_BUSY && c1 < QUIET_BUSY {
            if said {
                println!(
                    "  machine quiet after {:.0} s",
                    began.elapsed().as_secs_f64()
                );
            }
            return true;
        }
        if began.elapsed() >= limit {
            println!(
                "  WARNING: the machine is still busy (CPU {:.0}% / {:.0}%) after {} s; \
                 measuring anyway",
                c0 * 100.0,
                c1 * 100.0,
                limit.as_secs()
            );
            return false;
        }
        if !said {
            println!(
                "  waiting for a quiet machine (CPU {:.0}% / {:.0}% busy; at most {} s)",
                c0 * 100.0,
                c1 * 100.0,
                limit.as_secs()
            );
            said = true;
        }
    }
}

// ---------------------------------------------------------------------------
// The load generator: `xtask bench-media --load …`.

/// What one player saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct PlayerRecord {
    /// Connect to the first video keyframe (not a sequence header), ms.
    pub(crate) first_frame_ms: Option<f64>,
    /// Bytes read inside the window.
    pub(crate) bytes: u64,
    /// Audio + video tag bodies received inside the window.
    pub(crate) payload: u64,
    pub(crate) audio: u32,
    pub(crate) video: u32,
    pub(crate) keyframes: u32,
    /// Longest time without a tag inside the window, ms.
    pub(crate) max_gap_ms: f64,
    /// Why the player stopped before the window ended, if it did.
    pub(crate) error: Option<String>,
    /// Times it left and played again (`--churn`).
    #[serde(default)]
    pub(crate) reconnects: u32,
}

/// The load generator's last line (JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LoadReport {
    /// Length of the window, seconds.
    pub(crate) window_secs: f64,
    /// How long the stream took to become playable, ms.
    pub(crate) probe_ms: f64,
    pub(crate) players: Vec<PlayerRecord>,
    /// The figures are the whole load's averages (`sb_rtmp_load`'s
    /// reports): bytes per player, no tags, first frames or stalls.
    #[serde(default)]
    pub(crate) aggregate: bool,
}

#[derive(Debug, Clone)]
struct LoadConfig {
    proto: Proto,
    addr: SocketAddr,
    app: String,
    tc_url: String,
    name: String,
    path: String,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: tokio::time::Instant,
    end: tokio::time::Instant,
}

fn load_main(args: &[&str]) -> Result<ExitCode> {
    const LOAD_USAGE: &str = "usage: xtask bench-media --load --proto rtmp|flv --addr ADDR \
        --players N --warmup SECS --window SECS [--app APP --tc-url URL --name NAME] [--path PATH]";
    let mut values: BTreeMap<&str, &str> = BTreeMap::new();
    for pair in args.chunks(2) {
        match pair {
            [k, v] if k.starts_with("--") => {
                values.insert(k, v);
            }
            _ => bail!("{LOAD_USAGE}"),
        }
    }
    let get = |k: &str| values.get(k).copied().with_context(|| LOAD_USAGE);
    let number = |k: &str| -> Result<u64> { get(k)?.parse().with_context(|| k.to_owned()) };
    let config = LoadConfig {
        proto: Proto::parse(get("--proto")?)?,
        addr: get("--addr")?.parse().context("--addr")?,
        app: values.get("--app").unwrap_or(&APP).to_string(),
        tc_url: values.get("--tc-url").unwrap_or(&"").to_string(),
        name: values.get("--name").unwrap_or(&"").to_string(),
        path: values.get("--path").unwrap_or(&"").to_string(),
    };
    if !config.addr.ip().is_loopback() {
        bail!(
            "the load generator only targets loopback addresses, not {}",
            config.addr
        );
    }
    if let Some(targets) = values.get("--first-frames") {
        // One player per target, one after the other: the name (RTMP) or
        // path (HTTP-FLV) of each, comma-separated.
        let targets: Vec<String> = targets.split(',').map(str::to_owned).collect();
        exit_when_stdin_closes();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let report = runtime.block_on(first_frames(&config, &targets));
        println!(
            "{}",
            serde_json::to_string(&report).context("cannot encode the report")?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let players = usize::try_from(number("--players")?.clamp(1, 20_000))?;
    let warmup = Duration::from_secs(number("--warmup")?);
    let window = Duration::from_secs(number("--window")?);
    exit_when_stdin_closes();
    // One thread: the client is pinned to one CPU.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let streams = values
        .get("--streams")
        .map_or(Ok(1), |v| v.parse::<usize>())
        .context("--streams")?
        .clamp(1, 10_000);
    let configs = stream_configs(&config, streams);
    let churn = Duration::from_secs(
        values
            .get("--churn")
            .map_or(Ok(0), |v| v.parse())
            .context("--churn")?,
    );
    let report = runtime.block_on(run_load(configs, players, warmup, window, churn))?;
    println!(
        "{}",
        serde_json::to_string(&report).context("cannot encode the report")?
    );
    Ok(ExitCode::SUCCESS)
}

/// The target of each of `streams` streams: the one named as is, or (the
/// light publisher's) `bench0`, `bench1`, … in its place.
fn stream_configs(config: &LoadConfig, streams: usize) -> Vec<Arc<LoadConfig>> {
    if streams == 1 {
        return vec![Arc::new(config.clone())];
    }
    (0..streams)
        .map(|k| {
            let mut c = config.clone();
            c.name = c.name.replacen(STREAM, &format!("{STREAM}{k}"), 1);
            c.path = c
                .path
                .replacen(&format!("/{STREAM}"), &format!("/{STREAM}{k}"), 1);
            Arc::new(c)
        })
        .collect()
}

/// Plays with `players` players, player `i` on stream `i % streams`
/// (`configs`, one per stream), after waiting until the first is playable.
/// With `churn`, each player leaves after a session of 0.5–1.5 × `churn`
/// and plays again at once, until the window ends.
async fn run_load(
    configs: Vec<Arc<LoadConfig>>,
    players: usize,
    warmup: Duration,
    window: Duration,
    churn: Duration,
) -> Result<LoadReport> {
    let config = Arc::clone(&configs[0]);
    // Wait until the stream is playable: a player that gets a keyframe.
    let probe_began = tokio::time::Instant::now();
    let probe_deadline = probe_began + PROBE_TIMEOUT;
    let mut last_error = String::new();
    loop {
        if tokio::time::Instant::now() > probe_deadline {
            bail!(
                "the stream was not playable within {} s: {last_error}",
                PROBE_TIMEOUT.as_secs()
            );
        }
        let far = tokio::time::Instant::now() + Duration::from_secs(3600);
        let mut counter = Counter::new(Window {
            start: far,
            end: far,
        });
        counter.stop_at_first_frame = true;
        let attempt = tokio::time::timeout(
            Duration::from_secs(5),
            play(
                &config,
                &mut counter,
                tokio::time::Instant::now() + PROBE_TIMEOUT,
            ),
        )
        .await;
        match attempt {
            Ok(Ok(())) if counter.first_frame.is_some() => break,
            Ok(Ok(())) => last_error = "ended without a keyframe".to_owned(),
            Ok(Err(e)) => last_error = format!("{e:#}"),
            Err(_) => last_error = "no keyframe within 5 s".to_owned(),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let probe_ms = probe_began.elapsed().as_secs_f64() * 1000.0;
    println!("probe-ok {probe_ms:.0}");

    let begin = tokio::time::Instant::now();
    let window = Window {
        start: begin + warmup,
        end: begin + warmup + window,
    };
    let marker = tokio::spawn(async move {
        tokio::time::sleep_until(window.start).await;
        println!("measure-start");
        tokio::time::sleep_until(window.end).await;
        println!("measure-end");
    });
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..players {
        let config = Arc::clone(&configs[i % configs.len()]);
        let at = begin + RAMP.mul_f64(i as f64 / players as f64);
        tasks.spawn(async move {
            tokio::time::sleep_until(at).await;
            let mut counter = Counter::new(window);
            let mut outcome = play(&config, &mut counter, session_end(i, 0, churn, window)).await;
            let mut session = 1;
            while outcome.is_ok() && !churn.is_zero() && tokio::time::Instant::now() < window.end {
                counter.record.reconnects += 1;
                outcome = play(
                    &config,
                    &mut counter,
                    session_end(i, session, churn, window),
                )
                .await;
                session += 1;
            }
            let mut record = counter.finish();
            record.error = match outcome {
                Ok(()) if tokio::time::Instant::now() >= window.end => None,
                Ok(()) => Some("ended early".to_owned()),
                Err(e) => Some(format!("{e:#}")),
            };
            (i, record)
        });
    }
    let mut records = vec![PlayerRecord::default(); players];
    while let Some(joined) = tasks.join_next().await {
        let (i, record) = joined.context("a player task panicked")?;
        records[i] = record;
    }
    marker.await.context("the marker task panicked")?;
    Ok(LoadReport {
        window_secs: window.end.duration_since(window.start).as_secs_f64(),
        probe_ms,
        players: records,
        aggregate: false,
    })
}

/// When session `session` of player `i` ends: the window's end, or with
/// `churn` after 0.5–1.5 × `churn` (spread by a hash of both).
fn session_end(i: usize, session: u32, churn: Duration, window: Window) -> tokio::time::Instant {
    if churn.is_zero() {
        return window.end;
    }
    let spread = (i as u64).wrapping_mul(7919) ^ u64::from(session).wrapping_mul(104_729);
    let share = 0.5 + (spread % 1000) as f64 / 1000.0;
    (tokio::time::Instant::now() + churn.mul_f64(share)).min(window.end)
}

/// How long a player of a target waits for its first keyframe.
const FIRST_FRAME_LIMIT: Duration = Duration::from_secs(5);

/// The first frame of one player of a target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FirstFrame {
    pub(crate) target: String,
    /// Connect to the first video keyframe, ms.
    pub(crate) ms: Option<f64>,
    pub(crate) error: Option<String>,
}

/// The `--first-frames` report (JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FirstFrames {
    pub(crate) first_frames: Vec<FirstFrame>,
}

/// Plays each of `targets` in turn until its first keyframe (at most
/// [`FIRST_FRAME_LIMIT`]), one player at a time so that they do not
/// slow each other down.
async fn first_frames(config: &LoadConfig, targets: &[String]) -> FirstFrames {
    let mut out = Vec::with_capacity(targets.len());
    for target in targets {
        let mut config = config.clone();
        match config.proto {
            Proto::Rtmp => config.name.clone_from(target),
            Proto::Flv | Proto::Webrtc => config.path.clone_from(target),
        }
        let far = tokio::time::Instant::now() + Duration::from_secs(3600);
        let mut counter = Counter::new(Window {
            start: far,
            end: far,
        });
        counter.stop_at_first_frame = true;
        let until = tokio::time::Instant::now() + FIRST_FRAME_LIMIT;
        let outcome = play(&config, &mut counter, until).await;
        let ms = counter.first_frame.map(|d| d.as_secs_f64() * 1000.0);
        let error = match (outcome, ms) {
            (_, Some(_)) => None,
            (Ok(()), None) => Some(format!(
                "no keyframe within {} s",
                FIRST_FRAME_LIMIT.as_secs()
            )),
            (Err(e), None) => Some(format!("{e:#}")),
        };
        out.push(FirstFrame {
            target: target.clone(),
            ms,
            error,
        });
    }
    FirstFrames { first_frames: out }
}

/// A player's counts, kept per read (not per tag) where that suffices.
struct Counter {
    window: Window,
    began: tokio::time::Instant,
    first_frame: Option<Duration>,
    last_tag: Option<tokio::time::Instant>,
    max_gap: Duration,
    record: PlayerRecord,
    stop_at_first_frame: bool,
}

impl Counter {
    fn new(window: Window) -> Counter {
        Counter {
            window,
            began: tokio::time::Instant::now(),
            first_frame: None,
            last_tag: None,
            max_gap: Duration::ZERO,
            record: PlayerRecord::default(),
            stop_at_first_frame: false,
        }
    }

    fn in_window(&self, now: tokio::time::Instant) -> bool {
        now >= self.window.start && now < self.window.end
    }

    fn bytes(&mut self, n: usize, now: tokio::time::Instant) {
        if self.in_window(now) {
            self.record.bytes += n as u64;
        }
    }

    fn tag(&mut self, kind: TagKind, body: &[u8], now: tokio::time::Instant) {
        let keyframe = kind == TagKind::Video
            && VideoInfo::parse(body).is_ok_and(|v| v.is_keyframe() && !v.is_sequence_header());
        self.media(kind, body.len(), keyframe, now);
    }

    /// One unit of media (an FLV tag, or a WebRTC access unit or audio
    /// frame) of `len` payload bytes.
    fn media(&mut self, kind: TagKind, len: usize, keyframe: bool, now: tokio::time::Instant) {
        if keyframe && self.first_frame.is_none() {
            self.first_frame = Some(now.duration_since(self.began));
        }
        if kind == TagKind::Script {
            return;
        }
        if self.in_window(now) {
            let prev = self
                .last_tag
                .map_or(self.window.start, |t| t.max(self.window.start));
            self.max_gap = self.max_gap.max(now.duration_since(prev));
            self.record.payload += len as u64;
            match kind {
                TagKind::Audio => self.record.audio += 1,
                _ => self.record.video += 1,
            }
            if keyframe {
                self.record.keyframes += 1;
            }
        }
        self.last_tag = Some(now);
    }

    fn done(&self) -> bool {
        self.stop_at_first_frame && self.first_frame.is_some()
    }

    fn finish(mut self) -> PlayerRecord {
        let now = tokio::time::Instant::now();
        if now >= self.window.end {
            let prev = self
                .last_tag
                .map_or(self.window.start, |t| t.max(self.window.start));
            self.max_gap = self
                .max_gap
                .max(self.window.end.saturating_duration_since(prev));
        }
        self.record.max_gap_ms = self.max_gap.as_secs_f64() * 1000.0;
        self.record.first_frame_ms = self.first_frame.map(|d| d.as_secs_f64() * 1000.0);
        self.record
    }
}

/// Plays until `until`, counting into `counter`; `Ok` when it ran to
/// `until` (or to the counter's stop condition).
async fn play(
    config: &LoadConfig,
    counter: &mut Counter,
    until: tokio::time::Instant,
) -> Result<()> {
    counter.began = tokio::time::Instant::now();
    if config.proto == Proto::Webrtc {
        return webrtc::play(config.addr, &config.path, counter, until).await;
    }
    let deadline = tokio::time::sleep_until(until);
    tokio::pin!(deadline);
    let mut stream = tokio::select! {
        r = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(config.addr)) => {
            r.context("connect timed out")?.context("connect failed")?
        }
        () = &mut deadline => return Ok(()),
    };
    stream.set_nodelay(true).context("cannot set TCP_NODELAY")?;
    let mut buf = vec![0u8; READ_BUF];
    match config.proto {
        Proto::Webrtc => bail!("WebRTC players play over UDP (webrtc::play)"),
        Proto::Rtmp => {
            let mut session = ClientSession::new(ClientConfig::new(&config.app, &config.tc_url));
            session.play(&config.name);
            loop {
                while let Some(out) = session.take_output() {
                    stream.write_all(&out).await.context("write failed")?;
                }
                if counter.done() {
                    return Ok(());
                }
                let n = tokio::select! {
                    r = stream.read(&mut buf) => r.context("read failed")?,
                    () = &mut deadline => return Ok(()),
                };
                if n == 0 {
                    bail!("closed by the server");
                }
                let now = tokio::time::Instant::now();
                counter.bytes(n, now);
                session
                    .feed(&buf[..n])
                    .map_err(|e| anyhow!("RTMP error: {e}"))?;
                while let Some(event) = session.poll_event() {
                    match event {
                        ClientEvent::Video { payload, .. } => {
                            counter.tag(TagKind::Video, &payload, now);
                        }
                        ClientEvent::Audio { payload, .. } => {
                            counter.tag(TagKind::Audio, &payload, now);
                        }
                        ClientEvent::Status { level, code, .. } if level == "error" => {
                            bail!("play failed: {code}");
                        }
                        ClientEvent::CommandFailed { command, code, .. } => {
                            bail!("{command} failed: {code}");
                        }
                        ClientEvent::StreamEof { .. } => bail!("StreamEOF"),
                        _ => {}
                    }
                }
            }
        }
        Proto::Flv => {
            let request = format!(
                "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: livestack-bench-media\r\n\
                 Accept: */*\r\n\r\n",
                config.path, config.addr
            );
            stream
                .write_all(request.as_bytes())
                .await
                .context("write failed")?;
            let mut head: Vec<u8> = Vec::new();
            let mut in_body = false;
            let mut reader = FlvReader::new();
            // SRS answers HTTP-FLV chunked; livestack and nginx-rtmp do not.
            let mut chunked: Option<Dechunk> = None;
            let mut body = Vec::new();
            loop {
                let n = tokio::select! {
                    r = stream.read(&mut buf) => r.context("read failed")?,
                    () = &mut deadline => return Ok(()),
                };
                if n == 0 {
                    bail!("closed by the server");
                }
                let now = tokio::time::Instant::now();
                counter.bytes(n, now);
                if in_body {
                    match &mut chunked {
                        Some(d) => {
                            body.clear();
                            d.push(&buf[..n], &mut body)?;
                            reader.push(&body);
                        }
                        None => reader.push(&buf[..n]),
                    }
                } else {
                    head.extend_from_slice(&buf[..n]);
                    let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
                        if head.len() > 16 * 1024 {
                            bail!("response head too large");
                        }
                        continue;
                    };
                    let status_line = head.split(|&b| b == b'\r').next().unwrap_or(&[]);
                    if !status_line.starts_with(b"HTTP/1.1 200")
                        && !status_line.starts_with(b"HTTP/1.0 200")
                    {
                        bail!("HTTP answer {}", String::from_utf8_lossy(status_line));
                    }
                    let fields = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
                    if fields
                        .lines()
                        .any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"))
                    {
                        let mut d = Dechunk::default();
                        d.push(&head[end + 4..], &mut body)?;
                        reader.push(&body);
                        chunked = Some(d);
                    } else {
                        reader.push(&head[end + 4..]);
                    }
                    head = Vec::new();
                    in_body = true;
                }
                while let Some(tag) = reader.next_tag().context("bad FLV")? {
                    counter.tag(tag.kind, &tag.payload, now);
                }
                if counter.done() {
                    return Ok(());
                }
            }
        }
    }
}

/// Undoes HTTP/1.1 chunked transfer coding as bytes arrive.
#[derive(Debug, Default)]
struct Dechunk {
    /// Data bytes left in the current chunk.
    left: usize,
    /// The size line being read (hex digits, extensions, CR).
    line: Vec<u8>,
    /// The CRLF after a chunk's data is still to skip (bytes of it left).
    crlf: usize,
    ended: bool,
}

impl Dechunk {
    /// Appends the data in `input` to `out`.
    fn push(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        while !input.is_empty() && !self.ended {
            if self.crlf > 0 {
                let n = self.crlf.min(input.len());
                self.crlf -= n;
                input = &input[n..];
            } else if self.left > 0 {
                let n = self.left.min(input.len());
                out.extend_from_slice(&input[..n]);
                self.left -= n;
                input = &input[n..];
                if self.left == 0 {
                    self.crlf = 2;
                }
            } else {
                let Some(nl) = input.iter().position(|&b| b == b'\n') else {
                    self.line.extend_from_slice(input);
                    if self.line.len() > 1024 {
                        bail!("chunk size line too long");
                    }
                    return Ok(());
                };
                self.line.extend_from_slice(&input[..nl]);
                input = &input[nl + 1..];
                let text = String::from_utf8_lossy(&self.line).into_owned();
                self.line.clear();
                let hex = text.split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(hex, 16)
                    .with_context(|| format!("bad chunk size line {text:?}"))?;
                if size == 0 {
                    self.ended = true;
                }
                self.left = size;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn players_of_many_streams_play_the_light_publishers_names_and_one_stream_keeps_its_own() {
        let config = LoadConfig {
            proto: Proto::Flv,
            addr: ([127, 0, 0, 1], 1).into(),
            app: APP.to_owned(),
            tc_url: "rtmp://127.0.0.1:1/live".to_owned(),
            name: format!("{STREAM}?domain={PLAY_DOMAIN}"),
            path: format!("/{APP}/{STREAM}.flv?domain={PLAY_DOMAIN}"),
        };
        let one = stream_configs(&config, 1);
        assert_eq!((one.len(), one[0].name.as_str()), (1, config.name.as_str()));
        let many = stream_configs(&config, 3);
        assert_eq!(many[2].name, format!("{STREAM}2?domain={PLAY_DOMAIN}"));
        assert_eq!(
            many[1].path,
            format!("/{APP}/{STREAM}1.flv?domain={PLAY_DOMAIN}")
        );
    }

    #[test]
    fn sb_reports_are_read_for_alive_players_bytes_and_restarts() {
        let line = "[2026-12-07 04:20:01.123] [report] [4321] threads:2000 alive:1998 \
                    duration:12 tduration:0 nread:1750.25 nwrite:0.10 tasks:2003 etasks:3 \
                    stasks:0 estasks:0";
        let r = SbReport::parse(line).expect("a report");
        assert_eq!(
            r,
            SbReport {
                alive: 1998,
                duration: 12.0,
                nread_mbps: 1750.25,
                error_tasks: 3
            }
        );
        assert!((r.megabits() - 21003.0).abs() < 1e-6);
        assert_eq!(
            SbReport::parse("[x] params url=rtmp://a/b, threads=1"),
            None
        );
    }

    #[test]
    fn chunked_bodies_are_undone_whatever_the_reads_split() {
        let wire = b"4\r\nFLV\x01\r\na;ext=1\r\n0123456789\r\n0\r\n\r\n";
        for split in 1..wire.len() {
            let mut d = Dechunk::default();
            let mut out = Vec::new();
            for part in wire.chunks(split) {
                d.push(part, &mut out).expect("valid");
            }
            assert_eq!(out, b"FLV\x010123456789", "split {split}");
        }
        assert!(Dechunk::default().push(b"zz\r\n", &mut Vec::new()).is_err());
    }

    #[test]
    fn options_parse_with_defaults_and_lists() {
        let o = parse_options(&[]).expect("defaults");
        assert_eq!(o.players, vec![1000, 2000]);
        assert_eq!((o.warmup, o.window, o.build), (10, 20, true));
        assert_eq!(o.protos, vec![Proto::Rtmp, Proto::Flv]);
        assert_eq!(o.servers, vec![ServerKind::Livestack, ServerKind::Nginx]);
        let o = parse_options(&[
            "--players=10,20",
            "--proto",
            "flv",
            "--servers",
            "livestack",
            "--no-build",
            "--merge-write-ms",
            "50",
        ])
        .expect("ok");
        assert_eq!(o.players, vec![10, 20]);
        assert_eq!(o.protos, vec![Proto::Flv]);
        assert_eq!(o.servers, vec![ServerKind::Livestack]);
        assert_eq!((o.build, o.merge_write_ms), (false, Some(50)));
        assert!(parse_options(&["--players", "0"]).is_err());
        assert!(parse_options(&["--proto", "hls"]).is_err());
        assert!(parse_options(&["--bogus"]).is_err());
    }

    #[test]
    fn quantiles_pick_ranks() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert!(quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn the_nginx_config_has_the_rtmp_application() {
        let c = nginx_config(
            Path::new("/usr/lib/nginx/modules/ngx_rtmp_module.so"),
            Path::new("/tmp/x"),
            19350,
            20000,
            2000,
        );
        assert!(c.starts_with("load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n"));
        assert!(c.contains("listen 127.0.0.1:19350;"));
        assert!(c.contains("application live { live on; }"));
        assert!(c.contains("worker_connections 10000;"));
        assert!(c.contains("worker_rlimit_nofile 20000;"));
    }
}
