//! Event callbacks end to end: a callback template and rule made through
//! the Python SDK, ffmpeg pushing, and a small HTTP receiver on
//! 127.0.0.1 that records what livestack posts to it.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use livestack_core::urlsign;
use md5::{Digest, Md5};
use serde_json::{json, Value};

use crate::harness::*;
use crate::media::{add, now, push_key, push_url, state, Publisher};

const KEY: &str = "adasda131312";

/// One request the receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) path: String,
    pub(crate) content_type: String,
    pub(crate) body: Value,
    pub(crate) at: Instant,
}

#[derive(Default)]
struct Shared {
    requests: Vec<Received>,
    /// Statuses to answer, in turn; 200 once they run out.
    statuses: VecDeque<u16>,
}

/// An HTTP receiver on 127.0.0.1; stops on drop.
pub(crate) struct Receiver {
    port: u16,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    /// A receiver answering `statuses` in turn, then 200.
    pub(crate) fn start(statuses: &[u16]) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let shared = Arc::new(Mutex::new(Shared {
            requests: Vec::new(),
            statuses: statuses.iter().copied().collect(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
            std::thread::spawn(move || {
                for socket in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Ok(socket) = socket {
                        serve_one(socket, &shared);
                    }
                }
            })
        };
        Receiver {
            port,
            shared,
            stop,
            thread: Some(thread),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub(crate) fn requests(&self) -> Vec<Received> {
        self.shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .requests
            .clone()
    }

    /// The requests to `path`.
    pub(crate) fn to(&self, path: &str) -> Vec<Received> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Waits until `n` requests reached `path`; returns them.
    #[track_caller]
    pub(crate) fn wait_for(&self, path: &str, n: usize, limit: Duration) -> Vec<Received> {
        let arrived = wait_until(limit, || self.to(path).len() >= n);
        assert!(
            arrived,
            "{path}: wanted {n} requests, got {:?}",
            self.requests()
        );
        self.to(path)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request (headers and a Content-Length body), records it and
/// answers with the next status.
fn serve_one(mut socket: TcpStream, shared: &Mutex<Shared>) {
    let _ = socket.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head, body) = loop {
        let n = match socket.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let len: usize = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        if buf.len() >= end + 4 + len {
            break (head, buf[end + 4..end + 4 + len].to_vec());
        }
    };
    let path = head
        .lines()
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("")
        .split('?')
        .next()
        .unwrap_or("")
        .to_owned();
    let content_type = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    let status = {
        let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
        s.requests.push(Received {
            path,
            content_type,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            at: Instant::now(),
        });
        s.statuses.pop_front().unwrap_or(200)
    };
    let answer = format!(
        "HTTP/1.1 {status} Whatever\r\nContent-Type: application/json\r\n\
         Content-Length: 10\r\nConnection: close\r\n\r\n{{\"code\":0}}"
    );
    let _ = socket.write_all(answer.as_bytes());
}

/// A server whose callbacks are retried every second, with
/// push.example.com (push) and play.example.com (play).
pub(crate) struct Setup {
    pub(crate) server: Server,
    _config: tempfile::TempDir,
}

pub(crate) fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tmp");
    let config: PathBuf = dir.path().join("livestack.toml");
    std::fs::write(
        &config,
        "[callbacks]\ntimeout_secs = 5\nretry_interval_secs = 1\nsnapshot_retry_interval_secs = 1\n",
    )
    .expect("write config");
    let server = Server::start_with(ServerOptions {
        args: vec!["--config".into(), config.display().to_string()],
        ..ServerOptions::default()
    });
    add(&server, "push.example.com", 0);
    add(&server, "play.example.com", 1);
    Setup {
        server,
        _config: dir,
    }
}

/// Creates a callback template with `urls` and binds it to `app` on the
/// push domain.
pub(crate) fn bind_callbacks(server: &Server, app: &str, urls: Value) {
    let mut params = json!({"TemplateName": "hooks", "CallbackKey": KEY});
    if let (Some(p), Value::Object(u)) = (params.as_object_mut(), urls) {
        p.extend(u);
    }
    let created = server.api("CreateLiveCallbackTemplate", params);
    let id = created.ok()["TemplateId"].as_i64().expect("TemplateId");
    server
        .api(
            "CreateLiveCallbackRule",
            json!({"DomainName": "push.example.com", "AppName": app, "TemplateId": id}),
        )
        .ok();
}

/// A signed push of live/`stream` for `seconds`.
pub(crate) fn push(server: &Server, stream: &str, seconds: u32) -> Publisher {
    let auth = urlsign::query(&push_key(server), stream, now() + 600);
    Publisher::start(&push_url(server, stream, &auth), seconds)
}

fn drop_stream(server: &Server, stream: &str) {
    server
        .api(
            "DropLiveStream",
            json!({"DomainName": "push.example.com", "AppName": "live", "StreamName": stream}),
        )
        .ok();
}

/// The root account's AppId, as the store keeps it.
pub(crate) fn root_app_id(server: &Server) -> i64 {
    server
        .store()
        .run_blocking(|c| {
            Ok(
                c.query_row("SELECT app_id FROM accounts WHERE name = 'root'", (), |r| {
                    r.get(0)
                })?,
            )
        })
        .expect("root account")
}

pub(crate) fn md5_hex(text: &str) -> String {
    hex::encode(Md5::digest(text.as_bytes()))
}

/// Checks `t` (an expiry about ten minutes after the call was sent) and
/// `sign`.
#[track_caller]
pub(crate) fn assert_signed(call: &Received) {
    let body = &call.body;
    let t = body["t"].as_i64().expect("t is an integer");
    // From the call's arrival, not from now: a test may look at its calls
    // long after they came (after probing every recorded file, say).
    let arrived = now() - call.at.elapsed().as_secs() as i64;
    let ahead = t - arrived;
    assert!((590..=610).contains(&ahead), "t is {ahead} s ahead: {body}");
    assert_eq!(body["sign"], md5_hex(&format!("{KEY}{t}")), "{body}");
}

#[test]
fn a_push_notifies_its_begin_and_end_with_signed_bodies_sharing_one_sequence() {
    let Setup { server, _config } = setup();
    let receiver = Receiver::start(&[]);
    bind_callbacks(
        &server,
        "live",
        json!({
            "StreamBeginNotifyUrl": receiver.url("/begin?token=abc"),
            "StreamEndNotifyUrl": receiver.url("/end"),
        }),
    );
    let mut publisher = push(&server, "cam", 30);
    let begin = receiver.wait_for("/begin", 1, Duration::from_secs(15));
    let b = &begin[0];
    assert_eq!(b.content_type, "application/json");
    let body = &b.body;
    assert_signed(b);
    assert_eq!(body["event_type"], 1);
    assert_eq!(body["appid"], root_app_id(&server));
    assert_eq!(body["stream_id"], "cam");
    assert_eq!(body["channel_id"], "cam");
    assert_eq!(body["app"], "push.example.com");
    assert_eq!(body["appname"], "live");
    assert_eq!(body["errcode"], 0);
    assert_eq!(body["errmsg"], "ok");
    assert_eq!(body["user_ip"], "127.0.0.1");
    assert_eq!(body["node"], "127.0.0.1");
    let param = body["stream_param"].as_str().expect("stream_param");
    assert!(
        param.contains("txSecret=") && param.contains("txTime="),
        "{param}"
    );
    let event_time = body["event_time"].as_i64().expect("event_time");
    assert!((now() - event_time).abs() <= 10, "{body}");
    // The begin callback carries the picture size, as CSS's does.
    assert_eq!(
        (body["width"].clone(), body["height"].clone()),
        (json!(640), json!(360)),
        "{body}"
    );
    let sequence = body["sequence"].as_str().expect("sequence").to_owned();
    assert!(!sequence.is_empty());

    // Let the push run a little so that its duration and picture size
    // are known, then end it from the API.
    assert!(wait_until(Duration::from_secs(10), || state(
        &server, "cam"
    ) == "active"));
    let measured = wait_until(Duration::from_secs(10), || {
        server.api("DescribeLiveStreamPushInfoList", json!({})).ok()["DataInfoList"][0]
            ["Resolution"]
            == "640*360"
    });
    assert!(measured, "the picture size was never learnt");
    drop_stream(&server, "cam");
    assert!(publisher.wait(Duration::from_secs(10)).is_some());
    let end = receiver.wait_for("/end", 1, Duration::from_secs(15));
    let body = &end[0].body;
    assert_signed(&end[0]);
    assert_eq!(body["event_type"], 0);
    assert_eq!(body["sequence"], sequence.as_str(), "begin and end pair up");
    assert_eq!(body["stream_id"], "cam");
    assert_eq!(body["appid"], root_app_id(&server));
    assert_eq!(body["errcode"], 21, "dropped by the API: {body}");
    assert_eq!(body["errmsg"], "dropped by DropLiveStream");
    let duration: u64 = body["push_duration"]
        .as_str()
        .expect("push_duration is a string")
        .parse()
        .expect("milliseconds");
    let lasted = end[0].at.duration_since(b.at).as_millis() as u64;
    assert!(
        duration > 0 && duration <= lasted + 1000,
        "push_duration {duration} ms, begin to end {lasted} ms"
    );
    assert_eq!(
        (body["width"].clone(), body["height"].clone()),
        (json!(640), json!(360))
    );
    assert_eq!(receiver.to("/begin").len(), 1, "answered 200: sent once");
}

#[test]
fn a_receiver_that_refuses_twice_gets_the_notification_a_third_time() {
    let Setup { server, _config } = setup();
    let receiver = Receiver::start(&[500, 500]);
    bind_callbacks(
        &server,
        "",
        json!({"StreamBeginNotifyUrl": receiver.url("/begin")}),
    );
    let _publisher = push(&server, "retry", 30);
    let got = receiver.wait_for("/begin", 3, Duration::from_secs(20));
    for r in &got {
        assert_eq!(r.body["event_type"], 1);
        assert_eq!(r.body["stream_id"], "retry");
        assert_eq!(r.body["sequence"], got[0].body["sequence"]);
        assert_signed(r);
    }
    for pair in got.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(
            gap >= Duration::from_millis(900),
            "retried after {gap:?}, the interval is 1 s"
        );
    }
    // Accepted at the third attempt: nothing follows, although another
    // retry would be due within a second. Absence needs a wait.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(receiver.to("/begin").len(), 3);
}

#[test]
fn a_stream_without_a_callback_rule_notifies_nobody() {
    let Setup { server, _config } = setup();
    let receiver = Receiver::start(&[]);
    // The template is bound to app `bound` only.
    bind_callbacks(
        &server,
        "bound",
        json!({
            "StreamBeginNotifyUrl": receiver.url("/begin"),
            "StreamEndNotifyUrl": receiver.url("/end"),
        }),
    );
    let mut unbound = push(&server, "quiet", 30);
    assert!(wait_until(Duration::from_secs(10), || state(
        &server, "quiet"
    ) == "active"));
    drop_stream(&server, "quiet");
    assert!(unbound.wait(Duration::from_secs(10)).is_some());
    assert!(wait_until(Duration::from_secs(5), || state(
        &server, "quiet"
    ) == "inactive"));

    // A bound stream pushed afterwards is notified; notifications go out
    // in order, so any for the unbound push would have come first.
    let auth = urlsign::query(&push_key(&server), "loud", now() + 600);
    let url = format!(
        "rtmp://{}/bound/loud?domain=push.example.com&{auth}",
        server.rtmp
    );
    let mut bound = Publisher::start(&url, 2);
    receiver.wait_for("/end", 1, Duration::from_secs(20));
    assert!(bound.wait(Duration::from_secs(10)).is_some());
    let streams: Vec<(String, Value)> = receiver
        .requests()
        .into_iter()
        .map(|r| (r.path, r.body["stream_id"].clone()))
        .collect();
    assert_eq!(
        streams,
        vec![
            ("/begin".to_owned(), json!("loud")),
            ("/end".to_owned(), json!("loud")),
        ]
    );
}

#[test]
fn a_push_cut_off_by_a_server_shutdown_still_notifies_its_end() {
    let Setup {
        mut server,
        _config,
    } = setup();
    let receiver = Receiver::start(&[]);
    bind_callbacks(
        &server,
        "live",
        json!({
            "StreamBeginNotifyUrl": receiver.url("/begin"),
            "StreamEndNotifyUrl": receiver.url("/end"),
        }),
    );
    let _publisher = push(&server, "cam", 30);
    let begin = receiver.wait_for("/begin", 1, Duration::from_secs(15));
    assert_eq!(begin.len(), 1);
    server.terminate();
    // The server has exited: whatever it delivered has arrived.
    let end = receiver.to("/end");
    assert_eq!(end.len(), 1, "end events: {end:?}");
    assert_signed(&end[0]);
    assert_eq!(end[0].body["event_type"], 0);
    assert_eq!(end[0].body["sequence"], begin[0].body["sequence"]);
}

#[test]
fn describe_callback_records_list_shows_every_attempt_with_the_receivers_answer() {
    let Setup { server, _config } = setup();
    // The begin callback is refused once (500), then taken; the end one
    // is taken at once.
    let receiver = Receiver::start(&[500]);
    bind_callbacks(
        &server,
        "live",
        json!({"StreamBeginNotifyUrl": receiver.url("/begin"),
               "StreamEndNotifyUrl": receiver.url("/end")}),
    );
    let mut publisher = push(&server, "rec1", 2);
    assert!(publisher.wait(Duration::from_secs(20)).is_some());
    receiver.wait_for("/begin", 2, Duration::from_secs(20));
    receiver.wait_for("/end", 1, Duration::from_secs(20));

    let iso = |t: i64| livestack_api::time::utc_iso(t);
    let window = |extra: Value| {
        with(
            json!({"StartTime": iso(now() - 600), "EndTime": iso(now()),
                   "StreamName": "rec1", "PageNum": 1, "PageSize": 10}),
            extra,
        )
    };
    let list = |extra: Value| {
        assert!(
            wait_until(Duration::from_secs(10), || server
                .api("DescribeCallbackRecordsList", window(extra.clone()))
                .ok()["TotalNum"]
                .as_u64()
                .is_some_and(|n| n > 0)),
            "no records for {extra}"
        );
        server
            .api("DescribeCallbackRecordsList", window(extra))
            .ok()
            .clone()
    };
    let all = list(json!({}));
    assert_eq!(all["TotalNum"], 3, "{all}");
    let rows = all["DataInfoList"].as_array().cloned().unwrap_or_default();
    // Newest first: end (taken), begin (taken), begin (refused).
    let codes: Vec<(u64, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["EventType"].as_u64().unwrap_or(9),
                r["ResultCode"].as_u64().unwrap_or(9),
            )
        })
        .collect();
    assert_eq!(codes, vec![(0, 0), (1, 0), (1, 500)], "{all}");
    for r in &rows {
        assert_eq!(r["StreamId"], "rec1");
        assert_eq!(r["Response"], "{\"code\":0}", "{r}");
        let sent: Value =
            serde_json::from_str(r["Request"].as_str().unwrap_or("")).unwrap_or_default();
        assert_eq!(sent["stream_id"], "rec1", "{r}");
        assert_eq!(sent["event_type"], r["EventType"], "{r}");
        // The request's format: ISO-8601 UTC.
        assert!(
            r["EventTime"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{r}"
        );
    }

    let failed = list(json!({"ResultCode": 1}));
    assert_eq!(failed["TotalNum"], 1, "{failed}");
    let ends = list(json!({"EventType": 0}));
    assert_eq!(ends["TotalNum"], 1, "{ends}");
    // Beijing-time requests get Beijing-time answers.
    let beijing = server
        .api(
            "DescribeCallbackRecordsList",
            json!({"StartTime": livestack_api::time::beijing(now() - 600),
                   "EndTime": livestack_api::time::beijing(now()),
                   "StreamName": "rec1", "PageNum": 1, "PageSize": 1}),
        )
        .ok()
        .clone();
    assert_eq!(beijing["TotalPage"], 3, "{beijing}");
    assert!(
        beijing["DataInfoList"][0]["EventTime"]
            .as_str()
            .is_some_and(|t| t.len() == 19 && t.contains(' ')),
        "{beijing}"
    );
    // Another stream has none; the window is at most a day.
    let other = server
        .api(
            "DescribeCallbackRecordsList",
            with(window(json!({})), json!({"StreamName": "other"})),
        )
        .ok()
        .clone();
    assert_eq!(other["TotalNum"], 0);
    server
        .api(
            "DescribeCallbackRecordsList",
            with(
                window(json!({})),
                json!({"StartTime": iso(now() - 2 * 86_400)}),
            ),
        )
        .expect_code("InvalidParameterValue");
    server
        .api(
            "DescribeCallbackRecordsList",
            window(json!({"EventType": 7})),
        )
        .expect_code("InvalidParameterValue");
}

#[test]
fn a_callback_nobody_answers_is_recorded_with_result_code_502_and_why() {
    let Setup { server, _config } = setup();
    // Nothing listens on port 9 of loopback.
    bind_callbacks(
        &server,
        "live",
        json!({"StreamBeginNotifyUrl": "http://127.0.0.1:9/begin"}),
    );
    let mut publisher = push(&server, "dead1", 2);
    assert!(publisher.wait(Duration::from_secs(20)).is_some());
    let iso = |t: i64| livestack_api::time::utc_iso(t);
    let ask = || {
        server
            .api(
                "DescribeCallbackRecordsList",
                json!({"StartTime": iso(now() - 600), "EndTime": iso(now()),
                       "StreamName": "dead1", "PageNum": 1, "PageSize": 10}),
            )
            .ok()
            .clone()
    };
    assert!(
        wait_until(Duration::from_secs(10), || ask()["TotalNum"]
            .as_u64()
            .is_some_and(|n| n >= 1)),
        "{}",
        ask()
    );
    let first = ask()["DataInfoList"][0].clone();
    assert_eq!(first["EventType"], 1, "{first}");
    assert_eq!(first["ResultCode"], 502, "{first}");
    assert!(
        !first["Response"].as_str().unwrap_or("").is_empty(),
        "the record says why: {first}"
    );
}
