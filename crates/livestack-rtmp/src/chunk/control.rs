//! Protocol control and user control messages, and the per-connection
//! bookkeeping they drive.
//!
//! This module owns Set Chunk Size, Abort, Acknowledgement, Window
//! Acknowledgement Size, Set Peer Bandwidth and the User Control events, for
//! both directions: [`ChunkConnection`] applies what the peer sends (chunk
//! size, acknowledgement window, ping) and writes the replies the protocol
//! requires. It must not handle commands or media, which it passes through
//! untouched.

use bytes::{BufMut, Bytes, BytesMut};

use super::{
    encode_message_fmt0_into, msg_type, ChunkDecoder, ChunkError, Message, CSID_PROTOCOL_CONTROL,
    DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE,
};

/// Set Peer Bandwidth limit type "dynamic" (hard or soft, as the previous).
pub const LIMIT_TYPE_DYNAMIC: u8 = 2;

/// A User Control Message event (message type 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserControlEvent {
    /// A stream became functional (sent before `onStatus` start codes).
    StreamBegin(u32),
    /// Playback of a stream ended.
    StreamEof(u32),
    /// A stream has no more data for now.
    StreamDry(u32),
    /// The client's buffer length for a stream, in milliseconds.
    SetBufferLength {
        /// Message stream id.
        stream_id: u32,
        /// Buffer length in milliseconds.
        buffer_ms: u32,
    },
    /// A stream is a recording.
    StreamIsRecorded(u32),
    /// A ping; the receiver answers with [`PingResponse`](Self::PingResponse).
    PingRequest(u32),
    /// The answer to a ping, echoing its timestamp.
    PingResponse(u32),
    /// Any other event type, kept raw.
    Other {
        /// Event type.
        event_type: u16,
        /// Event data.
        data: Bytes,
    },
}

impl UserControlEvent {
    /// Parses a User Control Message payload.
    pub fn parse(payload: &Bytes) -> Result<Self, ChunkError> {
        let too_short = || ChunkError::ControlMessageTooShort {
            msg_type: msg_type::USER_CONTROL,
            len: payload.len(),
        };
        let event_type = match payload.get(..2) {
            Some(b) => u16::from_be_bytes([b[0], b[1]]),
            None => return Err(too_short()),
        };
        let u32_at = |at: usize| {
            payload
                .get(at..at + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(too_short)
        };
        Ok(match event_type {
            0 => UserControlEvent::StreamBegin(u32_at(2)?),
            1 => UserControlEvent::StreamEof(u32_at(2)?),
            2 => UserControlEvent::StreamDry(u32_at(2)?),
            3 => UserControlEvent::SetBufferLength {
                stream_id: u32_at(2)?,
                buffer_ms: u32_at(6)?,
            },
            4 => UserControlEvent::StreamIsRecorded(u32_at(2)?),
            6 => UserControlEvent::PingRequest(u32_at(2)?),
            7 => UserControlEvent::PingResponse(u32_at(2)?),
            other => UserControlEvent::Other {
                event_type: other,
                data: payload.slice(2..),
            },
        })
    }

    /// Appends the message payload for this event.
    pub fn encode(&self, out: &mut BytesMut) {
        let (event_type, value) = match self {
            UserControlEvent::StreamBegin(v) => (0, *v),
            UserControlEvent::StreamEof(v) => (1, *v),
            UserControlEvent::StreamDry(v) => (2, *v),
            UserControlEvent::SetBufferLength {
                stream_id,
                buffer_ms,
            } => {
                out.put_u16(3);
                out.put_u32(*stream_id);
                out.put_u32(*buffer_ms);
                return;
            }
            UserControlEvent::StreamIsRecorded(v) => (4, *v),
            UserControlEvent::PingRequest(v) => (6, *v),
            UserControlEvent::PingResponse(v) => (7, *v),
            UserControlEvent::Other { event_type, data } => {
                out.put_u16(*event_type);
                out.put_slice(data);
                return;
            }
        };
        out.put_u16(event_type);
        out.put_u32(value);
    }
}

fn read_u32(message: &Message) -> Result<u32, ChunkError> {
    match message.payload.get(..4) {
        Some(b) => Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        None => Err(ChunkError::ControlMessageTooShort {
            msg_type: message.msg_type,
            len: message.payload.len(),
        }),
    }
}

/// One side of a chunk-stream connection after the handshake: the decoder
/// plus the protocol-control state both peers keep.
///
/// [`read_message`](Self::read_message) applies protocol control messages
/// and answers pings itself, and returns every other message (including
/// user control events other than pings). Replies go to the `out` buffer
/// passed in, in order with whatever else the caller writes there.
pub struct ChunkConnection {
    decoder: ChunkDecoder,
    chunk_size_out: u32,
    /// Acknowledgement window the peer asked for (0: none yet).
    peer_window: u32,
    /// Window we asked the peer to acknowledge (0: none announced).
    own_window: u32,
    received: u64,
    last_ack_at: u64,
    peer_acknowledged: u32,
}

impl Default for ChunkConnection {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkConnection {
    /// A connection in its initial state: chunk size 128 both ways, no
    /// acknowledgement windows.
    pub fn new() -> Self {
        ChunkConnection {
            decoder: ChunkDecoder::new(),
            chunk_size_out: DEFAULT_CHUNK_SIZE,
            peer_window: 0,
            own_window: 0,
            received: 0,
            last_ack_at: 0,
            peer_acknowledged: 0,
        }
    }

    /// The decoder, e.g. to change its limits.
    pub fn decoder_mut(&mut self) -> &mut ChunkDecoder {
        &mut self.decoder
    }

    /// The chunk size we write with.
    pub fn chunk_size_out(&self) -> u32 {
        self.chunk_size_out
    }

    /// The chunk size the peer writes with.
    pub fn chunk_size_in(&self) -> u32 {
        self.decoder.chunk_size()
    }

    /// Total bytes counted by [`bytes_received`](Self::bytes_received).
    pub fn total_received(&self) -> u64 {
        self.received
    }

    /// The sequence number in the peer's last Acknowledgement.
    pub fn peer_acknowledged(&self) -> u32 {
        self.peer_acknowledged
    }

    /// Writes Set Chunk Size and uses `size` (clamped to 1..=2^31-1) for
    /// everything written after it.
    pub fn set_chunk_size_out(&mut self, size: u32, out: &mut BytesMut) {
        let size = size.clamp(1, MAX_CHUNK_SIZE);
        self.write_control(out, msg_type::SET_CHUNK_SIZE, &size.to_be_bytes());
        self.chunk_size_out = size;
    }

    /// Writes Window Acknowledgement Size: the peer should acknowledge every
    /// `size` bytes it receives from us.
    pub fn set_window_ack_size(&mut self, size: u32, out: &mut BytesMut) {
        self.write_control(out, msg_type::WINDOW_ACK_SIZE, &size.to_be_bytes());
        self.own_window = size;
    }

    /// Writes Set Peer Bandwidth.
    pub fn set_peer_bandwidth(&mut self, size: u32, limit_type: u8, out: &mut BytesMut) {
        let mut payload = [0u8; 5];
        payload[..4].copy_from_slice(&size.to_be_bytes());
        payload[4] = limit_type;
        self.write_control(out, msg_type::SET_PEER_BANDWIDTH, &payload);
    }

    /// Writes a User Control Message.
    pub fn write_user_control(&self, event: &UserControlEvent, out: &mut BytesMut) {
        let mut payload = BytesMut::with_capacity(10);
        event.encode(&mut payload);
        self.write_control(out, msg_type::USER_CONTROL, &payload);
    }

    fn write_control(&self, out: &mut BytesMut, msg_type: u8, payload: &[u8]) {
        encode_message_fmt0_into(
            out,
            CSID_PROTOCOL_CONTROL,
            msg_type,
            0,
            0,
            payload,
            self.chunk_size_out,
        );
    }

    /// Writes any message with a type-0 header at our chunk size.
    pub fn write_message(
        &self,
        out: &mut BytesMut,
        csid: u32,
        msg_type: u8,
        stream_id: u32,
        timestamp: u32,
        payload: &[u8],
    ) {
        encode_message_fmt0_into(
            out,
            csid,
            msg_type,
            stream_id,
            timestamp,
            payload,
            self.chunk_size_out,
        );
    }

    /// Counts `n` bytes received from the peer and writes an
    /// Acknowledgement whenever the peer's window has been reached.
    pub fn bytes_received(&mut self, n: usize, out: &mut BytesMut) {
        self.received += n as u64;
        if self.peer_window > 0 && self.received - self.last_ack_at >= u64::from(self.peer_window) {
            self.last_ack_at = self.received;
            // The sequence number wraps at 32 bits like every RTMP counter.
            let sequence = self.received as u32;
            self.write_control(out, msg_type::ACKNOWLEDGEMENT, &sequence.to_be_bytes());
        }
    }

    /// Decodes messages from `buf`, applying protocol control messages and
    /// answering pings (into `out`), until one that the caller must handle
    /// is complete.
    pub fn read_message(
        &mut self,
        buf: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<Option<Message>, ChunkError> {
        while let Some(message) = self.decoder.decode(buf)? {
            match message.msg_type {
                msg_type::SET_CHUNK_SIZE => {
                    // The top bit is reserved; peers that set it are broken.
                    self.decoder.set_chunk_size(read_u32(&message)?)?;
                }
                msg_type::ABORT => self.decoder.abort(read_u32(&message)?),
                msg_type::ACKNOWLEDGEMENT => self.peer_acknowledged = read_u32(&message)?,
                msg_type::WINDOW_ACK_SIZE => self.peer_window = read_u32(&message)?,
                msg_type::SET_PEER_BANDWIDTH => {
                    let size = read_u32(&message)?;
                    if size != self.own_window {
                        self.set_window_ack_size(size, out);
                    }
                }
                msg_type::USER_CONTROL => match UserControlEvent::parse(&message.payload)? {
                    UserControlEvent::PingRequest(t) => {
                        self.write_user_control(&UserControlEvent::PingResponse(t), out);
                    }
                    _ => return Ok(Some(message)),
                },
                _ => return Ok(Some(message)),
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes everything in `wire` with a fresh decoder at chunk size 128.
    fn decode_all(wire: &[u8]) -> Vec<Message> {
        let mut decoder = ChunkDecoder::new();
        let mut buf = BytesMut::from(wire);
        let mut out = Vec::new();
        while let Some(m) = decoder.decode(&mut buf).expect("valid") {
            out.push(m);
        }
        out
    }

    #[test]
    fn user_control_events_round_trip() {
        let events = [
            UserControlEvent::StreamBegin(1),
            UserControlEvent::StreamEof(2),
            UserControlEvent::StreamDry(3),
            UserControlEvent::SetBufferLength {
                stream_id: 1,
                buffer_ms: 3000,
            },
            UserControlEvent::StreamIsRecorded(4),
            UserControlEvent::PingRequest(5),
            UserControlEvent::PingResponse(6),
            UserControlEvent::Other {
                event_type: 0x1F,
                data: Bytes::from_static(&[0, 0, 0, 1]),
            },
        ];
        for event in events {
            let mut buf = BytesMut::new();
            event.encode(&mut buf);
            assert_eq!(UserControlEvent::parse(&buf.freeze()), Ok(event));
        }
        assert!(UserControlEvent::parse(&Bytes::from_static(&[0, 6, 1])).is_err());
    }

    #[test]
    fn pings_are_answered_and_not_returned() {
        let peer = ChunkConnection::new();
        let mut wire = BytesMut::new();
        peer.write_user_control(&UserControlEvent::PingRequest(42), &mut wire);
        peer.write_message(&mut wire, 3, msg_type::COMMAND_AMF0, 0, 0, b"x");
        let mut conn = ChunkConnection::new();
        let mut out = BytesMut::new();
        let m = conn.read_message(&mut wire, &mut out).expect("ok");
        assert_eq!(m.map(|m| m.msg_type), Some(msg_type::COMMAND_AMF0));
        let replies = decode_all(&out);
        assert_eq!(replies.len(), 1);
        assert_eq!(
            UserControlEvent::parse(&replies[0].payload),
            Ok(UserControlEvent::PingResponse(42))
        );
    }

    #[test]
    fn set_chunk_size_from_the_peer_applies_to_the_following_chunks() {
        let mut peer = ChunkConnection::new();
        let mut wire = BytesMut::new();
        peer.set_chunk_size_out(4096, &mut wire);
        let body = vec![7u8; 3000];
        peer.write_message(&mut wire, 6, msg_type::VIDEO, 1, 0, &body);
        let mut conn = ChunkConnection::new();
        let mut out = BytesMut::new();
        let m = conn
            .read_message(&mut wire, &mut out)
            .expect("ok")
            .expect("message");
        assert_eq!(conn.chunk_size_in(), 4096);
        assert_eq!(m.payload.len(), 3000);
    }

    #[test]
    fn acknowledgements_follow_the_peer_window() {
        let mut peer = ChunkConnection::new();
        let mut wire = BytesMut::new();
        peer.set_window_ack_size(1000, &mut wire);
        let mut conn = ChunkConnection::new();
        let mut out = BytesMut::new();
        assert_eq!(conn.read_message(&mut wire, &mut out), Ok(None));
        conn.bytes_received(999, &mut out);
        assert!(out.is_empty(), "no ack before the window is full");
        conn.bytes_received(2, &mut out);
        let acks = decode_all(&out);
        assert_eq!(acks.len(), 1);
        assert_eq!(acks[0].msg_type, msg_type::ACKNOWLEDGEMENT);
        assert_eq!(&acks[0].payload[..], &1001u32.to_be_bytes());
        out.clear();
        conn.bytes_received(500, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn set_peer_bandwidth_is_answered_with_a_window_ack_size() {
        let mut peer = ChunkConnection::new();
        let mut wire = BytesMut::new();
        peer.set_peer_bandwidth(5_000_000, LIMIT_TYPE_DYNAMIC, &mut wire);
        let mut conn = ChunkConnection::new();
        let mut out = BytesMut::new();
        assert_eq!(conn.read_message(&mut wire, &mut out), Ok(None));
        let replies = decode_all(&out);
        assert_eq!(replies[0].msg_type, msg_type::WINDOW_ACK_SIZE);
        assert_eq!(&replies[0].payload[..], &5_000_000u32.to_be_bytes());
    }

    #[test]
    fn a_zero_chunk_size_from_the_peer_is_an_error() {
        let mut wire = BytesMut::new();
        encode_message_fmt0_into(
            &mut wire,
            2,
            msg_type::SET_CHUNK_SIZE,
            0,
            0,
            &[0, 0, 0, 0],
            128,
        );
        let mut conn = ChunkConnection::new();
        let mut out = BytesMut::new();
        assert_eq!(
            conn.read_message(&mut wire, &mut out),
            Err(ChunkError::InvalidChunkSize(0))
        );
    }
}
