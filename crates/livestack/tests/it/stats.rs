//! Statistics from real traffic: two HTTP-FLV players (curl) watch a
//! pushed stream until it ends, one request asks for a stream that is not
//! live; then the statistics actions answer for exactly that: flux within
//! 5 % of the bytes the players received, two players at the peak, the
//! requests and HTTP answers by code, the client address.
//!
//! The server reports its play statistics and samples pushes every second
//! (`play_stats_flush_secs = 1`, `push_sample_interval_secs = 1`) instead
//! of every minute.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;
use crate::media::{add, live_push, now};

fn stats_server() -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("livestack.toml");
    std::fs::write(
        &config,
        "[media]\nplay_stats_flush_secs = 1\npush_sample_interval_secs = 1\n",
    )
    .expect("config");
    let server = Server::start_with(ServerOptions {
        args: vec!["--config".into(), config.to_string_lossy().into_owned()],
        ..ServerOptions::default()
    });
    add(&server, "push.example.com", 0);
    add(&server, "play.example.com", 1);
    (server, dir)
}

/// An HTTP-FLV player: curl writing what it receives to `file`.
fn flv_player(server: &Server, stream: &str, file: &std::path::Path) -> Child {
    Command::new("curl")
        .args(["-sS", "--max-time", "60", "-o"])
        .arg(file)
        .arg(format!(
            "http://{}/live/{stream}.flv?domain=play.example.com",
            server.http
        ))
        .stdin(Stdio::null())
        .spawn()
        .expect("curl")
}

fn flux_bytes(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0) * 1e6
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= b * 0.05
}

#[test]
fn play_statistics_count_the_bytes_players_got_the_peak_players_and_each_answer() {
    let (server, dir) = stats_server();
    let started = now();
    let mut publisher = live_push(&server, "watched", 10);
    let files = [dir.path().join("a.flv"), dir.path().join("b.flv")];
    let mut players: Vec<Child> = files
        .iter()
        .map(|f| flv_player(&server, "watched", f))
        .collect();
    // A request for a stream that is not live: 404.
    let (status, _) = crate::llhls::get(&format!(
        "http://{}/live/absent.flv?domain=play.example.com",
        server.http
    ));
    assert_eq!(status, 404);
    assert!(
        publisher
            .wait(Duration::from_secs(30))
            .is_some_and(|s| s.success()),
        "push failed"
    );
    // The stream's end closes both players.
    for p in &mut players {
        assert!(p.wait().is_ok_and(|s| s.success()), "a player failed");
    }
    let received: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    assert!(received > 300_000, "the players got {received} bytes");

    let window = json!({
        "StartTime": livestack_api::time::utc_iso(started - 60),
        "EndTime": livestack_api::time::utc_iso(now() + 60),
    });
    // Minute by minute: the flux adds up to what the players got.
    let mut minutes = Value::Null;
    let counted = wait_until(Duration::from_secs(20), || {
        minutes = server
            .api("DescribeStreamPlayInfoList", window.clone())
            .ok()
            .clone();
        let flux: f64 = minutes["DataInfoList"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| flux_bytes(&p["Flux"]))
            .sum();
        close(flux, received as f64)
    });
    assert!(
        counted,
        "flux per minute against {received} bytes: {minutes}"
    );
    let points = minutes["DataInfoList"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let requests: u64 = points.iter().filter_map(|p| p["Request"].as_u64()).sum();
    assert_eq!(requests, 3, "two plays and one refused: {minutes}");
    for p in &points {
        let bw = p["Bandwidth"].as_f64().unwrap_or(0.0);
        let flux = p["Flux"].as_f64().unwrap_or(0.0);
        assert!((bw - flux * 8.0 / 60.0).abs() < 1e-9, "{p}");
    }
    // The same for the one stream by name, and nothing for another.
    let one = server.api(
        "DescribeStreamPlayInfoList",
        with(
            window.clone(),
            json!({"StreamName": "watched", "PlayDomain": "play.example.com"}),
        ),
    );
    let flux: f64 = one.ok()["DataInfoList"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| flux_bytes(&p["Flux"]))
        .sum();
    assert!(close(flux, received as f64));
    let leb = server.api(
        "DescribeStreamPlayInfoList",
        with(window.clone(), json!({"ServiceName": "LEB"})),
    );
    assert!(leb.ok()["DataInfoList"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|p| p["Flux"] == 0.0 && p["Request"] == 0));

    // Per minute and protocol: two HTTP-FLV players at the peak.
    // Every minute the plays touched, each asked for at its own start: a
    // push begun near a minute's end may have its players wholly in the
    // next one.
    let mut peak = 0;
    let first_minute = started.div_euclid(60) * 60 - 60;
    for t in (first_minute..=now()).step_by(60) {
        let all = server.api(
            "DescribeAllStreamPlayInfoList",
            json!({"QueryTime": livestack_api::time::utc_iso(t)}),
        );
        for row in all.ok()["DataInfoList"].as_array().into_iter().flatten() {
            if row["StreamName"] == "watched" {
                assert_eq!(row["Protocol"], "Flv");
                assert_eq!(row["PlayDomain"], "play.example.com");
                peak = peak.max(row["Online"].as_u64().unwrap_or(0));
            }
        }
    }
    assert_eq!(peak, 2, "peak players");

    // Billing: the sum and a peak; 95th percentile no more than the peak.
    let bill = server.api("DescribeBillBandwidthAndFluxList", window.clone());
    let bill = bill.ok();
    assert!(
        close(flux_bytes(&bill["SumFlux"]), received as f64),
        "{bill}"
    );
    let peak_bw = bill["PeakBandwidth"].as_f64().unwrap_or(0.0);
    assert!(peak_bw > 0.0);
    assert!(bill["P95PeakBandwidth"].as_f64().unwrap_or(f64::MAX) <= peak_bw);
    server
        .api(
            "DescribeBillBandwidthAndFluxList",
            with(window.clone(), json!({"Granularity": 7})),
        )
        .expect_code("InvalidParameterValue");

    // Top streams and client addresses; answers by code.
    let beijing = |t: i64| livestack_api::time::beijing(t);
    let top = server.api(
        "DescribeVisitTopSumInfoList",
        json!({"StartTime": beijing(started - 60), "EndTime": beijing(now() + 60),
               "TopIndex": "StreamId", "OrderParam": "TotalFlux"}),
    );
    let first = &top.ok()["DataInfoList"][0];
    assert_eq!(first["Name"], "watched");
    assert!(close(flux_bytes(&first["TotalFlux"]), received as f64));
    let ips = server.api("DescribeTopClientIpSumInfoList", window.clone());
    let ip = &ips.ok()["DataInfoList"][0];
    assert_eq!(ip["ClientIp"], "127.0.0.1");
    assert_eq!(
        (ip["TotalRequest"].clone(), ip["TotalFailedRequest"].clone()),
        (json!(3), json!(1))
    );
    assert_eq!(ip["Province"], "未知");
    let statuses = server.api("DescribeHttpStatusInfoList", window.clone());
    let mut by_code = std::collections::BTreeMap::new();
    for slot in statuses.ok()["DataInfoList"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for s in slot["HttpStatusInfoList"].as_array().into_iter().flatten() {
            *by_code
                .entry(s["HttpStatus"].as_str().unwrap_or("").to_owned())
                .or_insert(0) += s["Num"].as_u64().unwrap_or(0);
        }
    }
    assert_eq!(
        by_code,
        [("200".to_owned(), 2), ("404".to_owned(), 1)]
            .into_iter()
            .collect()
    );
    let sums = server.api(
        "DescribePlayErrorCodeSumInfoList",
        json!({"StartTime": beijing(started - 60), "EndTime": beijing(now() + 60)}),
    );
    let sums = sums.ok();
    assert_eq!(
        (
            sums["TotalCode2xx"].clone(),
            sums["TotalCode4xx"].clone(),
            sums["TotalCodeAll"].clone()
        ),
        (json!(2), json!(1), json!(3))
    );
    assert_eq!(sums["TotalCodeList"], json!([{"Code": "404", "Num": 1}]));

    // Provinces and ISPs: no IP database, so one unknown group with all of
    // it, and nothing in a province asked for by name.
    let groups = server.api("DescribeGroupProIspPlayInfoList", window.clone());
    let group = &groups.ok()["DataInfoList"][0];
    assert_eq!(
        (group["ProvinceName"].clone(), group["IspName"].clone()),
        (json!("未知"), json!("未知"))
    );
    let flux: f64 = group["DetailInfoList"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| flux_bytes(&p["Flux"]))
        .sum();
    assert!(close(flux, received as f64));
    let province = |names: Value| {
        let r = server.api(
            "DescribeProvinceIspPlayInfoList",
            with(
                window.clone(),
                json!({"Granularity": 1, "StatType": "Flux", "ProvinceNames": names}),
            ),
        );
        r.ok()["DataInfoList"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| flux_bytes(&p["Value"]))
            .sum::<f64>()
    };
    assert!(close(province(json!([])), received as f64));
    assert_eq!(province(json!(["Beijing"])), 0.0);

    // What was pushed: each player got the whole stream (less the first
    // moments before it attached), so about half of what both received.
    let push = server.api("DescribePushBandwidthAndFluxList", window.clone());
    let pushed = flux_bytes(&push.ok()["SumFlux"]);
    let each = received as f64 / 2.0;
    assert!(
        (0.7 * each..=1.5 * each).contains(&pushed),
        "pushed {pushed} bytes, each player got {each}"
    );
    let nums = server.api("DescribeUploadStreamNums", window.clone());
    let most = nums.ok()["DataInfoList"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["Num"].as_u64())
        .max();
    assert_eq!(most, Some(1), "one push at a time");

    // The hourly access log: one line per play as it ended, and the 404.
    let beijing_window = json!({
        "StartTime": livestack_api::time::beijing(started - 3600),
        "EndTime": livestack_api::time::beijing(now() + 60),
        "PlayDomains": ["play.example.com"],
    });
    let mut lines: Vec<String> = Vec::new();
    let logged = wait_until(Duration::from_secs(10), || {
        let list = server.api("DescribeLogDownloadList", beijing_window.clone());
        lines = list.ok()["LogInfoList"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|f| {
                let (_, body) = crate::llhls::get(f["LogUrl"].as_str().unwrap_or(""));
                String::from_utf8_lossy(&body)
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        lines.len() >= 3
    });
    assert!(logged, "access log lines: {lines:?}");
    let flv: Vec<Vec<&str>> = lines
        .iter()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .filter(|f| f.get(4) == Some(&"flv") && f.get(5) == Some(&"live/watched"))
        .collect();
    assert_eq!(flv.len(), 2, "{lines:?}");
    let logged_bytes: u64 = flv
        .iter()
        .filter(|f| f.get(6) == Some(&"200"))
        .filter_map(|f| f.get(7)?.parse::<u64>().ok())
        .sum();
    // The server counts the response head too; curl saves the body.
    assert!(
        (received..=received + 2 * 1024).contains(&logged_bytes),
        "logged {logged_bytes} bytes, the players saved {received}: {lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" 127.0.0.1 play.example.com flv live/absent 404 0 ")),
        "{lines:?}"
    );
    server
        .api(
            "DescribeLogDownloadList",
            with(
                beijing_window.clone(),
                json!({"PlayDomains": ["nowhere.example.com"]}),
            ),
        )
        .expect_code("ResourceNotFound.DomainNotExist");

    // The day's flux by stream (Beijing date).
    let day = &beijing(now())[..10];
    let daily = server.api("DescribeStreamDayPlayInfoList", json!({"DayTime": day}));
    let list = daily.ok()["DataInfoList"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let watched = list.iter().find(|r| r["StreamName"] == "watched");
    assert!(
        watched.is_some_and(|r| close(flux_bytes(&r["TotalFlux"]), received as f64)),
        "{list:?}"
    );
}
