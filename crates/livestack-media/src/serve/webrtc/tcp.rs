//! ICE over TCP (RFC 6544, the server's candidate passive) on the WebRTC
//! port's number: for players whose networks block UDP. Browsers try it
//! by themselves when UDP fails; each connection carries the packets UDP
//! would, framed by a 2-byte length (RFC 4571).
//!
//! Owns: the TCP connections, their framing, and handing a connection's
//! packets to the session its first STUN request names (by our ufrag in
//! its USERNAME, as the UDP router does), with the way back
//! ([`Datagram::tcp`]). Must not: touch a session's state: the session
//! answers, and a connection ends when its session or its peer does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::session::Datagram;
use crate::Inner;

/// A connection that names no session by then is closed.
const FIRST_PACKET: Duration = Duration::from_secs(10);
/// Packets queued for the player before more are dropped (as a congested
/// UDP path would drop them; RTP recovers with NACK and PLI).
const QUEUE: usize = 512;

/// Accepts ICE-TCP connections until shutdown.
pub(crate) async fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    crate::accept_loop(inner, listener, "WebRTC TCP", |inner, socket, peer| {
        connection(inner, socket, peer)
    })
    .await;
}

/// One connection: frames in to its session, the session's packets out.
async fn connection(inner: Arc<Inner>, socket: TcpStream, peer: SocketAddr) {
    let Some(webrtc) = inner.webrtc.get() else {
        return;
    };
    let (mut rd, mut wr) = socket.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(QUEUE);
    let mut session: Option<mpsc::Sender<Datagram>> = None;
    let mut buf = BytesMut::with_capacity(4096);
    let deadline = tokio::time::Instant::now() + FIRST_PACKET;
    loop {
        tokio::select! {
            () = inner.shutdown.cancelled() => return,
            () = tokio::time::sleep_until(deadline), if session.is_none() => return,
            // `read_buf` is cancel-safe: bytes are only added once read.
            r = rd.read_buf(&mut buf) => {
                if !matches!(r, Ok(n) if n > 0) {
                    return;
                }
                while let Some(frame) = next_frame(&mut buf) {
                    if session.is_none() {
                        session = webrtc.session_for_stun(&frame);
                    }
                    let Some(to) = &session else {
                        tracing::debug!(%peer, "WebRTC TCP connection names no session");
                        return;
                    };
                    let datagram = Datagram {
                        source: peer,
                        at: Instant::now(),
                        contents: frame,
                        tcp: Some(tx.clone()),
                    };
                    match to.try_send(datagram) {
                        Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                        // The session ended.
                        Err(mpsc::error::TrySendError::Closed(_)) => return,
                    }
                }
            }
            Some(packet) = rx.recv() => {
                let Ok(len) = u16::try_from(packet.len()) else { continue };
                let mut framed = Vec::with_capacity(2 + packet.len());
                framed.extend_from_slice(&len.to_be_bytes());
                framed.extend_from_slice(&packet);
                if wr.write_all(&framed).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The next whole RFC 4571 frame in `buf`, taken out of it.
fn next_frame(buf: &mut BytesMut) -> Option<Vec<u8>> {
    let len = usize::from(u16::from_be_bytes([*buf.first()?, *buf.get(1)?]));
    if buf.len() < 2 + len {
        return None;
    }
    buf.advance(2);
    Some(buf.split_to(len).to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_out_whole_however_the_bytes_arrive() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[0, 3, b'a', b'b']);
        assert_eq!(next_frame(&mut buf), None, "half a frame");
        buf.extend_from_slice(&[b'c', 0, 0, 0, 1]);
        assert_eq!(next_frame(&mut buf), Some(b"abc".to_vec()));
        assert_eq!(next_frame(&mut buf), Some(Vec::new()), "an empty frame");
        assert_eq!(next_frame(&mut buf), None);
        assert_eq!(&buf[..], &[0, 1]);
    }
}
