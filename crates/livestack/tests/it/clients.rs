//! The success path through every official client and both signature
//! versions, and the envelope details the clients depend on.

use serde_json::json;

use crate::harness::*;

fn assert_empty_domain_list(outcome: &Outcome) {
    let resp = outcome.ok();
    assert_eq!(resp["AllCount"], 0, "{resp}");
    assert_eq!(resp["DomainList"], json!([]));
    assert_eq!(resp["CreateLimitCount"], 100);
    assert_eq!(resp["PlayTypeCount"], json!([0, 0, 0]));
    assert!(is_uuid(outcome.request_id()), "{}", outcome.0);
}

#[test]
fn python_sdk_lists_domains_with_every_signature_version_and_method() {
    let server = Server::start();
    for (method, sign) in [
        ("POST", "TC3-HMAC-SHA256"),
        ("GET", "TC3-HMAC-SHA256"),
        ("POST", "HmacSHA1"),
        ("POST", "HmacSHA256"),
        ("GET", "HmacSHA1"),
        ("GET", "HmacSHA256"),
    ] {
        let spec = with(
            server.call("DescribeLiveDomains", json!({"PageSize": 10})),
            json!({"req_method": method, "sign_method": sign}),
        );
        let outcome = python1(&spec);
        assert!(outcome.code().is_none(), "{method} {sign}: {}", outcome.0);
        assert_empty_domain_list(&outcome);
    }
}

#[test]
fn python_sdk_unsigned_payload_and_generic_client_work() {
    let server = Server::start();
    let spec = with(
        server.call("DescribeLiveDomains", json!({})),
        json!({"unsigned_payload": true}),
    );
    assert_empty_domain_list(&python1(&spec));
    // The generic CommonClient sends the same request untyped; the integer
    // as a string is what the official examples send.
    let spec = with(
        server.call(
            "DescribeLiveDomains",
            json!({"PageSize": "20", "PageNum": 1}),
        ),
        json!({"raw": true}),
    );
    assert_empty_domain_list(&python1(&spec));
}

#[test]
fn node_sdk_lists_domains_with_tc3_and_legacy_signatures() {
    let server = Server::start();
    for (method, sign) in [
        ("POST", None),
        ("GET", None),
        ("POST", Some("HmacSHA256")),
        ("GET", Some("HmacSHA1")),
    ] {
        let mut spec = with(
            server.call("DescribeLiveDomains", json!({"PageSize": 10})),
            json!({"req_method": method}),
        );
        if let Some(sign) = sign {
            spec = with(spec, json!({"sign_method": sign}));
        }
        let outcome = node1(&spec);
        assert!(outcome.code().is_none(), "{method} {sign:?}: {}", outcome.0);
        assert_empty_domain_list(&outcome);
    }
}

#[test]
fn tccli_lists_domains_and_exits_255_with_the_code_on_failure() {
    let server = Server::start();
    let ok = tccli(
        &server,
        &server.secret_id,
        &server.secret_key,
        &["DescribeLiveDomains", "--PageSize", "10"],
    );
    assert_eq!(ok.code, 0, "{ok:?}");
    let resp: serde_json::Value = serde_json::from_str(&ok.stdout).expect("tccli prints JSON");
    assert_eq!(resp["AllCount"], 0);
    assert!(is_uuid(resp["RequestId"].as_str().unwrap_or("")));

    let bad = tccli(
        &server,
        &server.secret_id,
        "wrong-secret",
        &["DescribeLiveDomains"],
    );
    assert_eq!(bad.code, 255, "{bad:?}");
    assert!(
        bad.stderr.contains("code:AuthFailure.SignatureFailure"),
        "{}",
        bad.stderr
    );

    let bad = tccli(
        &server,
        &server.secret_id,
        &server.secret_key,
        &["DescribeLiveDomains", "--PageSize", "5"],
    );
    assert_eq!(bad.code, 255, "{bad:?}");
    assert!(
        bad.stderr.contains("code:InvalidParameterValue"),
        "{}",
        bad.stderr
    );
}

#[test]
fn a_hand_written_client_signing_like_the_documentation_example_is_accepted() {
    // Tencent's doc example signs content-type;host;x-tc-action with the
    // values lower-cased and sends a charset in the content type.
    let server = Server::start();
    let mut req = Tc3Request::new(&server, "DescribeLiveDomains", b"{}");
    req.content_type = "application/json; charset=utf-8";
    req.signed_headers = &["content-type", "host", "x-tc-action"];
    req.lower_values = true;
    let resp = req.send();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["Response"]["AllCount"], 0, "{}", resp.json());
}

#[test]
fn a_host_header_written_with_a_scheme_is_signed_as_opaque_bytes() {
    // tccli users write `--endpoint http://127.0.0.1:PORT`, and that string
    // becomes the Host header.
    let server = Server::start();
    let mut req = Tc3Request::new(&server, "DescribeLiveDomains", b"{}");
    req.host = format!("http://{}", server.endpoint());
    let resp = req.send();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["Response"]["AllCount"], 0, "{}", resp.json());
}

#[test]
fn every_answer_is_http_200_json_with_a_request_id_and_the_trace_id_echoed() {
    let server = Server::start();
    let ok = Tc3Request::new(&server, "DescribeLiveDomains", b"{}").send();
    let mut bad = Tc3Request::new(&server, "NoSuchAction", b"{}");
    bad.action = "NoSuchAction";
    let bad = bad.send();
    for resp in [ok, bad] {
        assert_eq!(resp.status, 200);
        // Exactly this: with a charset the Python SDK ignores errors.
        assert_eq!(resp.header("content-type"), Some("application/json"));
        assert_eq!(resp.header("x-tc-traceid"), Some("trace-me"));
        let id = resp.json()["Response"]["RequestId"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        assert!(is_uuid(&id), "{}", resp.json());
    }
}

#[test]
fn error_messages_are_chinese_by_default_and_english_on_request() {
    let server = Server::start();
    let spec = server.call("NoSuchAction", json!({}));
    let zh = python1(&with(spec.clone(), json!({"raw": true})));
    zh.expect_code("InvalidAction");
    assert!(zh.message().contains("接口"), "{}", zh.message());
    let en = python1(&with(spec, json!({"raw": true, "language": "en-US"})));
    en.expect_code("InvalidAction");
    assert!(en.message().contains("does not exist"), "{}", en.message());
    // The legacy signature carries the language as a parameter.
    let en = node1(&with(
        server.call("DescribeLiveDomains", json!({"PageSize": 1})),
        json!({"sign_method": "HmacSHA256", "language": "en-US"}),
    ));
    en.expect_code("InvalidParameterValue");
    assert!(
        en.message().contains("PageSize must be between 10 and 100"),
        "{}",
        en.message()
    );
}

#[test]
fn healthz_answers_200_once_ready() {
    let server = Server::start();
    let resp = http(
        server.addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .expect("healthz");
    assert_eq!(resp.status, 200);
}
