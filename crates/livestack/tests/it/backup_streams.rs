//! Primary and backup streams (主备流) end to end, on a push domain that
//! takes backups (`[media] backup_domains`): a second push of a live
//! stream waits beside the first, a player keeps its one connection while
//! the primary ends and the backup takes over, `SwitchBackupStream` moves
//! players by hand and `EnableOptimalSwitching` by measured frame rate;
//! elsewhere a second push still replaces the first. Pushes are solid
//! colours, so a decoded frame says which push a player is getting.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;
use crate::media::{ffmpeg_bin, setup, state};
use crate::mix::{colour_push, colour_push_at, flv, near, GREEN, RED};
use crate::recording::recording_server_with;

fn backup_server() -> (Server, tempfile::TempDir) {
    recording_server_with("backup_domains = [\"push.example.com\"]\n")
}

/// One player on one connection, decoding 4 frames a second to their
/// mean colour.
pub(crate) struct Player {
    child: Child,
    colours: Arc<Mutex<Vec<[f64; 3]>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Player {
    pub(crate) fn start(url: &str) -> Player {
        let mut child = Command::new(ffmpeg_bin("ffmpeg"))
            .args(["-hide_banner", "-loglevel", "error", "-i", url])
            .args([
                "-vf",
                "fps=4,scale=32:18",
                "-f",
                "rawvideo",
                "-pix_fmt",
                "rgb24",
                "-",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg");
        let mut out = child.stdout.take().expect("stdout");
        let colours = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&colours);
        let reader = std::thread::spawn(move || {
            let mut frame = vec![0u8; 32 * 18 * 3];
            while out.read_exact(&mut frame).is_ok() {
                let mut sum = [0.0; 3];
                for px in frame.chunks(3) {
                    for (c, s) in sum.iter_mut().enumerate() {
                        *s += f64::from(px[c]);
                    }
                }
                seen.lock().unwrap().push(sum.map(|s| s / (32.0 * 18.0)));
            }
        });
        Player {
            child,
            colours,
            reader: Some(reader),
        }
    }

    /// Whether, within 30 s, the player is getting `colour` (its latest
    /// frame) on the connection it started with.
    #[track_caller]
    pub(crate) fn sees(&mut self, colour: [f64; 3]) -> bool {
        wait_until(Duration::from_secs(30), || {
            self.colours
                .lock()
                .unwrap()
                .last()
                .is_some_and(|&c| near(c, colour))
        }) && self.child.try_wait().ok().flatten().is_none()
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// The pushes of `stream` in DescribeBackupStreamList (the Python SDK's
/// answer): (UpstreamSequence, MasterFlag, SourceFrom), primary first.
fn pushes(server: &Server, stream: &str) -> (Vec<(String, i64, String)>, Value) {
    let got = python1(&server.call("DescribeBackupStreamList", json!({"StreamName": stream})));
    let groups = got.ok()["StreamInfoList"].clone();
    let list = groups[0]["BackupList"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["UpstreamSequence"].as_str().unwrap_or("").to_owned(),
                p["MasterFlag"].as_i64().unwrap_or(-1),
                p["SourceFrom"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    (list, groups)
}

#[track_caller]
fn two_pushes(server: &Server, stream: &str) -> (String, String) {
    let mut found = Vec::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            found = pushes(server, stream).0;
            found.len() == 2
        }),
        "{stream} does not list two pushes: {found:?}"
    );
    assert_eq!((found[0].1, found[1].1), (1, 0), "{found:?}");
    assert!(found.iter().all(|p| p.2 == "直推流"), "{found:?}");
    assert_ne!(found[0].0, found[1].0);
    (found[0].0.clone(), found[1].0.clone())
}

#[test]
fn a_second_push_waits_as_backup_and_takes_over_when_the_primary_ends_without_players_reconnecting()
{
    let (server, _config) = backup_server();
    let primary = colour_push(&server, "cam", "0xFF0000", 120);
    let _backup = colour_push(&server, "cam", "0x00FF00", 120);
    let (first, second) = two_pushes(&server, "cam");
    let mut player = Player::start(&flv(&server, "cam"));
    assert!(player.sees(RED), "the player does not get the primary");
    // The backup did not replace the primary.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        player.sees(RED),
        "the backup took over while the primary was live"
    );

    drop(primary);
    assert!(
        player.sees(GREEN),
        "the player did not get the backup on its connection (log: {})",
        server.log()
    );
    assert_eq!(state(&server, "cam"), "active");
    let (now, groups) = pushes(&server, "cam");
    assert_eq!(now.len(), 1, "{groups}");
    assert_eq!(
        (now[0].0.as_str(), now[0].1),
        (second.as_str(), 1),
        "{groups}"
    );
    assert_ne!(now[0].0, first);
}

#[test]
fn switch_backup_stream_moves_players_to_the_push_it_names_and_back() {
    let (server, _config) = backup_server();
    let _a = colour_push(&server, "show", "0xFF0000", 120);
    let _b = colour_push(&server, "show", "0x00FF00", 120);
    let (a, b) = two_pushes(&server, "show");
    let mut player = Player::start(&flv(&server, "show"));
    assert!(player.sees(RED));
    let switch = |sequence: &str| {
        server.api(
            "SwitchBackupStream",
            json!({"PushDomainName": "push.example.com", "AppName": "live",
                   "StreamName": "show", "UpstreamSequence": sequence}),
        )
    };
    python1(&server.call(
        "SwitchBackupStream",
        json!({"PushDomainName": "push.example.com", "AppName": "live",
               "StreamName": "show", "UpstreamSequence": b}),
    ))
    .ok();
    assert!(
        player.sees(GREEN),
        "no switch to the backup (log: {})",
        server.log()
    );
    let (now, _) = pushes(&server, "show");
    assert_eq!(now[0], (b.clone(), 1, "直推流".to_owned()));
    switch(&b).ok(); // to the primary itself: nothing to do
    switch(&a).ok();
    assert!(player.sees(RED), "no switch back");

    assert_eq!(switch("12345").code(), Some("FailedOperation"));
    let gone = server.api(
        "SwitchBackupStream",
        json!({"PushDomainName": "push.example.com", "AppName": "live",
               "StreamName": "nobody", "UpstreamSequence": a}),
    );
    assert_eq!(gone.code(), Some("FailedOperation"));
}

#[test]
fn optimal_switching_moves_players_to_the_push_with_the_better_frame_rate() {
    let (server, _config) = backup_server();
    let _slow = colour_push_at(&server, "race", "0xFF0000", 4, 120);
    let _fast = colour_push_at(&server, "race", "0x00FF00", 25, 120);
    two_pushes(&server, "race");
    let mut player = Player::start(&flv(&server, "race"));
    assert!(player.sees(RED));
    std::thread::sleep(Duration::from_secs(3));
    assert!(player.sees(RED), "switched without being asked to");
    python1(&server.call("EnableOptimalSwitching", json!({"StreamName": "race"}))).ok();
    assert_eq!(pushes(&server, "race").1[0]["OptimalEnable"], 1);
    assert!(
        player.sees(GREEN),
        "optimal switching kept the 4 fps push (log: {})",
        server.log()
    );
    let missing = server.api("EnableOptimalSwitching", json!({"StreamName": "nobody"}));
    assert_eq!(missing.code(), Some("ResourceNotFound"));
}

#[test]
fn without_backups_a_second_push_replaces_the_first_and_each_stream_lists_one_push() {
    let server = setup();
    let _first = colour_push(&server, "cam", "0xFF0000", 120);
    let mut player = Player::start(&flv(&server, "cam"));
    assert!(player.sees(RED));
    let _second = colour_push(&server, "cam", "0x00FF00", 120);
    assert!(
        player.sees(GREEN),
        "the second push did not replace the first"
    );
    let (list, groups) = pushes(&server, "cam");
    assert_eq!(list.len(), 1, "{groups}");
    assert_eq!(list[0].1, 1);
    let same = server.api(
        "SwitchBackupStream",
        json!({"PushDomainName": "push.example.com", "AppName": "live",
               "StreamName": "cam", "UpstreamSequence": list[0].0}),
    );
    same.ok();
}
