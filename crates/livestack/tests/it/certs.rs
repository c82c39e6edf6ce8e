//! HTTPS certificates and their bindings to play domains, through the
//! official Python SDK (typed models where the current SDK still has them,
//! raw `CommonClient` calls for the legacy actions it dropped) and tccli;
//! every error code of the family; tenancy; durability; and that no
//! private key ever comes back out.

use rcgen::{CertificateParams, KeyPair};
use serde_json::{json, Value};

use crate::harness::*;

/// A certificate and its private key, as PEM, made at test time.
pub(crate) struct Pem {
    pub(crate) crt: String,
    pub(crate) key: String,
}

impl Pem {
    /// A line from the middle of the key's base64: if it shows up in any
    /// output, the key leaked.
    fn key_marker(&self) -> String {
        let lines: Vec<&str> = self.key.lines().collect();
        lines[lines.len() / 2].to_owned()
    }
}

fn issue(params: CertificateParams) -> Pem {
    let key = KeyPair::generate().expect("key");
    let crt = params.self_signed(&key).expect("sign").pem();
    Pem {
        crt,
        key: key.serialize_pem(),
    }
}

fn params(names: &[&str]) -> CertificateParams {
    CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
        .expect("params")
}

/// A self-signed certificate for `*.example.com` and `play.example.com`.
pub(crate) fn example_com() -> Pem {
    issue(params(&["*.example.com", "play.example.com"]))
}

/// Binds [`example_com`] to `domains` with HTTPS (and RTMPS) on; returns it.
pub(crate) fn bind_example_com(server: &Server, domains: &[&str]) -> Pem {
    let pem = example_com();
    let infos: Vec<Value> = domains
        .iter()
        .map(|d| json!({"DomainName": d, "Status": 1}))
        .collect();
    server
        .api(
            "ModifyLiveDomainCertBindings",
            json!({"DomainInfos": infos,
                   "CertificatePublicKey": pem.crt, "CertificatePrivateKey": pem.key}),
        )
        .ok();
    pem
}

/// One that expired in 2002.
fn expired() -> Pem {
    let mut p = params(&["play.example.com"]);
    p.not_before = rcgen::date_time_ymd(2001, 1, 1);
    p.not_after = rcgen::date_time_ymd(2002, 1, 1);
    issue(p)
}

/// A legacy action, through the SDK's `CommonClient`.
fn legacy(server: &Server, action: &str, params: Value) -> Outcome {
    python1(&with(server.call(action, params), json!({"raw": true})))
}

/// An action with the SDK's typed models.
fn typed(server: &Server, action: &str, params: Value) -> Outcome {
    python1(&server.call(action, params))
}

fn add_domain(server: &Server, name: &str, domain_type: u64) {
    typed(
        server,
        "AddLiveDomain",
        json!({"DomainName": name, "DomainType": domain_type}),
    )
    .ok();
}

fn create(server: &Server, pem: &Pem, name: &str) -> i64 {
    let out = legacy(
        server,
        "CreateLiveCert",
        json!({"CertType": 0, "CertName": name, "Description": "for tests",
               "HttpsCrt": pem.crt, "HttpsKey": pem.key}),
    );
    out.ok()["CertId"].as_i64().expect("CertId")
}

/// Asserts that no private key (this one, or any PEM key) is in `out`.
#[track_caller]
fn assert_no_key(out: &Outcome, pem: &Pem) {
    let text = out.0.to_string();
    assert!(!text.contains("PRIVATE KEY"), "a key leaked: {text}");
    assert!(!text.contains(&pem.key_marker()), "a key leaked: {text}");
}

fn is_iso_beijing(s: &str) -> bool {
    // 2018-11-30T15:50:12Z, as in the official examples.
    let b = s.as_bytes();
    s.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z'
}

fn is_plain_beijing(s: &str) -> bool {
    // 2024-04-17 11:55:21
    let b = s.as_bytes();
    s.len() == 19 && b[4] == b'-' && b[10] == b' ' && b[13] == b':'
}

#[test]
fn a_certificate_round_trips_through_every_legacy_action() {
    let server = Server::start();
    add_domain(&server, "play.example.com", 1);
    let pem = example_com();
    let id = create(&server, &pem, "main");

    let info = typed(&server, "DescribeLiveCert", json!({"CertId": id}));
    assert_no_key(&info, &pem);
    let cert = &info.ok()["CertInfo"];
    assert_eq!(cert["CertId"], id);
    assert_eq!(cert["CertName"], "main");
    assert_eq!(cert["Description"], "for tests");
    assert_eq!(cert["CertType"], 0);
    assert_eq!(cert["HttpsCrt"].as_str(), Some(pem.crt.as_str()));
    assert!(
        is_iso_beijing(cert["CreateTime"].as_str().unwrap_or("")),
        "{cert}"
    );
    assert!(
        is_iso_beijing(cert["CertExpireTime"].as_str().unwrap_or("")),
        "{cert}"
    );
    assert_eq!(cert["DomainList"], json!([]));

    let list = typed(&server, "DescribeLiveCerts", json!({}));
    assert_no_key(&list, &pem);
    assert_eq!(list.ok()["CertInfoSet"][0]["CertId"], id);

    legacy(
        &server,
        "BindLiveDomainCert",
        json!({"CertId": id, "DomainName": "Play.Example.com", "Status": 1}),
    )
    .ok();
    let bound = typed(
        &server,
        "DescribeLiveDomainCert",
        json!({"DomainName": "play.example.com"}),
    );
    assert_no_key(&bound, &pem);
    let d = &bound.ok()["DomainCertInfo"];
    assert_eq!(d["CertId"], id);
    assert_eq!(d["DomainName"], "play.example.com");
    assert_eq!(d["Status"], 1);
    assert_eq!(
        d["CertDomains"],
        json!(["*.example.com", "play.example.com"])
    );
    let cloud_id = d["CloudCertId"].as_str().unwrap_or("");
    assert!(
        cloud_id.len() == 8 && cloud_id.chars().all(|c| c.is_ascii_alphanumeric()),
        "{d}"
    );
    let info = typed(&server, "DescribeLiveCert", json!({"CertId": id}));
    assert_eq!(
        info.ok()["CertInfo"]["DomainList"],
        json!(["play.example.com"])
    );

    legacy(
        &server,
        "ModifyLiveDomainCert",
        json!({"DomainName": "play.example.com", "Status": 0}),
    )
    .ok();
    let d = typed(
        &server,
        "DescribeLiveDomainCert",
        json!({"DomainName": "play.example.com"}),
    );
    assert_eq!(d.ok()["DomainCertInfo"]["Status"], 0);

    // A new pair for the same names, and a new name; the type is CertId's
    // string form in this legacy action.
    let renewed = example_com();
    legacy(
        &server,
        "ModifyLiveCert",
        json!({"CertId": id.to_string(), "CertName": "renewed",
               "HttpsCrt": renewed.crt, "HttpsKey": renewed.key}),
    )
    .ok();
    let info = typed(&server, "DescribeLiveCert", json!({"CertId": id}));
    assert_no_key(&info, &renewed);
    assert_eq!(info.ok()["CertInfo"]["CertName"], "renewed");
    assert_eq!(
        info.ok()["CertInfo"]["HttpsCrt"].as_str(),
        Some(renewed.crt.as_str())
    );
    // Only the key: it must match the stored certificate.
    legacy(
        &server,
        "ModifyLiveCert",
        json!({"CertId": id.to_string(), "HttpsKey": pem.key}),
    )
    .expect_code("InternalError.CrtKeyNotMatch");
    legacy(
        &server,
        "ModifyLiveCert",
        json!({"CertId": id.to_string(), "HttpsKey": renewed.key}),
    )
    .ok();

    typed(
        &server,
        "UnBindLiveDomainCert",
        json!({"DomainName": "play.example.com"}),
    )
    .ok();
    typed(
        &server,
        "DescribeLiveDomainCert",
        json!({"DomainName": "play.example.com"}),
    )
    .expect_code("InternalError.CrtDateNotFound");
    legacy(&server, "DeleteLiveCert", json!({"CertId": id})).ok();
    typed(&server, "DescribeLiveCert", json!({"CertId": id}))
        .expect_code("InternalError.CrtDateNotFound");
    assert_eq!(
        typed(&server, "DescribeLiveCerts", json!({})).ok()["CertInfoSet"],
        json!([])
    );

    let log = server.log();
    assert!(!log.contains(&pem.key_marker()) && !log.contains(&renewed.key_marker()));
}

#[test]
fn bindings_are_made_from_a_cloud_cert_id_or_a_key_pair_with_per_domain_failures() {
    let server = Server::start();
    add_domain(&server, "a.example.com", 1);
    add_domain(&server, "b.example.com", 1);
    add_domain(&server, "play.other.org", 1);
    add_domain(&server, "push.example.com", 0);
    let pem = example_com();

    let out = typed(
        &server,
        "ModifyLiveDomainCertBindings",
        json!({
            "CertificatePublicKey": pem.crt,
            "CertificatePrivateKey": pem.key,
            "CertificateAlias": "wild",
            "DomainInfos": [
                {"DomainName": "a.example.com", "Status": 1},
                {"DomainName": "play.other.org", "Status": 1},
                {"DomainName": "nope.example.com", "Status": 1},
            ],
        }),
    );
    let resp = out.ok();
    assert_eq!(resp["MismatchedDomainNames"], json!(["play.other.org"]));
    let errors: Vec<(String, String)> = resp["Errors"]
        .as_array()
        .expect("Errors")
        .iter()
        .map(|e| {
            (
                e["DomainName"].as_str().unwrap_or("").to_owned(),
                e["Code"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let code = "InternalError.CrtDomainNotFound".to_owned();
    assert_eq!(
        errors,
        vec![
            ("play.other.org".to_owned(), code.clone()),
            ("nope.example.com".to_owned(), code),
        ]
    );

    let list = typed(&server, "DescribeLiveDomainCertBindings", json!({}));
    assert_no_key(&list, &pem);
    assert_eq!(list.ok()["TotalNum"], 1);
    let row = &list.ok()["LiveDomainCertBindings"][0];
    assert_eq!(row["DomainName"], "a.example.com");
    assert_eq!(row["CertificateAlias"], "wild");
    assert_eq!(row["Status"], 1);
    assert!(
        is_plain_beijing(row["CertExpireTime"].as_str().unwrap_or("")),
        "{row}"
    );
    assert!(
        is_plain_beijing(row["UpdateTime"].as_str().unwrap_or("")),
        "{row}"
    );
    let cloud_id = row["CloudCertId"].as_str().expect("CloudCertId").to_owned();
    let cert_id = row["CertId"].as_i64().expect("CertId");
    // The uploaded pair became a stored certificate named by its alias.
    let info = typed(&server, "DescribeLiveCert", json!({"CertId": cert_id}));
    assert_eq!(info.ok()["CertInfo"]["CertName"], "wild");

    // The same certificate, by CloudCertId; Status -1 keeps the switch.
    typed(
        &server,
        "ModifyLiveDomainCertBindings",
        json!({"CloudCertId": cloud_id, "DomainInfos": [
            {"DomainName": "b.example.com", "Status": 0},
            {"DomainName": "a.example.com", "Status": -1},
        ]}),
    )
    .ok();
    let list = typed(&server, "DescribeLiveDomainCertBindings", json!({}));
    let rows = list.ok()["LiveDomainCertBindings"]
        .as_array()
        .expect("rows")
        .clone();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0]["DomainName"].clone(), rows[0]["Status"].clone()),
        (json!("a.example.com"), json!(1))
    );
    assert_eq!(
        (rows[1]["DomainName"].clone(), rows[1]["Status"].clone()),
        (json!("b.example.com"), json!(0))
    );
    assert!(rows.iter().all(|r| r["CertId"] == cert_id));

    // Neither certificate nor key pair: only the switch changes, and a
    // domain without a certificate is reported.
    let out = typed(
        &server,
        "ModifyLiveDomainCertBindings",
        json!({"DomainInfos": [
            {"DomainName": "b.example.com", "Status": 1},
            {"DomainName": "play.other.org", "Status": 1},
        ]}),
    );
    assert_eq!(out.ok()["Errors"][0]["DomainName"], "play.other.org");
    assert_eq!(
        out.ok()["Errors"][0]["Code"],
        "InternalError.CrtDateNotFound"
    );
    assert_eq!(out.ok()["MismatchedDomainNames"], json!([]));
    let b = typed(
        &server,
        "DescribeLiveDomainCertBindings",
        json!({"DomainName": "B.example.com"}),
    );
    assert_eq!(b.ok()["TotalNum"], 1);
    assert_eq!(b.ok()["LiveDomainCertBindings"][0]["Status"], 1);

    // Search, paging and order.
    let search = typed(
        &server,
        "DescribeLiveDomainCertBindings",
        json!({"DomainSearch": "b.exa", "Offset": 0, "Length": 50}),
    );
    assert_eq!(search.ok()["TotalNum"], 1);
    let page = typed(
        &server,
        "DescribeLiveDomainCertBindings",
        json!({"Offset": 1, "Length": 1, "OrderBy": "ExpireTimeDesc"}),
    );
    assert_eq!(page.ok()["TotalNum"], 2);
    assert_eq!(
        page.ok()["LiveDomainCertBindings"].as_array().map(Vec::len),
        Some(1)
    );
    typed(
        &server,
        "DescribeLiveDomainCertBindings",
        json!({"OrderBy": "Newest"}),
    )
    .expect_code("InvalidParameterValue");
}

#[test]
fn each_certificate_problem_answers_its_code() {
    let server = Server::start();
    add_domain(&server, "play.example.com", 1);
    add_domain(&server, "play.other.org", 1);
    add_domain(&server, "push.example.com", 0);
    let pem = example_com();
    let other = example_com();
    let old = expired();
    let create_with = |crt: &str, key: &str| {
        legacy(
            &server,
            "CreateLiveCert",
            json!({"CertType": 0, "HttpsCrt": crt, "HttpsKey": key}),
        )
    };
    create_with("not a certificate", &pem.key).expect_code("InternalError.CrtDateNotLegal");
    create_with(&pem.crt, "not a key").expect_code("InternalError.CrtDateNotLegal");
    create_with(&format!("{}{}", pem.crt, pem.key), &pem.key)
        .expect_code("InternalError.CrtDateNotLegal");
    create_with(&old.crt, &old.key).expect_code("InternalError.CrtDateOverdue");
    create_with(&pem.crt, &other.key).expect_code("InternalError.CrtKeyNotMatch");
    legacy(
        &server,
        "CreateLiveCert",
        json!({"CertType": 0, "HttpsCrt": pem.crt}),
    )
    .expect_code("MissingParameter");
    legacy(&server, "CreateLiveCert", json!({"CertType": 1})).expect_code("MissingParameter");
    legacy(
        &server,
        "CreateLiveCert",
        json!({"CertType": 2, "HttpsCrt": pem.crt, "HttpsKey": pem.key}),
    )
    .expect_code("InvalidParameterValue");
    legacy(
        &server,
        "CreateLiveCert",
        json!({"CertType": 1, "CloudCertId": "nOsUcH00"}),
    )
    .expect_code("InvalidParameter.CloudCrtIdError");
    // A dry run checks everything and stores nothing.
    legacy(
        &server,
        "CreateLiveCert",
        json!({"CertType": 0, "HttpsCrt": pem.crt, "HttpsKey": pem.key, "DryRun": true}),
    )
    .expect_code("DryRunOperation");
    assert_eq!(
        typed(&server, "DescribeLiveCerts", json!({})).ok()["CertInfoSet"],
        json!([])
    );

    let id = create(&server, &pem, "main");
    let bind = |domain: &str, cert_id: i64| {
        legacy(
            &server,
            "BindLiveDomainCert",
            json!({"CertId": cert_id, "DomainName": domain}),
        )
    };
    bind("nope.example.com", id).expect_code("InternalError.CrtDomainNotFound");
    bind("play.other.org", id).expect_code("InternalError.CrtDomainNotFound");
    bind("play.example.com", id + 100).expect_code("InternalError.CrtDateNotFound");
    legacy(
        &server,
        "BindLiveDomainCert",
        json!({"CertId": id, "DomainName": "play.example.com", "Status": 2}),
    )
    .expect_code("InvalidParameterValue");
    bind("play.example.com", id).ok();

    legacy(&server, "DeleteLiveCert", json!({"CertId": id}))
        .expect_code("InternalError.CrtDateInUsing");
    legacy(&server, "DeleteLiveCert", json!({"CertId": id + 100}))
        .expect_code("InternalError.CrtDateNotFound");
    typed(&server, "DescribeLiveCert", json!({"CertId": id + 100}))
        .expect_code("InternalError.CrtDateNotFound");
    legacy(&server, "ModifyLiveCert", json!({"CertId": "abc"}))
        .expect_code("InvalidParameterValue");
    legacy(
        &server,
        "ModifyLiveCert",
        json!({"CertId": id.to_string(), "CertType": 3}),
    )
    .expect_code("InvalidParameterValue");
    // A certificate that no longer covers a bound domain is refused.
    let narrow = issue(params(&["only.example.com"]));
    legacy(
        &server,
        "ModifyLiveCert",
        json!({"CertId": id.to_string(), "HttpsCrt": narrow.crt, "HttpsKey": narrow.key}),
    )
    .expect_code("InternalError.CrtDomainNotFound");
    legacy(
        &server,
        "ModifyLiveDomainCert",
        json!({"DomainName": "play.other.org", "Status": 1}),
    )
    .expect_code("InternalError.CrtDateNotFound");
    legacy(
        &server,
        "ModifyLiveDomainCert",
        json!({"DomainName": "play.example.com", "Status": 5}),
    )
    .expect_code("InvalidParameterValue");
    typed(
        &server,
        "UnBindLiveDomainCert",
        json!({"DomainName": "play.example.com", "Type": "blue"}),
    )
    .expect_code("InvalidParameterValue");
    // livestack has no gray rules: unbinding them leaves the formal one.
    typed(
        &server,
        "UnBindLiveDomainCert",
        json!({"DomainName": "play.example.com", "Type": "gray"}),
    )
    .ok();
    typed(
        &server,
        "DescribeLiveDomainCert",
        json!({"DomainName": "play.example.com"}),
    )
    .ok();
    typed(
        &server,
        "DescribeLiveDomainCert",
        json!({"DomainName": "nope.example.com"}),
    )
    .expect_code("InternalError.CrtDomainNotFound");

    let bindings = |params: Value| typed(&server, "ModifyLiveDomainCertBindings", params);
    bindings(json!({"CloudCertId": "nOsUcH00", "DomainInfos": [{"DomainName": "play.example.com", "Status": 1}]}))
        .expect_code("InvalidParameter.CloudCrtIdError");
    bindings(json!({"CertificatePublicKey": pem.crt, "DomainInfos": [{"DomainName": "play.example.com", "Status": 1}]}))
        .expect_code("MissingParameter");
    bindings(
        json!({"CertificatePublicKey": old.crt, "CertificatePrivateKey": old.key,
                    "DomainInfos": [{"DomainName": "play.example.com", "Status": 1}]}),
    )
    .expect_code("InternalError.CrtDateOverdue");
    bindings(
        json!({"CertificatePublicKey": pem.crt, "CertificatePrivateKey": other.key,
                    "DomainInfos": [{"DomainName": "play.example.com", "Status": 1}]}),
    )
    .expect_code("InternalError.CrtKeyNotMatch");
    bindings(
        json!({"CertificatePublicKey": "junk", "CertificatePrivateKey": other.key,
                    "DomainInfos": [{"DomainName": "play.example.com", "Status": 1}]}),
    )
    .expect_code("InternalError.CrtDateNotLegal");
    bindings(json!({"DomainInfos": [{"DomainName": "play.example.com", "Status": 2}]}))
        .expect_code("InvalidParameterValue");
    typed(
        &server,
        "DescribeLiveDomainCertBindings",
        json!({"Offset": -1}),
    )
    .expect_code("InvalidParameterValue");
}

#[test]
fn one_account_cannot_see_bind_modify_or_delete_another_accounts_certificates() {
    let server = Server::start();
    add_domain(&server, "play.example.com", 1);
    let pem = example_com();
    let id = create(&server, &pem, "root's");
    legacy(
        &server,
        "BindLiveDomainCert",
        json!({"CertId": id, "DomainName": "play.example.com"}),
    )
    .ok();
    let cloud_id = typed(
        &server,
        "DescribeLiveDomainCert",
        json!({"DomainName": "play.example.com"}),
    )
    .ok()["DomainCertInfo"]["CloudCertId"]
        .as_str()
        .expect("CloudCertId")
        .to_owned();

    let out = server.cli(&["keys", "create", "--account", "other"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    let other_key = json!({"secret_id": field("SecretId:"), "secret_key": field("SecretKey:")});
    let as_other = |action: &str, params: Value, raw: bool| {
        let spec = with(server.call(action, params), other_key.clone());
        python1(&with(spec, json!({"raw": raw})))
    };
    as_other(
        "AddLiveDomain",
        json!({"DomainName": "play.other.example.com", "DomainType": 1}),
        false,
    )
    .ok();

    assert_eq!(
        as_other("DescribeLiveCerts", json!({}), false).ok()["CertInfoSet"],
        json!([])
    );
    as_other("DescribeLiveCert", json!({"CertId": id}), false)
        .expect_code("InternalError.CrtDateNotFound");
    as_other(
        "ModifyLiveCert",
        json!({"CertId": id.to_string(), "CertName": "mine"}),
        true,
    )
    .expect_code("InternalError.CrtDateNotFound");
    as_other("DeleteLiveCert", json!({"CertId": id}), true)
        .expect_code("InternalError.CrtDateNotFound");
    as_other(
        "BindLiveDomainCert",
        json!({"CertId": id, "DomainName": "play.other.example.com"}),
        true,
    )
    .expect_code("InternalError.CrtDateNotFound");
    as_other(
        "CreateLiveCert",
        json!({"CertType": 1, "CloudCertId": cloud_id}),
        true,
    )
    .expect_code("InvalidParameter.CloudCrtIdError");
    as_other(
        "ModifyLiveDomainCertBindings",
        json!({"CloudCertId": cloud_id, "DomainInfos": [{"DomainName": "play.other.example.com", "Status": 1}]}),
        false,
    )
    .expect_code("InvalidParameter.CloudCrtIdError");
    // Nor can it touch the first account's domain rule.
    as_other(
        "DescribeLiveDomainCert",
        json!({"DomainName": "play.example.com"}),
        false,
    )
    .expect_code("InternalError.CrtDomainNotFound");
    as_other(
        "UnBindLiveDomainCert",
        json!({"DomainName": "play.example.com"}),
        false,
    )
    .expect_code("InternalError.CrtDomainNotFound");
    as_other(
        "ModifyLiveDomainCert",
        json!({"DomainName": "play.example.com", "Status": 0}),
        true,
    )
    .expect_code("InternalError.CrtDomainNotFound");
    let batch = as_other(
        "ModifyLiveDomainCertBindings",
        json!({"DomainInfos": [{"DomainName": "play.example.com", "Status": 0}]}),
        false,
    );
    assert_eq!(
        batch.ok()["Errors"][0]["Code"],
        "InternalError.CrtDomainNotFound"
    );
    assert_eq!(
        as_other("DescribeLiveDomainCertBindings", json!({}), false).ok()["TotalNum"],
        0
    );

    // The first account's certificate and rule are as they were.
    let d = typed(
        &server,
        "DescribeLiveDomainCert",
        json!({"DomainName": "play.example.com"}),
    );
    assert_eq!(d.ok()["DomainCertInfo"]["CertName"], "root's");
    assert_eq!(d.ok()["DomainCertInfo"]["Status"], 1);
}

#[test]
fn certificates_and_bindings_survive_a_restart() {
    let server = Server::start();
    add_domain(&server, "play.example.com", 1);
    let pem = example_com();
    let id = create(&server, &pem, "durable");
    legacy(
        &server,
        "BindLiveDomainCert",
        json!({"CertId": id, "DomainName": "play.example.com", "Status": 0}),
    )
    .ok();
    let server = server.restart();
    let d = typed(
        &server,
        "DescribeLiveDomainCert",
        json!({"DomainName": "play.example.com"}),
    );
    assert_no_key(&d, &pem);
    let info = &d.ok()["DomainCertInfo"];
    assert_eq!(
        (info["CertId"].as_i64(), info["Status"].as_i64()),
        (Some(id), Some(0))
    );
    assert_eq!(info["CertName"], "durable");
    assert_eq!(info["HttpsCrt"].as_str(), Some(pem.crt.as_str()));
}

#[test]
fn deleting_a_domain_drops_its_certificate_rule() {
    let server = Server::start();
    add_domain(&server, "play.example.com", 1);
    let pem = example_com();
    let id = create(&server, &pem, "main");
    legacy(
        &server,
        "BindLiveDomainCert",
        json!({"CertId": id, "DomainName": "play.example.com"}),
    )
    .ok();
    typed(
        &server,
        "DeleteLiveDomain",
        json!({"DomainName": "play.example.com", "DomainType": 1}),
    )
    .ok();
    let info = typed(&server, "DescribeLiveCert", json!({"CertId": id}));
    assert_eq!(info.ok()["CertInfo"]["DomainList"], json!([]));
    legacy(&server, "DeleteLiveCert", json!({"CertId": id})).ok();
}

#[test]
fn tccli_binds_a_key_pair_and_lists_bindings_and_certificates() {
    // tccli has the current actions (and DescribeLiveCerts), not the
    // legacy ones the current model dropped.
    let server = Server::start();
    add_domain(&server, "play.example.com", 1);
    let pem = example_com();
    let run = |args: &[&str]| {
        let out = tccli(&server, &server.secret_id, &server.secret_key, args);
        assert_eq!(out.code, 0, "{out:?}");
        let v: Value = serde_json::from_str(&out.stdout).expect("JSON");
        assert!(!out.stdout.contains("PRIVATE KEY"), "{}", out.stdout);
        v
    };
    let resp = run(&[
        "ModifyLiveDomainCertBindings",
        "--DomainInfos",
        r#"[{"DomainName": "play.example.com", "Status": 1}]"#,
        "--CertificatePublicKey",
        &pem.crt,
        "--CertificatePrivateKey",
        &pem.key,
        "--CertificateAlias",
        "from-cli",
    ]);
    assert_eq!(resp["Errors"], json!([]));
    let resp = run(&["DescribeLiveDomainCertBindings"]);
    assert_eq!(resp["TotalNum"], 1);
    assert_eq!(
        resp["LiveDomainCertBindings"][0]["CertificateAlias"],
        "from-cli"
    );
    let resp = run(&["DescribeLiveCerts"]);
    assert_eq!(resp["CertInfoSet"][0]["CertName"], "from-cli");
    assert_eq!(
        resp["CertInfoSet"][0]["DomainList"],
        json!(["play.example.com"])
    );
}
