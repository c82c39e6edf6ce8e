//! WebRTC playback with real peers: aiortc (PyPI) as a WHEP and as a LEB
//! client, counting decoded video frames and the loudness of decoded
//! audio (AAC from the publisher, Opus on the wire); and Debian's Chromium
//! playing over WHEP in a page.

use std::process::Command;
use std::time::Duration;

use livestack_core::urlsign;
use serde_json::Value;

use crate::harness::*;
use crate::media::{
    assert_plays_over_rtmp_flv_and_hls, ffmpeg_bin, live_push, now, push_key, push_url, setup,
    state, Publisher,
};
use crate::metrics::{scrape, value};

/// Turns play authentication on for play.example.com; its key.
fn require_play_signatures(server: &Server) -> &'static str {
    server
        .api(
            "ModifyLivePlayAuthKey",
            serde_json::json!({"DomainName": "play.example.com", "Enable": 1, "AuthKey": "playkey", "AuthDelta": 600}),
        )
        .ok();
    "playkey"
}

/// Runs `tests/clients/webrtc_play.py` with `args`; its JSON report.
fn aiortc(args: &[&str]) -> Value {
    let out = Command::new(repo_root().join(".venv/bin/python"))
        .arg(repo_root().join("tests/clients/webrtc_play.py"))
        .args(args)
        .output()
        .expect("python (run scripts/test, which installs aiortc)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("aiortc {}: {}", args[0], stdout.trim());
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|_| {
        panic!(
            "webrtc_play.py printed no report: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Video frames of the published size and audible audio (the publisher's
/// 440 Hz sine, through AAC and Opus).
fn assert_played(report: &Value) {
    assert!(
        report["video_frames"].as_u64().unwrap_or(0) >= 25,
        "too few video frames decoded: {report}"
    );
    assert_eq!(
        (report["width"].as_u64(), report["height"].as_u64()),
        (Some(640), Some(360)),
        "{report}"
    );
    assert!(
        report["audio_frames"].as_u64().unwrap_or(0) >= 50,
        "too few audio frames decoded: {report}"
    );
    // ffmpeg's sine at 1/8 of full scale: an RMS of 2896 in 16 bits.
    let rms = report["audio_rms_median"].as_f64().unwrap_or(0.0);
    assert!(
        (2400.0..3400.0).contains(&rms),
        "the audio is not the publisher's sine at its level: {report}"
    );
}

#[test]
fn whep_and_leb_players_decode_the_pushed_video_and_hear_its_audio() {
    let server = setup();
    let _publisher = live_push(&server, "rtc1", 30);
    let whep = format!(
        "http://{}/live/rtc1/whep?domain=play.example.com",
        server.http
    );
    let report = aiortc(&["whep", &whep, "--seconds", "4"]);
    assert_eq!(report["status"], 201, "{report}");
    assert_played(&report);
    assert_eq!(report["delete_status"], 200, "{report}");

    let pull = format!("http://{}/webrtc/v1/pullstream", server.http);
    let report = aiortc(&[
        "leb",
        &pull,
        "webrtc://play.example.com/live/rtc1",
        "--seconds",
        "4",
    ]);
    assert_eq!(report["errcode"], 0, "{report}");
    assert_played(&report);
    assert_eq!(report["stop_errcode"], 0, "{report}");
}

/// Attempts of WebRTC baseline jobs started on `server` so far.
fn baseline_starts(server: &Server) -> f64 {
    let samples = scrape(server);
    value(
        &samples,
        "livestack_job_starts_total",
        serde_json::json!({"kind": "webrtc_baseline"}),
    )
    .unwrap_or(0.0)
}

#[test]
fn webrtc_players_of_a_stream_with_b_frames_share_one_baseline_transcode_and_others_none() {
    let server = setup();
    // Without B-frames (the publisher's zero-latency x264): passed through.
    let _plain = live_push(&server, "rtc6", 30);
    let whep = |stream: &str| {
        format!(
            "http://{}/live/{stream}/whep?domain=play.example.com",
            server.http
        )
    };
    assert_played(&aiortc(&["whep", &whep("rtc6"), "--seconds", "3"]));
    assert_eq!(baseline_starts(&server), 0.0, "no B-frames, no transcode");

    // Two B-frames between references: WebRTC players get the stream
    // re-encoded without them, one job for both players.
    let url = push_url(
        &server,
        "rtc7",
        &urlsign::query(&push_key(&server), "rtc7", now() + 600),
    );
    let _reordered = Publisher::start_full(
        Command::new(ffmpeg_bin("ffmpeg")),
        &url,
        "testsrc=size=640x360:rate=25",
        30,
        "flv",
        &["-bf", "2"],
    );
    assert!(wait_until(Duration::from_secs(10), || state(
        &server, "rtc7"
    ) == "active"));
    assert_played(&aiortc(&["whep", &whep("rtc7"), "--seconds", "3"]));
    assert_eq!(baseline_starts(&server), 1.0);
    assert_played(&aiortc(&["whep", &whep("rtc7"), "--seconds", "3"]));
    assert_eq!(baseline_starts(&server), 1.0, "the second player shares it");
    // Other players still get the stream as pushed.
    assert_plays_over_rtmp_flv_and_hls(&server, "rtc7");
}

#[test]
fn webrtc_plays_need_the_play_domains_signature_like_every_other_play() {
    let server = setup();
    let _publisher = live_push(&server, "rtc2", 30);
    let key = require_play_signatures(&server);
    // Unsigned, badly signed: refused before any session exists.
    let whep = format!(
        "http://{}/live/rtc2/whep?domain=play.example.com",
        server.http
    );
    let report = aiortc(&["whep", &whep, "--seconds", "1"]);
    assert_eq!(report["status"], 403, "{report}");
    let pull = format!("http://{}/webrtc/v1/pullstream", server.http);
    let forged = "webrtc://play.example.com/live/rtc2?txSecret=00000000000000000000000000000000&txTime=7fffffff";
    let report = aiortc(&["leb", &pull, forged, "--seconds", "1"]);
    assert_eq!(report["errcode"], 403, "{report}");
    // A stream that is not live: 404 over WHEP, errcode 404 over LEB.
    let signed = urlsign::query(key, "nothere", now() + 600);
    let whep_missing = format!(
        "http://{}/live/nothere/whep?domain=play.example.com&{signed}",
        server.http
    );
    assert_eq!(
        aiortc(&["whep", &whep_missing, "--seconds", "1"])["status"],
        404
    );
    // Signed: plays.
    let signed = urlsign::query(key, "rtc2", now() + 600);
    let report = aiortc(&[
        "leb",
        &pull,
        &format!("webrtc://play.example.com/live/rtc2?{signed}"),
        "--seconds",
        "3",
    ]);
    assert_eq!(report["errcode"], 0, "{report}");
    assert!(report["video_frames"].as_u64().unwrap_or(0) > 0, "{report}");
}

/// Pushes `stream` and plays it in Chromium from the player page
/// (`tcp`: with the server's UDP candidate hidden from the page), keeping
/// a screenshot named `shot`; checks the picture plays and returns what
/// the page reported.
fn chromium_whep(stream: &str, shot: &str, tcp: bool) -> Value {
    let server = setup();
    let _publisher = live_push(&server, stream, 30);
    let whep = format!(
        "http://{}/live/{stream}/whep?domain=play.example.com",
        server.http
    );
    let page = format!("http://{}/webrtc/player.html#{whep}", server.http);
    let shot = artifact(shot);
    let mut args = vec![page.as_ref(), shot.as_os_str()];
    if tcp {
        args.push("tcp".as_ref());
    }
    let seen = browser("browser_whep.js", &args);
    assert_eq!(
        (seen["videoWidth"].as_u64(), seen["videoHeight"].as_u64()),
        (Some(640), Some(360)),
        "{seen}"
    );
    assert!(
        seen["advanced"].as_f64().is_some_and(|a| a > 1.0),
        "the video did not play on: {seen}"
    );
    seen
}

#[test]
fn chromium_plays_a_stream_over_whep_in_the_player_page() {
    let seen = chromium_whep("rtc3", "webrtc-whep-chromium.png", false);
    assert_eq!(seen["transport"], "udp", "{seen}");
}

#[test]
fn chromium_plays_over_ice_tcp_when_udp_does_not_get_through() {
    let seen = chromium_whep("rtc8", "webrtc-whep-chromium-tcp.png", true);
    assert_eq!(seen["transport"], "tcp", "{seen}");
}

/// WebRTC players on play.example.com, as the metrics count them.
fn webrtc_players(server: &Server) -> f64 {
    let labels = serde_json::json!({"protocol": "webrtc", "domain": "play.example.com"});
    crate::metrics::value(&crate::metrics::scrape(server), "livestack_players", labels)
        .unwrap_or(0.0)
}

#[test]
fn a_webrtc_player_that_vanishes_is_cleaned_up_within_seconds() {
    let server = setup();
    let _publisher = live_push(&server, "rtc4", 40);
    let whep = format!(
        "http://{}/live/rtc4/whep?domain=play.example.com",
        server.http
    );
    // Closed with DELETE: gone at once.
    let report = aiortc(&["whep", &whep, "--seconds", "2"]);
    assert_eq!(report["delete_status"], 200, "{report}");
    assert!(wait_until(Duration::from_secs(2), || webrtc_players(
        &server
    ) == 0.0));
    // A player that disappears without a word (no DELETE, no more ICE
    // consent checks) is dropped once its consent lapses.
    let report = aiortc(&["whep", &whep, "--seconds", "2", "--vanish"]);
    assert!(report["video_frames"].as_u64().unwrap_or(0) > 0, "{report}");
    assert_eq!(webrtc_players(&server), 1.0);
    let gone = std::time::Instant::now();
    assert!(
        wait_until(Duration::from_secs(30), || webrtc_players(&server) == 0.0),
        "the vanished player's session was never cleaned up"
    );
    eprintln!(
        "vanished WebRTC player cleaned up after {:?}",
        gone.elapsed()
    );
    // A session id that does not exist: 404.
    let deleted = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "DELETE",
        ])
        .arg(format!(
            "http://{}/webrtc/session/nosuchsession",
            server.http
        ))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&deleted.stdout), "404");
}

/// Starts `tests/clients/webrtc_publish.py` with `args` (a WHIP push).
fn whip_publisher(args: &[&str]) -> std::process::Child {
    Command::new(repo_root().join(".venv/bin/python"))
        .arg(repo_root().join("tests/clients/webrtc_publish.py"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python (run scripts/test, which installs aiortc)")
}

/// The publisher's JSON report, once it has ended.
fn whip_report(child: std::process::Child) -> Value {
    let out = child.wait_with_output().expect("webrtc_publish.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("aiortc whip: {}", stdout.trim());
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|_| {
        panic!(
            "webrtc_publish.py printed no report: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn a_whip_push_is_an_ordinary_push_that_plays_over_rtmp_flv_and_hls_with_aac() {
    let server = setup();
    let whip = format!(
        "http://{}/live/whip1/whip?domain=push.example.com",
        server.http
    );
    // No signature, or a wrong one: 401, and nothing goes live.
    let report = whip_report(whip_publisher(&[&whip, "--seconds", "1"]));
    assert_eq!(report["status"], 401, "{report}");
    let forged = "txSecret=00000000000000000000000000000000&txTime=7fffffff";
    let report = whip_report(whip_publisher(&[
        &whip,
        "--seconds",
        "1",
        "--token",
        forged,
    ]));
    assert_eq!(report["status"], 401, "{report}");
    assert_ne!(state(&server, "whip1"), "active");
    // Signed with the push key, as OBS sends its stream key: a bearer token.
    let signed = urlsign::query(&push_key(&server), "whip1", now() + 600);
    let publisher = whip_publisher(&[&whip, "--seconds", "15", "--token", &signed]);
    assert!(
        wait_until(Duration::from_secs(15), || state(&server, "whip1")
            == "active"),
        "the WHIP push never went live"
    );
    // Opus became AAC; H.264 passed through.
    let [_, flv, _] = assert_plays_over_rtmp_flv_and_hls(&server, "whip1");
    // And the AAC is the publisher's sine (1/8 of full scale: about -21
    // dBFS RMS), not silence.
    let stats = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostats",
            "-rw_timeout",
            "10000000",
            "-i",
            &flv,
        ])
        .args([
            "-t",
            "2",
            "-vn",
            "-af",
            "astats=measure_perchannel=none",
            "-f",
            "null",
            "-",
        ])
        .output()
        .expect("ffmpeg");
    let log = String::from_utf8_lossy(&stats.stderr);
    let rms = log
        .lines()
        .filter_map(|l| l.split("RMS level dB:").nth(1))
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .next_back();
    assert!(
        rms.is_some_and(|db| (-27.0..-15.0).contains(&db)),
        "the WHIP push's audio is not its sine: RMS {rms:?} dB\n{log}"
    );
    eprintln!("WHIP audio over HTTP-FLV: RMS {rms:?} dBFS");
    let online = server.api("DescribeLiveStreamOnlineList", serde_json::json!({}));
    assert_eq!(online.ok()["OnlineInfo"][0]["StreamName"], "whip1");
    let report = whip_report(publisher);
    assert_eq!(report["status"], 201, "{report}");
    assert_eq!(report["connection"], "connected", "{report}");
    assert_eq!(report["delete_status"], 200, "{report}");
    // DELETE ended the push.
    assert!(wait_until(Duration::from_secs(5), || state(
        &server, "whip1"
    ) == "inactive"));
}
