//! Repository automation for livestack, run as `cargo xtask <command>`
//! (the alias lives in `.cargo/config.toml`).
//!
//! Commands:
//! - `codegen`: regenerate `crates/livestack-model/src/generated.rs` from
//!   `spec/api.json` and `spec/legacy-api.json`.
//! - `codegen --check`: fail if the committed file is stale.
//! - `bench-api [--duration SECS] [--connections N] [--rounds R]
//!   [--livestack PATH] [--no-build]`: signed `DescribeLiveDomains`
//!   throughput of livestack against a bare hyper server (see
//!   `docs/benchmarks.md`). Its helpers `bare-server` and `load` are hidden
//!   subcommands.
//! - `bench-media [--players LIST] …`: one stream fanned out to N RTMP,
//!   HTTP-FLV or WebRTC players, livestack against nginx-rtmp, SRS and a bare
//!   sender (the floor), with its own players or SRS's `sb_rtmp_load` (its
//!   load generator is the hidden `bench-media --load`, the bare sender
//!   `bench-media --bare-sender`).
//! - `bench-edge --database-url URL [--players LIST] …`: the same fan-out
//!   served by an edge node of a two-node cluster (its relay pulling from
//!   the origin) beside one node, and the first frame of a player that
//!   starts a relay.
//! - `bench-transcode [--rounds N] [--window SECS] …`: the CPU of a
//!   transcode run by livestack against the same transcode as a bare
//!   ffmpeg command.
//! - `bench-latency [--rounds N]`: glass-to-glass latency of WebRTC and
//!   LL-HLS, read back from a clock burnt into the published frames.
//! - `bench-record [--streams N] [--formats LIST] …`: N live streams
//!   recorded in-process against the same recordings by an ffmpeg
//!   process each.

mod bench;
mod bench_latency;
mod bench_media;
mod bench_record;
mod bench_transcode;
mod cli;
mod codegen;

use std::process::ExitCode;

use anyhow::{bail, Result};

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("xtask: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let root = codegen::workspace_root();
    match args.as_slice() {
        ["codegen"] => {
            let changed = codegen::write(&root)?;
            for target in codegen::TARGETS {
                let verb = if changed.contains(&target.output) {
                    "wrote"
                } else {
                    "unchanged:"
                };
                println!("{verb} {}", target.output);
            }
            Ok(ExitCode::SUCCESS)
        }
        ["codegen", "--check"] => {
            let stale = codegen::stale(&root)?;
            if stale.is_empty() {
                println!("the generated models are up to date");
                Ok(ExitCode::SUCCESS)
            } else {
                for output in stale {
                    eprintln!("{output} is stale; run `cargo xtask codegen`");
                }
                Ok(ExitCode::FAILURE)
            }
        }
        ["bench-api", options @ ..] => bench::bench_api(&root, options),
        ["bare-server"] => bench::bare_server(),
        ["load", options @ ..] => bench::load(options),
        ["bench-media", options @ ..] => bench_media::main(&root, options),
        ["bench-edge", options @ ..] => bench_media::edge::main(&root, options),
        ["bench-transcode", options @ ..] => bench_transcode::main(&root, options),
        ["bench-latency", options @ ..] => bench_latency::main(&root, options),
        ["bench-record", options @ ..] => bench_record::main(&root, options),
        _ => bail!(
            "usage: cargo xtask codegen [--check]\n       cargo xtask bench-api [--duration SECS] \
             [--connections N] [--rounds R] [--livestack PATH] [--no-build]\n       \
             cargo xtask bench-media [--players LIST] [...]\n       \
             cargo xtask bench-edge --database-url URL [...]\n       \
             cargo xtask bench-transcode [--rounds N] [...]\n       \
             cargo xtask bench-latency [--rounds N] [...]\n       \
             cargo xtask bench-record [--streams N] [...]"
        ),
    }
}
