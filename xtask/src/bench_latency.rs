//! `cargo xtask bench-latency`: glass-to-glass latency of livestack's
//! low-latency outputs, WebRTC (WHEP) and LL-HLS, on loopback.
//!
//! The publisher (Debian's ffmpeg) burns the wall clock into each frame
//! before encoding: the frame's timestamp is set from the real-time clock
//! (`setpts` with `RTCTIME`) and bit i of its milliseconds since a base
//! second is a white or black 30x32 block at x = 30 i along the top
//! (`drawbox`, 21 bits). The base is the second the publisher starts in,
//! so the video's timestamps start within a second of the audio's (the
//! audio's own, from 0: giving it wall-clock timestamps too with `asetpts`
//! made ffmpeg's AAC output irregular). It pushes H.264 (libx264 ultrafast, zerolatency,
//! 1 s GOP) and AAC over RTMP to a fresh `livestack serve` (the
//! `bench-media` setup). Two players read the clock back from what they
//! decode and subtract it from their own clock (the same machine):
//! - **WebRTC:** aiortc (`tests/clients/webrtc_play.py --latency-base`),
//!   every decoded frame after the first 3 s (the GOP cache's burst);
//! - **LL-HLS:** hls.js in low-latency mode in headless Chromium
//!   (`tests/clients/browser_llhls.js`), the frame on screen sampled 40
//!   times over 4 s through a canvas.
//!
//! Needs the test clients installed (`scripts/test` does: `.venv` and
//! `tests/clients/node_modules`) and Chromium. This is a benchmark: it
//! prints, it asserts nothing.

use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use serde_json::Value;

use crate::bench::{binaries, until_interrupted};
use crate::bench_media::{machine, start_livestack, Env, APP, PLAY_DOMAIN, PUSH_DOMAIN, STREAM};

const USAGE: &str = "usage: cargo xtask bench-latency [--rounds N] [--livestack PATH] [--no-build]";

/// The targets on loopback.
const TARGET_WEBRTC_MS: f64 = 500.0;
const TARGET_LLHLS_MS: f64 = 2000.0;
/// Bits of the burnt-in clock (milliseconds: 35 minutes before it wraps).
const CLOCK_BITS: u32 = 21;

struct Options {
    rounds: u32,
    livestack: Option<std::path::PathBuf>,
    build: bool,
}

pub(crate) fn main(root: &Path, args: &[&str]) -> Result<ExitCode> {
    let parsed = crate::cli::parse(args, USAGE)?;
    let mut opts = Options {
        rounds: 3,
        livestack: None,
        build: parsed.build,
    };
    for crate::cli::Opt { arg, name, value } in parsed.options {
        match name {
            "--rounds" => opts.rounds = u32::try_from(crate::cli::positive(name, value)?.min(20))?,
            "--livestack" => opts.livestack = Some(value.into()),
            _ => bail!("unknown option {arg:?}\n{USAGE}"),
        }
    }
    let python = root.join(".venv/bin/python");
    if !python.exists() || !root.join("tests/clients/node_modules/hls.js").exists() {
        bail!("the test clients are missing: run scripts/test once (it installs aiortc, hls.js and playwright-core)");
    }
    let (target_dir, livestack) = binaries(root, opts.build, opts.livestack.as_deref())?;
    let env = Env::prepare(&target_dir, livestack)?;
    until_interrupted(run(root, &opts, &env), "processes")?;
    Ok(ExitCode::SUCCESS)
}

/// The publisher's video filter: wall-clock timestamps from `base` (Unix
/// seconds), then the clock's bits as blocks along the top.
fn clock_filter(base: u64) -> String {
    let mut f = format!(
        "settb=1/1000,setpts=RTCTIME/1000-{}*1000,\
         drawbox=x=0:y=0:w=640:h=32:color=black:t=fill",
        base
    );
    for i in 0..CLOCK_BITS {
        f.push_str(&format!(
            ",drawbox=x={}:y=0:w=30:h=32:color=white:t=fill:enable='eq(mod(floor(t*1000/{}),2),1)'",
            i * 30,
            1u64 << i
        ));
    }
    f
}

async fn run(root: &Path, opts: &Options, env: &Env) -> Result<()> {
    println!("machine: {}", machine());
    let server = start_livestack(env).await?;
    let http = server.http.context("livestack has no HTTP listener")?;
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let log = server._dir.path().join("ffmpeg.log");
    let mut publisher = env
        .command(env.pinning.client, &env.ffmpeg)
        .args([
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "warning",
            "-nostats",
            "-re",
        ])
        .args(["-f", "lavfi", "-i", "testsrc=size=640x360:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-vf", &clock_filter(base)])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
        ])
        .args(["-pix_fmt", "yuv420p", "-g", "25", "-b:v", "800k"])
        .args(["-c:a", "aac", "-b:a", "64k", "-f", "flv"])
        .arg(format!(
            "rtmp://{}/{APP}/{STREAM}?domain={PUSH_DOMAIN}",
            server.rtmp
        ))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .context("cannot start the ffmpeg publisher")?;
    // Let the push come up and the GOP cache fill.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let whep = format!("http://{http}/{APP}/{STREAM}/whep?domain={PLAY_DOMAIN}");
    let llhls = format!("http://{http}/{APP}/{STREAM}.m3u8?domain={PLAY_DOMAIN}&ll=1");
    let mut rows = Vec::new();
    for round in 1..=opts.rounds {
        let out = tokio::process::Command::new(root.join(".venv/bin/python"))
            .arg(root.join("tests/clients/webrtc_play.py"))
            .args([
                "whep",
                &whep,
                "--seconds",
                "10",
                "--latency-base",
                &base.to_string(),
            ])
            .output()
            .await
            .context("cannot run webrtc_play.py")?;
        let report: Value = last_json(&out.stdout);
        println!(
            "WebRTC round {round}: {} video and {} audio frames decoded",
            report["video_frames"], report["audio_frames"]
        );
        if report["latency_ms"].is_null() {
            println!(
                "WebRTC round {round} gave no reading: {report} {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        rows.push(("WebRTC (WHEP, aiortc)", round, report["latency_ms"].clone()));
        let out = tokio::process::Command::new("node")
            .arg(root.join("tests/clients/browser_llhls.js"))
            .args([&llhls, "", &base.to_string()])
            .output()
            .await
            .context("cannot run browser_llhls.js")?;
        let report: Value = last_json(&out.stdout);
        if report["glassToGlass"].is_null() {
            println!("LL-HLS round {round} gave no reading: {report}");
        } else {
            // hls.js's own figure: behind the live edge of the playlist
            // (program date-time), which leaves out encoding and packaging.
            println!(
                "LL-HLS round {round}: hls.js reports latency {} s (target {} s)",
                report["latency"], report["targetLatency"]
            );
        }
        if let Some(trouble) = report["trouble"].as_array().filter(|t| !t.is_empty()) {
            println!("LL-HLS round {round}: hls.js reported {trouble:?}");
        }
        rows.push((
            "LL-HLS (hls.js, Chromium)",
            round,
            report["glassToGlass"].clone(),
        ));
    }
    let publisher_alive = publisher.try_wait()?.is_none();
    let _ = publisher.kill().await;
    server.stop().await;
    if !publisher_alive {
        bail!(
            "the publisher died: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    println!();
    println!("| Player | Round | p50 ms | p90 ms | min ms | frames read |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (player, round, l) in &rows {
        println!(
            "| {player} | {round} | {} | {} | {} | {} |",
            l["p50"].as_f64().map_or("-".into(), |v| format!("{v:.0}")),
            l["p90"].as_f64().map_or("-".into(), |v| format!("{v:.0}")),
            l["min"].as_f64().map_or("-".into(), |v| format!("{v:.0}")),
            l["frames"].as_u64().map_or("-".into(), |v| v.to_string()),
        );
    }
    let median = |name: &str| {
        let mut v: Vec<f64> = rows
            .iter()
            .filter(|(p, _, _)| p.starts_with(name))
            .filter_map(|(_, _, l)| l["p50"].as_f64())
            .collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    println!();
    for (name, target) in [("WebRTC", TARGET_WEBRTC_MS), ("LL-HLS", TARGET_LLHLS_MS)] {
        match median(name) {
            Some(ms) => println!(
                "target: {name} glass-to-glass < {target} ms on loopback: {} (median of the rounds' p50: {ms:.0} ms)",
                if ms < target { "met" } else { "NOT met" }
            ),
            None => println!("target: {name}: no reading"),
        }
    }
    Ok(())
}

/// The last line of `out` that is JSON (Null when none).
fn last_json(out: &[u8]) -> Value {
    String::from_utf8_lossy(out)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_filter_draws_one_block_per_bit() {
        let f = clock_filter(1_700_000_000);
        assert!(f.starts_with("settb=1/1000,setpts=RTCTIME/1000-1700000000*1000,"));
        assert_eq!(f.matches("color=white").count(), CLOCK_BITS as usize);
        assert!(f.contains("drawbox=x=600:y=0:w=30:h=32:color=white:t=fill:enable='eq(mod(floor(t*1000/1048576),2),1)'"));
    }
}
