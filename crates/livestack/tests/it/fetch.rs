//! Server-side fetches of user-given URLs never reach this machine or its
//! networks unless the operator allows it (`[fetch] allow`).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use crate::callbacks::{bind_callbacks, push, Receiver};
use crate::harness::*;
use crate::templates::Pictures;

/// A server that allows only a documentation block, so loopback is
/// refused as it is by default in production.
fn guarded_server(dir: &tempfile::TempDir) -> Server {
    let config: PathBuf = dir.path().join("livestack.toml");
    std::fs::write(
        &config,
        "[fetch]\nallow = [\"192.0.2.0/24\"]\n[callbacks]\ntimeout_secs = 2\nretry_interval_secs = 1\n",
    )
    .expect("config");
    Server::start_with(ServerOptions {
        args: vec!["--config".into(), config.display().to_string()],
        ..ServerOptions::default()
    })
}

#[test]
fn watermark_pictures_are_never_fetched_from_internal_addresses_in_any_spelling() {
    let pictures = Pictures::start();
    let dir = tempfile::tempdir().expect("tmp");
    let server = guarded_server(&dir);
    let open = pictures.url("/logo.png");
    let port = open
        .rsplit(':')
        .next()
        .and_then(|p| p.split('/').next())
        .expect("port");
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let urls = [
        open.clone(),
        format!("http://localhost:{port}/logo.png"),
        format!("http://2130706433:{port}/logo.png"),
        format!("http://0x7f000001:{port}/logo.png"),
        format!("http://[::ffff:127.0.0.1]:{port}/logo.png"),
        format!("http://[::1]:{port}/logo.png"),
        format!("http://{}/healthz", server.addr),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        format!("http://127.0.0.1:{closed}/logo.png"),
    ];
    let mut messages = Vec::new();
    for url in &urls {
        let outcome = server.api(
            "AddLiveWatermark",
            json!({"PictureUrl": url, "WatermarkName": "logo"}),
        );
        outcome.expect_code("InternalError.GetWatermarkError");
        messages.push(outcome.message().replace(url.as_str(), "URL"));
    }
    // The answer does not tell an open port from a closed one.
    assert!(messages.windows(2).all(|w| w[0] == w[1]), "{messages:#?}");
    assert_eq!(pictures.hits(), 0, "nothing reached the picture server");
}

#[test]
fn callbacks_to_internal_addresses_are_never_posted() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = guarded_server(&dir);
    server
        .api(
            "AddLiveDomain",
            json!({"DomainName": "push.example.com", "DomainType": 0}),
        )
        .ok();
    let receiver = Receiver::start(&[]);
    bind_callbacks(
        &server,
        "live",
        json!({"StreamBeginNotifyUrl": receiver.url("/begin")}),
    );
    let _publisher = push(&server, "cam", 10);
    assert!(
        wait_until(Duration::from_secs(10), || server
            .log()
            .contains("push started")),
        "the push did not start"
    );
    assert!(
        !wait_until(Duration::from_secs(3), || !receiver.requests().is_empty()),
        "a callback reached a loopback receiver"
    );
}
