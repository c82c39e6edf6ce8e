//! Record and screenshot tasks doing real work, end to end: tasks made
//! through the Python SDK for a stream ffmpeg pushes, the files they
//! store checked with ffprobe, the callbacks they send (100 with the
//! TaskId the create call returned, 200), stopping, time windows that
//! open and close on their own, the legacy `CreateLiveRecord` formats,
//! and object storage that cannot take the files
//! (`FailedOperation.InvokeVideoApiFail` at creation; local disk when it
//! fails mid-stream).
//!
//! Servers cut recordings every [`INTERVAL`] seconds
//! (`max_record_interval_secs`), as in `recording.rs`, whose helpers these
//! tests share.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::callbacks::{assert_signed, bind_callbacks, Received, Receiver};
use crate::harness::*;
use crate::media::{now, state};
use crate::processing::picture_size;
use crate::recording::{
    names, probe_file, push, record_receiver, recording_server_with, stored, with_ext, INTERVAL,
};

const PUSH: &str = "push.example.com";

/// A recording server whose callbacks are retried every second, with
/// `extra` configuration.
fn task_server(extra: &str) -> (Server, tempfile::TempDir) {
    recording_server_with(&format!(
        "[callbacks]\ntimeout_secs = 5\nretry_interval_secs = 1\n\
         snapshot_retry_interval_secs = 1\n{extra}"
    ))
}

/// A record template with `params`; its id.
fn record_template(server: &Server, name: &str, params: Value) -> i64 {
    server
        .api(
            "CreateLiveRecordTemplate",
            with(json!({ "TemplateName": name }), params),
        )
        .ok()["TemplateId"]
        .as_i64()
        .expect("record template id")
}

/// A snapshot template with `params`; its id.
fn snapshot_template(server: &Server, params: Value) -> i64 {
    server
        .api(
            "CreateLiveSnapshotTemplate",
            with(json!({"TemplateName": "snap"}), params),
        )
        .ok()["TemplateId"]
        .as_i64()
        .expect("snapshot template id")
}

fn flv_template(server: &Server) -> i64 {
    record_template(
        server,
        "flv",
        json!({"FlvParam": {"Enable": 1, "RecordInterval": 60}}),
    )
}

/// Parameters of a task on live/`stream` until `end`, with `extra`.
fn task(stream: &str, end: i64, extra: Value) -> Value {
    with(
        json!({"DomainName": PUSH, "AppName": "live", "StreamName": stream, "EndTime": end}),
        extra,
    )
}

fn task_id(outcome: &Outcome) -> String {
    outcome.ok()["TaskId"]
        .as_str()
        .unwrap_or_else(|| panic!("no TaskId in {}", outcome.0))
        .to_owned()
}

/// Whether no recording is under way: the recordings' working
/// directories are all gone (delivered).
fn no_recording(server: &Server) -> bool {
    std::fs::read_dir(server.data_dir.join("processing/record"))
        .map(|d| d.count() == 0)
        .unwrap_or(true)
}

/// Checks a record callback of the task `id`: signed, event 100, the
/// TaskId, and no `stream_param` (CSS leaves it out for `CreateRecordTask`).
#[track_caller]
fn assert_task_callback(call: &Received, id: &str, format: &str) {
    assert_signed(call);
    let body = &call.body;
    assert_eq!(body["event_type"], 100, "{body}");
    assert_eq!(body["task_id"], id, "{body}");
    assert_eq!(body["file_format"], format, "{body}");
    assert_eq!(body["stream_id"], "cam", "{body}");
    assert!(body.get("stream_param").is_none(), "{body}");
}

fn seconds(body: &Value, field: &str) -> i64 {
    body[field]
        .as_i64()
        .unwrap_or_else(|| panic!("no {field}: {body}"))
}

#[test]
fn a_record_task_records_until_stopped_and_its_callbacks_carry_its_task_id() {
    let (server, _config) = task_server("");
    let receiver = record_receiver(&server);
    let template = flv_template(&server);
    let _publisher = push(&server, "cam", 40);
    let id = task_id(&server.api(
        "CreateRecordTask",
        task("cam", now() + 600, json!({"TemplateId": template})),
    ));

    let flv = |s: &Server| with_ext(&stored(s), "flv");
    assert!(
        wait_until(Duration::from_secs(25), || flv(&server).len() >= 2),
        "{:?}\n{}",
        names(&stored(&server)),
        server.log()
    );
    // Part of the next file is recorded when the task stops.
    std::thread::sleep(Duration::from_secs(3));
    let stopped_at = now();
    server.api("StopRecordTask", json!({"TaskId": id})).ok();
    assert!(
        wait_until(Duration::from_secs(10), || no_recording(&server)),
        "the recording did not end"
    );
    let files = flv(&server);
    let calls = receiver.wait_for("/record", files.len(), Duration::from_secs(10));
    for call in &calls {
        assert_task_callback(call, &id, "flv");
    }
    // The file being written when the task stopped was delivered: the
    // last file ends at the stop.
    let last_end = calls
        .iter()
        .map(|c| seconds(&c.body, "end_time"))
        .max()
        .unwrap_or(0);
    assert!(
        last_end >= stopped_at - 2,
        "last file ends at {last_end}, the task stopped at {stopped_at}"
    );
    for f in &files {
        let (format, duration, mut streams) = probe_file(f);
        streams.sort();
        assert!(format.contains("flv") && duration > 0.5, "{f:?}");
        assert_eq!(streams, ["audio", "video"], "{f:?}");
    }

    // Nothing more is recorded, though the stream goes on.
    std::thread::sleep(Duration::from_secs(INTERVAL as u64 + 2));
    assert_eq!(flv(&server).len(), files.len(), "recorded after the stop");
    assert_eq!(receiver.to("/record").len(), calls.len());
    assert_eq!(state(&server, "cam"), "active");
}

#[test]
fn a_record_task_without_a_template_records_one_hls_playlist() {
    let (server, _config) = task_server("");
    let receiver = record_receiver(&server);
    let mut publisher = push(&server, "cam", 12);
    let id = task_id(&server.api("CreateRecordTask", task("cam", now() + 600, json!({}))));
    assert!(publisher
        .wait(Duration::from_secs(30))
        .is_some_and(|s| s.success()));

    // The push ended: its playlist is delivered, closed.
    let calls = receiver.wait_for("/record", 1, Duration::from_secs(20));
    assert_task_callback(&calls[0], &id, "hls");
    let files = stored(&server);
    let playlists = with_ext(&files, "m3u8");
    assert_eq!(playlists.len(), 1, "{:?}", names(&files));
    assert!(std::fs::read_to_string(&playlists[0])
        .unwrap_or_default()
        .contains("#EXT-X-ENDLIST"));
    let (_, duration, mut streams) = probe_file(&playlists[0]);
    streams.sort();
    assert_eq!(streams, ["audio", "video"]);
    assert!((7.0..=13.0).contains(&duration), "HLS {duration} s");
    assert!(
        with_ext(&files, "flv").is_empty() && with_ext(&files, "mp4").is_empty(),
        "HLS only: {:?}",
        names(&files)
    );
}

#[test]
fn a_screenshot_task_stores_and_announces_jpegs_until_stopped() {
    let (server, _config) = task_server("");
    let receiver = Receiver::start(&[]);
    bind_callbacks(
        &server,
        "live",
        json!({"SnapshotNotifyUrl": receiver.url("/snap")}),
    );
    let template = snapshot_template(
        &server,
        // No object storage is configured: the bucket's pictures are
        // kept in the local directory.
        json!({"SnapshotInterval": 2, "Width": 320, "Height": 0,
               "CosAppId": 1250000000, "CosBucket": "shots", "CosRegion": "ap-guangzhou"}),
    );
    let _publisher = push(&server, "cam", 30);
    let id = task_id(&server.api(
        "CreateScreenshotTask",
        task("cam", now() + 600, json!({"TemplateId": template})),
    ));

    let shots = receiver.wait_for("/snap", 3, Duration::from_secs(20));
    let jpegs = |s: &Server| with_ext(&stored(s), "jpg");
    for shot in &shots {
        let body = &shot.body;
        assert_signed(shot);
        assert_eq!(body["event_type"], 200, "{body}");
        assert_eq!(body["stream_id"], "cam", "{body}");
        assert_eq!(
            (&body["width"], &body["height"]),
            (&json!(320), &json!(180))
        );
        let pic = body["pic_url"].as_str().unwrap_or_default();
        let file = jpegs(&server)
            .into_iter()
            .find(|f| pic.ends_with(&*f.file_name().unwrap_or_default().to_string_lossy()))
            .unwrap_or_else(|| panic!("{pic} is not stored: {:?}", names(&stored(&server))));
        assert_eq!(picture_size(&file), (320, 180), "{file:?}");
    }

    server.api("StopScreenshotTask", json!({"TaskId": id})).ok();
    // A picture taken as the task stopped may still arrive; then none.
    std::thread::sleep(Duration::from_secs(2));
    let (files, calls) = (jpegs(&server).len(), receiver.to("/snap").len());
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(jpegs(&server).len(), files, "pictures after the stop");
    assert_eq!(receiver.to("/snap").len(), calls);
    assert_eq!(state(&server, "cam"), "active");
}

#[test]
fn a_task_in_the_future_records_from_its_start_time_to_its_end_time() {
    let (server, _config) = task_server("");
    let receiver = record_receiver(&server);
    let template = flv_template(&server);
    let _publisher = push(&server, "cam", 30);
    let (start, end) = (now() + 4, now() + 12);
    let id = task_id(&server.api(
        "CreateRecordTask",
        task(
            "cam",
            end,
            json!({"StartTime": start, "TemplateId": template}),
        ),
    ));

    // Nothing before the window opens.
    while now() < start - 1 {
        assert!(
            no_recording(&server) && stored(&server).is_empty(),
            "recording before {start}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        wait_until(Duration::from_secs(5), || !no_recording(&server)),
        "the window opened and nothing records"
    );
    // The window closes on its own.
    std::thread::sleep(Duration::from_secs((end - now()).max(0) as u64));
    assert!(
        wait_until(Duration::from_secs(8), || no_recording(&server)),
        "still recording after {end}"
    );
    let files = with_ext(&stored(&server), "flv");
    let calls = receiver.wait_for("/record", files.len().max(1), Duration::from_secs(10));
    let mut total = 0.0;
    for f in &files {
        total += probe_file(f).1;
    }
    assert!(
        (5.0..=9.5).contains(&total),
        "{total} s recorded in an 8 s window: {:?}",
        names(&files)
    );
    for call in &calls {
        assert_task_callback(call, &id, "flv");
        assert!(seconds(&call.body, "start_time") >= start, "{}", call.body);
        assert!(seconds(&call.body, "end_time") <= end + 2, "{}", call.body);
    }
    std::thread::sleep(Duration::from_secs(INTERVAL as u64 + 1));
    assert_eq!(with_ext(&stored(&server), "flv").len(), files.len());
    assert_eq!(state(&server, "cam"), "active");
}

/// A Beijing time as the legacy API takes it.
fn legacy_time(unix: i64) -> String {
    livestack_api::time::beijing(unix)
}

#[test]
fn legacy_scheduled_records_take_their_file_format_and_record_type() {
    let (server, _config) = task_server("");
    let receiver = record_receiver(&server);
    let legacy = |extra: Value| {
        let outcome = server.api(
            "CreateLiveRecord",
            with(
                json!({"DomainName": PUSH, "AppName": "live", "StreamName": "cam",
                       "StartTime": legacy_time(now() - 10),
                       "EndTime": legacy_time(now() + 600)}),
                extra,
            ),
        );
        outcome.ok()["TaskId"].as_i64().expect("legacy TaskId")
    };
    let mp4 = legacy(json!({"FileFormat": "mp4"}));
    let audio = legacy(json!({"RecordType": "audio"}));

    let mut publisher = push(&server, "cam", 12);
    assert!(publisher
        .wait(Duration::from_secs(30))
        .is_some_and(|s| s.success()));
    assert!(
        wait_until(Duration::from_secs(15), || no_recording(&server)),
        "recordings not delivered"
    );
    let files = stored(&server);
    let (mp4s, flvs) = (with_ext(&files, "mp4"), with_ext(&files, "flv"));
    assert!(mp4s.len() >= 2 && flvs.len() >= 2, "{:?}", names(&files));
    for f in &mp4s {
        let (format, duration, mut streams) = probe_file(f);
        streams.sort();
        assert!(format.contains("mp4") && duration > 0.5, "{f:?}: {format}");
        assert_eq!(streams, ["audio", "video"], "{f:?}");
    }
    // RecordType audio: FLV (the default format) without a video stream.
    for f in &flvs {
        let (format, duration, streams) = probe_file(f);
        assert!(format.contains("flv") && duration > 0.5, "{f:?}: {format}");
        assert_eq!(streams, ["audio"], "{f:?}");
    }
    // Their callbacks carry the legacy (integer) TaskIds.
    let calls = receiver.wait_for("/record", files.len(), Duration::from_secs(10));
    for call in &calls {
        let b = &call.body;
        let want = if b["file_format"] == "mp4" {
            mp4
        } else {
            audio
        };
        assert_eq!(b["task_id"], want.to_string(), "{b}");
    }
}

#[test]
fn a_task_whose_bucket_cannot_be_reached_is_refused_with_invoke_video_api_fail() {
    // Object storage nobody listens for (port 9 of loopback).
    let (server, _config) = task_server(
        "[storage]\nupload_timeout_secs = 2\n\
         [storage.s3]\nendpoint = \"http://127.0.0.1:9\"\nallow_http = true\n",
    );
    let to_bucket = record_template(
        &server,
        "cos",
        json!({"CosStore": 1, "FlvParam": {"Enable": 1, "RecordInterval": 60,
               "CosBucketName": "vids", "CosBucketRegion": "ap-guangzhou",
               "CosBucketPath": "/rec/{StreamID}"}}),
    );
    let local = flv_template(&server);
    let shots = snapshot_template(
        &server,
        json!({"SnapshotInterval": 2, "CosAppId": 1250000000, "CosBucket": "shots",
               "CosRegion": "ap-guangzhou"}),
    );
    let end = now() + 600;

    let started = Instant::now();
    let refused = server.api(
        "CreateRecordTask",
        task("cam", end, json!({"TemplateId": to_bucket})),
    );
    refused.expect_code("FailedOperation.InvokeVideoApiFail");
    assert!(
        refused.message().contains("`vids`"),
        "{}",
        refused.message()
    );
    assert!(
        !refused.message().contains("127.0.0.1"),
        "no address in the message"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    server
        .api(
            "CreateScreenshotTask",
            task("cam", end, json!({"TemplateId": shots})),
        )
        .expect_code("FailedOperation.InvokeVideoApiFail");
    // A dry run checks the storage too; a wrong domain is said first.
    python1(&with(
        server.call(
            "CreateRecordTask",
            task("cam", end, json!({"TemplateId": to_bucket, "DryRun": true})),
        ),
        json!({"raw": true}),
    ))
    .expect_code("FailedOperation.InvokeVideoApiFail");
    server
        .api(
            "CreateRecordTask",
            with(
                task("cam", end, json!({"TemplateId": to_bucket})),
                json!({"DomainName": "nowhere.example.com"}),
            ),
        )
        .expect_code("InvalidParameter");
    assert!(server.log().contains("object storage check failed"));

    // Files kept in the media library (the local directory) need no bucket.
    let ok = task_id(&server.api(
        "CreateRecordTask",
        task("cam", end, json!({"TemplateId": local})),
    ));
    let listed = server.api(
        "DescribeRecordTask",
        json!({"StartTime": now() - 3600, "EndTime": now() + 3600}),
    );
    let ids: Vec<&str> = listed.ok()["TaskList"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["TaskId"].as_str())
        .collect();
    assert_eq!(ids, [ok.as_str()], "only the task that was created");
}

/// A moto S3 server on a free loopback port (from `.venv`, as the
/// storage tests use it), killed when dropped.
struct Moto {
    child: Child,
    addr: SocketAddr,
}

impl Moto {
    fn start() -> Moto {
        let bin = repo_root().join(".venv/bin/moto_server");
        assert!(
            bin.exists(),
            "{} is missing: run scripts/test",
            bin.display()
        );
        // moto takes no port 0; one just released is free unless taken in
        // between, which a retry absorbs.
        for _ in 0..3 {
            let addr = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port");
            let child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &addr.port().to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("moto_server starts");
            let mut moto = Moto { child, addr };
            let up = wait_until(Duration::from_secs(30), || {
                matches!(moto.child.try_wait(), Ok(Some(_)))
                    || moto.request("GET", "/moto-api/").is_some()
            });
            if up && matches!(moto.child.try_wait(), Ok(None)) {
                return moto;
            }
        }
        panic!("moto_server did not start");
    }

    /// The first bytes of the object at `key` in `bucket`, read with
    /// boto3 (moto refuses unsigned reads).
    fn head_bytes(&self, bucket: &str, key: &str) -> Vec<u8> {
        let script = "import sys, boto3\n\
             s3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1',\n\
                               aws_access_key_id='testing', aws_secret_access_key='testing')\n\
             body = s3.get_object(Bucket=sys.argv[2], Key=sys.argv[3])['Body'].read()\n\
             sys.stdout.buffer.write(body[:16])\n";
        let out = Command::new(repo_root().join(".venv/bin/python"))
            .args(["-c", script, &format!("http://{}", self.addr), bucket, key])
            .output()
            .expect("python");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// One request; the status and body, or None when nothing answers.
    fn request(&self, method: &str, path: &str) -> Option<(u16, Vec<u8>)> {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.addr
        );
        http(self.addr, request.as_bytes())
            .ok()
            .map(|r| (r.status, r.body))
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_bucket_that_fails_mid_stream_leaves_the_recording_going_to_local_disk() {
    let moto = Moto::start();
    assert_eq!(moto.request("PUT", "/vids").map(|r| r.0), Some(200));
    let (server, _config) = task_server(&format!(
        "[storage]\nupload_timeout_secs = 3\n\
         [storage.s3]\nendpoint = \"http://{}\"\nallow_http = true\nregion = \"us-east-1\"\n\
         access_key_id = \"testing\"\nsecret_access_key = \"testing\"\n",
        moto.addr
    ));
    let receiver = record_receiver(&server);
    let template = record_template(
        &server,
        "cos",
        json!({"CosStore": 1, "FlvParam": {"Enable": 1, "RecordInterval": 60,
               "CosBucketName": "vids", "CosBucketRegion": "ap-guangzhou",
               "CosBucketPath": "/rec/{StreamID}/{StartHour}{StartMinute}{StartSecond}"}}),
    );
    let _publisher = push(&server, "cam", 40);
    // The bucket answers: the task is created.
    let id = task_id(&server.api(
        "CreateRecordTask",
        task("cam", now() + 600, json!({"TemplateId": template})),
    ));
    let first = receiver.wait_for("/record", 1, Duration::from_secs(20));
    let body = &first[0].body;
    assert_task_callback(&first[0], &id, "flv");
    let url = body["video_url"].as_str().unwrap_or_default();
    let path = url
        .strip_prefix(&format!("http://{}", moto.addr))
        .unwrap_or_else(|| panic!("{url} is not in the bucket"));
    assert!(path.starts_with("/vids/rec/cam/"), "{url}");
    let key = path.trim_start_matches("/vids/");
    assert!(
        moto.head_bytes("vids", key).starts_with(b"FLV"),
        "{url} is not an FLV file"
    );

    // The storage goes away mid-stream: files are kept on local disk,
    // whole, and the recording goes on.
    drop(moto);
    let kept_dir = server.data_dir.join("records/buckets/vids/rec/cam");
    let kept = || -> Vec<PathBuf> {
        with_ext(&stored(&server), "flv")
            .into_iter()
            .filter(|p| p.starts_with(&kept_dir))
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(25), || kept().len() >= 2),
        "{:?}\n{}",
        names(&stored(&server)),
        server.log()
    );
    for f in kept() {
        let (format, duration, _) = probe_file(&f);
        assert!(format.contains("flv") && duration > 0.5, "{f:?}");
    }
    assert_eq!(state(&server, "cam"), "active");
    // A new task for that bucket is refused now.
    server
        .api(
            "CreateRecordTask",
            task("cam", now() + 600, json!({"TemplateId": template})),
        )
        .expect_code("FailedOperation.InvokeVideoApiFail");
}

#[test]
fn a_bucket_the_operator_did_not_grant_to_an_account_is_refused_for_its_templates() {
    // Every account may use the buckets named after its AppId, no others.
    let (server, _config) = task_server(
        "[storage.s3]\nendpoint = \"http://127.0.0.1:9\"\nallow_http = true\n\
         [storage.s3.buckets]\n\"*\" = [\"{appid}-*\"]\n",
    );
    let app_id = crate::callbacks::root_app_id(&server);
    let own = format!("{app_id}-media");
    let snapshot = |bucket: &str| {
        json!({"TemplateName": "snap", "SnapshotInterval": 10, "CosAppId": 1250000000,
               "CosBucket": bucket, "CosRegion": "ap-guangzhou"})
    };
    let record = |bucket: &str| {
        json!({"TemplateName": "rec", "CosStore": 1, "FlvParam": {"Enable": 1,
               "RecordInterval": 60, "CosBucketName": bucket,
               "CosBucketRegion": "ap-guangzhou", "CosBucketPath": "/rec"}})
    };

    let refused = server.api("CreateLiveSnapshotTemplate", snapshot("shared-pics"));
    refused.expect_code("FailedOperation.CosBucketNotPermission");
    assert!(
        refused.message().contains("`shared-pics`"),
        "{}",
        refused.message()
    );
    server
        .api("CreateLiveRecordTemplate", record("shared-vids"))
        .expect_code("InvalidParameter");

    let snap = server
        .api("CreateLiveSnapshotTemplate", snapshot(&own))
        .ok()["TemplateId"]
        .as_i64()
        .expect("id");
    server.api("CreateLiveRecordTemplate", record(&own)).ok();
    // Changing a template to another's bucket is refused and changes nothing.
    let other = format!("{}-media", app_id + 1);
    server
        .api(
            "ModifyLiveSnapshotTemplate",
            with(json!({"TemplateId": snap}), snapshot(&other)),
        )
        .expect_code("FailedOperation.CosBucketNotPermission");
    let kept = server.api("DescribeLiveSnapshotTemplate", json!({"TemplateId": snap}));
    assert_eq!(kept.ok()["Template"]["CosBucket"], own.as_str());

    // Another account: the root account's bucket is not its own.
    let (id, key) = server.account_key("tenant-b");
    server
        .api_as(&id, &key, "CreateLiveSnapshotTemplate", snapshot(&own))
        .expect_code("FailedOperation.CosBucketNotPermission");
}

#[test]
fn snapshot_and_concurrent_recording_counts_come_from_what_was_stored_and_recorded() {
    let (server, _config) = task_server("");
    let rec = record_template(
        &server,
        "both",
        json!({"FlvParam": {"Enable": 1, "RecordInterval": 60},
               "Mp4Param": {"Enable": 1, "RecordInterval": 60}}),
    );
    let snap = snapshot_template(
        &server,
        json!({"SnapshotInterval": 2, "CosAppId": 1250000000, "CosBucket": "shots",
               "CosRegion": "ap-guangzhou"}),
    );
    for (action, id) in [
        ("CreateLiveRecordRule", rec),
        ("CreateLiveSnapshotRule", snap),
    ] {
        server
            .api(
                action,
                json!({"DomainName": PUSH, "AppName": "", "StreamName": "", "TemplateId": id}),
            )
            .ok();
    }
    let mut publisher = push(&server, "cam", 8);
    assert!(publisher.wait(Duration::from_secs(30)).is_some());
    let jpgs = || with_ext(&stored(&server), "jpg").len() as u64;
    assert!(
        wait_until(Duration::from_secs(15), || jpgs() >= 2),
        "no snapshots"
    );
    // Every stored picture is counted, once it is recorded.
    let iso = |t: i64| livestack_api::time::utc_iso(t);
    let sheets = |extra: Value| {
        server
            .api(
                "DescribeScreenShotSheetNumList",
                with(
                    json!({"StartTime": iso(now() - 900), "EndTime": iso(now())}),
                    extra,
                ),
            )
            .ok()["DataInfoList"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let total = |rows: &[Value]| rows.iter().filter_map(|r| r["Num"].as_u64()).sum::<u64>();
    assert!(
        wait_until(Duration::from_secs(10), || total(&sheets(
            json!({"Granularity": "Minute"})
        )) == jpgs()),
        "{:?} for {} pictures",
        sheets(json!({"Granularity": "Minute"})),
        jpgs()
    );
    let minutes = sheets(json!({"Granularity": "Minute"}));
    // Every 5-minute slot of the 15 minutes is listed, empty ones as 0.
    assert!((3..=4).contains(&minutes.len()), "{minutes:?}");
    // The snapshotter may still be storing the push's last picture (file
    // first, then its record), so each view is awaited to agree with the
    // files rather than read once.
    for (view, extra) in [
        ("by day", json!({})),
        ("by domain", json!({"PushDomains": [PUSH]})),
    ] {
        assert!(
            wait_until(Duration::from_secs(10), || total(&sheets(extra.clone()))
                == jpgs()),
            "{view}: {:?} for {} pictures",
            sheets(extra.clone()),
            jpgs()
        );
    }
    assert_eq!(
        total(&sheets(json!({"PushDomains": ["other.example.com"]}))),
        0
    );
    assert_eq!(total(&sheets(json!({"Zone": "Oversea"}))), 0);

    // One stream was recorded (in two formats) at a time.
    let concurrent = |live_type: &str| {
        server
            .api(
                "DescribeConcurrentRecordStreamNum",
                json!({"LiveType": live_type, "StartTime": iso(now() - 900), "EndTime": iso(now())}),
            )
            .ok()["DataInfoList"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let peak = |rows: &[Value]| rows.iter().filter_map(|r| r["Num"].as_u64()).max();
    assert!(
        wait_until(Duration::from_secs(10), || peak(&concurrent("NormalLive"))
            == Some(1)),
        "{:?}",
        concurrent("NormalLive")
    );
    assert_eq!(peak(&concurrent("SlowLive")), Some(0));
    assert!(concurrent("NormalLive")[0]["Time"]
        .as_str()
        .is_some_and(|t| t.ends_with("+08:00")));
    server
        .api(
            "DescribeConcurrentRecordStreamNum",
            json!({"LiveType": "Other", "StartTime": iso(now() - 900), "EndTime": iso(now())}),
        )
        .expect_code("InvalidParameterValue");
}
