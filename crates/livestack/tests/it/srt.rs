//! SRT ingest with real libsrt callers: Debian's ffmpeg (`-f mpegts
//! srt://…?streamid=…`) and `srt-live-transmit`, with Tencent's
//! `#!::h=,r=,txSecret=,txTime=` streamid; played back with ffprobe over
//! RTMP, HTTP-FLV and HLS like any push (SRT playback is refused).

use std::process::{Command, Stdio};
use std::time::Duration;

use livestack_core::urlsign;
use serde_json::json;

use crate::harness::*;
use crate::media::{
    add, assert_h264_aac, assert_plays_over_rtmp_flv_and_hls, assert_pushes_refused,
    assert_reasons_logged, now, probe, push_key, setup, state, Publisher,
};

/// Tencent's SRT push URL for live/`stream` with `auth` (`txSecret=…,txTime=…`
/// or empty) on push.example.com.
fn srt_url(server: &Server, stream: &str, auth: &str) -> String {
    let auth = if auth.is_empty() {
        String::new()
    } else {
        format!(",{auth}")
    };
    format!(
        "srt://{}?streamid=#!::h=push.example.com,r=live/{stream}{auth}&latency=200000",
        server.srt
    )
}

/// A valid signature for live/`stream`, in streamid form.
fn signed(server: &Server, stream: &str) -> String {
    urlsign::query(&push_key(server), stream, now() + 600).replace('&', ",")
}

#[test]
fn an_srt_push_with_tencents_streamid_plays_over_rtmp_http_flv_and_hls() {
    let server = setup();
    let url = srt_url(&server, "srt1", &signed(&server, "srt1"));
    let mut publisher = Publisher::start_as(&url, "testsrc=size=640x360:rate=25", 20, "mpegts");
    assert!(
        wait_until(Duration::from_secs(10), || state(&server, "srt1")
            == "active"),
        "the SRT push never went live"
    );
    assert_plays_over_rtmp_flv_and_hls(&server, "srt1");
    // SRT playback (m=request) is refused, not half served.
    let srt_play = format!(
        "srt://{}?streamid=#!::h=play.example.com,r=live/srt1,m=request",
        server.srt
    );
    assert!(probe(&srt_play).is_empty());
    // The stream is measured like an RTMP push: its picture size and rate.
    let mut info = serde_json::Value::Null;
    let measured = wait_until(Duration::from_secs(15), || {
        info =
            server.api("DescribeLiveStreamPushInfoList", json!({})).ok()["DataInfoList"][0].clone();
        info["VideoFps"]
            .as_u64()
            .is_some_and(|fps| (23..=27).contains(&fps))
    });
    assert!(measured, "frame rate never measured as 25: {info}");
    assert_eq!(info["Resolution"], "640*360");
    assert_eq!(info["ClientIp"], "127.0.0.1");
    // SRT's own counts: its data packets, in the metrics (the API has no
    // field for them).
    let received = || {
        crate::metrics::value(
            &crate::metrics::scrape(&server),
            "livestack_srt_packets_total",
            json!({"packets": "received"}),
        )
        .unwrap_or(0.0)
    };
    assert!(
        wait_until(Duration::from_secs(5), || received() > 100.0),
        "no SRT packets counted"
    );
    let online = server.api("DescribeLiveStreamOnlineList", json!({}));
    assert_eq!(online.ok()["OnlineInfo"][0]["StreamName"], "srt1");
    // Dropping it ends the SRT connection (ffmpeg sees its peer close).
    server
        .api(
            "DropLiveStream",
            json!({"DomainName": "push.example.com", "AppName": "live", "StreamName": "srt1"}),
        )
        .ok();
    assert!(wait_until(Duration::from_secs(5), || state(
        &server, "srt1"
    ) == "inactive"));
    assert!(
        publisher.wait(Duration::from_secs(15)).is_some(),
        "ffmpeg kept pushing to a dropped stream"
    );
}

#[test]
fn srt_pushes_without_a_valid_signature_are_refused_before_they_connect() {
    let server = setup();
    add(&server, "off.example.com", 0);
    server
        .api("ForbidLiveDomain", json!({"DomainName": "off.example.com"}))
        .ok();
    let key = push_key(&server);
    let t = now();
    let expired = urlsign::query(&key, "s2", t - 60).replace('&', ",");
    let wrong = urlsign::query("wrong-key", "s3", t + 600).replace('&', ",");
    let cases = [
        (srt_url(&server, "s1", ""), "txSecret and txTime missing"),
        (srt_url(&server, "s2", &expired), "txTime expired"),
        (srt_url(&server, "s3", &wrong), "txSecret does not match"),
        (
            format!(
                "srt://{}?streamid=#!::h=off.example.com,r=live/s4",
                server.srt
            ),
            "push domain disabled",
        ),
    ];
    assert_pushes_refused(cases.iter().map(|c| &c.0), "mpegts");
    assert_reasons_logged(&server, t - 60, cases.iter().map(|c| c.1));
    // None of them went live.
    for s in ["s1", "s2", "s3"] {
        assert_eq!(state(&server, s), "inactive");
    }
}

#[test]
fn srt_live_transmit_pushes_to_livestack_as_libsrt_callers_do() {
    let server = setup();
    // ffmpeg sends TS over UDP to srt-live-transmit, which calls livestack.
    let relay_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free UDP port")
        .port();
    let streamid = format!(
        "#!::h=push.example.com,r=live/slt1,{}",
        signed(&server, "slt1")
    );
    let mut transmit = Command::new("srt-live-transmit")
        .arg("-q")
        .arg(format!("udp://127.0.0.1:{relay_port}"))
        .arg(format!("srt://{}?streamid={streamid}", server.srt))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("srt-live-transmit (apt-get install srt-tools; .ci/run does)");
    let _publisher = Publisher::start_as(
        &format!("udp://127.0.0.1:{relay_port}?pkt_size=1316"),
        "testsrc=size=640x360:rate=25",
        20,
        "mpegts",
    );
    let live = wait_until(Duration::from_secs(10), || {
        state(&server, "slt1") == "active"
    });
    let flv = format!(
        "http://{}/live/slt1.flv?domain=play.example.com",
        server.http
    );
    if live {
        assert_h264_aac(&flv);
    }
    let _ = transmit.kill();
    let _ = transmit.wait();
    assert!(live, "srt-live-transmit's push never went live");
}
