//! RTMPS: Debian's ffmpeg pushes and plays RTMP over TLS, checking the
//! certificate bound through the API to the domain it names by SNI.
//!
//! ffmpeg sends SNI only for a host name, so each client runs in a mount
//! namespace of its own whose `/etc/hosts` points the test domains at
//! 127.0.0.1 (`unshare`, as root: CI runs as root).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::harness::*;
use crate::media::{ffmpeg_bin, probe_with, setup, state, Publisher};

/// `program` run with `hosts` as its `/etc/hosts`.
fn resolving(hosts: &Path, program: &str) -> Command {
    let mut c = Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount --bind "$0" /etc/hosts && exec "$@""#)
        .arg(hosts)
        .arg(program);
    c
}

#[test]
fn rtmps_push_and_play_use_the_certificate_bound_to_each_domain() {
    let server = setup();
    server
        .api(
            "ModifyLivePushAuthKey",
            json!({"DomainName": "push.example.com", "Enable": 0}),
        )
        .ok();
    // CSS takes RTMPS pushes with the push domain's certificate: both
    // kinds of domain take a binding.
    let pem = crate::certs::bind_example_com(&server, &["push.example.com", "play.example.com"]);
    let dir = tempfile::tempdir().expect("tmp");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pem.crt).expect("write");
    let hosts = dir.path().join("hosts");
    std::fs::write(
        &hosts,
        "127.0.0.1 localhost push.example.com play.example.com nocert.example.org\n",
    )
    .expect("write");
    // The chain and the name are checked against the test CA.
    let ca = ca.display().to_string();
    let tls = ["-tls_verify", "1", "-ca_file", &ca];
    let port = server.rtmps.port();
    let _p = Publisher::start_full(
        resolving(&hosts, &ffmpeg_bin("ffmpeg")),
        &format!("rtmps://push.example.com:{port}/live/tls1"),
        "testsrc=size=640x360:rate=25",
        20,
        "flv",
        &tls,
    );
    assert!(
        wait_until(Duration::from_secs(10), || state(&server, "tls1")
            == "active"),
        "the RTMPS push never went live"
    );
    let probe = |host: &str| {
        probe_with(
            resolving(&hosts, &ffmpeg_bin("ffprobe")),
            &format!("rtmps://{host}:{port}/live/tls1"),
            &tls,
        )
    };
    let streams = probe("play.example.com");
    assert!(
        streams.contains(&("video".into(), "h264".into(), 640, 360))
            && streams.iter().any(|s| s.0 == "audio" && s.1 == "aac"),
        "{streams:?}"
    );
    // A name with no certificate bound gets no TLS session.
    assert!(probe("nocert.example.org").is_empty());
    // Switched off, the play domain's certificate is no longer served.
    server
        .api(
            "ModifyLiveDomainCertBindings",
            json!({"DomainInfos": [{"DomainName": "play.example.com", "Status": 0}]}),
        )
        .ok();
    assert!(wait_until(Duration::from_secs(5), || probe(
        "play.example.com"
    )
    .is_empty()));
}
