//! Time-shift end to end: a template and a `*` rule made through the API,
//! a generated stream pushed with ffmpeg, the kept window listed by
//! `DescribeTimeShiftStreamList` and `DescribeTimeShiftRecordDetail`, and
//! played back over HLS with `txTimeshift=on` (a past window, checked
//! with ffprobe, and the delayed live edge) under play authentication.

use std::process::Command;
use std::time::Duration;

use livestack_core::urlsign;
use serde_json::{json, Value};

use crate::harness::*;
use crate::llhls::get;
use crate::media::{ffmpeg_bin, live_push, now, setup};

/// A time-shift template keeping 1 day in segments of `item` seconds,
/// bound to every stream of the push domain.
fn timeshift_rule(server: &Server, item: u64) -> i64 {
    let t = server.api(
        "CreateLiveTimeShiftTemplate",
        json!({"TemplateName": "shift", "Duration": 86400, "ItemDuration": item}),
    );
    let id = t.ok()["TemplateId"].as_i64().expect("template id");
    server
        .api(
            "CreateLiveTimeShiftRule",
            json!({"DomainName": "push.example.com", "AppName": "*", "StreamName": "*", "TemplateId": id}),
        )
        .ok();
    id
}

/// The duration ffprobe reads from an HLS playlist, in seconds.
fn probed_duration(url: &str) -> f64 {
    let out = Command::new(ffmpeg_bin("ffprobe"))
        .args(["-v", "error", "-show_entries", "format=duration"])
        .args(["-of", "csv=p=0", url])
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0.0)
}

/// The segment lengths a playlist lists (`#EXTINF`).
fn extinf(playlist: &str) -> Vec<f64> {
    playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .filter_map(|l| l.trim_end_matches(',').parse().ok())
        .collect()
}

/// Unix milliseconds of a playlist's first `#EXT-X-PROGRAM-DATE-TIME`
/// (`YYYY-MM-DDTHH:MM:SS.mmmZ`).
fn first_program_date_time(playlist: &str) -> i64 {
    let t = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:"))
        .unwrap_or_default();
    let n = |r: std::ops::Range<usize>| t.get(r).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0);
    livestack_core::naming::CivilTime {
        year: i64::from(n(0..4)),
        month: n(5..7),
        day: n(8..10),
        hour: n(11..13),
        minute: n(14..16),
        second: n(17..19),
        millisecond: n(20..23),
    }
    .to_unix_ms(0)
    .unwrap_or(0)
}

#[test]
fn time_shift_templates_and_rules_take_the_documented_values_and_star_for_every_stream() {
    let server = setup();
    server
        .api(
            "CreateLiveTimeShiftTemplate",
            json!({"TemplateName": "shift", "Duration": 3600}),
        )
        .expect_code("InvalidParameterValue");
    server
        .api(
            "CreateLiveTimeShiftTemplate",
            json!({"TemplateName": "shift", "Duration": 86400, "ItemDuration": 11}),
        )
        .expect_code("InvalidParameterValue");
    server
        .api(
            "CreateLiveTimeShiftTemplate",
            json!({"TemplateName": "bad name!", "Duration": 86400}),
        )
        .expect_code("InternalError.InvalidInput");
    let id = timeshift_rule(&server, 5);
    let templates = server.api("DescribeLiveTimeShiftTemplates", json!({}));
    let t = &templates.ok()["Templates"][0];
    assert_eq!(t["TemplateId"], id);
    assert_eq!(t["Duration"], 86400);
    assert_eq!(t["ItemDuration"], 5);
    assert_eq!(t["Area"], "Mainland");
    assert_eq!(t["RemoveWatermark"], false);
    server
        .api(
            "ModifyLiveTimeShiftTemplate",
            json!({"TemplateId": id, "Duration": 604800, "Area": "Overseas"}),
        )
        .ok();
    let templates = server.api("DescribeLiveTimeShiftTemplates", json!({}));
    let t = &templates.ok()["Templates"][0];
    assert_eq!(
        (t["Duration"].clone(), t["Area"].clone()),
        (json!(604800), json!("Overseas"))
    );
    assert_eq!(t["ItemDuration"], 5);
    let rules = server.api("DescribeLiveTimeShiftRules", json!({}));
    let r = &rules.ok()["Rules"][0];
    assert_eq!(
        (
            r["DomainName"].clone(),
            r["AppName"].clone(),
            r["StreamName"].clone()
        ),
        (json!("push.example.com"), json!("*"), json!("*"))
    );
    server
        .api(
            "CreateLiveTimeShiftRule",
            json!({"DomainName": "push.example.com", "AppName": "*", "StreamName": "*", "TemplateId": id}),
        )
        .expect_code("InternalError.RuleAlreadyExist");
    server
        .api(
            "CreateLiveTimeShiftRule",
            json!({"DomainName": "push.example.com", "AppName": "live", "StreamName": "*", "TemplateId": 424242}),
        )
        .expect_code("InternalError.ConfNotFound");
    server
        .api(
            "CreateLiveTimeShiftRule",
            json!({"DomainName": "play.example.com", "AppName": "*", "StreamName": "*", "TemplateId": id}),
        )
        .expect_code("InternalError.PushDomainNoRecord");
    server
        .api("DeleteLiveTimeShiftTemplate", json!({"TemplateId": id}))
        .expect_code("InternalError.ConfInUsed");
    server
        .api(
            "DeleteLiveTimeShiftRule",
            json!({"DomainName": "push.example.com", "AppName": "", "StreamName": "cam"}),
        )
        .expect_code("InternalError.RuleNotFound");
    server
        .api(
            "DeleteLiveTimeShiftRule",
            json!({"DomainName": "push.example.com", "AppName": "*", "StreamName": "*"}),
        )
        .ok();
    server
        .api("DeleteLiveTimeShiftTemplate", json!({"TemplateId": id}))
        .ok();
    let t = now();
    server
        .api(
            "DescribeTimeShiftStreamList",
            json!({"StartTime": t, "EndTime": t - 1}),
        )
        .expect_code("InvalidParameter");
    server
        .api(
            "DescribeTimeShiftStreamList",
            json!({"StartTime": t - 2 * 86400, "EndTime": t}),
        )
        .expect_code("InvalidParameter");
    server
        .api(
            "DescribeTimeShiftStreamList",
            json!({"StartTime": t - 60, "EndTime": t, "PageSize": -1}),
        )
        .expect_code("InvalidParameter");
    let empty = server.api(
        "DescribeTimeShiftStreamList",
        json!({"StartTime": t - 60, "EndTime": t}),
    );
    assert_eq!(empty.ok()["TotalSize"], 0);
}

#[test]
fn a_kept_push_plays_back_by_window_and_by_delay_under_play_authentication() {
    let server = setup();
    timeshift_rule(&server, 3);
    server
        .api(
            "ModifyLivePlayAuthKey",
            json!({"DomainName": "play.example.com", "Enable": 1, "AuthKey": "playkey"}),
        )
        .ok();
    let started = now();
    let mut publisher = live_push(&server, "past", 16);
    let signed = urlsign::query("playkey", "past", now() + 600);
    let url = |q: &str| {
        format!(
            "http://{}/live/past.m3u8?domain=play.example.com&{signed}&txTimeshift=on&{q}",
            server.http
        )
    };

    // While it is live: the live edge 4 s behind, as a sliding playlist.
    let mut delayed = String::new();
    assert!(
        wait_until(Duration::from_secs(20), || {
            let (status, body) = get(&url("tsDelay=4"));
            delayed = String::from_utf8_lossy(&body).into_owned();
            status == 200
        }),
        "no delayed playlist: {delayed}\n{}",
        server.log()
    );
    assert!(!extinf(&delayed).is_empty(), "{delayed}");
    assert!(!delayed.contains("#EXT-X-ENDLIST"), "{delayed}");
    let unsigned = format!(
        "http://{}/live/past.m3u8?domain=play.example.com&txTimeshift=on&tsDelay=4",
        server.http
    );
    assert_eq!(
        get(&unsigned).0,
        403,
        "time-shift skipped play authentication"
    );
    assert!(
        publisher
            .wait(Duration::from_secs(40))
            .is_some_and(|s| s.success()),
        "push failed"
    );

    // What was kept: one stream, one session, about the push's span.
    let list = server.api(
        "DescribeTimeShiftStreamList",
        json!({"StartTime": started - 60, "EndTime": now() + 60, "Domain": "push.example.com"}),
    );
    let list = list.ok();
    assert_eq!(list["TotalSize"], 1, "{list}");
    let s = &list["StreamList"][0];
    assert_eq!(
        (
            s["AppName"].clone(),
            s["StreamName"].clone(),
            s["StreamType"].clone()
        ),
        (json!("live"), json!("past"), json!(0))
    );
    assert_eq!(s["Duration"], 86400);
    let (first, last) = (
        s["StartTime"].as_i64().unwrap_or(0),
        s["EndTime"].as_i64().unwrap_or(0),
    );
    assert!(
        (started - 2..=started + 3).contains(&first),
        "kept from {first}, pushed from {started}"
    );
    assert!(last - first >= 12, "kept {first}..{last} of a 16 s push");
    let detail = server.api(
        "DescribeTimeShiftRecordDetail",
        json!({"Domain": "push.example.com", "AppName": "live", "StreamName": "past",
               "StartTime": started - 60, "EndTime": now() + 60}),
    );
    let records: Vec<Value> = detail.ok()["RecordList"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(!records[0]["Sid"].as_str().unwrap_or("").is_empty());
    assert_eq!(records[0]["StartTime"].as_i64(), Some(first));

    // A window must lie 30 s in the past: until then it is refused.
    let (from, to) = (first + 3, first + 9);
    let window = url(&format!("tsStart={from}&tsEnd={to}"));
    if now() < from + 30 {
        assert_eq!(get(&window).0, 400);
    }
    assert!(wait_until(Duration::from_secs(40), || now() >= from + 31));
    let (status, body) = get(&window);
    let playlist = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, 200, "{playlist}");
    assert!(playlist.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{playlist}");
    assert!(playlist.ends_with("#EXT-X-ENDLIST\n"), "{playlist}");
    // The segments that cover 3 s to 9 s after the start: about 3 s each.
    let listed: f64 = extinf(&playlist).iter().sum();
    assert!(
        (6.0..=12.5).contains(&listed),
        "{listed} s listed:\n{playlist}"
    );
    let played = probed_duration(&window);
    assert!(
        (played - listed).abs() < 1.0,
        "ffprobe read {played} s of {listed} s listed"
    );
    // It starts with the segment under tsStart.
    let start = first_program_date_time(&playlist);
    assert!(
        (from * 1000 - 4_000..=from * 1000).contains(&start),
        "the window from {from} starts at {start} ms:\n{playlist}"
    );
    // Nothing was kept in the hour before the push.
    let before = url(&format!(
        "tsStart={}&tsEnd={}",
        started - 3600,
        started - 3000
    ));
    assert_eq!(get(&before).0, 404);
}
