//! The media plane's policy never goes back in time: after any mix of
//! concurrent writes, what is in force is what the store holds.

use serde_json::json;

use crate::harness::*;

#[test]
fn concurrent_writers_leave_the_policy_in_force_equal_to_the_store() {
    let server = Server::start_with_args(&["--api-rate-limit", "100000"]);
    server
        .api(
            "AddLiveDomain",
            json!({"DomainName": "push.race.test", "DomainType": 0}),
        )
        .ok();
    server
        .api(
            "AddLiveDomain",
            json!({"DomainName": "play.race.test", "DomainType": 1}),
        )
        .ok();
    let template = server
        .api(
            "CreateLiveRecordTemplate",
            json!({"TemplateName": "race", "FlvParam": {"Enable": 1}}),
        )
        .ok()["TemplateId"]
        .clone();
    // Many short bursts: each ends in a race between the refreshes of
    // the last writes, which is where an older snapshot could win.
    for round in 0..200 {
        let start = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            for writer in 0..8 {
                let server = &server;
                let template = template.clone();
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    for i in 0..2 {
                        let n = round * 100 + writer * 10 + i;
                        let outcome = match (writer + i) % 5 {
                            // A new domain every fourth round keeps under the quota.
                            0 if writer == 0 && i == 0 && round % 4 == 0 => server.api(
                                "AddLiveDomain",
                                json!({"DomainName": format!("d{round}.race.test"), "DomainType": round % 2}),
                            ),
                            0 => server.api(
                                if n % 2 == 0 { "ForbidLiveDomain" } else { "EnableLiveDomain" },
                                json!({"DomainName": "play.race.test"}),
                            ),
                            1 => server.api(
                                "ModifyLivePushAuthKey",
                                json!({"DomainName": "push.race.test", "Enable": 1, "MasterAuthKey": format!("key{n}")}),
                            ),
                            2 => server.api(
                                "ForbidLiveStream",
                                json!({"DomainName": "push.race.test", "AppName": "live", "StreamName": format!("s{n}")}),
                            ),
                            3 => server.api(
                                "CreateLiveRecordRule",
                                json!({"DomainName": "push.race.test", "AppName": "live", "StreamName": format!("r{n}"), "TemplateId": template}),
                            ),
                            _ => server.api(
                                "DeleteLiveRecordRule",
                                json!({"DomainName": "push.race.test", "AppName": "live", "StreamName": format!("r{}", n - 1)}),
                            ),
                        };
                        // A rule deleted before it was made is fine;
                        // every other write must succeed.
                        let deleting = (writer + i) % 5 == 4;
                        match outcome.code() {
                            None => {}
                            Some("InternalError.RuleNotFound") if deleting => {}
                            Some(_) => panic!("{}", outcome.0),
                        }
                    }
                });
            }
        });
        assert!(
            server.policy_in_force() == server.policy_in_store(),
            "round {round}: the policy in force is not what the store holds"
        );
    }
}
