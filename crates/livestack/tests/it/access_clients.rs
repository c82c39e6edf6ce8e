//! Access control through the official clients: the Python SDK's CAM, STS
//! and Live clients, tccli's `cam` and `sts` commands, and the Node SDK,
//! each with its own signing and its own parsing of the denial.

use std::process::Command;

use serde_json::{json, Value};

use crate::harness::*;

fn as_key(server: &Server, (id, key): (&str, &str), service: &str, calls: Value) -> Vec<Outcome> {
    python(&json!({
        "endpoint": server.endpoint(),
        "secret_id": id,
        "secret_key": key,
        "service": service,
        "calls": calls,
    }))
}

#[test]
fn python_sdk_makes_a_sub_user_with_a_policy_and_a_federation_token_and_parses_the_denials() {
    let server = Server::start();
    let root = (server.secret_id.as_str(), server.secret_key.as_str());
    let read_only = json!({"version": "2.0", "statement": [
        {"effect": "allow", "action": ["live:Describe*"], "resource": "*"},
        {"effect": "allow", "action": ["sts:GetFederationToken"], "resource": "*"}
    ]})
    .to_string();
    let out = as_key(
        &server,
        root,
        "cam",
        json!([
            {"action": "AddUser", "params": {"Name": "ci-job", "UseApi": 1}},
            {"action": "CreatePolicy", "params": {"PolicyName": "live-read", "PolicyDocument": read_only}},
        ]),
    );
    let user = out[0].ok().clone();
    let policy = out[1].ok()["PolicyId"].as_u64().expect("PolicyId");
    as_key(
        &server,
        root,
        "cam",
        json!([{"action": "AttachUserPolicy", "params": {"PolicyId": policy, "AttachUin": user["Uin"]}}]),
    )[0]
    .ok();
    let sub = (
        user["SecretId"].as_str().expect("SecretId"),
        user["SecretKey"].as_str().expect("SecretKey"),
    );
    let out = python(&json!({
        "endpoint": server.endpoint(),
        "secret_id": sub.0,
        "secret_key": sub.1,
        "language": "en-US",
        "calls": [
            {"action": "DescribeLiveDomains", "params": {}},
            {"action": "AddLiveDomain", "params": {"DomainName": "push.py.example.com", "DomainType": 0}},
        ],
    }));
    out[0].ok();
    out[1].expect_code("AuthFailure.UnauthorizedOperation");
    assert!(
        out[1].message().starts_with(
            "You are not authorized to perform this operation. Check your CAM policies"
        ),
        "{}",
        out[1].message()
    );
    assert!(
        out[1].message().contains("(live:AddLiveDomain)"),
        "{}",
        out[1].message()
    );
    // A federation token from the sub-user, limited further, through the
    // STS client; then used by the Live client with its token.
    let narrow = json!({"version": "2.0", "statement": [
        {"effect": "allow", "action": ["live:DescribeLiveDomains"], "resource": "*"}
    ]})
    .to_string();
    let token = as_key(
        &server,
        sub,
        "sts",
        json!([
            {"action": "GetFederationToken", "params": {"Name": "build", "Policy": narrow, "DurationSeconds": 900}},
            {"action": "GetCallerIdentity", "params": {}},
        ]),
    );
    assert_eq!(token[1].ok()["Type"], "CAMUser");
    let creds = token[0].ok()["Credentials"].clone();
    let temp = |action: &str| {
        python1(&json!({
            "endpoint": server.endpoint(),
            "secret_id": creds["TmpSecretId"],
            "secret_key": creds["TmpSecretKey"],
            "token": creds["Token"],
            "action": action,
            "params": {},
        }))
    };
    temp("DescribeLiveDomains").ok();
    temp("DescribeLiveStreamOnlineList").expect_code("AuthFailure.UnauthorizedOperation");
}

#[test]
fn tccli_cam_and_sts_commands_manage_a_sub_user_and_issue_a_token() {
    let server = Server::start();
    let (id, key) = (server.secret_id.clone(), server.secret_key.clone());
    let run = |service: &str, args: &[&str]| -> Value {
        let out = tccli_service(&server, service, &id, &key, args);
        assert_eq!(
            out.code, 0,
            "tccli {service} {args:?}: {} {}",
            out.stdout, out.stderr
        );
        serde_json::from_str(&out.stdout).expect("tccli prints JSON")
    };
    let user = run("cam", &["AddUser", "--Name", "deployer", "--UseApi", "1"]);
    assert!(user["SecretId"]
        .as_str()
        .is_some_and(|s| s.starts_with("AKID")));
    let listed = run("cam", &["ListUsers"]);
    assert_eq!(listed["Data"][0]["Name"], "deployer");
    let policies = run("cam", &["ListPolicies", "--Scope", "QCS", "--Rp", "200"]);
    let full = policies["List"]
        .as_array()
        .expect("List")
        .iter()
        .find(|p| p["PolicyName"] == "QcloudLIVEFullAccess")
        .and_then(|p| p["PolicyId"].as_u64())
        .expect("the preset");
    let uin = user["Uin"].as_u64().expect("Uin").to_string();
    run(
        "cam",
        &[
            "AttachUserPolicy",
            "--PolicyId",
            &full.to_string(),
            "--AttachUin",
            &uin,
        ],
    );
    let attached = run("cam", &["ListAttachedUserPolicies", "--TargetUin", &uin]);
    assert_eq!(attached["List"][0]["PolicyName"], "QcloudLIVEFullAccess");
    // The sub-user works with Live through tccli too.
    let sub = tccli(
        &server,
        user["SecretId"].as_str().expect("id"),
        user["SecretKey"].as_str().expect("key"),
        &["DescribeLiveDomains"],
    );
    assert_eq!(sub.code, 0, "{} {}", sub.stdout, sub.stderr);
    let policy = r#"{"version":"2.0","statement":[{"effect":"allow","action":["live:Describe*"],"resource":"*"}]}"#;
    let token = run(
        "sts",
        &[
            "GetFederationToken",
            "--Name",
            "ci",
            "--Policy",
            policy,
            "--DurationSeconds",
            "1800",
        ],
    );
    assert!(token["Credentials"]["Token"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
    let me = run("sts", &["GetCallerIdentity"]);
    assert_eq!(me["Type"], "RootAccount");
    // A role the account itself may assume, and its credentials.
    let trust = r#"{"version":"2.0","statement":[{"action":"name/sts:AssumeRole","effect":"allow","principal":{"qcs":["qcs::cam::uin/100000000001:root"]}}]}"#;
    run(
        "cam",
        &[
            "CreateRole",
            "--RoleName",
            "ci-role",
            "--PolicyDocument",
            trust,
        ],
    );
    run(
        "cam",
        &[
            "AttachRolePolicy",
            "--PolicyName",
            "QcloudLIVEReadOnlyAccess",
            "--AttachRoleName",
            "ci-role",
        ],
    );
    let role = run(
        "sts",
        &[
            "AssumeRole",
            "--RoleArn",
            "qcs::cam::uin/100000000001:roleName/ci-role",
            "--RoleSessionName",
            "job-1",
        ],
    );
    let creds = &role["Credentials"];
    let as_role = Command::new(repo_root().join(".venv/bin/tccli"))
        .args([
            "sts",
            "GetCallerIdentity",
            "--endpoint",
            &format!("http://{}", server.endpoint()),
        ])
        .args(["--secretId", creds["TmpSecretId"].as_str().expect("id")])
        .args(["--secretKey", creds["TmpSecretKey"].as_str().expect("key")])
        .args(["--token", creds["Token"].as_str().expect("token")])
        .env("HOME", tempfile::tempdir().expect("home").path())
        .env("TENCENTCLOUD_REGION", "ap-guangzhou")
        .output()
        .expect("run tccli");
    assert!(as_role.status.success(), "{as_role:?}");
    let who: Value = serde_json::from_slice(&as_role.stdout).expect("JSON");
    assert_eq!(who["Type"], "CAMRole");
    // A denied tccli call exits non-zero and names the code.
    let plain = run("cam", &["AddUser", "--Name", "nobody", "--UseApi", "1"]);
    let denied = tccli(
        &server,
        plain["SecretId"].as_str().expect("id"),
        plain["SecretKey"].as_str().expect("key"),
        &["DescribeLiveDomains"],
    );
    assert_ne!(denied.code, 0);
    assert!(
        format!("{}{}", denied.stdout, denied.stderr).contains("AuthFailure.UnauthorizedOperation"),
        "{} {}",
        denied.stdout,
        denied.stderr
    );
}

#[test]
fn node_sdk_cam_and_live_clients_see_the_same_rules() {
    let server = Server::start();
    let made = node1(&json!({
        "endpoint": server.endpoint(),
        "secret_id": server.secret_id,
        "secret_key": server.secret_key,
        "service": "cam",
        "action": "AddUser",
        "params": {"Name": "node-user", "UseApi": 1},
    }));
    let user = made.ok().clone();
    let denied = node1(&json!({
        "endpoint": server.endpoint(),
        "secret_id": user["SecretId"],
        "secret_key": user["SecretKey"],
        "action": "DescribeLiveDomains",
        "params": {},
    }));
    denied.expect_code("AuthFailure.UnauthorizedOperation");
    assert!(
        denied.message().contains("(live:DescribeLiveDomains)"),
        "{}",
        denied.message()
    );
    let me = node1(&json!({
        "endpoint": server.endpoint(),
        "secret_id": user["SecretId"],
        "secret_key": user["SecretKey"],
        "service": "sts",
        "action": "GetCallerIdentity",
        "params": {},
    }));
    assert_eq!(
        me.ok()["PrincipalId"],
        user["Uin"].as_u64().expect("Uin").to_string()
    );
}
