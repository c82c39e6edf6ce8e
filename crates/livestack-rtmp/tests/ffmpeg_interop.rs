//! Interop with the real ffmpeg and ffprobe: ffmpeg publishes to a tiny
//! blocking server built on `ServerSession`, and ffprobe plays from it.
//!
//! ffmpeg is required: these tests fail (they do not skip) when it is
//! missing, so CI cannot pass without exercising a real peer. Set
//! `LIVESTACK_RTMP_RECORD_DIR` to save the first bytes each connection sent
//! us (that is how the fuzz corpus seeds were recorded).

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::Bytes;
use livestack_rtmp::amf0;
use livestack_rtmp::chunk::{msg_type, CSID_AUDIO, CSID_DATA, CSID_VIDEO};
use livestack_rtmp::handshake::HandshakeKind;
use livestack_rtmp::{
    encode_message_fmt0, strip_set_data_frame, RtmpError, ServerConfig, ServerSession, SessionEvent,
};

/// Finds `tool` or fails the test with instructions.
fn require(tool: &str) -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    std::iter::once(PathBuf::from("/usr/bin"))
        .chain(candidates)
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{tool} is required by the RTMP interop tests but was not found; \
                 install ffmpeg (e.g. `apt-get install -y ffmpeg`)"
            )
        })
}

/// Runs a command to completion, killing it after `timeout`.
fn run(mut command: Command, timeout: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err_reader.join().unwrap_or_default();
            panic!(
                "{command:?} timed out after {timeout:?}; stderr:\n{}",
                String::from_utf8_lossy(&stderr)
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

/// Media a publisher sent, encoded once for every player.
#[derive(Default)]
struct HubState {
    metadata: Option<Bytes>,
    video_header: Option<Bytes>,
    audio_header: Option<Bytes>,
    /// Messages since the last keyframe (a GOP cache, as SRS keeps).
    gop: Vec<Bytes>,
    players: Vec<Sender<Bytes>>,
}

#[derive(Default)]
struct Hub {
    state: Mutex<HubState>,
}

/// Every player uses the default config and stream id 1, so one encoding
/// serves all of them.
const PLAYER_STREAM_ID: u32 = 1;

impl Hub {
    fn on_media(&self, event: &SessionEvent) {
        let chunk_size = ServerConfig::default().chunk_size;
        let mut state = self.state.lock().expect("hub lock");
        let bytes = match event {
            SessionEvent::Metadata { payload, .. } => {
                let bytes = encode_message_fmt0(
                    CSID_DATA,
                    msg_type::DATA_AMF0,
                    PLAYER_STREAM_ID,
                    0,
                    &strip_set_data_frame(payload),
                    chunk_size,
                );
                state.metadata = Some(bytes.clone());
                bytes
            }
            SessionEvent::Video {
                timestamp, payload, ..
            } => {
                let bytes = encode_message_fmt0(
                    CSID_VIDEO,
                    msg_type::VIDEO,
                    PLAYER_STREAM_ID,
                    *timestamp,
                    payload,
                    chunk_size,
                );
                match (payload.first(), payload.get(1)) {
                    (Some(0x17), Some(0)) => state.video_header = Some(bytes.clone()),
                    (Some(0x17), Some(1)) => {
                        state.gop.clear();
                        state.gop.push(bytes.clone());
                    }
                    _ if !state.gop.is_empty() => state.gop.push(bytes.clone()),
                    _ => {}
                }
                bytes
            }
            SessionEvent::Audio {
                timestamp, payload, ..
            } => {
                let bytes = encode_message_fmt0(
                    CSID_AUDIO,
                    msg_type::AUDIO,
                    PLAYER_STREAM_ID,
                    *timestamp,
                    payload,
                    chunk_size,
                );
                if payload.get(1) == Some(&0) && payload.first().map(|b| b >> 4) == Some(10) {
                    state.audio_header = Some(bytes.clone());
                } else if !state.gop.is_empty() {
                    state.gop.push(bytes.clone());
                }
                bytes
            }
            _ => return,
        };
        state.players.retain(|tx| tx.send(bytes.clone()).is_ok());
    }

    fn has_keyframe(&self) -> bool {
        let state = self.state.lock().expect("hub lock");
        state.video_header.is_some() && state.audio_header.is_some() && !state.gop.is_empty()
    }

    /// A new player gets the cached headers and GOP, then live messages.
    fn subscribe(&self) -> Receiver<Bytes> {
        let (tx, rx) = mpsc::channel();
        let mut state = self.state.lock().expect("hub lock");
        let cached = [&state.metadata, &state.video_header, &state.audio_header]
            .into_iter()
            .flatten()
            .chain(state.gop.iter());
        for bytes in cached {
            let _ = tx.send(bytes.clone());
        }
        state.players.push(tx);
        rx
    }
}

/// What one connection did.
struct Report {
    events: Vec<SessionEvent>,
    handshake: Option<HandshakeKind>,
    error: Option<RtmpError>,
    inbound: Vec<u8>,
}

/// Drives one connection: accepts every publish and play.
fn serve(mut stream: TcpStream, hub: Arc<Hub>) -> Report {
    stream
        .set_read_timeout(Some(Duration::from_millis(10)))
        .expect("timeout");
    let mut session = ServerSession::new(ServerConfig::default());
    let mut report = Report {
        events: Vec::new(),
        handshake: None,
        error: None,
        inbound: Vec::new(),
    };
    let mut player: Option<Receiver<Bytes>> = None;
    let mut buf = vec![0u8; 64 * 1024];
    let mut write_failed = false;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if report.inbound.len() < 16 * 1024 {
                    report.inbound.extend_from_slice(&buf[..n]);
                }
                if let Err(e) = session.feed(&buf[..n]) {
                    report.error = Some(e);
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
        while let Some(event) = session.poll_event() {
            match &event {
                SessionEvent::Publish { stream_id, .. } => session.accept_publish(*stream_id),
                SessionEvent::Play { stream_id, .. } => {
                    session.accept_play(*stream_id);
                    assert_eq!(session.media_stream_id(), PLAYER_STREAM_ID);
                    assert_eq!(session.chunk_size_out(), ServerConfig::default().chunk_size);
                    player = Some(hub.subscribe());
                }
                SessionEvent::Metadata { .. }
                | SessionEvent::Video { .. }
                | SessionEvent::Audio { .. } => hub.on_media(&event),
                _ => {}
            }
            report.events.push(event);
        }
        // After a failed write keep reading: a peer that closes right after
        // its last command (ffmpeg after deleteStream) resets our replies,
        // but what it sent before closing is still worth reading.
        if let Some(out) = session.take_output() {
            write_failed = write_failed || stream.write_all(&out).is_err();
        }
        if let Some(rx) = &player {
            while let Ok(bytes) = rx.try_recv() {
                write_failed = write_failed || stream.write_all(&bytes).is_err();
            }
        }
    }
    report.handshake = session.handshake_kind();
    report
}

/// Listens on 127.0.0.1:0 and serves `connections` connections.
fn start_server(connections: usize, hub: Arc<Hub>) -> (u16, JoinHandle<Vec<Report>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handle = thread::spawn(move || {
        let mut workers = Vec::new();
        for stream in listener.incoming().take(connections) {
            let stream = stream.expect("accept");
            let hub = Arc::clone(&hub);
            workers.push(thread::spawn(move || serve(stream, hub)));
        }
        workers
            .into_iter()
            .map(|w| w.join().expect("connection thread"))
            .collect()
    });
    (port, handle)
}

fn record(name: &str, report: &Report) {
    if let Some(dir) = std::env::var_os("LIVESTACK_RTMP_RECORD_DIR") {
        let path = PathBuf::from(dir).join(name);
        std::fs::write(&path, &report.inbound).expect("write recording");
    }
}

fn publish_command(ffmpeg: &PathBuf, url: &str, seconds: u32) -> Command {
    let mut command = Command::new(ffmpeg);
    command.args(["-hide_banner", "-loglevel", "error", "-re"]);
    command.args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"]);
    command.args(["-f", "lavfi", "-i", "sine"]);
    command.args(["-t", &seconds.to_string()]);
    command.args([
        "-c:v", "libx264", "-g", "25", "-c:a", "aac", "-f", "flv", url,
    ]);
    command
}

#[test]
fn ffmpeg_publishes_h264_and_aac_to_a_server_session() {
    let ffmpeg = require("ffmpeg");
    let (port, server) = start_server(1, Arc::new(Hub::default()));
    let url = format!("rtmp://127.0.0.1:{port}/live/test?k=v");
    let output = run(publish_command(&ffmpeg, &url, 2), Duration::from_secs(60));
    assert!(
        output.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let reports = server.join().expect("server thread");
    let report = &reports[0];
    record("ffmpeg-publish.bin", report);
    assert_eq!(report.error, None, "the session saw no protocol error");
    assert_eq!(
        report.handshake,
        Some(HandshakeKind::Complex(
            livestack_rtmp::handshake::DigestSchema::Schema0
        )),
        "ffmpeg offers the complex handshake"
    );

    let events = &report.events;
    match &events[0] {
        SessionEvent::Connect { app, tc_url, .. } => {
            assert_eq!(app, "live");
            assert_eq!(
                tc_url.as_deref(),
                Some(format!("rtmp://127.0.0.1:{port}/live").as_str())
            );
        }
        other => panic!("first event should be Connect, got {other:?}"),
    }
    assert!(events.iter().any(|e| matches!(
        e,
        SessionEvent::Publish { name, publish_type, .. } if name == "test?k=v" && publish_type == "live"
    )));

    let videos: Vec<(u32, &Bytes)> = events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Video {
                timestamp, payload, ..
            } => Some((*timestamp, payload)),
            _ => None,
        })
        .collect();
    assert!(videos.len() >= 40, "got {} video messages", videos.len());
    assert_eq!(&videos[0].1[..2], &[0x17, 0], "AVC sequence header first");
    assert_eq!(&videos[1].1[..2], &[0x17, 1], "then a keyframe NALU");
    assert!(
        videos.windows(2).all(|w| w[0].0 <= w[1].0),
        "video timestamps (DTS) never go back"
    );

    let audios: Vec<&Bytes> = events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Audio { payload, .. } => Some(payload),
            _ => None,
        })
        .collect();
    assert!(audios.len() > 10, "got {} audio messages", audios.len());
    assert_eq!(&audios[0][..2], &[0xAF, 0], "AAC sequence header first");

    let metadata = events
        .iter()
        .find_map(|e| match e {
            SessionEvent::Metadata { payload, .. } => Some(payload),
            _ => None,
        })
        .expect("metadata");
    let values = amf0::decode_all(&strip_set_data_frame(metadata)).expect("AMF0 metadata");
    assert_eq!(values[0].as_str(), Some("onMetaData"));
    assert_eq!(
        values[1].get("width").and_then(amf0::Amf0Value::as_number),
        Some(320.0)
    );
    let tail: Vec<&SessionEvent> = events
        .iter()
        .filter(|e| !matches!(e, SessionEvent::Audio { .. } | SessionEvent::Video { .. }))
        .collect();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, SessionEvent::DeleteStream { .. })),
        "{tail:#?}"
    );
}

#[test]
fn ffprobe_plays_what_ffmpeg_publishes_through_shared_fan_out_bytes() {
    let ffmpeg = require("ffmpeg");
    let ffprobe = require("ffprobe");
    let hub = Arc::new(Hub::default());
    let (port, server) = start_server(2, Arc::clone(&hub));
    let publish_url = format!("rtmp://127.0.0.1:{port}/live/test");
    let publisher = thread::spawn(move || {
        run(
            publish_command(&ffmpeg, &publish_url, 8),
            Duration::from_secs(60),
        )
    });

    let deadline = Instant::now() + Duration::from_secs(30);
    while !hub.has_keyframe() {
        assert!(
            Instant::now() < deadline,
            "the publisher never sent a keyframe"
        );
        thread::sleep(Duration::from_millis(20));
    }

    let mut probe = Command::new(ffprobe);
    probe.args(["-v", "warning", "-show_streams", "-of", "compact=p=0"]);
    probe.arg(format!("rtmp://127.0.0.1:{port}/live/test"));
    let probed = run(probe, Duration::from_secs(30));
    let stdout = String::from_utf8_lossy(&probed.stdout);
    assert!(
        probed.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&probed.stderr)
    );
    let stderr = String::from_utf8_lossy(&probed.stderr);
    // ffmpeg checks S1's digest (fatal) and S2's signature (a warning).
    assert!(
        !stderr.contains("Signature mismatch") && !stderr.contains("validating failed"),
        "ffprobe rejected our handshake digests: {stderr}"
    );
    assert!(stdout.contains("codec_name=h264"), "ffprobe saw: {stdout}");
    assert!(stdout.contains("codec_name=aac"), "ffprobe saw: {stdout}");
    assert!(stdout.contains("width=320"), "ffprobe saw: {stdout}");

    let published = publisher.join().expect("publisher thread");
    assert!(
        published.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&published.stderr)
    );
    let reports = server.join().expect("server thread");
    let player = reports
        .iter()
        .find(|r| {
            r.events
                .iter()
                .any(|e| matches!(e, SessionEvent::Play { .. }))
        })
        .expect("a play connection");
    record("ffprobe-play.bin", player);
    assert_eq!(player.error, None);
    assert!(
        matches!(player.handshake, Some(HandshakeKind::Complex(_))),
        "ffprobe verified our complex-handshake digests to get this far"
    );
    assert!(player.events.iter().any(|e| matches!(
        e,
        SessionEvent::Play { name, .. } if name == "test"
    )));
}
