//! CAM policy and trust documents: parsing arbitrary text never panics, and a
//! document that parses evaluates without panicking for any call, with a
//! deny in it never turning into an allow when a statement is added.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livestack_core::cam::{evaluate, live_domain_resource, Policy, Request, Trust};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Trust policies (a role's) go through the same statement parser.
    let _ = Trust::parse(text);
    let Ok(policy) = Policy::parse(text) else {
        return;
    };
    let resources = [
        "*".to_owned(),
        live_domain_resource("ap-guangzhou", "100000000001", "play.example.com"),
    ];
    let deny_all = Policy::parse(
        r#"{"version":"2.0","statement":[{"effect":"deny","action":"*","resource":"*"}]}"#,
    )
    .expect("the deny-all policy parses");
    for action in ["live:DescribeLiveDomains", "cam:AddUser", "", "*"] {
        for ip in [None, Some("127.0.0.1".parse().expect("ip")), Some("::1".parse().expect("ip"))] {
            let request = Request {
                action,
                resources: &resources,
                owner_uin: "100000000001",
                app_id: 1250000001,
                ip,
                now: 1_800_000_000,
            };
            let _ = evaluate(&[("fuzzed", &policy)], &request);
            let with_deny = evaluate(&[("fuzzed", &policy), ("deny", &deny_all)], &request);
            assert!(!with_deny.allowed, "a deny-all policy beside it must win");
        }
    }
});
