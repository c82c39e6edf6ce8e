//! Domain ownership (`AuthenticateDomainOwner`) against a local name
//! server and a local web server, as the operator's settings point them
//! (`[api] owner_dns_server`, `owner_file_url`), and the rule it lifts:
//! with `verify_domain_owner`, a domain under a main domain another
//! account has is refused (`FailedOperation.DomainNeedVerifyOwner`) until
//! this account has proven it controls it.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::harness::*;
use crate::relay_tasks::Files;

/// A name server on 127.0.0.1:0 answering TXT questions from `records`
/// (NXDOMAIN for other names), until the process ends.
struct NameServer {
    addr: SocketAddr,
    records: Arc<Mutex<HashMap<String, String>>>,
}

impl NameServer {
    fn start() -> NameServer {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let addr = socket.local_addr().expect("address");
        let records: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let known = Arc::clone(&records);
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while let Ok((n, peer)) = socket.recv_from(&mut buf) {
                if let Some(answer) = answer(&buf[..n], &known.lock().unwrap()) {
                    let _ = socket.send_to(&answer, peer);
                }
            }
        });
        NameServer { addr, records }
    }
}

/// The answer to one query: its question echoed, and a TXT record if
/// the name has one.
fn answer(q: &[u8], records: &HashMap<String, String>) -> Option<Vec<u8>> {
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(at)? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(q.get(at..at + len)?).to_ascii_lowercase());
        at += len;
    }
    let question = q.get(12..at + 4)?;
    let name = labels.join(".");
    let record = records.get(&name);
    let mut out = Vec::new();
    out.extend_from_slice(&q[..2]);
    out.extend_from_slice(if record.is_some() {
        &[0x81, 0x80]
    } else {
        &[0x81, 0x83]
    });
    out.extend_from_slice(&[0, 1, 0, u8::from(record.is_some()), 0, 0, 0, 0]);
    out.extend_from_slice(question);
    if let Some(text) = record {
        out.extend_from_slice(&[0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 60]);
        out.extend_from_slice(&((text.len() + 1) as u16).to_be_bytes());
        out.push(text.len() as u8);
        out.extend_from_slice(text.as_bytes());
    }
    Some(out)
}

fn owner_server(dns: SocketAddr, files: SocketAddr) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("livestack.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nverify_domain_owner = true\nowner_dns_server = \"{dns}\"\n\
             owner_file_url = \"http://{files}/{{domain}}/cssauth.html\"\n\
             [fetch]\nallow = [\"127.0.0.0/8\"]\n"
        ),
    )
    .expect("config");
    let server = Server::start_with(ServerOptions {
        args: vec!["--config".into(), config.to_string_lossy().into_owned()],
        ..ServerOptions::default()
    });
    (server, dir)
}

#[test]
fn a_main_domain_another_account_uses_needs_a_txt_record_or_a_file_before_it_can_be_added() {
    let dns = NameServer::start();
    let site = tempfile::tempdir().expect("tmp");
    let files = Files::serve(site.path().to_path_buf());
    let (server, _config) = owner_server(dns.addr, files.addr);
    // Another account already has a domain under example.com.
    let (id, key) = server.account_key("other");
    server
        .api_as(
            &id,
            &key,
            "AddLiveDomain",
            json!({"DomainName": "live.example.com", "DomainType": 0}),
        )
        .ok();
    let add = |name: &str| {
        server.api(
            "AddLiveDomain",
            json!({"DomainName": name, "DomainType": 1}),
        )
    };
    assert_eq!(
        add("play.example.com").code(),
        Some("FailedOperation.DomainNeedVerifyOwner")
    );
    // A main domain nobody else has needs nothing.
    add("play.example.org").ok();

    // Not proven yet: the content to publish, and Status < 0.
    let db = python1(&server.call(
        "AuthenticateDomainOwner",
        json!({"DomainName": "play.example.com", "VerifyType": "dbCheck"}),
    ));
    let content = db.ok()["Content"].as_str().expect("Content").to_owned();
    assert!(content.starts_with("cssauth_"), "{content}");
    assert_eq!(db.ok()["MainDomain"], "example.com");
    assert_eq!(db.ok()["Status"], -1);
    let check = |kind: &str, name: &str| {
        server
            .api(
                "AuthenticateDomainOwner",
                json!({"DomainName": name, "VerifyType": kind}),
            )
            .ok()["Status"]
            .as_i64()
            .unwrap_or(99)
    };
    // A record with the wrong value, or none, proves nothing.
    assert_eq!(check("dnsCheck", "play.example.com"), -1);
    dns.records
        .lock()
        .unwrap()
        .insert("_cssauth.example.com".into(), "cssauth_wrong".into());
    assert_eq!(check("dnsCheck", "play.example.com"), -1);
    assert_eq!(
        add("play.example.com").code(),
        Some("FailedOperation.DomainNeedVerifyOwner")
    );
    // The right one does, for every domain under it, and is remembered.
    dns.records
        .lock()
        .unwrap()
        .insert("_cssauth.example.com".into(), content.clone());
    assert_eq!(check("dnsCheck", "play.example.com"), 0);
    dns.records.lock().unwrap().clear();
    assert_eq!(check("dbCheck", "cdn.example.com"), 0);
    add("play.example.com").ok();
    add("hls.example.com").ok();

    // The file check, for a main domain of its own.
    server
        .api_as(
            &id,
            &key,
            "AddLiveDomain",
            json!({"DomainName": "push.example.net", "DomainType": 0}),
        )
        .ok();
    assert_eq!(check("fileCheck", "play.example.net"), -1, "no file yet");
    let theirs = server
        .api_as(
            &id,
            &key,
            "AuthenticateDomainOwner",
            json!({"DomainName": "play.example.net", "VerifyType": "dbCheck"}),
        )
        .ok()["Content"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    std::fs::create_dir_all(site.path().join("play.example.net")).unwrap();
    let file = site.path().join("play.example.net/cssauth.html");
    // Another account's content is not this account's proof.
    std::fs::write(&file, &theirs).unwrap();
    assert_eq!(check("fileCheck", "play.example.net"), -1);
    let mine = server
        .api(
            "AuthenticateDomainOwner",
            json!({"DomainName": "play.example.net", "VerifyType": "dbCheck"}),
        )
        .ok()["Content"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert_ne!(mine, theirs);
    std::fs::write(&file, format!("{mine}\n")).unwrap();
    assert_eq!(check("fileCheck", "play.example.net"), 0);
    add("play.example.net").ok();

    // The documented codes.
    let bad = server.api(
        "AuthenticateDomainOwner",
        json!({"DomainName": "play.example.com", "VerifyType": "mailCheck"}),
    );
    assert_eq!(bad.code(), Some("InvalidParameter"));
    let suffix = server.api(
        "AuthenticateDomainOwner",
        json!({"DomainName": "com.cn", "VerifyType": "dbCheck"}),
    );
    assert_eq!(suffix.code(), Some("InvalidParameter.DomainFormatError"));
}
