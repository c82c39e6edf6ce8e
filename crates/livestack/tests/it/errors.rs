//! Every public error code of the seed, provoked through a real client (or
//! raw HTTP where no client can send such a request).

use serde_json::json;

use crate::harness::*;

#[test]
fn a_secret_id_that_is_not_an_api_key_id_is_invalid_secret_id() {
    let server = Server::start();
    let spec = with(
        server.call("DescribeLiveDomains", json!({})),
        json!({"secret_id": "not-a-key"}),
    );
    python1(&spec).expect_code("AuthFailure.InvalidSecretId");
}

#[test]
fn an_unknown_secret_id_is_secret_id_not_found() {
    let server = Server::start();
    let (other, _) = random_key();
    let spec = with(
        server.call("DescribeLiveDomains", json!({})),
        json!({"secret_id": other}),
    );
    node1(&spec).expect_code("AuthFailure.SecretIdNotFound");
    python1(&with(spec, json!({"sign_method": "HmacSHA256"})))
        .expect_code("AuthFailure.SecretIdNotFound");
}

#[test]
fn a_wrong_secret_key_is_signature_failure_for_both_signature_versions() {
    let server = Server::start();
    let spec = with(
        server.call("DescribeLiveDomains", json!({})),
        json!({"secret_key": "wrong"}),
    );
    python1(&spec).expect_code("AuthFailure.SignatureFailure");
    python1(&with(spec.clone(), json!({"sign_method": "HmacSHA1"})))
        .expect_code("AuthFailure.SignatureFailure");
    node1(&spec).expect_code("AuthFailure.SignatureFailure");
}

#[test]
fn a_clock_five_minutes_off_is_signature_expire() {
    let server = Server::start();
    for skew in [-400, 400] {
        let spec = with(
            server.call("DescribeLiveDomains", json!({})),
            json!({"clock_skew": skew}),
        );
        python1(&spec).expect_code("AuthFailure.SignatureExpire");
        python1(&with(spec, json!({"sign_method": "HmacSHA256"})))
            .expect_code("AuthFailure.SignatureExpire");
    }
    // Within the window is fine.
    let spec = with(
        server.call("DescribeLiveDomains", json!({})),
        json!({"clock_skew": -200}),
    );
    python1(&spec).ok();
}

#[test]
fn a_token_that_is_not_a_valid_temporary_credential_is_token_failure() {
    let server = Server::start();
    let spec = with(
        server.call("DescribeLiveDomains", json!({})),
        json!({"token": "bogus-token"}),
    );
    python1(&spec).expect_code("AuthFailure.TokenFailure");
    node1(&spec).expect_code("AuthFailure.TokenFailure");
}

#[test]
fn temporary_keys_work_with_their_token_and_fail_without_it() {
    let server = Server::start();
    let out = server.cli(&["keys", "create", "--ttl", "600"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    let (id, key, token) = (field("SecretId:"), field("SecretKey:"), field("Token:"));
    let base = with(
        server.call("DescribeLiveDomains", json!({})),
        json!({"secret_id": id, "secret_key": key}),
    );
    python1(&with(base.clone(), json!({"token": token}))).ok();
    python1(&with(
        base.clone(),
        json!({"token": token, "sign_method": "HmacSHA256"}),
    ))
    .ok();
    python1(&base).expect_code("AuthFailure.TokenFailure");
    python1(&with(base, json!({"token": "someone-elses"}))).expect_code("AuthFailure.TokenFailure");
}

#[test]
fn an_authorization_header_that_is_not_tc3_is_invalid_authorization() {
    let server = Server::start();
    // The Python SDK's SkipSign option sends `Authorization: SKIP`.
    let spec = with(
        server.call("DescribeLiveDomains", json!({})),
        json!({"skip_sign": true}),
    );
    python1(&spec).expect_code("AuthFailure.InvalidAuthorization");
    // No credentials at all.
    let resp = http(
        server.addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-TC-Action: DescribeLiveDomains\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    )
    .expect("send");
    assert_eq!(
        resp.code().as_deref(),
        Some("AuthFailure.InvalidAuthorization")
    );
}

#[test]
fn an_action_the_api_does_not_have_is_invalid_action() {
    let server = Server::start();
    let spec = with(
        server.call("DescribeLiveDomainz", json!({})),
        json!({"raw": true}),
    );
    let outcome = python1(&spec);
    outcome.expect_code("InvalidAction");
    node1(&spec).expect_code("InvalidAction");
}

#[test]
fn an_action_livestack_does_not_implement_yet_is_unsupported_operation_after_its_parameters_are_checked(
) {
    let server = Server::start();
    // A broadcast-director action: in the API, not in livestack.
    let outcome = python1(&server.call("DescribeCasterList", json!({})));
    outcome.expect_code("UnsupportedOperation");
    assert!(
        outcome.message().contains("DescribeCasterList"),
        "{}",
        outcome.message()
    );
    // Its parameters are still checked against the model first.
    let spec = with(
        server.call("DescribeCasterList", json!({"Nope": 1})),
        json!({"raw": true}),
    );
    python1(&spec).expect_code("UnknownParameter");
}

#[test]
fn a_version_other_than_2018_08_01_is_no_such_version() {
    let server = Server::start();
    let spec = with(
        server.call("DescribeLiveDomains", json!({})),
        json!({"version": "2017-03-12"}),
    );
    python1(&spec).expect_code("NoSuchVersion");
    python1(&with(spec, json!({"sign_method": "HmacSHA256"}))).expect_code("NoSuchVersion");
}

#[test]
fn methods_other_than_get_and_post_are_unsupported_protocol() {
    let server = Server::start();
    for method in ["PUT", "DELETE", "PATCH"] {
        let req = format!(
            "{method} / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let resp = http(server.addr, req.as_bytes()).expect("send");
        assert_eq!(resp.status, 200);
        assert_eq!(
            resp.code().as_deref(),
            Some("UnsupportedProtocol"),
            "{method}"
        );
    }
}

#[test]
fn a_region_outside_the_configured_list_is_unsupported_region_and_no_region_is_fine() {
    let server = Server::start();
    let spec = with(
        server.call("DescribeLiveDomains", json!({})),
        json!({"region": "mars-north-1"}),
    );
    python1(&spec).expect_code("UnsupportedRegion");
    python1(&with(spec.clone(), json!({"sign_method": "HmacSHA256"})))
        .expect_code("UnsupportedRegion");
    python1(&with(spec.clone(), json!({"region": ""}))).ok();
    node1(&with(spec.clone(), json!({"region": ""}))).ok();
    python1(&with(spec, json!({"region": "ap-singapore"}))).ok();
}

#[test]
fn an_absent_required_parameter_is_missing_parameter() {
    let server = Server::start();
    let spec = with(
        server.call("DescribeLiveDomain", json!({})),
        json!({"raw": true}),
    );
    let outcome = python1(&spec);
    outcome.expect_code("MissingParameter");
    assert!(
        outcome.message().contains("DomainName"),
        "{}",
        outcome.message()
    );
    python1(&with(spec, json!({"sign_method": "HmacSHA1"}))).expect_code("MissingParameter");
}

#[test]
fn a_parameter_the_action_does_not_define_is_unknown_parameter() {
    let server = Server::start();
    let spec = with(
        server.call("DescribeLiveDomains", json!({"PageSise": 10})),
        json!({"raw": true}),
    );
    let outcome = python1(&spec);
    outcome.expect_code("UnknownParameter");
    assert!(
        outcome.message().contains("PageSise"),
        "{}",
        outcome.message()
    );
    node1(&with(spec.clone(), json!({"req_method": "GET"}))).expect_code("UnknownParameter");
}

#[test]
fn a_value_of_the_wrong_type_is_invalid_parameter() {
    let server = Server::start();
    let spec = with(
        server.call("DescribeLiveDomains", json!({"PageSize": "ten"})),
        json!({"raw": true}),
    );
    let outcome = python1(&spec);
    outcome.expect_code("InvalidParameter");
    assert!(
        outcome.message().contains("PageSize"),
        "{}",
        outcome.message()
    );
    python1(&with(spec.clone(), json!({"req_method": "GET"}))).expect_code("InvalidParameter");
    python1(&with(spec, json!({"sign_method": "HmacSHA256"}))).expect_code("InvalidParameter");
}

#[test]
fn a_value_out_of_range_or_outside_the_enumeration_is_invalid_parameter_value() {
    let server = Server::start();
    for params in [
        json!({"PageSize": 5}),
        json!({"PageSize": 101}),
        json!({"PageNum": 0}),
        json!({"DomainType": 2}),
        json!({"PlayType": 4}),
    ] {
        python1(&server.call("DescribeLiveDomains", params.clone()))
            .expect_code("InvalidParameterValue");
    }
}

#[test]
fn too_many_requests_in_a_second_are_request_limit_exceeded_with_the_counts() {
    let server = Server::start_with_args(&["--api-rate-limit", "2"]);
    let spec = with(
        server.call("DescribeLiveDomains", json!({})),
        json!({"repeat": 10, "language": "en-US"}),
    );
    let outcomes = python(&spec);
    // Ten calls span at most two one-second windows, so at most four pass.
    let limited: Vec<_> = outcomes
        .iter()
        .filter(|o| o.code() == Some("RequestLimitExceeded"))
        .collect();
    assert!(limited.len() >= 6, "{outcomes:?}");
    assert!(
        limited[0]
            .message()
            .contains("exceeds the frequency limit `2` for a second"),
        "{}",
        limited[0].message()
    );
    // Another action has its own budget.
    let other = with(
        server.call("DescribeLiveDomain", json!({"DomainName": "a.example.com"})),
        json!({"raw": true}),
    );
    assert_ne!(python1(&other).code(), Some("RequestLimitExceeded"));
}

#[test]
fn dry_run_checks_everything_and_answers_dry_run_operation() {
    let server = Server::start();
    let spec = with(
        server.call("DescribeLiveDomains", json!({"DryRun": true})),
        json!({"raw": true}),
    );
    python1(&spec).expect_code("DryRunOperation");
    python1(&with(spec, json!({"req_method": "GET"}))).expect_code("DryRunOperation");
    // A dry run with a bad parameter reports the parameter, not success.
    let spec = with(
        server.call(
            "DescribeLiveDomains",
            json!({"DryRun": true, "PageSize": 1}),
        ),
        json!({"raw": true}),
    );
    python1(&spec).expect_code("InvalidParameterValue");
}

#[test]
fn a_request_over_the_size_limit_is_request_size_limit_exceeded() {
    let server = Server::start();
    // A GET query over 32 KB, sent by the SDK itself.
    let spec = with(
        server.call(
            "DescribeLiveDomains",
            json!({"DomainPrefix": "a".repeat(40 * 1024)}),
        ),
        json!({"req_method": "GET"}),
    );
    python1(&spec).expect_code("RequestSizeLimitExceeded");
    // A JSON body over 10 MB.
    let spec = server.call(
        "DescribeLiveDomains",
        json!({"DomainPrefix": "a".repeat(10 * 1024 * 1024 + 1)}),
    );
    python1(&spec).expect_code("RequestSizeLimitExceeded");
}

#[test]
fn a_malformed_body_is_invalid_parameter_logged_at_info_and_the_server_keeps_serving() {
    let server = Server::start();
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let bodies: [&[u8]; 7] = [
        b"{\"PageSize\": ",
        b"\xef\xbb\xbf{}",
        b"{\"PageSize\": NaN}",
        b"{} trailing",
        b"{\"DomainPrefix\": \"\\ud800\"}",
        b"{\"DomainPrefix\": \"\\q\"}",
        deep.as_bytes(),
    ];
    for body in bodies {
        let resp = Tc3Request::new(&server, "DescribeLiveDomains", body).send();
        assert_eq!(resp.status, 200);
        assert_eq!(
            resp.code().as_deref(),
            Some("InvalidParameter"),
            "{}",
            String::from_utf8_lossy(&body[..body.len().min(40)])
        );
        let id = resp.json()["Response"]["RequestId"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        assert!(is_uuid(&id));
        let line = server
            .log()
            .lines()
            .find(|l| l.contains(&id))
            .map(str::to_owned)
            .unwrap_or_default();
        assert!(
            line.contains("INFO"),
            "logged at INFO with its RequestId: {line:?}"
        );
    }
    python1(&server.call("DescribeLiveDomains", json!({}))).ok();
}

#[test]
fn a_failure_inside_the_server_is_internal_error_logged_with_its_request_id() {
    let pictures = crate::templates::Pictures::start();
    let server = Server::start();
    // Where watermark pictures are kept is taken by a file: saving one fails.
    std::fs::write(server.data_dir.join("watermarks"), b"in the way").expect("write");
    let outcome = python1(&server.call(
        "AddLiveWatermark",
        json!({"PictureUrl": pictures.url("/logo.png"), "WatermarkName": "logo"}),
    ));
    outcome.expect_code("InternalError");
    let line = server
        .log()
        .lines()
        .find(|l| l.contains(outcome.request_id()))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(
        line.contains("ERROR"),
        "the cause is logged with the RequestId: {line:?}"
    );
    python1(&server.call("DescribeLiveDomains", json!({}))).ok();
}

#[test]
fn a_database_failure_is_internal_error_db_error_logged_with_its_request_id() {
    let server = Server::start();
    // CASCADE: PostgreSQL refuses to drop a table others refer to; SQLite
    // does not check.
    let drop = if server.database_url.is_some() {
        "DROP TABLE domains CASCADE"
    } else {
        "DROP TABLE domains"
    };
    server
        .store()
        .run_blocking(move |c| Ok(c.execute_batch(drop)?))
        .expect("drop");
    let outcome = python1(&server.call(
        "AddLiveDomain",
        json!({"DomainName": "a.example.com", "DomainType": 0}),
    ));
    outcome.expect_code("InternalError.DBError");
    assert!(
        !outcome.message().contains("domains"),
        "no internals reach the client"
    );
    let log = server.log();
    assert!(log.contains(outcome.request_id()), "{log}");
    assert!(
        log.contains("no such table") || log.contains("\"domains\" does not exist"),
        "{log}"
    );
    // Authentication still works: the server is up.
    let bad = with(
        server.call("DescribeLiveDomains", json!({})),
        json!({"secret_key": "x"}),
    );
    python1(&bad).expect_code("AuthFailure.SignatureFailure");
}

#[test]
fn a_replayed_legacy_request_is_refused() {
    use livestack_api::auth::v1;
    let server = Server::start();
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        .to_string();
    let mut params = vec![
        ("Action", "DescribeLiveDomains"),
        ("Version", "2018-08-01"),
        ("Timestamp", ts.as_str()),
        ("Nonce", "424242"),
        ("SecretId", server.secret_id.as_str()),
        ("SignatureMethod", "HmacSHA256"),
    ];
    let host = server.endpoint();
    let sts = v1::string_to_sign("POST", &host, &params);
    let sig = v1::sign(v1::Method::HmacSha256, &server.secret_key, &sts);
    params.push(("Signature", &sig));
    let body: String = form_body(&params);
    let req = format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let first = http(server.addr, req.as_bytes()).expect("send");
    assert_eq!(first.code(), None, "{}", first.json());
    let second = http(server.addr, req.as_bytes()).expect("send");
    assert_eq!(
        second.code().as_deref(),
        Some("AuthFailure.SignatureFailure")
    );
}

fn form_body(params: &[(&str, &str)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}
