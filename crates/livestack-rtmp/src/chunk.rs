//! The RTMP chunk stream: splitting messages into chunks and back.
//!
//! This module owns chunk framing (basic and message headers of formats 0–3,
//! extended timestamps, per-chunk-stream state, chunk sizes, aborts) and the
//! protocol control messages that steer it ([`control`]). It must not
//! interpret command or media payloads; sessions do that.
//!
//! The encoder side is built for fan-out: [`encode_message_fmt0`] turns one
//! message into self-contained bytes (type-0 header, absolute timestamp,
//! type-3 continuations) that can be written unchanged to every player that
//! uses the same chunk size and message stream id, so a media message is
//! chunked once however many players receive it.

pub mod control;

use std::collections::HashMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};

pub use control::{ChunkConnection, UserControlEvent};

/// Message type ids (RTMP specification, sections 5.4 and 7.1).
pub mod msg_type {
    /// Set Chunk Size (protocol control).
    pub const SET_CHUNK_SIZE: u8 = 1;
    /// Abort Message (protocol control).
    pub const ABORT: u8 = 2;
    /// Acknowledgement (protocol control).
    pub const ACKNOWLEDGEMENT: u8 = 3;
    /// User Control Message.
    pub const USER_CONTROL: u8 = 4;
    /// Window Acknowledgement Size (protocol control).
    pub const WINDOW_ACK_SIZE: u8 = 5;
    /// Set Peer Bandwidth (protocol control).
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    /// Audio data (an FLV audio tag body).
    pub const AUDIO: u8 = 8;
    /// Video data (an FLV video tag body).
    pub const VIDEO: u8 = 9;
    /// Data message in AMF3 (a 0x00 byte, then AMF0 in practice).
    pub const DATA_AMF3: u8 = 15;
    /// Shared object in AMF3 (unsupported).
    pub const SHARED_OBJECT_AMF3: u8 = 16;
    /// Command message in AMF3 (a 0x00 byte, then AMF0 in practice).
    pub const COMMAND_AMF3: u8 = 17;
    /// Data message in AMF0 (`@setDataFrame`, `onMetaData`, ...).
    pub const DATA_AMF0: u8 = 18;
    /// Shared object in AMF0 (unsupported).
    pub const SHARED_OBJECT_AMF0: u8 = 19;
    /// Command message in AMF0 (`connect`, `publish`, `onStatus`, ...).
    pub const COMMAND_AMF0: u8 = 20;
    /// Aggregate message (several FLV tags in one message).
    pub const AGGREGATE: u8 = 22;
}

/// Chunk stream id for protocol control messages (fixed by the spec).
pub const CSID_PROTOCOL_CONTROL: u32 = 2;
/// Chunk stream id our encoders use for NetConnection commands.
pub const CSID_COMMAND: u32 = 3;
/// Chunk stream id our encoders use for data messages (`onMetaData`, ...).
pub const CSID_DATA: u32 = 4;
/// Chunk stream id our encoders use for NetStream commands (`onStatus`, ...).
pub const CSID_STREAM_COMMAND: u32 = 5;
/// Chunk stream id our encoders use for video.
pub const CSID_VIDEO: u32 = 6;
/// Chunk stream id our encoders use for audio.
pub const CSID_AUDIO: u32 = 7;

/// Chunk size both peers start with.
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// Largest chunk size the protocol allows (the top bit must be zero).
pub const MAX_CHUNK_SIZE: u32 = 0x7FFF_FFFF;
/// Largest message length a chunk header can express (24 bits).
pub const MAX_MESSAGE_LEN: usize = 0xFF_FFFF;
/// Default cap on the length of one incoming message.
pub const DEFAULT_MAX_MESSAGE_LEN: u32 = 16 * 1024 * 1024;
/// Default cap on bytes held in partially received messages across all
/// chunk streams of one connection.
pub const DEFAULT_MAX_BUFFERED: usize = 32 * 1024 * 1024;

const EXTENDED_TIMESTAMP: u32 = 0xFF_FFFF;
const MIN_CSID: u32 = 2;
const MAX_CSID: u32 = 65_599;

/// A cap on the bytes of partially received messages shared by many
/// decoders (every connection of a server): each connection's own cap
/// bounds one client, this bounds all of them together, so that many
/// clients each declaring large messages cannot add up to the machine's
/// memory. A decoder reserves what it holds and gives it back when the
/// message completes, is aborted, or the decoder is dropped.
#[derive(Debug)]
pub struct SharedBudget {
    limit: usize,
    used: std::sync::atomic::AtomicUsize,
}

impl SharedBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> std::sync::Arc<SharedBudget> {
        std::sync::Arc::new(SharedBudget {
            limit,
            used: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// The bytes held now, over every decoder.
    pub fn used(&self) -> usize {
        self.used.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The cap.
    pub fn limit(&self) -> usize {
        self.limit
    }

    fn reserve(&self, n: usize) -> bool {
        use std::sync::atomic::Ordering;
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    fn release(&self, n: usize) {
        self.used.fetch_sub(n, std::sync::atomic::Ordering::AcqRel);
    }
}

/// One complete RTMP message, reassembled from its chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Chunk stream the message arrived on.
    pub csid: u32,
    /// Message type id (see [`msg_type`]).
    pub msg_type: u8,
    /// Message stream id (0 for the connection, 1.. for NetStreams).
    pub stream_id: u32,
    /// Absolute timestamp in milliseconds, accumulated from deltas with
    /// 32-bit wrap-around.
    pub timestamp: u32,
    /// The message body.
    pub payload: Bytes,
}

/// Why chunk input could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// A chunk with a compressed header (format 2 or 3) on a chunk stream
    /// that has had no full header yet.
    #[error("chunk stream {csid} starts with a format-{fmt} header")]
    NoPreviousHeader {
        /// The chunk stream id.
        csid: u32,
        /// The header format (2 or 3).
        fmt: u8,
    },
    /// A message longer than the configured maximum.
    #[error("message of {len} bytes exceeds the {max}-byte limit")]
    MessageTooLarge {
        /// Declared message length.
        len: u32,
        /// Configured limit.
        max: u32,
    },
    /// Partially received messages hold more bytes than allowed.
    #[error("partially received messages exceed {0} bytes")]
    BufferLimitExceeded(usize),
    /// Partially received messages of every connection together would
    /// hold more than the shared budget.
    #[error("partially received messages of all connections exceed {0} bytes")]
    SharedBufferLimitExceeded(usize),
    /// Set Chunk Size with 0 or with the top bit set.
    #[error("invalid chunk size {0}")]
    InvalidChunkSize(u32),
    /// A protocol control or user control message with a short payload.
    #[error("message type {msg_type} is too short ({len} bytes)")]
    ControlMessageTooShort {
        /// Message type id.
        msg_type: u8,
        /// Payload length received.
        len: usize,
    },
}

/// Per-chunk-stream header state ("the previous header" of the spec).
#[derive(Default)]
struct StreamState {
    /// A header of format 0 or 1 has been seen on this chunk stream.
    seen_header: bool,
    /// Timestamp of the current (or last) message.
    timestamp: u32,
    /// Timestamp field of the last header: a delta, or the absolute time for
    /// format 0. A format-3 header that starts a new message adds it again.
    delta: u32,
    /// Whether the last header carried an extended timestamp; format-3
    /// chunks then carry one too.
    extended: bool,
    length: u32,
    msg_type: u8,
    stream_id: u32,
    /// Body received so far of a message spread over several chunks.
    payload: BytesMut,
    /// A message has started and not yet completed.
    in_progress: bool,
}

/// Where we are inside a chunk whose header has been read.
#[derive(Clone, Copy)]
struct CurrentChunk {
    csid: u32,
    /// Payload bytes of this chunk still to read.
    remaining: u32,
}

/// Reassembles messages from a chunk stream.
///
/// Feed bytes into a `BytesMut` and call [`decode`](Self::decode) until it
/// returns `Ok(None)`. Partial chunks are consumed as they arrive; a message
/// that fits in one chunk whose bytes are all present is returned as a
/// zero-copy slice of the input buffer.
pub struct ChunkDecoder {
    chunk_size: u32,
    max_message_len: u32,
    max_buffered: usize,
    /// Bytes held in partial messages; also what is reserved from
    /// `shared`, when there is one.
    buffered: usize,
    shared: Option<std::sync::Arc<SharedBudget>>,
    /// Chunk streams 0..64 (the one-byte basic header range) by index.
    low: Vec<StreamState>,
    high: HashMap<u32, StreamState>,
    current: Option<CurrentChunk>,
}

impl Drop for ChunkDecoder {
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            shared.release(self.buffered);
        }
    }
}

impl Default for ChunkDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkDecoder {
    /// A decoder with the default chunk size (128) and limits.
    pub fn new() -> Self {
        ChunkDecoder {
            chunk_size: DEFAULT_CHUNK_SIZE,
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
            max_buffered: DEFAULT_MAX_BUFFERED,
            buffered: 0,
            shared: None,
            low: Vec::new(),
            high: HashMap::new(),
            current: None,
        }
    }

    /// Sets the largest message accepted (at most 16 MiB is meaningful).
    pub fn set_max_message_len(&mut self, max: u32) {
        self.max_message_len = max;
    }

    /// Sets the cap on bytes held in partially received messages.
    pub fn set_max_buffered(&mut self, max: usize) {
        self.max_buffered = max;
    }

    /// Draws the bytes of partial messages from `budget` too (see
    /// [`SharedBudget`]). Set it before the first [`decode`](Self::decode).
    pub fn set_shared_budget(&mut self, budget: std::sync::Arc<SharedBudget>) {
        if let Some(old) = self.shared.take() {
            old.release(self.buffered);
        }
        if budget.reserve(self.buffered) || self.buffered == 0 {
            self.shared = Some(budget);
        }
    }

    /// Gives back `n` held bytes.
    fn free(&mut self, n: usize) {
        self.buffered -= n;
        if let Some(shared) = &self.shared {
            shared.release(n);
        }
    }

    /// The chunk size the peer writes with.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Applies a Set Chunk Size from the peer; it takes effect for the next
    /// chunk header read.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        if size == 0 || size > MAX_CHUNK_SIZE {
            return Err(ChunkError::InvalidChunkSize(size));
        }
        self.chunk_size = size;
        Ok(())
    }

    /// Applies an Abort Message: drops the partial message on `csid`. Call
    /// it between messages (as [`ChunkConnection`] does), not mid-chunk.
    pub fn abort(&mut self, csid: u32) {
        if let Some(state) = self.state_mut(csid) {
            if state.in_progress {
                let dropped = state.payload.len();
                state.payload = BytesMut::new();
                state.in_progress = false;
                self.free(dropped);
            }
        }
    }

    fn state_mut(&mut self, csid: u32) -> Option<&mut StreamState> {
        if csid < 64 {
            self.low.get_mut(csid as usize)
        } else {
            self.high.get_mut(&csid)
        }
    }

    fn state_entry(&mut self, csid: u32) -> &mut StreamState {
        state_entry(&mut self.low, &mut self.high, csid)
    }

    /// Decodes the next complete message from the front of `buf`, consuming
    /// the bytes it used. Returns `Ok(None)` when `buf` holds no complete
    /// message yet (what was read so far is kept in the decoder).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, ChunkError> {
        loop {
            let mut current = match self.current {
                Some(current) => current,
                None => match self.read_header(buf)? {
                    HeaderOutcome::NeedMore => return Ok(None),
                    HeaderOutcome::Empty(message) => return Ok(Some(message)),
                    HeaderOutcome::Chunk(current) => current,
                },
            };
            let available = buf.len().min(current.remaining as usize);
            if available == 0 {
                self.current = Some(current);
                return Ok(None);
            }
            let max_buffered = self.max_buffered;
            let csid = current.csid;
            let state = state_entry(&mut self.low, &mut self.high, csid);
            if state.payload.is_empty() && available == state.length as usize {
                // The whole message is one chunk and it is all here.
                let payload = buf.split_to(available).freeze();
                state.in_progress = false;
                self.current = None;
                return Ok(Some(Message {
                    csid,
                    msg_type: state.msg_type,
                    stream_id: state.stream_id,
                    timestamp: state.timestamp,
                    payload,
                }));
            }
            if self.buffered + available > max_buffered {
                return Err(ChunkError::BufferLimitExceeded(max_buffered));
            }
            if let Some(shared) = &self.shared {
                if !shared.reserve(available) {
                    return Err(ChunkError::SharedBufferLimitExceeded(shared.limit()));
                }
            }
            // Grow at most to what has actually arrived (doubling), never
            // to the declared length, so a lying header costs nothing.
            let want = state.length as usize - state.payload.len();
            if state.payload.capacity() - state.payload.len() < available {
                let grow = want.min(available.max(state.payload.len()));
                state.payload.reserve(grow);
            }
            state.payload.extend_from_slice(&buf[..available]);
            buf.advance(available);
            current.remaining -= available as u32;
            let complete = state.payload.len() == state.length as usize;
            let message = if complete {
                state.in_progress = false;
                Some(Message {
                    csid,
                    msg_type: state.msg_type,
                    stream_id: state.stream_id,
                    timestamp: state.timestamp,
                    payload: state.payload.split().freeze(),
                })
            } else {
                None
            };
            if let Some(message) = &message {
                // `available` was reserved from the shared budget above
                // but never counted here: give back the whole message.
                self.buffered -= message.payload.len() - available;
                if let Some(shared) = &self.shared {
                    shared.release(message.payload.len());
                }
            } else {
                self.buffered += available;
            }
            if current.remaining > 0 {
                self.current = Some(current);
                return Ok(None);
            }
            self.current = None;
            if message.is_some() {
                return Ok(message);
            }
        }
    }

    /// Reads one chunk header if all of it is in `buf`.
    fn read_header(&mut self, buf: &mut BytesMut) -> Result<HeaderOutcome, ChunkError> {
        let bytes = &buf[..];
        let Some(&first) = bytes.first() else {
            return Ok(HeaderOutcome::NeedMore);
        };
        let fmt = first >> 6;
        let (csid, mut at) = match first & 0x3F {
            0 => match bytes.get(1) {
                Some(&b) => (64 + u32::from(b), 2),
                None => return Ok(HeaderOutcome::NeedMore),
            },
            1 => match (bytes.get(1), bytes.get(2)) {
                (Some(&lo), Some(&hi)) => (64 + u32::from(lo) + 256 * u32::from(hi), 3),
                _ => return Ok(HeaderOutcome::NeedMore),
            },
            n => (u32::from(n), 1),
        };
        let header_len = [11, 7, 3, 0][usize::from(fmt)];
        if bytes.len() < at + header_len {
            return Ok(HeaderOutcome::NeedMore);
        }
        let h = &bytes[at..at + header_len];
        at += header_len;
        let u24 = |b: &[u8]| u32::from_be_bytes([0, b[0], b[1], b[2]]);

        let max_message_len = self.max_message_len;
        let chunk_size = self.chunk_size;
        let fresh = self.state_mut(csid).is_none_or(|state| !state.seen_header);
        // SRS accepts a format-1 start because librtmp sends one for pings;
        // formats 2 and 3 need a previous header.
        if fresh && fmt >= 2 {
            return Err(ChunkError::NoPreviousHeader { csid, fmt });
        }
        let state = self.state_entry(csid);

        // The timestamp field, and whether an extended timestamp follows.
        let (field, extended) = match fmt {
            0..=2 => {
                let field = u24(&h[0..3]);
                (field, field == EXTENDED_TIMESTAMP)
            }
            _ => (state.delta, state.extended),
        };
        let mut extended_value = None;
        if extended {
            let Some(ext) = bytes.get(at..at + 4) else {
                return Ok(HeaderOutcome::NeedMore);
            };
            let value = u32::from_be_bytes([ext[0], ext[1], ext[2], ext[3]]);
            if fmt == 3 && state.in_progress && value != state.delta {
                // A continuation chunk from a peer that does not repeat the
                // extended timestamp (SRS tolerates this the same way):
                // these four bytes are payload.
            } else {
                extended_value = Some(value);
                at += 4;
            }
        }
        let field = extended_value.unwrap_or(field);

        let mut discarded = 0;
        if fmt == 3 && state.in_progress {
            // Continuation of the message in progress.
        } else {
            if !state.payload.is_empty() {
                // A new header interrupts a partial message; drop it as an
                // implicit abort rather than failing the connection.
                discarded = state.payload.len();
                state.payload = BytesMut::new();
            }
            match fmt {
                0 => {
                    state.timestamp = field;
                    state.length = u24(&h[3..6]);
                    state.msg_type = h[6];
                    state.stream_id = u32::from_le_bytes([h[7], h[8], h[9], h[10]]);
                }
                1 => {
                    state.timestamp = state.timestamp.wrapping_add(field);
                    state.length = u24(&h[3..6]);
                    state.msg_type = h[6];
                }
                _ => state.timestamp = state.timestamp.wrapping_add(field),
            }
            state.delta = field;
            if fmt != 3 {
                state.extended = extended;
            }
            state.seen_header = true;
            if state.length > max_message_len {
                return Err(ChunkError::MessageTooLarge {
                    len: state.length,
                    max: max_message_len,
                });
            }
            state.in_progress = true;
        }
        let remaining = (state.length - state.payload.len() as u32).min(chunk_size);
        buf.advance(at);
        self.free(discarded);

        let state = self.state_entry(csid);
        if state.length == 0 {
            state.in_progress = false;
            return Ok(HeaderOutcome::Empty(Message {
                csid,
                msg_type: state.msg_type,
                stream_id: state.stream_id,
                timestamp: state.timestamp,
                payload: Bytes::new(),
            }));
        }
        let current = CurrentChunk { csid, remaining };
        self.current = Some(current);
        Ok(HeaderOutcome::Chunk(current))
    }
}

/// The state of `csid`, created on first use. A free function so callers
/// can borrow other decoder fields at the same time.
fn state_entry<'a>(
    low: &'a mut Vec<StreamState>,
    high: &'a mut HashMap<u32, StreamState>,
    csid: u32,
) -> &'a mut StreamState {
    if csid < 64 {
        let index = csid as usize;
        if low.len() <= index {
            low.resize_with(index + 1, StreamState::default);
        }
        &mut low[index]
    } else {
        high.entry(csid).or_default()
    }
}

enum HeaderOutcome {
    NeedMore,
    /// A zero-length message, complete with its header.
    Empty(Message),
    Chunk(CurrentChunk),
}

fn put_basic_header(out: &mut impl BufMut, fmt: u8, csid: u32) {
    match csid {
        0..=63 => out.put_u8(fmt << 6 | csid as u8),
        64..=319 => {
            out.put_u8(fmt << 6);
            out.put_u8((csid - 64) as u8);
        }
        _ => {
            let rest = csid - 64;
            out.put_u8(fmt << 6 | 1);
            out.put_u8((rest & 0xFF) as u8);
            out.put_u8((rest >> 8) as u8);
        }
    }
}

/// Encodes one message with a type-0 header and an absolute timestamp,
/// followed by type-3 continuation chunks, into self-contained bytes.
///
/// The result does not depend on any earlier message, so the same `Bytes`
/// can be written to every connection that reads with `chunk_size` (the
/// value we announced with Set Chunk Size) and knows `stream_id`.
///
/// `csid` is clamped to 2..=65599, `chunk_size` to 1..=2^31-1, and a payload
/// longer than [`MAX_MESSAGE_LEN`] (which RTMP cannot express) is cut to
/// that length. Timestamps of 2^24-1 and above use the extended field,
/// repeated on every continuation chunk as the specification and ffmpeg do.
pub fn encode_message_fmt0(
    csid: u32,
    msg_type: u8,
    stream_id: u32,
    timestamp: u32,
    payload: &[u8],
    chunk_size: u32,
) -> Bytes {
    let mut out = BytesMut::new();
    encode_message_fmt0_into(
        &mut out, csid, msg_type, stream_id, timestamp, payload, chunk_size,
    );
    out.freeze()
}

/// Size of [`encode_message_fmt0`]'s output.
pub fn encoded_len(csid: u32, timestamp: u32, payload_len: usize, chunk_size: u32) -> usize {
    ChunkHeaders::new(csid, 0, 0, timestamp, payload_len, chunk_size).encoded_len()
}

/// Like [`encode_message_fmt0`], appending to `out`.
pub fn encode_message_fmt0_into(
    out: &mut BytesMut,
    csid: u32,
    msg_type: u8,
    stream_id: u32,
    timestamp: u32,
    payload: &[u8],
    chunk_size: u32,
) {
    let headers = ChunkHeaders::new(
        csid,
        msg_type,
        stream_id,
        timestamp,
        payload.len(),
        chunk_size,
    );
    out.reserve(headers.encoded_len());
    for part in headers.parts(payload) {
        out.put_slice(part);
    }
}

/// The chunk headers [`encode_message_fmt0`] puts around a payload, kept
/// apart from it: a sender that already holds the payload (inside an FLV
/// tag, say) writes the message as [`parts`](Self::parts), slices of the
/// headers and of the payload, instead of keeping a second, chunked copy.
///
/// Every continuation chunk of a type-0 message has the same header, so
/// two headers describe any length; nothing is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHeaders {
    first: [u8; 18],
    first_len: u8,
    next: [u8; 7],
    next_len: u8,
    chunk_size: u32,
    payload_len: u32,
}

impl ChunkHeaders {
    /// The headers of a `payload_len`-byte message; the same clamping as
    /// [`encode_message_fmt0`].
    pub fn new(
        csid: u32,
        msg_type: u8,
        stream_id: u32,
        timestamp: u32,
        payload_len: usize,
        chunk_size: u32,
    ) -> ChunkHeaders {
        let csid = csid.clamp(MIN_CSID, MAX_CSID);
        let payload_len = payload_len.min(MAX_MESSAGE_LEN);
        let extended = timestamp >= EXTENDED_TIMESTAMP;
        // Written straight into the arrays (`&mut [u8]` is a `BufMut`
        // that shrinks as it is written): one per frame, no allocation.
        let mut first = [0u8; 18];
        let mut next = [0u8; 7];
        let (first_len, next_len) = {
            let (mut f, mut n) = (&mut first[..], &mut next[..]);
            put_basic_header(&mut f, 0, csid);
            let field = if extended {
                EXTENDED_TIMESTAMP
            } else {
                timestamp
            };
            f.put_slice(&field.to_be_bytes()[1..]);
            f.put_slice(&(payload_len as u32).to_be_bytes()[1..]);
            f.put_u8(msg_type);
            f.put_u32_le(stream_id);
            put_basic_header(&mut n, 3, csid);
            if extended {
                f.put_u32(timestamp);
                n.put_u32(timestamp);
            }
            (18 - f.len(), 7 - n.len())
        };
        ChunkHeaders {
            first,
            first_len: first_len as u8,
            next,
            next_len: next_len as u8,
            chunk_size: chunk_size.clamp(1, MAX_CHUNK_SIZE),
            payload_len: payload_len as u32,
        }
    }

    /// The message's bytes in order: the headers interleaved with the
    /// chunks of `payload` (the payload these headers were made for).
    /// Joined, they equal [`encode_message_fmt0`]'s output.
    pub fn parts<'a>(&'a self, payload: &'a [u8]) -> ChunkParts<'a> {
        ChunkParts {
            headers: self,
            payload: &payload[..payload.len().min(self.payload_len as usize)],
            at: 0,
            state: PartsState::First,
        }
    }

    /// The length of the message with its headers.
    pub fn encoded_len(&self) -> usize {
        let len = self.payload_len as usize;
        let chunks = len.div_ceil(self.chunk_size as usize).max(1);
        usize::from(self.first_len) + (chunks - 1) * usize::from(self.next_len) + len
    }
}

/// What [`ChunkHeaders::parts`] yields next.
#[derive(Debug, Clone, Copy)]
enum PartsState {
    First,
    Chunk,
    Header,
}

/// The slices of one chunked message; see [`ChunkHeaders::parts`].
#[derive(Debug, Clone)]
pub struct ChunkParts<'a> {
    headers: &'a ChunkHeaders,
    payload: &'a [u8],
    at: usize,
    state: PartsState,
}

impl<'a> Iterator for ChunkParts<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let headers: &'a ChunkHeaders = self.headers;
        match self.state {
            PartsState::First => {
                self.state = PartsState::Chunk;
                Some(&headers.first[..usize::from(headers.first_len)])
            }
            _ if self.at >= self.payload.len() => None,
            PartsState::Header => {
                self.state = PartsState::Chunk;
                Some(&headers.next[..usize::from(headers.next_len)])
            }
            PartsState::Chunk => {
                let end = (self.at + headers.chunk_size as usize).min(self.payload.len());
                let chunk = &self.payload[self.at..end];
                self.at = end;
                self.state = PartsState::Header;
                Some(chunk)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_kept_apart_and_joined_with_the_payload_decode_to_the_message() {
        let payload: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        for csid in [4, 6, 70, 400] {
            for timestamp in [0, 40, EXTENDED_TIMESTAMP - 1, EXTENDED_TIMESTAMP, u32::MAX] {
                for len in [0, 1, 127, 128, 129, 256, 1000] {
                    for chunk_size in [1, 128, 256, 60_000] {
                        let body = &payload[..len];
                        let headers = ChunkHeaders::new(csid, 9, 1, timestamp, len, chunk_size);
                        let joined: Vec<u8> = headers.parts(body).flatten().copied().collect();
                        // Checked against the decoder, written apart from
                        // the encoder (which is built on these parts).
                        assert_eq!(
                            decode_stepwise(&joined, chunk_size, joined.len().max(1)),
                            vec![msg(csid, 9, 1, timestamp, body)],
                            "csid {csid}, ts {timestamp}, len {len}, chunk {chunk_size}"
                        );
                        assert_eq!(headers.encoded_len(), joined.len());
                    }
                }
            }
        }
    }

    fn msg(csid: u32, msg_type: u8, stream_id: u32, timestamp: u32, payload: &[u8]) -> Message {
        Message {
            csid,
            msg_type,
            stream_id,
            timestamp,
            payload: Bytes::copy_from_slice(payload),
        }
    }

    /// Decodes `wire` fed `step` bytes at a time with `chunk_size`.
    fn decode_stepwise(wire: &[u8], chunk_size: u32, step: usize) -> Vec<Message> {
        let mut decoder = ChunkDecoder::new();
        decoder.set_chunk_size(chunk_size).expect("valid size");
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in wire.chunks(step) {
            buf.extend_from_slice(piece);
            while let Some(m) = decoder.decode(&mut buf).expect("valid input") {
                out.push(m);
            }
        }
        assert!(buf.is_empty(), "no bytes left over");
        out
    }

    fn check_round_trip(messages: &[Message], chunk_size: u32) {
        let mut wire = BytesMut::new();
        for m in messages {
            encode_message_fmt0_into(
                &mut wire,
                m.csid,
                m.msg_type,
                m.stream_id,
                m.timestamp,
                &m.payload,
                chunk_size,
            );
        }
        for step in [1, 3, 128, 4096, wire.len().max(1)] {
            assert_eq!(
                decode_stepwise(&wire, chunk_size, step),
                messages,
                "chunk size {chunk_size}, step {step}"
            );
        }
    }

    fn payload(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn messages_round_trip_across_chunk_sizes() {
        let messages = vec![
            msg(6, msg_type::VIDEO, 1, 0, &payload(10_000, 1)),
            msg(7, msg_type::AUDIO, 1, 23, &payload(300, 2)),
            msg(4, msg_type::DATA_AMF0, 1, 0, &[]),
            msg(3, msg_type::COMMAND_AMF0, 0, 0, &payload(128, 3)),
            msg(320, msg_type::VIDEO, 1, 40, &payload(129, 4)),
            msg(64, msg_type::VIDEO, 1, 80, &payload(1, 5)),
            msg(65_599, msg_type::AUDIO, 2, 99, &payload(257, 6)),
        ];
        for chunk_size in [1, 2, 128, 129, 4096, 60_000, MAX_CHUNK_SIZE] {
            check_round_trip(&messages, chunk_size);
        }
    }

    #[test]
    fn extended_timestamps_round_trip_including_on_continuations() {
        let messages = vec![
            msg(6, msg_type::VIDEO, 1, 0xFF_FFFF, &payload(1000, 1)),
            msg(6, msg_type::VIDEO, 1, 0xFFFF_FFFF, &payload(1000, 2)),
            msg(7, msg_type::AUDIO, 1, 0x0100_0000, &payload(10, 3)),
        ];
        check_round_trip(&messages, 128);
        let bytes = encode_message_fmt0(6, 9, 1, 0x1234_5678, &payload(300, 0), 128);
        // fmt0 header (1 + 11 + 4) + 2 continuations (1 + 4) + payload.
        assert_eq!(bytes.len(), 16 + 2 * 5 + 300);
        assert_eq!(&bytes[1..4], &[0xFF, 0xFF, 0xFF]);
        assert_eq!(&bytes[12..16], &0x1234_5678u32.to_be_bytes());
        assert_eq!(bytes[16 + 128], 0xC6, "continuation is fmt 3 on csid 6");
        assert_eq!(&bytes[17 + 128..21 + 128], &0x1234_5678u32.to_be_bytes());
        assert_eq!(bytes.len(), encoded_len(6, 0x1234_5678, 300, 128));
    }

    /// Hand-written chunk stream with compressed headers, as ffmpeg writes.
    #[test]
    fn compressed_headers_accumulate_timestamp_deltas() {
        let mut wire = Vec::new();
        // fmt0 csid 4, ts 1000, len 3, audio, stream 1
        wire.extend_from_slice(&[0x04, 0x00, 0x03, 0xE8, 0, 0, 3, 8, 1, 0, 0, 0, 1, 2, 3]);
        // fmt1 csid 4, delta 20, len 2, audio
        wire.extend_from_slice(&[0x44, 0, 0, 20, 0, 0, 2, 8, 4, 5]);
        // fmt2 csid 4, delta 21
        wire.extend_from_slice(&[0x84, 0, 0, 21, 6, 7]);
        // fmt3 csid 4: new message, same delta (21)
        wire.extend_from_slice(&[0xC4, 8, 9]);
        let got = decode_stepwise(&wire, 128, 1);
        let stamps: Vec<u32> = got.iter().map(|m| m.timestamp).collect();
        assert_eq!(stamps, vec![1000, 1020, 1041, 1062]);
        assert_eq!(&got[3].payload[..], &[8, 9]);
        assert!(got.iter().all(|m| m.stream_id == 1 && m.msg_type == 8));
    }

    #[test]
    fn timestamps_wrap_around_at_32_bits() {
        let mut wire = Vec::new();
        // fmt0 with extended timestamp 0xFFFF_FFF0
        wire.extend_from_slice(&[0x04, 0xFF, 0xFF, 0xFF, 0, 0, 1, 8, 1, 0, 0, 0]);
        wire.extend_from_slice(&0xFFFF_FFF0u32.to_be_bytes());
        wire.push(0xAA);
        // fmt2 delta 0x20
        wire.extend_from_slice(&[0x84, 0, 0, 0x20, 0xBB]);
        let got = decode_stepwise(&wire, 128, 2);
        assert_eq!(got[0].timestamp, 0xFFFF_FFF0);
        assert_eq!(got[1].timestamp, 0x10);
    }

    #[test]
    fn interleaved_chunk_streams_reassemble_independently() {
        let video = payload(300, 1);
        let audio = payload(200, 2);
        let mut wire = Vec::new();
        wire.extend_from_slice(&[0x06, 0, 0, 40, 0, 0x01, 0x2C, 9, 1, 0, 0, 0]);
        wire.extend_from_slice(&video[..128]);
        wire.extend_from_slice(&[0x07, 0, 0, 41, 0, 0, 200, 8, 1, 0, 0, 0]);
        wire.extend_from_slice(&audio[..128]);
        wire.push(0xC6);
        wire.extend_from_slice(&video[128..256]);
        wire.push(0xC7);
        wire.extend_from_slice(&audio[128..]);
        wire.push(0xC6);
        wire.extend_from_slice(&video[256..]);
        let got = decode_stepwise(&wire, 128, 5);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].csid, got[0].timestamp), (7, 41));
        assert_eq!(&got[0].payload[..], &audio[..]);
        assert_eq!((got[1].csid, got[1].timestamp), (6, 40));
        assert_eq!(&got[1].payload[..], &video[..]);
    }

    #[test]
    fn continuations_without_a_repeated_extended_timestamp_are_tolerated() {
        let body = payload(200, 9);
        let mut wire = Vec::new();
        wire.extend_from_slice(&[0x06, 0xFF, 0xFF, 0xFF, 0, 0, 200, 9, 1, 0, 0, 0]);
        wire.extend_from_slice(&0x0200_0000u32.to_be_bytes());
        wire.extend_from_slice(&body[..128]);
        wire.push(0xC6);
        wire.extend_from_slice(&body[128..]);
        let got = decode_stepwise(&wire, 128, 200);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].timestamp, 0x0200_0000);
        assert_eq!(&got[0].payload[..], &body[..]);
    }

    #[test]
    fn a_single_chunk_message_is_a_zero_copy_slice_of_the_input() {
        let wire = encode_message_fmt0(6, 9, 1, 5, &payload(1000, 0), 4096);
        let mut buf = BytesMut::from(&wire[..]);
        let start = buf.as_ptr() as usize;
        let mut decoder = ChunkDecoder::new();
        decoder.set_chunk_size(4096).expect("valid");
        let m = decoder.decode(&mut buf).expect("ok").expect("message");
        assert_eq!(m.payload.as_ptr() as usize, start + 12);
    }

    #[test]
    fn abort_drops_the_partial_message() {
        let body = payload(200, 1);
        let mut wire = Vec::new();
        wire.extend_from_slice(&[0x06, 0, 0, 0, 0, 0, 200, 9, 1, 0, 0, 0]);
        wire.extend_from_slice(&body[..128]);
        let mut decoder = ChunkDecoder::new();
        let mut buf = BytesMut::from(&wire[..]);
        assert_eq!(decoder.decode(&mut buf), Ok(None));
        decoder.abort(6);
        assert_eq!(decoder.buffered, 0);
        let mut buf = BytesMut::from(&encode_message_fmt0(6, 9, 1, 7, &[1, 2], 128)[..]);
        let m = decoder.decode(&mut buf).expect("ok").expect("message");
        assert_eq!(&m.payload[..], &[1, 2]);
    }

    #[test]
    fn oversized_and_headerless_input_is_rejected() {
        let mut decoder = ChunkDecoder::new();
        decoder.set_max_message_len(1000);
        let mut buf = BytesMut::from(&[0x06u8, 0, 0, 0, 0, 0x10, 0, 9, 1, 0, 0, 0][..]);
        assert_eq!(
            decoder.decode(&mut buf),
            Err(ChunkError::MessageTooLarge {
                len: 4096,
                max: 1000
            })
        );
        let mut decoder = ChunkDecoder::new();
        let mut buf = BytesMut::from(&[0xC6u8, 1, 2][..]);
        assert_eq!(
            decoder.decode(&mut buf),
            Err(ChunkError::NoPreviousHeader { csid: 6, fmt: 3 })
        );
        assert!(decoder.set_chunk_size(0).is_err());
        assert!(decoder.set_chunk_size(0x8000_0000).is_err());
        assert!(decoder.set_chunk_size(MAX_CHUNK_SIZE).is_ok());
    }

    #[test]
    fn partial_messages_beyond_the_buffer_cap_are_an_error() {
        let mut decoder = ChunkDecoder::new();
        decoder.set_max_buffered(300);
        let mut wire = BytesMut::new();
        for csid in 10..14 {
            wire.extend_from_slice(&[csid as u8, 0, 0, 0, 0, 0x10, 0, 9, 1, 0, 0, 0]);
            wire.extend_from_slice(&payload(128, 0));
        }
        let result = loop {
            match decoder.decode(&mut wire) {
                Ok(Some(_)) => continue,
                other => break other,
            }
        };
        assert_eq!(result, Err(ChunkError::BufferLimitExceeded(300)));
    }

    #[test]
    fn decoders_sharing_a_budget_hold_no_more_than_it_together_and_give_it_back() {
        // A 4096-byte message on chunk stream 10, first chunk only (128 B).
        let partial = || {
            let mut wire = BytesMut::new();
            wire.extend_from_slice(&[10, 0, 0, 0, 0, 0x10, 0, 9, 1, 0, 0, 0]);
            wire.extend_from_slice(&payload(128, 0));
            wire
        };
        let budget = SharedBudget::new(300);
        let mut a = ChunkDecoder::new();
        let mut b = ChunkDecoder::new();
        let mut c = ChunkDecoder::new();
        for d in [&mut a, &mut b, &mut c] {
            d.set_shared_budget(std::sync::Arc::clone(&budget));
        }
        assert_eq!(a.decode(&mut partial()), Ok(None));
        assert_eq!(b.decode(&mut partial()), Ok(None));
        assert_eq!(budget.used(), 256);
        // Each alone is within its own cap; together they are not.
        assert_eq!(
            c.decode(&mut partial()),
            Err(ChunkError::SharedBufferLimitExceeded(300))
        );
        assert_eq!(budget.used(), 256);
        a.abort(10);
        assert_eq!(budget.used(), 128);
        drop(b);
        assert_eq!(budget.used(), 0);
        // A message that completes gives back all it held.
        let mut d = ChunkDecoder::new();
        d.set_shared_budget(std::sync::Arc::clone(&budget));
        let mut wire = BytesMut::new();
        wire.extend_from_slice(&[10, 0, 0, 0, 0, 0, 200, 9, 1, 0, 0, 0]);
        wire.extend_from_slice(&payload(128, 0));
        wire.extend_from_slice(&[0xCA]);
        wire.extend_from_slice(&payload(72, 128));
        assert!(matches!(d.decode(&mut wire), Ok(Some(m)) if m.payload.len() == 200));
        assert_eq!(budget.used(), 0);
    }
}
