//! Running livestack: the generated root key, the offline key commands,
//! configuration sources, file modes, restarts and crashes.

use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use crate::harness::*;

fn banner_value(server: &Server, name: &str) -> Option<String> {
    server
        .banner
        .iter()
        .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_owned()))
}

#[test]
fn without_configured_credentials_a_root_key_is_generated_printed_once_and_kept() {
    let mut server = Server::start_with(ServerOptions {
        generate_key: true,
        ..ServerOptions::default()
    });
    server.secret_id = banner_value(&server, "SecretId:").expect("key id printed");
    server.secret_key = banner_value(&server, "SecretKey:").expect("secret printed");
    assert!(server.secret_id.starts_with("AKID") && server.secret_id.len() == 36);
    python1(&server.call("DescribeLiveDomains", json!({}))).ok();

    let log = server.log();
    assert!(
        !log.contains(&server.secret_key),
        "the secret never reaches the log"
    );

    let server = server.restart();
    assert_eq!(
        banner_value(&server, "SecretKey:"),
        None,
        "printed only once"
    );
    python1(&server.call("DescribeLiveDomains", json!({}))).ok();
}

#[test]
fn the_data_directory_and_database_are_private_to_their_owner() {
    let server = Server::start();
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&server.data_dir), 0o700);
    // On PostgreSQL there is no database file; the directory still holds
    // pictures and recordings, so it is private all the same.
    if server.database_url.is_none() {
        assert_eq!(mode(&server.data_dir.join("livestack.db")), 0o600);
    }
}

#[test]
fn keys_can_be_created_listed_disabled_and_enabled_while_the_server_runs() {
    let server = Server::start();
    let out = server.cli(&["keys", "create"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let get = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .expect("field")
    };
    let (id, key) = (get("SecretId:"), get("SecretKey:"));
    let spec = with(
        server.call("DescribeLiveDomains", json!({})),
        json!({"secret_id": id, "secret_key": key}),
    );
    python1(&spec).ok();

    let list = server.cli(&["keys", "list"]);
    let listing = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(
        listing.contains(&id) && listing.contains(&server.secret_id),
        "{listing}"
    );
    assert!(
        !listing.contains(&key) && !listing.contains(&server.secret_key),
        "no secrets listed"
    );

    // The server trusts a key it has read for up to a second
    // (`KEY_CACHE_TTL`), so the change shows within that.
    assert!(server.cli(&["keys", "disable", &id]).status.success());
    assert!(
        wait_until(std::time::Duration::from_secs(5), || {
            python1(&spec).code() == Some("AuthFailure.SecretIdNotFound")
        }),
        "a disabled key kept working"
    );
    assert!(server.cli(&["keys", "enable", &id]).status.success());
    assert!(
        wait_until(std::time::Duration::from_secs(5), || python1(&spec)
            .code()
            .is_none()),
        "an enabled key stayed refused"
    );

    let missing = server.cli(&["keys", "disable", "AKIDnosuchkey0000"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no key with SecretId"));
}

#[test]
fn keys_survive_a_graceful_restart_and_a_kill_9() {
    let server = Server::start_binary();
    let out = server.cli(&["keys", "create"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let get = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .expect("field")
    };
    let spec_for = |s: &Server| {
        with(
            s.call("DescribeLiveDomains", json!({})),
            json!({"secret_id": get("SecretId:"), "secret_key": get("SecretKey:")}),
        )
    };
    let server = server.restart();
    python1(&spec_for(&server)).ok();
    let server = server.crash_and_restart();
    python1(&spec_for(&server)).ok();
}

#[test]
fn settings_come_from_the_config_file_environment_and_flags_in_that_order() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("livestack.toml");
    std::fs::write(
        &config,
        "[api]\nrate_limit = 1\nregions = [\"ap-guangzhou\"]\n",
    )
    .expect("write");
    let server = Server::start_with(ServerOptions {
        args: vec!["--config".into(), config.display().to_string()],
        ..ServerOptions::default()
    });
    // regions from the file
    let spec = with(
        server.call("DescribeLiveDomains", json!({})),
        json!({"region": "ap-singapore"}),
    );
    python1(&spec).expect_code("UnsupportedRegion");
    // rate_limit = 1 from the file
    let spec = with(
        server.call("DescribeLiveDomains", json!({})),
        json!({"repeat": 6}),
    );
    assert!(python(&spec)
        .iter()
        .any(|o| o.code() == Some("RequestLimitExceeded")));
    drop(server);

    // The environment overrides the file, and a flag overrides both.
    let server = Server::start_with(ServerOptions {
        args: vec![
            "--config".into(),
            config.display().to_string(),
            "--api-rate-limit".into(),
            "1000".into(),
        ],
        env: vec![("LIVESTACK_API_RATE_LIMIT".into(), "1".into())],
        ..ServerOptions::default()
    });
    let spec = with(
        server.call("DescribeLiveDomains", json!({})),
        json!({"repeat": 6}),
    );
    assert!(python(&spec).iter().all(|o| o.code().is_none()));
}

#[test]
fn a_bad_config_file_stops_start_up_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[api]\nlisten_on = \"x\"\n").expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_livestack"))
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid config file") && err.contains("listen_on"),
        "{err}"
    );
}

#[test]
fn a_malformed_configured_secret_id_stops_start_up() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_livestack"))
        .args(["serve", "--api-listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("LIVESTACK_SECRET_ID", "test")
        .env("LIVESTACK_SECRET_KEY", "test")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("AKID"));
}
