//! Processing templates and rules (transcode, watermark, record, snapshot,
//! callback) through the official Python SDK: round trips with the
//! documented defaults, every documented error code, tenancy, dry runs and
//! durability across a restart.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;

const PUSH: &str = "push.example.com";
const PLAY: &str = "play.example.com";

/// A server with a push and a play domain, and a rate limit high enough
/// for the quota tests.
fn server_with_domains() -> Server {
    let server = Server::start_with_args(&["--api-rate-limit", "100000"]);
    for (name, kind) in [(PUSH, 0), (PLAY, 1)] {
        server
            .api(
                "AddLiveDomain",
                json!({"DomainName": name, "DomainType": kind}),
            )
            .ok();
    }
    server
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

/// One call with `DryRun` (sent raw: the typed models do not carry it).
fn dry_run(server: &Server, action: &str, params: Value) -> Outcome {
    let params = with(params, json!({"DryRun": true}));
    python1(&with(server.call(action, params), json!({"raw": true})))
}

/// The `TemplateId` (or `WatermarkId`) a Create answered.
fn id_of(outcome: &Outcome, field: &str) -> i64 {
    outcome.ok()[field]
        .as_i64()
        .unwrap_or_else(|| panic!("no {field} in {}", outcome.0))
}

/// Asserts `fields` of `value` (a JSON object) are as listed.
#[track_caller]
fn check_fields(value: &Value, fields: &[(&str, Value)]) {
    for (name, want) in fields {
        assert_eq!(&value[name], want, "{name} in {value}");
    }
}

#[test]
fn transcode_templates_round_trip_with_the_documented_defaults() {
    let server = server_with_domains();
    let created = server.api(
        "CreateLiveTranscodeTemplate",
        json!({"TemplateName": "hd", "VideoBitrate": 1500}),
    );
    let id = id_of(&created, "TemplateId");
    let got = server.api("DescribeLiveTranscodeTemplate", json!({"TemplateId": id}));
    check_fields(
        &got.ok()["Template"],
        &[
            ("TemplateId", json!(id)),
            ("TemplateName", json!("hd")),
            ("Description", json!("")),
            ("VideoBitrate", json!(1500)),
            ("Vcodec", json!("h264")),
            ("Acodec", json!("aac")),
            ("AudioBitrate", json!(0)),
            ("Width", json!(0)),
            ("Height", json!(0)),
            ("Fps", json!(0)),
            ("Gop", json!(2)),
            ("Rotate", json!(0)),
            ("Profile", json!("baseline")),
            ("BitrateToOrig", json!(0)),
            ("HeightToOrig", json!(0)),
            ("FpsToOrig", json!(0)),
            ("NeedVideo", json!(1)),
            ("NeedAudio", json!(1)),
            ("AiTransCode", json!(0)),
            ("AdaptBitratePercent", json!(0.0)),
            ("ShortEdgeAsHeight", json!(0)),
            ("IsAdaptiveBitRate", json!(0)),
        ],
    );

    // Modify changes what it names and nothing else.
    server
        .api(
            "ModifyLiveTranscodeTemplate",
            json!({"TemplateId": id, "Width": 1280, "Height": 720, "Gop": 4, "Profile": "high", "Description": "720p"}),
        )
        .ok();
    let got = server.api("DescribeLiveTranscodeTemplate", json!({"TemplateId": id}));
    check_fields(
        &got.ok()["Template"],
        &[
            ("Width", json!(1280)),
            ("Height", json!(720)),
            ("Gop", json!(4)),
            ("Profile", json!("high")),
            ("Description", json!("720p")),
            ("VideoBitrate", json!(1500)),
            ("Vcodec", json!("h264")),
        ],
    );

    // An adaptive-bitrate template with two children, listed by type.
    let abr = server.api(
        "CreateLiveTranscodeTemplate",
        json!({
            "TemplateName": "abr", "VideoBitrate": 0, "IsAdaptiveBitRate": 1,
            "AdaptiveChildren": [
                {"TemplateName": "low", "VideoBitrate": 500, "Height": 360, "Gop": 2},
                {"TemplateName": "high", "VideoBitrate": 2500, "Height": 1080, "Gop": 2, "Vcodec": "h265", "HlsContainerFormat": "fmp4"},
            ],
        }),
    );
    let abr = id_of(&abr, "TemplateId");
    let plain = server.api("DescribeLiveTranscodeTemplates", json!({}));
    let names: Vec<&str> = plain.ok()["Templates"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|t| t["TemplateName"].as_str())
        .collect();
    assert_eq!(
        names,
        ["hd"],
        "TemplateType 0 (the default) lists plain templates"
    );
    let adaptive = server.api("DescribeLiveTranscodeTemplates", json!({"TemplateType": 1}));
    let t = &adaptive.ok()["Templates"][0];
    assert_eq!(t["TemplateId"], abr);
    let children = t["AdaptiveChildren"].as_array().expect("children").clone();
    assert_eq!(children.len(), 2);
    check_fields(
        &children[0],
        &[
            ("TemplateName", json!("low")),
            ("Vcodec", json!("origin")),
            ("Height", json!(360)),
            ("Gop", json!(2)),
        ],
    );
    check_fields(
        &children[1],
        &[
            ("Vcodec", json!("h265")),
            ("HlsContainerFormat", json!("fmp4")),
        ],
    );
    let low = children[0]["TemplateId"].as_i64().expect("child id");
    assert!(low != abr && low != children[1]["TemplateId"].as_i64().unwrap_or(0));

    // Updating a child by its id keeps its id; a child without one is new.
    server
        .api(
            "ModifyLiveTranscodeTemplate",
            json!({"TemplateId": abr, "IsAdaptiveBitRate": 1, "AdaptiveChildren": [
                {"TemplateId": low, "VideoBitrate": 600, "Gop": 2},
                {"TemplateName": "mid", "VideoBitrate": 1200, "Gop": 2},
            ]}),
        )
        .ok();
    let got = server.api("DescribeLiveTranscodeTemplate", json!({"TemplateId": abr}));
    let children = got.ok()["Template"]["AdaptiveChildren"].clone();
    check_fields(
        &children[0],
        &[
            ("TemplateId", json!(low)),
            ("TemplateName", json!("low")),
            ("VideoBitrate", json!(600)),
            ("Height", json!(360)),
        ],
    );
    assert_eq!(children[1]["TemplateName"], "mid");

    // Rules bind templates to the play domain, several per app.
    for (app, template) in [("live", id), ("live", abr), ("", id)] {
        server
            .api("CreateLiveTranscodeRule", json!({"DomainName": PLAY, "AppName": app, "StreamName": "", "TemplateId": template}))
            .ok();
    }
    let rules = server.api("DescribeLiveTranscodeRules", json!({}));
    let rules = rules.ok()["Rules"].as_array().expect("rules").clone();
    assert_eq!(rules.len(), 3);
    check_fields(
        &rules[0],
        &[
            ("DomainName", json!(PLAY)),
            ("AppName", json!("live")),
            ("StreamName", json!("")),
            ("TemplateId", json!(id)),
        ],
    );
    assert_eq!(
        rules[0]["CreateTime"].as_str().map(str::len),
        Some(19),
        "Beijing time: {}",
        rules[0]
    );
    let filtered = server.api(
        "DescribeLiveTranscodeRules",
        json!({"TemplateIds": [abr], "DomainNames": [PLAY]}),
    );
    assert_eq!(filtered.ok()["Rules"].as_array().map(Vec::len), Some(1));

    server
        .api("DeleteLiveTranscodeTemplate", json!({"TemplateId": id}))
        .expect_code("InternalError.ConfInUsed");
    for app in ["live", ""] {
        server
            .api(
                "DeleteLiveTranscodeRule",
                json!({"DomainName": PLAY, "AppName": app, "StreamName": "", "TemplateId": id}),
            )
            .ok();
    }
    server
        .api("DeleteLiveTranscodeTemplate", json!({"TemplateId": id}))
        .ok();
    server
        .api("DescribeLiveTranscodeTemplate", json!({"TemplateId": id}))
        .expect_code("InternalError.ConfNotFound");
}

#[test]
fn transcode_arguments_are_checked_with_the_documented_codes() {
    let server = server_with_domains();
    let hd = json!({"TemplateName": "hd", "VideoBitrate": 1000});
    let outcomes = batch(
        &server,
        None,
        &[
            ("CreateLiveTranscodeTemplate", hd.clone()),
            ("CreateLiveTranscodeTemplate", hd.clone()),
            (
                "CreateLiveTranscodeTemplate",
                json!({"TemplateName": "hd_1", "VideoBitrate": 1000}),
            ),
            (
                "CreateLiveTranscodeTemplate",
                json!({"TemplateName": "x", "VideoBitrate": 1000, "NeedVideo": 0, "NeedAudio": 0}),
            ),
            (
                "CreateLiveTranscodeTemplate",
                json!({"TemplateName": "fast", "VideoBitrate": 1000, "AiTransCode": 1}),
            ),
            (
                "CreateLiveTranscodeTemplate",
                json!({"TemplateName": "x", "VideoBitrate": 1000, "Width": 1281}),
            ),
            (
                "CreateLiveTranscodeTemplate",
                json!({"TemplateName": "x", "VideoBitrate": 8001}),
            ),
            (
                "CreateLiveTranscodeTemplate",
                json!({"TemplateName": "x", "VideoBitrate": 1000, "Fps": 61}),
            ),
            (
                "CreateLiveTranscodeTemplate",
                json!({"TemplateName": "x", "VideoBitrate": 1000, "Rotate": 45}),
            ),
            (
                "CreateLiveTranscodeTemplate",
                json!({"TemplateName": "x", "VideoBitrate": 1000, "Profile": "extreme"}),
            ),
            (
                "CreateLiveTranscodeTemplate",
                json!({"TemplateName": "x", "VideoBitrate": 1000, "Vcodec": "vp9"}),
            ),
            (
                "CreateLiveTranscodeTemplate",
                json!({"TemplateName": "x", "VideoBitrate": 0, "IsAdaptiveBitRate": 1, "AdaptiveChildren": [
                    {"TemplateName": "a", "Gop": 2}, {"TemplateName": "b", "Gop": 3}]}),
            ),
            (
                "CreateLiveTranscodeTemplate",
                json!({"TemplateName": "x", "VideoBitrate": 0, "IsAdaptiveBitRate": 1, "AdaptiveChildren": [{"TemplateName": "hd", "Gop": 2}]}),
            ),
            (
                "ModifyLiveTranscodeTemplate",
                json!({"TemplateId": 424242, "Width": 640}),
            ),
            ("DeleteLiveTranscodeTemplate", json!({"TemplateId": 424242})),
        ],
    );
    let hd_id = id_of(&outcomes[0], "TemplateId");
    for (outcome, code) in outcomes[1..].iter().zip([
        "InternalError.ProcessorAlreadyExist",
        "InvalidParameter.ArgsNotMatch",
        "InternalError.ArgsNotMatch",
        "InternalError.ArgsNotMatch",
        "InvalidParameterValue",
        "InvalidParameterValue",
        "InvalidParameterValue",
        "InvalidParameterValue",
        "InvalidParameterValue",
        "InvalidParameterValue",
        "InvalidParameter.GopMustEqualAndExists",
        "InternalError.ProcessorAlreadyExist",
        "InternalError.ConfNotFound",
        "InternalError.ConfNotFound",
    ]) {
        outcome.expect_code(code);
    }
    server
        .api(
            "ModifyLiveTranscodeTemplate",
            json!({"TemplateId": hd_id, "NeedVideo": 0, "NeedAudio": 0}),
        )
        .expect_code("InternalError.ArgsNotMatch");

    // Rules: play domains only, each rule once, 50 at most.
    let rule = |domain: &str, app: &str, template: i64| json!({"DomainName": domain, "AppName": app, "StreamName": "", "TemplateId": template});
    server
        .api("CreateLiveTranscodeRule", rule(PUSH, "live", hd_id))
        .expect_code("InternalError.PlayDomainNoRecord");
    server
        .api(
            "CreateLiveTranscodeRule",
            rule("nowhere.example.com", "live", hd_id),
        )
        .expect_code("InternalError.PlayDomainNoRecord");
    server
        .api("CreateLiveTranscodeRule", rule(PLAY, "live", 424242))
        .expect_code("InternalError.ConfNotFound");
    let mut calls: Vec<(&str, Value)> = (0..51)
        .map(|i| {
            (
                "CreateLiveTranscodeRule",
                rule(PLAY, &format!("app{i}"), hd_id),
            )
        })
        .collect();
    calls.push(("CreateLiveTranscodeRule", rule(PLAY, "app0", hd_id)));
    calls.push(("DeleteLiveTranscodeRule", rule(PLAY, "other", hd_id)));
    let outcomes = batch(&server, None, &calls);
    assert!(
        outcomes[..50].iter().all(|o| o.code().is_none()),
        "{:?}",
        outcomes[0]
    );
    outcomes[50].expect_code("InternalError.RuleOutLimit");
    outcomes[51].expect_code("InternalError.RuleAlreadyExist");
    outcomes[52].expect_code("InternalError.RuleNotFound");
    server
        .api("DeleteLiveTranscodeRule", rule(PUSH, "app0", hd_id))
        .expect_code("InternalError.PlayDomainNoRecord");
}

#[test]
fn an_account_holds_fifty_templates_of_each_kind() {
    let server = server_with_domains();
    type Params = fn(usize) -> Value;
    let families: [(&str, Params); 4] = [
        (
            "CreateLiveTranscodeTemplate",
            |i| json!({"TemplateName": format!("t{i}"), "VideoBitrate": 100}),
        ),
        (
            "CreateLiveRecordTemplate",
            |i| json!({"TemplateName": format!("r{i}")}),
        ),
        (
            "CreateLiveSnapshotTemplate",
            |i| json!({"TemplateName": format!("s{i}"), "CosAppId": 1250000000, "CosBucket": "shots", "CosRegion": "ap-guangzhou"}),
        ),
        (
            "CreateLiveCallbackTemplate",
            |i| json!({"TemplateName": format!("c{i}"), "StreamBeginNotifyUrl": "http://hooks.example.com/begin"}),
        ),
    ];
    for (action, params) in families {
        let calls: Vec<(&str, Value)> = (0..51).map(|i| (action, params(i))).collect();
        let outcomes = batch(&server, None, &calls);
        assert!(
            outcomes[..50].iter().all(|o| o.code().is_none()),
            "{action}: {:?}",
            outcomes[0]
        );
        outcomes[50].expect_code("InternalError.ConfOutLimit");
    }
}

#[test]
fn record_templates_round_trip_with_the_documented_defaults() {
    let server = server_with_domains();
    let created = server.api(
        "CreateLiveRecordTemplate",
        json!({"TemplateName": "录制_1", "FlvParam": {"Enable": 1, "StorageTime": 86400}, "HlsSpecialParam": {"FlowContinueDuration": 60}}),
    );
    let id = id_of(&created, "TemplateId");
    let got = server.api("DescribeLiveRecordTemplate", json!({"TemplateId": id}));
    let t = got.ok()["Template"].clone();
    check_fields(
        &t,
        &[
            ("TemplateId", json!(id)),
            ("TemplateName", json!("录制_1")),
            ("Description", json!("")),
            ("IsDelayLive", json!(0)),
            ("CosStore", json!(0)),
            ("RemoveWatermark", json!(false)),
            ("HlsSpecialParam", json!({"FlowContinueDuration": 60})),
            ("FlvSpecialParam", json!({"UploadInRecording": false})),
        ],
    );
    check_fields(
        &t["FlvParam"],
        &[
            ("Enable", json!(1)),
            ("RecordInterval", json!(1800)),
            ("StorageTime", json!(86400)),
        ],
    );
    for param in ["HlsParam", "Mp4Param", "AacParam", "Mp3Param"] {
        check_fields(
            &t[param],
            &[
                ("Enable", json!(0)),
                ("RecordInterval", json!(1800)),
                ("StorageTime", json!(0)),
                ("VodSubAppId", json!(0)),
                ("VodFileName", json!("")),
                ("StorageMode", json!("normal")),
                ("CosBucketPath", json!("")),
            ],
        );
    }

    server
        .api(
            "ModifyLiveRecordTemplate",
            json!({"TemplateId": id, "Description": "hls", "HlsParam": {"Enable": 1, "StorageMode": "cold"}}),
        )
        .ok();
    let got = server.api("DescribeLiveRecordTemplate", json!({"TemplateId": id}));
    let t = got.ok()["Template"].clone();
    check_fields(
        &t,
        &[
            ("Description", json!("hls")),
            ("TemplateName", json!("录制_1")),
        ],
    );
    check_fields(
        &t["HlsParam"],
        &[("Enable", json!(1)), ("StorageMode", json!("cold"))],
    );
    check_fields(
        &t["FlvParam"],
        &[("Enable", json!(1)), ("StorageTime", json!(86400))],
    );

    // Slow-live templates are listed apart.
    server
        .api(
            "CreateLiveRecordTemplate",
            json!({"TemplateName": "slow", "IsDelayLive": 1}),
        )
        .ok();
    let standard = server.api("DescribeLiveRecordTemplates", json!({}));
    assert_eq!(standard.ok()["Templates"].as_array().map(Vec::len), Some(1));
    let slow = server.api("DescribeLiveRecordTemplates", json!({"IsDelayLive": 1}));
    assert_eq!(slow.ok()["Templates"][0]["TemplateName"], "slow");

    // Rules on the push domain, one template per place.
    let other = id_of(
        &server.api("CreateLiveRecordTemplate", json!({"TemplateName": "other"})),
        "TemplateId",
    );
    let outcomes = batch(
        &server,
        None,
        &[
            (
                "CreateLiveRecordRule",
                json!({"DomainName": PUSH, "AppName": "live", "StreamName": "cam", "TemplateId": id}),
            ),
            (
                "CreateLiveRecordRule",
                json!({"DomainName": PUSH, "TemplateId": other}),
            ),
            (
                "CreateLiveRecordRule",
                json!({"DomainName": PUSH, "AppName": "live", "StreamName": "cam", "TemplateId": id}),
            ),
            (
                "CreateLiveRecordRule",
                json!({"DomainName": PUSH, "AppName": "live", "StreamName": "cam", "TemplateId": other}),
            ),
            (
                "CreateLiveRecordRule",
                json!({"DomainName": PLAY, "AppName": "live", "TemplateId": id}),
            ),
            (
                "CreateLiveRecordRule",
                json!({"DomainName": PUSH, "AppName": "live", "TemplateId": 424242}),
            ),
            (
                "CreateLiveRecordRule",
                json!({"DomainName": PUSH, "AppName": "li/ve", "TemplateId": id}),
            ),
            ("DescribeLiveRecordRules", json!({})),
            ("DeleteLiveRecordTemplate", json!({"TemplateId": id})),
            (
                "DeleteLiveRecordRule",
                json!({"DomainName": PUSH, "AppName": "live", "StreamName": ""}),
            ),
            (
                "DeleteLiveRecordRule",
                json!({"DomainName": PUSH, "AppName": "live", "StreamName": "cam"}),
            ),
            ("DeleteLiveRecordTemplate", json!({"TemplateId": id})),
            ("DescribeLiveRecordTemplate", json!({"TemplateId": id})),
        ],
    );
    outcomes[0].ok();
    outcomes[1].ok();
    outcomes[2].expect_code("InternalError.RuleAlreadyExist");
    outcomes[3].expect_code("InternalError.RuleInUsing");
    outcomes[4].expect_code("InternalError.PushDomainNoRecord");
    outcomes[5].expect_code("InternalError.ConfNotFound");
    outcomes[6].expect_code("InternalError.InvalidInput");
    let rules = outcomes[7].ok()["Rules"].as_array().expect("rules").clone();
    assert_eq!(rules.len(), 2);
    check_fields(
        &rules[0],
        &[
            ("DomainName", json!(PUSH)),
            ("AppName", json!("live")),
            ("StreamName", json!("cam")),
            ("TemplateId", json!(id)),
        ],
    );
    check_fields(
        &rules[1],
        &[
            ("AppName", json!("")),
            ("StreamName", json!("")),
            ("TemplateId", json!(other)),
        ],
    );
    outcomes[8].expect_code("InternalError.ConfInUsed");
    outcomes[9].expect_code("InternalError.RuleNotFound");
    outcomes[10].ok();
    outcomes[11].ok();
    outcomes[12].expect_code("InternalError.ConfNotFound");

    // Names and values follow the documentation.
    let outcomes = batch(
        &server,
        None,
        &[
            (
                "CreateLiveRecordTemplate",
                json!({"TemplateName": "has space"}),
            ),
            (
                "CreateLiveRecordTemplate",
                json!({"TemplateName": "r", "FlvParam": {"Enable": 1, "RecordInterval": 30}}),
            ),
            (
                "CreateLiveRecordTemplate",
                json!({"TemplateName": "r", "AacParam": {"Enable": 1, "RecordInterval": 7201}}),
            ),
            (
                "ModifyLiveRecordTemplate",
                json!({"TemplateId": 424242, "Description": "x"}),
            ),
        ],
    );
    outcomes[0].expect_code("InternalError.InvalidInput");
    outcomes[1].expect_code("InvalidParameterValue");
    outcomes[2].expect_code("InvalidParameterValue");
    outcomes[3].expect_code("InternalError.ConfNotFound");
}

#[test]
fn snapshot_templates_round_trip_and_a_domain_uses_one() {
    let server = server_with_domains();
    let cos = json!({"CosAppId": 1250000000, "CosBucket": "shots", "CosRegion": "ap-guangzhou"});
    let created = server.api(
        "CreateLiveSnapshotTemplate",
        with(cos.clone(), json!({"TemplateName": "snap"})),
    );
    let id = id_of(&created, "TemplateId");
    let got = server.api("DescribeLiveSnapshotTemplate", json!({"TemplateId": id}));
    check_fields(
        &got.ok()["Template"],
        &[
            ("TemplateId", json!(id)),
            ("TemplateName", json!("snap")),
            ("Description", json!("")),
            ("SnapshotInterval", json!(10)),
            ("Width", json!(0)),
            ("Height", json!(0)),
            ("PornFlag", json!(0)),
            ("CosAppId", json!(1250000000)),
            ("CosBucket", json!("shots")),
            ("CosRegion", json!("ap-guangzhou")),
            ("CosPrefix", json!("/{Year}-{Month}-{Day}")),
            (
                "CosFileName",
                json!("{StreamID}-screenshot-{Hour}-{Minute}-{Second}-{Width}x{Height}{Ext}"),
            ),
        ],
    );
    server
        .api(
            "ModifyLiveSnapshotTemplate",
            with(cos.clone(), json!({"TemplateId": id, "SnapshotInterval": 30, "Width": 640, "CosPrefix": "live"})),
        )
        .ok();
    let listed = server.api("DescribeLiveSnapshotTemplates", json!({}));
    check_fields(
        &listed.ok()["Templates"][0],
        &[
            ("SnapshotInterval", json!(30)),
            ("Width", json!(640)),
            ("Height", json!(0)),
            ("CosPrefix", json!("live")),
        ],
    );

    let second = id_of(
        &server.api(
            "CreateLiveSnapshotTemplate",
            with(cos.clone(), json!({"TemplateName": "second"})),
        ),
        "TemplateId",
    );
    let outcomes = batch(
        &server,
        None,
        &[
            (
                "CreateLiveSnapshotRule",
                json!({"DomainName": PUSH, "AppName": "live", "TemplateId": id}),
            ),
            (
                "CreateLiveSnapshotRule",
                json!({"DomainName": PUSH, "AppName": "live", "StreamName": "cam", "TemplateId": id}),
            ),
            (
                "CreateLiveSnapshotRule",
                json!({"DomainName": PUSH, "AppName": "game", "TemplateId": second}),
            ),
            (
                "CreateLiveSnapshotRule",
                json!({"DomainName": PLAY, "AppName": "live", "TemplateId": id}),
            ),
            ("DescribeLiveSnapshotRules", json!({})),
            ("DeleteLiveSnapshotTemplate", json!({"TemplateId": id})),
            (
                "DeleteLiveSnapshotRule",
                json!({"DomainName": PUSH, "AppName": "live", "StreamName": "cam"}),
            ),
            (
                "DeleteLiveSnapshotRule",
                json!({"DomainName": PUSH, "AppName": "live"}),
            ),
            (
                "DeleteLiveSnapshotRule",
                json!({"DomainName": PUSH, "AppName": "live"}),
            ),
            ("DeleteLiveSnapshotTemplate", json!({"TemplateId": id})),
            (
                "CreateLiveSnapshotTemplate",
                with(
                    cos.clone(),
                    json!({"TemplateName": "s", "SnapshotInterval": 1}),
                ),
            ),
            (
                "CreateLiveSnapshotTemplate",
                with(cos.clone(), json!({"TemplateName": "s", "Height": 2001})),
            ),
            (
                "CreateLiveSnapshotTemplate",
                with(cos, json!({"TemplateName": "s!"})),
            ),
        ],
    );
    outcomes[0].ok();
    outcomes[1].ok();
    outcomes[2].expect_code("InternalError.RuleOutLimit");
    outcomes[3].expect_code("InternalError.PushDomainNoRecord");
    assert_eq!(outcomes[4].ok()["Rules"].as_array().map(Vec::len), Some(2));
    outcomes[5].expect_code("InternalError.ConfInUsed");
    outcomes[6].ok();
    outcomes[7].ok();
    outcomes[8].expect_code("InternalError.RuleNotFound");
    outcomes[9].ok();
    outcomes[10].expect_code("InvalidParameterValue");
    outcomes[11].expect_code("InvalidParameterValue");
    outcomes[12].expect_code("InternalError.InvalidInput");
}

#[test]
fn callback_templates_round_trip_with_one_url_per_event() {
    let server = server_with_domains();
    let created = server.api(
        "CreateLiveCallbackTemplate",
        json!({
            "TemplateName": "hooks", "Description": "回调模板", "CallbackKey": "adasda131312",
            "StreamBeginNotifyUrl": "http://hooks.example.com/notify?action=streamBegin",
            "StreamEndNotifyUrl": "https://hooks.example.com/notify?action=streamEnd",
        }),
    );
    let id = id_of(&created, "TemplateId");
    let got = server.api("DescribeLiveCallbackTemplate", json!({"TemplateId": id}));
    check_fields(
        &got.ok()["Template"],
        &[
            ("TemplateId", json!(id)),
            ("TemplateName", json!("hooks")),
            ("Description", json!("回调模板")),
            ("CallbackKey", json!("adasda131312")),
            (
                "StreamBeginNotifyUrl",
                json!("http://hooks.example.com/notify?action=streamBegin"),
            ),
            (
                "StreamEndNotifyUrl",
                json!("https://hooks.example.com/notify?action=streamEnd"),
            ),
            ("RecordNotifyUrl", json!("")),
            ("SnapshotNotifyUrl", json!("")),
            ("PornCensorshipNotifyUrl", json!("")),
            ("StreamMixNotifyUrl", json!("")),
            ("PushExceptionNotifyUrl", json!("")),
        ],
    );
    server
        .api(
            "ModifyLiveCallbackTemplate",
            json!({"TemplateId": id, "StreamEndNotifyUrl": "", "RecordNotifyUrl": "http://hooks.example.com/record"}),
        )
        .ok();
    let listed = server.api("DescribeLiveCallbackTemplates", json!({}));
    check_fields(
        &listed.ok()["Templates"][0],
        &[
            (
                "StreamBeginNotifyUrl",
                json!("http://hooks.example.com/notify?action=streamBegin"),
            ),
            ("StreamEndNotifyUrl", json!("")),
            ("RecordNotifyUrl", json!("http://hooks.example.com/record")),
            ("CallbackKey", json!("adasda131312")),
        ],
    );

    let second = id_of(
        &server.api(
            "CreateLiveCallbackTemplate",
            json!({"TemplateName": "b", "SnapshotNotifyUrl": "http://h.example.com/s"}),
        ),
        "TemplateId",
    );
    let outcomes = batch(
        &server,
        None,
        &[
            (
                "CreateLiveCallbackRule",
                json!({"DomainName": PUSH, "AppName": "live", "TemplateId": id}),
            ),
            (
                "CreateLiveCallbackRule",
                json!({"DomainName": PUSH, "AppName": "", "TemplateId": second}),
            ),
            (
                "CreateLiveCallbackRule",
                json!({"DomainName": PUSH, "AppName": "live", "TemplateId": second}),
            ),
            (
                "CreateLiveCallbackRule",
                json!({"DomainName": PLAY, "AppName": "live", "TemplateId": id}),
            ),
            ("DescribeLiveCallbackRules", json!({})),
            ("DeleteLiveCallbackTemplate", json!({"TemplateId": id})),
            (
                "DeleteLiveCallbackRule",
                json!({"DomainName": PUSH, "AppName": "live"}),
            ),
            (
                "DeleteLiveCallbackRule",
                json!({"DomainName": PUSH, "AppName": "live"}),
            ),
            ("DeleteLiveCallbackTemplate", json!({"TemplateId": id})),
            ("DescribeLiveCallbackTemplate", json!({"TemplateId": id})),
            (
                "CreateLiveCallbackTemplate",
                json!({"TemplateName": "none"}),
            ),
            (
                "CreateLiveCallbackTemplate",
                json!({"TemplateName": "ftp", "StreamBeginNotifyUrl": "ftp://h.example.com/x"}),
            ),
        ],
    );
    outcomes[0].ok();
    outcomes[1].ok();
    outcomes[2].expect_code("InternalError.RuleInUsing");
    outcomes[3].expect_code("InternalError.PushDomainNoRecord");
    let rules = outcomes[4].ok()["Rules"].as_array().expect("rules").clone();
    assert_eq!(rules.len(), 2);
    check_fields(
        &rules[0],
        &[
            ("DomainName", json!(PUSH)),
            ("AppName", json!("live")),
            ("TemplateId", json!(id)),
        ],
    );
    assert!(
        rules[0].get("StreamName").is_none(),
        "callback rules have no stream: {}",
        rules[0]
    );
    outcomes[5].expect_code("InternalError.ConfInUsed");
    outcomes[6].ok();
    outcomes[7].expect_code("InternalError.RuleNotFound");
    outcomes[8].ok();
    outcomes[9].expect_code("InternalError.ConfNotFound");
    outcomes[10].expect_code("InternalError.InvalidInput");
    outcomes[11].expect_code("InternalError.InvalidInput");
}

/// A tiny HTTP server on 127.0.0.1:0 serving generated pictures (and
/// answers that are not pictures), one connection at a time, until dropped.
pub(crate) struct Pictures {
    addr: SocketAddr,
    hits: Arc<std::sync::atomic::AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Pictures {
    pub(crate) fn start() -> Pictures {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
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
                if let Ok(mut conn) = conn {
                    let _ = serve_picture(&mut conn);
                }
            }
        });
        Pictures {
            addr,
            hits,
            stop,
            thread: Some(thread),
        }
    }

    /// Connections accepted so far.
    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Pictures {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve_picture(conn: &mut TcpStream) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut request = Vec::new();
    let mut buf = [0_u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&request).into_owned();
    let path = text.split_whitespace().nth(1).unwrap_or("/");
    let (status, kind, body) = match path {
        "/logo.png" => ("200 OK", "image/png", png(4, 2)),
        "/red.png" => ("200 OK", "image/png", png_with(32, 16, |_, _| [255, 0, 0])),
        "/badge.png" => ("200 OK", "image/png", png(8, 8)),
        "/photo.jpg" => ("200 OK", "image/jpeg", jpeg_header(3, 2)),
        "/page.html" => (
            "200 OK",
            "text/html",
            b"<html>not a picture</html>".to_vec(),
        ),
        _ => ("404 Not Found", "text/plain", b"no such picture".to_vec()),
    };
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    conn.write_all(&body)
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFF_u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                0xEDB8_8320 ^ (crc >> 1)
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A real RGB PNG of `width`×`height` (zlib "stored" blocks, no compression).
fn png(width: u32, height: u32) -> Vec<u8> {
    png_with(width, height, |x, y| [(x * 30) as u8, (y * 30) as u8, 200])
}

/// A PNG whose pixel at (x, y) is `color(x, y)`.
fn png_with(width: u32, height: u32, color: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
    let mut raw = Vec::new();
    for y in 0..height {
        raw.push(0);
        for x in 0..width {
            raw.extend_from_slice(&color(x, y));
        }
    }
    let len = u16::try_from(raw.len()).expect("small picture");
    let mut zlib = vec![0x78, 0x01, 0x01];
    zlib.extend_from_slice(&len.to_le_bytes());
    zlib.extend_from_slice(&(!len).to_le_bytes());
    zlib.extend_from_slice(&raw);
    let (mut a, mut b) = (1_u32, 0_u32);
    for &byte in &raw {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    zlib.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    for (kind, data) in [(&b"IHDR"[..], ihdr), (b"IDAT", zlib), (b"IEND", Vec::new())] {
        out.extend_from_slice(&u32::try_from(data.len()).expect("chunk").to_be_bytes());
        let mut chunk = kind.to_vec();
        chunk.extend_from_slice(&data);
        out.extend_from_slice(&chunk);
        out.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    out
}

/// The start of a baseline JPEG: SOI, a JFIF APP0 segment and the frame
/// header that gives its size.
fn jpeg_header(width: u16, height: u16) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
    out.extend_from_slice(b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
    out.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x0B, 0x08]);
    out.extend_from_slice(&height.to_be_bytes());
    out.extend_from_slice(&width.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x01, 0x11, 0x00, 0xFF, 0xD9]);
    out
}

/// The files kept in the data directory's picture folder.
fn kept_pictures(server: &Server) -> Vec<Vec<u8>> {
    let dir = server.data_dir.join("watermarks");
    let mut files: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .filter_map(|e| std::fs::read(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn watermarks_fetch_their_picture_once_and_round_trip() {
    let pictures = Pictures::start();
    let server = server_with_domains();
    let logo = pictures.url("/logo.png");
    let added = server.api(
        "AddLiveWatermark",
        json!({"PictureUrl": logo, "WatermarkName": "logo"}),
    );
    let id = id_of(&added, "WatermarkId");
    assert_eq!(
        kept_pictures(&server),
        vec![png(4, 2)],
        "the picture is kept locally"
    );
    let got = server.api("DescribeLiveWatermark", json!({"WatermarkId": id}));
    let w = got.ok()["Watermark"].clone();
    check_fields(
        &w,
        &[
            ("WatermarkId", json!(id)),
            ("PictureUrl", json!(logo)),
            ("WatermarkName", json!("logo")),
            ("XPosition", json!(0)),
            ("YPosition", json!(0)),
            ("Width", json!(0)),
            ("Height", json!(0)),
            ("BackgroundWidth", json!(1920)),
            ("BackgroundHeight", json!(1080)),
            ("Status", json!(0)),
        ],
    );
    let created = w["CreateTime"].as_str().unwrap_or("");
    assert!(created.len() == 20 && created.ends_with('Z'), "{created}");

    // Same URL: nothing is fetched again; a new URL replaces the picture.
    server
        .api("UpdateLiveWatermark", json!({"WatermarkId": id, "PictureUrl": logo, "XPosition": 80, "YPosition": 10, "Width": 20}))
        .ok();
    server
        .api("UpdateLiveWatermark", json!({"WatermarkId": id, "PictureUrl": pictures.url("/photo.jpg"), "XPosition": 80, "YPosition": 10}))
        .ok();
    assert_eq!(
        kept_pictures(&server),
        vec![jpeg_header(3, 2)],
        "the old picture is gone"
    );
    let listed = server.api("DescribeLiveWatermarks", json!({}));
    assert_eq!(listed.ok()["TotalNum"], 1);
    check_fields(
        &listed.ok()["WatermarkList"][0],
        &[
            ("PictureUrl", json!(pictures.url("/photo.jpg"))),
            ("XPosition", json!(80)),
            ("YPosition", json!(10)),
            ("Width", json!(20)),
        ],
    );
    let named = server.api("DescribeLiveWatermarks", json!({"Name": "nomatch"}));
    assert_eq!(named.ok()["TotalNum"], 0);

    // Rules on push domains; a watermark in use says so and stays.
    let badge = id_of(
        &server.api(
            "AddLiveWatermark",
            json!({"PictureUrl": pictures.url("/badge.png"), "WatermarkName": "badge"}),
        ),
        "WatermarkId",
    );
    let rule = |template: i64| json!({"DomainName": PUSH, "AppName": "live", "StreamName": "cam", "TemplateId": template});
    let outcomes = batch(
        &server,
        None,
        &[
            ("CreateLiveWatermarkRule", rule(id)),
            ("CreateLiveWatermarkRule", rule(id)),
            ("CreateLiveWatermarkRule", rule(badge)),
            (
                "CreateLiveWatermarkRule",
                json!({"DomainName": PLAY, "AppName": "live", "StreamName": "", "TemplateId": id}),
            ),
            ("CreateLiveWatermarkRule", rule(424242)),
            ("DescribeLiveWatermarkRules", json!({})),
            ("DescribeLiveWatermark", json!({"WatermarkId": id})),
            ("DeleteLiveWatermark", json!({"WatermarkId": id})),
            (
                "DeleteLiveWatermarkRule",
                json!({"DomainName": PUSH, "AppName": "live", "StreamName": "cam"}),
            ),
            (
                "DeleteLiveWatermarkRule",
                json!({"DomainName": PUSH, "AppName": "live", "StreamName": "cam"}),
            ),
            ("DeleteLiveWatermark", json!({"WatermarkId": id})),
            ("DescribeLiveWatermark", json!({"WatermarkId": id})),
            (
                "UpdateLiveWatermark",
                json!({"WatermarkId": id, "PictureUrl": logo, "XPosition": 0, "YPosition": 0}),
            ),
            ("DeleteLiveWatermark", json!({"WatermarkId": id})),
        ],
    );
    outcomes[0].ok();
    outcomes[1].expect_code("InternalError.RuleAlreadyExist");
    outcomes[2].expect_code("InternalError.RuleInUsing");
    outcomes[3].expect_code("InternalError.PushDomainNoRecord");
    outcomes[4].expect_code("InternalError.WatermarkNotExist");
    let rules = outcomes[5].ok()["Rules"].clone();
    check_fields(
        &rules[0],
        &[
            ("DomainName", json!(PUSH)),
            ("StreamName", json!("cam")),
            ("TemplateId", json!(id)),
        ],
    );
    assert!(
        rules[0]["CreateTime"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{rules}"
    );
    assert_eq!(outcomes[6].ok()["Watermark"]["Status"], 1);
    outcomes[7].expect_code("InternalError.ConfInUsed");
    outcomes[8].ok();
    outcomes[9].expect_code("InternalError.RuleNotFound");
    outcomes[10].ok();
    outcomes[11].expect_code("InternalError.WatermarkNotExist");
    outcomes[12].expect_code("InternalError.WatermarkNotExist");
    outcomes[13].expect_code("InternalError.WatermarkNotExist");
    assert_eq!(
        kept_pictures(&server),
        vec![png(8, 8)],
        "a deleted watermark's picture is removed"
    );
}

#[test]
fn a_picture_that_cannot_be_had_is_refused_with_the_reason() {
    let pictures = Pictures::start();
    let server = server_with_domains();
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("address")
    };
    for (url, reason) in [
        (pictures.url("/missing.png"), "404"),
        (pictures.url("/page.html"), "not a PNG or JPEG"),
        (format!("http://{closed}/logo.png"), "could not be reached"),
    ] {
        let call = server.call(
            "AddLiveWatermark",
            json!({"PictureUrl": url, "WatermarkName": "w"}),
        );
        let outcome = python1(&with(call, json!({"language": "en-US"})));
        outcome.expect_code("InternalError.GetWatermarkError");
        assert!(
            outcome.message().contains(reason),
            "{reason}: {}",
            outcome.message()
        );
    }
    assert_eq!(
        server.api("DescribeLiveWatermarks", json!({})).ok()["TotalNum"],
        0
    );
    assert!(kept_pictures(&server).is_empty());

    let id = id_of(
        &server.api(
            "AddLiveWatermark",
            json!({"PictureUrl": pictures.url("/logo.png"), "WatermarkName": "w"}),
        ),
        "WatermarkId",
    );
    let update = |url: String, x: i64| json!({"WatermarkId": id, "PictureUrl": url, "XPosition": x, "YPosition": 0});
    let outcomes = batch(
        &server,
        None,
        &[
            ("UpdateLiveWatermark", update(pictures.url("/page.html"), 0)),
            (
                "UpdateLiveWatermark",
                update(pictures.url("/logo.png"), 101),
            ),
            (
                "UpdateLiveWatermark",
                update("ftp://example.com/logo.png".into(), 0),
            ),
            (
                "AddLiveWatermark",
                json!({"PictureUrl": pictures.url("/logo.png"), "WatermarkName": "w", "XPosition": 101}),
            ),
            (
                "AddLiveWatermark",
                json!({"PictureUrl": "http://example.com/a;b.png", "WatermarkName": "w"}),
            ),
            ("DescribeLiveWatermark", json!({"WatermarkId": id})),
        ],
    );
    outcomes[0].expect_code("InternalError.GetWatermarkError");
    outcomes[1].expect_code("InternalError.WatermarkEditError");
    outcomes[2].expect_code("InternalError.WatermarkEditError");
    outcomes[3].expect_code("InvalidParameter");
    outcomes[4].expect_code("InvalidParameter");
    assert_eq!(
        outcomes[5].ok()["Watermark"]["PictureUrl"],
        pictures.url("/logo.png"),
        "failed updates change nothing"
    );
    assert_eq!(kept_pictures(&server), vec![png(4, 2)]);
}

#[test]
fn an_account_holds_one_hundred_watermarks() {
    let pictures = Pictures::start();
    let server = server_with_domains();
    let calls: Vec<(&str, Value)> = (0..101)
        .map(|i| {
            (
                "AddLiveWatermark",
                json!({"PictureUrl": pictures.url("/logo.png"), "WatermarkName": format!("w{i}")}),
            )
        })
        .collect();
    let outcomes = batch(&server, None, &calls);
    assert!(
        outcomes[..100].iter().all(|o| o.code().is_none()),
        "{:?}",
        outcomes[0]
    );
    outcomes[100].expect_code("InternalError.ConfOutLimit");
    assert_eq!(kept_pictures(&server).len(), 100);
}

#[test]
fn dry_runs_check_everything_and_create_nothing() {
    let pictures = Pictures::start();
    let server = server_with_domains();
    dry_run(
        &server,
        "CreateLiveTranscodeTemplate",
        json!({"TemplateName": "hd", "VideoBitrate": 100}),
    )
    .expect_code("DryRunOperation");
    dry_run(
        &server,
        "CreateLiveTranscodeTemplate",
        json!({"TemplateName": "h_d", "VideoBitrate": 100}),
    )
    .expect_code("InvalidParameter.ArgsNotMatch");
    dry_run(
        &server,
        "AddLiveWatermark",
        json!({"PictureUrl": pictures.url("/logo.png"), "WatermarkName": "w"}),
    )
    .expect_code("DryRunOperation");
    dry_run(
        &server,
        "AddLiveWatermark",
        json!({"PictureUrl": pictures.url("/page.html"), "WatermarkName": "w"}),
    )
    .expect_code("InternalError.GetWatermarkError");
    let id = id_of(
        &server.api("CreateLiveRecordTemplate", json!({"TemplateName": "r"})),
        "TemplateId",
    );
    dry_run(
        &server,
        "CreateLiveRecordRule",
        json!({"DomainName": PUSH, "AppName": "live", "TemplateId": id}),
    )
    .expect_code("DryRunOperation");
    dry_run(
        &server,
        "DeleteLiveRecordTemplate",
        json!({"TemplateId": id}),
    )
    .expect_code("DryRunOperation");
    assert!(
        server.api("DescribeLiveTranscodeTemplates", json!({})).ok()["Templates"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
    assert_eq!(
        server.api("DescribeLiveWatermarks", json!({})).ok()["TotalNum"],
        0
    );
    assert!(
        server.api("DescribeLiveRecordRules", json!({})).ok()["Rules"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
    server
        .api("DescribeLiveRecordTemplate", json!({"TemplateId": id}))
        .ok();
    assert!(kept_pictures(&server).is_empty());
}

/// One template of every family and a rule for each, made by the root
/// account; returns the ids in the order transcode, watermark, record,
/// snapshot, callback.
fn one_of_each(server: &Server, pictures: &Pictures) -> [i64; 5] {
    let outcomes = batch(
        server,
        None,
        &[
            (
                "CreateLiveTranscodeTemplate",
                json!({"TemplateName": "hd", "VideoBitrate": 1000, "Height": 720}),
            ),
            (
                "AddLiveWatermark",
                json!({"PictureUrl": pictures.url("/logo.png"), "WatermarkName": "logo", "XPosition": 5}),
            ),
            (
                "CreateLiveRecordTemplate",
                json!({"TemplateName": "rec", "HlsParam": {"Enable": 1}}),
            ),
            (
                "CreateLiveSnapshotTemplate",
                json!({"TemplateName": "snap", "CosAppId": 1250000000, "CosBucket": "shots", "CosRegion": "ap-guangzhou", "SnapshotInterval": 20}),
            ),
            (
                "CreateLiveCallbackTemplate",
                json!({"TemplateName": "cb", "StreamBeginNotifyUrl": "http://h.example.com/b", "CallbackKey": "k"}),
            ),
        ],
    );
    let ids = [
        id_of(&outcomes[0], "TemplateId"),
        id_of(&outcomes[1], "WatermarkId"),
        id_of(&outcomes[2], "TemplateId"),
        id_of(&outcomes[3], "TemplateId"),
        id_of(&outcomes[4], "TemplateId"),
    ];
    let rules = batch(
        server,
        None,
        &[
            (
                "CreateLiveTranscodeRule",
                json!({"DomainName": PLAY, "AppName": "live", "StreamName": "", "TemplateId": ids[0]}),
            ),
            (
                "CreateLiveWatermarkRule",
                json!({"DomainName": PUSH, "AppName": "live", "StreamName": "", "TemplateId": ids[1]}),
            ),
            (
                "CreateLiveRecordRule",
                json!({"DomainName": PUSH, "AppName": "live", "TemplateId": ids[2]}),
            ),
            (
                "CreateLiveSnapshotRule",
                json!({"DomainName": PUSH, "AppName": "live", "TemplateId": ids[3]}),
            ),
            (
                "CreateLiveCallbackRule",
                json!({"DomainName": PUSH, "AppName": "live", "TemplateId": ids[4]}),
            ),
        ],
    );
    for r in &rules {
        r.ok();
    }
    ids
}

/// Every Describe answer for the five families, for comparisons.
fn describe_everything(server: &Server, key: Option<&(String, String)>) -> Vec<Value> {
    let actions = [
        "DescribeLiveTranscodeTemplates",
        "DescribeLiveTranscodeRules",
        "DescribeLiveWatermarks",
        "DescribeLiveWatermarkRules",
        "DescribeLiveRecordTemplates",
        "DescribeLiveRecordRules",
        "DescribeLiveSnapshotTemplates",
        "DescribeLiveSnapshotRules",
        "DescribeLiveCallbackTemplates",
        "DescribeLiveCallbackRules",
    ];
    let calls: Vec<(&str, Value)> = actions.iter().map(|a| (*a, json!({}))).collect();
    batch(server, key, &calls)
        .iter()
        .map(|o| o.ok().clone())
        .collect()
}

#[test]
fn another_account_sees_and_changes_nothing_of_each_family() {
    let pictures = Pictures::start();
    let server = server_with_domains();
    let [transcode, watermark, record, snapshot, callback] = one_of_each(&server, &pictures);
    let other = server.account_key("other");
    for answer in describe_everything(&server, Some(&other)) {
        let list = answer
            .get("Templates")
            .or_else(|| answer.get("Rules"))
            .or_else(|| answer.get("WatermarkList"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(list, json!([]), "{answer}");
    }
    // Every template of theirs is unknown to them: Describe, Modify, Delete.
    const CONF: &str = "InternalError.ConfNotFound";
    const WATERMARK: &str = "InternalError.WatermarkNotExist";
    let cos = json!({"CosAppId": 1, "CosBucket": "b", "CosRegion": "r"});
    let logo = pictures.url("/logo.png");
    let families = [
        (
            "LiveTranscodeTemplate",
            "TemplateId",
            transcode,
            CONF,
            json!({"Width": 640}),
        ),
        (
            "LiveWatermark",
            "WatermarkId",
            watermark,
            WATERMARK,
            json!({"PictureUrl": logo, "XPosition": 1, "YPosition": 1}),
        ),
        (
            "LiveRecordTemplate",
            "TemplateId",
            record,
            CONF,
            json!({"Description": "x"}),
        ),
        ("LiveSnapshotTemplate", "TemplateId", snapshot, CONF, cos),
        (
            "LiveCallbackTemplate",
            "TemplateId",
            callback,
            CONF,
            json!({"CallbackKey": "x"}),
        ),
    ];
    let mut calls: Vec<(String, Value, &str)> = Vec::new();
    for (family, id_field, id, code, change) in families {
        let id = json!({ id_field: id });
        let modify = if family == "LiveWatermark" {
            "Update"
        } else {
            "Modify"
        };
        calls.push((format!("Describe{family}"), id.clone(), code));
        calls.push((format!("{modify}{family}"), with(change, id.clone()), code));
        calls.push((format!("Delete{family}"), id, code));
    }
    let rule_calls: Vec<(&str, Value, &str)> = vec![
        // The root account's domains are not theirs to bind or unbind.
        (
            "CreateLiveTranscodeRule",
            json!({"DomainName": PLAY, "AppName": "x", "StreamName": "", "TemplateId": transcode}),
            "InternalError.PlayDomainNoRecord",
        ),
        (
            "DeleteLiveTranscodeRule",
            json!({"DomainName": PLAY, "AppName": "live", "StreamName": "", "TemplateId": transcode}),
            "InternalError.PlayDomainNoRecord",
        ),
        (
            "DeleteLiveWatermarkRule",
            json!({"DomainName": PUSH, "AppName": "live", "StreamName": ""}),
            "InternalError.PushDomainNoRecord",
        ),
        (
            "DeleteLiveRecordRule",
            json!({"DomainName": PUSH, "AppName": "live"}),
            "InternalError.PushDomainNoRecord",
        ),
        (
            "DeleteLiveSnapshotRule",
            json!({"DomainName": PUSH, "AppName": "live"}),
            "InternalError.PushDomainNoRecord",
        ),
        (
            "DeleteLiveCallbackRule",
            json!({"DomainName": PUSH, "AppName": "live"}),
            "InternalError.PushDomainNoRecord",
        ),
    ];
    calls.extend(rule_calls.into_iter().map(|(a, p, c)| (a.to_owned(), p, c)));
    let batch_calls: Vec<(&str, Value)> = calls
        .iter()
        .map(|(a, p, _)| (a.as_str(), p.clone()))
        .collect();
    for ((action, _, code), outcome) in calls.iter().zip(batch(&server, Some(&other), &batch_calls))
    {
        assert_eq!(outcome.code(), Some(*code), "{action}: {}", outcome.0);
    }

    // Their own push domain cannot bind the root account's templates either.
    py_as(
        &server,
        &other,
        "AddLiveDomain",
        json!({"DomainName": "their.example.com", "DomainType": 0}),
    )
    .ok();
    py_as(
        &server,
        &other,
        "CreateLiveRecordRule",
        json!({"DomainName": "their.example.com", "AppName": "live", "TemplateId": record}),
    )
    .expect_code("InternalError.ConfNotFound");
    py_as(
        &server,
        &other,
        "CreateLiveWatermarkRule",
        json!({"DomainName": "their.example.com", "AppName": "live", "StreamName": "", "TemplateId": watermark}),
    )
    .expect_code("InternalError.WatermarkNotExist");
    // And the root account still has everything.
    server
        .api(
            "DescribeLiveTranscodeTemplate",
            json!({"TemplateId": transcode}),
        )
        .ok();
    server
        .api("DescribeLiveWatermark", json!({"WatermarkId": watermark}))
        .ok();
}

#[test]
fn templates_rules_and_pictures_survive_a_restart() {
    let pictures = Pictures::start();
    let server = server_with_domains();
    let [_, watermark, ..] = one_of_each(&server, &pictures);
    let before = describe_everything(&server, None);
    let kept = kept_pictures(&server);
    assert_eq!(kept.len(), 1);
    drop(pictures);
    let server = server.restart();
    assert_eq!(describe_everything(&server, None), before);
    assert_eq!(
        kept_pictures(&server),
        kept,
        "the picture is not fetched again"
    );
    server
        .api("DeleteLiveWatermark", json!({"WatermarkId": watermark}))
        .expect_code("InternalError.ConfInUsed");
    // Ids keep counting after a restart.
    let next = id_of(
        &server.api("CreateLiveRecordTemplate", json!({"TemplateName": "after"})),
        "TemplateId",
    );
    assert!(next > watermark);
}

#[test]
fn an_error_does_not_echo_a_huge_value_whole() {
    let server = Server::start();
    let name = "n".repeat(2 << 20);
    let outcome = server.api(
        "CreateLiveRecordTemplate",
        json!({"TemplateName": name, "FlvParam": {"Enable": 1}}),
    );
    assert!(outcome.code().is_some(), "{}", outcome.0);
    assert!(
        outcome.message().len() < 1024,
        "{} bytes",
        outcome.message().len()
    );
    assert!(server.log().len() < 64 * 1024, "the log holds the value");
}

#[test]
fn bucket_names_that_are_paths_or_hosts_are_refused() {
    let server = Server::start();
    for bucket in [
        "..",
        "../../../../../../x/escape",
        "127.0.0.1:18080#",
        "Shots",
    ] {
        server
            .api(
                "CreateLiveSnapshotTemplate",
                json!({"TemplateName": "s", "CosAppId": 1250000000, "CosBucket": bucket, "CosRegion": "ap-guangzhou"}),
            )
            .expect_code("InternalError.InvalidInput");
        server
            .api(
                "CreateLiveRecordTemplate",
                json!({"TemplateName": "r", "CosStore": 1, "FlvParam": {"Enable": 1, "CosBucketName": bucket, "CosBucketRegion": "ap-guangzhou", "CosBucketPath": "/rec"}}),
            )
            .expect_code("InternalError.InvalidInput");
    }
    server
        .api(
            "CreateLiveSnapshotTemplate",
            json!({"TemplateName": "s", "CosAppId": 1250000000, "CosBucket": "shots", "CosRegion": "ap-guangzhou#x"}),
        )
        .expect_code("InternalError.InvalidInput");
    server
        .api(
            "CreateLiveRecordTemplate",
            json!({"TemplateName": "r", "CosStore": 1, "FlvParam": {"Enable": 1, "CosBucketName": "records", "CosBucketRegion": "ap-guangzhou", "CosBucketPath": "/rec"}}),
        )
        .ok();
}
