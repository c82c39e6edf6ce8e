//! Several nodes sharing one PostgreSQL database: what one writes, the
//! others serve; quotas and unique names hold across them; a database that
//! goes away and comes back is survived without a restart.
//!
//! These need a PostgreSQL server: `scripts/test` starts one for its
//! PostgreSQL leg (and leaves these out of the SQLite leg). Run by hand,
//! they fail with that explanation rather than pass without checking.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{repo_root, test_database, wait_until, Server, ServerOptions};
use crate::media::{live_push, now, push_key, push_url, state, Publisher};

fn shared_database() -> String {
    test_database().expect(
        "the cluster tests need PostgreSQL: run scripts/test, which starts a server \
         for them (or set LIVESTACK_TEST_POSTGRES to one)",
    )
}

/// A node on the database at `url`, named apart from every other node.
fn node(url: &str) -> Server {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Server::start_with(ServerOptions {
        database_url: Some(url.to_owned()),
        args: vec!["--node-name".to_owned(), format!("node-{n}")],
        ..ServerOptions::default()
    })
}

/// Nodes on the shared database whose lease is 2 s, renewed every second,
/// so that a node's death or freeze shows within seconds. Keeps their
/// configuration file for as long as it lives.
struct ShortLease {
    url: String,
    config: String,
    _dir: tempfile::TempDir,
}

impl ShortLease {
    fn new() -> ShortLease {
        let dir = tempfile::tempdir().expect("tmp");
        let config = dir.path().join("short-lease.toml");
        std::fs::write(&config, "[cluster]\nlease_secs = 2\nlease_renew_secs = 1\n")
            .expect("config");
        ShortLease {
            url: shared_database(),
            config: config.to_str().expect("path").to_owned(),
            _dir: dir,
        }
    }

    /// A node named `name`, the real binary when `binary` (for signals).
    fn options(&self, binary: bool, name: &str) -> ServerOptions {
        ServerOptions {
            binary,
            database_url: Some(self.url.clone()),
            args: vec![
                "--config".to_owned(),
                self.config.clone(),
                "--node-name".to_owned(),
                name.to_owned(),
            ],
            ..ServerOptions::default()
        }
    }
}

fn domain_names(server: &Server) -> Vec<String> {
    let out = server.api("DescribeLiveDomains", json!({"PageSize": 100}));
    out.ok()["DomainList"]
        .as_array()
        .expect("DomainList")
        .iter()
        .map(|d| d["Name"].as_str().expect("Name").to_owned())
        .collect()
}

fn add_domain(server: &Server, name: &str) -> crate::harness::Outcome {
    server.api(
        "AddLiveDomain",
        json!({"DomainName": name, "DomainType": 1}),
    )
}

/// Runs SQL on the shared database as an operator would with psql.
fn sql(server: &Server, statement: &'static str) {
    server
        .store()
        .run_blocking(move |c| Ok(c.execute_batch(statement)?))
        .expect("SQL on the shared database");
}

#[test]
fn a_write_on_one_node_is_served_by_another_also_after_its_listening_connection_was_killed() {
    let url = shared_database();
    let a = node(&url);
    let b = node(&url);
    // Both nodes share one root account: a key made on A signs on B.
    assert_eq!(domain_names(&b), Vec::<String>::new());

    add_domain(&a, "one.example.com").ok();
    let started = Instant::now();
    assert!(
        wait_until(Duration::from_secs(10), || domain_names(&b)
            .contains(&"one.example.com".to_owned())),
        "B never saw A's domain"
    );
    eprintln!("B saw A's write after {:?}", started.elapsed());
    // B's media plane holds it too, not only its API read model.
    assert!(b.policy_in_force().domains.contains_key("one.example.com"));

    // Kill every listening connection of this database: notifications sent
    // while they are down are lost, and the reconnection reloads.
    sql(
        &a,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE application_name = 'livestack-listener' AND datname = current_database()",
    );
    add_domain(&a, "two.example.com").ok();
    assert!(
        wait_until(Duration::from_secs(10), || domain_names(&b)
            .contains(&"two.example.com".to_owned())),
        "B never saw the write made while its listener was down"
    );
    // And it listens again: a later write arrives too.
    add_domain(&b, "three.example.com").ok();
    assert!(
        wait_until(Duration::from_secs(10), || domain_names(&a)
            .contains(&"three.example.com".to_owned())),
        "A never saw B's write"
    );
    assert!(
        b.log().contains("listening again") || a.log().contains("listening again"),
        "the lost listener is logged"
    );
}

#[test]
fn two_nodes_racing_creates_never_exceed_the_domain_quota_or_duplicate_a_name() {
    let url = shared_database();
    let a = node(&url);
    let b = node(&url);
    // 60 distinct names from each node at once, two threads a node: 120
    // attempts at a quota of 100.
    let outcomes: Vec<(String, Option<String>)> = std::thread::scope(|s| {
        let mut handles = Vec::new();
        for (n, server) in [&a, &a, &b, &b].into_iter().enumerate() {
            handles.push(s.spawn(move || {
                (0..30)
                    .map(|i| {
                        let name = format!("n{n}-{i}.example.com");
                        let out = add_domain(server, &name);
                        (name, out.code().map(str::to_owned))
                    })
                    .collect::<Vec<_>>()
            }));
        }
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect()
    });
    let added = outcomes.iter().filter(|(_, code)| code.is_none()).count();
    let refused: Vec<_> = outcomes.iter().filter_map(|(_, c)| c.clone()).collect();
    assert_eq!(added, 100, "exactly the quota is added: {refused:?}");
    assert!(
        refused.iter().all(|c| c == "FailedOperation.HostOutLimit"),
        "every refusal is the quota's: {refused:?}"
    );
    let total = |s: &Server| {
        s.api("DescribeLiveDomains", json!({"PageSize": 10})).ok()["AllCount"]
            .as_i64()
            .expect("AllCount")
    };
    assert!(wait_until(Duration::from_secs(10), || total(&a) == 100
        && total(&b) == 100));

    // One name offered to both nodes at once, many times: one wins each.
    let url2 = shared_database();
    let (c, d) = (node(&url2), node(&url2));
    for i in 0..10 {
        let name = format!("same{i}.example.com");
        let (x, y) = std::thread::scope(|s| {
            let x = s.spawn(|| add_domain(&c, &name).code().map(str::to_owned));
            let y = s.spawn(|| add_domain(&d, &name).code().map(str::to_owned));
            (x.join().expect("x"), y.join().expect("y"))
        });
        let wins = [&x, &y].iter().filter(|c| c.is_none()).count();
        assert_eq!(
            wins, 1,
            "{name}: one node adds it, the other is told it exists ({x:?}, {y:?})"
        );
        let loser = x.or(y).expect("a refusal");
        // The same account on both nodes: "already added".
        assert_eq!(loser, "FailedOperation.DomainAdded");
    }
}

/// A PostgreSQL server of this test's own, to stop and start.
struct OwnServer {
    dir: PathBuf,
    url: String,
}

impl OwnServer {
    fn start() -> OwnServer {
        let dir = tempfile::Builder::new()
            .prefix("livestack-pg-own")
            .tempdir_in("/tmp")
            .expect("temp dir")
            .keep();
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let out = Command::new(repo_root().join("scripts/postgres"))
            .arg("start")
            .arg(dir.join("pg"))
            .output()
            .expect("scripts/postgres");
        assert!(out.status.success(), "{out:?}");
        let server = String::from_utf8(out.stdout)
            .expect("URL")
            .trim()
            .to_owned();
        let url = livestack_store::pg::create_scratch_database(&server).expect("database");
        OwnServer { dir, url }
    }

    fn pg_ctl(&self, verb: &str) {
        let out = Command::new(repo_root().join("scripts/postgres"))
            .arg(verb)
            .arg(self.dir.join("pg"))
            .output()
            .expect("scripts/postgres");
        assert!(out.status.success(), "{verb}: {out:?}");
    }

    /// Starts the stopped server again on its port (pg_ctl directly: the
    /// script's `start` makes a new cluster).
    fn restart(&self) {
        let bindir = std::fs::read_dir("/usr/lib/postgresql")
            .expect("/usr/lib/postgresql")
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .max()
            .expect("a PostgreSQL version");
        let data = self.dir.join("pg/data");
        let log = self.dir.join("pg/server.log");
        let status = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bindir.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "start"])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("pg_ctl start");
        assert!(status.success());
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/postgres"))
            .arg("stop")
            .arg(self.dir.join("pg"))
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_database_that_goes_away_answers_connect_db_error_and_is_used_again_when_it_is_back() {
    // Only this test's server is stopped: the shared one serves the others.
    let _needs_postgres = shared_database();
    let pg = OwnServer::start();
    let server = node(&pg.url);
    add_domain(&server, "before.example.com").ok();
    crate::media::add(&server, "push.example.com", 0);
    let key = push_key(&server);
    let signed = |stream: &str| {
        push_url(
            &server,
            stream,
            &livestack_core::urlsign::query(&key, stream, now() + 600),
        )
    };

    pg.pg_ctl("stop");
    // A new push cannot claim its stream: refused, with a clear log line,
    // rather than risk a second owner.
    let mut refused = Publisher::start(&signed("during"), 30);
    assert!(
        refused.wait(Duration::from_secs(15)).is_some(),
        "a push was accepted while the database was down"
    );
    assert!(
        server
            .log()
            .contains("push refused: cannot claim the stream"),
        "{}",
        server.log()
    );
    let started = Instant::now();
    let out = add_domain(&server, "during.example.com");
    out.expect_code("InternalError.ConnectDbError");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "answered, not hung: {:?}",
        started.elapsed()
    );
    // The stream actions answer the codes their own lists have.
    let stream = json!({"DomainName": "push.example.com", "AppName": "live", "StreamName": "cam1"});
    server
        .api("DescribeLiveStreamState", stream.clone())
        .expect_code("InternalError.GetStreamInfoError");
    server
        .api("DescribeLiveStreamOnlineList", json!({}))
        .expect_code("InternalError.GetUpstreamInfoError");
    // What is already known keeps being served from the cached policy.
    assert!(domain_names(&server).contains(&"before.example.com".to_owned()));
    let log = server.log();
    assert!(
        log.contains(out.request_id()),
        "the failure is logged with its RequestId"
    );

    pg.restart();
    // The next calls reconnect by themselves: no restart of livestack.
    assert!(
        wait_until(Duration::from_secs(20), || add_domain(
            &server,
            "after.example.com"
        )
        .code()
        .is_none()),
        "livestack never used the database again"
    );
    let names: Vec<Value> = domain_names(&server).into_iter().map(Value::from).collect();
    assert!(names.contains(&json!("after.example.com")), "{names:?}");
    assert!(!names.contains(&json!("during.example.com")), "{names:?}");
    // And pushes are taken again.
    let _publisher = Publisher::start(&signed("after"), 30);
    assert!(wait_until(Duration::from_secs(10), || state(
        &server, "after"
    ) == "active"));
}

fn online(server: &Server) -> Vec<String> {
    server.api("DescribeLiveStreamOnlineList", json!({})).ok()["OnlineInfo"]
        .as_array()
        .expect("OnlineInfo")
        .iter()
        .map(|s| s["StreamName"].as_str().expect("StreamName").to_owned())
        .collect()
}

#[test]
fn the_online_list_is_the_same_on_every_node_a_drop_on_any_node_ends_the_push_and_a_killed_nodes_streams_leave_after_its_lease(
) {
    let lease = ShortLease::new();
    let options = |binary: bool, name: &str| lease.options(binary, name);
    // A is the real binary, to be killed with SIGKILL.
    let mut a = Server::start_with(options(true, "node-a"));
    let b = Server::start_with(options(false, "node-b"));
    add_domain(&a, "play.example.com").ok();
    a.api(
        "AddLiveDomain",
        json!({"DomainName": "push.example.com", "DomainType": 0}),
    )
    .ok();

    let mut publisher = live_push(&a, "cam1", 60);
    assert!(
        wait_until(Duration::from_secs(10), || online(&b) == ["cam1"]),
        "B lists the stream pushed to A: {:?}",
        online(&b)
    );
    assert_eq!(online(&a), online(&b), "the same list from every node");
    assert_eq!(state(&b, "cam1"), "active");
    // B ends a push A holds: it orders A over the database and answers
    // once the push has ended there.
    b.api(
        "DropLiveStream",
        json!({"DomainName": "push.example.com", "AppName": "live", "StreamName": "cam1"}),
    )
    .ok();
    assert_eq!(state(&a, "cam1"), "inactive", "A dropped it");
    assert!(
        publisher.wait(Duration::from_secs(10)).is_some(),
        "A disconnected the publisher"
    );
    assert!(online(&b).is_empty());

    // Forbidding on B ends a push held by A too.
    let mut banned = live_push(&a, "cam3", 60);
    assert!(wait_until(Duration::from_secs(10), || online(&b) == ["cam3"]));
    b.api(
        "ForbidLiveStream",
        json!({"DomainName": "push.example.com", "AppName": "live", "StreamName": "cam3"}),
    )
    .ok();
    assert!(
        banned.wait(Duration::from_secs(10)).is_some(),
        "A disconnected the forbidden publisher"
    );
    assert!(wait_until(Duration::from_secs(10), || online(&b).is_empty()));

    let _publisher = live_push(&a, "cam2", 60);
    assert!(wait_until(Duration::from_secs(10), || online(&b) == ["cam2"]));
    a.kill9();
    let killed = Instant::now();
    assert!(
        wait_until(Duration::from_secs(15), || online(&b).is_empty()),
        "A's stream never left B's list"
    );
    let gone_after = killed.elapsed();
    eprintln!("A's stream left B's list {gone_after:?} after kill -9 (lease 2 s)");
    assert!(
        gone_after >= Duration::from_millis(500),
        "it stays listed until the lease runs out, not at once: {gone_after:?}"
    );
    assert_eq!(state(&b, "cam1"), "inactive");

    // The publisher reconnects to B and goes on under the same name.
    let key = push_key(&b);
    let _again = Publisher::start(
        &push_url(
            &b,
            "cam1",
            &livestack_core::urlsign::query(&key, "cam1", now() + 600),
        ),
        30,
    );
    assert!(wait_until(Duration::from_secs(10), || online(&b) == ["cam1"]));
}

#[test]
fn a_drop_for_a_node_that_cannot_answer_is_call_other_svr_error() {
    let url = shared_database();
    // A lease far longer than the 3 s a drop waits for its owner: with the
    // default 10 s, a node starved on a loaded machine before its pause
    // could see its lease run out inside the wait, and its stream leave.
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("long-lease.toml");
    std::fs::write(
        &config,
        "[cluster]\nlease_secs = 60\nlease_renew_secs = 3\n",
    )
    .expect("config");
    let a = Server::start_with(ServerOptions {
        binary: true,
        database_url: Some(url.clone()),
        args: vec![
            "--node-name".to_owned(),
            "paused-a".to_owned(),
            "--config".to_owned(),
            config.display().to_string(),
        ],
        ..ServerOptions::default()
    });
    let b = node(&url);
    a.api(
        "AddLiveDomain",
        json!({"DomainName": "push.example.com", "DomainType": 0}),
    )
    .ok();
    let _publisher = live_push(&a, "cam1", 60);
    assert!(wait_until(Duration::from_secs(10), || online(&b) == ["cam1"]));

    a.signal("-STOP");
    let started = Instant::now();
    let out = b.api(
        "DropLiveStream",
        json!({"DomainName": "push.example.com", "AppName": "live", "StreamName": "cam1"}),
    );
    a.signal("-CONT");
    out.expect_code("InternalError.CallOtherSvrError");
    assert!(out.message().contains("paused-a"), "{}", out.message());
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "answered after its wait, not hung: {:?}",
        started.elapsed()
    );
}

/// The value of the unlabelled metric `name` on `server`'s `/metrics`.
fn metric(server: &Server, name: &str) -> f64 {
    let raw = crate::harness::http(
        server.addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .expect("GET /metrics");
    let body = String::from_utf8_lossy(&raw.body).into_owned();
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in the metrics:\n{body}"))
}

/// A player reading `url` with ffmpeg for `seconds`, in the background.
fn player(url: &str, seconds: u32) -> std::process::Child {
    Command::new(crate::media::ffmpeg_bin("ffmpeg"))
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-rw_timeout",
            "10000000",
        ])
        .args([
            "-i",
            url,
            "-t",
            &seconds.to_string(),
            "-c",
            "copy",
            "-f",
            "null",
            "-",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("ffmpeg")
}

#[test]
fn a_stream_pushed_to_one_node_plays_on_another_over_rtmp_http_flv_and_hls_through_one_relay() {
    use crate::media::{add, assert_h264_aac, probe};
    let url = shared_database();
    let a = node(&url);
    let b = node(&url);
    add(&a, "push.example.com", 0);
    add(&a, "play.example.com", 1);
    assert!(wait_until(Duration::from_secs(10), || b
        .policy_in_force()
        .domains
        .contains_key("play.example.com")));
    let _publisher = live_push(&a, "cam1", 90);
    assert!(wait_until(Duration::from_secs(10), || online(&b) == ["cam1"]));

    // B has no push of cam1: it pulls it from A for its players and
    // serves it as its own, same codecs and picture size.
    let on_b = |path: &str, rtmp: bool| {
        if rtmp {
            format!("rtmp://{}/live/{path}?domain=play.example.com", b.rtmp)
        } else {
            format!("http://{}/live/{path}?domain=play.example.com", b.http)
        }
    };
    assert_h264_aac(&on_b("cam1", true));
    assert_h264_aac(&on_b("cam1.flv", false));
    assert!(
        wait_until(Duration::from_secs(15), || !probe(&on_b(
            "cam1.m3u8",
            false
        ))
        .is_empty()),
        "no HLS playlist on B"
    );
    assert_h264_aac(&on_b("cam1.m3u8", false));
    assert!(b.log().contains("relay started"), "{}", b.log());

    // Stopped once its last player has left.
    assert!(
        wait_until(Duration::from_secs(20), || metric(
            &b,
            "livestack_relays_up"
        ) == 0.0),
        "the relay outlived its players"
    );
    let started_before = metric(&b, "livestack_relays_total");

    // Five players at once over RTMP and HTTP-FLV: one relay, one pull
    // on A, whatever their number.
    let mut players: Vec<_> = (0..5)
        .map(|i| {
            let u = if i % 2 == 0 {
                on_b("cam1", true)
            } else {
                on_b("cam1.flv", false)
            };
            player(&u, 6)
        })
        .collect();
    assert!(wait_until(Duration::from_secs(10), || metric(
        &b,
        "livestack_relays_up"
    ) == 1.0));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(metric(&b, "livestack_relays_up"), 1.0);
    assert_eq!(metric(&b, "livestack_relays_total"), started_before + 1.0);
    let pulls = crate::harness::http(
        a.addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .expect("metrics");
    let pulls = String::from_utf8_lossy(&pulls.body).into_owned();
    let relay_players: f64 = pulls
        .lines()
        .filter(|l| l.starts_with("livestack_players{") && l.contains("protocol=\"relay\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(relay_players, 1.0, "A serves B one pull:\n{pulls}");
    for p in &mut players {
        assert!(p.wait().expect("player").success(), "an edge player failed");
    }

    // Nobody else may pull from A: the pull needs the cluster's signature.
    let forged = format!(
        "GET /.livestack/relay/live/cam1.flv?account=1&domain=play.example.com&t={}&sign=00 \
         HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        crate::media::now()
    );
    let refused = crate::harness::http(a.http, forged.as_bytes()).expect("forged pull");
    assert_eq!(refused.status, 403);
    assert!(a.log().contains("relay pull refused"));
}

#[test]
fn a_second_push_on_another_node_replaces_the_first_with_its_end_event_and_one_callback_each() {
    use crate::callbacks::{bind_callbacks, push, Receiver};
    let url = shared_database();
    let a = node(&url);
    let b = node(&url);
    crate::media::add(&a, "push.example.com", 0);
    let receiver = Receiver::start(&[]);
    bind_callbacks(
        &a,
        "live",
        json!({
            "StreamBeginNotifyUrl": receiver.url("/begin"),
            "StreamEndNotifyUrl": receiver.url("/end"),
        }),
    );
    assert!(wait_until(Duration::from_secs(10), || b
        .policy_in_force()
        .processing
        .rules
        .len()
        == 1));

    let mut first = push(&a, "cam1", 60);
    assert!(wait_until(Duration::from_secs(10), || online(&b) == ["cam1"]));
    receiver.wait_for("/begin", 1, Duration::from_secs(15));

    // The same stream pushed to B: B claims it, A's push ends as a
    // replaced one (21/102), as a second push on one node would.
    let _second = push(&b, "cam1", 60);
    assert!(
        first.wait(Duration::from_secs(10)).is_some(),
        "A's publisher was not disconnected"
    );
    let end = receiver.wait_for("/end", 1, Duration::from_secs(15));
    assert_eq!(end[0].body["errcode"], 21, "{}", end[0].body);
    assert!(a
        .log()
        .contains("replaced by a newer push of the same stream"));
    assert!(wait_until(Duration::from_secs(10), || online(&a)
        == ["cam1"]
        && online(&b) == ["cam1"]));
    let events = b.api(
        "DescribeLiveStreamEventList",
        json!({"StartTime": livestack_api::time::utc_iso(crate::media::now() - 300),
               "EndTime": livestack_api::time::utc_iso(crate::media::now() + 5), "IsAsc": 1}),
    );
    let list = events.ok()["EventList"]
        .as_array()
        .expect("EventList")
        .clone();
    let stops: Vec<_> = list.iter().map(|e| e["StopReason"].clone()).collect();
    assert!(
        stops.contains(&json!("replaced by a newer push of the same stream")),
        "{list:?}"
    );

    // One begin callback per push, one end for the push that ended: none
    // twice, none from a node that does not own the stream.
    receiver.wait_for("/begin", 2, Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        receiver.to("/begin").len(),
        2,
        "{:?}",
        receiver.to("/begin")
    );
    assert_eq!(receiver.to("/end").len(), 1, "{:?}", receiver.to("/end"));
}

#[test]
fn a_node_paused_past_its_lease_whose_stream_was_pushed_elsewhere_ends_its_own_push_when_it_wakes()
{
    let lease = ShortLease::new();
    let options = |binary: bool, name: &str| lease.options(binary, name);
    let a = Server::start_with(options(true, "fenced-a"));
    let b = Server::start_with(options(false, "fenced-b"));
    crate::media::add(&a, "push.example.com", 0);
    let mut on_a = live_push(&a, "cam1", 60);
    assert!(wait_until(Duration::from_secs(10), || online(&b) == ["cam1"]));

    a.signal("-STOP");
    // Past A's lease, and with the order B will send lost: every listening
    // connection is cut (A's cannot hear until it wakes).
    std::thread::sleep(Duration::from_secs(3));
    sql(
        &b,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE application_name = 'livestack-listener' AND datname = current_database()",
    );
    let key = push_key(&b);
    let _on_b = Publisher::start(
        &push_url(
            &b,
            "cam1",
            &livestack_core::urlsign::query(&key, "cam1", now() + 600),
        ),
        60,
    );
    assert!(wait_until(Duration::from_secs(10), || online(&b)
        == ["cam1"]
        && b.log().contains("replacing it there")));
    a.signal("-CONT");
    // A finds its lease had run out, checks its claims, finds cam1 taken
    // and ends its push instead of going on with it.
    assert!(
        on_a.wait(Duration::from_secs(15)).is_some(),
        "A kept the push whose stream B had claimed"
    );
    assert!(
        a.log()
            .contains("another node claimed the stream while this one's lease had run out"),
        "{}",
        a.log()
    );
    assert!(wait_until(Duration::from_secs(10), || online(&a) == ["cam1"]));
    assert_eq!(state(&b, "cam1"), "active");
}

#[test]
fn a_query_that_fails_for_another_reason_is_db_error_or_the_stream_actions_update_data_error() {
    let url = shared_database();
    let server = node(&url);
    crate::media::add(&server, "push.example.com", 0);
    // The database refuses these writes as a broken constraint or a full
    // disk would: the connection is fine, the statement fails.
    sql(
        &server,
        "CREATE FUNCTION livestack_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
         CREATE TRIGGER refuse_domains BEFORE INSERT ON domains
             FOR EACH ROW EXECUTE FUNCTION livestack_test_refuse();
         CREATE TRIGGER refuse_bans BEFORE INSERT OR UPDATE ON forbidden_streams
             FOR EACH ROW EXECUTE FUNCTION livestack_test_refuse();",
    );
    let out = add_domain(&server, "more.example.com");
    out.expect_code("InternalError.DBError");
    assert!(server.log().contains(out.request_id()));
    server
        .api(
            "ForbidLiveStream",
            json!({"DomainName": "push.example.com", "AppName": "live", "StreamName": "cam1"}),
        )
        .expect_code("InternalError.UpdateDataError");
    // Reads still work: nothing was half written.
    assert_eq!(domain_names(&server), ["push.example.com"]);
}

#[test]
fn describe_live_stream_push_info_list_on_any_node_lists_the_pushes_of_every_node() {
    let url = shared_database();
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("fast-samples.toml");
    std::fs::write(&config, "[media]\npush_sample_interval_secs = 1\n").expect("config");
    let options = |name: &str| ServerOptions {
        database_url: Some(url.clone()),
        args: vec![
            "--config".to_owned(),
            config.to_str().expect("path").to_owned(),
            "--node-name".to_owned(),
            name.to_owned(),
        ],
        ..ServerOptions::default()
    };
    let a = Server::start_with(options("info-a"));
    let b = Server::start_with(options("info-b"));
    crate::media::add(&a, "push.example.com", 0);
    let _on_a = live_push(&a, "cam1", 60);
    let _on_b = live_push(&b, "cam2", 60);
    let rows = |s: &Server| {
        s.api("DescribeLiveStreamPushInfoList", json!({})).ok()["DataInfoList"]
            .as_array()
            .expect("DataInfoList")
            .clone()
    };
    let mut seen = Vec::new();
    assert!(
        wait_until(Duration::from_secs(15), || {
            seen = rows(&b);
            seen.len() == 2
                && seen
                    .iter()
                    .all(|r| r["Resolution"] == "640*360" && r["Vcodec"] == "H264")
        }),
        "B lists both pushes as measured: {seen:?}"
    );
    assert_eq!(seen[0]["StreamName"], "cam1");
    assert_eq!(seen[1]["StreamName"], "cam2");
    assert_eq!(seen[0]["ClientIp"], "127.0.0.1");
    assert!(wait_until(Duration::from_secs(15), || rows(&a).len() == 2));
}

/// When each of `streams` started its current push, as `server` lists them.
fn publish_times(server: &Server, streams: &[String]) -> Vec<String> {
    let out = server.api("DescribeLiveStreamOnlineList", json!({"PageSize": 100}));
    streams
        .iter()
        .map(|name| {
            out.ok()["OnlineInfo"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|s| s["StreamName"] == name.as_str())
                .and_then(|s| s["PublishTimeList"][0]["PublishTime"].as_str())
                .unwrap_or("")
                .to_owned()
        })
        .collect()
}

#[test]
fn relay_tasks_run_once_in_a_cluster_and_move_to_a_live_node_when_theirs_dies() {
    use crate::media::add;
    let lease = ShortLease::new();
    let options = |binary: bool, name: &str| lease.options(binary, name);
    let a = Server::start_with(options(false, "relay-a"));
    let mut b = Server::start_with(options(true, "relay-b"));
    add(&a, "push.example.com", 0);
    add(&a, "play.example.com", 1);
    let _origin = live_push(&a, "origin", 120);
    let source = format!("http://{}/live/origin.flv?domain=play.example.com", a.http);
    // Both nodes are live before the tasks exist (their creation makes
    // every node read the policy, and with it the live nodes, again).
    assert!(wait_until(Duration::from_secs(10), || a
        .policy_in_force()
        .processing
        .nodes
        .len()
        == 2));
    let streams: Vec<String> = (0..6).map(|i| format!("relay{i}")).collect();
    for s in &streams {
        a.api(
            "CreateLivePullStreamTask",
            json!({"SourceType": "PullLivePushLive", "SourceUrls": [source],
                   "DomainName": "push.example.com", "AppName": "live", "StreamName": s,
                   "StartTime": livestack_api::time::utc_iso(now() - 5),
                   "EndTime": livestack_api::time::utc_iso(now() + 3600),
                   "Operator": "tests"}),
        )
        .ok();
    }
    let all_live = |server: &Server| {
        let listed = online(server);
        streams.iter().all(|s| listed.contains(s))
    };
    assert!(
        wait_until(Duration::from_secs(30), || all_live(&a) && all_live(&b)),
        "not every relay went live: {:?}",
        online(&a)
    );
    // Each task pushes from one node: no push replaces another.
    let first = publish_times(&a, &streams);
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        publish_times(&a, &streams),
        first,
        "a relay's push was replaced"
    );
    assert_eq!(publish_times(&b, &streams), first, "the nodes disagree");
    // Both nodes run some: the tasks are shared out (rendezvous hashing;
    // six tasks all landing on one of two nodes is a 1-in-32 chance, so
    // this is reported, not asserted).
    let on_a = a.log().matches("job started").count();
    eprintln!("node a started {on_a} relay jobs of {}", streams.len());

    // B dies: its tasks move to A once its lease runs out.
    b.kill9();
    // Until its lease runs out B's pushes are still listed; then A, alone
    // among the live nodes, takes every task.
    assert!(
        wait_until(Duration::from_secs(15), || a
            .policy_in_force()
            .processing
            .nodes
            == ["relay-a"]),
        "A never saw B leave"
    );
    assert!(
        wait_until(Duration::from_secs(30), || all_live(&a)
            && publish_times(&a, &streams).iter().all(|t| !t.is_empty())),
        "the dead node's relays did not move: {:?}",
        online(&a)
    );
    let after = publish_times(&a, &streams);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        publish_times(&a, &streams),
        after,
        "a relay's push was replaced"
    );
}
