//! Processing from rules end to end: transcode and watermark templates
//! bound through the Python SDK, a generated stream pushed with ffmpeg,
//! the outputs checked with ffprobe.

use std::process::Command;
use std::time::Duration;

use livestack_core::urlsign;
use serde_json::{json, Value};

use crate::harness::*;
use crate::media::{ffmpeg_bin, live_push, now, probe, setup};

/// Format facts of `url` as ffprobe sees them after reading `seconds` of
/// it: (width, height, frame rate, video bit rate in kbps from the bytes
/// read).
fn measure(url: &str, seconds: u32, dir: &std::path::Path, name: &str) -> (u64, u64, f64, u64) {
    let file = dir.join(name);
    let status = Command::new(ffmpeg_bin("ffmpeg"))
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-rw_timeout",
            "15000000",
            "-i",
            url,
        ])
        .args([
            "-t",
            &seconds.to_string(),
            "-map",
            "0:v",
            "-c",
            "copy",
            "-y",
        ])
        .arg(&file)
        .status()
        .expect("ffmpeg");
    assert!(status.success(), "reading {url} failed");
    let out = Command::new(ffmpeg_bin("ffprobe"))
        .args(["-v", "error", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=width,height,avg_frame_rate:format=duration,size",
        ])
        .args(["-of", "json"])
        .arg(&file)
        .output()
        .expect("ffprobe");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let s = &v["streams"][0];
    let rate = s["avg_frame_rate"].as_str().unwrap_or("0/1");
    let fps = match rate.split_once('/') {
        Some((n, d)) => n.parse::<f64>().unwrap_or(0.0) / d.parse::<f64>().unwrap_or(1.0).max(1.0),
        None => 0.0,
    };
    let duration: f64 = v["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0);
    let size: f64 = v["format"]["size"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0);
    let kbps = if duration > 0.0 {
        (size * 8.0 / duration / 1000.0) as u64
    } else {
        0
    };
    (
        s["width"].as_u64().unwrap_or(0),
        s["height"].as_u64().unwrap_or(0),
        fps,
        kbps,
    )
}

/// Creates a transcode template from `params` and binds it to every
/// stream played from play.example.com.
fn transcode_rule(server: &Server, params: Value) -> i64 {
    let t = server.api("CreateLiveTranscodeTemplate", params);
    let id = t.ok()["TemplateId"].as_i64().expect("template id");
    server
        .api(
            "CreateLiveTranscodeRule",
            json!({"DomainName": "play.example.com", "AppName": "", "StreamName": "", "TemplateId": id}),
        )
        .ok();
    id
}

#[test]
fn a_transcode_rule_makes_a_suffixed_output_with_the_template_settings() {
    let server = setup();
    transcode_rule(
        &server,
        json!({"TemplateName": "sd", "VideoBitrate": 300, "Height": 240, "Fps": 15, "Gop": 2,
               "Vcodec": "h264", "Acodec": "aac", "AudioBitrate": 48}),
    );
    let _publisher = live_push(&server, "cam", 40);

    let flv = format!(
        "http://{}/live/cam_sd.flv?domain=play.example.com",
        server.http
    );
    let dir = tempfile::tempdir().expect("tmp");
    let (w, h, fps, kbps) = measure(&flv, 8, dir.path(), "sd.flv");
    assert_eq!((w, h), (426, 240), "transcoded size");
    assert!((13.0..=17.0).contains(&fps), "transcoded frame rate {fps}");
    assert!(
        (180..=420).contains(&kbps),
        "transcoded video bitrate {kbps} kbps"
    );

    // The same output over RTMP and HLS; the source is untouched.
    let rtmp = format!("rtmp://{}/live/cam_sd?domain=play.example.com", server.rtmp);
    assert!(probe(&rtmp).contains(&("video".into(), "h264".into(), 426, 240)));
    let hls = format!(
        "http://{}/live/cam_sd.m3u8?domain=play.example.com",
        server.http
    );
    assert!(
        wait_until(Duration::from_secs(15), || probe(&hls).contains(&(
            "video".into(),
            "h264".into(),
            426,
            240
        ))),
        "no transcoded HLS"
    );
    let src = format!(
        "http://{}/live/cam.flv?domain=play.example.com",
        server.http
    );
    assert!(probe(&src).contains(&("video".into(), "h264".into(), 640, 360)));

    // Outputs are not streams of their own in the API.
    let online = server.api("DescribeLiveStreamOnlineList", json!({}));
    assert_eq!(online.ok()["TotalNum"], 1, "{:?}", online.ok());
    // A name with no template bound is just a stream that is not live.
    let none = format!(
        "http://{}/live/cam_xx.flv?domain=play.example.com",
        server.http
    );
    assert!(probe(&none).is_empty());

    // The transcoding statistics count the job, as its template made it.
    let today = livestack_api::time::beijing(now())[..10].replace('-', "");
    let mut detail = Value::Null;
    assert!(
        wait_until(Duration::from_secs(10), || {
            detail = server
                .api("DescribeLiveTranscodeDetailInfo", json!({"DayTime": today}))
                .ok()
                .clone();
            detail["TotalNum"] == 1
        }),
        "{detail}"
    );
    let row = &detail["DataInfoList"][0];
    assert_eq!(
        (
            row["StreamName"].clone(),
            row["PushDomain"].clone(),
            row["Type"].clone(),
            row["ModuleCodec"].clone(),
            row["Resolution"].clone(),
            row["Bitrate"].clone()
        ),
        (
            json!("cam"),
            json!("push.example.com"),
            json!("Transcode"),
            json!("liveprocessor_H264"),
            json!("426*240"),
            json!(300)
        )
    );
    let window = json!({
        "StartTime": livestack_api::time::beijing(now() - 600),
        "EndTime": livestack_api::time::beijing(now()),
    });
    let tasks = server.api("DescribeTranscodeTaskNum", window);
    let tasks = tasks.ok()["DataInfoList"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        tasks.iter().any(|t| t["CodeRate"] == 300 && t["Num"] == 1),
        "{tasks:?}"
    );
    assert!(tasks.iter().all(|t| t["Num"] == 1), "{tasks:?}");
    let total = server.api(
        "DescribeLiveTranscodeTotalInfo",
        json!({"StartTime": livestack_api::time::utc_iso(now() - 3600),
               "EndTime": livestack_api::time::utc_iso(now())}),
    );
    let total = total.ok()["DataInfoList"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        total
            .iter()
            .any(|t| t["Resolution"] == "426*240" && t["ModuleCodec"] == "liveprocessor_H264"),
        "{total:?}"
    );
}

/// The mean colour of the `w`×`h` box at (`x`, `y`) of the first frame
/// `url` gives (as ffmpeg decodes it to RGB).
pub(crate) fn mean_color(url: &str, size: (u32, u32), x: u32, y: u32, w: u32, h: u32) -> [f64; 3] {
    let out = Command::new(ffmpeg_bin("ffmpeg"))
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-rw_timeout",
            "15000000",
            "-i",
            url,
        ])
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .expect("ffmpeg");
    let (width, height) = size;
    assert_eq!(
        out.stdout.len(),
        (width * height * 3) as usize,
        "one {width}x{height} frame"
    );
    let mut sum = [0.0; 3];
    for row in y..y + h {
        for col in x..x + w {
            let i = ((row * width + col) * 3) as usize;
            for (c, total) in sum.iter_mut().enumerate() {
                *total += f64::from(out.stdout[i + c]);
            }
        }
    }
    sum.map(|s| s / f64::from(w * h))
}

#[test]
fn a_watermark_rule_lays_the_picture_over_every_output_of_new_pushes() {
    let pictures = crate::templates::Pictures::start();
    let server = setup();
    let added = server.api(
        "AddLiveWatermark",
        json!({"PictureUrl": pictures.url("/red.png"), "WatermarkName": "red",
               "XPosition": 50, "YPosition": 50, "Width": 25, "Height": 25}),
    );
    let id = added.ok()["WatermarkId"].as_i64().expect("watermark id");
    server
        .api(
            "CreateLiveWatermarkRule",
            json!({"DomainName": "push.example.com", "AppName": "live", "StreamName": "", "TemplateId": id}),
        )
        .ok();
    let _publisher = live_push(&server, "cam", 40);

    // The picture covers 25 % × 25 % of the 640x360 picture from its
    // centre (160x90 at (320, 180)); what is outside it is the source's.
    for url in [
        format!(
            "http://{}/live/cam.flv?domain=play.example.com",
            server.http
        ),
        format!("rtmp://{}/live/cam?domain=play.example.com", server.rtmp),
    ] {
        let inside = mean_color(&url, (640, 360), 340, 200, 120, 50);
        assert!(
            inside[0] > 200.0 && inside[1] < 60.0 && inside[2] < 60.0,
            "{url}: inside the watermark {inside:?}"
        );
        let outside = mean_color(&url, (640, 360), 20, 20, 120, 50);
        assert!(
            !(outside[0] > 200.0 && outside[1] < 60.0 && outside[2] < 60.0),
            "{url}: outside the watermark {outside:?}"
        );
    }
    let hls = format!(
        "http://{}/live/cam.m3u8?domain=play.example.com",
        server.http
    );
    assert!(
        wait_until(Duration::from_secs(15), || !probe(&hls).is_empty()),
        "no watermarked HLS"
    );
    let inside = mean_color(&hls, (640, 360), 340, 200, 120, 50);
    assert!(
        inside[0] > 200.0 && inside[1] < 60.0,
        "HLS: inside the watermark {inside:?}"
    );
    let online = server.api("DescribeLiveStreamOnlineList", json!({}));
    assert_eq!(online.ok()["TotalNum"], 1, "{:?}", online.ok());
}

#[test]
fn an_adaptive_template_gives_a_multi_variant_playlist_signed_per_variant() {
    let server = setup();
    server
        .api(
            "ModifyLivePlayAuthKey",
            json!({"DomainName": "play.example.com", "Enable": 1, "AuthKey": "playkey", "AuthDelta": 3600}),
        )
        .ok();
    let t = server.api(
        "CreateLiveTranscodeTemplate",
        json!({"TemplateName": "abr", "VideoBitrate": 0, "IsAdaptiveBitRate": 1,
        "AdaptiveChildren": [
            {"TemplateName": "low", "VideoBitrate": 200, "Width": 320, "Height": 180, "Gop": 2},
            // Only a height: the width follows the source's 16:9.
            {"TemplateName": "mid", "VideoBitrate": 400, "Height": 270, "Gop": 2},
        ]}),
    );
    let id = t.ok()["TemplateId"].as_i64().expect("template id");
    server
        .api(
            "CreateLiveTranscodeRule",
            json!({"DomainName": "play.example.com", "AppName": "live", "StreamName": "", "TemplateId": id}),
        )
        .ok();
    let _publisher = live_push(&server, "cam", 40);

    // Play signatures cover the suffixed name.
    let base = format!("http://{}/live", server.http);
    let unsigned = format!("{base}/cam_abr.m3u8?domain=play.example.com");
    let body = |url: &str| {
        let out = Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}", url])
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(body(&unsigned).ends_with("403"), "unsigned master playlist");
    let wrong = format!(
        "{base}/cam_abr.m3u8?domain=play.example.com&{}",
        urlsign::query("playkey", "cam", now() + 600)
    );
    assert!(
        body(&wrong).ends_with("403"),
        "signed over the unsuffixed name"
    );
    let signed = format!(
        "{base}/cam_abr.m3u8?domain=play.example.com&{}",
        urlsign::query("playkey", "cam_abr", now() + 600)
    );
    let master = body(&signed);
    assert!(master.starts_with("#EXTM3U"), "{master}");
    assert!(
        master.contains("RESOLUTION=320x180") && master.contains("RESOLUTION=480x270"),
        "{master}"
    );
    // Players choose rungs by these too.
    assert_eq!(master.matches("CODECS=\"avc1.").count(), 2, "{master}");
    assert_eq!(master.matches("FRAME-RATE=").count(), 2, "{master}");
    assert!(
        master.contains("cam_low.m3u8?txSecret=") && master.contains("cam_mid.m3u8?txSecret="),
        "{master}"
    );

    // Each variant plays at its rung's size (ffprobe follows the master).
    let low = format!(
        "{base}/cam_low.m3u8?domain=play.example.com&{}",
        urlsign::query("playkey", "cam_low", now() + 600)
    );
    assert!(
        wait_until(Duration::from_secs(20), || probe(&low).contains(&(
            "video".into(),
            "h264".into(),
            320,
            180
        ))),
        "the low rung never played"
    );
    let flv = format!(
        "{base}/cam_mid.flv?domain=play.example.com&{}",
        urlsign::query("playkey", "cam_mid", now() + 600)
    );
    assert!(probe(&flv).contains(&("video".into(), "h264".into(), 480, 270)));
}

/// The timestamps (ms) of the video tags of an FLV file as it came off
/// the wire (ffmpeg would mend what a player got wrong).
fn video_tag_times(flv: &[u8]) -> Vec<u32> {
    let mut times = Vec::new();
    // The header (9 bytes) and the first previous-tag size (4).
    let mut at = 13;
    while at + 11 <= flv.len() {
        let kind = flv[at];
        let size = u32::from_be_bytes([0, flv[at + 1], flv[at + 2], flv[at + 3]]) as usize;
        let ts = u32::from_be_bytes([flv[at + 7], flv[at + 4], flv[at + 5], flv[at + 6]]);
        if at + 11 + size + 4 > flv.len() {
            break;
        }
        if kind == 9 {
            times.push(ts);
        }
        at += 11 + size + 4;
    }
    times
}

#[test]
fn rungs_played_at_once_share_one_ffmpeg_and_players_stay_through_the_change() {
    let server = setup();
    transcode_rule(
        &server,
        json!({"TemplateName": "abr", "VideoBitrate": 0, "IsAdaptiveBitRate": 1,
        "AdaptiveChildren": [
            {"TemplateName": "low", "VideoBitrate": 150, "Width": 256, "Height": 144, "Gop": 2},
            {"TemplateName": "mid", "VideoBitrate": 100, "Width": 192, "Height": 108, "Gop": 2},
            {"TemplateName": "tiny", "VideoBitrate": 60, "Width": 128, "Height": 72, "Gop": 2},
        ]}),
    );
    let _publisher = live_push(&server, "cam", 60);
    let url = |rung: &str| {
        format!(
            "http://{}/live/cam_{rung}.flv?domain=play.example.com",
            server.http
        )
    };
    let job_for = |rung: &str| {
        processes_mentioning(&format!(
            "127.0.0.1:{}/live/cam_{rung}?livestack_internal=",
            server.rtmp.port()
        ))
    };

    // One player of the low rung, reading 16 s of it from now on.
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("low.flv");
    let mut player = Command::new("curl")
        .args(["-s", "--max-time", "16", "-o"])
        .arg(&file)
        .arg(url("low"))
        .spawn()
        .expect("curl");
    assert!(
        wait_until(Duration::from_secs(20), || std::fs::metadata(&file)
            .is_ok_and(|m| m.len() > 20_000)),
        "the low rung never played"
    );
    assert_eq!(job_for("low").len(), 1, "{:?}", job_for("low"));

    // Players of the two other rungs at once: the three rungs now come
    // from one ffmpeg reading the source once (after a ladder of two, most
    // likely, started and replaced within the same second), and the
    // processes before it go once it feeds their players.
    let (mid, tiny) = std::thread::scope(|s| {
        let mid = s.spawn(|| probe(&url("mid")));
        let tiny = s.spawn(|| probe(&url("tiny")));
        (mid.join().expect("mid"), tiny.join().expect("tiny"))
    });
    assert!(
        mid.contains(&("video".into(), "h264".into(), 192, 108)),
        "{mid:?}"
    );
    assert!(
        tiny.contains(&("video".into(), "h264".into(), 128, 72)),
        "{tiny:?}"
    );
    let mut jobs = Vec::new();
    assert!(
        wait_until(Duration::from_secs(30), || {
            jobs = job_for("low");
            jobs.len() == 1 && job_for("mid") == jobs && job_for("tiny") == jobs
        }),
        "not one ffmpeg for the three rungs: {jobs:?}"
    );
    assert_eq!(jobs[0].matches(" -i ").count(), 1, "{jobs:?}");
    assert!(jobs[0].contains("split=3"), "{jobs:?}");

    // The low rung's player never noticed: it read until it stopped
    // (curl's time limit), with time always moving forward and no hole.
    let status = player.wait().expect("player");
    assert_eq!(
        status.code(),
        Some(28),
        "the low rung's player did not read to its time limit"
    );
    let flv = std::fs::read(&file).expect("flv");
    let times = video_tag_times(&flv);
    assert!(times.len() > 250, "{} video tags", times.len());
    let steps: Vec<i64> = times
        .windows(2)
        .map(|w| i64::from(w[1]) - i64::from(w[0]))
        .collect();
    assert!(
        steps.iter().all(|&d| (0..500).contains(&d)),
        "timestamps went back or jumped: {:?}",
        steps
            .iter()
            .filter(|d| !(0..500).contains(*d))
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_snapshot_rule_stores_a_jpeg_per_interval_and_announces_each() {
    use crate::callbacks::{assert_signed, bind_callbacks, setup as with_callbacks, Receiver};
    let receiver = Receiver::start(&[]);
    let setup = with_callbacks();
    let server = &setup.server;
    bind_callbacks(
        server,
        "live",
        json!({"SnapshotNotifyUrl": receiver.url("/snap")}),
    );
    let t = server.api(
        "CreateLiveSnapshotTemplate",
        json!({"TemplateName": "snap", "SnapshotInterval": 2, "Width": 320, "Height": 0,
               "CosAppId": 1250000000, "CosBucket": "shots", "CosRegion": "ap-guangzhou"}),
    );
    let id = t.ok()["TemplateId"].as_i64().expect("template id");
    server
        .api(
            "CreateLiveSnapshotRule",
            json!({"DomainName": "push.example.com", "AppName": "live", "StreamName": "", "TemplateId": id}),
        )
        .ok();
    let mut publisher = live_push(server, "cam", 9);

    let shots = receiver.wait_for("/snap", 3, Duration::from_secs(30));
    assert!(shots.len() >= 3, "{} snapshot callbacks", shots.len());
    for shot in &shots {
        let body = &shot.body;
        assert_signed(shot);
        assert_eq!(body["event_type"], 200, "{body}");
        assert_eq!(body["stream_id"], "cam", "{body}");
        assert_eq!(
            (body["width"].clone(), body["height"].clone()),
            (json!(320), json!(180)),
            "{body}"
        );
        let pic = body["pic_url"].as_str().unwrap_or_default();
        assert!(
            pic.contains("cam-screenshot-") && pic.ends_with("-320x180.jpg"),
            "{body}"
        );
        // The picture is where the callback says, a 320x180 JPEG, and
        // pic_url is the path of pic_full_url.
        let full = body["pic_full_url"].as_str().unwrap_or_default();
        assert!(
            full.ends_with(pic) && pic.starts_with("/push.example.com/live/"),
            "{body}"
        );
        let out = Command::new("curl")
            .args(["-sf", full])
            .output()
            .expect("curl");
        assert!(out.status.success(), "GET {full}");
        assert!(
            out.stdout.starts_with(&[0xFF, 0xD8]),
            "{full} is not a JPEG"
        );
        assert_eq!(
            out.stdout.len() as u64,
            body["file_size"].as_u64().unwrap_or(0)
        );
        let size = probe_image(&out.stdout);
        assert_eq!(size, (320, 180), "{full}");
    }
    assert!(publisher.wait(Duration::from_secs(30)).is_some());
}

/// The size of a picture given as bytes, as ffprobe reads it.
fn probe_image(data: &[u8]) -> (u64, u64) {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("p.jpg");
    std::fs::write(&file, data).expect("write");
    picture_size(&file)
}

/// Width and height of a picture, as ffprobe reads it.
pub(crate) fn picture_size(path: &std::path::Path) -> (u64, u64) {
    let out = Command::new(ffmpeg_bin("ffprobe"))
        .args(["-v", "error", "-show_entries", "stream=width,height"])
        .args(["-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        v["streams"][0]["width"].as_u64().unwrap_or(0),
        v["streams"][0]["height"].as_u64().unwrap_or(0),
    )
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(cmdline);
        }
    }
    found
}

#[test]
fn stopping_the_server_leaves_no_processing_job_running() {
    let mut server = setup();
    transcode_rule(
        &server,
        json!({"TemplateName": "sd", "VideoBitrate": 300, "Height": 240}),
    );
    let _publisher = live_push(&server, "cam", 60);
    let flv = format!(
        "http://{}/live/cam_sd.flv?domain=play.example.com",
        server.http
    );
    assert!(!probe(&flv).is_empty(), "the transcode never played");
    // Jobs reach the server's RTMP port with the internal token.
    let needle = format!("127.0.0.1:{}", server.rtmp.port());
    let jobs = processes_mentioning(&format!("{needle}/live/cam_sd?livestack_internal="));
    assert_eq!(jobs.len(), 1, "one transcode process: {jobs:?}");

    server.terminate();
    let left = processes_mentioning("livestack_internal=")
        .into_iter()
        .filter(|c| c.contains(&needle))
        .collect::<Vec<_>>();
    assert!(left.is_empty(), "left running after shutdown: {left:?}");
}
