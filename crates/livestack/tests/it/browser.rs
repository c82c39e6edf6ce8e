//! Recordings in a real browser: Debian's Chromium, driven by
//! playwright-core (tests/clients/browser_seek.js), loads a record
//! callback's `video_url` in a `<video>` element, reads its duration and
//! seeks. Chromium seeks only over byte ranges (served by a plain HTTP
//! server without them, the same file stays at 0 when asked for 20 s), and
//! learns an MP4's duration only from an index it can find.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;
use crate::media::add;
use crate::recording::{push, record_receiver, record_rule};

/// What the `<video>` element said after loading `url` and seeking to `to`.
fn seek_in_chromium(url: &str, to: f64) -> Value {
    browser("browser_seek.js", &[url.as_ref(), to.to_string().as_ref()])
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
