//! The web console in a real browser (Debian's Chromium through
//! Playwright): sign in with the root key, add a play domain, see a
//! pushed stream appear and its preview play, forbid it and see it go.
//! Screenshots are kept as test artifacts (`target/test-artifacts/`).

use std::time::Duration;

use serde_json::json;

use crate::harness::*;
use crate::media::{add, state, Publisher};

#[test]
fn the_console_signs_in_adds_a_domain_previews_a_live_stream_and_forbids_it() {
    assert!(
        livestack_api::console::built(),
        "the console is not built into this binary: run `npm ci && npm run build` in console/ (scripts/test does)"
    );
    let server = Server::start();
    add(&server, "push.example.com", 0);
    server
        .api(
            "ModifyLivePushAuthKey",
            json!({"DomainName": "push.example.com", "Enable": 0}),
        )
        .ok();
    let _publisher = Publisher::start(
        &format!(
            "rtmp://{}/live/console-cam?domain=push.example.com",
            server.rtmp
        ),
        90,
    );
    assert!(
        wait_until(Duration::from_secs(20), || state(&server, "console-cam")
            == "active"),
        "the stream never went live"
    );
    let shots = artifact("console");
    std::fs::create_dir_all(&shots).expect("shots dir");
    let page = format!("http://{}/console/", server.addr);
    let seen = browser(
        "browser_console.js",
        &[
            page.as_ref(),
            server.secret_id.as_ref(),
            server.secret_key.as_ref(),
            "console-cam".as_ref(),
            shots.as_os_str(),
        ],
    );
    assert_eq!(seen["domainAdded"], true);
    assert_eq!(
        (seen["videoWidth"].as_u64(), seen["videoHeight"].as_u64()),
        (Some(640), Some(360)),
        "{seen}"
    );
    assert!(
        seen["advanced"].as_f64().is_some_and(|a| a > 1.0),
        "the preview did not play on: {seen}"
    );
    assert_eq!(
        seen["stored"],
        json!({"session": 0, "local": 0}),
        "the key was kept"
    );
    // What the console did, as the API sees it.
    let domains = server.api("DescribeLiveDomains", json!({"DomainType": 1}));
    assert_eq!(domains.ok()["DomainList"][0]["Name"], "play.example.com");
    assert_eq!(state(&server, "console-cam"), "forbid");
    if let Some(docs) = std::env::var_os("LIVESTACK_CONSOLE_SCREENSHOT") {
        std::fs::copy(shots.join("console-streams.png"), docs).expect("copy the screenshot");
    }
}

#[test]
fn a_read_only_sub_account_sees_the_streams_in_the_console_and_is_refused_a_change() {
    let server = Server::start();
    add(&server, "push.example.com", 0);
    server
        .api(
            "ModifyLivePushAuthKey",
            json!({"DomainName": "push.example.com", "Enable": 0}),
        )
        .ok();
    let user = crate::access::add_user(&server, "viewer");
    let list = server.cam("ListPolicies", json!({"Scope": "QCS", "Rp": 200}));
    let read_only = list.ok()["List"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["PolicyName"] == "QcloudLIVEReadOnlyAccess")
        .and_then(|p| p["PolicyId"].as_u64())
        .expect("the read-only preset");
    crate::access::attach(&server, &user, read_only);
    let _publisher = Publisher::start(
        &format!(
            "rtmp://{}/live/watched?domain=push.example.com",
            server.rtmp
        ),
        60,
    );
    assert!(
        wait_until(Duration::from_secs(20), || state(&server, "watched")
            == "active"),
        "the stream never went live"
    );
    let shots = artifact("console");
    std::fs::create_dir_all(&shots).expect("shots dir");
    let page = format!("http://{}/console/", server.addr);
    let seen = browser(
        "browser_console.js",
        &[
            page.as_ref(),
            user.secret_id.as_ref(),
            user.secret_key.as_ref(),
            "watched".as_ref(),
            shots.as_os_str(),
            "readonly".as_ref(),
        ],
    );
    assert_eq!(seen["listed"], true, "{seen}");
    let refusal = seen["refusal"].as_str().unwrap_or("");
    assert!(
        refusal.contains("AuthFailure.UnauthorizedOperation")
            && refusal.contains("live:AddLiveDomain"),
        "{refusal}"
    );
    // Nothing was added.
    let domains = server.api("DescribeLiveDomains", json!({}));
    assert_eq!(domains.ok()["AllCount"], 1);
}
