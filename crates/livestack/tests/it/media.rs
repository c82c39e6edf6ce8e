//! The media plane end to end: ffmpeg publishes a generated stream over
//! RTMP; ffprobe plays it back over RTMP, HTTP-FLV and HLS; the Python SDK
//! watches and controls it.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use livestack_core::urlsign;
use serde_json::{json, Value};

use crate::harness::*;

/// A running `ffmpeg` publisher, killed on drop.
pub(crate) struct Publisher {
    child: Child,
}

impl Publisher {
    /// Publishes `seconds` of 640x360 25 fps H.264 (1 s GOP) + AAC to `url`.
    pub(crate) fn start(url: &str, seconds: u32) -> Publisher {
        Publisher::start_with(url, "testsrc=size=640x360:rate=25", seconds)
    }

    /// Publishes `seconds` of the lavfi source `video` (H.264, 1 s GOP at
    /// 25 fps) + AAC to `url`.
    pub(crate) fn start_with(url: &str, video: &str, seconds: u32) -> Publisher {
        Publisher::start_as(url, video, seconds, "flv")
    }

    /// Publishes like [`start_with`](Publisher::start_with) in the
    /// container `format` (`flv` for RTMP, `mpegts` for SRT or UDP).
    pub(crate) fn start_as(url: &str, video: &str, seconds: u32, format: &str) -> Publisher {
        Publisher::start_full(
            Command::new(ffmpeg_bin("ffmpeg")),
            url,
            video,
            seconds,
            format,
            &[],
        )
    }

    /// Publishes like [`start_as`](Publisher::start_as) through `ffmpeg`
    /// (the program, or a wrapper that runs it), with `output` options
    /// before the URL (TLS options for RTMPS, say).
    pub(crate) fn start_full(
        mut ffmpeg: Command,
        url: &str,
        video: &str,
        seconds: u32,
        format: &str,
        output: &[&str],
    ) -> Publisher {
        let child = ffmpeg
            .args(["-hide_banner", "-loglevel", "error", "-re"])
            .args(["-f", "lavfi", "-i", video])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
                "-pix_fmt",
                "yuv420p",
            ])
            .args([
                "-g", "25", "-b:v", "600k", "-maxrate", "600k", "-bufsize", "600k",
            ])
            .args(["-c:a", "aac", "-b:a", "64k"])
            .args(["-t", &seconds.to_string(), "-f", format])
            .args(output)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ffmpeg");
        Publisher { child }
    }

    /// Waits up to `limit` for ffmpeg to exit.
    pub(crate) fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn ffmpeg_bin(name: &str) -> String {
    let path = format!("/usr/bin/{name}");
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} is missing: install Debian's ffmpeg (apt-get install ffmpeg); .ci/run does"
    );
    path
}

/// Streams as ffprobe sees them: (codec_type, codec_name, width, height).
pub(crate) fn probe(url: &str) -> Vec<(String, String, u64, u64)> {
    probe_with(Command::new(ffmpeg_bin("ffprobe")), url, &[])
}

/// [`probe`] through `ffprobe` (the program, or a wrapper that runs it)
/// with `input` options before the URL.
pub(crate) fn probe_with(
    mut ffprobe: Command,
    url: &str,
    input: &[&str],
) -> Vec<(String, String, u64, u64)> {
    let out = ffprobe
        .args(["-v", "error", "-rw_timeout", "10000000"])
        .args(input)
        .args([
            "-show_entries",
            "stream=codec_type,codec_name,width,height",
            "-of",
            "json",
            url,
        ])
        .output()
        .expect("ffprobe");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v["streams"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["codec_type"] == "video" || s["codec_type"] == "audio")
        .map(|s| {
            (
                s["codec_type"].as_str().unwrap_or("").to_owned(),
                s["codec_name"].as_str().unwrap_or("").to_owned(),
                s["width"].as_u64().unwrap_or(0),
                s["height"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// Checks that live/`stream` plays on play.example.com over RTMP,
/// HTTP-FLV and HLS (once its first segment is cut) as H.264 640x360 and
/// AAC; returns those three URLs.
pub(crate) fn assert_plays_over_rtmp_flv_and_hls(server: &Server, stream: &str) -> [String; 3] {
    let rtmp = format!(
        "rtmp://{}/live/{stream}?domain=play.example.com",
        server.rtmp
    );
    let flv = format!(
        "http://{}/live/{stream}.flv?domain=play.example.com",
        server.http
    );
    let hls = format!(
        "http://{}/live/{stream}.m3u8?domain=play.example.com",
        server.http
    );
    assert_h264_aac(&rtmp);
    assert_h264_aac(&flv);
    assert!(
        wait_until(Duration::from_secs(10), || !probe(&hls).is_empty()),
        "no HLS playlist"
    );
    assert_h264_aac(&hls);
    [rtmp, flv, hls]
}

/// Checks that ffmpeg gives up pushing 640x360 H.264 + AAC in `format`
/// to each of `urls`: the server refused every one.
pub(crate) fn assert_pushes_refused<'a>(urls: impl IntoIterator<Item = &'a String>, format: &str) {
    for url in urls {
        let mut p = Publisher::start_as(url, "testsrc=size=640x360:rate=25", 5, format);
        let status = p
            .wait(Duration::from_secs(15))
            .expect("ffmpeg gives up on a refused push");
        assert!(!status.success(), "{url} was accepted");
    }
}

/// Checks that each of `reasons` is the `StopReason` of a push event from
/// `since` (Unix seconds) on.
pub(crate) fn assert_reasons_logged<'a>(
    server: &Server,
    since: i64,
    reasons: impl IntoIterator<Item = &'a str>,
) {
    let logged = event_reasons(server, since);
    for reason in reasons {
        assert!(
            logged.iter().any(|r| r == reason),
            "{reason} not in {logged:?}"
        );
    }
}

pub(crate) fn assert_h264_aac(url: &str) {
    let streams = probe(url);
    assert!(
        streams.contains(&("video".into(), "h264".into(), 640, 360))
            && streams.iter().any(|s| s.0 == "audio" && s.1 == "aac"),
        "{url}: {streams:?}"
    );
}

/// Records `seconds` of `url` with ffmpeg (stream copy) and returns the
/// file's duration and whether its first video frame is a keyframe.
pub(crate) fn record(url: &str, seconds: u32, dir: &std::path::Path, name: &str) -> (f64, bool) {
    let file = dir.join(name);
    let status = Command::new(ffmpeg_bin("ffmpeg"))
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-rw_timeout",
            "10000000",
            "-i",
            url,
            "-t",
            &seconds.to_string(),
            "-c",
            "copy",
            "-y",
        ])
        .arg(&file)
        .status()
        .expect("ffmpeg");
    assert!(status.success(), "recording {url} failed");
    let out = Command::new(ffmpeg_bin("ffprobe"))
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "json",
        ])
        .arg(&file)
        .output()
        .expect("ffprobe");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let duration = v["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0);
    let out = Command::new(ffmpeg_bin("ffprobe"))
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-read_intervals",
            "%+#1",
            "-show_entries",
            "frame=key_frame",
            "-of",
            "json",
        ])
        .arg(&file)
        .output()
        .expect("ffprobe");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (duration, v["frames"][0]["key_frame"] == 1)
}

pub(crate) fn add(server: &Server, name: &str, domain_type: u64) {
    server
        .api(
            "AddLiveDomain",
            json!({"DomainName": name, "DomainType": domain_type}),
        )
        .ok();
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

pub(crate) fn push_key(server: &Server) -> String {
    server
        .api(
            "DescribeLivePushAuthKey",
            json!({"DomainName": "push.example.com"}),
        )
        .ok()["PushAuthKeyInfo"]["MasterAuthKey"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

/// A push URL to the test server, naming the push domain with `domain=`.
pub(crate) fn push_url(server: &Server, stream: &str, auth: &str) -> String {
    let sep = if auth.is_empty() { "" } else { "&" };
    format!(
        "rtmp://{}/live/{stream}?domain=push.example.com{sep}{auth}",
        server.rtmp
    )
}

/// A signed push of live/`stream` for `seconds`, once it is live.
pub(crate) fn live_push(server: &Server, stream: &str, seconds: u32) -> Publisher {
    let p = Publisher::start(
        &push_url(
            server,
            stream,
            &urlsign::query(&push_key(server), stream, now() + 600),
        ),
        seconds,
    );
    assert!(
        wait_until(Duration::from_secs(10), || state(server, stream)
            == "active"),
        "push of {stream} never went live"
    );
    p
}

/// The `StopReason` of every push event from `since` (Unix seconds) on.
fn event_reasons(server: &Server, since: i64) -> Vec<String> {
    let (start, end) = (
        livestack_api::time::utc_iso(since),
        livestack_api::time::utc_iso(now() + 1),
    );
    let events = server.api(
        "DescribeLiveStreamEventList",
        json!({"StartTime": start, "EndTime": end, "PageSize": 100}),
    );
    events.ok()["EventList"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["StopReason"].as_str().unwrap_or("").to_owned())
        .collect()
}

pub(crate) fn state(server: &Server, stream: &str) -> String {
    server
        .api(
            "DescribeLiveStreamState",
            json!({"DomainName": "push.example.com", "AppName": "live", "StreamName": stream}),
        )
        .ok()["StreamState"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

pub(crate) fn setup() -> Server {
    let server = Server::start();
    add(&server, "push.example.com", 0);
    add(&server, "play.example.com", 1);
    server
}

#[test]
fn a_pushed_stream_plays_over_rtmp_http_flv_and_hls() {
    let server = setup();
    let key = push_key(&server);
    let mut publisher = Publisher::start(
        &push_url(&server, "cam1", &urlsign::query(&key, "cam1", now() + 600)),
        20,
    );
    assert!(
        wait_until(Duration::from_secs(10), || state(&server, "cam1")
            == "active"),
        "push never went live"
    );

    // What the API reports is measured from the stream, once a whole
    // measuring window has passed.
    let mut info = Value::Null;
    let measured = wait_until(Duration::from_secs(15), || {
        info =
            server.api("DescribeLiveStreamPushInfoList", json!({})).ok()["DataInfoList"][0].clone();
        info["VideoFps"]
            .as_u64()
            .is_some_and(|fps| (23..=27).contains(&fps))
    });
    assert!(measured, "frame rate never measured as 25: {info}");
    let row = &info;
    assert_eq!(row["StreamName"], "cam1");
    assert_eq!(row["Resolution"], "640*360");
    assert_eq!(
        (row["Vcodec"].clone(), row["Acodec"].clone()),
        (json!("H264"), json!("AAC"))
    );
    assert_eq!(row["AsampleRate"], 44100);
    let fps = row["VideoFps"].as_u64().unwrap_or(0);
    assert!((23..=27).contains(&fps), "fps {fps}");
    let bps = row["VideoSpeed"].as_u64().unwrap_or(0);
    assert!((300_000..=1_200_000).contains(&bps), "video bitrate {bps}");
    assert_eq!(row["ClientIp"], "127.0.0.1");
    let online = server.api("DescribeLiveStreamOnlineList", json!({}));
    assert_eq!(online.ok()["OnlineInfo"][0]["StreamName"], "cam1");
    assert_eq!(online.ok()["TotalNum"], 1);

    let [rtmp, flv, _] = assert_plays_over_rtmp_flv_and_hls(&server, "cam1");

    // A player starts on a keyframe at once (GOP cache) and gets the
    // stream in real time.
    let dir = tempfile::tempdir().expect("tmp");
    for (url, name) in [(&rtmp, "rtmp.flv"), (&flv, "http.flv")] {
        let (duration, starts_on_key) = record(url, 3, dir.path(), name);
        assert!(starts_on_key, "{url} did not start on a keyframe");
        assert!(
            (2.5..=3.6).contains(&duration),
            "{url}: recorded {duration} s"
        );
    }

    assert!(
        publisher
            .wait(Duration::from_secs(40))
            .is_some_and(|s| s.success()),
        "ffmpeg push failed"
    );
    assert!(wait_until(Duration::from_secs(5), || state(
        &server, "cam1"
    ) == "inactive"));
    let start = livestack_api::time::utc_iso(now() - 3600);
    let end = livestack_api::time::utc_iso(now());
    let published = server.api(
        "DescribeLiveStreamPublishedList",
        json!({"DomainName": "push.example.com", "StartTime": start, "EndTime": end}),
    );
    let row = &published.ok()["PublishInfo"][0];
    assert_eq!(row["StreamName"], "cam1");
    assert_eq!(row["Resolution"], "640x360");
    assert!(row["Duration"].as_u64().unwrap_or(0) >= 18, "{row}");
}

#[test]
fn pushes_are_refused_for_each_documented_reason_and_logged() {
    let server = setup();
    add(&server, "open.example.com", 0);
    server
        .api(
            "ModifyLivePushAuthKey",
            json!({"DomainName": "open.example.com", "Enable": 0}),
        )
        .ok();
    add(&server, "off.example.com", 0);
    server
        .api("ForbidLiveDomain", json!({"DomainName": "off.example.com"}))
        .ok();
    server
        .api(
            "ForbidLiveStream",
            json!({"DomainName": "open.example.com", "AppName": "live", "StreamName": "banned"}),
        )
        .ok();
    let key = push_key(&server);
    let t = now();
    let cases = [
        (
            format!("rtmp://{}/live/s1?domain=nope.example.com", server.rtmp),
            "push domain not configured",
        ),
        (
            format!("rtmp://{}/live/s2?domain=off.example.com", server.rtmp),
            "push domain disabled",
        ),
        (
            format!("rtmp://{}/live/banned?domain=open.example.com", server.rtmp),
            "stream forbidden",
        ),
        (push_url(&server, "s3", ""), "txSecret and txTime missing"),
        (
            push_url(&server, "s4", &urlsign::query(&key, "s4", t - 60)),
            "txTime expired",
        ),
        (
            push_url(&server, "s5", &urlsign::query("wrong-key", "s5", t + 600)),
            "txSecret does not match",
        ),
        (push_url(&server, "s6", "txSecret=abc"), "txTime missing"),
    ];
    assert_pushes_refused(cases.iter().map(|c| &c.0), "flv");
    // Refusals on an unknown domain have no owner to show them to.
    assert_reasons_logged(&server, t - 60, cases[1..].iter().map(|c| c.1));
    // The backup key is accepted too.
    server
        .api(
            "ModifyLivePushAuthKey",
            json!({"DomainName": "push.example.com", "BackupAuthKey": "spare"}),
        )
        .ok();
    let mut p = Publisher::start(
        &push_url(&server, "s7", &urlsign::query("spare", "s7", t + 600)),
        2,
    );
    assert!(p.wait(Duration::from_secs(15)).is_some_and(|s| s.success()));
}

#[test]
fn dropping_and_forbidding_a_live_stream_end_the_push_within_a_second() {
    let server = setup();
    server
        .api(
            "ModifyLivePushAuthKey",
            json!({"DomainName": "push.example.com", "Enable": 0}),
        )
        .ok();
    let mut p = Publisher::start(&push_url(&server, "d1", ""), 30);
    assert!(wait_until(Duration::from_secs(10), || state(&server, "d1") == "active"));
    let at = Instant::now();
    server
        .api(
            "DropLiveStream",
            json!({"DomainName": "push.example.com", "AppName": "live", "StreamName": "d1"}),
        )
        .ok();
    assert!(
        p.wait(Duration::from_secs(5)).is_some(),
        "ffmpeg still pushing after DropLiveStream"
    );
    assert!(at.elapsed() < Duration::from_secs(5));
    assert_eq!(state(&server, "d1"), "inactive");
    server
        .api(
            "DropLiveStream",
            json!({"DomainName": "push.example.com", "AppName": "live", "StreamName": "d1"}),
        )
        .expect_code("InternalError.StreamStatusError");

    let mut p = Publisher::start(&push_url(&server, "f1", ""), 30);
    assert!(wait_until(Duration::from_secs(10), || state(&server, "f1") == "active"));
    server.api("ForbidLiveStream", json!({"DomainName": "push.example.com", "AppName": "live", "StreamName": "f1", "Reason": "test"})).ok();
    assert!(
        p.wait(Duration::from_secs(5)).is_some(),
        "ffmpeg still pushing after ForbidLiveStream"
    );
    assert_eq!(state(&server, "f1"), "forbid");
    let mut again = Publisher::start(&push_url(&server, "f1", ""), 3);
    assert!(!again
        .wait(Duration::from_secs(15))
        .expect("refused")
        .success());
    server
        .api(
            "ResumeLiveStream",
            json!({"DomainName": "push.example.com", "AppName": "live", "StreamName": "f1"}),
        )
        .ok();
    assert_eq!(state(&server, "f1"), "inactive");
    let mut resumed = Publisher::start(&push_url(&server, "f1", ""), 2);
    assert!(resumed
        .wait(Duration::from_secs(15))
        .is_some_and(|s| s.success()));

    let events = server.api(
        "DescribeLiveStreamEventList",
        json!({"StartTime": livestack_api::time::utc_iso(now() - 300), "EndTime": livestack_api::time::utc_iso(now()), "StreamName": "d1", "IsStrict": 1}),
    );
    assert_eq!(
        events.ok()["EventList"][0]["StopReason"],
        "dropped by DropLiveStream"
    );
}

#[test]
fn play_authentication_and_referer_rules_guard_http_and_rtmp_playback() {
    let server = setup();
    server
        .api(
            "ModifyLivePushAuthKey",
            json!({"DomainName": "push.example.com", "Enable": 0}),
        )
        .ok();
    server
        .api(
            "ModifyLivePlayAuthKey",
            json!({"DomainName": "play.example.com", "Enable": 1, "AuthKey": "playkey"}),
        )
        .ok();
    let _p = Publisher::start(&push_url(&server, "p1", ""), 20);
    assert!(wait_until(Duration::from_secs(10), || state(&server, "p1") == "active"));
    let signed = urlsign::query("playkey", "p1", now() + 600);
    let flv = |q: &str| {
        format!(
            "http://{}/live/p1.flv?domain=play.example.com&{q}",
            server.http
        )
    };
    let head = |url: &str, referer: Option<&str>| -> u16 {
        let path = url
            .split_once(&server.http.to_string())
            .map(|(_, p)| p.to_owned())
            .unwrap_or_default();
        let referer = referer
            .map(|r| format!("Referer: {r}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "HEAD {path} HTTP/1.1\r\nHost: {}\r\n{referer}Connection: close\r\n\r\n",
            server.http
        );
        http(server.http, req.as_bytes()).expect("http").status
    };
    assert_eq!(head(&flv(""), None), 403);
    assert_eq!(
        head(&flv(&urlsign::query("wrong", "p1", now() + 600)), None),
        403
    );
    assert_eq!(head(&flv(&signed), None), 200);
    assert_h264_aac(&flv(&signed));
    assert!(probe(&format!(
        "rtmp://{}/live/p1?domain=play.example.com",
        server.rtmp
    ))
    .is_empty());
    assert_h264_aac(&format!(
        "rtmp://{}/live/p1?domain=play.example.com&{signed}",
        server.rtmp
    ));
    // A stream that is not live is not found.
    assert_eq!(
        head(
            &format!(
                "http://{}/live/none.flv?domain=play.example.com&{}",
                server.http,
                urlsign::query("playkey", "none", now() + 600)
            ),
            None
        ),
        404
    );

    server
        .api(
            "ModifyLiveDomainReferer",
            json!({"DomainName": "play.example.com", "Enable": 1, "Type": 1, "AllowEmpty": 0, "Rules": "good.example.org"}),
        )
        .ok();
    assert_eq!(
        head(&flv(&signed), Some("https://good.example.org/page")),
        200
    );
    assert_eq!(head(&flv(&signed), Some("https://evil.example.org/")), 403);
    assert_eq!(head(&flv(&signed), None), 403);
    // Browsers get CORS headers.
    let path = format!("/live/p1.flv?domain=play.example.com&{signed}");
    let resp = http(server.http, format!("HEAD {path} HTTP/1.1\r\nHost: x\r\nReferer: http://good.example.org/\r\nConnection: close\r\n\r\n").as_bytes()).expect("http");
    assert_eq!(resp.header("access-control-allow-origin"), Some("*"));
}

#[test]
fn a_second_push_of_a_live_stream_replaces_the_first() {
    let server = setup();
    server
        .api(
            "ModifyLivePushAuthKey",
            json!({"DomainName": "push.example.com", "Enable": 0}),
        )
        .ok();
    let mut first = Publisher::start(&push_url(&server, "r1", ""), 30);
    assert!(wait_until(Duration::from_secs(10), || state(&server, "r1") == "active"));
    let mut second = Publisher::start(&push_url(&server, "r1", ""), 6);
    assert!(
        first.wait(Duration::from_secs(10)).is_some(),
        "the first push was not replaced"
    );
    assert_eq!(state(&server, "r1"), "active");
    assert_h264_aac(&format!(
        "http://{}/live/r1.flv?domain=play.example.com",
        server.http
    ));
    assert!(second
        .wait(Duration::from_secs(20))
        .is_some_and(|s| s.success()));
    let events = server.api(
        "DescribeLiveStreamEventList",
        json!({"StartTime": livestack_api::time::utc_iso(now() - 300), "EndTime": livestack_api::time::utc_iso(now()), "IsAsc": 1}),
    );
    assert_eq!(
        events.ok()["EventList"][0]["StopReason"],
        "replaced by a newer push of the same stream"
    );
}

#[test]
fn stream_actions_check_their_parameters_and_domains() {
    let server = setup();
    server
        .api(
            "DescribeLiveStreamState",
            json!({"DomainName": "play.example.com", "AppName": "live", "StreamName": "x"}),
        )
        .expect_code("InternalError.ConfigNotExist");
    server
        .api("DescribeLiveStreamPushInfoList", json!({}))
        .expect_code("FailedOperation.HasNotLivingStream");
    assert_eq!(
        server.api("DescribeLiveStreamOnlineList", json!({})).ok()["TotalNum"],
        0
    );
    server
        .api("DescribeLiveStreamOnlineList", json!({"PageSize": 5}))
        .expect_code("InvalidParameterValue");
    let t = now();
    for (start, end) in [(t - 10, t - 20), (t - 40 * 86_400, t), (t - 10, t + 3600)] {
        server
            .api(
                "DescribeLiveStreamEventList",
                json!({"StartTime": livestack_api::time::utc_iso(start), "EndTime": livestack_api::time::utc_iso(end)}),
            )
            .expect_code("InvalidParameterValue");
    }
    server
        .api("ForbidLiveStream", json!({"DomainName": "push.example.com", "AppName": "live", "StreamName": "x", "ResumeTime": livestack_api::time::utc_iso(t + 100 * 86_400)}))
        .expect_code("InvalidParameterValue");
    server
        .api("AddDelayLiveStream", json!({"DomainName": "push.example.com", "AppName": "live", "StreamName": "x", "DelayTime": 601}))
        .expect_code("InvalidParameterValue");
    server
        .api("AddDelayLiveStream", json!({"DomainName": "push.example.com", "AppName": "live", "StreamName": "x", "DelayTime": 30}))
        .ok();
    let list = server.api("DescribeLiveDelayInfoList", json!({}));
    assert_eq!(list.ok()["DelayInfoList"][0]["DelayInterval"], 30);
    server
        .api(
            "ResumeDelayLiveStream",
            json!({"DomainName": "push.example.com", "AppName": "live", "StreamName": "x"}),
        )
        .ok();
    assert_eq!(
        server.api("DescribeLiveDelayInfoList", json!({})).ok()["DelayInfoList"],
        json!([])
    );
}

#[test]
fn https_playback_serves_the_certificate_bound_to_the_play_domain_by_sni() {
    let server = setup();
    server
        .api(
            "ModifyLivePushAuthKey",
            json!({"DomainName": "push.example.com", "Enable": 0}),
        )
        .ok();
    let pem = crate::certs::bind_example_com(&server, &["play.example.com"]);
    let _p = Publisher::start(&push_url(&server, "tls1", ""), 20);
    assert!(wait_until(Duration::from_secs(10), || state(
        &server, "tls1"
    ) == "active"));
    let dir = tempfile::tempdir().expect("tmp");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pem.crt).expect("write");
    let fetch = |host: &str, path: &str, out: &str| {
        Command::new("curl")
            .args(["-sS", "--max-time", "3", "--cacert"])
            .arg(&ca)
            .arg("--resolve")
            .arg(format!("{host}:{}:127.0.0.1", server.https.port()))
            .arg("-o")
            .arg(dir.path().join(out))
            .arg(format!("https://{host}:{}{path}", server.https.port()))
            .output()
            .expect("curl")
    };
    // The certificate verifies for the play domain (curl checks the chain
    // and the name); the FLV stream flows until curl's time limit.
    let got = fetch("play.example.com", "/live/tls1.flv", "tls1.flv");
    let err = String::from_utf8_lossy(&got.stderr);
    assert!(
        !err.contains("SSL") && !err.contains("certificate"),
        "{err}"
    );
    let flv = std::fs::read(dir.path().join("tls1.flv")).unwrap_or_default();
    assert!(
        flv.starts_with(b"FLV") && flv.len() > 10_000,
        "{} bytes: {err}",
        flv.len()
    );
    assert_h264_aac(&dir.path().join("tls1.flv").display().to_string());
    // A name with no certificate gets no TLS session.
    let other = fetch("push.example.com", "/live/tls1.flv", "other.flv");
    assert!(!other.status.success());
    // HTTPS can be switched off again.
    server
        .api(
            "ModifyLiveDomainCertBindings",
            json!({"DomainInfos": [{"DomainName": "play.example.com", "Status": 0}]}),
        )
        .ok();
    assert!(!fetch("play.example.com", "/live/tls1.flv", "off.flv")
        .status
        .success());
}

#[test]
fn malformed_input_ends_only_the_offending_connection() {
    use std::io::{Read, Write};
    let server = setup();
    server
        .api(
            "ModifyLivePushAuthKey",
            json!({"DomainName": "push.example.com", "Enable": 0}),
        )
        .ok();
    let _p = Publisher::start(&push_url(&server, "m1", ""), 20);
    assert!(wait_until(Duration::from_secs(10), || state(&server, "m1") == "active"));
    // Garbage after a valid-looking RTMP version byte, garbage HTTP, and an
    // oversized HTTP head: each connection is closed, nothing else is hurt.
    let mut junk = vec![3u8];
    junk.extend((0..20_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    for (addr, bytes) in [
        (server.rtmp, junk.clone()),
        (
            server.http,
            b"\x16\x03\x01 not http at all\r\n\r\n".to_vec(),
        ),
        (server.http, vec![b'A'; 40_000]),
    ] {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let _ = s.write_all(&bytes);
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    }
    assert_eq!(state(&server, "m1"), "active", "the live push survived");
    assert_h264_aac(&format!(
        "http://{}/live/m1.flv?domain=play.example.com",
        server.http
    ));
}

#[test]
fn describe_stream_push_info_list_reports_each_sample_of_a_push_as_measured() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("livestack.toml");
    std::fs::write(&config, "[media]\npush_sample_interval_secs = 1\n").expect("config");
    let server = Server::start_with_args(&["--config", config.to_str().expect("path")]);
    add(&server, "push.example.com", 0);
    let mut publisher = live_push(&server, "q1", 6);
    assert!(publisher.wait(Duration::from_secs(30)).is_some());
    let iso = |t: i64| livestack_api::time::utc_iso(t);
    let list = server
        .api(
            "DescribeStreamPushInfoList",
            json!({"StreamName": "q1", "StartTime": iso(now() - 600), "EndTime": iso(now()),
                   "PushDomain": "push.example.com"}),
        )
        .ok()
        .clone();
    let rows = list["DataInfoList"].as_array().cloned().unwrap_or_default();
    assert!(rows.len() >= 3, "{list}");
    let mut last_local = 0;
    for r in &rows {
        assert_eq!(r["PushDomain"], "push.example.com", "{r}");
        assert_eq!(r["AppName"], "live", "{r}");
        assert_eq!(r["ClientIp"], "127.0.0.1", "{r}");
        assert_eq!(r["VCodec"], "h264", "{r}");
        assert_eq!(r["ACodec"], "aac", "{r}");
        assert!(
            r["StreamParam"]
                .as_str()
                .is_some_and(|p| p.contains("txSecret")),
            "{r}"
        );
        assert!(!r["Sequence"].as_str().unwrap_or("").is_empty(), "{r}");
        let begin = r["BeginPushTime"].as_str().unwrap_or("");
        assert!(begin.len() == 23 && begin.as_bytes()[19] == b'.', "{r}");
        let local = r["LocalTs"].as_u64().unwrap_or(0);
        assert!(local > last_local, "{r}");
        last_local = local;
    }
    // Once the stream is measured: 640x360 at 25 fps, 1 s GOP, as pushed;
    // onMetaData's claims beside; timestamps keep pace with the clock.
    let r = rows.last().expect("a sample");
    assert_eq!(r["Resolution"], "640*360", "{r}");
    assert!(
        (23..=27).contains(&r["VideoFps"].as_u64().unwrap_or(0)),
        "{r}"
    );
    assert!(r["VideoRate"].as_u64().is_some_and(|b| b > 100_000), "{r}");
    assert!(r["AudioRate"].as_u64().is_some_and(|b| b > 10_000), "{r}");
    assert_eq!(r["MateFps"], 25, "{r}");
    assert!(
        (900..=1100).contains(&r["GopSize"].as_i64().unwrap_or(0)),
        "{r}"
    );
    let (local, video) = (
        r["LocalTs"].as_i64().unwrap_or(0),
        r["VideoTs"].as_i64().unwrap_or(0),
    );
    assert!((local - video).abs() < 2500, "{r}");
    assert!(r["Bandwidth"].as_f64().is_some_and(|m| m > 0.1), "{r}");
    assert!(r["Flux"].as_f64().is_some_and(|m| m > 0.01), "{r}");

    server
        .api(
            "DescribeStreamPushInfoList",
            json!({"StreamName": "", "StartTime": iso(now() - 600), "EndTime": iso(now())}),
        )
        .expect_code("MissingParameter");
    server
        .api(
            "DescribeStreamPushInfoList",
            json!({"StreamName": "q1", "StartTime": iso(now() - 8 * 86_400), "EndTime": iso(now())}),
        )
        .expect_code("InvalidParameterValue");
}
