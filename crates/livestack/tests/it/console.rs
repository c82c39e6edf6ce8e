//! The web console in a real browser (Debian's Chromium through
//! Playwright): sign in with the root key, add a play domain, see a
//! pushed stream appear and its preview play, forbid it and see it go.
//! Screenshots are kept as test artifacts (`target/test-artifacts/`).

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;
use crate::media::{add, state, Publisher};

/// A server whose push domain takes unsigned pushes, with live/`stream`
/// pushed for `seconds` and live.
fn server_with_live(stream: &str, seconds: u32) -> (Server, Publisher) {
    let server = Server::start();
    add(&server, "push.example.com", 0);
    server
        .api(
            "ModifyLivePushAuthKey",
            json!({"DomainName": "push.example.com", "Enable": 0}),
        )
        .ok();
    let publisher = Publisher::start(
        &format!(
            "rtmp://{}/live/{stream}?domain=push.example.com",
            server.rtmp
        ),
        seconds,
    );
    assert!(
        wait_until(Duration::from_secs(20), || state(&server, stream)
            == "active"),
        "the stream never went live"
    );
    (server, publisher)
}

/// Runs `browser_console.js` on the server's console with the key
/// (`id`, `key`) for `stream`, in `mode` when given; screenshots go to
/// the `console` artifacts.
fn drive(server: &Server, id: &str, key: &str, stream: &str, mode: Option<&str>) -> Value {
    let shots = artifact("console");
    std::fs::create_dir_all(&shots).expect("shots dir");
    let page = format!("http://{}/console/", server.addr);
    let mut args = vec![
        page.as_ref(),
        id.as_ref(),
        key.as_ref(),
        stream.as_ref(),
        shots.as_os_str(),
    ];
    if let Some(mode) = mode {
        args.push(mode.as_ref());
    }
    browser("browser_console.js", &args)
}

#[test]
fn the_console_signs_in_adds_a_domain_previews_a_live_stream_and_forbids_it() {
    assert!(
        livestack_api::console::built(),
        "the console is not built into this binary: run `npm ci && npm run build` in console/ (scripts/test does)"
    );
    let (server, _publisher) = server_with_live("console-cam", 90);
    let seen = drive(
        &server,
        &server.secret_id,
        &server.secret_key,
        "console-cam",
        None,
    );
    assert_eq!(seen["domainAdded"], true);
    // A tab left before it was ready does not take the page back.
    assert_eq!(seen["stayedOnDomains"], true, "{seen}");
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
        std::fs::copy(artifact("console").join("console-streams.png"), docs)
            .expect("copy the screenshot");
    }
}

#[test]
fn a_read_only_sub_account_sees_the_streams_in_the_console_and_is_refused_a_change() {
    let (server, _publisher) = server_with_live("watched", 60);
    let user = crate::access::add_user(&server, "viewer");
    let read_only = crate::access::preset_id(&server, "QcloudLIVEReadOnlyAccess");
    crate::access::attach(&server, &user, read_only);
    let seen = drive(
        &server,
        &user.secret_id,
        &user.secret_key,
        "watched",
        Some("readonly"),
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
