//! Record and screenshot tasks (`Create/Stop/Delete/DescribeRecordTask`,
//! `…ScreenshotTask`) and legacy recording tasks (`CreateLiveRecord`,
//! `StopLiveRecord`, `DeleteLiveRecord`) through the official Python SDK
//! (and tccli for a sample): round trips, every documented window and
//! limit, tenancy, paging, dry runs and durability across a restart.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;
use crate::media::Publisher;

const PUSH: &str = "push.example.com";
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

/// A server with one push domain and a rate limit high enough for the
/// limit tests.
fn setup() -> Server {
    setup_on(Server::start_with_args(&["--api-rate-limit", "100000"]))
}

/// The push domain on `server`.
fn setup_on(server: Server) -> Server {
    server
        .api(
            "AddLiveDomain",
            json!({"DomainName": PUSH, "DomainType": 0}),
        )
        .ok();
    server
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// Runs `calls` in order in one Python SDK process, with the root key or
/// `key`.
fn batch(server: &Server, key: Option<&(String, String)>, calls: &[(&str, Value)]) -> Vec<Outcome> {
    let calls: Vec<Value> = calls
        .iter()
        .map(|(action, params)| json!({"action": action, "params": params}))
        .collect();
    let mut spec = with(
        server.call("DescribeLiveDomains", json!({})),
        json!({"calls": calls}),
    );
    if let Some((id, secret)) = key {
        spec = with(spec, json!({"secret_id": id, "secret_key": secret}));
    }
    python(&spec)
}

/// One call with another account's key.
fn py_as(server: &Server, key: &(String, String), action: &str, params: Value) -> Outcome {
    batch(server, Some(key), &[(action, params)]).remove(0)
}

/// Parameters of a task on `stream` of the push domain from `start` (None:
/// omitted) to `end`.
fn task(stream: &str, start: Option<i64>, end: i64) -> Value {
    let mut p =
        json!({"DomainName": PUSH, "AppName": "live", "StreamName": stream, "EndTime": end});
    if let Some(start) = start {
        p["StartTime"] = json!(start);
    }
    p
}

fn task_id(outcome: &Outcome) -> String {
    outcome.ok()["TaskId"]
        .as_str()
        .unwrap_or_else(|| panic!("no string TaskId in {}", outcome.0))
        .to_owned()
}

/// The tasks `action` (DescribeRecordTask or DescribeScreenshotTask) lists
/// in the day around now, with `extra` filters.
fn describe(server: &Server, action: &str, extra: Value) -> Value {
    let t = now();
    server
        .api(
            action,
            with(json!({"StartTime": t - DAY, "EndTime": t + 2 * DAY}), extra),
        )
        .ok()
        .clone()
}

fn ids_in(list: &Value) -> Vec<String> {
    list["TaskList"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| t["TaskId"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// A Beijing time as the legacy API takes it, URL-encoded as documented
/// (`2017-01-01+10%3a10%3a01`).
fn legacy_time(unix: i64) -> String {
    livestack_api::time::beijing(unix)
        .replace(' ', "+")
        .replace(':', "%3a")
}

fn legacy_id(outcome: &Outcome) -> i64 {
    outcome.ok()["TaskId"]
        .as_i64()
        .unwrap_or_else(|| panic!("no integer TaskId in {}", outcome.0))
}

#[test]
fn record_tasks_are_created_described_stopped_and_deleted() {
    let server = setup();
    let template = server
        .api(
            "CreateLiveRecordTemplate",
            json!({"TemplateName": "rec", "FlvParam": {"Enable": 1}}),
        )
        .ok()["TemplateId"]
        .as_i64()
        .expect("template id");
    let t = now();
    let with_template = server.api(
        "CreateRecordTask",
        with(
            task("cam", Some(t + HOUR), t + 2 * HOUR),
            json!({"TemplateId": template, "Extension": "note"}),
        ),
    );
    let a = task_id(&with_template);
    assert_eq!(a.len(), 22);
    assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()), "{a}");
    // No StartTime: it starts now. A wrong TemplateId records the default.
    let b = task_id(&server.api(
        "CreateRecordTask",
        with(task("cam", None, t + HOUR), json!({"TemplateId": 999_999})),
    ));
    let c = task_id(&server.api("CreateRecordTask", task("other", None, t + HOUR)));
    assert!(a != b && b != c);

    let all = describe(&server, "DescribeRecordTask", json!({}));
    assert_eq!(ids_in(&all), vec![a.clone(), b.clone(), c.clone()]);
    assert_eq!(all["ScrollToken"], "");
    assert_eq!(
        all["TaskList"][0],
        json!({
            "TaskId": a, "DomainName": PUSH, "AppName": "live", "StreamName": "cam",
            "StartTime": t + HOUR, "EndTime": t + 2 * HOUR, "TemplateId": template, "Stopped": 0,
        })
    );
    let started = all["TaskList"][1]["StartTime"].as_i64().expect("start");
    assert!((t..=t + 5).contains(&started), "{started} is not now ({t})");
    assert_eq!(all["TaskList"][1]["TemplateId"], 0, "no valid template");
    assert_eq!(
        ids_in(&describe(
            &server,
            "DescribeRecordTask",
            json!({"StreamName": "other"})
        )),
        vec![c.clone()]
    );
    assert_eq!(
        ids_in(&describe(
            &server,
            "DescribeRecordTask",
            json!({"DomainName": PUSH, "AppName": "live", "StreamName": "cam"})
        )),
        vec![a.clone(), b.clone()]
    );
    assert!(ids_in(&describe(
        &server,
        "DescribeRecordTask",
        json!({"AppName": "game"})
    ))
    .is_empty());
    assert!(
        ids_in(&describe(&server, "DescribeScreenshotTask", json!({}))).is_empty(),
        "recording tasks are not screenshot tasks"
    );
    // A task is listed when it starts and ends inside the window.
    let narrow = server
        .api(
            "DescribeRecordTask",
            json!({"StartTime": t + HOUR, "EndTime": t + 2 * HOUR}),
        )
        .ok()
        .clone();
    assert_eq!(ids_in(&narrow), vec![a.clone()]);

    // Stopping records when; stopping again keeps the first time.
    server.api("StopRecordTask", json!({"TaskId": b})).ok();
    server.api("StopRecordTask", json!({"TaskId": b})).ok();
    let stopped = describe(&server, "DescribeRecordTask", json!({"StreamName": "cam"}));
    let at = stopped["TaskList"][1]["Stopped"].as_i64().expect("stopped");
    assert!((t..=now()).contains(&at), "Stopped {at}");
    assert_eq!(stopped["TaskList"][0]["Stopped"], 0);

    server.api("DeleteRecordTask", json!({"TaskId": a})).ok();
    assert_eq!(
        ids_in(&describe(&server, "DescribeRecordTask", json!({}))),
        vec![b.clone(), c.clone()]
    );
    for action in ["DeleteRecordTask", "StopRecordTask"] {
        server
            .api(action, json!({"TaskId": a}))
            .expect_code("ResourceNotFound.TaskId");
    }
}

#[test]
fn screenshot_tasks_are_created_described_stopped_and_deleted() {
    let server = setup();
    let template = server
        .api(
            "CreateLiveSnapshotTemplate",
            json!({"TemplateName": "shot", "CosAppId": 1250000001, "CosBucket": "shots", "CosRegion": "ap-guangzhou"}),
        )
        .ok()["TemplateId"]
        .as_i64()
        .expect("template id");
    let t = now();
    let a = task_id(&server.api(
        "CreateScreenshotTask",
        with(task("cam", None, t + HOUR), json!({"TemplateId": template})),
    ));
    // A wrong template id is taken (the task then takes no snapshots).
    let b = task_id(&server.api(
        "CreateScreenshotTask",
        with(
            task("cam", Some(t + 60), t + HOUR),
            json!({"TemplateId": 424_242}),
        ),
    ));
    let all = describe(&server, "DescribeScreenshotTask", json!({}));
    assert_eq!(ids_in(&all), vec![a.clone(), b.clone()]);
    assert_eq!(all["TaskList"][0]["TemplateId"], template);
    assert_eq!(all["TaskList"][1]["TemplateId"], 0);
    assert_eq!(all["TaskList"][1]["StartTime"], t + 60);
    assert!(ids_in(&describe(&server, "DescribeRecordTask", json!({}))).is_empty());

    // A screenshot TaskId is not a recording TaskId.
    server
        .api("StopRecordTask", json!({"TaskId": a}))
        .expect_code("ResourceNotFound.TaskId");
    server
        .api("DeleteRecordTask", json!({"TaskId": a}))
        .expect_code("ResourceNotFound.TaskId");
    server.api("StopScreenshotTask", json!({"TaskId": a})).ok();
    let listed = describe(&server, "DescribeScreenshotTask", json!({}));
    assert!(listed["TaskList"][0]["Stopped"].as_i64().unwrap_or(0) >= t);
    server
        .api("DeleteScreenshotTask", json!({"TaskId": b}))
        .ok();
    assert_eq!(
        ids_in(&describe(&server, "DescribeScreenshotTask", json!({}))),
        vec![a.clone()]
    );
    server
        .api("DeleteScreenshotTask", json!({"TaskId": b}))
        .expect_code("ResourceNotFound.TaskId");
    server
        .api("StopScreenshotTask", json!({"TaskId": b}))
        .expect_code("ResourceNotFound.TaskId");
}

#[test]
fn every_documented_task_window_rule_is_enforced() {
    let server = setup();
    let t = now();
    let bad: Vec<(&str, Value)> = vec![
        ("an end in the past", task("s", None, t - 10)),
        ("an end before the start", task("s", Some(t + 600), t + 300)),
        (
            "an end 7 days away",
            task("s", Some(t + 7 * DAY - 600), t + 7 * DAY + 60),
        ),
        (
            "a start more than 6 days away",
            task("s", Some(t + 6 * DAY + 600), t + 6 * DAY + 1200),
        ),
        (
            "more than 24 hours",
            task("s", Some(t + 60), t + 60 + DAY + 1),
        ),
        (
            "more than 24 hours from now",
            task("s", None, t + DAY + 600),
        ),
        (
            "a StreamType of 2",
            with(task("s", None, t + 600), json!({"StreamType": 2})),
        ),
        (
            "another domain",
            with(
                task("s", None, t + 600),
                json!({"DomainName": "nope.example.com"}),
            ),
        ),
        ("an empty StreamName", task("", None, t + 600)),
    ];
    for action in ["CreateRecordTask", "CreateScreenshotTask"] {
        let calls: Vec<(&str, Value)> = bad
            .iter()
            .map(|(_, p)| (action, with(p.clone(), json!({"TemplateId": 0}))))
            .collect();
        for ((what, _), outcome) in bad.iter().zip(batch(&server, None, &calls)) {
            assert_eq!(
                outcome.code(),
                Some("InvalidParameter"),
                "{action} with {what}: {}",
                outcome.0
            );
        }
    }
    // The edges are allowed: exactly 24 hours, a start in the past.
    server
        .api("CreateRecordTask", task("edge", Some(t + 60), t + 60 + DAY))
        .ok();
    server
        .api("CreateRecordTask", task("past", Some(t - 600), t + 600))
        .ok();

    for action in ["DescribeRecordTask", "DescribeScreenshotTask"] {
        for (what, start, end) in [
            ("an end before the start", t, t - 60),
            ("a window longer than a week", t - 7 * DAY - 60, t),
            ("a start more than 90 days ago", t - 91 * DAY, t - 90 * DAY),
        ] {
            let outcome = server.api(action, json!({"StartTime": start, "EndTime": end}));
            assert_eq!(
                outcome.code(),
                Some("InvalidParameter"),
                "{action} with {what}: {}",
                outcome.0
            );
        }
        server
            .api(
                action,
                json!({"StartTime": t, "EndTime": t + 60, "ScrollToken": "not-a-token"}),
            )
            .expect_code("InvalidParameter");
        server
            .api(action, json!({"StartTime": t - 7 * DAY, "EndTime": t}))
            .ok();
    }
}

#[test]
fn at_most_three_tasks_of_a_stream_overlap() {
    let server = setup();
    let t = now();
    let window = |start: i64, end: i64| task("busy", Some(t + start), t + end);
    let ids: Vec<String> = batch(
        &server,
        None,
        &[
            ("CreateRecordTask", window(600, 1800)),
            ("CreateRecordTask", window(900, 2400)),
            ("CreateRecordTask", window(1200, 3000)),
        ],
    )
    .iter()
    .map(task_id)
    .collect();
    server
        .api("CreateRecordTask", window(1500, 1600))
        .expect_code("LimitExceeded.MaximumRunningTask");
    // Two at a time before 1200 and after 1800: a fourth fits there.
    server.api("CreateRecordTask", window(0, 1200)).ok();
    server.api("CreateRecordTask", window(1800, 3600)).ok();
    // Another stream, and the other family, have their own three.
    server
        .api("CreateRecordTask", task("quiet", Some(t + 1500), t + 1600))
        .ok();
    for _ in 0..3 {
        server
            .api(
                "CreateScreenshotTask",
                with(window(1500, 1600), json!({"TemplateId": 0})),
            )
            .ok();
    }
    server
        .api(
            "CreateScreenshotTask",
            with(window(1500, 1600), json!({"TemplateId": 0})),
        )
        .expect_code("LimitExceeded.MaximumRunningTask");
    // A stopped or deleted task no longer counts.
    server.api("StopRecordTask", json!({"TaskId": ids[0]})).ok();
    server.api("CreateRecordTask", window(1500, 1600)).ok();
    server
        .api("CreateRecordTask", window(1500, 1600))
        .expect_code("LimitExceeded.MaximumRunningTask");
    server
        .api("DeleteRecordTask", json!({"TaskId": ids[1]}))
        .ok();
    server.api("CreateRecordTask", window(1500, 1600)).ok();
}

#[test]
fn unknown_task_ids_and_other_accounts_task_ids_are_not_there() {
    let server = setup();
    let t = now();
    let record = task_id(&server.api("CreateRecordTask", task("s", None, t + HOUR)));
    let shot = task_id(&server.api(
        "CreateScreenshotTask",
        with(task("s", None, t + HOUR), json!({"TemplateId": 0})),
    ));
    let legacy = legacy_id(&server.api(
        "CreateLiveRecord",
        json!({"DomainName": PUSH, "StreamName": "s", "StartTime": legacy_time(t + HOUR), "EndTime": legacy_time(t + 2 * HOUR)}),
    ));
    for unknown in [
        "",
        "1",
        "UpTbk5RSVhRQFkAAfHwQCCjcRD0lRFcZ0xTSlNTQltlRVRLU1JAWW9EUb",
        "0000000000100000000001",
    ] {
        for action in [
            "StopRecordTask",
            "DeleteRecordTask",
            "StopScreenshotTask",
            "DeleteScreenshotTask",
        ] {
            server
                .api(action, json!({"TaskId": unknown}))
                .expect_code("ResourceNotFound.TaskId");
        }
    }
    // A TaskId with one character changed names no task.
    let mut forged = record.clone().into_bytes();
    forged[21] = if forged[21] == b'a' { b'b' } else { b'a' };
    server
        .api(
            "StopRecordTask",
            json!({"TaskId": String::from_utf8(forged).expect("ascii")}),
        )
        .expect_code("ResourceNotFound.TaskId");
    for action in ["StopLiveRecord", "DeleteLiveRecord"] {
        server
            .api(action, json!({"StreamName": "s", "TaskId": 987_654_321}))
            .expect_code("ResourceNotFound.TaskId");
    }

    let other = server.account_key("other");
    py_as(
        &server,
        &other,
        "AddLiveDomain",
        json!({"DomainName": "other.example.com", "DomainType": 0}),
    )
    .ok();
    for (action, id) in [
        ("StopRecordTask", &record),
        ("DeleteRecordTask", &record),
        ("StopScreenshotTask", &shot),
        ("DeleteScreenshotTask", &shot),
    ] {
        py_as(&server, &other, action, json!({"TaskId": id}))
            .expect_code("ResourceNotFound.TaskId");
    }
    for action in ["StopLiveRecord", "DeleteLiveRecord"] {
        py_as(
            &server,
            &other,
            action,
            json!({"StreamName": "s", "TaskId": legacy}),
        )
        .expect_code("ResourceNotFound.TaskId");
    }
    for action in ["DescribeRecordTask", "DescribeScreenshotTask"] {
        let listed = py_as(
            &server,
            &other,
            action,
            json!({"StartTime": t - DAY, "EndTime": t + DAY}),
        );
        assert!(ids_in(listed.ok()).is_empty(), "{action}: {}", listed.0);
    }
    // The owner's tasks are untouched.
    assert_eq!(
        ids_in(&describe(&server, "DescribeRecordTask", json!({}))),
        vec![record.clone()]
    );
    server.api("StopRecordTask", json!({"TaskId": record})).ok();
    server
        .api(
            "StopLiveRecord",
            json!({"StreamName": "s", "TaskId": legacy}),
        )
        .ok();
}

#[test]
fn describe_pages_with_a_scroll_token() {
    let server = setup();
    let t = now();
    let calls: Vec<(&str, Value)> = (0..101)
        .map(|i| ("CreateRecordTask", task(&format!("s{i}"), None, t + HOUR)))
        .collect();
    let created: Vec<String> = batch(&server, None, &calls).iter().map(task_id).collect();
    let first = describe(&server, "DescribeRecordTask", json!({}));
    assert_eq!(ids_in(&first), created[..100].to_vec());
    let token = first["ScrollToken"].as_str().expect("token").to_owned();
    assert!(!token.is_empty());
    let second = describe(&server, "DescribeRecordTask", json!({"ScrollToken": token}));
    assert_eq!(ids_in(&second), created[100..].to_vec());
    assert_eq!(second["ScrollToken"], "");
}

#[test]
fn a_dry_run_checks_everything_and_creates_nothing() {
    let server = setup();
    let t = now();
    let dry = |action: &str, params: Value| {
        python1(&with(
            server.call(action, with(params, json!({"DryRun": true}))),
            json!({"raw": true}),
        ))
    };
    dry("CreateRecordTask", task("s", None, t + HOUR)).expect_code("DryRunOperation");
    dry("CreateRecordTask", task("s", None, t - 1)).expect_code("InvalidParameter");
    assert!(ids_in(&describe(&server, "DescribeRecordTask", json!({}))).is_empty());
    let id = task_id(&server.api("CreateRecordTask", task("s", None, t + HOUR)));
    dry("StopRecordTask", json!({"TaskId": id})).expect_code("DryRunOperation");
    dry("DeleteRecordTask", json!({"TaskId": id})).expect_code("DryRunOperation");
    let listed = describe(&server, "DescribeRecordTask", json!({}));
    assert_eq!(ids_in(&listed), vec![id]);
    assert_eq!(listed["TaskList"][0]["Stopped"], 0);
}

#[test]
fn tasks_survive_a_restart() {
    let server = setup_on(Server::start_with(ServerOptions {
        args: vec!["--api-rate-limit".into(), "100000".into()],
        binary: true,
        ..ServerOptions::default()
    }));
    let t = now();
    let record = task_id(&server.api("CreateRecordTask", task("s", Some(t + 60), t + HOUR)));
    let shot = task_id(&server.api(
        "CreateScreenshotTask",
        with(task("s", None, t + HOUR), json!({"TemplateId": 0})),
    ));
    let legacy = legacy_id(&server.api(
        "CreateLiveRecord",
        json!({"DomainName": PUSH, "StreamName": "s", "StartTime": legacy_time(t + HOUR), "EndTime": legacy_time(t + 2 * HOUR)}),
    ));
    let before = describe(&server, "DescribeRecordTask", json!({}));
    let server = server.crash_and_restart();
    assert_eq!(describe(&server, "DescribeRecordTask", json!({})), before);
    assert_eq!(
        ids_in(&describe(&server, "DescribeScreenshotTask", json!({}))),
        vec![shot.clone()]
    );
    server.api("StopRecordTask", json!({"TaskId": record})).ok();
    server
        .api("DeleteScreenshotTask", json!({"TaskId": shot}))
        .ok();
    server
        .api(
            "DeleteLiveRecord",
            json!({"StreamName": "s", "TaskId": legacy}),
        )
        .ok();
    let server = server.restart();
    let after = describe(&server, "DescribeRecordTask", json!({}));
    assert!(after["TaskList"][0]["Stopped"].as_i64().unwrap_or(0) > 0);
    assert!(ids_in(&describe(&server, "DescribeScreenshotTask", json!({}))).is_empty());
    server
        .api(
            "StopLiveRecord",
            json!({"StreamName": "s", "TaskId": legacy}),
        )
        .expect_code("ResourceNotFound.TaskId");
}

#[test]
fn legacy_scheduled_recording_tasks_follow_the_documented_rules() {
    let server = setup();
    let t = now();
    let scheduled = |stream: &str, start: i64, end: i64| json!({"DomainName": PUSH, "AppName": "live", "StreamName": stream, "StartTime": legacy_time(start), "EndTime": legacy_time(end)});
    let future = legacy_id(&server.api(
        "CreateLiveRecord",
        with(scheduled("cam", t + HOUR, t + 2 * HOUR), json!({"FileFormat": "MP4", "RecordType": "audio", "StreamParam": "record_interval=3600&storage_time=86400"})),
    ));
    // Plain (not URL-encoded) Beijing times are taken too; AppName and
    // DomainName default to `live` and the only push domain.
    let running = legacy_id(&server.api(
        "CreateLiveRecord",
        json!({"StreamName": "cam", "StartTime": livestack_api::time::beijing(t - 60), "EndTime": livestack_api::time::beijing(t + HOUR)}),
    ));
    assert!(future > 0 && running > future);

    let bad = [
        (
            "no StartTime",
            json!({"StreamName": "cam", "EndTime": legacy_time(t + HOUR)}),
            "MissingParameter",
        ),
        (
            "no EndTime",
            json!({"StreamName": "cam", "StartTime": legacy_time(t + HOUR)}),
            "MissingParameter",
        ),
        (
            "a malformed time",
            json!({"StreamName": "cam", "StartTime": "tomorrow", "EndTime": legacy_time(t + HOUR)}),
            "InvalidParameterValue",
        ),
        (
            "an end before the start",
            scheduled("cam", t + 2 * HOUR, t + HOUR),
            "InvalidParameterValue",
        ),
        (
            "an end in the past",
            scheduled("cam", t - 2 * HOUR, t - HOUR),
            "InvalidParameterValue",
        ),
        (
            "more than a day",
            scheduled("cam", t + 60, t + 120 + DAY),
            "InvalidParameterValue",
        ),
        (
            "FileFormat avi",
            with(
                scheduled("cam", t + 60, t + HOUR),
                json!({"FileFormat": "avi"}),
            ),
            "InvalidParameterValue",
        ),
        (
            "RecordType both",
            with(
                scheduled("cam", t + 60, t + HOUR),
                json!({"RecordType": "both"}),
            ),
            "InvalidParameterValue",
        ),
        (
            "Highlight 2",
            with(scheduled("cam", t + 60, t + HOUR), json!({"Highlight": 2})),
            "InvalidParameterValue",
        ),
        (
            "a bad StreamParam",
            with(
                scheduled("cam", t + 60, t + HOUR),
                json!({"StreamParam": "record_interval=10"}),
            ),
            "InvalidParameterValue",
        ),
        (
            "another domain",
            with(
                scheduled("cam", t + 60, t + HOUR),
                json!({"DomainName": "nope.example.com"}),
            ),
            "InvalidParameterValue",
        ),
    ];
    let calls: Vec<(&str, Value)> = bad
        .iter()
        .map(|(_, p, _)| ("CreateLiveRecord", p.clone()))
        .collect();
    for ((what, _, code), outcome) in bad.iter().zip(batch(&server, None, &calls)) {
        assert_eq!(outcome.code(), Some(*code), "{what}: {}", outcome.0);
    }

    // StreamName must be the task's.
    for action in ["StopLiveRecord", "DeleteLiveRecord"] {
        server
            .api(action, json!({"StreamName": "other", "TaskId": future}))
            .expect_code("ResourceNotFound.ChannelNotExist");
    }
    // A running task cannot be deleted, only stopped; then it can.
    server
        .api(
            "DeleteLiveRecord",
            json!({"StreamName": "cam", "TaskId": running}),
        )
        .expect_code("FailedOperation.AlterTaskState");
    server
        .api(
            "StopLiveRecord",
            json!({"StreamName": "cam", "TaskId": running}),
        )
        .ok();
    server
        .api(
            "DeleteLiveRecord",
            json!({"StreamName": "cam", "TaskId": running}),
        )
        .ok();
    // A task that has not started can be deleted at once.
    server
        .api(
            "DeleteLiveRecord",
            json!({"StreamName": "cam", "TaskId": future}),
        )
        .ok();
    for action in ["StopLiveRecord", "DeleteLiveRecord"] {
        server
            .api(action, json!({"StreamName": "cam", "TaskId": future}))
            .expect_code("ResourceNotFound.TaskId");
    }
    // Legacy tasks are not listed with the current ones.
    assert!(ids_in(&describe(&server, "DescribeRecordTask", json!({}))).is_empty());

    // With two push domains, DomainName must be given.
    server
        .api(
            "AddLiveDomain",
            json!({"DomainName": "push2.example.com", "DomainType": 0}),
        )
        .ok();
    server
        .api(
            "CreateLiveRecord",
            json!({"StreamName": "cam", "StartTime": legacy_time(t + 60), "EndTime": legacy_time(t + HOUR)}),
        )
        .expect_code("MissingParameter");
}

#[test]
fn legacy_realtime_recording_needs_the_stream_to_be_live() {
    let server = setup();
    server
        .api(
            "ModifyLivePushAuthKey",
            json!({"DomainName": PUSH, "Enable": 0}),
        )
        .ok();
    let highlight =
        json!({"DomainName": PUSH, "AppName": "live", "StreamName": "star", "Highlight": 1});
    server
        .api("CreateLiveRecord", highlight.clone())
        .expect_code("ResourceUnavailable.StreamNotExist");

    let _publisher = Publisher::start(
        &format!("rtmp://{}/live/star?domain={PUSH}", server.rtmp),
        60,
    );
    let live = wait_until(Duration::from_secs(15), || {
        server
            .api(
                "DescribeLiveStreamState",
                json!({"DomainName": PUSH, "AppName": "live", "StreamName": "star"}),
            )
            .ok()["StreamState"]
            == "active"
    });
    assert!(live, "the push never went live");
    // The start is ignored and a far end means 30 minutes.
    let t = now();
    let id = legacy_id(&server.api(
        "CreateLiveRecord",
        with(
            highlight.clone(),
            json!({"StartTime": legacy_time(t - DAY), "EndTime": legacy_time(t + 5 * HOUR)}),
        ),
    ));
    server
        .api(
            "CreateLiveRecord",
            with(highlight.clone(), json!({"StreamName": "nobody"})),
        )
        .expect_code("ResourceUnavailable.StreamNotExist");
    server
        .api(
            "DeleteLiveRecord",
            json!({"StreamName": "star", "TaskId": id}),
        )
        .expect_code("FailedOperation.AlterTaskState");
    server
        .api(
            "StopLiveRecord",
            json!({"StreamName": "star", "TaskId": id}),
        )
        .ok();
    server
        .api(
            "DeleteLiveRecord",
            json!({"StreamName": "star", "TaskId": id}),
        )
        .ok();
}

#[test]
fn legacy_tasks_are_limited_per_day_and_at_once_as_configured() {
    // The documented 4000 a day and 400 at once (unit-tested as the
    // defaults) are operator settings, made small here.
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("livestack.toml");
    std::fs::write(
        &config,
        "[api]\nlegacy_record_tasks_per_day = 6\nlegacy_record_tasks_running = 3\n",
    )
    .expect("config");
    let server = Server::start_with_args(&["--config", config.to_str().expect("path")]);
    server
        .api(
            "AddLiveDomain",
            json!({"DomainName": PUSH, "DomainType": 0}),
        )
        .ok();
    // The day is a Beijing day: the server's clock jumps to a minute past
    // the next Beijing midnight, clear of the boundary.
    let to_midnight = DAY - (server.clock.unix() + 8 * HOUR).rem_euclid(DAY);
    server
        .clock
        .advance(Duration::from_secs((to_midnight + 60) as u64));
    let t = server.clock.unix();
    // Tasks in slot k run from k minutes after the next hour for 50 s, so
    // slots never overlap.
    let in_slot = |stream: &str, slot: i64| {
        let start = t + HOUR + slot * 60;
        json!({"DomainName": PUSH, "StreamName": stream, "StartTime": legacy_time(start), "EndTime": legacy_time(start + 50)})
    };
    let first: Vec<i64> = ["a", "b", "c"]
        .iter()
        .map(|s| legacy_id(&server.api("CreateLiveRecord", in_slot(s, 0))))
        .collect();
    server
        .api("CreateLiveRecord", in_slot("d", 0))
        .expect_code("LimitExceeded.MaximumRunningTask");
    // A stopped task no longer runs.
    server
        .api(
            "StopLiveRecord",
            json!({"StreamName": "a", "TaskId": first[0]}),
        )
        .ok();
    server.api("CreateLiveRecord", in_slot("d", 0)).ok();
    server.api("CreateLiveRecord", in_slot("e", 1)).ok();
    server.api("CreateLiveRecord", in_slot("f", 1)).ok();
    // Six created today, the stopped one included.
    server
        .api("CreateLiveRecord", in_slot("g", 2))
        .expect_code("LimitExceeded.MaximumTask");
    // Deleted tasks do not count against the day.
    server
        .api(
            "DeleteLiveRecord",
            json!({"StreamName": "a", "TaskId": first[0]}),
        )
        .ok();
    server.api("CreateLiveRecord", in_slot("g", 2)).ok();
    server
        .api("CreateLiveRecord", in_slot("h", 2))
        .expect_code("LimitExceeded.MaximumTask");
    // A new Beijing day starts a new count.
    server.clock.advance(Duration::from_secs(DAY as u64));
    let t = server.clock.unix();
    let start = t + HOUR;
    server
        .api(
            "CreateLiveRecord",
            json!({"DomainName": PUSH, "StreamName": "h", "StartTime": legacy_time(start), "EndTime": legacy_time(start + 50)}),
        )
        .ok();
}

#[test]
fn tccli_creates_and_describes_a_recording_task() {
    let server = setup();
    let t = now();
    let (start, end) = ((t + 60).to_string(), (t + HOUR).to_string());
    let out = tccli(
        &server,
        &server.secret_id,
        &server.secret_key,
        &[
            "CreateRecordTask",
            "--DomainName",
            PUSH,
            "--AppName",
            "live",
            "--StreamName",
            "cli",
            "--StartTime",
            &start,
            "--EndTime",
            &end,
        ],
    );
    assert_eq!(out.code, 0, "{out:?}");
    let created: Value = serde_json::from_str(&out.stdout).expect("JSON");
    let id = created["TaskId"].as_str().expect("TaskId").to_owned();
    let (from, to) = ((t - 60).to_string(), (t + DAY).to_string());
    let out = tccli(
        &server,
        &server.secret_id,
        &server.secret_key,
        &["DescribeRecordTask", "--StartTime", &from, "--EndTime", &to],
    );
    assert_eq!(out.code, 0, "{out:?}");
    let listed: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(listed["TaskList"][0]["TaskId"], id);
    assert_eq!(listed["TaskList"][0]["StreamName"], "cli");
}
