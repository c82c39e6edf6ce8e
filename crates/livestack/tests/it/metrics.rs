//! `GET /metrics` on the API port, scraped while a stream is pushed and
//! played and parsed with the Prometheus project's own parser (the PyPI
//! `prometheus-client`, tests/clients/parse_metrics.py): the numbers
//! match what the test did.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;
use crate::media::{add, live_push};

/// Every sample of a scrape: (name, labels, value).
pub(crate) fn scrape(server: &Server) -> Vec<(String, Value, f64)> {
    let raw = http(
        server.addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .expect("GET /metrics");
    assert_eq!(raw.status, 200);
    assert!(
        raw.header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{:?}",
        raw.headers
    );
    let mut parser = Command::new(repo_root().join(".venv/bin/python"))
        .arg(repo_root().join("tests/clients/parse_metrics.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python (run scripts/test, which installs the parser)");
    parser
        .stdin
        .take()
        .expect("stdin")
        .write_all(&raw.body)
        .expect("write");
    let out = parser.wait_with_output().expect("parser");
    assert!(
        out.status.success(),
        "the exposition does not parse: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&raw.body)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("json");
            (
                v["name"].as_str().unwrap_or("").to_owned(),
                v["labels"].clone(),
                v["value"].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect()
}

/// The value of the sample `name` whose labels include `labels`.
pub(crate) fn value(samples: &[(String, Value, f64)], name: &str, labels: Value) -> Option<f64> {
    let want = labels.as_object().cloned().unwrap_or_default();
    samples
        .iter()
        .find(|(n, l, _)| n == name && want.iter().all(|(k, v)| &l[k] == v))
        .map(|(_, _, v)| *v)
}

#[test]
fn metrics_count_the_requests_streams_players_and_bytes_the_test_made() {
    let server = Server::start();
    add(&server, "push.example.com", 0);
    add(&server, "play.example.com", 1);
    for _ in 0..3 {
        server.api("DescribeLiveStreamOnlineList", json!({})).ok();
    }
    server
        .api("DescribeLiveStreamOnlineList", json!({"NoSuchField": 1}))
        .expect_code("UnknownParameter");

    let _publisher = live_push(&server, "cam", 30);
    // A player of HTTP-FLV that reads 100 kB and stays.
    let mut player = TcpStream::connect(server.http).expect("connect");
    player
        .write_all(b"GET /live/cam.flv?domain=play.example.com HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("request");
    player
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut read = 0usize;
    let mut buf = [0u8; 16 * 1024];
    while read < 100_000 {
        let n = player.read(&mut buf).expect("read");
        assert!(n > 0, "the player was cut off after {read} bytes");
        read += n;
    }

    // A write is counted once it returns, and the player may read its
    // bytes before that: scrape until the counter has caught up.
    let flv = json!({"protocol": "flv", "domain": "play.example.com"});
    let mut s = scrape(&server);
    wait_until(Duration::from_secs(10), || {
        s = scrape(&server);
        value(&s, "livestack_play_bytes_total", flv.clone()).is_some_and(|b| b >= read as f64)
    });
    let ok = json!({"action": "DescribeLiveStreamOnlineList", "code": "Ok"});
    assert_eq!(value(&s, "livestack_api_requests_total", ok), Some(3.0));
    let bad = json!({"action": "DescribeLiveStreamOnlineList", "code": "UnknownParameter"});
    assert_eq!(value(&s, "livestack_api_requests_total", bad), Some(1.0));
    assert_eq!(
        value(
            &s,
            "livestack_api_request_duration_seconds_count",
            json!({"action": "DescribeLiveStreamOnlineList"})
        ),
        Some(4.0)
    );
    assert_eq!(value(&s, "livestack_streams", json!({})), Some(1.0));
    assert_eq!(value(&s, "livestack_pushes_total", json!({})), Some(1.0));
    let ingested = value(&s, "livestack_ingest_bytes_total", json!({}));
    assert!(
        ingested.is_some_and(|b| b > 90_000.0),
        "{ingested:?} bytes ingested, {read} read by the player"
    );
    assert_eq!(value(&s, "livestack_players", flv.clone()), Some(1.0));
    assert_eq!(value(&s, "livestack_plays_total", flv.clone()), Some(1.0));
    // Everything the player read was counted (and maybe a little more,
    // still in the socket's buffers).
    assert!(
        value(&s, "livestack_play_bytes_total", flv.clone()).is_some_and(|b| b >= read as f64),
        "{read} bytes read"
    );
    assert!(value(&s, "livestack_process_open_fds", json!({})).is_some_and(|n| n > 0.0));
    // Every API call above read the store.
    assert!(
        value(&s, "livestack_store_duration_seconds_count", json!({})).is_some_and(|n| n >= 4.0)
    );
    // The busiest streams have series of their own.
    let cam = json!({"domain": "push.example.com", "app": "live", "stream": "cam"});
    assert_eq!(
        value(&s, "livestack_top_stream_players", cam.clone()),
        Some(1.0)
    );
    assert!(value(&s, "livestack_top_stream_fps", cam).is_some());

    // The player leaves: the gauge goes back down.
    drop(player);
    assert!(
        wait_until(Duration::from_secs(10), || value(
            &scrape(&server),
            "livestack_players",
            flv.clone()
        ) == Some(0.0)),
        "the player is still counted"
    );
}

#[test]
fn the_grafana_dashboard_uses_only_metrics_livestack_exports() {
    let server = Server::start();
    let raw = http(
        server.addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .expect("GET /metrics");
    let text = String::from_utf8_lossy(&raw.body).into_owned();
    let families: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let dashboard = std::fs::read_to_string(repo_root().join("docs/grafana-dashboard.json"))
        .expect("dashboard");
    let mut used = 0;
    for (at, _) in dashboard.match_indices("livestack_") {
        let name: String = dashboard[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let family = ["_bucket", "_total", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name);
        assert!(
            families.contains(&family),
            "the dashboard uses {name}, which /metrics does not export: {families:?}"
        );
        used += 1;
    }
    assert!(used >= 9, "{used} metric uses in the dashboard");
}
