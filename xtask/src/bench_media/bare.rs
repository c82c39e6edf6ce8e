//! The floor of fan-out: a bare sender (`bench-media --servers bare`, run
//! as the hidden `bench-media --bare-sender`) that sends the source's
//! frames to every player in one `writev` per merge window, the same bytes
//! in the same number of calls as livestack, and does nothing else: one
//! thread, blocking sockets, no per-player state beyond the socket, no
//! channel, no task. What it costs is what the kernel charges for the
//! writes plus the least user space that can issue them.
//!
//! HTTP-FLV players get FLV tags; RTMP players get each frame as one
//! type-0 chunk run in 60000-byte chunks, as livestack encodes them, after
//! the handshake and the `connect`/`createStream`/`play` exchange (answered
//! by livestack's own sans-IO session; after that, nothing a player sends
//! is read, as acknowledgements need no answer).
//!
//! Players join at the next keyframe (no GOP cache), after the FLV header
//! and the sequence headers; the source loops with continuous timestamps.

use std::io::{IoSlice, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use livestack_formats::flv::{encode_header, encode_tag, FlvReader, TagKind, VideoInfo};
use livestack_rtmp::chunk::encode_message_fmt0;
use livestack_rtmp::session::{ServerConfig, ServerSession, SessionEvent};

/// The message stream every RTMP player plays on: the first one
/// `createStream` gives, as every loader and livestack's own hub assume.
const STREAM_ID: u32 = 1;

/// One tag of the source: kind, timestamp, body.
struct SourceTag {
    kind: TagKind,
    ts: u32,
    body: Vec<u8>,
    keyframe: bool,
    header: bool,
}

fn read_source(path: &Path) -> Result<(Vec<SourceTag>, u32)> {
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut reader = FlvReader::new();
    reader.push(&data);
    let mut tags = Vec::new();
    while let Some(tag) = reader.next_tag().context("bad source FLV")? {
        let (keyframe, header) = match tag.kind {
            TagKind::Video => VideoInfo::parse(&tag.payload)
                .map(|v| (v.is_keyframe(), v.is_sequence_header()))
                .unwrap_or((false, false)),
            TagKind::Audio => (false, tag.payload.get(1) == Some(&0)),
            TagKind::Script => (false, true),
        };
        tags.push(SourceTag {
            kind: tag.kind,
            ts: tag.timestamp_ms,
            body: tag.payload.to_vec(),
            keyframe,
            header,
        });
    }
    let span = tags.iter().map(|t| t.ts).max().unwrap_or(0) + 40;
    if tags.is_empty() {
        bail!("the source has no tags");
    }
    Ok((tags, span))
}

/// A player: its socket, what it plays, and whether it has had its first
/// keyframe.
struct Player {
    socket: TcpStream,
    rtmp: bool,
    started: bool,
}

/// The sequence headers, as FLV tags and as RTMP messages.
struct Headers {
    flv: Vec<Vec<u8>>,
    rtmp: Vec<Vec<u8>>,
}

/// The RTMP chunk stream and message type livestack sends a kind on.
fn rtmp_ids(kind: TagKind) -> (u32, u8) {
    match kind {
        TagKind::Audio => (4, 8),
        TagKind::Video => (6, 9),
        TagKind::Script => (5, 18),
    }
}

fn encode_rtmp(kind: TagKind, ts: u32, body: &[u8]) -> Vec<u8> {
    let (csid, msg_type) = rtmp_ids(kind);
    let chunk_size = ServerConfig::default().chunk_size;
    encode_message_fmt0(csid, msg_type, STREAM_ID, ts, body, chunk_size).to_vec()
}

/// `xtask bench-media --bare-sender --port P --rtmp-port R --source FILE
/// --merge-ms M`: HTTP-FLV on P, RTMP on R; prints `listening` once it
/// accepts players, then serves until killed.
pub(crate) fn main(args: &[&str]) -> Result<ExitCode> {
    let value = |key: &str| -> Result<&str> {
        args.iter()
            .position(|a| *a == key)
            .and_then(|i| args.get(i + 1).copied())
            .with_context(|| format!("--bare-sender needs {key}"))
    };
    let port: u16 = value("--port")?.parse()?;
    let merge = Duration::from_millis(value("--merge-ms")?.parse()?);
    let (tags, span) = read_source(Path::new(value("--source")?))?;
    let rtmp_port: u16 = value("--rtmp-port")?.parse()?;
    let sequence: Vec<&SourceTag> = tags.iter().filter(|t| t.header).collect();
    let headers = Headers {
        flv: sequence
            .iter()
            .map(|t| encode_tag(t.kind, 0, &t.body).map(|b| b.to_vec()))
            .collect::<Result<_, _>>()?,
        rtmp: sequence
            .iter()
            .map(|t| encode_rtmp(t.kind, 0, &t.body))
            .collect(),
    };
    let joining: Arc<Mutex<Vec<Player>>> = Arc::default();
    // The accepting threads live as long as the process: it is killed
    // when the run ends.
    for (port, rtmp) in [(port, false), (rtmp_port, true)] {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let joining = Arc::clone(&joining);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let answered = if rtmp {
                    answer_rtmp(conn)
                } else {
                    answer(conn)
                };
                if let Some(socket) = answered {
                    let player = Player {
                        socket,
                        rtmp,
                        started: false,
                    };
                    joining
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(player);
                }
            }
        });
    }
    println!("listening");
    let mut players: Vec<Player> = Vec::new();
    let began = Instant::now();
    let media: Vec<&SourceTag> = tags.iter().filter(|t| !t.header).collect();
    let mut i = 0usize;
    let mut lap = 0u32;
    // The window's frames with their timestamps on the looped timeline;
    // encoded when written, only for the protocols that have players.
    let mut window: Vec<(u32, &SourceTag)> = Vec::new();
    let mut next_write = began + merge;
    loop {
        let tag = media[i];
        let ts = lap.wrapping_mul(span).wrapping_add(tag.ts);
        let due = began + Duration::from_millis(u64::from(ts));
        let now = Instant::now();
        if due > now {
            // Write what the window gathered before sleeping past its end.
            if next_write <= due {
                std::thread::sleep(next_write.saturating_duration_since(now));
                flush(&mut players, &joining, &headers, &mut window)?;
                next_write += merge;
                continue;
            }
            std::thread::sleep(due - now);
        }
        window.push((ts, tag));
        i += 1;
        if i == media.len() {
            i = 0;
            lap += 1;
        }
    }
}

/// Reads the request and answers with the FLV header; `None` if the
/// player went away.
fn answer(mut conn: TcpStream) -> Option<TcpStream> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf).ok()?;
        if n == 0 || head.len() > 16 << 10 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let mut out =
        b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nConnection: close\r\n\r\n".to_vec();
    out.extend_from_slice(&encode_header(true, true));
    conn.write_all(&out).ok()?;
    conn.set_nodelay(true).ok()?;
    Some(conn)
}

/// Answers the RTMP handshake and commands up to `play`; `None` if the
/// player went away, stalled for 5 s or plays another message stream.
fn answer_rtmp(mut conn: TcpStream) -> Option<TcpStream> {
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut session = ServerSession::new(ServerConfig::default());
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let n = conn.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        session.feed(&buf[..n]).ok()?;
        let mut playing = false;
        while let Some(event) = session.poll_event() {
            if let SessionEvent::Play { stream_id, .. } = event {
                if stream_id != STREAM_ID {
                    return None;
                }
                session.accept_play(stream_id);
                playing = true;
            }
        }
        while let Some(out) = session.take_output() {
            conn.write_all(&out).ok()?;
        }
        if playing {
            conn.set_nodelay(true).ok()?;
            return Some(conn);
        }
    }
}

/// One `writev` per player of what the window gathered; players that
/// joined start with the sequence headers at their first keyframe.
fn flush(
    players: &mut Vec<Player>,
    joining: &Mutex<Vec<Player>>,
    headers: &Headers,
    window: &mut Vec<(u32, &SourceTag)>,
) -> Result<()> {
    players.extend(joining.lock().unwrap_or_else(|e| e.into_inner()).drain(..));
    let first_key = window.iter().position(|(_, t)| t.keyframe);
    // Each frame encoded once per protocol that has players, as livestack
    // encodes it once for all of them.
    let encoded = |rtmp: bool| -> Result<Vec<Vec<u8>>> {
        if !players.iter().any(|p| p.rtmp == rtmp) {
            return Ok(Vec::new());
        }
        let encode = |&(ts, t): &(u32, &SourceTag)| -> Result<Vec<u8>> {
            Ok(if rtmp {
                encode_rtmp(t.kind, ts, &t.body)
            } else {
                encode_tag(t.kind, ts, &t.body)?.to_vec()
            })
        };
        window.iter().map(encode).collect()
    };
    let frames = [encoded(false)?, encoded(true)?];
    let slices = |rtmp: bool, from: usize, with_headers: bool| -> Vec<IoSlice<'_>> {
        let heads = if rtmp { &headers.rtmp } else { &headers.flv };
        let heads = heads.iter().filter(|_| with_headers);
        let frames = frames[usize::from(rtmp)].iter().skip(from);
        heads.chain(frames).map(|b| IoSlice::new(b)).collect()
    };
    let all = [slices(false, 0, false), slices(true, 0, false)];
    let joined = first_key.map(|k| [slices(false, k, true), slices(true, k, true)]);
    players.retain_mut(|p| {
        let slices = match (&joined, p.started) {
            (_, true) => &all[usize::from(p.rtmp)],
            (Some(joined), false) => {
                p.started = true;
                &joined[usize::from(p.rtmp)]
            }
            (None, false) => return true,
        };
        write_all_vectored(&mut p.socket, slices).is_ok()
    });
    window.clear();
    Ok(())
}

/// `writev` until every slice is written (the first call nearly always
/// takes all of it: the socket buffer holds a window's bytes).
fn write_all_vectored(socket: &mut TcpStream, slices: &[IoSlice<'_>]) -> std::io::Result<()> {
    let total: usize = slices.iter().map(|s| s.len()).sum();
    let done = socket.write_vectored(slices)?;
    if done < total {
        let rest: Vec<u8> = slices.iter().flat_map(|s| s.iter().copied()).collect();
        socket.write_all(&rest[done..])?;
    }
    Ok(())
}
