//! What a client that has not authenticated can hold: slow heads and
//! bodies time out, oversize bodies are refused at once, and connections
//! beyond the limits are closed before anything is read.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::harness::*;

/// Whether the server closes `stream` (EOF or reset) within `limit`.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).expect("read timeout");
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return started.elapsed() <= limit,
        }
    }
}

#[test]
fn a_request_head_trickled_a_byte_at_a_time_is_cut_off_on_both_http_servers() {
    let server = Server::start();
    for addr in [server.addr, server.http] {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.write_all(b"GET /live/cam.flv HTTP/1.1\r\nHost: x\r\n")
            .expect("write");
        let started = Instant::now();
        let mut cut = false;
        // A header byte every second: each read is quick, the head never ends.
        while started.elapsed() < Duration::from_secs(16) {
            if s.write_all(b"X").is_err() {
                cut = true;
                break;
            }
            s.set_read_timeout(Some(Duration::from_secs(1)))
                .expect("timeout");
            let mut buf = [0u8; 1024];
            match s.read(&mut buf) {
                Ok(_) => {
                    cut = true;
                    break;
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => {
                    cut = true;
                    break;
                }
            }
        }
        assert!(cut, "{addr}: a trickled head held the connection for 16 s");
    }
}

#[test]
fn a_declared_body_over_the_limit_is_refused_before_it_is_sent() {
    let server = Server::start();
    let mut s = TcpStream::connect(server.addr).expect("connect");
    s.write_all(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-TC-Action: DescribeLiveDomains\r\nContent-Length: 20000000\r\n\r\n{",
    )
    .expect("write");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = vec![0u8; 8192];
    let n = s.read(&mut buf).expect("an answer within 5 s");
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.contains("RequestSizeLimitExceeded"), "{text}");
}

/// A connection to `addr` the server has accepted and answered: the RTMP
/// handshake's first half, or an HTTP request on a kept-alive connection.
fn accepted(addr: SocketAddr, rtmp: bool) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    if rtmp {
        let mut c0c1 = vec![3u8];
        c0c1.extend(std::iter::repeat_n(0u8, 1536));
        s.write_all(&c0c1).expect("C0C1");
        let mut s0s1 = vec![0u8; 1537];
        s.read_exact(&mut s0s1).expect("S0S1");
    } else {
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("request");
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).expect("answer");
        assert!(buf[..n].starts_with(b"HTTP/1.1 "), "{addr}");
    }
    s
}

#[test]
fn connections_over_the_limits_are_closed_at_once_on_every_listener() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("livestack.toml");
    std::fs::write(&config, "[limits]\nmax_connections_per_ip = 4\n").expect("config");
    let server = Server::start_with_args(&["--config", config.to_str().expect("path")]);
    // Four connections spread over the listeners take the budget, each
    // answered once, so it is known to be held (not merely queued in the
    // kernel's backlog, where a fifth could overtake it)...
    let held: Vec<TcpStream> = [server.http, server.rtmp, server.addr, server.http]
        .iter()
        .map(|a: &SocketAddr| accepted(*a, *a == server.rtmp))
        .collect();
    // ...so a fifth, on any of them, is closed before it is read.
    for addr in [server.addr, server.rtmp, server.http] {
        let mut extra = TcpStream::connect(addr).expect("connect");
        let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(closed_within(&mut extra, Duration::from_secs(5)), "{addr}");
    }
    drop(held);
    assert!(
        wait_until(Duration::from_secs(5), || http(
            server.addr,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .is_ok_and(|r| r.status == 200)),
        "the budget did not come back"
    );
}

/// An RTMP connection past the handshake that has sent the first 59,999
/// bytes of a 60,000-byte message, which the server must hold.
fn rtmp_partial_message(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut c0c1 = vec![3u8];
    c0c1.extend((0..1536u32).map(|i| (i * 7) as u8));
    s.write_all(&c0c1).expect("C0C1");
    let mut s0s1s2 = vec![0u8; 1 + 1536 + 1536];
    s.read_exact(&mut s0s1s2).expect("S0S1S2");
    s.write_all(&s0s1s2[1..1537]).expect("C2");
    // Set Chunk Size 65536, so one chunk carries (nearly) the message.
    let mut out = vec![0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0];
    out.extend(65_536u32.to_be_bytes());
    // A 60,000-byte message of type 20 on chunk stream 3, all but its
    // last byte.
    let len = 60_000u32.to_be_bytes();
    out.extend([0x03, 0, 0, 0, len[1], len[2], len[3], 20, 0, 0, 0, 0]);
    out.extend(std::iter::repeat_n(0x05u8, 59_999));
    s.write_all(&out).expect("partial message");
    s
}

#[test]
fn rtmp_connections_together_hold_no_more_partial_messages_than_the_shared_budget() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("livestack.toml");
    // 1 MiB for every connection together: 17 of these partial messages.
    std::fs::write(&config, "[limits]\nrtmp_buffered_mib = 1\n").expect("config");
    let server = Server::start_with_args(&["--config", config.to_str().expect("path")]);
    let mut held: Vec<TcpStream> = (0..24).map(|_| rtmp_partial_message(server.rtmp)).collect();
    // Each one alone is well within its own 256 KiB; together they are
    // not: at most 17 fit, so at least 7 are closed (each that is closed
    // gives its bytes back, so the count settles between 7 and a few more).
    let mut closed = vec![false; held.len()];
    let count = |closed: &[bool]| closed.iter().filter(|&&c| c).count();
    assert!(
        wait_until(Duration::from_secs(10), || {
            for (s, c) in held.iter_mut().zip(closed.iter_mut()) {
                if !*c {
                    *c = closed_within(s, Duration::from_millis(1));
                }
            }
            count(&closed) >= 24 - 17
        }),
        "{} of 24 closed",
        count(&closed)
    );
    assert!(count(&closed) <= 24 - 12, "{} of 24 closed", count(&closed));
    // Closed connections give their bytes back.
    drop(held);
    assert!(
        wait_until(Duration::from_secs(5), || {
            let mut again: Vec<TcpStream> =
                (0..12).map(|_| rtmp_partial_message(server.rtmp)).collect();
            again
                .iter_mut()
                .all(|s| !closed_within(s, Duration::from_millis(200)))
        }),
        "the shared budget did not come back"
    );
}
