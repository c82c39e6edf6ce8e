//! The RTMP handshake (C0/C1/C2 and S0/S1/S2), server and client side.
//!
//! This module owns the 3073-byte exchange that precedes the chunk stream,
//! including the "complex" (Flash Player 9) variant in which C1, S1 and S2
//! carry HMAC-SHA256 digests. It must not look at anything after C2 (or S2):
//! [`ServerHandshake::feed`] and [`ClientHandshake::feed`] report how many
//! bytes they consumed so the caller can hand the rest to the chunk layer.
//!
//! Complex handshake, as Adobe, nginx-rtmp and SRS implement it: a 1536-byte
//! packet holds `time(4) version(4)` and two 764-byte blocks. In schema 0
//! the digest block comes first (at byte 8), in schema 1 second (at byte
//! 772). A block starts with four bytes whose sum, modulo 728, locates the
//! 32-byte digest inside the block. The digest is an HMAC-SHA256 over the
//! whole packet minus those 32 bytes. The reply packet (S2 or C2) is random
//! bytes whose last 32 bytes are an HMAC of the rest, keyed by an HMAC of
//! the peer's digest.

use bytes::{BufMut, BytesMut};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// The RTMP version byte (C0/S0) for plain, unencrypted RTMP.
pub const RTMP_VERSION: u8 = 3;
/// Size of C1, C2, S1 and S2.
pub const PACKET_SIZE: usize = 1536;

const DIGEST_LEN: usize = 32;

/// "Genuine Adobe Flash Media Server 001" followed by 32 constant bytes.
const SERVER_KEY: [u8; 68] = *b"Genuine Adobe Flash Media Server 001\
\xF0\xEE\xC2\x4A\x80\x68\xBE\xE8\x2E\x00\xD0\xD1\x02\x9E\x7E\x57\x6E\xEC\x5D\x2D\x29\x80\x6F\xAB\x93\xB8\xE6\x36\xCF\xEB\x31\xAE";
const SERVER_PARTIAL_KEY_LEN: usize = 36;

/// "Genuine Adobe Flash Player 001" followed by the same 32 bytes.
const CLIENT_KEY: [u8; 62] = *b"Genuine Adobe Flash Player 001\
\xF0\xEE\xC2\x4A\x80\x68\xBE\xE8\x2E\x00\xD0\xD1\x02\x9E\x7E\x57\x6E\xEC\x5D\x2D\x29\x80\x6F\xAB\x93\xB8\xE6\x36\xCF\xEB\x31\xAE";
const CLIENT_PARTIAL_KEY_LEN: usize = 30;

/// Version we advertise in S1 for a complex handshake. Its first byte is at
/// least 3, which tells ffmpeg (when playing) to verify our digest.
const SERVER_VERSION: [u8; 4] = [0x0D, 0x0E, 0x0A, 0x0D];
/// Version ffmpeg and librtmp put in a complex C1 (9.0.124.2).
const CLIENT_VERSION: [u8; 4] = [0x09, 0x00, 0x7C, 0x02];

/// Where a complex handshake packet keeps its digest block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestSchema {
    /// Digest block first (offset base byte 8); what ffmpeg and librtmp send.
    Schema0,
    /// Key block first, digest block second (offset base byte 772).
    Schema1,
}

impl DigestSchema {
    fn digest_offset(self, packet: &[u8; PACKET_SIZE]) -> usize {
        let base = match self {
            DigestSchema::Schema0 => 8,
            DigestSchema::Schema1 => 772,
        };
        let sum: usize = packet[base..base + 4].iter().map(|&b| usize::from(b)).sum();
        sum % 728 + base + 4
    }
}

/// Which handshake variant a peer used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeKind {
    /// The original handshake: S2 echoes C1 and C2 echoes S1.
    Simple,
    /// The Flash Player 9 handshake with digests in the given schema.
    Complex(DigestSchema),
}

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// C0/S0 asked for a version other than 3 (6 and 8 are RTMPE, which is
    /// not supported).
    #[error("unsupported RTMP version {0} (only 3 is supported)")]
    UnsupportedVersion(u8),
}

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 of `packet` with the 32 bytes at `skip` left out.
fn digest_skipping(key: &[u8], packet: &[u8], skip: usize) -> [u8; DIGEST_LEN] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        return [0; DIGEST_LEN];
    };
    mac.update(&packet[..skip]);
    mac.update(&packet[skip + DIGEST_LEN..]);
    mac.finalize().into_bytes().into()
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; DIGEST_LEN] {
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        return [0; DIGEST_LEN];
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Finds a valid digest in `packet` made with `key`; schema 1 is tried
/// first, as nginx-rtmp does.
fn find_digest(packet: &[u8; PACKET_SIZE], key: &[u8]) -> Option<(DigestSchema, [u8; DIGEST_LEN])> {
    [DigestSchema::Schema1, DigestSchema::Schema0]
        .into_iter()
        .find_map(|schema| {
            let at = schema.digest_offset(packet);
            let expected = digest_skipping(key, packet, at);
            (expected[..] == packet[at..at + DIGEST_LEN]).then_some((schema, expected))
        })
}

/// Writes `time`, `version` and random bytes into a packet, then its digest
/// in `schema`, and returns the digest.
fn make_digest_packet(
    schema: DigestSchema,
    version: [u8; 4],
    key: &[u8],
) -> ([u8; PACKET_SIZE], [u8; DIGEST_LEN]) {
    let mut packet = [0u8; PACKET_SIZE];
    rand::thread_rng().fill_bytes(&mut packet[8..]);
    packet[4..8].copy_from_slice(&version);
    let at = schema.digest_offset(&packet);
    let digest = digest_skipping(key, &packet, at);
    packet[at..at + DIGEST_LEN].copy_from_slice(&digest);
    (packet, digest)
}

/// The answer to a complex C1/S1: random bytes signed with a key derived
/// from the peer's digest.
fn make_digest_response(peer_digest: &[u8; DIGEST_LEN], full_key: &[u8]) -> [u8; PACKET_SIZE] {
    let mut packet = [0u8; PACKET_SIZE];
    rand::thread_rng().fill_bytes(&mut packet);
    let key = hmac(full_key, peer_digest);
    let signature = hmac(&key, &packet[..PACKET_SIZE - DIGEST_LEN]);
    packet[PACKET_SIZE - DIGEST_LEN..].copy_from_slice(&signature);
    packet
}

fn verify_digest_response(
    packet: &[u8; PACKET_SIZE],
    own_digest: &[u8; DIGEST_LEN],
    full_key: &[u8],
) -> bool {
    let key = hmac(full_key, own_digest);
    hmac(&key, &packet[..PACKET_SIZE - DIGEST_LEN])[..] == packet[PACKET_SIZE - DIGEST_LEN..]
}

fn random_simple_packet() -> [u8; PACKET_SIZE] {
    let mut packet = [0u8; PACKET_SIZE];
    // time = 0 and a zero version field mark the simple handshake.
    rand::thread_rng().fill_bytes(&mut packet[8..]);
    packet
}

/// Accumulates a fixed-size packet across `feed` calls without copying
/// more than it needs.
struct Collector<const N: usize> {
    buf: Box<[u8; N]>,
    len: usize,
}

impl<const N: usize> Collector<N> {
    fn new() -> Self {
        Collector {
            buf: Box::new([0u8; N]),
            len: 0,
        }
    }

    /// Copies what it can from `input`, returning the bytes used.
    fn fill(&mut self, input: &[u8]) -> usize {
        let n = (N - self.len).min(input.len());
        self.buf[self.len..self.len + n].copy_from_slice(&input[..n]);
        self.len += n;
        n
    }

    fn is_full(&self) -> bool {
        self.len == N
    }
}

enum ServerState {
    /// Waiting for C0 + C1.
    C0C1(Collector<{ PACKET_SIZE + 1 }>),
    /// S0/S1/S2 sent; `remaining` bytes of C2 still to skip.
    C2 {
        remaining: usize,
    },
    Done,
}

/// Server side of the handshake.
///
/// Feed it the client's bytes; once C0 and C1 are in, it writes S0, S1 and
/// S2 to the output buffer, then it skips C2 (its contents are not checked,
/// as in nginx-rtmp and SRS, because clients fill it inconsistently).
pub struct ServerHandshake {
    state: ServerState,
    kind: Option<HandshakeKind>,
}

impl Default for ServerHandshake {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerHandshake {
    /// A handshake waiting for C0.
    pub fn new() -> Self {
        ServerHandshake {
            state: ServerState::C0C1(Collector::new()),
            kind: None,
        }
    }

    /// Consumes handshake bytes from `input`, appending any reply to `out`,
    /// and returns how many bytes of `input` belonged to the handshake. Once
    /// [`is_complete`](Self::is_complete), the rest of `input` is chunk data.
    pub fn feed(&mut self, input: &[u8], out: &mut BytesMut) -> Result<usize, HandshakeError> {
        let mut used = 0;
        loop {
            match &mut self.state {
                ServerState::C0C1(collector) => {
                    used += collector.fill(&input[used..]);
                    if collector.len > 0 && collector.buf[0] != RTMP_VERSION {
                        return Err(HandshakeError::UnsupportedVersion(collector.buf[0]));
                    }
                    if !collector.is_full() {
                        return Ok(used);
                    }
                    let mut c1 = [0u8; PACKET_SIZE];
                    c1.copy_from_slice(&collector.buf[1..]);
                    self.kind = Some(Self::respond(&c1, out));
                    self.state = ServerState::C2 {
                        remaining: PACKET_SIZE,
                    };
                }
                ServerState::C2 { remaining } => {
                    let n = (*remaining).min(input.len() - used);
                    used += n;
                    *remaining -= n;
                    if *remaining > 0 {
                        return Ok(used);
                    }
                    self.state = ServerState::Done;
                }
                ServerState::Done => return Ok(used),
            }
        }
    }

    /// Writes S0 S1 S2 for `c1` and says which variant was used.
    fn respond(c1: &[u8; PACKET_SIZE], out: &mut BytesMut) -> HandshakeKind {
        out.reserve(1 + 2 * PACKET_SIZE);
        out.put_u8(RTMP_VERSION);
        // A zero version field means the client does not expect digests.
        let client_digest = if c1[4..8] == [0, 0, 0, 0] {
            None
        } else {
            find_digest(c1, &CLIENT_KEY[..CLIENT_PARTIAL_KEY_LEN])
        };
        match client_digest {
            Some((schema, digest)) => {
                let (s1, _) = make_digest_packet(
                    schema,
                    SERVER_VERSION,
                    &SERVER_KEY[..SERVER_PARTIAL_KEY_LEN],
                );
                out.put_slice(&s1);
                out.put_slice(&make_digest_response(&digest, &SERVER_KEY));
                HandshakeKind::Complex(schema)
            }
            None => {
                out.put_slice(&random_simple_packet());
                out.put_slice(c1);
                HandshakeKind::Simple
            }
        }
    }

    /// Whether C2 has been fully received.
    pub fn is_complete(&self) -> bool {
        matches!(self.state, ServerState::Done)
    }

    /// The variant chosen, once C1 has been read.
    pub fn kind(&self) -> Option<HandshakeKind> {
        self.kind
    }
}

enum ClientState {
    /// C0+C1 written; waiting for S0 + S1.
    S0S1(Collector<{ PACKET_SIZE + 1 }>),
    /// C2 written; waiting for S2.
    S2(Collector<PACKET_SIZE>),
    Done,
}

/// Client side of the handshake.
///
/// [`new`](Self::new) writes C0 and C1; S1 is answered with C2 as soon as it
/// arrives, and the handshake completes when S2 has been read.
pub struct ClientHandshake {
    state: ClientState,
    /// Our C1 digest when we offered a complex handshake.
    own_digest: Option<[u8; DIGEST_LEN]>,
    server_verified: bool,
}

impl ClientHandshake {
    /// Starts a handshake, appending C0 and C1 to `out`. With `complex`, C1
    /// carries a schema-0 digest like ffmpeg's.
    pub fn new(complex: bool, out: &mut BytesMut) -> Self {
        out.reserve(1 + PACKET_SIZE);
        out.put_u8(RTMP_VERSION);
        let own_digest = if complex {
            let (c1, digest) = make_digest_packet(
                DigestSchema::Schema0,
                CLIENT_VERSION,
                &CLIENT_KEY[..CLIENT_PARTIAL_KEY_LEN],
            );
            out.put_slice(&c1);
            Some(digest)
        } else {
            out.put_slice(&random_simple_packet());
            None
        };
        ClientHandshake {
            state: ClientState::S0S1(Collector::new()),
            own_digest,
            server_verified: false,
        }
    }

    /// Consumes handshake bytes from `input`, appending C2 to `out` when S1
    /// is complete, and returns how many bytes belonged to the handshake.
    pub fn feed(&mut self, input: &[u8], out: &mut BytesMut) -> Result<usize, HandshakeError> {
        let mut used = 0;
        loop {
            match &mut self.state {
                ClientState::S0S1(collector) => {
                    used += collector.fill(&input[used..]);
                    if collector.len > 0 && collector.buf[0] != RTMP_VERSION {
                        return Err(HandshakeError::UnsupportedVersion(collector.buf[0]));
                    }
                    if !collector.is_full() {
                        return Ok(used);
                    }
                    let mut s1 = [0u8; PACKET_SIZE];
                    s1.copy_from_slice(&collector.buf[1..]);
                    let server_digest = match self.own_digest {
                        Some(_) if s1[4..8] != [0, 0, 0, 0] => {
                            find_digest(&s1, &SERVER_KEY[..SERVER_PARTIAL_KEY_LEN])
                        }
                        _ => None,
                    };
                    match server_digest {
                        Some((_, digest)) => {
                            out.put_slice(&make_digest_response(&digest, &CLIENT_KEY));
                        }
                        None => out.put_slice(&s1),
                    }
                    self.state = ClientState::S2(Collector::new());
                }
                ClientState::S2(collector) => {
                    used += collector.fill(&input[used..]);
                    if !collector.is_full() {
                        return Ok(used);
                    }
                    if let Some(own) = &self.own_digest {
                        self.server_verified =
                            verify_digest_response(&collector.buf, own, &SERVER_KEY);
                    }
                    self.state = ClientState::Done;
                }
                ClientState::Done => return Ok(used),
            }
        }
    }

    /// Whether S2 has been fully received.
    pub fn is_complete(&self) -> bool {
        matches!(self.state, ClientState::Done)
    }

    /// Whether the server answered a complex C1 with a valid S2 digest.
    pub fn server_verified(&self) -> bool {
        self.server_verified
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a client and a server against each other, delivering bytes in
    /// pieces of `step`, and returns what each produced after the handshake.
    fn run(complex: bool, step: usize) -> (ServerHandshake, ClientHandshake) {
        let mut to_server = BytesMut::new();
        let mut client = ClientHandshake::new(complex, &mut to_server);
        let mut server = ServerHandshake::new();
        let mut to_client = BytesMut::new();
        for _ in 0..10_000 {
            if server.is_complete() && client.is_complete() {
                break;
            }
            let n = step.min(to_server.len());
            let chunk = to_server.split_to(n);
            let used = server.feed(&chunk, &mut to_client).expect("server accepts");
            assert_eq!(
                used, n,
                "the server consumes everything during the handshake"
            );
            let n = step.min(to_client.len());
            let chunk = to_client.split_to(n);
            let used = client.feed(&chunk, &mut to_server).expect("client accepts");
            assert_eq!(used, n);
        }
        assert!(server.is_complete() && client.is_complete());
        (server, client)
    }

    #[test]
    fn simple_handshake_completes_when_fed_in_any_piece_size() {
        for step in [1, 7, 1000, 5000] {
            let (server, client) = run(false, step);
            assert_eq!(server.kind(), Some(HandshakeKind::Simple));
            assert!(!client.server_verified());
        }
    }

    #[test]
    fn complex_handshake_is_detected_and_the_server_digest_verifies() {
        for step in [3, 4096] {
            let (server, client) = run(true, step);
            assert_eq!(
                server.kind(),
                Some(HandshakeKind::Complex(DigestSchema::Schema0))
            );
            assert!(
                client.server_verified(),
                "S2 is signed with the client digest"
            );
        }
    }

    #[test]
    fn complex_s1_carries_a_digest_ffmpeg_can_validate() {
        let (c1, _) = make_digest_packet(
            DigestSchema::Schema1,
            CLIENT_VERSION,
            &CLIENT_KEY[..CLIENT_PARTIAL_KEY_LEN],
        );
        let mut input = vec![RTMP_VERSION];
        input.extend_from_slice(&c1);
        let mut server = ServerHandshake::new();
        let mut out = BytesMut::new();
        server.feed(&input, &mut out).expect("accepts");
        assert_eq!(
            server.kind(),
            Some(HandshakeKind::Complex(DigestSchema::Schema1))
        );
        assert_eq!(out.len(), 1 + 2 * PACKET_SIZE);
        let mut s1 = [0u8; PACKET_SIZE];
        s1.copy_from_slice(&out[1..1 + PACKET_SIZE]);
        assert!(
            s1[4] >= 3,
            "ffmpeg only validates when the version byte is >= 3"
        );
        let found = find_digest(&s1, &SERVER_KEY[..SERVER_PARTIAL_KEY_LEN]);
        assert_eq!(found.map(|(schema, _)| schema), Some(DigestSchema::Schema1));
        let client_digest_at = DigestSchema::Schema1.digest_offset(&c1);
        let mut client_digest = [0u8; DIGEST_LEN];
        client_digest.copy_from_slice(&c1[client_digest_at..client_digest_at + DIGEST_LEN]);
        let mut s2 = [0u8; PACKET_SIZE];
        s2.copy_from_slice(&out[1 + PACKET_SIZE..]);
        assert!(verify_digest_response(&s2, &client_digest, &SERVER_KEY));
    }

    #[test]
    fn c1_with_a_version_but_no_valid_digest_falls_back_to_simple() {
        let mut input = vec![RTMP_VERSION];
        let mut c1 = [0x5Au8; PACKET_SIZE];
        c1[4..8].copy_from_slice(&CLIENT_VERSION);
        input.extend_from_slice(&c1);
        let mut server = ServerHandshake::new();
        let mut out = BytesMut::new();
        server.feed(&input, &mut out).expect("accepts");
        assert_eq!(server.kind(), Some(HandshakeKind::Simple));
        assert_eq!(&out[1 + PACKET_SIZE..], &c1[..], "S2 echoes C1");
    }

    #[test]
    fn bytes_after_c2_are_left_for_the_chunk_layer() {
        let mut input = vec![RTMP_VERSION];
        input.extend_from_slice(&[0u8; PACKET_SIZE]);
        input.extend_from_slice(&[1u8; PACKET_SIZE]);
        input.extend_from_slice(b"chunks");
        let mut server = ServerHandshake::new();
        let mut out = BytesMut::new();
        let used = server.feed(&input, &mut out).expect("accepts");
        assert!(server.is_complete());
        assert_eq!(&input[used..], b"chunks");
    }

    #[test]
    fn a_version_other_than_3_is_rejected_at_the_first_byte() {
        let mut server = ServerHandshake::new();
        let mut out = BytesMut::new();
        assert_eq!(
            server.feed(&[6], &mut out),
            Err(HandshakeError::UnsupportedVersion(6))
        );
        assert!(out.is_empty());
    }
}
