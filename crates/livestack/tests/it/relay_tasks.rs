//! Relay (pull-stream) tasks doing real work, end to end (made and
//! described through the official Python SDK): a task pulling
//! a live stream of the same server over HTTP-FLV, and one playing MP4
//! files served by a local HTTP server, each pushed to a stream of the
//! push domain that is listed and plays (ffprobe); pause, resume, restart,
//! delete; the 314 callbacks; the documented codes for what a task may not
//! be, private addresses included.
//!
//! The servers allow fetches of 127.0.0.0/8 (`[fetch] allow`), as an
//! operator would for sources on their own machine; one test runs without
//! that allowance and sees loopback and private sources refused.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value};

use crate::callbacks::Receiver;
use crate::harness::*;
use crate::media::{assert_h264_aac, ffmpeg_bin, live_push, now, state};
use crate::recording::recording_server_with;

const PUSH: &str = "push.example.com";

/// A server whose relay tasks may pull from this machine.
fn relay_server() -> (Server, tempfile::TempDir) {
    // (The first line belongs to `[media]`: statistics reported each
    // second, for the relay bandwidth.)
    recording_server_with(
        "play_stats_flush_secs = 1\n[fetch]\nallow = [\"127.0.0.0/8\"]\n[callbacks]\ntimeout_secs = 5\nretry_interval_secs = 1\n",
    )
}

fn iso(t: i64) -> String {
    livestack_api::time::utc_iso(t)
}

/// The parameters of a task pulling `sources` of `kind` into live/`stream`
/// for an hour, with `extra`.
fn task(kind: &str, sources: &[String], stream: &str, extra: Value) -> Value {
    with(
        json!({"SourceType": kind, "SourceUrls": sources, "DomainName": PUSH,
               "AppName": "live", "StreamName": stream, "StartTime": iso(now() - 5),
               "EndTime": iso(now() + 3600), "Operator": "tests"}),
        extra,
    )
}

fn created(outcome: &Outcome) -> String {
    outcome.ok()["TaskId"]
        .as_str()
        .unwrap_or_else(|| panic!("no TaskId in {}", outcome.0))
        .to_owned()
}

fn flv(server: &Server, stream: &str) -> String {
    format!(
        "http://{}/live/{stream}.flv?domain=play.example.com",
        server.http
    )
}

fn run_status(server: &Server, id: &str) -> String {
    server
        .api("DescribeLivePullStreamTaskStatus", json!({"TaskId": id}))
        .ok()["TaskStatusInfo"]["RunStatus"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

#[track_caller]
fn await_state(server: &Server, stream: &str, wanted: &str, why: &str) {
    assert!(
        wait_until(Duration::from_secs(30), || state(server, stream) == wanted),
        "{why}: {stream} is {} (log: {})",
        state(server, stream),
        server.log()
    );
}

/// The 314 events the receiver got at `path`, by `callback_event`.
fn events(receiver: &Receiver, path: &str) -> Vec<String> {
    receiver
        .to(path)
        .iter()
        .filter_map(|c| c.body["callback_event"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_relay_task_pulls_a_live_stream_into_a_listed_stream_until_paused_or_deleted() {
    let (server, _config) = relay_server();
    let _source = live_push(&server, "origin", 120);
    let receiver = Receiver::start(&[]);
    // Through the official Python SDK, as a user's script would.
    let id = created(&python1(&server.call(
        "CreateLivePullStreamTask",
        task(
            "PullLivePushLive",
            &[flv(&server, "origin")],
            "relayed",
            json!({"CallbackUrl": receiver.url("/pull"), "PushArgs": "from=relay"}),
        ),
    )));
    await_state(&server, "relayed", "active", "the relay never pushed");
    assert_h264_aac(&flv(&server, "relayed"));
    assert_eq!(run_status(&server, &id), "active");
    // The metrics count it: one task pulling, one relay job running.
    let metric = |name: &str, labels: Value| {
        crate::metrics::value(&crate::metrics::scrape(&server), name, labels).unwrap_or(-1.0)
    };
    assert_eq!(
        metric("livestack_relay_tasks", json!({"state": "pulling"})),
        1.0
    );
    assert_eq!(
        metric("livestack_jobs_running", json!({"kind": "pull"})),
        1.0
    );
    // What it pushes out is counted as relay (转推) bandwidth: at the
    // stream's bitrate (600 + 64 kbit/s), far from nothing.
    let mut delivered = 0.0;
    assert!(
        wait_until(Duration::from_secs(20), || {
            let list = server.api(
                "DescribeDeliverBandwidthList",
                json!({"StartTime": iso(now() - 600), "EndTime": iso(now() + 60)}),
            );
            delivered = list.ok()["DataInfoList"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["Bandwidth"].as_f64())
                .sum::<f64>()
                * 300.0
                / 8.0;
            delivered > 200_000.0 / 1e6
        }),
        "relay bandwidth: {delivered} MB"
    );
    let online = server.api("DescribeLiveStreamOnlineList", json!({"DomainName": PUSH}));
    let names: Vec<&str> = online.ok()["OnlineInfo"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["StreamName"].as_str())
        .collect();
    assert!(names.contains(&"relayed"), "{names:?}");
    // Its push names the task it comes from.
    let pushes = server.api("DescribeBackupStreamList", json!({"StreamName": "relayed"}));
    assert_eq!(
        pushes.ok()["StreamInfoList"][0]["BackupList"][0]["SourceFrom"],
        format!("拉流转推({id})").as_str(),
        "{}",
        pushes.0
    );

    // The task's start, with the documented body: strings of JSON.
    let start = receiver.wait_for("/pull", 1, Duration::from_secs(15));
    let body = &start[0].body;
    assert_eq!(body["event_type"], 314, "{body}");
    assert_eq!(body["callback_event"], "TaskStart", "{body}");
    assert_eq!(body["task_id"], id.as_str(), "{body}");
    assert_eq!(body["product_name"], "pullpush", "{body}");
    assert_eq!(body["stream_id"], "relayed", "{body}");
    let urls: Vec<String> =
        serde_json::from_str(body["source_urls"].as_str().expect("a string")).expect("JSON");
    assert_eq!(urls, vec![flv(&server, "origin")]);
    let msg: Value = serde_json::from_str(body["msg"].as_str().expect("a string")).expect("JSON");
    assert!(msg["task_start_time"].as_i64().is_some(), "{msg}");

    // Describe echoes what was given; one task comes with what it pulls.
    let one = python1(&server.call("DescribeLivePullStreamTasks", json!({"TaskId": id})));
    let info = &one.ok()["TaskInfos"][0];
    assert_eq!(info["Status"], "enable");
    assert_eq!(info["PushArgs"], "from=relay");
    assert_eq!(info["CreateBy"], "tests");
    assert_eq!(
        info["RecentPullInfo"]["FileUrl"],
        flv(&server, "origin").as_str()
    );
    assert_eq!(one.ok()["LimitTaskNum"], 200);

    // Paused: the push ends and the task says so; enabled: it comes back.
    server
        .api(
            "ModifyLivePullStreamTask",
            json!({"TaskId": id, "Operator": "tests", "Status": "pause"}),
        )
        .ok();
    await_state(&server, "relayed", "inactive", "a paused task kept pushing");
    assert!(wait_until(Duration::from_secs(10), || run_status(
        &server, &id
    ) == "inactive"));
    assert_eq!(
        metric("livestack_relay_tasks", json!({"state": "idle"})),
        1.0
    );
    assert_eq!(
        metric("livestack_relay_tasks", json!({"state": "pulling"})),
        0.0
    );
    assert!(
        wait_until(Duration::from_secs(15), || events(&receiver, "/pull")
            .contains(&"TaskExit".to_owned())),
        "{:?}",
        events(&receiver, "/pull")
    );
    // The change of configuration is called back too.
    assert!(
        wait_until(Duration::from_secs(15), || events(&receiver, "/pull")
            .contains(&"ResetTaskConfig".to_owned())),
        "{:?}",
        events(&receiver, "/pull")
    );
    server
        .api(
            "ModifyLivePullStreamTask",
            json!({"TaskId": id, "Operator": "tests", "Status": "enable"}),
        )
        .ok();
    await_state(
        &server,
        "relayed",
        "active",
        "an enabled task did not push again",
    );

    // A restart makes the push again.
    let starts = || {
        events(&receiver, "/pull")
            .iter()
            .filter(|e| *e == "TaskStart")
            .count()
    };
    let before = starts();
    server
        .api(
            "RestartLivePullStreamTask",
            json!({"TaskId": id, "Operator": "tests"}),
        )
        .ok();
    assert!(
        wait_until(Duration::from_secs(20), || starts() > before),
        "no TaskStart after the restart: {:?}",
        events(&receiver, "/pull")
    );
    await_state(
        &server,
        "relayed",
        "active",
        "the restarted task did not push",
    );

    // Deleted: the push ends and the task is gone.
    server
        .api(
            "DeleteLivePullStreamTask",
            json!({"TaskId": id, "Operator": "tests"}),
        )
        .ok();
    await_state(
        &server,
        "relayed",
        "inactive",
        "a deleted task kept pushing",
    );
    server
        .api("DescribeLivePullStreamTaskStatus", json!({"TaskId": id}))
        .expect_code("InvalidParameter.TaskNotExist");
    server
        .api(
            "DeleteLivePullStreamTask",
            json!({"TaskId": id, "Operator": "tests"}),
        )
        .expect_code("InvalidParameter.TaskNotExist");
    let all = server.api("DescribeLivePullStreamTasks", json!({}));
    assert_eq!(all.ok()["TotalNum"], 0);
}

/// A tiny HTTP server on 127.0.0.1:0 serving the files of a directory,
/// a thread per connection, until dropped.
/// A file `NAME.redirect` answers NAME with a 302 to the URL it holds.
pub(crate) struct Files {
    pub(crate) addr: SocketAddr,
    hits: Arc<std::sync::atomic::AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Files {
    pub(crate) fn serve(dir: PathBuf) -> Files {
        Files::serve_on("127.0.0.1", dir)
    }

    fn serve_on(ip: &str, dir: PathBuf) -> Files {
        let listener = TcpListener::bind((ip, 0)).expect("bind");
        let addr = listener.local_addr().expect("address");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&hits);
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                counted.fetch_add(1, Ordering::SeqCst);
                if let Ok(conn) = conn {
                    let dir = dir.clone();
                    std::thread::spawn(move || {
                        let _ = serve_file(conn, &dir);
                    });
                }
            }
        });
        Files {
            addr,
            hits,
            stop,
            thread: Some(thread),
        }
    }

    /// Connections accepted so far.
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn url(&self, name: &str) -> String {
        format!("http://{}/{name}", self.addr)
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve_file(mut conn: TcpStream, dir: &Path) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut request = Vec::new();
    let mut buf = [0_u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&request).into_owned();
    let name = text
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .trim_start_matches('/');
    if let Ok(to) = std::fs::read_to_string(dir.join(format!("{name}.redirect"))) {
        return write!(
            conn,
            "HTTP/1.1 302 Found\r\nLocation: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            to.trim()
        );
    }
    match std::fs::read(dir.join(name))
        .ok()
        .filter(|_| !name.contains(".."))
    {
        Some(body) => {
            write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            conn.write_all(&body)
        }
        None => write!(
            conn,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    }
}

/// An MP4 of `seconds` of test picture and tone (640x360, H.264/AAC).
fn mp4(path: &Path, seconds: u32) {
    mp4_of(path, seconds, "testsrc=size=640x360:rate=25");
}

/// An MP4 of `seconds` of the lavfi picture `video` and a tone.
fn mp4_of(path: &Path, seconds: u32, video: &str) {
    let ok = Command::new(ffmpeg_bin("ffmpeg"))
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", video])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-t", &seconds.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-c:a", "aac", "-movflags", "+faststart"])
        .arg(path)
        .status()
        .expect("ffmpeg")
        .success();
    assert!(ok, "could not make {}", path.display());
}

#[test]
fn a_relay_task_plays_mp4_files_served_over_http_in_a_loop_as_one_stream() {
    let (server, _config) = relay_server();
    let media = tempfile::tempdir().expect("tmp");
    mp4(&media.path().join("a.mp4"), 4);
    mp4(&media.path().join("b.mp4"), 4);
    let files = Files::serve(media.path().to_path_buf());
    let receiver = Receiver::start(&[]);
    let id = created(&server.api(
        "CreateLivePullStreamTask",
        task(
            "PullVodPushLive",
            &[files.url("a.mp4"), files.url("b.mp4")],
            "vod",
            json!({"VodLoopTimes": "-1", "SpecifyTaskId": "vod-1",
                   "CallbackUrl": receiver.url("/vod"),
                   "CallbackEvents": ["VodSourceFileStart", "VodSourceFileFinish"]}),
        ),
    ));
    await_state(&server, "vod", "active", "the file relay never pushed");
    assert_h264_aac(&flv(&server, "vod"));
    // The same SpecifyTaskId again is the same task (a retried create).
    let again = server.api(
        "CreateLivePullStreamTask",
        task(
            "PullVodPushLive",
            &[files.url("a.mp4")],
            "vod",
            json!({"SpecifyTaskId": "vod-1"}),
        ),
    );
    assert_eq!(created(&again), id);
    let by_specified = server.api(
        "DescribeLivePullStreamTasks",
        json!({"SpecifyTaskId": "vod-1"}),
    );
    assert_eq!(by_specified.ok()["TaskInfos"][0]["TaskId"], id.as_str());
    assert_eq!(by_specified.ok()["TaskInfos"][0]["VodLoopTimes"], -1);
    // Two 4 s files looped: still one push after more than a loop.
    let started = state_started(&server, "vod");
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(state(&server, "vod"), "active");
    assert_eq!(
        state_started(&server, "vod"),
        started,
        "the push restarted between files"
    );

    // Each file's start and finish was called back, in order, and the
    // status follows the files and loops.
    let files_called = |event: &str| -> Vec<(i64, String)> {
        receiver
            .to("/vod")
            .iter()
            .filter(|c| c.body["callback_event"] == event)
            .map(|c| {
                let msg: Value = serde_json::from_str(c.body["msg"].as_str().unwrap_or("{}"))
                    .unwrap_or(Value::Null);
                (
                    msg["index"].as_i64().unwrap_or(0),
                    msg["url"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    };
    let starts = files_called("VodSourceFileStart");
    assert!(starts.len() >= 2, "{starts:?}");
    assert_eq!(starts[0], (1, files.url("a.mp4")));
    assert_eq!(starts[1], (2, files.url("b.mp4")));
    let finished = files_called("VodSourceFileFinish");
    assert_eq!(
        finished.first(),
        Some(&(1, files.url("a.mp4"))),
        "{finished:?}"
    );
    assert!(
        receiver
            .to("/vod")
            .iter()
            .all(|c| c.body["callback_event"] != "TaskStart"),
        "an event left out of CallbackEvents was sent"
    );
    assert!(
        wait_until(Duration::from_secs(15), || {
            let s = server.api("DescribeLivePullStreamTaskStatus", json!({"TaskId": id}));
            s.ok()["TaskStatusInfo"]["LoopedTimes"]
                .as_i64()
                .unwrap_or(0)
                >= 1
        }),
        "the status never counted a loop"
    );
}

/// When the current push of live/`stream` started, as the online list says.
fn state_started(server: &Server, stream: &str) -> String {
    let online = server.api(
        "DescribeLiveStreamOnlineList",
        json!({"DomainName": PUSH, "StreamName": stream}),
    );
    online.ok()["OnlineInfo"][0]["PublishTimeList"][0]["PublishTime"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

#[test]
fn what_a_relay_task_may_not_be_is_refused_with_the_documented_codes() {
    let (server, _config) = relay_server();
    let src = vec!["rtmp://93.184.216.34/live/src".to_owned()];
    let make = |kind: &str, sources: &[String], extra: Value| {
        server.api("CreateLivePullStreamTask", task(kind, sources, "x", extra))
    };
    make(
        "PullLivePushLive",
        &["ftp://93.184.216.34/a".into()],
        json!({}),
    )
    .expect_code("InvalidParameter.InvalidSourceUrl");
    make(
        "PullLivePushLive",
        &[src[0].clone(), src[0].clone()],
        json!({}),
    )
    .expect_code("InvalidParameter.InvalidSourceUrl");
    make(
        "PullVodPushLive",
        &["http://93.184.216.34/a.avi".into()],
        json!({}),
    )
    .expect_code("InvalidParameter.InvalidSourceUrl");
    make(
        "PullLivePushLive",
        &src,
        json!({"DomainName": "not-mine.example.com"}),
    )
    .expect_code("InvalidParameter.ToUrlNoPermission");
    make(
        "PullLivePushLive",
        &src,
        json!({"ToUrl": "http://93.184.216.34/x"}),
    )
    .expect_code("InvalidParameter.InvalidToUrl");
    make("PullLivePushLive", &src, json!({"CallbackUrl": "ftp://x"}))
        .expect_code("InvalidParameter.InvalidCallbackUrl");
    make(
        "PullLivePushLive",
        &src,
        json!({"CallbackEvents": ["Nope"]}),
    )
    .expect_code("InvalidParameterValue");
    make(
        "PullLivePushLive",
        &src,
        json!({"EndTime": iso(now() - 10)}),
    )
    .expect_code("InvalidParameter.InvalidTaskTime");
    make(
        "PullLivePushLive",
        &src,
        json!({"StartTime": iso(now()), "EndTime": iso(now() + 31 * 86_400)}),
    )
    .expect_code("InvalidParameter.InvalidTaskTime");
    make("Other", &src, json!({})).expect_code("InvalidParameterValue");
    server
        .api(
            "DescribeLivePullStreamTaskStatus",
            json!({"TaskId": "nope"}),
        )
        .expect_code("InvalidParameter.TaskNotExist");
    server
        .api(
            "ModifyLivePullStreamTask",
            json!({"TaskId": "nope", "Operator": "tests", "Status": "pause"}),
        )
        .expect_code("InvalidParameter.TaskNotExist");
    // A dry run checks and creates nothing.
    server
        .api(
            "CreateLivePullStreamTask",
            with(
                task("PullLivePushLive", &src, "x", json!({})),
                json!({"DryRun": true}),
            ),
        )
        .expect_code("DryRunOperation");
    assert_eq!(
        server.api("DescribeLivePullStreamTasks", json!({})).ok()["TotalNum"],
        0
    );
}

#[test]
fn relay_sources_and_targets_on_private_addresses_are_refused_unless_the_operator_allows_them() {
    // An allow-list that does not cover loopback (the tests' servers
    // allow 127.0.0.0/8 unless told otherwise).
    let (server, _config) = recording_server_with("[fetch]\nallow = [\"192.0.2.0/24\"]\n");
    let create = |sources: &[&str], extra: Value| {
        let sources: Vec<String> = sources.iter().map(|s| (*s).to_owned()).collect();
        server.api(
            "CreateLivePullStreamTask",
            task("PullLivePushLive", &sources, "x", extra),
        )
    };
    for private in [
        "rtmp://127.0.0.1/live/a",
        "http://10.1.2.3/live/a.flv",
        "http://169.254.169.254/live/a.flv",
        "http://localhost/live/a.flv",
        "rtmp://[::1]/live/a",
    ] {
        let refused = create(&[private], json!({}));
        refused.expect_code("InvalidParameter.InvalidSourceUrl");
        assert!(
            refused.message().contains("internal address"),
            "{}",
            refused.message()
        );
    }
    create(
        &["rtmp://93.184.216.34/live/a"],
        json!({"ToUrl": "rtmp://192.168.1.1/live/b", "DomainName": "", "AppName": "", "StreamName": ""}),
    )
    .expect_code("InvalidParameter.InvalidToUrl");
}

fn legacy_status(server: &Server, id: &str) -> Value {
    server
        .api("DescribePullStreamConfigs", json!({"ConfigId": id}))
        .ok()["PullStreamConfigs"][0]
        .clone()
}

#[test]
fn legacy_pull_configs_run_on_the_same_engine_with_their_own_rules() {
    let (server, _config) = relay_server();
    let _source = live_push(&server, "origin", 120);
    let config = |from: &str, to: &str, area: i64, isp: i64, start: i64| {
        json!({"FromUrl": from, "ToUrl": to, "AreaId": area, "IspId": isp,
               "StartTime": iso(start), "EndTime": iso(now() + 3600)})
    };
    let to = "rtmp://push.example.com/live/legacy";
    // Both times must be in the future: this one starts in 2 s.
    let made = server.api(
        "CreatePullStreamConfig",
        config(&flv(&server, "origin"), to, 1, 2, now() + 2),
    );
    let id = made.ok()["ConfigId"].as_str().expect("ConfigId").to_owned();
    await_state(
        &server,
        "legacy",
        "active",
        "the legacy config never pushed",
    );
    assert!(wait_until(Duration::from_secs(10), || legacy_status(
        &server, &id
    )["Status"]
        == "2"));
    let shown = legacy_status(&server, &id);
    assert_eq!(shown["AreaName"], "深圳", "{shown}");
    assert_eq!(shown["IspName"], "移动", "{shown}");
    assert_eq!(shown["ToUrl"], to, "{shown}");
    // Not a current task: the two families are apart.
    assert_eq!(
        server.api("DescribeLivePullStreamTasks", json!({})).ok()["TotalNum"],
        0
    );

    server
        .api(
            "ModifyPullStreamStatus",
            json!({"ConfigIds": [id], "Status": "4"}),
        )
        .ok();
    await_state(
        &server,
        "legacy",
        "inactive",
        "a paused config kept pushing",
    );
    assert_eq!(legacy_status(&server, &id)["Status"], "4");
    server
        .api(
            "ModifyPullStreamStatus",
            json!({"ConfigIds": [id], "Status": "2"}),
        )
        .ok();
    await_state(&server, "legacy", "active", "a resumed config did not push");

    // The legacy rules.
    let later = now() + 60;
    let origin = flv(&server, "origin");
    for (params, why) in [
        (
            config("https://93.184.216.34/a.flv", to, 1, 1, later),
            "https",
        ),
        (config(&origin, to, 1, 1, now() - 10), "a start in the past"),
        (
            config(&origin, to, 4, 1, later),
            "Hong Kong with another ISP",
        ),
        (
            config(&origin, "rtmp://not-mine.example.com/live/x", 1, 1, later),
            "not a push domain",
        ),
        (
            config(&origin, "http://push.example.com/live/x", 1, 1, later),
            "not rtmp",
        ),
    ] {
        let refused = server.api("CreatePullStreamConfig", params);
        assert_eq!(
            refused.code(),
            Some("InvalidParameter"),
            "{why}: {}",
            refused.0
        );
    }
    server
        .api("CreatePullStreamConfig", config(&origin, to, 5, 1, later))
        .expect_code("InvalidParameterValue");
    server
        .api(
            "ModifyPullStreamConfig",
            json!({"ConfigId": id, "AreaId": 2}),
        )
        .expect_code("InvalidParameter");
    server
        .api(
            "ModifyPullStreamStatus",
            json!({"ConfigIds": [id], "Status": "1"}),
        )
        .expect_code("InvalidParameterValue");
    // Ten at most.
    for _ in 1..10 {
        server
            .api("CreatePullStreamConfig", config(&origin, to, 1, 1, later))
            .ok();
    }
    server
        .api("CreatePullStreamConfig", config(&origin, to, 1, 1, later))
        .expect_code("InvalidParameter");

    server
        .api("DeletePullStreamConfig", json!({"ConfigId": id}))
        .ok();
    await_state(
        &server,
        "legacy",
        "inactive",
        "a deleted config kept pushing",
    );
    server
        .api("DescribePullStreamConfigs", json!({"ConfigId": id}))
        .expect_code("InvalidParameter");
    let all = server.api("DescribePullStreamConfigs", json!({}));
    assert_eq!(
        all.ok()["PullStreamConfigs"].as_array().map(Vec::len),
        Some(9)
    );
}

#[test]
fn a_live_relay_whose_source_dies_goes_on_from_its_backup_source() {
    let (server, _config) = relay_server();
    let mut main = live_push(&server, "main", 8);
    let _spare = live_push(&server, "spare", 120);
    let receiver = Receiver::start(&[]);
    let id = created(&server.api(
        "CreateLivePullStreamTask",
        task(
            "PullLivePushLive",
            &[flv(&server, "main")],
            "resilient",
            json!({"BackupSourceType": "PullLivePushLive",
                   "BackupSourceUrl": flv(&server, "spare"),
                   "CallbackUrl": receiver.url("/pull")}),
        ),
    ));
    await_state(&server, "resilient", "active", "the relay never pushed");
    let pulls = |url: &str| {
        let s = server.api("DescribeLivePullStreamTaskStatus", json!({"TaskId": id}));
        s.ok()["TaskStatusInfo"]["FileUrl"] == url
            && s.ok()["TaskStatusInfo"]["RunStatus"] == "active"
    };
    assert!(pulls(&flv(&server, "main")));
    // The main source ends: the task exits, and starts again on the backup.
    assert!(main.wait(Duration::from_secs(30)).is_some());
    assert!(
        wait_until(Duration::from_secs(30), || pulls(&flv(&server, "spare"))),
        "the task never went on from its backup: {:?}",
        events(&receiver, "/pull")
    );
    await_state(&server, "resilient", "active", "the backup was not pushed");
    assert_h264_aac(&flv(&server, "resilient"));
    let seen = events(&receiver, "/pull");
    let exit = seen
        .iter()
        .position(|e| e == "TaskExit")
        .expect("a TaskExit");
    assert!(
        seen[exit..].iter().any(|e| e == "TaskStart"),
        "no TaskStart after the exit: {seen:?}"
    );
}

#[test]
fn a_relay_whose_source_cannot_be_pulled_raises_an_alarm_and_keeps_trying() {
    let (server, _config) = relay_server();
    let receiver = Receiver::start(&[]);
    let id = created(&server.api(
        "CreateLivePullStreamTask",
        task(
            "PullLivePushLive",
            &[flv(&server, "not-live")],
            "never",
            json!({"CallbackUrl": receiver.url("/pull"), "CallbackEvents": ["TaskAlarm"]}),
        ),
    ));
    let alarms = receiver.wait_for("/pull", 2, Duration::from_secs(30));
    for a in &alarms {
        assert_eq!(a.body["callback_event"], "TaskAlarm", "{}", a.body);
        let msg: Value = serde_json::from_str(a.body["msg"].as_str().expect("msg")).expect("JSON");
        assert_eq!(msg["alarm_type"], "PullFileFailed", "{msg}");
        assert_eq!(msg["url"], flv(&server, "not-live").as_str(), "{msg}");
    }
    assert_eq!(run_status(&server, &id), "inactive");
    assert_eq!(state(&server, "never"), "inactive");
}

#[test]
fn a_relay_task_pushes_only_inside_its_window_and_to_any_rtmp_url_with_its_push_args() {
    let (server, _config) = relay_server();
    let _source = live_push(&server, "origin", 120);
    // ToUrl: a full RTMP URL, here this server's own with a signed push
    // of live/outside (PushArgs carry the signature).
    let auth =
        livestack_core::urlsign::query(&crate::media::push_key(&server), "outside", now() + 600);
    let to = format!("rtmp://{}/live/outside?domain={PUSH}", server.rtmp);
    let start = now() + 3;
    server
        .api(
            "CreateLivePullStreamTask",
            with(
                task("PullLivePushLive", &[flv(&server, "origin")], "", json!({})),
                json!({"DomainName": "", "AppName": "", "StreamName": "", "ToUrl": to,
                       "PushArgs": auth, "StartTime": iso(start), "EndTime": iso(start + 8)}),
            ),
        )
        .ok();
    assert_eq!(
        state(&server, "outside"),
        "inactive",
        "it started before its StartTime"
    );
    await_state(
        &server,
        "outside",
        "active",
        "it never started at its StartTime",
    );
    assert!(now() >= start);
    assert_h264_aac(&flv(&server, "outside"));
    await_state(
        &server,
        "outside",
        "inactive",
        "it did not stop at its EndTime",
    );
    assert!(now() >= start + 8, "it stopped early");
    let ended = server.api("DescribeLivePullStreamTasks", json!({}));
    assert_eq!(ended.ok()["TaskInfos"][0]["Status"], "invalid");
}

#[test]
fn a_redirect_of_a_relay_source_to_an_address_the_operator_did_not_allow_is_not_followed() {
    // Only 127.0.0.1 is allowed; 127.0.0.2 stands for a private network.
    let (server, _config) = recording_server_with(
        "[fetch]\nallow = [\"127.0.0.1/32\"]\n[callbacks]\ntimeout_secs = 5\nretry_interval_secs = 1\n",
    );
    let inside = tempfile::tempdir().expect("tmp");
    mp4(&inside.path().join("a.mp4"), 2);
    let private = Files::serve_on("127.0.0.2", inside.path().to_path_buf());
    let outside = tempfile::tempdir().expect("tmp");
    std::fs::write(
        outside.path().join("jump.mp4.redirect"),
        private.url("a.mp4"),
    )
    .expect("write");
    let public = Files::serve(outside.path().to_path_buf());
    let receiver = Receiver::start(&[]);
    server
        .api(
            "CreateLivePullStreamTask",
            task(
                "PullVodPushLive",
                &[public.url("jump.mp4")],
                "jumped",
                json!({"CallbackUrl": receiver.url("/pull"), "CallbackEvents": ["TaskAlarm"]}),
            ),
        )
        .ok();
    receiver.wait_for("/pull", 1, Duration::from_secs(30));
    assert!(public.hits() >= 1, "the source was never asked");
    assert_eq!(private.hits(), 0, "the redirect reached a refused address");
    assert_eq!(state(&server, "jumped"), "inactive");
}

#[test]
fn a_relay_tasks_push_time_and_quality_are_reported_from_its_runs() {
    let (server, _config) = recording_server_with(
        "push_sample_interval_secs = 1\n[fetch]\nallow = [\"127.0.0.0/8\"]\n",
    );
    let _source = live_push(&server, "origin", 120);
    let id = created(&server.api(
        "CreateLivePullStreamTask",
        task(
            "PullLivePushLive",
            &[flv(&server, "origin")],
            "metered",
            json!({}),
        ),
    ));
    await_state(&server, "metered", "active", "the relay never pushed");
    let window = || json!({"StartTime": iso(now() - 600), "EndTime": iso(now())});
    // Quality samples of its target while it pushes.
    let mut samples = Value::Null;
    assert!(
        wait_until(Duration::from_secs(20), || {
            samples = python1(&server.call(
                "DescribePullTransformPushInfoList",
                with(window(), json!({"TaskId": id})),
            ))
            .ok()["DataInfoList"]
                .clone();
            samples.as_array().is_some_and(|s| s.len() >= 2)
        }),
        "no samples: {samples}"
    );
    let last = &samples.as_array().unwrap()[samples.as_array().unwrap().len() - 1];
    assert_eq!(last["StreamFlag"], "metered", "{last}");
    assert!(last["VideoFps"].as_i64().unwrap_or(0) > 0, "{last}");
    assert!(last["VideoRate"].as_i64().unwrap_or(0) > 0, "{last}");

    // Its push time, counted while it runs, by SourceType.
    let seconds = |extra: Value| {
        server
            .api("DescribePullTransformPushInfo", with(window(), extra))
            .ok()["TotalDurationSecond"]
            .as_u64()
            .unwrap_or(0)
    };
    assert!(
        wait_until(Duration::from_secs(20), || seconds(json!({})) >= 3),
        "no push time counted"
    );
    assert_eq!(seconds(json!({"SourceType": "PullVodPushLive"})), 0);
    assert!(seconds(json!({"SourceType": "PullLivePushLive"})) >= 3);
    let bad = server.api(
        "DescribePullTransformPushInfo",
        with(window(), json!({"SourceType": "Pictures"})),
    );
    assert_eq!(bad.code(), Some("InvalidParameterValue"));

    // Deleted, its time stays on the bill; its samples are gone with it.
    server
        .api(
            "DeleteLivePullStreamTask",
            json!({"TaskId": id, "Operator": "tests"}),
        )
        .ok();
    let counted = seconds(json!({}));
    assert!(counted >= 3, "{counted}");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        seconds(json!({})) <= counted + 1,
        "a deleted task's run stayed open"
    );
    let gone = server.api(
        "DescribePullTransformPushInfoList",
        with(window(), json!({"TaskId": id})),
    );
    assert_eq!(gone.code(), Some("FailedOperation.NotFound"));
}

#[test]
fn files_inserted_into_a_running_file_task_play_after_the_file_they_follow_with_their_context() {
    let (server, _config) = relay_server();
    let media = tempfile::tempdir().expect("tmp");
    let colour = |name: &str, c: &str| {
        mp4_of(
            &media.path().join(name),
            3,
            &format!("color=c={c}:s=320x180:r=25"),
        )
    };
    colour("red.mp4", "0xFF0000");
    colour("green.mp4", "0x00FF00");
    colour("yellow.mp4", "0xFFFF00");
    let files = Files::serve(media.path().to_path_buf());
    let receiver = Receiver::start(&[]);
    let id = created(&server.api(
        "CreateLivePullStreamTask",
        task(
            "PullVodPushLive",
            &[files.url("red.mp4"), files.url("green.mp4")],
            "carousel",
            json!({"VodLoopTimes": "-1", "CallbackUrl": receiver.url("/files"),
                   "CallbackEvents": ["VodSourceFileStart", "VodSourceFileFinish"]}),
        ),
    ));
    await_state(&server, "carousel", "active", "the file relay never pushed");
    let mut player = crate::backup_streams::Player::start(&flv(&server, "carousel"));
    assert!(player.sees(crate::mix::RED) || player.sees(crate::mix::GREEN));
    python1(&server.call(
        "InsertTaskTemporaryFiles",
        json!({"TaskId": id, "TemporaryFiles": [files.url("yellow.mp4")],
               "Operator": "tests", "InsertAfterIndex": 2, "InsertContext": "ad-1"}),
    ))
    .ok();
    assert!(
        player.sees(crate::mix::YELLOW),
        "the inserted file never played (log: {})",
        server.log()
    );
    // Its start and finish carry the context and keep the task's
    // numbering (after file 2); then the list goes on from file 1.
    let msgs = |event: &str| -> Vec<Value> {
        receiver
            .to("/files")
            .iter()
            .filter(|c| c.body["callback_event"] == event)
            .filter_map(|c| serde_json::from_str(c.body["msg"].as_str().unwrap_or("")).ok())
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(20), || msgs("VodSourceFileFinish")
            .iter()
            .any(|m| m["insert_context"] == "ad-1")),
        "no finish of the inserted file: {:?}",
        msgs("VodSourceFileFinish")
    );
    let starts = msgs("VodSourceFileStart");
    let at = starts
        .iter()
        .position(|m| m["insert_context"] == "ad-1")
        .expect("the inserted file's start");
    assert_eq!(starts[at]["url"], files.url("yellow.mp4").as_str());
    assert_eq!(starts[at]["index"], 2);
    assert_eq!(starts[at - 1]["index"], 2, "{starts:?}");
    assert!(
        wait_until(Duration::from_secs(15), || {
            msgs("VodSourceFileStart")
                .get(at + 1)
                .is_some_and(|m| m["index"] == 1 && m["insert_context"].is_null())
        }),
        "the list did not go on after the inserted file: {:?}",
        msgs("VodSourceFileStart")
    );
    assert!(player.sees(crate::mix::RED), "the player lost the stream");
    // Played once, not again.
    std::thread::sleep(Duration::from_secs(8));
    let inserted = msgs("VodSourceFileStart")
        .iter()
        .filter(|m| m["insert_context"] == "ad-1")
        .count();
    assert_eq!(inserted, 1);

    // What it may not do.
    let live = created(&server.api(
        "CreateLivePullStreamTask",
        task(
            "PullLivePushLive",
            &[flv(&server, "carousel")],
            "again",
            json!({}),
        ),
    ));
    for (params, code) in [
        (
            json!({"TaskId": live, "TemporaryFiles": [files.url("yellow.mp4")], "Operator": "t"}),
            "InvalidParameter.TaskNotExist",
        ),
        (
            json!({"TaskId": "nope", "TemporaryFiles": [files.url("yellow.mp4")], "Operator": "t"}),
            "InvalidParameter.TaskNotExist",
        ),
        (
            json!({"TaskId": id, "TemporaryFiles": vec![files.url("yellow.mp4"); 31], "Operator": "t"}),
            "InvalidParameterValue",
        ),
    ] {
        let got = server.api("InsertTaskTemporaryFiles", params.clone());
        assert_eq!(got.code(), Some(code), "{params}: {}", got.0);
    }
}

#[test]
fn a_relay_tasks_own_transcode_and_record_templates_apply_to_its_push() {
    let (server, _config) = relay_server();
    let _source = live_push(&server, "studio", 120);
    let transcode = server.api(
        "CreateLiveTranscodeTemplate",
        json!({"TemplateName": "small", "VideoBitrate": 300, "Width": 320, "Height": 180, "Gop": 2}),
    );
    transcode.ok();
    let record = server.api(
        "CreateLiveRecordTemplate",
        json!({"TemplateName": "keep", "FlvParam": {"Enable": 1, "RecordInterval": 60}}),
    );
    let record_id = record.ok()["TemplateId"].as_i64().expect("template id");
    let id = created(&python1(&server.call(
        "CreateLivePullStreamTask",
        task(
            "PullLivePushLive",
            &[flv(&server, "studio")],
            "small_relay",
            json!({"TranscodeTemplateName": "small", "RecordTemplateId": record_id.to_string()}),
        ),
    )));
    await_state(&server, "small_relay", "active", "the relay never pushed");
    // Encoded by the task's template (the source is 640x360).
    let streams = crate::media::probe(&flv(&server, "small_relay"));
    assert!(
        streams.contains(&("video".into(), "h264".into(), 320, 180)),
        "{streams:?}"
    );
    let info = server.api("DescribeLivePullStreamTasks", json!({"TaskId": id}));
    assert_eq!(info.ok()["TaskInfos"][0]["TranscodeTemplateName"], "small");
    assert_eq!(
        info.ok()["TaskInfos"][0]["RecordTemplateId"],
        record_id.to_string().as_str()
    );
    // Recorded by its record template: the recording is delivered once
    // the push ends (the server's short record interval cuts files too).
    std::thread::sleep(Duration::from_secs(4));
    server
        .api(
            "DeleteLivePullStreamTask",
            json!({"TaskId": id, "Operator": "tests"}),
        )
        .ok();
    assert!(
        wait_until(Duration::from_secs(30), || {
            crate::recording::stored(&server).iter().any(|f| {
                f.to_string_lossy().contains("small_relay")
                    && f.extension().is_some_and(|e| e == "flv")
            })
        }),
        "no FLV recording of the relayed stream: {:?}",
        crate::recording::stored(&server)
    );
    // Templates that are not the account's are refused.
    for extra in [
        json!({"TranscodeTemplateName": "nope"}),
        json!({"RecordTemplateId": "999999"}),
    ] {
        let got = server.api(
            "CreateLivePullStreamTask",
            task(
                "PullLivePushLive",
                &[flv(&server, "studio")],
                "x",
                extra.clone(),
            ),
        );
        assert_eq!(
            got.code(),
            Some("InvalidParameterValue"),
            "{extra}: {}",
            got.0
        );
    }
}

#[test]
fn a_file_task_starts_its_first_loop_at_file_index_and_offset_time() {
    let (server, _config) = relay_server();
    let media = tempfile::tempdir().expect("tmp");
    for (name, c) in [
        ("red.mp4", "0xFF0000"),
        ("green.mp4", "0x00FF00"),
        ("blue.mp4", "0x0000FF"),
    ] {
        mp4_of(
            &media.path().join(name),
            3,
            &format!("color=c={c}:s=320x180:r=25"),
        );
    }
    let files = Files::serve(media.path().to_path_buf());
    let receiver = Receiver::start(&[]);
    let sources = [
        files.url("red.mp4"),
        files.url("green.mp4"),
        files.url("blue.mp4"),
    ];
    created(&server.api(
        "CreateLivePullStreamTask",
        task(
            "PullVodPushLive",
            &sources,
            "resumed",
            json!({"VodLoopTimes": "1", "FileIndex": 2, "OffsetTime": 1,
                   "CallbackUrl": receiver.url("/files"),
                   "CallbackEvents": ["VodSourceFileStart", "TaskExit"]}),
        ),
    ));
    let starts = || -> Vec<(i64, i64)> {
        receiver
            .to("/files")
            .iter()
            .filter(|c| c.body["callback_event"] == "VodSourceFileStart")
            .filter_map(|c| {
                serde_json::from_str::<Value>(c.body["msg"].as_str().unwrap_or("")).ok()
            })
            .map(|m| {
                (
                    m["index"].as_i64().unwrap_or(0),
                    m["looped_times"].as_i64().unwrap_or(-1),
                )
            })
            .collect()
    };
    // The first loop from file 2 (1 s in), the second whole, then the end.
    assert!(
        wait_until(Duration::from_secs(40), || events(&receiver, "/files")
            .contains(&"TaskExit".to_owned())),
        "the task never finished: {:?} (log: {})",
        starts(),
        server.log()
    );
    assert_eq!(starts(), vec![(2, 0), (3, 0), (1, 1), (2, 1), (3, 1)]);
    let bad = server.api(
        "CreateLivePullStreamTask",
        task("PullVodPushLive", &sources, "bad", json!({"FileIndex": 4})),
    );
    assert_eq!(bad.code(), Some("InvalidParameterValue"), "{}", bad.0);
}

#[test]
fn a_backup_to_url_gets_the_same_push_and_its_failure_leaves_the_main_one() {
    let (server, _config) = relay_server();
    let _source = live_push(&server, "origin", 120);
    let signed = |stream: &str| {
        let auth =
            livestack_core::urlsign::query(&crate::media::push_key(&server), stream, now() + 600);
        format!("rtmp://{}/live/{stream}?domain={PUSH}&{auth}", server.rtmp)
    };
    let id = created(&server.api(
        "CreateLivePullStreamTask",
        task(
            "PullLivePushLive",
            &[flv(&server, "origin")],
            "main_copy",
            json!({"BackupToUrl": signed("spare_copy")}),
        ),
    ));
    await_state(
        &server,
        "main_copy",
        "active",
        "the main push never started",
    );
    await_state(
        &server,
        "spare_copy",
        "active",
        "the backup push never started",
    );
    assert_h264_aac(&flv(&server, "spare_copy"));
    let info = server.api("DescribeLivePullStreamTasks", json!({"TaskId": id}));
    assert!(info.ok()["TaskInfos"][0]["BackupToUrl"]
        .as_str()
        .is_some_and(|u| u.contains("spare_copy")));
    // The backup target refused (forbidden), the main push goes on.
    server
        .api(
            "ForbidLiveStream",
            json!({"DomainName": PUSH, "AppName": "live", "StreamName": "spare_copy"}),
        )
        .ok();
    await_state(
        &server,
        "spare_copy",
        "forbid",
        "the backup was not forbidden",
    );
    let started = state_started(&server, "main_copy");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(state(&server, "main_copy"), "active");
    assert_eq!(
        state_started(&server, "main_copy"),
        started,
        "the main push restarted"
    );
    let bad = server.api(
        "CreateLivePullStreamTask",
        task(
            "PullLivePushLive",
            &[flv(&server, "origin")],
            "x",
            json!({"BackupToUrl": "http://example.com/x"}),
        ),
    );
    assert_eq!(bad.code(), Some("InvalidParameter.InvalidBackupToUrl"));
}

#[test]
fn a_picture_task_pushes_its_picture_as_a_live_stream_with_sound() {
    let (server, _config) = relay_server();
    let media = tempfile::tempdir().expect("tmp");
    let made = Command::new(ffmpeg_bin("ffmpeg"))
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"])
        .args(["-i", "color=c=0x00FF00:s=320x180", "-frames:v", "1"])
        .arg(media.path().join("still.png"))
        .status()
        .expect("ffmpeg");
    assert!(made.success());
    let files = Files::serve(media.path().to_path_buf());
    created(&python1(&server.call(
        "CreateLivePullStreamTask",
        task(
            "PullPicPushLive",
            &[files.url("still.png")],
            "still",
            json!({}),
        ),
    )));
    await_state(&server, "still", "active", "the picture was never pushed");
    let streams = crate::media::probe(&flv(&server, "still"));
    assert!(
        streams.contains(&("video".into(), "h264".into(), 320, 180))
            && streams.iter().any(|s| s.0 == "audio" && s.1 == "aac"),
        "{streams:?}"
    );
    let mut player = crate::backup_streams::Player::start(&flv(&server, "still"));
    assert!(
        player.sees(crate::mix::GREEN),
        "the picture is not what plays"
    );
    let bad = server.api(
        "CreateLivePullStreamTask",
        task("PullPicPushLive", &[files.url("movie.mp4")], "x", json!({})),
    );
    assert_eq!(bad.code(), Some("InvalidParameter.InvalidSourceUrl"));
}

#[test]
fn a_relay_tasks_own_watermarks_are_laid_over_its_push_from_their_corners() {
    let (server, _config) = relay_server();
    let pictures = crate::templates::Pictures::start();
    let _source = crate::mix::colour_push(&server, "plain", "0x0000FF", 120);
    // A 32x16 red picture at a quarter of the width, in the bottom-right
    // corner: 80x40 of the 320x180 picture, at (240, 140).
    let id = created(&python1(&server.call(
        "CreateLivePullStreamTask",
        task(
            "PullLivePushLive",
            &[flv(&server, "plain")],
            "marked",
            json!({"WatermarkList": [{"PictureUrl": pictures.url("/red.png"), "XPosition": 0,
                   "YPosition": 0, "Width": 25, "Height": 0, "Location": 2}]}),
        ),
    )));
    await_state(&server, "marked", "active", "the relay never pushed");
    let url = flv(&server, "marked");
    let corner = crate::processing::mean_color(&url, (320, 180), 250, 145, 60, 30);
    let elsewhere = crate::processing::mean_color(&url, (320, 180), 20, 20, 60, 60);
    assert!(crate::mix::near(corner, crate::mix::RED), "{corner:?}");
    assert!(
        crate::mix::near(elsewhere, [0.0, 0.0, 255.0]),
        "{elsewhere:?}"
    );
    let info = server.api("DescribeLivePullStreamTasks", json!({"TaskId": id}));
    assert_eq!(info.ok()["TaskInfos"][0]["WatermarkList"][0]["Location"], 2);
    // Cleared with an empty list: the push is the source's again.
    server
        .api(
            "ModifyLivePullStreamTask",
            json!({"TaskId": id, "Operator": "tests", "WatermarkList": []}),
        )
        .ok();
    assert!(
        wait_until(Duration::from_secs(30), || {
            std::panic::catch_unwind(|| {
                crate::processing::mean_color(&url, (320, 180), 250, 145, 60, 30)
            })
            .is_ok_and(|c| crate::mix::near(c, [0.0, 0.0, 255.0]))
        }),
        "the watermark stayed"
    );
    let five = server.api(
        "CreateLivePullStreamTask",
        task(
            "PullLivePushLive",
            &[flv(&server, "plain")],
            "x",
            json!({"WatermarkList": vec![json!({"PictureUrl": pictures.url("/red.png"),
                "XPosition": 0, "YPosition": 0, "Width": 10, "Height": 0, "Location": 0}); 5]}),
        ),
    );
    assert_eq!(five.code(), Some("InvalidParameter.InvalidWatermark"));
}
