//! Sending a player's datagrams: the packets of one wake-up, grouped into
//! runs of equal size to one peer, each run in one system call with UDP
//! generic segmentation offload (GSO, Linux's `UDP_SEGMENT`) through
//! quinn's `quinn-udp`; one `sendmsg` per packet where the kernel has no
//! GSO.
//!
//! Owns: the grouping and the sending. Must not: receive (the router
//! does) or know what the packets are.
//!
//! Why: a video frame reaches a player as several RTP packets of the same
//! size (FU-A fragments of one access unit, each encrypted with the same
//! overhead). Sent one `sendto` each, they were the largest item in the
//! WebRTC profile (`docs/benchmarks.md`); with GSO the kernel walks its
//! socket and route once per frame and cuts the segments itself.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use std::collections::HashMap;

use quinn_udp::{Transmit, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// The most bytes one GSO send carries (a UDP datagram's limit, less
/// headers).
const MAX_GSO_BYTES: usize = 60_000;

/// Sends on the WebRTC socket; cheap to clone.
#[derive(Clone)]
pub(crate) struct Sender {
    socket: Arc<UdpSocket>,
    /// What this kernel supports (GSO segments, …).
    state: Arc<UdpSocketState>,
}

impl Sender {
    /// A sender on `socket`. The kernel's support is probed on a socket of
    /// its own: `quinn-udp` turns on receive offload (GRO) on the socket
    /// it probes, which would hand the router several datagrams as one.
    pub(crate) fn new(socket: Arc<UdpSocket>) -> io::Result<Sender> {
        let local = socket.local_addr()?;
        let any: SocketAddr = if local.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let probe = std::net::UdpSocket::bind(any)?;
        let state = UdpSocketState::new((&probe).into())?;
        Ok(Sender {
            socket,
            state: Arc::new(state),
        })
    }

    /// Sends the packets in `batch`, in order, and empties it; returns the
    /// bytes sent. A send that fails is packets lost: UDP's way, and
    /// WebRTC's retransmission and keyframe requests deal with it.
    pub(crate) async fn send(&self, batch: &mut Batch) -> usize {
        let mut sent = 0;
        let max_segments = self.state.max_gso_segments().max(1);
        let mut at = 0;
        while at < batch.packets.len() {
            let (to, first) = &batch.packets[at];
            let segment = first.len();
            // A run: packets to the same peer, of the first one's size, the
            // last of which may be shorter.
            let mut end = at + 1;
            let mut bytes = segment;
            while end < batch.packets.len() && end - at < max_segments {
                let (next_to, next) = &batch.packets[end];
                if next_to != to
                    || next.len() > segment
                    || next.is_empty()
                    || bytes + next.len() > MAX_GSO_BYTES
                {
                    break;
                }
                bytes += next.len();
                end += 1;
                if next.len() < segment {
                    break;
                }
            }
            let contents: &[u8] = if end - at == 1 {
                first
            } else {
                batch.joined.clear();
                for (_, p) in &batch.packets[at..end] {
                    batch.joined.extend_from_slice(p);
                }
                &batch.joined
            };
            let transmit = Transmit {
                destination: *to,
                ecn: None,
                contents,
                segment_size: (end - at > 1).then_some(segment),
                src_ip: None,
            };
            if self.send_one(&transmit).await.is_ok() {
                sent += contents.len();
            }
            at = end;
        }
        batch.packets.clear();
        sent
    }

    async fn send_one(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        loop {
            self.socket.writable().await?;
            match self.socket.try_io(Interest::WRITABLE, || {
                self.state.try_send((&*self.socket).into(), transmit)
            }) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return r,
            }
        }
    }
}

/// Where one session's packets go: UDP ones into a [`Batch`] sent by
/// [`flush`](Outbox::flush), those for a peer that came over ICE-TCP
/// ([`super::tcp`]) to its connection at once.
pub(crate) struct Outbox {
    sender: Sender,
    batch: Batch,
    /// TCP peers by address: their connections' queues.
    tcp: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
}

impl Outbox {
    pub(crate) fn new(sender: Sender) -> Outbox {
        Outbox {
            sender,
            batch: Batch::default(),
            tcp: HashMap::new(),
        }
    }

    /// `source` is a TCP peer reached through `tx`.
    pub(crate) fn learn_tcp(&mut self, source: SocketAddr, tx: mpsc::Sender<Vec<u8>>) {
        self.tcp.entry(source).or_insert(tx);
    }

    /// Takes one of the session's packets; returns the bytes handed to a
    /// TCP connection (UDP ones count when flushed).
    pub(crate) fn push(&mut self, t: str0m::net::Transmit) -> usize {
        if t.proto == str0m::net::Protocol::Udp {
            self.batch.push(t.destination, t.contents.into());
            return 0;
        }
        let Some(tx) = self.tcp.get(&t.destination) else {
            return 0;
        };
        let packet: Vec<u8> = t.contents.into();
        let n = packet.len();
        // A full queue drops the packet, as a congested link would.
        match tx.try_send(packet) {
            Ok(()) => n,
            Err(mpsc::error::TrySendError::Full(_)) => 0,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.tcp.remove(&t.destination);
                0
            }
        }
    }

    /// Sends the UDP packets taken so far; returns their bytes.
    pub(crate) async fn flush(&mut self) -> usize {
        if self.batch.is_empty() {
            return 0;
        }
        self.sender.send(&mut self.batch).await
    }
}

/// The packets of one wake-up, waiting to be sent.
#[derive(Default)]
pub(crate) struct Batch {
    packets: Vec<(SocketAddr, Vec<u8>)>,
    /// A run's packets, end to end (reused).
    joined: Vec<u8>,
}

impl Batch {
    pub(crate) fn push(&mut self, to: SocketAddr, packet: Vec<u8>) {
        self.packets.push((to, packet));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_batch_arrives_as_the_datagrams_it_was_made_of_in_order() {
        let server = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind"));
        let peer = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let other = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let sender = Sender::new(Arc::clone(&server)).expect("sender");
        eprintln!("GSO segments: {}", sender.state.max_gso_segments());
        let (to, to_other) = (
            peer.local_addr().expect("addr"),
            other.local_addr().expect("addr"),
        );
        // A frame of three full packets and a short one, a packet for
        // someone else, then two packets of another size.
        let sizes = [1200, 1200, 1200, 700, 300, 90, 90];
        let mut batch = Batch::default();
        for (i, n) in sizes.iter().enumerate() {
            let dest = if i == 4 { to_other } else { to };
            batch.push(dest, vec![i as u8; *n]);
        }
        let sent = sender.send(&mut batch).await;
        assert_eq!(sent, sizes.iter().sum::<usize>());
        assert!(batch.is_empty());
        let mut buf = [0u8; 4096];
        for (i, n) in sizes.iter().enumerate().filter(|(i, _)| *i != 4) {
            let (len, _) = peer.recv_from(&mut buf).await.expect("recv");
            assert_eq!(len, *n, "datagram {i}");
            assert!(buf[..len].iter().all(|b| *b == i as u8), "datagram {i}");
        }
        let (len, _) = other.recv_from(&mut buf).await.expect("recv");
        assert_eq!((len, buf[0]), (300, 4));
    }
}
