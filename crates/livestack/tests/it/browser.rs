//! Recordings in a real browser: Debian's Chromium, driven by
//! playwright-core (tests/clients/browser_seek.js), loads a record
//! callback's `video_url` in a `<video>` element, reads its duration and
//! seeks. Chromium seeks only over byte ranges (served by a plain HTTP
//! server without them, the same file stays at 0 when asked for 20 s), and
//! learns an MP4's duration only from an index it can find.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;
use crate::media::add;
use crate::recording::{push, record_receiver, record_rule};

/// Where Chromium is: `CHROMIUM`, or Debian's package.
fn chromium() -> String {
    let path = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} is missing: install Debian's chromium (apt-get install chromium); .ci/run does"
    );
    path
}

/// What the `<video>` element said after loading `url` and seeking to `to`.
fn seek_in_chromium(url: &str, to: f64) -> Value {
    let script = repo_root().join("tests/clients/browser_seek.js");
    assert!(
        repo_root()
            .join("tests/clients/node_modules/playwright-core")
            .exists(),
        "playwright-core is missing: run scripts/test, which installs the test clients"
    );
    let out = Command::new("node")
        .arg(&script)
        .args([url, &to.to_string()])
        .env("CHROMIUM", chromium())
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser_seek.js failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{stdout:?}: {e}"))
}

#[test]
fn a_recorded_mp4_shows_its_real_duration_in_chromium_and_seeks_to_where_it_is_asked() {
    let server = Server::start();
    add(&server, "push.example.com", 0);
    let receiver = record_receiver(&server);
    record_rule(
        &server,
        json!({"Mp4Param": {"Enable": 1, "RecordInterval": 1800}}),
    );
    let mut publisher = push(&server, "cam", 25);
    assert!(
        publisher.wait(Duration::from_secs(60)).is_some(),
        "the push did not end"
    );
    let calls = receiver.wait_for("/record", 1, Duration::from_secs(30));
    let url = calls[0].body["video_url"].as_str().unwrap_or("").to_owned();
    assert!(url.ends_with(".mp4"), "{}", calls[0].body);

    let seen = seek_in_chromium(&url, 20.0);
    assert!(seen["error"].is_null(), "{url}: {seen}");
    let duration = seen["duration"].as_f64().unwrap_or(0.0);
    assert!((23.5..=26.5).contains(&duration), "{url}: {seen}");
    let at = seen["currentTime"].as_f64().unwrap_or(0.0);
    assert!((19.5..=20.5).contains(&at), "{url}: {seen}");
}
