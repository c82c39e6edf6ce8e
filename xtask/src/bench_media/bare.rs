//! The floor of HTTP-FLV fan-out: a bare sender (`bench-media --servers
//! bare`, run as the hidden `bench-media --bare-sender`) that sends the
//! source's FLV tags to every player in one `writev` per merge window, the
//! same bytes in the same number of calls as livestack, and does nothing
//! else: one thread, blocking sockets, no per-player state beyond the
//! socket, no channel, no task. What it costs is what the kernel charges
//! for the writes plus the least user space that can issue them.
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

/// A player: its socket, and whether it has had its first keyframe.
struct Player {
    socket: TcpStream,
    started: bool,
}

/// `xtask bench-media --bare-sender --port P --source FILE --merge-ms M`:
/// prints `listening` once it accepts players, then serves until killed.
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
    let headers: Vec<Vec<u8>> = tags
        .iter()
        .filter(|t| t.header)
        .map(|t| encode_tag(t.kind, 0, &t.body).map(|b| b.to_vec()))
        .collect::<Result<_, _>>()?;
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    let joining: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    {
        let joining = Arc::clone(&joining);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                if let Some(s) = answer(conn) {
                    joining.lock().unwrap_or_else(|e| e.into_inner()).push(s);
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
    let mut window: Vec<(bool, Vec<u8>)> = Vec::new();
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
                flush(&mut players, &joining, &headers, &mut window);
                next_write += merge;
                continue;
            }
            std::thread::sleep(due - now);
        }
        window.push((tag.keyframe, encode_tag(tag.kind, ts, &tag.body)?.to_vec()));
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

/// One `writev` per player of what the window gathered; players that
/// joined start with the sequence headers at their first keyframe.
fn flush(
    players: &mut Vec<Player>,
    joining: &Mutex<Vec<TcpStream>>,
    headers: &[Vec<u8>],
    window: &mut Vec<(bool, Vec<u8>)>,
) {
    players.extend(
        joining
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .map(|socket| Player {
                socket,
                started: false,
            }),
    );
    let first_key = window.iter().position(|(key, _)| *key);
    let all: Vec<IoSlice<'_>> = window.iter().map(|(_, b)| IoSlice::new(b)).collect();
    let joined: Vec<IoSlice<'_>> = match first_key {
        Some(k) => headers
            .iter()
            .map(|h| IoSlice::new(h))
            .chain(window[k..].iter().map(|(_, b)| IoSlice::new(b)))
            .collect(),
        None => Vec::new(),
    };
    players.retain_mut(|p| {
        let slices = if p.started {
            &all
        } else if first_key.is_some() {
            p.started = true;
            &joined
        } else {
            return true;
        };
        write_all_vectored(&mut p.socket, slices).is_ok()
    });
    window.clear();
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
