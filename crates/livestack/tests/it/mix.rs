//! Stream mixing end to end: live inputs pushed by ffmpeg in solid
//! colours, mixed by `CreateCommonMixStream` (through the official Python
//! SDK), and the output decoded to check that each input is where the
//! layout puts it on a canvas of the background's size; a layout changed
//! live, an input that drops and comes back, a mix that replaces one of
//! its inputs for that input's players, and the documented codes.

use std::time::Duration;

use livestack_core::urlsign;
use serde_json::{json, Value};

use crate::harness::*;
use crate::media::{ffmpeg_bin, now, probe, push_key, push_url, setup, state, Publisher};

const W: u32 = 640;
const H: u32 = 360;
pub(crate) const RED: [f64; 3] = [255.0, 0.0, 0.0];
pub(crate) const GREEN: [f64; 3] = [0.0, 255.0, 0.0];
const BLUE: [f64; 3] = [0.0, 0.0, 255.0];
pub(crate) const YELLOW: [f64; 3] = [255.0, 255.0, 0.0];

/// Pushes `seconds` of a 320x180 picture of one colour (0xRRGGBB) with a
/// tone, as live/`stream`, and waits until it is live.
pub(crate) fn colour_push(server: &Server, stream: &str, colour: &str, seconds: u32) -> Publisher {
    colour_push_at(server, stream, colour, 25, seconds)
}

/// [`colour_push`] at `fps` frames per second.
pub(crate) fn colour_push_at(
    server: &Server,
    stream: &str,
    colour: &str,
    fps: u32,
    seconds: u32,
) -> Publisher {
    let url = push_url(
        server,
        stream,
        &urlsign::query(&push_key(server), stream, now() + 600),
    );
    let p = Publisher::start_with(
        &url,
        &format!("color=c={colour}:s=320x180:r={fps}"),
        seconds,
    );
    assert!(
        wait_until(Duration::from_secs(15), || state(server, stream)
            == "active"),
        "the push of {stream} never went live"
    );
    // The picture size is known once the sequence header has been seen.
    assert!(
        wait_until(Duration::from_secs(10), || {
            online(server)
                .iter()
                .any(|s| s["StreamName"] == stream && s["PublishTimeList"].is_array())
        }),
        "{stream} is not listed"
    );
    p
}

pub(crate) fn online(server: &Server) -> Vec<Value> {
    server.api("DescribeLiveStreamOnlineList", json!({})).ok()["OnlineInfo"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

pub(crate) fn flv(server: &Server, stream: &str) -> String {
    format!(
        "http://{}/live/{stream}.flv?domain=play.example.com",
        server.http
    )
}

/// One decoded frame of `url` as RGB, if it has the size `w`×`h`.
fn frame(url: &str, w: u32, h: u32) -> Option<Vec<u8>> {
    let out = std::process::Command::new(ffmpeg_bin("ffmpeg"))
        .args(["-hide_banner", "-loglevel", "error"])
        .args(["-rw_timeout", "10000000", "-i", url])
        // A few frames in, past any picture from before a change.
        .args(["-vf", "select=gte(n\\,5)", "-frames:v", "1"])
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .ok()?;
    (out.stdout.len() == (w * h * 3) as usize).then_some(out.stdout)
}

/// The mean colour of the box at (`x`, `y`), 80x60, of a `W`-wide frame.
fn mean(frame: &[u8], width: u32, x: u32, y: u32) -> [f64; 3] {
    let mut sum = [0.0; 3];
    for row in y..y + 60 {
        for col in x..x + 80 {
            let i = ((row * width + col) * 3) as usize;
            for (c, total) in sum.iter_mut().enumerate() {
                *total += f64::from(frame[i + c]);
            }
        }
    }
    sum.map(|s| s / 4800.0)
}

pub(crate) fn near(c: [f64; 3], want: [f64; 3]) -> bool {
    c.iter().zip(want).all(|(a, b)| (a - b).abs() < 60.0)
}

/// Whether, within 40 s, a frame of `url` (`w`×`h`) has each colour of
/// `boxes` (top-left corners of 80x60 boxes) where it says.
fn shows(url: &str, (w, h): (u32, u32), boxes: &[((u32, u32), [f64; 3])]) -> bool {
    wait_until(Duration::from_secs(40), || {
        frame(url, w, h).is_some_and(|f| {
            boxes
                .iter()
                .all(|&((x, y), colour)| near(mean(&f, w, x, y), colour))
        })
    })
}

/// A canvas of 640x360 in blue with `a` in its top-left quarter and `b`
/// in its bottom-right one, published as `out`.
fn quarters(session: &str, a: &str, b: &str, out: &str) -> Value {
    json!({
        "MixStreamSessionId": session,
        "InputStreamList": [
            {"InputStreamName": "canvas",
             "LayoutParams": {"ImageLayer": 1, "InputType": 3, "Color": "0x0000FF",
                              "ImageWidth": W, "ImageHeight": H}},
            {"InputStreamName": a,
             "LayoutParams": {"ImageLayer": 2, "ImageWidth": 0.5, "ImageHeight": 0.5,
                              "LocationX": 0, "LocationY": 0}},
            {"InputStreamName": b,
             "LayoutParams": {"ImageLayer": 3, "ImageWidth": 320, "ImageHeight": 180,
                              "LocationX": 0.5, "LocationY": 180}},
        ],
        "OutputParams": {"OutputStreamName": out, "OutputStreamType": 1},
    })
}

const TOP_LEFT: (u32, u32) = (120, 60);
const BOTTOM_RIGHT: (u32, u32) = (440, 240);
const TOP_RIGHT: (u32, u32) = (440, 60);
const BOTTOM_LEFT: (u32, u32) = (120, 240);

#[test]
fn a_mix_of_two_live_inputs_shows_each_where_its_layout_says_and_follows_a_new_layout() {
    let server = setup();
    let _red = colour_push(&server, "red", "0xFF0000", 120);
    let _green = colour_push(&server, "green", "0x00FF00", 120);
    let made = python1(&server.call(
        "CreateCommonMixStream",
        quarters("duet", "red", "green", "duet_out"),
    ));
    made.ok();
    let out = flv(&server, "duet_out");
    assert!(
        shows(
            &out,
            (W, H),
            &[
                (TOP_LEFT, RED),
                (BOTTOM_RIGHT, GREEN),
                (TOP_RIGHT, BLUE),
                (BOTTOM_LEFT, BLUE)
            ]
        ),
        "the mix does not show red top left, green bottom right on blue (log: {})",
        server.log()
    );
    let streams = probe(&out);
    assert!(
        streams.contains(&("video".into(), "h264".into(), u64::from(W), u64::from(H))),
        "{streams:?}"
    );
    assert!(
        streams.iter().any(|s| s.0 == "audio" && s.1 == "aac"),
        "{streams:?}"
    );
    // The output is a stream like any other.
    assert!(online(&server)
        .iter()
        .any(|s| s["StreamName"] == "duet_out"));

    // The same session with the inputs swapped: the output follows.
    server
        .api(
            "CreateCommonMixStream",
            quarters("duet", "green", "red", "duet_out"),
        )
        .ok();
    assert!(
        shows(&out, (W, H), &[(TOP_LEFT, GREEN), (BOTTOM_RIGHT, RED)]),
        "the new layout never showed (log: {})",
        server.log()
    );
    // A session keeps its output stream.
    let moved = server.api(
        "CreateCommonMixStream",
        quarters("duet", "green", "red", "elsewhere"),
    );
    assert_eq!(
        moved.code(),
        Some("InvalidParameter.SessionOutputStreamChanged")
    );

    // Cancelled, the output ends.
    server
        .api(
            "CancelCommonMixStream",
            json!({"MixStreamSessionId": "duet"}),
        )
        .ok();
    assert!(
        wait_until(Duration::from_secs(20), || state(&server, "duet_out")
            != "active"),
        "the output outlived its session"
    );
    let again = server.api(
        "CancelCommonMixStream",
        json!({"MixStreamSessionId": "duet"}),
    );
    assert_eq!(again.code(), Some("InvalidParameter.CancelSessionNotExist"));
}

#[test]
fn an_input_that_drops_keeps_its_last_picture_and_comes_back_when_pushed_again() {
    let server = setup();
    let mut red = colour_push(&server, "guest", "0xFF0000", 120);
    let _green = colour_push(&server, "host", "0x00FF00", 120);
    server
        .api(
            "CreateCommonMixStream",
            quarters("show", "guest", "host", "show_out"),
        )
        .ok();
    let out = flv(&server, "show_out");
    assert!(
        shows(&out, (W, H), &[(TOP_LEFT, RED), (BOTTOM_RIGHT, GREEN)]),
        "the mix never showed (log: {})",
        server.log()
    );
    drop(red);
    assert!(
        wait_until(Duration::from_secs(15), || state(&server, "guest")
            != "active"),
        "the guest's push did not end"
    );
    // Its last picture stays where it was, the host goes on.
    assert!(
        shows(&out, (W, H), &[(TOP_LEFT, RED), (BOTTOM_RIGHT, GREEN)]),
        "the dropped input's place changed (log: {})",
        server.log()
    );
    // Pushed again (in another colour, to tell), it is back in its place.
    red = colour_push(&server, "guest", "0xFFFF00", 120);
    assert!(
        shows(&out, (W, H), &[(TOP_LEFT, YELLOW), (BOTTOM_RIGHT, GREEN)]),
        "the returning input never showed (log: {})",
        server.log()
    );
    drop(red);
}

#[test]
fn a_mix_that_replaces_an_input_is_what_that_inputs_players_get_until_it_is_cancelled() {
    let server = setup();
    let _host = colour_push(&server, "anchor", "0xFF0000", 120);
    let _guest = colour_push(&server, "caller", "0x00FF00", 120);
    // The anchor is the background (its own 320x180), the caller a
    // quarter of it in the bottom-right corner; players of the anchor
    // see the mix (OutputStreamType 0).
    server
        .api(
            "CreateCommonMixStream",
            json!({
                "MixStreamSessionId": "pip",
                "InputStreamList": [
                    {"InputStreamName": "anchor", "LayoutParams": {"ImageLayer": 1}},
                    {"InputStreamName": "caller",
                     "LayoutParams": {"ImageLayer": 2, "ImageWidth": 0.5, "ImageHeight": 0.5,
                                      "LocationX": 0.5, "LocationY": 0.5}},
                ],
                "OutputParams": {"OutputStreamName": "anchor", "OutputStreamType": 0},
            }),
        )
        .ok();
    let anchor = flv(&server, "anchor");
    assert!(
        shows(&anchor, (320, 180), &[((20, 20), RED), ((220, 100), GREEN)]),
        "the anchor's players never got the mix (log: {})",
        server.log()
    );
    // Not a stream of its own.
    assert!(!online(&server)
        .iter()
        .any(|s| s["StreamName"].as_str().is_some_and(|n| n.contains('@'))));
    server
        .api(
            "CancelCommonMixStream",
            json!({"MixStreamSessionId": "pip"}),
        )
        .ok();
    assert!(
        shows(&anchor, (320, 180), &[((20, 20), RED), ((220, 100), RED)]),
        "the anchor did not go back to itself"
    );
}

#[test]
fn create_common_mix_stream_refuses_what_css_refuses_with_its_codes() {
    let server = setup();
    let _a = colour_push(&server, "a", "0xFF0000", 60);
    let _b = colour_push(&server, "b", "0x00FF00", 60);
    let input = |name: &str, layer: u64| json!({"InputStreamName": name, "LayoutParams": {"ImageLayer": layer}});
    let mix = |inputs: Vec<Value>, output: Value| json!({"MixStreamSessionId": "s", "InputStreamList": inputs, "OutputParams": output});
    let new = json!({"OutputStreamName": "out", "OutputStreamType": 1});
    let cases: Vec<(Value, &str)> = vec![
        (
            mix((1..=17).map(|l| input("a", l)).collect(), new.clone()),
            "InvalidParameter.InputNumLimitExceeded",
        ),
        (
            mix(vec![input("a", 1), input("b", 1)], new.clone()),
            "InvalidParameter.InvalidLayerParam",
        ),
        (
            mix(vec![input("a", 2), input("b", 3)], new.clone()),
            "InvalidParameter.InvalidLayerParam",
        ),
        (
            mix(vec![input("a", 1), input("nobody", 2)], new.clone()),
            "FailedOperation.StreamNotExist",
        ),
        (
            mix(
                vec![input("a", 1), input("b", 2)],
                json!({"OutputStreamName": "b", "OutputStreamType": 1}),
            ),
            "InvalidParameter.InvalidOutputStreamID",
        ),
        (
            mix(
                vec![input("a", 1), input("b", 2)],
                json!({"OutputStreamName": "c", "OutputStreamType": 0}),
            ),
            "InvalidParameter.InvalidOutputType",
        ),
        (
            mix(
                vec![input("a", 1), input("b", 2)],
                json!({"OutputStreamName": "out", "OutputStreamType": 1, "OutputStreamBitRate": 20000}),
            ),
            "InvalidParameter.InvalidBitrate",
        ),
        (
            mix(
                vec![
                    input("a", 1),
                    json!({"InputStreamName": "logo", "LayoutParams": {"ImageLayer": 2, "InputType": 2, "WatermarkId": 999}}),
                ],
                new.clone(),
            ),
            "InvalidParameter.InvalidPictureID",
        ),
        (
            mix(
                vec![
                    json!({"InputStreamName": "canvas", "LayoutParams": {"ImageLayer": 1, "InputType": 3}}),
                    input("a", 2),
                ],
                new.clone(),
            ),
            "InvalidParameter.InvalidBackgroudResolution",
        ),
        (
            mix(
                vec![
                    json!({"InputStreamName": "a", "LayoutParams": {"ImageLayer": 1},
                           "CropParams": {"CropWidth": 300, "CropHeight": 100, "CropStartLocationX": 100}}),
                ],
                new.clone(),
            ),
            "InvalidParameter.InvalidCropParam",
        ),
        (
            with(
                mix(vec![input("a", 1), input("b", 2)], new.clone()),
                json!({"MixStreamTemplateId": 410}),
            ),
            "InvalidParameter.TemplateNotMatchInputNum",
        ),
        (
            mix(
                vec![
                    json!({"InputStreamName": "a", "LayoutParams": {"ImageLayer": 1, "ImageWidth": 0.995}}),
                ],
                new.clone(),
            ),
            "InvalidParameter.InvalidLayerParam",
        ),
    ];
    for (params, code) in cases {
        let got = server.api("CreateCommonMixStream", params.clone());
        assert_eq!(got.code(), Some(code), "{params}: {}", got.0);
    }
    // A new stream must not be one already pushed.
    let taken = server.api(
        "CreateCommonMixStream",
        mix(
            vec![input("a", 1)],
            json!({"OutputStreamName": "b", "OutputStreamType": 1}),
        ),
    );
    assert_eq!(
        taken.code(),
        Some("InvalidParameter.InvalidOutputStreamID"),
        "{}",
        taken.0
    );
    // Nothing was made.
    let cancel = server.api("CancelCommonMixStream", json!({"MixStreamSessionId": "s"}));
    assert_eq!(
        cancel.code(),
        Some("InvalidParameter.CancelSessionNotExist")
    );
}
