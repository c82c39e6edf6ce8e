//! Access control: CAM sub-accounts, policies and groups, STS federation
//! tokens, and the check every Live call by one of them goes through.
//! In-process calls signed here for breadth; the official clients in
//! `access_clients`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{Outcome, Server, ServerOptions};

const LIVE: &str = "2018-08-01";

/// A sub-account's key, as AddUser with UseApi=1 returns it.
pub struct SubUser {
    pub uin: u64,
    pub secret_id: String,
    pub secret_key: String,
}

pub fn add_user(server: &Server, name: &str) -> SubUser {
    let out = server.cam("AddUser", json!({"Name": name, "UseApi": 1}));
    let ok = out.ok();
    SubUser {
        uin: ok["Uin"].as_u64().expect("Uin"),
        secret_id: ok["SecretId"].as_str().expect("SecretId").to_owned(),
        secret_key: ok["SecretKey"].as_str().expect("SecretKey").to_owned(),
    }
}

pub fn create_policy(server: &Server, name: &str, document: Value) -> u64 {
    let out = server.cam(
        "CreatePolicy",
        json!({"PolicyName": name, "PolicyDocument": document.to_string()}),
    );
    out.ok()["PolicyId"].as_u64().expect("PolicyId")
}

pub fn attach(server: &Server, user: &SubUser, policy_id: u64) {
    server
        .cam(
            "AttachUserPolicy",
            json!({"PolicyId": policy_id, "AttachUin": user.uin}),
        )
        .ok();
}

fn live_as(server: &Server, user: &SubUser, action: &str, params: Value) -> Outcome {
    server.api_as(&user.secret_id, &user.secret_key, action, params)
}

fn add_domain(server: &Server, name: &str, kind: u64) {
    server
        .api(
            "AddLiveDomain",
            json!({"DomainName": name, "DomainType": kind, "PlayType": 1}),
        )
        .ok();
}

/// QcloudLIVEReadOnlyAccess, as ListPolicies names it.
pub(crate) fn preset_id(server: &Server, name: &str) -> u64 {
    let out = server.cam("ListPolicies", json!({"Scope": "QCS", "Rp": 200}));
    out.ok()["List"]
        .as_array()
        .expect("List")
        .iter()
        .find(|p| p["PolicyName"] == name)
        .and_then(|p| p["PolicyId"].as_u64())
        .unwrap_or_else(|| panic!("no preset {name}"))
}

#[test]
fn a_sub_user_without_policies_is_denied_with_a_message_naming_the_action_and_resource() {
    let server = Server::start();
    let user = add_user(&server, "ci-job");
    let out = live_as(&server, &user, "DescribeLiveDomains", json!({}));
    out.expect_code("AuthFailure.UnauthorizedOperation");
    let message = out.message();
    assert!(
        message.contains("you are not authorized to perform operation (live:DescribeLiveDomains)"),
        "{message}"
    );
    assert!(
        message.contains("resource (*) has no permission"),
        "{message}"
    );
    assert!(message.contains(out.request_id()), "{message}");
    // The root account's own key is always allowed.
    server.api("DescribeLiveDomains", json!({})).ok();
}

#[test]
fn the_read_only_preset_allows_describe_calls_and_nothing_else() {
    let server = Server::start();
    add_domain(&server, "push.ro.example.com", 0);
    let user = add_user(&server, "viewer");
    attach(
        &server,
        &user,
        preset_id(&server, "QcloudLIVEReadOnlyAccess"),
    );
    let out = live_as(&server, &user, "DescribeLiveDomains", json!({}));
    assert_eq!(
        out.ok()["AllCount"],
        1,
        "sub-users see their root account's resources"
    );
    live_as(
        &server,
        &user,
        "DescribeLiveDomain",
        json!({"DomainName": "push.ro.example.com"}),
    )
    .ok();
    let out = live_as(
        &server,
        &user,
        "ForbidLiveDomain",
        json!({"DomainName": "push.ro.example.com"}),
    );
    out.expect_code("AuthFailure.UnauthorizedOperation");
    assert!(
        out.message()
            .contains("resource (qcs::live::uin/100000000001:domain/push.ro.example.com)"),
        "{}",
        out.message()
    );
}

#[test]
fn a_domain_scoped_policy_allows_its_domain_and_denies_others_and_operation_level_calls() {
    let server = Server::start();
    add_domain(&server, "push.a.example.com", 0);
    add_domain(&server, "push.b.example.com", 0);
    let user = add_user(&server, "team-a");
    let policy = create_policy(
        &server,
        "team-a-only",
        json!({"version": "2.0", "statement": [{
            "effect": "allow",
            "action": ["live:*"],
            "resource": ["qcs::live::uin/${uin}:domain/push.a.example.com"]
        }]}),
    );
    attach(&server, &user, policy);
    live_as(
        &server,
        &user,
        "DescribeLiveDomain",
        json!({"DomainName": "push.a.example.com"}),
    )
    .ok();
    live_as(
        &server,
        &user,
        "DescribeLiveDomain",
        json!({"DomainName": "push.b.example.com"}),
    )
    .expect_code("AuthFailure.UnauthorizedOperation");
    // Listing every domain is an operation-level call: a named resource
    // does not grant it.
    live_as(&server, &user, "DescribeLiveDomains", json!({}))
        .expect_code("AuthFailure.UnauthorizedOperation");
    // A call naming two domains needs both.
    live_as(
        &server,
        &user,
        "DescribeLiveStreamOnlineList",
        json!({"DomainName": "push.a.example.com"}),
    )
    .ok();
    let out = live_as(
        &server,
        &user,
        "DescribeLiveTranscodeTotalInfo",
        json!({"PushDomains": ["push.a.example.com", "push.b.example.com"],
               "StartTime": "2026-12-01 00:00:00", "EndTime": "2026-12-01 01:00:00"}),
    );
    out.expect_code("AuthFailure.UnauthorizedOperation");
    assert!(
        out.message().contains("domain/push.b.example.com"),
        "{}",
        out.message()
    );
}

#[test]
fn an_explicit_deny_beats_any_allow_in_the_same_or_another_policy() {
    let server = Server::start();
    add_domain(&server, "push.deny.example.com", 0);
    let user = add_user(&server, "careful");
    attach(&server, &user, preset_id(&server, "QcloudLIVEFullAccess"));
    let deny = create_policy(
        &server,
        "no-deletes",
        json!({"version": "2.0", "statement": [{
            "effect": "deny", "action": ["live:Delete*", "live:Drop*"], "resource": "*"
        }]}),
    );
    attach(&server, &user, deny);
    live_as(&server, &user, "DescribeLiveDomains", json!({})).ok();
    live_as(
        &server,
        &user,
        "DeleteLiveDomain",
        json!({"DomainName": "push.deny.example.com", "DomainType": 0}),
    )
    .expect_code("AuthFailure.UnauthorizedOperation");
    // Detached, the allow stands alone again.
    server
        .cam(
            "DetachUserPolicy",
            json!({"PolicyId": deny, "DetachUin": user.uin}),
        )
        .ok();
    live_as(
        &server,
        &user,
        "DeleteLiveDomain",
        json!({"DomainName": "push.deny.example.com", "DomainType": 0}),
    )
    .ok();
}

#[test]
fn an_ip_condition_tests_the_callers_address() {
    let server = Server::start();
    let user = add_user(&server, "office");
    let policy = create_policy(
        &server,
        "office-network",
        json!({"version": "2.0", "statement": [{
            "effect": "allow", "action": "live:*", "resource": "*",
            "condition": {"ip_equal": {"qcs:ip": ["10.0.0.0/8"]}}
        }]}),
    );
    attach(&server, &user, policy);
    live_as(&server, &user, "DescribeLiveDomains", json!({}))
        .expect_code("AuthFailure.UnauthorizedOperation");
    server
        .cam(
            "UpdatePolicy",
            json!({"PolicyId": policy, "PolicyDocument": json!({"version": "2.0", "statement": [{
                "effect": "allow", "action": "live:*", "resource": "*",
                "condition": {"ip_equal": {"qcs:ip": ["127.0.0.0/8"]}}
            }]}).to_string()}),
        )
        .ok();
    live_as(&server, &user, "DescribeLiveDomains", json!({})).ok();
}

#[test]
fn a_date_condition_ends_a_grant_when_the_clock_passes_it() {
    let server = Server::start();
    let user = add_user(&server, "contractor");
    let until = livestack_api::time::utc_iso(server.clock.unix() + 3600);
    let policy = create_policy(
        &server,
        "until-tomorrow",
        json!({"version": "2.0", "statement": [{
            "effect": "allow", "action": "live:Describe*", "resource": "*",
            "condition": {"date_less_than": {"qcs:current_time": until}}
        }]}),
    );
    attach(&server, &user, policy);
    live_as(&server, &user, "DescribeLiveDomains", json!({})).ok();
    server.clock.advance(Duration::from_secs(3601));
    live_as(&server, &user, "DescribeLiveDomains", json!({}))
        .expect_code("AuthFailure.UnauthorizedOperation");
}

#[test]
fn a_group_policy_applies_to_its_members_only_while_they_are_members() {
    let server = Server::start();
    let user = add_user(&server, "member");
    let group = server
        .cam("CreateGroup", json!({"GroupName": "readers"}))
        .ok()["GroupId"]
        .as_u64()
        .expect("GroupId");
    server
        .cam(
            "AttachGroupPolicy",
            json!({"PolicyId": preset_id(&server, "QcloudLIVEReadOnlyAccess"), "AttachGroupId": group}),
        )
        .ok();
    live_as(&server, &user, "DescribeLiveDomains", json!({}))
        .expect_code("AuthFailure.UnauthorizedOperation");
    server
        .cam(
            "AddUserToGroup",
            json!({"Info": [{"GroupId": group, "Uin": user.uin}]}),
        )
        .ok();
    live_as(&server, &user, "DescribeLiveDomains", json!({})).ok();
    let members = server.cam("ListUsersForGroup", json!({"GroupId": group}));
    assert_eq!(members.ok()["UserInfo"][0]["Name"], "member");
    server
        .cam(
            "RemoveUserFromGroup",
            json!({"Info": [{"GroupId": group, "Uin": user.uin}]}),
        )
        .ok();
    live_as(&server, &user, "DescribeLiveDomains", json!({}))
        .expect_code("AuthFailure.UnauthorizedOperation");
}

fn sts(server: &Server, key: (&str, &str, Option<&str>), action: &str, params: Value) -> Outcome {
    server.api_service(key, "sts", "2018-08-13", action, params)
}

#[test]
fn a_federation_token_is_limited_by_its_policy_and_stops_at_its_expiry() {
    let server = Server::start();
    let user = add_user(&server, "issuer");
    attach(&server, &user, preset_id(&server, "QcloudLIVEFullAccess"));
    attach(&server, &user, preset_id(&server, "QcloudSTSFullAccess"));
    let policy = json!({"version": "2.0", "statement": [{
        "effect": "allow", "action": ["live:DescribeLiveDomains", "sts:GetFederationToken"], "resource": "*"
    }]})
    .to_string();
    // URL-encoded, as the API asks.
    let encoded: String = policy
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    // The test clock follows real time: the call may cross a second.
    let asked = server.clock.unix();
    let out = sts(
        &server,
        (&user.secret_id, &user.secret_key, None),
        "GetFederationToken",
        json!({"Name": "ci", "Policy": encoded, "DurationSeconds": 600}),
    );
    let answered = server.clock.unix();
    let creds = out.ok()["Credentials"].clone();
    let (id, key, token) = (
        creds["TmpSecretId"].as_str().expect("id").to_owned(),
        creds["TmpSecretKey"].as_str().expect("key").to_owned(),
        creds["Token"].as_str().expect("token").to_owned(),
    );
    let expired = out.ok()["ExpiredTime"].as_i64().expect("ExpiredTime");
    assert!(
        (asked + 600..=answered + 600).contains(&expired),
        "ExpiredTime {expired} is not 600 s after the call ({asked}..={answered})"
    );
    let temp = (id.as_str(), key.as_str(), Some(token.as_str()));
    server
        .api_service(temp, "live", LIVE, "DescribeLiveDomains", json!({}))
        .ok();
    // The issuer may add domains; the token's own policy may not.
    server
        .api_service(
            temp,
            "live",
            LIVE,
            "AddLiveDomain",
            json!({"DomainName": "push.fed.example.com", "DomainType": 0}),
        )
        .expect_code("AuthFailure.UnauthorizedOperation");
    // Who am I (no permission needed), and only a permanent key may ask
    // for a token, even where the policy would allow it.
    let me = sts(&server, temp, "GetCallerIdentity", json!({}));
    assert_eq!(me.ok()["UserId"], format!("{}:ci", user.uin));
    sts(
        &server,
        temp,
        "GetFederationToken",
        json!({"Name": "again", "Policy": encoded}),
    )
    .expect_code("FailedOperation.TempKeyNotAllowed");
    // Without its token, with a wrong one, and once expired.
    server
        .api_service(
            (&id, &key, None),
            "live",
            LIVE,
            "DescribeLiveDomains",
            json!({}),
        )
        .expect_code("AuthFailure.TokenFailure");
    server
        .api_service(
            (&id, &key, Some("not-the-token")),
            "live",
            LIVE,
            "DescribeLiveDomains",
            json!({}),
        )
        .expect_code("AuthFailure.TokenFailure");
    server.clock.advance(Duration::from_secs(601));
    server
        .api_service(temp, "live", LIVE, "DescribeLiveDomains", json!({}))
        .expect_code("AuthFailure.TokenFailure");
}

#[test]
fn federation_tokens_refuse_bad_names_durations_and_policies() {
    let server = Server::start();
    let root = (server.secret_id.as_str(), server.secret_key.as_str(), None);
    let ok_policy =
        r#"{"version":"2.0","statement":[{"effect":"allow","action":"live:*","resource":"*"}]}"#;
    for (params, code) in [
        (
            json!({"Name": "bad name", "Policy": ok_policy}),
            "InvalidParameter.ParamError",
        ),
        (
            json!({"Name": "ci", "Policy": ok_policy, "DurationSeconds": 7201}),
            "InvalidParameter.OverTimeError",
        ),
        (
            json!({"Name": "ci", "Policy": "{\"version\":\"2.0\"}"}),
            "InvalidParameter.StrategyFormatError",
        ),
        (
            json!({"Name": "ci", "Policy": r#"{"version":"2.0","statement":[{"effect":"allow","action":"live:*","resource":"*","principal":{"qcs":["*"]}}]}"#}),
            "InvalidParameter.StrategyFormatError",
        ),
        (
            json!({"Name": "ci", "Policy": "x".repeat(2049)}),
            "InvalidParameter.PolicyTooLong",
        ),
    ] {
        sts(&server, root, "GetFederationToken", params.clone()).expect_code(code);
    }
    // Root may ask for up to 7200 s; the token's rights are its policy's.
    let out = sts(
        &server,
        root,
        "GetFederationToken",
        json!({"Name": "ci", "Policy": ok_policy, "DurationSeconds": 7200}),
    );
    assert!(out.ok()["Expiration"]
        .as_str()
        .is_some_and(|e| e.ends_with('Z')));
    let me = sts(&server, root, "GetCallerIdentity", json!({}));
    assert_eq!(me.ok()["Type"], "RootAccount");
    assert_eq!(me.ok()["AccountId"], "100000000001");
}

#[test]
fn an_inactive_key_is_refused_until_it_is_active_again_and_a_deleted_key_is_gone() {
    let server = Server::start();
    let user = add_user(&server, "rotating");
    attach(
        &server,
        &user,
        preset_id(&server, "QcloudLIVEReadOnlyAccess"),
    );
    live_as(&server, &user, "DescribeLiveDomains", json!({})).ok();
    let set = |status: &str| {
        server
            .cam(
                "UpdateAccessKey",
                json!({"AccessKeyId": user.secret_id, "Status": status, "TargetUin": user.uin}),
            )
            .ok()
            .clone()
    };
    set("Inactive");
    live_as(&server, &user, "DescribeLiveDomains", json!({}))
        .expect_code("AuthFailure.SecretIdNotFound");
    let keys = server.cam("ListAccessKeys", json!({"TargetUin": user.uin}));
    assert_eq!(keys.ok()["AccessKeys"][0]["Status"], "Inactive");
    set("Active");
    live_as(&server, &user, "DescribeLiveDomains", json!({})).ok();
    server
        .cam(
            "UpdateAccessKey",
            json!({"AccessKeyId": user.secret_id, "Status": "Paused", "TargetUin": user.uin}),
        )
        .expect_code("InvalidParameter.ParamError");
    // Two keys per identity at most.
    server
        .cam("CreateAccessKey", json!({"TargetUin": user.uin}))
        .ok();
    server
        .cam("CreateAccessKey", json!({"TargetUin": user.uin}))
        .expect_code("OperationDenied.AccessKeyOverLimit");
    server
        .cam(
            "DeleteAccessKey",
            json!({"AccessKeyId": user.secret_id, "TargetUin": user.uin}),
        )
        .ok();
    live_as(&server, &user, "DescribeLiveDomains", json!({}))
        .expect_code("AuthFailure.SecretIdNotFound");
    server
        .cam(
            "DeleteAccessKey",
            json!({"AccessKeyId": user.secret_id, "TargetUin": user.uin}),
        )
        .expect_code("ResourceNotFound.SecretNotExist");
}

#[test]
fn a_deleted_user_keeps_no_key_and_its_federation_tokens_are_an_invalid_user() {
    let server = Server::start();
    let user = add_user(&server, "leaver");
    attach(&server, &user, preset_id(&server, "QcloudLIVEFullAccess"));
    attach(&server, &user, preset_id(&server, "QcloudSTSFullAccess"));
    let policy =
        r#"{"version":"2.0","statement":[{"effect":"allow","action":"live:*","resource":"*"}]}"#;
    let out = sts(
        &server,
        (&user.secret_id, &user.secret_key, None),
        "GetFederationToken",
        json!({"Name": "job", "Policy": policy}),
    );
    let c = out.ok()["Credentials"].clone();
    let temp = (
        c["TmpSecretId"].as_str().expect("id").to_owned(),
        c["TmpSecretKey"].as_str().expect("key").to_owned(),
        c["Token"].as_str().expect("token").to_owned(),
    );
    server
        .cam("DeleteUser", json!({"Name": "leaver"}))
        .expect_code("OperationDenied.HaveKeys");
    server
        .cam("DeleteUser", json!({"Name": "leaver", "Force": 1}))
        .ok();
    live_as(&server, &user, "DescribeLiveDomains", json!({}))
        .expect_code("AuthFailure.SecretIdNotFound");
    server
        .api_service(
            (&temp.0, &temp.1, Some(&temp.2)),
            "live",
            LIVE,
            "DescribeLiveDomains",
            json!({}),
        )
        .expect_code("InternalError.InvalidUser");
    server
        .cam("GetUser", json!({"Name": "leaver"}))
        .expect_code("ResourceNotFound.UserNotExist");
}

#[test]
fn soft_mode_lets_a_denied_call_through_and_logs_the_deciding_statement() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("livestack.toml");
    std::fs::write(&config, "[cam]\nenforce = \"soft\"\n").expect("config");
    let server = Server::start_with(ServerOptions {
        args: vec!["--config".into(), config.to_string_lossy().into_owned()],
        ..ServerOptions::default()
    });
    let user = add_user(&server, "migrating");
    let deny = create_policy(
        &server,
        "deny-all",
        json!({"version": "2.0", "statement": [{"effect": "deny", "action": "*", "resource": "*"}]}),
    );
    attach(&server, &user, deny);
    live_as(&server, &user, "DescribeLiveDomains", json!({})).ok();
    let log = server.log();
    assert!(
        log.contains("CAM would deny this call (statement 0 of policy deny-all denies it)"),
        "{log}"
    );
    assert!(log.contains("live:DescribeLiveDomains"), "{log}");
}

#[test]
fn cam_refuses_policies_it_does_not_understand_with_the_code_cam_answers() {
    let server = Server::start();
    let doc = |statement: Value| json!({"version": "2.0", "statement": [statement]}).to_string();
    for (document, code) in [
        ("{".to_owned(), "InvalidParameter.PolicyDocumentError"),
        (
            json!({"version": "1.0", "statement": []}).to_string(),
            "InvalidParameter.VersionError",
        ),
        (
            doc(json!({"effect": "permit", "action": "*", "resource": "*"})),
            "InvalidParameter.EffectError",
        ),
        (
            doc(json!({"effect": "allow", "action": "DescribeLiveDomains", "resource": "*"})),
            "InvalidParameter.ActionError",
        ),
        (
            doc(json!({"effect": "allow", "action": "live:NoSuchAction", "resource": "*"})),
            "InvalidParameter.ActionNotExist",
        ),
        (
            doc(json!({"effect": "allow", "action": "*", "resource": "domain/x"})),
            "InvalidParameter.ResourceError",
        ),
        (
            doc(
                json!({"effect": "allow", "action": "*", "resource": "*", "principal": {"qcs": ["*"]}}),
            ),
            "InvalidParameter.PrincipalError",
        ),
        (
            doc(
                json!({"effect": "allow", "action": "*", "resource": "*", "condition": {"numeric_equal": {"qcs:ip": 1}}}),
            ),
            "InvalidParameter.ConditionTypeError",
        ),
        (
            doc(
                json!({"effect": "deny", "action": "*", "resource": "*", "condition": {"string_equal": {"qcs:resource_tag": "x"}}}),
            ),
            "InvalidParameter.ConditionContentError",
        ),
        (
            "x".repeat(6145),
            "InvalidParameter.PolicyDocumentLengthOverLimit",
        ),
    ] {
        server
            .cam(
                "CreatePolicy",
                json!({"PolicyName": "p", "PolicyDocument": document}),
            )
            .expect_code(code);
    }
    let good = doc(json!({"effect": "allow", "action": "live:Describe*", "resource": "*"}));
    server
        .cam(
            "CreatePolicy",
            json!({"PolicyName": "p", "PolicyDocument": good}),
        )
        .ok();
    server
        .cam(
            "CreatePolicy",
            json!({"PolicyName": "p", "PolicyDocument": good}),
        )
        .expect_code("FailedOperation.PolicyNameInUse");
    server
        .cam(
            "CreatePolicy",
            json!({"PolicyName": "QcloudLIVEFullAccess", "PolicyDocument": good}),
        )
        .expect_code("InvalidParameter.PolicyNameError");
    server
        .cam("GetPolicy", json!({"PolicyId": 999_999_999}))
        .expect_code("ResourceNotFound.PolicyIdNotFound");
    let preset = server.cam(
        "GetPolicy",
        json!({"PolicyId": preset_id(&server, "QcloudLIVEFullAccess")}),
    );
    assert_eq!(preset.ok()["Type"], 2);
    assert!(preset.ok()["PolicyDocument"]
        .as_str()
        .is_some_and(|d| d.contains("live:*")));
}

#[test]
fn cam_manages_users_and_refuses_what_cam_refuses() {
    let server = Server::start();
    let first = add_user(&server, "alice");
    server
        .cam("AddUser", json!({"Name": "alice"}))
        .expect_code("InvalidParameter.SubUserNameInUse");
    server
        .cam("AddUser", json!({"Name": "no spaces"}))
        .expect_code("InvalidParameter.UserNameIllegal");
    let bob = server.cam(
        "AddUser",
        json!({"Name": "bob", "ConsoleLogin": 1, "Remark": "ops"}),
    );
    assert_eq!(bob.ok()["SecretId"], "", "no key without UseApi");
    assert_eq!(bob.ok()["Password"].as_str().map(str::len), Some(32));
    server
        .cam("UpdateUser", json!({"Name": "bob", "Remark": "on call"}))
        .ok();
    let got = server.cam("GetUser", json!({"Name": "bob"}));
    assert_eq!(got.ok()["Remark"], "on call");
    let list = server.cam("ListUsers", json!({}));
    let names: Vec<&str> = list.ok()["Data"]
        .as_array()
        .expect("Data")
        .iter()
        .filter_map(|u| u["Name"].as_str())
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    // A sub-user allowed CAM may manage its own keys but not the root's.
    attach(&server, &first, preset_id(&server, "QcloudCamFullAccess"));
    let as_alice = |action: &str, params: Value| {
        server.api_service(
            (&first.secret_id, &first.secret_key, None),
            "cam",
            "2019-01-16",
            action,
            params,
        )
    };
    as_alice("ListAccessKeys", json!({})).ok();
    as_alice("ListAccessKeys", json!({"TargetUin": 100_000_000_001u64}))
        .expect_code("OperationDenied.SubUin");
    as_alice(
        "UpdateAccessKey",
        json!({"AccessKeyId": server.secret_id, "Status": "Inactive"}),
    )
    .expect_code("OperationDenied.SubUin");
    // And a sub-user without CAM rights may not manage users at all.
    let plain = add_user(&server, "carol");
    server
        .api_service(
            (&plain.secret_id, &plain.secret_key, None),
            "cam",
            "2019-01-16",
            "AddUser",
            json!({"Name": "mallory", "UseApi": 1}),
        )
        .expect_code("AuthFailure.UnauthorizedOperation");
}

#[test]
fn the_version_names_the_service_and_a_signed_scope_must_agree() {
    let server = Server::start();
    let root = (server.secret_id.as_str(), server.secret_key.as_str(), None);
    server
        .api_service(root, "cam", "2017-03-12", "ListUsers", json!({}))
        .expect_code("NoSuchVersion");
    // Signed for CAM, asking Live's version.
    server
        .api_service(root, "cam", LIVE, "DescribeLiveDomains", json!({}))
        .expect_code("NoSuchVersion");
    // Any other scope service is accepted (the Node SDK signs with the
    // endpoint's first label).
    server
        .api_service(root, "127", "2019-01-16", "ListUsers", json!({}))
        .ok();
    server
        .api_service(root, "cam", "2019-01-16", "DescribeLiveDomains", json!({}))
        .expect_code("InvalidAction");
    server
        .api_service(root, "cam", "2019-01-16", "ListSAMLProviders", json!({}))
        .expect_code("UnsupportedOperation");
    server
        .api_service(root, "cam", "2019-01-16", "GetUser", json!({}))
        .expect_code("MissingParameter");
}

#[test]
fn a_role_is_assumed_by_whom_its_trust_policy_names_and_its_credentials_act_as_the_role() {
    let server = Server::start();
    let ops = add_user(&server, "ops");
    let other = add_user(&server, "other");
    let sts_full = preset_id(&server, "QcloudSTSFullAccess");
    attach(&server, &ops, sts_full);
    attach(&server, &other, sts_full);
    let trust = json!({"version": "2.0", "statement": [{
        "effect": "allow", "action": "name/sts:AssumeRole",
        "principal": {"qcs": [format!("qcs::cam::uin/100000000001:uin/{}", ops.uin)]}
    }]})
    .to_string();
    server
        .cam("CreateRole", json!({"RoleName": "reader", "PolicyDocument": "{\"version\":\"2.0\",\"statement\":[{\"effect\":\"allow\",\"action\":\"sts:AssumeRole\"}]}"}))
        .expect_code("InvalidParameter.PrincipalError");
    let role_id = server
        .cam(
            "CreateRole",
            json!({"RoleName": "reader", "PolicyDocument": trust, "SessionDuration": 3600}),
        )
        .ok()["RoleId"]
        .as_str()
        .expect("RoleId")
        .to_owned();
    server
        .cam(
            "CreateRole",
            json!({"RoleName": "reader", "PolicyDocument": trust}),
        )
        .expect_code("InvalidParameter.RoleNameInUse");
    server
        .cam(
            "AttachRolePolicy",
            json!({"PolicyName": "QcloudLIVEReadOnlyAccess", "AttachRoleName": "reader"}),
        )
        .ok();
    let listed = server.cam(
        "ListAttachedRolePolicies",
        json!({"RoleId": role_id, "Page": 1, "Rp": 20}),
    );
    assert_eq!(
        listed.ok()["List"][0]["PolicyName"],
        "QcloudLIVEReadOnlyAccess"
    );
    let arn = server.cam("GetRole", json!({"RoleName": "reader"})).ok()["RoleInfo"]["RoleArn"]
        .as_str()
        .expect("RoleArn")
        .to_owned();
    assert_eq!(arn, "qcs::cam::uin/100000000001:roleName/reader");
    let assume = |who: &SubUser, params: Value| {
        sts(
            &server,
            (&who.secret_id, &who.secret_key, None),
            "AssumeRole",
            params,
        )
    };
    assume(&other, json!({"RoleArn": arn, "RoleSessionName": "sneaky"}))
        .expect_code("UnauthorizedOperation");
    assume(&ops, json!({"RoleArn": "reader", "RoleSessionName": "s1"}))
        .expect_code("InvalidParameter.ResouceError");
    assume(
        &ops,
        json!({"RoleArn": "qcs::cam::uin/100000000001:roleName/none", "RoleSessionName": "s1"}),
    )
    .expect_code("ResourceNotFound.RoleNotFound");
    assume(
        &ops,
        json!({"RoleArn": arn, "RoleSessionName": "s1", "DurationSeconds": 3601}),
    )
    .expect_code("InvalidParameter.OverTimeError");
    let out = assume(
        &ops,
        json!({"RoleArn": arn, "RoleSessionName": "deploy-7", "DurationSeconds": 900}),
    );
    let c = out.ok()["Credentials"].clone();
    let (id, key, token) = (
        c["TmpSecretId"].as_str().expect("id").to_owned(),
        c["TmpSecretKey"].as_str().expect("key").to_owned(),
        c["Token"].as_str().expect("token").to_owned(),
    );
    let temp = (id.as_str(), key.as_str(), Some(token.as_str()));
    // The role's rights, not the caller's: reads yes, writes no.
    server
        .api_service(temp, "live", LIVE, "DescribeLiveDomains", json!({}))
        .ok();
    server
        .api_service(
            temp,
            "live",
            LIVE,
            "AddLiveDomain",
            json!({"DomainName": "push.role.example.com", "DomainType": 0}),
        )
        .expect_code("AuthFailure.UnauthorizedOperation");
    let me = sts(&server, temp, "GetCallerIdentity", json!({}));
    assert_eq!(me.ok()["Type"], "CAMRole");
    assert_eq!(me.ok()["UserId"], format!("{role_id}:deploy-7"));
    // Once the role is gone, its credentials are an invalid identity.
    server.cam("DeleteRole", json!({"RoleId": role_id})).ok();
    server
        .api_service(temp, "live", LIVE, "DescribeLiveDomains", json!({}))
        .expect_code("InternalError.InvalidUser");
    server
        .cam("GetRole", json!({"RoleId": role_id}))
        .expect_code("InvalidParameter.RoleNotExist");
}
