//! `cargo xtask bench-api`: throughput of TC3-signed `DescribeLiveDomains`
//! requests against livestack, next to a bare hyper server answering a
//! fixed body of the same shape, on the same machine and in the same run.
//!
//! Three processes take part in every measurement:
//! - the server under test (`livestack serve` or the hidden
//!   `xtask bare-server`), started fresh, pinned to one CPU;
//! - the load generator (the hidden `xtask load`), pinned to another CPU:
//!   one tokio thread driving N keep-alive HTTP/1.1 connections over raw
//!   sockets, one request in flight per connection, each request properly
//!   signed (re-signed when the Unix second changes);
//! - this orchestrator, which starts both, samples the server's CPU time
//!   from `/proc/PID/stat` when the load generator says the measured
//!   window opens and closes, and kills everything afterwards (children are
//!   killed on drop, on error and on Ctrl-C/SIGTERM; they are started under
//!   `setpriv --pdeathsig KILL` where available, and the helper processes
//!   also exit when their stdin, held by the orchestrator, closes).
//!
//! Everything stays on 127.0.0.1 and every run is bounded in time.
//!
//! The bare server and the load generator must be optimised builds, so the
//! orchestrator builds `xtask` in release mode too and runs them from
//! `<target>/release/xtask`, whatever profile `cargo xtask` itself runs in.

use std::borrow::Cow;
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context as _, Result};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use livestack_api::auth::tc3;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// The root key livestack is started with (`LIVESTACK_SECRET_ID`/`_KEY`).
const SECRET_ID: &str = "AKIDbench0000000000000000000000000000";
const SECRET_KEY: &str = "benchsecretbenchsecretbenchsecre";
const ACTION: &str = "DescribeLiveDomains";
const API_VERSION: &str = "2018-08-01";
const SERVICE: &str = "live";
const REQUEST_CONTENT_TYPE: &str = "application/json";
const REQUEST_BODY: &str = "{}";

/// What the bare server answers: livestack's answer to `DescribeLiveDomains`
/// on an empty data directory, byte for byte the same length (the RequestId
/// is a fixed UUID instead of a fresh one).
const BARE_BODY: &str = r#"{"Response":{"AllCount":0,"CreateLimitCount":100,"DomainList":[],"PlayTypeCount":[0,0,0],"RequestId":"00000000-0000-4000-8000-000000000000"}}"#;

/// Load before the measured window: connections are opened, caches and
/// allocators settle, the server's runtime spins up.
const WARMUP: Duration = Duration::from_secs(1);
/// How long a request in flight when the window closes may still take.
const DRAIN: Duration = Duration::from_secs(2);
/// How long a server may take to print its address.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// The target: livestack at least 0.7 of the bare server's rate (issue
/// 17; it was half before).
const TARGET_RATIO: f64 = 0.7;

const USAGE: &str = "usage: cargo xtask bench-api [--duration SECS] [--connections N] \
[--rounds R] [--livestack PATH] [--database-url postgres://...] [--no-build]";

// ---------------------------------------------------------------------------
// Options.

struct Options {
    /// Seconds of each measured window.
    duration: u64,
    /// Concurrent keep-alive connections.
    connections: usize,
    /// How many times each server is measured.
    rounds: usize,
    /// The livestack binary; `None` means `<target>/release/livestack`.
    livestack: Option<PathBuf>,
    /// Run `cargo build --release -p livestack` (and `-p xtask`) first.
    build: bool,
    /// A PostgreSQL server: livestack is measured a second time with its
    /// store there (a fresh database each run), beside the SQLite run.
    database_url: Option<String>,
}

fn parse_options(args: &[&str]) -> Result<Options> {
    let mut opts = Options {
        duration: 10,
        connections: 32,
        rounds: 2,
        livestack: None,
        build: true,
        database_url: None,
    };
    let parsed = crate::cli::parse(args, USAGE)?;
    opts.build = parsed.build;
    for crate::cli::Opt { arg, name, value } in parsed.options {
        let number = |what: &str| -> Result<u64> {
            value
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .with_context(|| format!("{what} must be a positive integer, not {value:?}"))
        };
        match name {
            "--duration" => opts.duration = number("--duration")?.min(3600),
            "--connections" => {
                opts.connections = usize::try_from(number("--connections")?.min(10_000))?;
            }
            "--rounds" => opts.rounds = usize::try_from(number("--rounds")?.min(100))?,
            "--livestack" => opts.livestack = Some(PathBuf::from(value)),
            "--database-url" => opts.database_url = Some(value.to_owned()),
            _ => bail!("unknown option {arg:?}\n{USAGE}"),
        }
    }
    Ok(opts)
}

// ---------------------------------------------------------------------------
// The orchestrator.

/// Which server a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Bare,
    Livestack,
    /// livestack with its store on PostgreSQL (`--database-url`).
    LivestackPg,
    /// The bare server again, its load paced to livestack's rate in the
    /// same round. A loopback server's CPU per request depends on its
    /// rate: the kernel's delivery of each answer wakes the load
    /// generator, which costs the sender far more when the generator sits
    /// idle between answers (as it does against a slower server) than
    /// when it is busy. At equal rates the two pay the same wake-ups.
    BarePaced,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::Bare => "bare",
            Server::Livestack => "livestack",
            Server::LivestackPg => "ls-pg",
            Server::BarePaced => "bare@ls",
        }
    }
}

/// Where the processes run.
struct Pinning {
    /// CPU of the server under test, `None` when unpinned.
    server: Option<usize>,
    /// CPU of the load generator, `None` when unpinned.
    client: Option<usize>,
    /// One line for the report.
    note: String,
}

/// Everything a run needs to start its processes.
struct Env {
    livestack: PathBuf,
    /// The optimised xtask binary that serves `bare-server` and `load`.
    helper: PathBuf,
    pinning: Pinning,
    /// `sysconf(_SC_CLK_TCK)`: the unit of utime/stime in /proc/PID/stat.
    clock_ticks: f64,
    /// `setpriv --pdeathsig` is available: children get SIGKILL when this
    /// process dies, even by SIGKILL.
    pdeathsig: bool,
}

/// `cargo xtask bench-api …`.
pub(crate) fn bench_api(root: &Path, args: &[&str]) -> Result<ExitCode> {
    let opts = parse_options(args)?;
    let (target_dir, livestack) = binaries(root, opts.build, opts.livestack.as_deref())?;
    let env = Env {
        livestack,
        helper: helper_binary(&target_dir)?,
        pinning: detect_pinning(),
        clock_ticks: clock_ticks(),
        pdeathsig: has_pdeathsig(),
    };

    until_interrupted(run_bench(&opts, &env), "servers")?;
    Ok(ExitCode::SUCCESS)
}

/// The target directory and the livestack binary a benchmark runs: both
/// release binaries built first when `build_first` (`--no-build` not
/// given); `given` (`--livestack`), else the release build; refused when
/// it is not there.
pub(crate) fn binaries(
    root: &Path,
    build_first: bool,
    given: Option<&Path>,
) -> Result<(PathBuf, PathBuf)> {
    let target_dir = crate::bench_media::target_dir(root)?;
    if build_first {
        build(root, &target_dir)?;
    }
    let livestack = given.map_or_else(
        || target_dir.join("release").join("livestack"),
        Path::to_path_buf,
    );
    if !livestack.is_file() {
        bail!(
            "no livestack binary at {} (build it with `cargo build --release -p livestack`, \
             or point --livestack at it)",
            livestack.display()
        );
    }
    Ok((target_dir, livestack))
}

/// Runs a benchmark on a one-thread runtime until it ends, or until
/// SIGINT/SIGTERM: dropping the benchmark's future stops its children
/// (`what`, named in the error).
pub(crate) fn until_interrupted(
    work: impl std::future::Future<Output = Result<()>>,
    what: &str,
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        tokio::select! {
            result = work => result,
            signal = interrupted() => Err(anyhow!("interrupted by {signal}; {what} stopped")),
        }
    })
}

/// Builds livestack exactly as a user would (its own cargo invocation, so
/// the features xtask asks of shared dependencies do not leak into it), then
/// the optimised helper.
pub(crate) fn build(root: &Path, target_dir: &Path) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    for package in ["livestack", "xtask"] {
        println!("building: cargo build --release -p {package}");
        let status = std::process::Command::new(&cargo)
            .current_dir(root)
            .env("CARGO_TARGET_DIR", target_dir)
            .args(["build", "--release", "-p", package])
            .status()
            .context("cannot run cargo")?;
        if !status.success() {
            bail!("cargo build --release -p {package} failed ({status})");
        }
    }
    Ok(())
}

/// The binary that runs `bare-server` and `load`: this one when it is
/// optimised, else the release build next to it.
fn helper_binary(target_dir: &Path) -> Result<PathBuf> {
    if !cfg!(debug_assertions) {
        return std::env::current_exe().context("cannot find the running xtask binary");
    }
    let release = target_dir.join("release").join("xtask");
    if release.is_file() {
        Ok(release)
    } else {
        bail!(
            "the bare server and the load generator must be optimised, but {} does not exist \
             (run without --no-build, or `cargo build --release -p xtask`)",
            release.display()
        )
    }
}

/// The CPUs this process may run on, from `Cpus_allowed_list`.
pub(crate) fn allowed_cpus() -> Vec<usize> {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return Vec::new();
    };
    let Some(list) = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
    else {
        return Vec::new();
    };
    let mut cpus = Vec::new();
    for part in list.trim().split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(lo), Ok(hi)) = (lo.trim().parse::<usize>(), hi.trim().parse::<usize>()) {
            cpus.extend(lo..=hi);
        }
    }
    cpus
}

fn detect_pinning() -> Pinning {
    let unpinned = |why: String| Pinning {
        server: None,
        client: None,
        note: format!("UNPINNED ({why}): server and load generator share the CPUs"),
    };
    let has_taskset = std::process::Command::new("taskset")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_taskset {
        return unpinned("taskset not found".to_owned());
    }
    let cpus = allowed_cpus();
    match cpus.as_slice() {
        [server, client, ..] => Pinning {
            server: Some(*server),
            client: Some(*client),
            note: format!(
                "server on CPU {server}, load generator on CPU {client} (taskset -c); \
                 {} CPU(s) allowed",
                cpus.len()
            ),
        },
        _ => unpinned(format!("{} CPU(s) available, 2 needed", cpus.len())),
    }
}

pub(crate) fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// `program`, through `taskset -c CPU` when pinned, and through
/// `setpriv --pdeathsig KILL` when available (both exec the next program,
/// so the child's PID is the program's).
fn pinned(env: &Env, cpu: Option<usize>, program: &Path) -> Command {
    let mut argv: Vec<std::ffi::OsString> = Vec::new();
    if env.pdeathsig {
        argv.extend(["setpriv", "--pdeathsig", "KILL", "--"].map(Into::into));
    }
    if let Some(cpu) = cpu {
        argv.extend(["taskset".into(), "-c".into(), cpu.to_string().into()]);
    }
    argv.push(program.as_os_str().to_owned());
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    cmd
}

fn has_pdeathsig() -> bool {
    std::process::Command::new("setpriv")
        .args(["--pdeathsig", "KILL", "--", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub(crate) async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    async fn recv(kind: SignalKind) {
        match signal(kind) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        () = recv(SignalKind::terminate()) => "SIGTERM",
        () = recv(SignalKind::hangup()) => "SIGHUP",
    }
}

/// One measurement of one server.
#[derive(Debug, Clone)]
struct RunResult {
    server: Server,
    report: LoadReport,
    /// Wall time between the window's start and end markers, seconds.
    wall: f64,
    /// Server CPU seconds (user + system) in the window.
    server_cpu: Option<f64>,
    /// Load generator CPU seconds in the window.
    client_cpu: Option<f64>,
    /// CPU seconds other processes used on the server's CPU in the window
    /// (its busy time minus the server's); `None` when unpinned.
    others_cpu: Option<f64>,
}

impl RunResult {
    fn rps(&self) -> f64 {
        self.report.ok as f64 / self.report.secs
    }

    /// Server CPU milliseconds per 1000 successful requests.
    fn cpu_ms_per_1k(&self) -> Option<f64> {
        let cpu = self.server_cpu?;
        (self.report.ok > 0).then(|| cpu * 1e6 / self.report.ok as f64)
    }

    /// Other processes used more than a tenth of the server's CPU.
    fn disturbed(&self) -> bool {
        self.others_cpu.is_some_and(|c| c > 0.1 * self.wall)
    }

    fn percent(cpu: Option<f64>, wall: f64) -> String {
        cpu.filter(|_| wall > 0.0)
            .map_or("?".to_owned(), |c| format!("{:.0}%", c / wall * 100.0))
    }
}

async fn run_bench(opts: &Options, env: &Env) -> Result<()> {
    println!();
    println!("bench-api: signed {ACTION} (TC3-HMAC-SHA256, HTTP/1.1 keep-alive)");
    println!("  machine:     {}", machine());
    println!("  pinning:     {}", env.pinning.note);
    println!(
        "  load:        {} connections, 1 request in flight each, {} s warm-up + {} s measured, {} round(s)",
        opts.connections,
        WARMUP.as_secs(),
        opts.duration,
        opts.rounds
    );
    println!("  livestack:   {}", env.livestack.display());
    println!("  helper:      {}", env.helper.display());
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("  loadavg:     {} (before start)", load.trim());
    }

    let mut results: Vec<RunResult> = Vec::new();
    for round in 1..=opts.rounds {
        let mut this_round = Vec::new();
        let mut servers = vec![Server::Bare, Server::Livestack];
        if opts.database_url.is_some() {
            servers.push(Server::LivestackPg);
        }
        servers.push(Server::BarePaced);
        for server in servers {
            // bare@ls runs last, at the rate livestack reached this round.
            let rate = (server == Server::BarePaced)
                .then(|| run_of(&this_round, Server::Livestack).map(RunResult::rps))
                .flatten();
            let result = run_once(server, rate, opts, env)
                .await
                .with_context(|| format!("round {round}: measuring {}", server.name()))?;
            this_round.push(result);
        }
        println!();
        println!("round {round}/{}", opts.rounds);
        print_table(&this_round);
        let run = |server| run_of(&this_round, server);
        if let (Some(bare), Some(ls)) = (run(Server::Bare), run(Server::Livestack)) {
            if bare.rps() > 0.0 {
                println!("  ratio livestack/bare: {:.3}", ls.rps() / bare.rps());
            }
            let paced = run(Server::BarePaced).and_then(RunResult::cpu_ms_per_1k);
            if let (Some(b), Some(l)) = (paced, ls.cpu_ms_per_1k()) {
                println!(
                    "  CPU-cost ratio at livestack's rate (bare@ls / livestack): {:.3}",
                    b / l
                );
            }
            if let Some(pg) = run(Server::LivestackPg) {
                if ls.rps() > 0.0 {
                    println!("  ratio PostgreSQL/SQLite: {:.3}", pg.rps() / ls.rps());
                }
            }
        }
        results.extend(this_round);
    }
    print_summary(opts, env, &results);
    Ok(())
}

/// The run of `server` among `runs`.
fn run_of(runs: &[RunResult], server: Server) -> Option<&RunResult> {
    runs.iter().find(|r| r.server == server)
}

fn print_table(rows: &[RunResult]) {
    println!(
        "  {:<10} {:>10} {:>9} {:>9} {:>7} {:>14} {:>8} {:>9} {:>7}",
        "server", "req/s", "p50", "p99", "errors", "CPU ms/1k req", "srv CPU", "load CPU", "others"
    );
    for r in rows {
        println!(
            "  {:<10} {:>10.0} {:>9} {:>9} {:>7} {:>14} {:>8} {:>9} {:>7}",
            r.server.name(),
            r.rps(),
            fmt_us(r.report.p50_us),
            fmt_us(r.report.p99_us),
            r.report.errors,
            r.cpu_ms_per_1k()
                .map_or("?".to_owned(), |c| format!("{c:.2}")),
            RunResult::percent(r.server_cpu, r.wall),
            RunResult::percent(r.client_cpu, r.wall),
            r.others_cpu
                .map_or("-".to_owned(), |_| RunResult::percent(r.others_cpu, r.wall)),
        );
        if let Some(e) = &r.report.first_error {
            println!("    first error: {e}");
        }
    }
    if rows.iter().any(RunResult::disturbed) {
        println!(
            "  NOTE: other processes used more than 10% of the server's CPU (\"others\"); \
             this round is disturbed"
        );
    }
}

fn fmt_us(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2}ms", us / 1000.0)
    } else {
        format!("{us:.0}µs")
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    // The middle element, or the mean of the two middle ones.
    let n = values.len();
    (values[(n - 1) / 2] + values[n / 2]) / 2.0
}

/// Medians over the rounds for one server.
struct Summary {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    errors: u64,
    cpu_ms_per_1k: f64,
}

fn summarize(results: &[RunResult], server: Server) -> Summary {
    let runs: Vec<&RunResult> = results.iter().filter(|r| r.server == server).collect();
    Summary {
        rps: median(runs.iter().map(|r| r.rps()).collect()),
        p50_us: median(runs.iter().map(|r| r.report.p50_us).collect()),
        p99_us: median(runs.iter().map(|r| r.report.p99_us).collect()),
        errors: runs.iter().map(|r| r.report.errors).sum(),
        cpu_ms_per_1k: median(runs.iter().filter_map(|r| r.cpu_ms_per_1k()).collect()),
    }
}

fn print_summary(opts: &Options, env: &Env, results: &[RunResult]) {
    let bare = summarize(results, Server::Bare);
    let ls = summarize(results, Server::Livestack);
    let paced = summarize(results, Server::BarePaced);
    let ratio = ls.rps / bare.rps;
    println!();
    println!(
        "result: median of {} round(s), {} connections, {} s each",
        opts.rounds, opts.connections, opts.duration
    );
    println!(
        "  {:<10} {:>10} {:>9} {:>9} {:>7} {:>14}",
        "server", "req/s", "p50", "p99", "errors", "CPU ms/1k req"
    );
    let pg = opts
        .database_url
        .is_some()
        .then(|| summarize(results, Server::LivestackPg));
    let mut rows = vec![("bare", &bare), ("livestack", &ls), ("bare@ls", &paced)];
    if let Some(pg) = &pg {
        rows.push(("ls-pg", pg));
    }
    for (name, s) in rows {
        println!(
            "  {:<10} {:>10.0} {:>9} {:>9} {:>7} {:>14.2}",
            name,
            s.rps,
            fmt_us(s.p50_us),
            fmt_us(s.p99_us),
            s.errors,
            s.cpu_ms_per_1k
        );
    }
    let disturbed = results.iter().filter(|r| r.disturbed()).count();
    let verdict = if disturbed > 0 {
        "INCONCLUSIVE: disturbed runs"
    } else if ratio >= TARGET_RATIO {
        "target met"
    } else {
        "BELOW TARGET"
    };
    println!("  ratio livestack/bare: {ratio:.3} (target >= {TARGET_RATIO}: {verdict})");
    if let Some(pg) = &pg {
        println!(
            "  ratio PostgreSQL/SQLite (livestack on each): {:.3} req/s, {:.3} CPU per request",
            pg.rps / ls.rps,
            pg.cpu_ms_per_1k / ls.cpu_ms_per_1k
        );
    }
    // Server CPU per request does not depend on how much CPU a server got,
    // so this stays meaningful when the throughput ratio is disturbed.
    println!(
        "  CPU-cost ratio (bare / livestack CPU per request): {:.3}",
        bare.cpu_ms_per_1k / ls.cpu_ms_per_1k
    );
    println!(
        "  CPU-cost ratio at livestack's rate (bare@ls / livestack CPU per request): {:.3}",
        paced.cpu_ms_per_1k / ls.cpu_ms_per_1k
    );
    if bare.errors + ls.errors + paced.errors > 0 {
        println!("  WARNING: some requests failed; see the per-round tables");
    }
    if env.pinning.server.is_none() {
        println!("  WARNING: unpinned run; numbers include contention between client and server");
    }
    if disturbed > 0 {
        println!(
            "  WARNING: {disturbed} of {} runs shared the server's CPU with other processes \
             (\"others\" > 10%), which skews the ratio; rerun on a quiet machine",
            results.len()
        );
    }

    let date = livestack_api::time::utc_date(unix_now());
    let pinning = match (env.pinning.server, env.pinning.client) {
        (Some(s), Some(c)) => format!("srv CPU {s} / load CPU {c}"),
        _ => "unpinned".to_owned(),
    };
    println!();
    println!("markdown:");
    println!(
        "| date | machine | pinning | load | bare req/s | livestack req/s | ratio | \
         bare p50 / p99 | livestack p50 / p99 | CPU ms/1k req bare / livestack | errors |"
    );
    println!("|---|---|---|---|---:|---:|---:|---|---|---|---:|");
    println!(
        "| {date} | {} | {pinning} | {} conns, {} s × {} | {:.0} | {:.0} | **{ratio:.2}**{} | \
         {} / {} | {} / {} | {:.2} / {:.2} | {} |",
        machine(),
        opts.connections,
        opts.duration,
        opts.rounds,
        bare.rps,
        ls.rps,
        if disturbed > 0 { " (disturbed)" } else { "" },
        fmt_us(bare.p50_us),
        fmt_us(bare.p99_us),
        fmt_us(ls.p50_us),
        fmt_us(ls.p99_us),
        bare.cpu_ms_per_1k,
        ls.cpu_ms_per_1k,
        bare.errors + ls.errors,
    );
}

/// `<CPU model>, <n> CPUs`.
fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let n = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {n} CPUs")
}

/// A server process; killed when dropped.
struct RunningServer {
    child: Child,
    pid: u32,
    addr: SocketAddr,
    /// livestack's data directory, removed after the process is gone.
    data_dir: Option<tempfile::TempDir>,
}

impl RunningServer {
    async fn stop(mut self) -> Result<()> {
        // `kill` sends SIGKILL and reaps the process.
        self.child.kill().await.context("cannot kill the server")?;
        if let Some(dir) = self.data_dir.take() {
            dir.close().context("cannot remove the data directory")?;
        }
        Ok(())
    }
}

async fn start_server(server: Server, env: &Env, opts: &Options) -> Result<RunningServer> {
    let (mut cmd, data_dir) = match server {
        Server::Bare | Server::BarePaced => {
            let mut cmd = pinned(env, env.pinning.server, &env.helper);
            cmd.arg("bare-server");
            (cmd, None)
        }
        Server::Livestack | Server::LivestackPg => {
            let dir = tempfile::Builder::new()
                .prefix("livestack-bench-")
                .tempdir()
                .context("cannot create a data directory")?;
            let mut cmd = pinned(env, env.pinning.server, &env.livestack);
            cmd.arg("serve")
                .arg("--data-dir")
                .arg(dir.path())
                .args(["--api-listen", "127.0.0.1:0"])
                // Free ports for the media listeners too: the defaults may
                // be taken by another server on this machine.
                .args(["--rtmp-listen", "127.0.0.1:0"])
                .args(["--http-listen", "127.0.0.1:0"])
                .args(["--https-listen", "127.0.0.1:0"])
                .args(["--rtmps-listen", "127.0.0.1:0"])
                .args(["--srt-listen", "127.0.0.1:0"])
                .args(["--api-rate-limit", "4000000000"])
                .args(["--log", "warn"])
                .env("LIVESTACK_SECRET_ID", SECRET_ID)
                .env("LIVESTACK_SECRET_KEY", SECRET_KEY)
                // `RUST_LOG` would win over --log; a config file could add
                // settings the bare server does not have.
                .env_remove("RUST_LOG")
                .env_remove("LIVESTACK_CONFIG")
                .env_remove("LIVESTACK_DATABASE_URL")
                .current_dir(dir.path());
            if server == Server::LivestackPg {
                let url = opts.database_url.clone().context("no --database-url")?;
                // The PostgreSQL client blocks: off the async runtime.
                let db = tokio::task::spawn_blocking(move || {
                    livestack_store::pg::create_scratch_database(&url)
                })
                .await
                .context("the database set-up task failed")?
                .context("cannot make a database for the run")?;
                cmd.env("LIVESTACK_DATABASE_URL", db);
            }
            (cmd, Some(dir))
        }
    };
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start the {} server", server.name()))?;
    let pid = child
        .id()
        .with_context(|| format!("the {} server exited at once", server.name()))?;
    let stdout = child.stdout.take().context("server stdout is not piped")?;
    let mut lines = BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(STARTUP_TIMEOUT, async {
        while let Some(line) = lines.next_line().await? {
            // livestack prints its RTMP, HTTP and HTTPS playback addresses
            // first; the API's line comes last. The bare server prints one.
            let api = line.strip_prefix("api listening on http://");
            let bare = line.strip_prefix("listening on http://");
            if let Some(addr) = api.or(bare) {
                return addr
                    .trim()
                    .parse::<SocketAddr>()
                    .with_context(|| format!("unreadable address in {line:?}"));
            }
        }
        bail!("the server exited before it printed its address")
    })
    .await
    .with_context(|| {
        format!(
            "the {} server did not print its address within {} s",
            server.name(),
            STARTUP_TIMEOUT.as_secs()
        )
    })??;
    // Keep the pipe drained so the server never blocks on stdout.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(RunningServer {
        child,
        pid,
        addr,
        data_dir,
    })
}

/// One signed request that must succeed before the load starts, so a
/// misconfiguration fails loudly instead of as a run of errors.
async fn probe(addr: SocketAddr) -> Result<()> {
    let mut conn = Conn::connect(addr).await?;
    let request = signed_request(&addr.to_string(), unix_now());
    let reply = conn.exchange(&request).await?;
    if !reply.is_success() {
        bail!(
            "HTTP {}: {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
    }
    Ok(())
}

/// User + system CPU seconds of every thread of `pid`.
fn cpu_seconds(pid: u32, clock_ticks: f64) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    // The command name may contain spaces and parentheses; fields after it
    // start with the state (field 3), so utime (14) and stime (15) are the
    // 12th and 13th after the last ')'.
    let (_, after) = stat
        .rsplit_once(')')
        .with_context(|| format!("malformed /proc/{pid}/stat"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("malformed /proc/{pid}/stat"))
    };
    Ok((field(11)? + field(12)?) as f64 / clock_ticks)
}

/// Busy seconds (everything but idle and iowait) of one CPU, from /proc/stat.
fn cpu_busy_seconds(cpu: usize, clock_ticks: f64) -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat").context("cannot read /proc/stat")?;
    let prefix = format!("cpu{cpu} ");
    let line = stat
        .lines()
        .find(|l| l.starts_with(&prefix))
        .with_context(|| format!("no cpu{cpu} in /proc/stat"))?;
    // user nice system idle iowait irq softirq steal …
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let busy: u64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| ticks.get(i))
        .sum();
    Ok(busy as f64 / clock_ticks)
}

/// Measures `server`; `rate` paces the load to that many requests per
/// second in all.
async fn run_once(
    server: Server,
    rate: Option<f64>,
    opts: &Options,
    env: &Env,
) -> Result<RunResult> {
    let running = start_server(server, env, opts).await?;
    let result = measure(server, rate, &running, opts, env).await;
    // Stop the server whatever happened; report the first failure.
    let stopped = running.stop().await;
    let result = result?;
    stopped?;
    Ok(result)
}

async fn measure(
    server: Server,
    rate: Option<f64>,
    running: &RunningServer,
    opts: &Options,
    env: &Env,
) -> Result<RunResult> {
    probe(running.addr)
        .await
        .with_context(|| format!("the {} server failed a signed {ACTION}", server.name()))?;

    let mut cmd = pinned(env, env.pinning.client, &env.helper);
    cmd.arg("load")
        .args(["--addr", &running.addr.to_string()])
        .args(["--connections", &opts.connections.to_string()])
        .args(["--duration", &opts.duration.to_string()])
        .args(
            rate.map(|r| format!("{r:.0}"))
                .iter()
                .flat_map(|r| ["--rate", r]),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut load = cmd.spawn().context("cannot start the load generator")?;
    let load_pid = load.id().context("the load generator exited at once")?;
    let stdout = load
        .stdout
        .take()
        .context("load generator stdout is not piped")?;
    let mut lines = BufReader::new(stdout).lines();

    let limit = WARMUP + Duration::from_secs(opts.duration) + DRAIN + Duration::from_secs(30);
    let ticks = env.clock_ticks;
    let server_cpu_id = env.pinning.server;
    let sample = || {
        (
            Instant::now(),
            cpu_seconds(running.pid, ticks),
            cpu_seconds(load_pid, ticks).ok(),
            server_cpu_id.and_then(|cpu| cpu_busy_seconds(cpu, ticks).ok()),
        )
    };
    let (start, end, report) = tokio::time::timeout(limit, async {
        let (mut start, mut end, mut report) = (None, None, None);
        while let Some(line) = lines.next_line().await? {
            match line.as_str() {
                "measure-start" => start = Some(sample()),
                "measure-end" => end = Some(sample()),
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
    let wall = end.0.duration_since(start.0).as_secs_f64();
    let server_cpu = match (start.1, end.1) {
        (Ok(a), Ok(b)) => Some(b - a),
        (Err(e), _) | (_, Err(e)) => bail!("the {} server is gone: {e:#}", server.name()),
    };
    let client_cpu = start.2.zip(end.2).map(|(a, b)| b - a);
    let others_cpu = start
        .3
        .zip(end.3)
        .zip(server_cpu)
        .map(|((a, b), own)| (b - a - own).max(0.0));
    Ok(RunResult {
        server,
        report,
        wall,
        server_cpu,
        client_cpu,
        others_cpu,
    })
}

// ---------------------------------------------------------------------------
// Helpers' lifeline.

/// Exits the process when stdin reaches end of file: the orchestrator holds
/// the other end, so a helper never outlives it.
pub(crate) fn exit_when_stdin_closes() {
    std::thread::spawn(|| {
        let mut stdin = std::io::stdin();
        let mut buf = [0_u8; 64];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => std::process::exit(3),
                Ok(_) => {}
            }
        }
    });
}

// ---------------------------------------------------------------------------
// The bare server.

/// `xtask bare-server`: hyper's HTTP/1.1 server on a default multi-threaded
/// runtime, answering every request with [`BARE_BODY`] after reading the
/// request body to the end.
pub(crate) fn bare_server() -> Result<ExitCode> {
    exit_when_stdin_closes();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot bind 127.0.0.1:0")?;
        let addr = listener.local_addr().context("listener has no address")?;
        println!("listening on http://{addr}");
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    eprintln!("bare-server: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            tokio::spawn(async move {
                let builder =
                    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).http1_only();
                let service = hyper::service::service_fn(bare_answer);
                // A client going away mid-request is not worth a line.
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

async fn bare_answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let _body = req.into_body().collect().await?.to_bytes();
    let mut resp = Response::new(Full::new(Bytes::from_static(BARE_BODY.as_bytes())));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}

// ---------------------------------------------------------------------------
// The load generator.

/// What `xtask load` prints as its last line (JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LoadReport {
    /// Successful answers completed inside the window.
    ok: u64,
    /// Failed answers and connection errors inside the window.
    errors: u64,
    /// Length of the window, seconds.
    secs: f64,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
    /// The first failure seen (warm-up included), for diagnosis.
    first_error: Option<String>,
}

/// `xtask load --addr ADDR --connections N --duration SECS`.
///
/// Prints `measure-start` and `measure-end` when the window opens and
/// closes, then one JSON [`LoadReport`].
pub(crate) fn load(args: &[&str]) -> Result<ExitCode> {
    let (mut addr, mut connections, mut duration, mut rate) = (None, None, None, None);
    for pair in args.chunks(2) {
        match pair {
            ["--rate", v] => {
                rate = Some(
                    v.parse::<f64>()
                        .ok()
                        .filter(|r| r.is_finite() && *r > 0.0)
                        .context("--rate")?,
                )
            }
            ["--addr", v] => addr = Some(v.parse::<SocketAddr>().context("--addr")?),
            ["--connections", v] => {
                connections = Some(v.parse::<usize>().context("--connections")?)
            }
            ["--duration", v] => duration = Some(v.parse::<u64>().context("--duration")?),
            _ => bail!("usage: xtask load --addr ADDR --connections N --duration SECS [--rate R]"),
        }
    }
    let (Some(addr), Some(connections), Some(duration)) = (addr, connections, duration) else {
        bail!("usage: xtask load --addr ADDR --connections N --duration SECS [--rate R]");
    };
    if !addr.ip().is_loopback() {
        bail!("the load generator only targets loopback addresses, not {addr}");
    }
    exit_when_stdin_closes();
    // One thread: the client is pinned to one CPU, and a single-threaded
    // runtime wastes nothing on work stealing.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(run_load(
        addr,
        connections.max(1),
        Duration::from_secs(duration),
        rate,
    ))?;
    println!(
        "{}",
        serde_json::to_string(&report).context("cannot encode the report")?
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs the load; `rate` (requests per second in all) paces each
/// connection to its share, else each sends as soon as it has an answer.
async fn run_load(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    rate: Option<f64>,
) -> Result<LoadReport> {
    let host: std::sync::Arc<str> = addr.to_string().into();
    let begin = tokio::time::Instant::now();
    let window = Window {
        start: begin + WARMUP,
        end: begin + WARMUP + duration,
    };
    let marker = tokio::spawn(async move {
        tokio::time::sleep_until(window.start).await;
        println!("measure-start");
        tokio::time::sleep_until(window.end).await;
        println!("measure-end");
    });
    let mut workers = tokio::task::JoinSet::new();
    // Each connection's share of the rate, started staggered so that the
    // requests spread over the interval.
    let interval = rate.map(|r| Duration::from_secs_f64(connections as f64 / r));
    for i in 0..connections {
        let pace = interval.map(|every| Pace {
            next: begin + every.mul_f64(i as f64 / connections as f64),
            every,
        });
        workers.spawn(worker(addr, std::sync::Arc::clone(&host), window, pace));
    }
    let mut total = WorkerStats::default();
    while let Some(stats) = workers.join_next().await {
        total.merge(stats.context("a load task panicked")?);
    }
    marker.await.context("the marker task panicked")?;
    let secs = window.end.duration_since(window.start).as_secs_f64();
    Ok(LoadReport {
        ok: total.ok,
        errors: total.errors,
        secs,
        p50_us: total.latency.quantile(0.50) as f64 / 1000.0,
        p99_us: total.latency.quantile(0.99) as f64 / 1000.0,
        max_us: total.latency.max as f64 / 1000.0,
        first_error: total.first_error,
    })
}

/// The measured window: answers completed in `start..end` count.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: tokio::time::Instant,
    end: tokio::time::Instant,
}

#[derive(Default)]
struct WorkerStats {
    ok: u64,
    errors: u64,
    latency: Histogram,
    first_error: Option<String>,
}

impl WorkerStats {
    fn error(&mut self, counted: bool, what: impl FnOnce() -> String) {
        if counted {
            self.errors += 1;
        }
        if self.first_error.is_none() {
            self.first_error = Some(what());
        }
    }

    fn merge(&mut self, other: WorkerStats) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.latency.merge(&other.latency);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// A paced connection's schedule: its next request is due at `next`.
#[derive(Debug, Clone, Copy)]
struct Pace {
    next: tokio::time::Instant,
    every: Duration,
}

impl Pace {
    /// Waits until the next request is due. The schedule is absolute, so
    /// the timer's millisecond granularity delays requests without
    /// lowering the rate (a late request lets the next go at once); after
    /// a stall of over 100 ms it starts again from now rather than burst.
    async fn wait(&mut self) {
        tokio::time::sleep_until(self.next).await;
        let now = tokio::time::Instant::now();
        self.next = if now.duration_since(self.next) > Duration::from_millis(100) {
            now + self.every
        } else {
            self.next + self.every
        };
    }
}

/// One keep-alive connection, one request at a time (at `pace`, if given),
/// until the window ends.
async fn worker(
    addr: SocketAddr,
    host: std::sync::Arc<str>,
    window: Window,
    mut pace: Option<Pace>,
) -> WorkerStats {
    let mut stats = WorkerStats::default();
    let mut conn: Option<Conn> = None;
    let mut signed_at = i64::MIN;
    let mut request = Vec::new();
    let deadline = window.end + DRAIN;
    loop {
        let now = tokio::time::Instant::now();
        if now >= window.end {
            break;
        }
        // Re-sign when the second changes: the timestamp stays current and
        // the scope date follows midnight UTC.
        let unix = unix_now();
        if unix != signed_at {
            request = signed_request(&host, unix);
            signed_at = unix;
        }
        if let Some(p) = pace.as_mut() {
            p.wait().await;
        }
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match Conn::connect(addr).await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    stats.error(now >= window.start, || format!("connect: {e:#}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let sent = Instant::now();
        let outcome = tokio::time::timeout_at(deadline, c.exchange(&request)).await;
        let elapsed = sent.elapsed();
        let done = tokio::time::Instant::now();
        let counted = done >= window.start && done < window.end;
        match outcome {
            Ok(Ok(reply)) => {
                let close = reply.close;
                if reply.is_success() {
                    if counted {
                        stats.ok += 1;
                        stats.latency.record(elapsed);
                    }
                } else {
                    stats.error(counted, || {
                        format!(
                            "HTTP {}: {}",
                            reply.status,
                            String::from_utf8_lossy(&reply.body)
                        )
                    });
                }
                if close {
                    conn = None;
                }
            }
            Ok(Err(e)) => {
                stats.error(counted, || format!("{e:#}"));
                conn = None;
            }
            Err(_) => {
                // Still waiting after the window and its grace period.
                stats.error(true, || "no answer before the deadline".to_owned());
                break;
            }
        }
    }
    stats
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The raw bytes of a TC3-signed `DescribeLiveDomains` POST at `unix`.
fn signed_request(host: &str, unix: i64) -> Vec<u8> {
    let date = livestack_api::time::utc_date(unix);
    let timestamp = unix.to_string();
    let payload_hash = tc3::sha256_hex(REQUEST_BODY.as_bytes());
    let canonical = tc3::canonical_request(
        "POST",
        "",
        &[("content-type", REQUEST_CONTENT_TYPE), ("host", host)],
        &payload_hash,
    );
    let to_sign = tc3::string_to_sign(&timestamp, &date, SERVICE, &canonical);
    let signature = tc3::signature(&tc3::signing_key(SECRET_KEY, &date, SERVICE), &to_sign);
    format!(
        "POST / HTTP/1.1\r\n\
         Host: {host}\r\n\
         Content-Type: {REQUEST_CONTENT_TYPE}\r\n\
         Content-Length: {}\r\n\
         X-TC-Action: {ACTION}\r\n\
         X-TC-Version: {API_VERSION}\r\n\
         X-TC-Timestamp: {timestamp}\r\n\
         Authorization: {} Credential={SECRET_ID}/{date}/{SERVICE}/tc3_request, \
         SignedHeaders=content-type;host, Signature={signature}\r\n\
         \r\n\
         {REQUEST_BODY}",
        REQUEST_BODY.len(),
        tc3::ALGORITHM,
    )
    .into_bytes()
}

/// A client connection with its read buffer.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Bytes of `buf` that belong to the previous answer.
    consumed: usize,
}

/// One parsed answer.
struct Reply<'a> {
    status: u16,
    body: Cow<'a, [u8]>,
    /// The server will close the connection after this answer.
    close: bool,
}

impl Reply<'_> {
    /// HTTP 200 without an `"Error"` in the body.
    fn is_success(&self) -> bool {
        self.status == 200 && !self.body.windows(7).any(|w| w == b"\"Error\"")
    }
}

impl Conn {
    async fn connect(addr: SocketAddr) -> Result<Conn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true).context("cannot set TCP_NODELAY")?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(8192),
            consumed: 0,
        })
    }

    /// Sends `request` and reads its answer.
    async fn exchange(&mut self, request: &[u8]) -> Result<Reply<'_>> {
        self.buf.drain(..self.consumed);
        self.consumed = 0;
        if !self.buf.is_empty() {
            bail!(
                "{} unsolicited bytes from the server before a request",
                self.buf.len()
            );
        }
        self.stream
            .write_all(request)
            .await
            .context("cannot send the request")?;
        loop {
            let parsed = parse_response(&self.buf)?;
            if let Parsed::Complete {
                status,
                body,
                consumed,
                close,
            } = parsed
            {
                self.consumed = consumed;
                let body = match body {
                    Body::Range(start, end) => Cow::Borrowed(&self.buf[start..end]),
                    Body::Decoded(bytes) => Cow::Owned(bytes),
                };
                return Ok(Reply {
                    status,
                    body,
                    close,
                });
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(8192);
            }
            let n = self
                .stream
                .read_buf(&mut self.buf)
                .await
                .context("cannot read the answer")?;
            if n == 0 {
                if let Parsed::UntilClose { status, body_start } = parsed {
                    self.consumed = self.buf.len();
                    return Ok(Reply {
                        status,
                        body: Cow::Borrowed(&self.buf[body_start..]),
                        close: true,
                    });
                }
                bail!("the server closed the connection before a complete answer");
            }
            if self.buf.len() > 16 * 1024 * 1024 {
                bail!("the answer is larger than 16 MB");
            }
        }
    }
}

enum Body {
    Range(usize, usize),
    Decoded(Vec<u8>),
}

enum Parsed {
    /// More bytes needed.
    Partial,
    /// Head complete, but the body runs to the end of the connection.
    UntilClose { status: u16, body_start: usize },
    Complete {
        status: u16,
        body: Body,
        /// Bytes of the buffer this answer used.
        consumed: usize,
        close: bool,
    },
}

/// Parses one HTTP/1.x answer at the start of `buf`: Content-Length,
/// chunked, or delimited by the end of the connection.
fn parse_response(buf: &[u8]) -> Result<Parsed> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf).context("malformed answer")? {
        httparse::Status::Partial => return Ok(Parsed::Partial),
        httparse::Status::Complete(n) => n,
    };
    let status = resp.code.unwrap_or(0);
    if (100..200).contains(&status) {
        bail!("unexpected interim answer {status}");
    }
    let mut close = resp.version == Some(0);
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .context("malformed Content-Length")?;
            if content_length.is_some_and(|old| old != v) {
                bail!("conflicting Content-Length headers");
            }
            content_length = Some(v);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = contains_token(h.value, "chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            if contains_token(h.value, "close") {
                close = true;
            } else if contains_token(h.value, "keep-alive") {
                close = false;
            }
        }
    }
    if status == 204 || status == 304 {
        return Ok(Parsed::Complete {
            status,
            body: Body::Range(head_len, head_len),
            consumed: head_len,
            close,
        });
    }
    if chunked {
        return Ok(match parse_chunked(buf, head_len)? {
            Some((body, consumed)) => Parsed::Complete {
                status,
                body: Body::Decoded(body),
                consumed,
                close,
            },
            None => Parsed::Partial,
        });
    }
    match content_length {
        Some(len) => {
            let end = head_len
                .checked_add(len)
                .context("Content-Length overflows")?;
            if buf.len() < end {
                Ok(Parsed::Partial)
            } else {
                Ok(Parsed::Complete {
                    status,
                    body: Body::Range(head_len, end),
                    consumed: end,
                    close,
                })
            }
        }
        None => Ok(Parsed::UntilClose {
            status,
            body_start: head_len,
        }),
    }
}

fn contains_token(value: &[u8], token: &str) -> bool {
    std::str::from_utf8(value)
        .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// Decodes a chunked body starting at `pos`; `None` while incomplete, else
/// the body and the offset just past the answer.
fn parse_chunked(buf: &[u8], mut pos: usize) -> Result<Option<(Vec<u8>, usize)>> {
    let mut body = Vec::new();
    loop {
        let Some(eol) = find_crlf(&buf[pos..]) else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&buf[pos..pos + eol]).context("malformed chunk size")?;
        let size_hex = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16)
            .with_context(|| format!("malformed chunk size {size_hex:?}"))?;
        pos += eol + 2;
        if size == 0 {
            // Trailer fields, then an empty line.
            loop {
                let Some(eol) = find_crlf(&buf[pos..]) else {
                    return Ok(None);
                };
                pos += eol + 2;
                if eol == 0 {
                    return Ok(Some((body, pos)));
                }
            }
        }
        let end = pos.checked_add(size).context("chunk size overflows")?;
        if buf.len() < end + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[pos..end]);
        if &buf[end..end + 2] != b"\r\n" {
            bail!("chunk not terminated by CRLF");
        }
        pos = end + 2;
    }
}

// ---------------------------------------------------------------------------
// Latency histogram.

/// A log-linear histogram of nanoseconds: exact below 64 ns, then 32
/// buckets per power of two (about 3 % relative error), like HdrHistogram
/// with two significant digits. Fixed size, cheap to record and merge.
struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

const HISTOGRAM_BUCKETS: usize = 32 * 60;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; HISTOGRAM_BUCKETS],
            total: 0,
            max: 0,
        }
    }
}

impl Histogram {
    fn bucket(ns: u64) -> usize {
        if ns < 64 {
            ns as usize
        } else {
            let shift = 63 - ns.leading_zeros() - 5;
            32 * shift as usize + (ns >> shift) as usize
        }
    }

    /// The middle of bucket `i`.
    fn value(i: usize) -> u64 {
        if i < 64 {
            i as u64
        } else {
            let shift = (i / 32 - 1) as u32;
            let mantissa = (i % 32 + 32) as u64;
            (mantissa << shift) + ((1_u64 << shift) >> 1)
        }
    }

    fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.counts[Self::bucket(ns)] += 1;
        self.total += 1;
        self.max = self.max.max(ns);
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// The value at quantile `q` (0..=1), in nanoseconds; 0 when empty.
    fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        if rank == self.total {
            return self.max;
        }
        let mut seen = 0;
        for (i, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Self::value(i).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_round_trip_within_three_percent() {
        for ns in [
            0_u64,
            1,
            63,
            64,
            65,
            100,
            1_000,
            12_345,
            1_000_000,
            u64::MAX / 3,
        ] {
            let i = Histogram::bucket(ns);
            assert!(i < HISTOGRAM_BUCKETS, "{ns}");
            let v = Histogram::value(i);
            let err = (v as f64 - ns as f64).abs() / (ns.max(1) as f64);
            assert!(err <= 0.032, "{ns} -> bucket {i} -> {v}");
        }
        assert_eq!(Histogram::bucket(u64::MAX), HISTOGRAM_BUCKETS - 1);
    }

    #[test]
    fn histogram_quantiles() {
        let mut h = Histogram::default();
        for us in 1..=100_u64 {
            h.record(Duration::from_micros(us));
        }
        let p50 = h.quantile(0.5) as f64;
        let p99 = h.quantile(0.99) as f64;
        assert!((p50 - 50_000.0).abs() / 50_000.0 < 0.03, "{p50}");
        assert!((p99 - 99_000.0).abs() / 99_000.0 < 0.03, "{p99}");
        assert_eq!(h.quantile(1.0), 100_000);
    }

    #[test]
    fn answers_with_content_length_are_framed_and_checked() {
        let ok = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{BARE_BODY}",
            BARE_BODY.len()
        );
        let mut two = ok.clone().into_bytes();
        two.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        let Parsed::Complete {
            status,
            body: Body::Range(start, end),
            consumed,
            close,
        } = parse_response(&two).expect("parses")
        else {
            panic!("incomplete");
        };
        assert_eq!((status, consumed, close), (200, ok.len(), false));
        let reply = Reply {
            status,
            body: Cow::Borrowed(&two[start..end]),
            close,
        };
        assert!(reply.is_success());
        assert!(matches!(
            parse_response(&ok.as_bytes()[..ok.len() - 1]),
            Ok(Parsed::Partial)
        ));
        let error = Reply {
            status: 200,
            body: Cow::Borrowed(br#"{"Response":{"Error":{"Code":"X"}}}"#),
            close: false,
        };
        assert!(!error.is_success());
    }

    #[test]
    fn chunked_answers_are_decoded() {
        let raw = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n\
                    4\r\n{\"a\"\r\n3;x=y\r\n:1}\r\n0\r\n\r\n";
        let Parsed::Complete {
            body: Body::Decoded(body),
            consumed,
            close,
            ..
        } = parse_response(raw).expect("parses")
        else {
            panic!("incomplete");
        };
        assert_eq!(body, b"{\"a\":1}");
        assert_eq!(consumed, raw.len());
        assert!(close);
        assert!(matches!(
            parse_response(&raw[..raw.len() - 2]),
            Ok(Parsed::Partial)
        ));
    }

    #[test]
    fn requests_are_signed_as_the_gateway_verifies() {
        let raw = signed_request("127.0.0.1:9100", 1_551_113_065);
        let text = String::from_utf8(raw).expect("ascii");
        assert!(text.starts_with("POST / HTTP/1.1\r\nHost: 127.0.0.1:9100\r\n"));
        assert!(text.contains(
            "Credential=AKIDbench0000000000000000000000000000/2019-02-25/live/tc3_request"
        ));
        assert!(text.ends_with("\r\n\r\n{}"));
        let auth_line = text
            .lines()
            .find_map(|l| l.strip_prefix("Authorization: "))
            .expect("authorization");
        let auth = tc3::parse_authorization(auth_line).expect("well-formed");
        let header = |name: &str| match name {
            "host" => Some("127.0.0.1:9100"),
            "content-type" => Some("application/json"),
            _ => None,
        };
        let signed = tc3::Signed {
            method: "POST",
            query: "",
            timestamp: "1551113065",
            payload_hash: tc3::sha256_hex(b"{}"),
            header: &header,
        };
        assert!(tc3::verify(&signed, &auth, SECRET_KEY));
    }

    #[tokio::test(start_paused = true)]
    async fn a_paced_connection_keeps_its_rate_and_does_not_burst_after_a_stall() {
        let every = Duration::from_micros(1500);
        let start = tokio::time::Instant::now();
        let mut pace = Pace { next: start, every };
        for _ in 0..100 {
            pace.wait().await;
        }
        // The 100th request goes 99 intervals after the first, although
        // the timer only has millisecond granularity.
        let elapsed = tokio::time::Instant::now() - start;
        assert!(
            elapsed >= every * 99 && elapsed < every * 99 + Duration::from_millis(2),
            "{elapsed:?}"
        );
        // A long stall: the schedule starts again rather than sending the
        // missed requests at once.
        tokio::time::advance(Duration::from_secs(1)).await;
        pace.wait().await;
        let resumed = tokio::time::Instant::now();
        pace.wait().await;
        assert!(tokio::time::Instant::now() - resumed >= every);
    }

    #[test]
    fn options_parse_with_defaults() {
        let o = parse_options(&[]).expect("defaults");
        assert_eq!(
            (o.duration, o.connections, o.rounds, o.build),
            (10, 32, 2, true)
        );
        let o = parse_options(&["--duration", "3", "--connections=8", "--no-build"]).expect("ok");
        assert_eq!((o.duration, o.connections, o.build), (3, 8, false));
        assert!(parse_options(&["--rounds", "0"]).is_err());
        assert!(parse_options(&["--bogus"]).is_err());
    }
}
