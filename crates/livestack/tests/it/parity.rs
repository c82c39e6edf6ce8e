//! The parity suite's round trips: one write and one read of every action
//! family through the official Python SDK (typed models, TC3), whose
//! answers must equal what the in-process tier's own signer gets.
//!
//! The rest of the parity suite is `errors.rs` (every public code through
//! each official client) and `clients.rs` (every signature version and
//! method through each client).

use serde_json::{json, Value};

use crate::harness::*;

/// Runs `calls` in order in one Python SDK process.
fn python_batch(server: &Server, calls: &[(&str, Value)]) -> Vec<Outcome> {
    let calls: Vec<Value> = calls
        .iter()
        .map(|(action, params)| json!({"action": action, "params": params}))
        .collect();
    python(&with(
        server.call("DescribeLiveDomains", json!({})),
        json!({"calls": calls}),
    ))
}

#[test]
fn every_action_family_round_trips_through_the_python_sdk() {
    let server = Server::start();
    let now = server.clock.unix();
    let cos = json!({"CosAppId": 1250000000, "CosBucket": "shots", "CosRegion": "ap-guangzhou"});
    let writes: Vec<(&str, Value)> = vec![
        // domains, keys, referer
        (
            "AddLiveDomain",
            json!({"DomainName": "push.parity.test", "DomainType": 0}),
        ),
        (
            "AddLiveDomain",
            json!({"DomainName": "play.parity.test", "DomainType": 1}),
        ),
        (
            "ModifyLivePushAuthKey",
            json!({"DomainName": "push.parity.test", "Enable": 1, "MasterAuthKey": "k1"}),
        ),
        (
            "ModifyLivePlayAuthKey",
            json!({"DomainName": "play.parity.test", "Enable": 1, "AuthKey": "k2"}),
        ),
        (
            "ModifyLiveDomainReferer",
            json!({"DomainName": "play.parity.test", "Enable": 1, "Type": 1, "AllowEmpty": 1, "Rules": "a.example.com"}),
        ),
        // streams
        (
            "ForbidLiveStream",
            json!({"DomainName": "push.parity.test", "AppName": "live", "StreamName": "banned"}),
        ),
        // templates and rules of the five families
        (
            "CreateLiveTranscodeTemplate",
            json!({"TemplateName": "sd", "VideoBitrate": 800}),
        ),
        (
            "CreateLiveRecordTemplate",
            json!({"TemplateName": "rec", "FlvParam": {"Enable": 1}}),
        ),
        (
            "CreateLiveSnapshotTemplate",
            with(cos, json!({"TemplateName": "snap"})),
        ),
        (
            "CreateLiveCallbackTemplate",
            json!({"TemplateName": "cb", "StreamBeginNotifyUrl": "http://hooks.example.com/begin"}),
        ),
        // tasks
        (
            "CreateRecordTask",
            json!({"DomainName": "push.parity.test", "AppName": "live", "StreamName": "cam", "StartTime": now + 3600, "EndTime": now + 7200}),
        ),
    ];
    for (outcome, (action, _)) in python_batch(&server, &writes).iter().zip(&writes) {
        assert!(outcome.code().is_none(), "{action}: {}", outcome.0);
        assert!(is_uuid(outcome.request_id()), "{action}: {}", outcome.0);
    }
    let template = server.api("DescribeLiveRecordTemplates", json!({})).ok()["Templates"][0]
        ["TemplateId"]
        .clone();
    python_batch(
        &server,
        &[("CreateLiveRecordRule", json!({"DomainName": "push.parity.test", "AppName": "live", "StreamName": "cam", "TemplateId": template}))],
    )[0]
    .ok();

    let reads: Vec<(&str, Value)> = vec![
        (
            "DescribeLiveDomain",
            json!({"DomainName": "play.parity.test"}),
        ),
        ("DescribeLiveDomains", json!({})),
        (
            "DescribeLivePushAuthKey",
            json!({"DomainName": "push.parity.test"}),
        ),
        (
            "DescribeLivePlayAuthKey",
            json!({"DomainName": "play.parity.test"}),
        ),
        (
            "DescribeLiveDomainReferer",
            json!({"DomainName": "play.parity.test"}),
        ),
        ("DescribeLiveForbidStreamList", json!({})),
        ("DescribeLiveStreamOnlineList", json!({})),
        ("DescribeLiveCerts", json!({})),
        ("DescribeLiveTranscodeTemplates", json!({})),
        ("DescribeLiveWatermarks", json!({})),
        ("DescribeLiveRecordTemplates", json!({})),
        ("DescribeLiveRecordRules", json!({})),
        ("DescribeLiveSnapshotTemplates", json!({})),
        ("DescribeLiveCallbackTemplates", json!({})),
        (
            "DescribeRecordTask",
            json!({"StartTime": now, "EndTime": now + 86_400}),
        ),
    ];
    let through_sdk = python_batch(&server, &reads);
    for (sdk, (action, params)) in through_sdk.iter().zip(&reads) {
        let own = server.api(action, params.clone());
        if sdk.code().is_some() || own.code().is_some() {
            // Not every read is implemented; both must then say the same.
            assert_eq!(sdk.code(), own.code(), "{action}: {} vs {}", sdk.0, own.0);
            continue;
        }
        // The typed models leave out nulls; so does the server.
        assert_eq!(
            sdk.ok(),
            own.ok(),
            "{action}: the SDK and the raw answer differ"
        );
    }
}
