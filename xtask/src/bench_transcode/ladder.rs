//! `cargo xtask bench-transcode --ladder`: one decode per ladder against a
//! process per rung, in one run.
//!
//! An adaptive transcode template with one child per rung is bound to
//! every stream of the play domain; a 1280×720 source is pushed with
//! `ffmpeg -re -c copy`, and every rung has a player (the load
//! generator's one player on the first rung, which marks the window and
//! counts what it gets; `curl` on the others, on the client's CPU). Modes,
//! in alternating rounds on a fresh `livestack serve` each:
//! - **shared**: `[media] shared_decode = true`, the default: livestack
//!   runs one ffmpeg that decodes the source once and encodes each rung;
//! - **separate**: `shared_decode = false`: an ffmpeg per rung, each
//!   decoding the source.
//!
//! Counted: livestack and its ffmpeg children, `utime + stime` at the
//! window's edges, all on the server's CPU. This is a benchmark: it
//! prints, it asserts nothing.

use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

use super::{
    even_size, result, sample, status_number, wait_for_quiet, Comparison, Mode, RoundResult,
    Rounds, FPS, GOP_SECS,
};
use crate::bench::{binaries, until_interrupted};
use crate::bench_media::{
    add_bench_domains, ensure_source_of, launch_livestack, machine, run_load_generator,
    start_publisher, template_for_every_stream, Env, Launch, PlayTarget, APP, PLAY_DOMAIN,
    PUSH_DOMAIN, STREAM,
};

const USAGE: &str = "usage: cargo xtask bench-transcode --ladder [--rounds N] [--warmup SECS] \
[--window SECS] [--source WxH:KBPS] [--rungs WxH:KBPS,…] [--quiet-wait SECS] \
[--livestack PATH] [--no-build]";

/// The target: one process for the ladder at most this share of
/// the CPU of a process per rung.
const TARGET_RATIO: f64 = 0.8;

/// One rung: its size and video rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rung {
    width: u32,
    height: u32,
    kbps: u32,
}

impl Rung {
    fn parse(s: &str) -> Result<Rung> {
        let (size, kbps) = s
            .trim()
            .split_once(':')
            .with_context(|| format!("{s:?} is not WxH:KBPS"))?;
        let (width, height) = even_size(s, size)?;
        let kbps = crate::cli::positive(s, kbps)?;
        if kbps > 50_000 {
            bail!("{s:?}: {kbps} kbit/s is out of range");
        }
        Ok(Rung {
            width,
            height,
            kbps: u32::try_from(kbps)?,
        })
    }

    /// The adaptive child's name (letters and digits).
    fn name(k: usize) -> String {
        format!("rung{k}")
    }
}

#[derive(Debug)]
struct Options {
    run: Rounds,
    source: Rung,
    rungs: Vec<Rung>,
}

fn parse_options(args: &[&str]) -> Result<Options> {
    // `--ladder` is a switch: it chose this benchmark.
    let args: Vec<&str> = args.iter().copied().filter(|a| *a != "--ladder").collect();
    let parsed = crate::cli::parse(&args, USAGE)?;
    let mut opts = Options {
        run: Rounds::new(parsed.build),
        source: Rung {
            width: 1280,
            height: 720,
            kbps: 2000,
        },
        rungs: crate::cli::list("960x540:1200,640x360:700,480x270:400", Rung::parse)?,
    };
    for crate::cli::Opt { arg, name, value } in parsed.options {
        if opts.run.take(name, value)? {
            continue;
        }
        match name {
            "--source" => opts.source = Rung::parse(value)?,
            "--rungs" => opts.rungs = crate::cli::list(value, Rung::parse)?,
            _ => bail!("unknown option {arg:?}\n{USAGE}"),
        }
    }
    if opts.rungs.len() < 2 {
        bail!("--rungs: a ladder has two rungs or more\n{USAGE}");
    }
    Ok(opts)
}

impl Options {
    /// The adaptive `CreateLiveTranscodeTemplate` parameters.
    fn template_json(&self) -> String {
        let children: Vec<serde_json::Value> = self
            .rungs
            .iter()
            .enumerate()
            .map(|(k, r)| {
                serde_json::json!({
                    "TemplateName": Rung::name(k),
                    "VideoBitrate": r.kbps,
                    "Width": r.width,
                    "Height": r.height,
                    "Fps": FPS,
                    "Gop": GOP_SECS,
                })
            })
            .collect();
        serde_json::json!({
            "TemplateName": "abr",
            "VideoBitrate": 0,
            "IsAdaptiveBitRate": 1,
            "AdaptiveChildren": children,
        })
        .to_string()
    }
}

/// `cargo xtask bench-transcode --ladder …`.
pub(crate) fn main(root: &Path, args: &[&str]) -> Result<ExitCode> {
    let opts = parse_options(args)?;
    let (target_dir, livestack) = binaries(root, opts.run.build, opts.run.livestack.as_deref())?;
    let mut env = Env::prepare(&target_dir, livestack)?;
    let s = opts.source;
    env.source = ensure_source_of(
        &env.ffmpeg,
        &target_dir.join("bench-media"),
        env.pinning.client,
        (s.width, s.height),
        s.kbps,
    )?;
    until_interrupted(run(&opts, &env), "processes")?;
    Ok(ExitCode::SUCCESS)
}

fn rung_path(k: usize) -> String {
    format!("/{APP}/{STREAM}_{}.flv?domain={PLAY_DOMAIN}", Rung::name(k))
}

/// One round: livestack with `shared_decode` on (`Mode::Shared`) or off.
async fn round(n: u32, mode: Mode, opts: &Options, env: &Env) -> Result<RoundResult> {
    let media = match mode {
        Mode::Shared => "shared_decode = true\n",
        _ => "shared_decode = false\n",
    };
    let server = launch_livestack(
        env,
        Launch {
            cpu: env.pinning.server,
            media_config: media,
            ..Launch::default()
        },
    )
    .await?;
    let api = server.api.context("no API address")?;
    add_bench_domains(api).await?;
    template_for_every_stream(
        api,
        "CreateLiveTranscodeTemplate",
        &opts.template_json(),
        "CreateLiveTranscodeRule",
        PLAY_DOMAIN,
    )
    .await?;
    let http = server.http.context("livestack has no HTTP listener")?;
    let log = server._dir.path().join("publisher.log");
    let push = format!("rtmp://{}/{APP}/{STREAM}?domain={PUSH_DOMAIN}", server.rtmp);
    let mut publisher = start_publisher(env, &push, &log)?;
    let publisher_pid = publisher.id().context("the publisher exited at once")?;
    // The other rungs' players: plain readers on the client's CPU, once
    // the source is live (a rung of a stream that is not is a 404).
    super::source_online(&server).await?;
    let curl = which_curl()?;
    let mut others = Vec::new();
    for k in 1..opts.rungs.len() {
        let mut cmd = env.command(env.pinning.client, &curl);
        cmd.args([
            "-s",
            "-o",
            "/dev/null",
            "--retry",
            "5",
            "--retry-connrefused",
        ])
        .arg(format!("http://{http}{}", rung_path(k)))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        others.push(cmd.spawn().context("cannot start curl")?);
    }
    let target = PlayTarget::Flv {
        addr: http,
        path: rung_path(0),
    };
    let pid = server.pid;
    let outcome = run_load_generator(env, &target, 1, opts.run.warmup, opts.run.window, |load| {
        sample(env, pid, None, publisher_pid, Some(load))
    })
    .await;
    let alive = publisher.try_wait()?.is_none();
    let players_alive = others
        .iter_mut()
        .map(|c| c.try_wait().is_ok_and(|s| s.is_none()))
        .filter(|alive| *alive)
        .count();
    let (start, end, report) = outcome?;
    let processes = end.transcoders.len();
    // Read while they still run.
    let ffmpeg_rss_mb = end
        .transcoders
        .iter()
        .filter_map(|(pid, _)| status_number(*pid, "VmRSS"))
        .sum::<u64>() as f64
        / 1024.0;
    let mut r = result(n, mode, start, end, Some(&report))?;
    r.notes
        .retain(|note| !note.ends_with("transcoders at the window's end"));
    r.notes.push(format!(
        "{processes} ffmpeg process(es), {ffmpeg_rss_mb:.0} MB RSS together"
    ));
    if players_alive + 1 < opts.rungs.len() {
        r.notes.push(format!(
            "only {players_alive} of the other rungs' players lasted the window"
        ));
    }
    for mut c in others {
        let _ = c.kill().await;
    }
    let _ = publisher.kill().await;
    server.stop().await;
    if !alive {
        r.notes.push("the publisher died".to_owned());
    }
    Ok(r)
}

fn which_curl() -> Result<std::path::PathBuf> {
    crate::bench_media::which("curl").context("curl plays the other rungs: apt-get install curl")
}

async fn run(opts: &Options, env: &Env) -> Result<()> {
    let s = &env.source;
    println!();
    println!("bench-transcode --ladder: one ffmpeg per ladder against one per rung");
    println!("  machine:   {}", machine());
    println!("  ffmpeg:    {}", super::ffmpeg_version(&env.ffmpeg));
    println!("  pinning:   {}", env.pinning.note);
    println!(
        "  source:    {} ({:.0} kbps payload, {:.2} fps), pushed with -re -c copy",
        s.path.display(),
        s.payload_kbps,
        s.video_fps,
    );
    println!(
        "  template:  CreateLiveTranscodeTemplate {}",
        opts.template_json()
    );
    println!(
        "  players:   one per rung (the load generator on {}, curl on the others)",
        Rung::name(0)
    );
    println!(
        "  rounds:    {} × [shared, separate], {} s warm-up, {} s window",
        opts.run.rounds, opts.run.warmup, opts.run.window
    );
    println!("  livestack: {}", env.livestack.display());
    let mut results = Vec::new();
    for n in 1..=opts.run.rounds {
        for mode in [Mode::Shared, Mode::Separate] {
            println!();
            println!("round {n}: {}", mode.name());
            let quiet = wait_for_quiet(env, Duration::from_secs(opts.run.quiet_wait)).await;
            let mut r = round(n, mode, opts, env)
                .await
                .with_context(|| format!("round {n} {}", mode.name()))?;
            r.quiet_before = quiet;
            super::print_round(&r);
            results.push(r);
        }
    }
    super::print_table(&results);
    let pairs: Vec<(&RoundResult, &RoundResult)> = results
        .iter()
        .filter(|r| r.mode == Mode::Shared)
        .filter_map(|a| {
            let b = results
                .iter()
                .find(|b| b.mode == Mode::Separate && b.round == a.round)?;
            Some((a, b))
        })
        .collect();
    if let Some(c) = Comparison::of(&pairs) {
        let label = format!("{} ÷ {}", Mode::Shared.name(), Mode::Separate.name());
        c.print(&label);
        let behind = pairs.iter().any(|(a, b)| !a.keeps_up() || !b.keeps_up());
        let verdict = match (behind, c.ratio <= TARGET_RATIO) {
            (true, _) => "INCONCLUSIVE (a transcoder fell behind real time)",
            (false, true) => "PASS",
            (false, false) => "FAIL",
        };
        println!("  target {label} ≤ {TARGET_RATIO}: {verdict}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rungs_parse_as_even_sizes_with_a_rate() {
        assert_eq!(
            Rung::parse(" 640x360:700").unwrap(),
            Rung {
                width: 640,
                height: 360,
                kbps: 700
            }
        );
        assert!(Rung::parse("641x360:700").is_err());
        assert!(Rung::parse("640x360").is_err());
        assert!(parse_options(&["--ladder", "--rungs", "640x360:700"]).is_err());
        let opts = parse_options(&["--ladder"]).unwrap();
        assert_eq!(opts.rungs.len(), 3);
        assert!(opts.template_json().contains("\"rung2\""));
    }
}
