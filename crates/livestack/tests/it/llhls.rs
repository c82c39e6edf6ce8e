//! LL-HLS on the play domain: the playlist read by an independent parser
//! (the PyPI `m3u8`), played as ordinary HLS by Debian's ffprobe and as
//! LL-HLS by hls.js in low-latency mode in Chromium; blocking playlist
//! reload and held part requests answered when the part exists.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::harness::*;
use crate::media::{assert_h264_aac, live_push, setup};

/// GET `url`: the status and the body.
pub(crate) fn get(url: &str) -> (u16, Vec<u8>) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "15",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            url,
        ])
        .output()
        .expect("curl");
    let mut body = out.stdout;
    let split = body.iter().rposition(|&b| b == b'\n').unwrap_or(0);
    let status = String::from_utf8_lossy(&body[split + 1..])
        .trim()
        .parse()
        .unwrap_or(0);
    body.truncate(split);
    (status, body)
}

/// The playlist as the `m3u8` parser reads it.
fn parse(playlist: &str) -> Value {
    let mut child = Command::new(repo_root().join(".venv/bin/python"))
        .arg(repo_root().join("tests/clients/check_llhls.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python (run scripts/test, which installs the m3u8 parser)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(playlist.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("parser");
    assert!(
        out.status.success(),
        "m3u8 could not read the playlist: {}\n{playlist}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn an_ll_hls_playlist_has_parts_blocks_for_the_next_one_and_plays_as_plain_hls_too() {
    let server = setup();
    let _p = live_push(&server, "ll1", 30);
    let base = format!("http://{}/live", server.http);
    let url = format!("{base}/ll1.m3u8?domain=play.example.com&ll=1");
    let (status, body) = get(&url);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let text = String::from_utf8_lossy(&body).into_owned();
    let first = parse(&text);
    assert_eq!(first["part_target"], 0.334, "{text}");
    assert_eq!(first["can_block_reload"], "YES");
    // Three part targets, as Apple recommends.
    assert_eq!(first["part_hold_back"], 1.002);
    assert_eq!(first["hint"]["type"], "PART");
    // Every URI carries the play query (signatures and `domain=` pass on).
    let map = first["map"].as_str().unwrap_or("");
    assert!(map.ends_with("?domain=play.example.com&ll=1"), "{map}");
    let parts = first["parts"].as_array().cloned().unwrap_or_default();
    assert!(!parts.is_empty(), "no parts: {text}");
    assert!(parts.iter().all(|p| p["duration"]
        .as_f64()
        .is_some_and(|d| d > 0.0 && d <= 0.334)));
    assert_eq!(parts[0]["independent"], "YES");

    // The initialization segment and a part are fMP4.
    let (status, init) = get(&format!("{base}/{map}"));
    assert_eq!(status, 200);
    assert_eq!(&init[4..8], b"ftyp");
    let part = parts.last().and_then(|p| p["uri"].as_str()).unwrap_or("");
    let (status, data) = get(&format!("{base}/{part}"));
    assert_eq!(status, 200);
    assert_eq!(&data[4..8], b"moof");

    // Blocking reload: ask for the part named by the preload hint; the
    // answer comes once it exists, and lists it.
    let hint = first["hint"]["uri"].as_str().unwrap_or("").to_owned();
    let (msn, index) = hint
        .split("-ll-")
        .nth(1)
        .and_then(|r| r.split(".m4s").next())
        .and_then(|r| r.split_once('.'))
        .map(|(m, i)| (m.parse::<u64>().unwrap_or(0), i.parse::<u64>().unwrap_or(0)))
        .expect("hint names a part");
    let (status, body) = get(&format!("{url}&_HLS_msn={msn}&_HLS_part={index}"));
    assert_eq!(status, 200);
    let next = parse(&String::from_utf8_lossy(&body));
    assert!(
        next["parts"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["uri"].as_str() == Some(hint.as_str())),
        "the held playlist does not list {hint}: {next}"
    );
    // A held part request (the next preload hint) answers with the part.
    let hint = next["hint"]["uri"].as_str().unwrap_or("").to_owned();
    let (status, data) = get(&format!("{base}/{hint}"));
    assert_eq!(status, 200);
    assert_eq!(&data[4..8], b"moof");
    // Too far ahead is refused rather than held.
    let (status, _) = get(&format!("{url}&_HLS_msn={}", msn + 10));
    assert_eq!(status, 400);

    // A player that knows nothing of LL-HLS plays the same playlist.
    assert_h264_aac(&url);

    // hls.js in low-latency mode, in Chromium.
    let shot = artifact("llhls-hlsjs.png");
    let seen = browser("browser_llhls.js", &[url.as_ref(), shot.as_ref()]);
    assert_eq!(
        (seen["videoWidth"].clone(), seen["videoHeight"].clone()),
        (640.into(), 360.into()),
        "{seen}"
    );
    assert!(seen["advanced"].as_f64().is_some_and(|a| a > 1.0), "{seen}");
    assert!(
        seen["parts"].as_u64().is_some_and(|n| n > 0),
        "hls.js saw no parts: {seen}"
    );
    assert_eq!(seen["canBlockReload"], true);
    // Reported, not asserted (a timed assertion would be noise here).
    eprintln!(
        "hls.js low-latency playback: latency {} s (target {} s)",
        seen["latency"], seen["targetLatency"]
    );
}
