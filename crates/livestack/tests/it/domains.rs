//! Domains, their signing keys and referer rules, through the official
//! clients; the `livestack url` command; tenancy; durability.

use livestack_core::urlsign;
use serde_json::{json, Value};

use crate::harness::*;

fn add(server: &Server, name: &str, domain_type: u64) {
    server
        .api(
            "AddLiveDomain",
            json!({"DomainName": name, "DomainType": domain_type}),
        )
        .ok();
}

#[test]
fn domains_can_be_added_described_listed_and_deleted() {
    let server = Server::start();
    add(&server, "push.example.com", 0);
    server
        .api("AddLiveDomain", json!({"DomainName": "Play.Example.com", "DomainType": 1, "PlayType": 2, "IsDelayLive": 1}))
        .ok();

    let info = server.api(
        "DescribeLiveDomain",
        json!({"DomainName": "play.example.com"}),
    );
    let d = &info.ok()["DomainInfo"];
    assert_eq!(
        d["Name"], "play.example.com",
        "names are stored in lower case"
    );
    assert_eq!(
        (
            d["Type"].clone(),
            d["Status"].clone(),
            d["PlayType"].clone()
        ),
        (json!(1), json!(1), json!(2))
    );
    assert_eq!(
        (d["IsDelayLive"].clone(), d["IsMiniProgramLive"].clone()),
        (json!(1), json!(0))
    );
    let created = d["CreateTime"].as_str().unwrap_or("");
    assert_eq!(
        created.len(),
        19,
        "Beijing time yyyy-mm-dd HH:MM:SS: {created}"
    );

    let all = server.api("DescribeLiveDomains", json!({}));
    let all = all.ok();
    assert_eq!(all["AllCount"], 2);
    assert_eq!(all["CreateLimitCount"], 98);
    assert_eq!(all["PlayTypeCount"], json!([0, 1, 0]));
    let names: Vec<&str> = all["DomainList"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|d| d["Name"].as_str())
        .collect();
    assert_eq!(names, ["play.example.com", "push.example.com"]);

    let push_only = server.api("DescribeLiveDomains", json!({"DomainType": 0}));
    assert_eq!(push_only.ok()["AllCount"], 1);
    let prefixed = server.api("DescribeLiveDomains", json!({"DomainPrefix": "pla"}));
    assert_eq!(prefixed.ok()["DomainList"][0]["Name"], "play.example.com");
    let page2 = server.api("DescribeLiveDomains", json!({"PageSize": 10, "PageNum": 2}));
    assert_eq!(page2.ok()["AllCount"], 2);
    assert_eq!(page2.ok()["DomainList"], json!([]));

    // Deleting needs the right type.
    server
        .api(
            "DeleteLiveDomain",
            json!({"DomainName": "push.example.com", "DomainType": 1}),
        )
        .expect_code("InternalError.PlayDomainNoRecord");
    server
        .api(
            "DeleteLiveDomain",
            json!({"DomainName": "push.example.com", "DomainType": 0}),
        )
        .ok();
    server
        .api(
            "DescribeLiveDomain",
            json!({"DomainName": "push.example.com"}),
        )
        .expect_code("ResourceNotFound.DomainNotExist");
    server
        .api(
            "DeleteLiveDomain",
            json!({"DomainName": "push.example.com", "DomainType": 0}),
        )
        .expect_code("InternalError.PushDomainNoRecord");
}

#[test]
fn domain_names_and_enumerations_are_validated() {
    let server = Server::start();
    for (name, code) in [
        ("localhost", "InvalidParameter.DomainFormatError"),
        ("bad_name.example.com", "InvalidParameter.DomainFormatError"),
        ("10.0.0.1", "InvalidParameter.DomainFormatError"),
        ("直播.example.com", "InternalError.ChineseCharacterDetected"),
    ] {
        server
            .api(
                "AddLiveDomain",
                json!({"DomainName": name, "DomainType": 0}),
            )
            .expect_code(code);
    }
    let long = format!("{}example.com", "abcdefghi.".repeat(26));
    server
        .api(
            "AddLiveDomain",
            json!({"DomainName": long, "DomainType": 0}),
        )
        .expect_code("InvalidParameter.DomainTooLong");
    for params in [
        json!({"DomainName": "a.example.com", "DomainType": 2}),
        json!({"DomainName": "a.example.com", "DomainType": 1, "PlayType": 4}),
        json!({"DomainName": "a.example.com", "DomainType": 1, "IsDelayLive": 2}),
        json!({"DomainName": "a.example.com", "DomainType": 0, "VerifyOwnerType": "mailCheck"}),
    ] {
        server
            .api("AddLiveDomain", params)
            .expect_code("InvalidParameterValue");
    }
    server
        .api(
            "AddLiveDomain",
            json!({"DomainName": "a.example.com", "DomainType": 0, "VerifyOwnerType": "dnsCheck"}),
        )
        .ok();
    server
        .api(
            "AddLiveDomain",
            json!({"DomainName": "A.example.com", "DomainType": 1}),
        )
        .expect_code("FailedOperation.DomainAdded");
}

#[test]
fn an_account_holds_at_most_one_hundred_domains() {
    let server = Server::start_with_args(&["--api-rate-limit", "100000"]);
    let calls: Vec<Value> = (0..101)
        .map(|i| json!({"action": "AddLiveDomain", "params": {"DomainName": format!("d{i}.example.com"), "DomainType": i % 2}}))
        .collect();
    let outcomes = python(&with(
        server.call("AddLiveDomain", json!({})),
        json!({"calls": calls}),
    ));
    assert!(
        outcomes[..100].iter().all(|o| o.code().is_none()),
        "{:?}",
        &outcomes[..3]
    );
    outcomes[100].expect_code("FailedOperation.HostOutLimit");
    assert_eq!(
        server.api("DescribeLiveDomains", json!({})).ok()["CreateLimitCount"],
        0
    );
}

#[test]
fn dry_run_adds_nothing() {
    let server = Server::start();
    let spec = with(
        server.call(
            "AddLiveDomain",
            json!({"DomainName": "dry.example.com", "DomainType": 0, "DryRun": true}),
        ),
        json!({"raw": true}),
    );
    python1(&spec).expect_code("DryRunOperation");
    assert_eq!(
        server.api("DescribeLiveDomains", json!({})).ok()["AllCount"],
        0
    );
    let spec = with(
        server.call(
            "DeleteLiveDomain",
            json!({"DomainName": "dry.example.com", "DomainType": 0, "DryRun": true}),
        ),
        json!({"raw": true}),
    );
    python1(&spec).expect_code("InternalError.PushDomainNoRecord");
}

#[test]
fn forbidding_and_enabling_a_domain_changes_its_status() {
    let server = Server::start();
    add(&server, "push.example.com", 0);
    server
        .api(
            "ForbidLiveDomain",
            json!({"DomainName": "push.example.com"}),
        )
        .ok();
    let status = |s: &Server| {
        s.api(
            "DescribeLiveDomain",
            json!({"DomainName": "push.example.com"}),
        )
        .ok()["DomainInfo"]["Status"]
            .clone()
    };
    assert_eq!(status(&server), 0);
    assert_eq!(
        server
            .api("DescribeLiveDomains", json!({"DomainStatus": 0}))
            .ok()["AllCount"],
        1
    );
    server
        .api(
            "EnableLiveDomain",
            json!({"DomainName": "push.example.com"}),
        )
        .ok();
    assert_eq!(status(&server), 1);
    server
        .api(
            "EnableLiveDomain",
            json!({"DomainName": "nope.example.com"}),
        )
        .expect_code("ResourceNotFound");
    server
        .api(
            "ForbidLiveDomain",
            json!({"DomainName": "nope.example.com"}),
        )
        .expect_code("ResourceNotFound");
}

#[test]
fn the_play_area_of_play_domains_can_be_changed() {
    let server = Server::start();
    add(&server, "play.example.com", 1);
    add(&server, "push.example.com", 0);
    server
        .api(
            "ModifyLivePlayDomain",
            json!({"DomainName": "play.example.com", "PlayType": 3}),
        )
        .ok();
    let d = server.api(
        "DescribeLiveDomain",
        json!({"DomainName": "play.example.com"}),
    );
    assert_eq!(d.ok()["DomainInfo"]["PlayType"], 3);
    server
        .api(
            "ModifyLivePlayDomain",
            json!({"DomainName": "push.example.com", "PlayType": 2}),
        )
        .expect_code("InternalError.PlayDomainNoRecord");
    server
        .api(
            "ModifyLivePlayDomain",
            json!({"DomainName": "play.example.com", "PlayType": 9}),
        )
        .expect_code("InvalidParameterValue");
}

#[test]
fn referer_rules_of_play_domains_round_trip() {
    let server = Server::start();
    add(&server, "play.example.com", 1);
    add(&server, "push.example.com", 0);
    let get = |s: &Server| {
        s.api(
            "DescribeLiveDomainReferer",
            json!({"DomainName": "play.example.com"}),
        )
        .ok()["RefererAuthConfig"]
            .clone()
    };
    assert_eq!(
        get(&server),
        json!({"DomainName": "play.example.com", "Enable": 0, "Type": 0, "AllowEmpty": 1, "Rules": ""})
    );
    server
        .api(
            "ModifyLiveDomainReferer",
            json!({"DomainName": "play.example.com", "Enable": 1, "Type": 1, "AllowEmpty": 0, "Rules": "a.com;*.b.com"}),
        )
        .ok();
    assert_eq!(
        get(&server),
        json!({"DomainName": "play.example.com", "Enable": 1, "Type": 1, "AllowEmpty": 0, "Rules": "a.com;*.b.com"})
    );
    server
        .api(
            "DescribeLiveDomainReferer",
            json!({"DomainName": "push.example.com"}),
        )
        .expect_code("InternalError.PlayDomainNoRecord");
    server
        .api(
            "ModifyLiveDomainReferer",
            json!({"DomainName": "play.example.com", "Enable": 1, "Type": 3, "AllowEmpty": 0, "Rules": ""}),
        )
        .expect_code("InvalidParameterValue");
}

#[test]
fn push_keys_start_enabled_with_a_generated_key_and_change_field_by_field() {
    let server = Server::start();
    add(&server, "push.example.com", 0);
    add(&server, "play.example.com", 1);
    let get = |s: &Server| {
        s.api(
            "DescribeLivePushAuthKey",
            json!({"DomainName": "push.example.com"}),
        )
        .ok()["PushAuthKeyInfo"]
            .clone()
    };
    let info = get(&server);
    assert_eq!(info["Enable"], 1);
    let master = info["MasterAuthKey"].as_str().unwrap_or("").to_owned();
    assert_eq!(master.len(), 32, "{info}");
    assert_eq!(info["BackupAuthKey"], "");

    server
        .api("ModifyLivePushAuthKey", json!({"DomainName": "push.example.com", "BackupAuthKey": "backup-1", "AuthDelta": 300}))
        .ok();
    let info = get(&server);
    assert_eq!(
        info["MasterAuthKey"],
        master.as_str(),
        "absent fields keep their values"
    );
    assert_eq!(
        (info["BackupAuthKey"].clone(), info["AuthDelta"].clone()),
        (json!("backup-1"), json!(300))
    );
    server
        .api(
            "ModifyLivePushAuthKey",
            json!({"DomainName": "push.example.com", "Enable": 0}),
        )
        .ok();
    assert_eq!(get(&server)["Enable"], 0);

    server
        .api(
            "DescribeLivePushAuthKey",
            json!({"DomainName": "play.example.com"}),
        )
        .expect_code("InternalError.PushDomainNoRecord");
    server
        .api(
            "ModifyLivePushAuthKey",
            json!({"DomainName": "nope.example.com", "Enable": 1}),
        )
        .expect_code("InternalError.PushDomainNoRecord");
    server
        .api(
            "ModifyLivePushAuthKey",
            json!({"DomainName": "push.example.com", "Enable": 5}),
        )
        .expect_code("InvalidParameterValue");
}

#[test]
fn play_keys_start_disabled_and_need_a_key_to_enable() {
    let server = Server::start();
    add(&server, "play.example.com", 1);
    let get = |s: &Server| {
        s.api(
            "DescribeLivePlayAuthKey",
            json!({"DomainName": "play.example.com"}),
        )
        .ok()["PlayAuthKeyInfo"]
            .clone()
    };
    assert_eq!(
        get(&server),
        json!({"DomainName": "play.example.com", "Enable": 0, "AuthKey": "", "AuthDelta": 0, "AuthBackKey": ""})
    );
    server
        .api(
            "ModifyLivePlayAuthKey",
            json!({"DomainName": "play.example.com", "Enable": 1}),
        )
        .expect_code("InvalidParameterValue");
    server
        .api("ModifyLivePlayAuthKey", json!({"DomainName": "play.example.com", "Enable": 1, "AuthKey": "k1", "AuthBackKey": "k2", "AuthDelta": 60}))
        .ok();
    assert_eq!(
        get(&server),
        json!({"DomainName": "play.example.com", "Enable": 1, "AuthKey": "k1", "AuthDelta": 60, "AuthBackKey": "k2"})
    );
    server
        .api(
            "DescribeLivePlayAuthKey",
            json!({"DomainName": "nope.example.com"}),
        )
        .expect_code("InternalError.PlayDomainNoRecord");
}

fn url(server: &Server, args: &[&str]) -> (bool, String, String) {
    let out = server.cli(&[&["url"], args].concat());
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn query_param<'a>(url: &'a str, name: &str) -> Option<&'a str> {
    url.split_once('?')?
        .1
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

#[test]
fn the_url_command_signs_urls_with_the_domains_current_key() {
    let server = Server::start();
    add(&server, "push.example.com", 0);
    add(&server, "play.example.com", 1);
    let key = server
        .api(
            "DescribeLivePushAuthKey",
            json!({"DomainName": "push.example.com"}),
        )
        .ok()["PushAuthKeyInfo"]["MasterAuthKey"]
        .as_str()
        .unwrap_or("")
        .to_owned();

    let (ok, out, err) = url(
        &server,
        &[
            "push",
            "--domain",
            "push.example.com",
            "--stream",
            "cam1",
            "--expires",
            "1h",
        ],
    );
    assert!(ok, "{err}");
    let line = out.trim();
    assert!(
        line.starts_with("rtmp://push.example.com/live/cam1?txSecret="),
        "{line}"
    );
    let (secret, time) = (
        query_param(line, "txSecret").expect("secret"),
        query_param(line, "txTime").expect("time"),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let expiry = i64::from_str_radix(time, 16).expect("hex txTime");
    assert!(
        (expiry - now - 3600).abs() < 60,
        "expires in an hour: {expiry} vs {now}"
    );
    assert_eq!(
        urlsign::verify(&[&key], 0, "cam1", Some(secret), Some(time), now),
        Ok(())
    );
    assert_eq!(
        urlsign::verify(&[&key], 0, "cam2", Some(secret), Some(time), now),
        Err(urlsign::Refusal::BadSecret),
        "the stream name is signed"
    );

    // SRT and RTMPS push URLs carry the same signature, SRT's in its
    // streamid (Tencent's form).
    let push_as = |format: &str| {
        url(
            &server,
            &[
                "push",
                "--domain",
                "push.example.com",
                "--stream",
                "cam1",
                "--format",
                format,
            ],
        )
    };
    let (ok, out, err) = push_as("srt");
    assert!(ok, "{err}");
    let srt = out.trim();
    let (head, signature) = srt.split_once(",txSecret=").expect("signed");
    assert_eq!(
        head,
        "srt://push.example.com:9000?streamid=#!::h=push.example.com,r=live/cam1"
    );
    let (secret, time) = signature.split_once(",txTime=").expect("txTime");
    assert_eq!(
        urlsign::verify(&[&key], 0, "cam1", Some(secret), Some(time), now),
        Ok(())
    );
    let (ok, out, _) = push_as("rtmps");
    assert!(
        ok && out.starts_with("rtmps://push.example.com:1936/live/cam1?txSecret="),
        "{out}"
    );
    let (ok, out, _) = url(
        &server,
        &[
            "play",
            "--domain",
            "play.example.com",
            "--stream",
            "cam1",
            "--format",
            "llhls",
        ],
    );
    assert!(ok, "{out}");
    assert_eq!(
        out.trim(),
        "http://play.example.com:8080/live/cam1.m3u8?ll=1"
    );
    let (ok, _, err) = url(
        &server,
        &[
            "play",
            "--domain",
            "play.example.com",
            "--stream",
            "cam1",
            "--format",
            "srt",
        ],
    );
    assert!(!ok && err.contains("for pushing"), "{err}");
    let (ok, _, err) = push_as("flv");
    assert!(!ok && err.contains("for players"), "{err}");

    // Play URLs: unsigned while play authentication is off, signed after.
    let (ok, out, err) = url(
        &server,
        &[
            "play",
            "--domain",
            "play.example.com",
            "--app",
            "show",
            "--stream",
            "cam1",
        ],
    );
    assert!(ok && err.contains("not signed"), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "rtmp://play.example.com/show/cam1",
            "http://play.example.com:8080/show/cam1.flv",
            "http://play.example.com:8080/show/cam1.m3u8"
        ]
    );
    server
        .api(
            "ModifyLivePlayAuthKey",
            json!({"DomainName": "play.example.com", "Enable": 1, "AuthKey": "playkey"}),
        )
        .ok();
    let (_, out, _) = url(
        &server,
        &[
            "play",
            "--domain",
            "play.example.com",
            "--stream",
            "cam1_hd",
        ],
    );
    for line in out.lines() {
        let (secret, time) = (
            query_param(line, "txSecret").expect("secret"),
            query_param(line, "txTime").expect("time"),
        );
        assert_eq!(
            urlsign::verify(&["playkey"], 0, "cam1_hd", Some(secret), Some(time), now),
            Ok(()),
            "{line}"
        );
    }

    let (ok, _, err) = url(
        &server,
        &["push", "--domain", "play.example.com", "--stream", "s"],
    );
    assert!(!ok && err.contains("play domain"), "{err}");
    let (ok, _, err) = url(
        &server,
        &["push", "--domain", "nope.example.com", "--stream", "s"],
    );
    assert!(!ok && err.contains("no domain"), "{err}");
}

#[test]
fn one_account_can_neither_see_nor_change_another_accounts_domains() {
    let server = Server::start();
    add(&server, "push.example.com", 0);
    add(&server, "play.example.com", 1);
    let (id, key) = server.account_key("tenant-b");
    let as_b = |action: &str, params: Value| {
        python1(&with(
            server.call(action, params),
            json!({"secret_id": id, "secret_key": key}),
        ))
    };

    assert_eq!(as_b("DescribeLiveDomains", json!({})).ok()["AllCount"], 0);
    as_b(
        "DescribeLiveDomain",
        json!({"DomainName": "push.example.com"}),
    )
    .expect_code("ResourceNotFound.DomainNotExist");
    as_b(
        "AddLiveDomain",
        json!({"DomainName": "push.example.com", "DomainType": 0}),
    )
    .expect_code("InvalidParameter.DomainAlreadyExist");
    as_b(
        "DeleteLiveDomain",
        json!({"DomainName": "push.example.com", "DomainType": 0}),
    )
    .expect_code("InternalError.PushDomainNoRecord");
    as_b(
        "ForbidLiveDomain",
        json!({"DomainName": "push.example.com"}),
    )
    .expect_code("ResourceNotFound");
    as_b(
        "EnableLiveDomain",
        json!({"DomainName": "push.example.com"}),
    )
    .expect_code("ResourceNotFound");
    as_b(
        "ModifyLivePlayDomain",
        json!({"DomainName": "play.example.com", "PlayType": 2}),
    )
    .expect_code("InternalError.PlayDomainNoRecord");
    as_b(
        "DescribeLiveDomainReferer",
        json!({"DomainName": "play.example.com"}),
    )
    .expect_code("InternalError.PlayDomainNoRecord");
    as_b(
        "ModifyLiveDomainReferer",
        json!({"DomainName": "play.example.com", "Enable": 1, "Type": 1, "AllowEmpty": 0, "Rules": ""}),
    )
    .expect_code("InternalError.PlayDomainNoRecord");
    as_b(
        "DescribeLivePushAuthKey",
        json!({"DomainName": "push.example.com"}),
    )
    .expect_code("InternalError.PushDomainNoRecord");
    as_b(
        "ModifyLivePushAuthKey",
        json!({"DomainName": "push.example.com", "Enable": 0}),
    )
    .expect_code("InternalError.PushDomainNoRecord");
    as_b(
        "DescribeLivePlayAuthKey",
        json!({"DomainName": "play.example.com"}),
    )
    .expect_code("InternalError.PlayDomainNoRecord");
    as_b(
        "ModifyLivePlayAuthKey",
        json!({"DomainName": "play.example.com", "Enable": 0}),
    )
    .expect_code("InternalError.PlayDomainNoRecord");

    // Nothing of the first account changed.
    let d = server.api(
        "DescribeLiveDomain",
        json!({"DomainName": "push.example.com"}),
    );
    assert_eq!(d.ok()["DomainInfo"]["Status"], 1);
    assert_eq!(
        server
            .api(
                "DescribeLivePushAuthKey",
                json!({"DomainName": "push.example.com"})
            )
            .ok()["PushAuthKeyInfo"]["Enable"],
        1
    );
    assert_eq!(
        server.api("DescribeLiveDomains", json!({})).ok()["AllCount"],
        2
    );
}

#[test]
fn domains_and_keys_survive_a_restart_and_a_kill_9() {
    let server = Server::start_binary();
    add(&server, "push.example.com", 0);
    server
        .api(
            "ModifyLivePushAuthKey",
            json!({"DomainName": "push.example.com", "MasterAuthKey": "kept", "AuthDelta": 30}),
        )
        .ok();
    let check = |s: &Server| {
        let info = s.api(
            "DescribeLivePushAuthKey",
            json!({"DomainName": "push.example.com"}),
        );
        assert_eq!(info.ok()["PushAuthKeyInfo"]["MasterAuthKey"], "kept");
        assert_eq!(info.ok()["PushAuthKeyInfo"]["AuthDelta"], 30);
    };
    let server = server.restart();
    check(&server);
    let server = server.crash_and_restart();
    check(&server);
}

#[test]
fn tccli_adds_and_describes_domains() {
    let server = Server::start();
    let out = tccli(
        &server,
        &server.secret_id,
        &server.secret_key,
        &[
            "AddLiveDomain",
            "--DomainName",
            "cli.example.com",
            "--DomainType",
            "1",
        ],
    );
    assert_eq!(out.code, 0, "{out:?}");
    let out = tccli(
        &server,
        &server.secret_id,
        &server.secret_key,
        &["DescribeLiveDomain", "--DomainName", "cli.example.com"],
    );
    assert_eq!(out.code, 0, "{out:?}");
    let resp: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(resp["DomainInfo"]["Type"], 1);
    let out = tccli(
        &server,
        &server.secret_id,
        &server.secret_key,
        &[
            "AddLiveDomain",
            "--DomainName",
            "cli.example.com",
            "--DomainType",
            "1",
        ],
    );
    assert_eq!(out.code, 255);
    assert!(
        out.stderr.contains("code:FailedOperation.DomainAdded"),
        "{}",
        out.stderr
    );
}
