//! The hub of one live stream: the publisher's frames in, every player's
//! bytes out.
//!
//! Owns: the stream's sequence headers, metadata and GOP cache (so a new
//! player starts on a keyframe at once), and the fan-out channel. Each
//! frame is encoded once when it arrives, as an FLV tag and the chunk
//! headers that make its body an RTMP message; players share those bytes
//! (reference-counted, never copied per player). Must not: touch sockets or sleep: connection tasks do the
//! I/O, and the lock here is held only for in-memory updates.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use livestack_formats::flv::{self, TagKind};
use livestack_rtmp::chunk::{ChunkHeaders, ChunkParts};
use tokio::sync::{broadcast, Notify};

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// Audio (FLV tag type 8).
    Audio,
    /// Video (FLV tag type 9).
    Video,
    /// Script data: `onMetaData` (FLV tag type 18).
    Script,
}

impl From<TagKind> for FrameKind {
    fn from(kind: TagKind) -> FrameKind {
        match kind {
            TagKind::Audio => FrameKind::Audio,
            TagKind::Video => FrameKind::Video,
            TagKind::Script => FrameKind::Script,
        }
    }
}

impl From<FrameKind> for TagKind {
    fn from(kind: FrameKind) -> TagKind {
        match kind {
            FrameKind::Audio => TagKind::Audio,
            FrameKind::Video => TagKind::Video,
            FrameKind::Script => TagKind::Script,
        }
    }
}

/// One media message of the stream, pre-encoded for every output.
///
/// One copy of the payload serves every encoding: it is the body of the
/// FLV tag, and the RTMP message is that body between chunk headers kept
/// beside it. A cached GOP so costs about its media, not three times it.
#[derive(Debug)]
pub struct Frame {
    /// Audio, video or script.
    pub kind: FrameKind,
    /// Milliseconds, as the publisher stamped it.
    pub timestamp: u32,
    /// A video keyframe.
    pub keyframe: bool,
    /// An AVC/HEVC/AAC sequence header (decoder configuration).
    pub sequence_header: bool,
    /// The FLV tag body / RTMP message payload (a slice of `flv`).
    pub payload: Bytes,
    /// The chunk headers that make `payload` an RTMP message (type-0
    /// header, absolute timestamp, message stream 1).
    pub rtmp: ChunkHeaders,
    /// The whole message as an FLV tag (header, body, previous tag size).
    pub flv: Bytes,
}

/// Which encoding of the frames a player is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// RTMP chunks, in the chunk size the server announced.
    Rtmp,
    /// FLV tags.
    Flv,
}

impl Frame {
    /// Encodes one message for every output: the FLV tag (one copy of
    /// `payload`) and the RTMP chunk headers for `chunk_size`.
    pub fn new(
        kind: FrameKind,
        timestamp: u32,
        keyframe: bool,
        sequence_header: bool,
        payload: Bytes,
        chunk_size: u32,
    ) -> Frame {
        let (msg_type, csid) = match kind {
            FrameKind::Audio => (8, 4),
            FrameKind::Video => (9, 6),
            FrameKind::Script => (18, 5),
        };
        let rtmp = ChunkHeaders::new(csid, msg_type, 1, timestamp, payload.len(), chunk_size);
        // The payload kept is the copy inside the FLV tag, not the one
        // that came in: that one is usually a slice of the connection's
        // read buffer, and a cached frame holding it would pin the whole
        // buffer (every byte read with it) for as long as the GOP lives.
        let (payload, flv) = match flv::encode_tag(kind.into(), timestamp, &payload) {
            Ok(flv) => (
                flv.slice(flv::TAG_HEADER_LEN..flv.len() - flv::TAG_TRAILER_LEN),
                flv,
            ),
            // Longer than any FLV tag (16 MB): RTMP players still get it.
            Err(_) => (payload, Bytes::new()),
        };
        Frame {
            kind,
            timestamp,
            keyframe,
            sequence_header,
            payload,
            rtmp,
            flv,
        }
    }

    /// The frame's bytes as `wire` sends them, as slices to write in
    /// order (borrowed: nothing is copied per player).
    pub fn slices(&self, wire: Wire) -> FrameSlices<'_> {
        match wire {
            Wire::Flv => FrameSlices::Flv(Some(&self.flv[..]).filter(|b| !b.is_empty())),
            Wire::Rtmp => FrameSlices::Rtmp(self.rtmp.parts(&self.payload)),
        }
    }

    /// How many bytes [`Frame::slices`] yields.
    pub fn wire_len(&self, wire: Wire) -> usize {
        match wire {
            Wire::Flv => self.flv.len(),
            Wire::Rtmp => self.rtmp.encoded_len(),
        }
    }
}

/// The slices of one frame on one wire; see [`Frame::slices`].
#[derive(Debug, Clone)]
pub enum FrameSlices<'a> {
    /// The FLV tag, whole.
    Flv(Option<&'a [u8]>),
    /// Chunk headers around pieces of the payload.
    Rtmp(ChunkParts<'a>),
}

impl<'a> Iterator for FrameSlices<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match self {
            FrameSlices::Flv(tag) => tag.take(),
            FrameSlices::Rtmp(parts) => parts.next(),
        }
    }
}

/// How many frames a player may fall behind before it is dropped as too
/// slow (about a minute of a 25 fps stream with audio).
pub const CHANNEL_FRAMES: usize = 4096;

#[derive(Default)]
struct State {
    metadata: Option<Arc<Frame>>,
    video_header: Option<Arc<Frame>>,
    audio_header: Option<Arc<Frame>>,
    /// Frames since the last video keyframe (audio-only: since the last
    /// audio header, bounded).
    gop: Vec<Arc<Frame>>,
    has_video: bool,
    /// The latest timestamp sent (a publisher taking over continues
    /// after it).
    last_timestamp: u32,
}

/// What a player gets when it attaches: everything needed to start
/// decoding, then the live frames.
pub struct Subscription {
    /// Metadata, sequence headers and the current GOP, in order.
    pub start: Vec<Arc<Frame>>,
    /// Live frames after `start`.
    pub live: broadcast::Receiver<Arc<Frame>>,
    /// The hub's merge-window tick (see [`Ticker`]).
    pub ticker: Arc<Ticker>,
    /// Set for an in-process reader that is not a player; dropped after
    /// `live` (fields drop in order), so the count never runs ahead.
    _internal: Option<InternalReader>,
}

/// Wakes every player of a hub together, once per merge window: the
/// publisher's frames drive it ([`Hub::push`] ticks when a window has
/// passed since the last tick), so 2000 players cost no timers and one
/// wake-up each per window, instead of a timer and a wake-up per frame
/// each. It is closed when the hub goes (the stream is over).
pub struct Ticker {
    notify: Notify,
    /// The window in milliseconds, set by the first player that asks
    /// (every player of the server asks for the same one); 0 ticks on
    /// every frame.
    every_ms: AtomicU64,
    /// When it last ticked, in milliseconds since `epoch`.
    last_ms: AtomicU64,
    epoch: Instant,
    closed: AtomicBool,
}

impl Ticker {
    fn new() -> Ticker {
        Ticker {
            notify: Notify::new(),
            every_ms: AtomicU64::new(0),
            last_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            closed: AtomicBool::new(false),
        }
    }

    /// Whether the hub ticks every `window` (the first caller sets it).
    pub fn ticks_every(&self, window: Duration) -> bool {
        let ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        match self
            .every_ms
            .compare_exchange(0, ms, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => true,
            Err(current) => current == ms,
        }
    }

    /// Ticks if a window has passed since the last tick.
    fn frame_pushed(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= self.every_ms.load(Ordering::Relaxed) {
            self.last_ms.store(now, Ordering::Relaxed);
            self.notify.notify_waiters();
        }
    }

    /// The next tick. The future counts from its creation: a tick (or
    /// the close) after this call wakes it even before it is polled.
    pub fn next(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }

    /// Whether the hub is gone.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
}

/// Counts an in-process reader (time-shift) while it is attached.
struct InternalReader(Arc<AtomicUsize>);

impl Drop for InternalReader {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One live stream's hub. Shared by the publisher task and player tasks.
pub struct Hub {
    state: Mutex<State>,
    tx: broadcast::Sender<Arc<Frame>>,
    ticker: Arc<Ticker>,
    /// Readers that are not players (see [`Hub::subscribe_internal`]).
    internal: Arc<AtomicUsize>,
}

/// The most frames the GOP cache keeps (a stream without keyframes must
/// not grow it without bound).
const MAX_GOP_FRAMES: usize = 2048;

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        // Players waiting for a tick learn that the stream is over.
        self.ticker.close();
    }
}

impl Hub {
    /// An empty hub.
    pub fn new() -> Hub {
        let (tx, _) = broadcast::channel(CHANNEL_FRAMES);
        Hub {
            state: Mutex::new(State::default()),
            tx,
            ticker: Arc::new(Ticker::new()),
            internal: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Adds a frame from the publisher and sends it to every player.
    pub fn push(&self, frame: Frame) {
        let frame = Arc::new(frame);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.last_timestamp = state.last_timestamp.max(frame.timestamp);
        match frame.kind {
            FrameKind::Script => state.metadata = Some(Arc::clone(&frame)),
            FrameKind::Video if frame.sequence_header => {
                state.has_video = true;
                state.video_header = Some(Arc::clone(&frame));
            }
            FrameKind::Audio if frame.sequence_header => {
                state.audio_header = Some(Arc::clone(&frame));
            }
            FrameKind::Video => {
                state.has_video = true;
                if frame.keyframe {
                    state.gop.clear();
                }
                if state.gop.len() < MAX_GOP_FRAMES && (frame.keyframe || !state.gop.is_empty()) {
                    state.gop.push(Arc::clone(&frame));
                }
            }
            FrameKind::Audio => {
                if state.has_video {
                    // Audio rides with the GOP it belongs to; before the
                    // first keyframe there is nothing to start from.
                    if !state.gop.is_empty() && state.gop.len() < MAX_GOP_FRAMES {
                        state.gop.push(Arc::clone(&frame));
                    }
                } else {
                    // Audio-only: keep about the last second.
                    if state.gop.len() >= 64 {
                        state.gop.remove(0);
                    }
                    state.gop.push(Arc::clone(&frame));
                }
            }
        }
        // Sent under the lock so that a subscriber's snapshot and its
        // channel position agree: no frame is missed or seen twice.
        let _ = self.tx.send(frame);
        drop(state);
        self.ticker.frame_pushed();
    }

    /// What a player starts with: the metadata, the sequence headers and
    /// the frames from the last keyframe on.
    pub fn start_frames(&self) -> Vec<Arc<Frame>> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        Self::start_of(&state)
    }

    fn start_of(state: &State) -> Vec<Arc<Frame>> {
        let mut start = Vec::with_capacity(state.gop.len() + 3);
        start.extend(state.metadata.iter().cloned());
        start.extend(state.video_header.iter().cloned());
        start.extend(state.audio_header.iter().cloned());
        start.extend(state.gop.iter().cloned());
        start
    }

    /// Attaches a player.
    pub fn subscribe(&self) -> Subscription {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        Subscription {
            start: Self::start_of(&state),
            live: self.tx.subscribe(),
            ticker: Arc::clone(&self.ticker),
            _internal: None,
        }
    }

    /// Attaches an in-process reader that is not a player (a time-shift
    /// writer): [`Hub::players`] does not count it, so it keeps no
    /// on-demand output alive and no player statistics see it.
    pub fn subscribe_internal(&self) -> Subscription {
        self.internal.fetch_add(1, Ordering::Relaxed);
        let mut sub = self.subscribe();
        sub._internal = Some(InternalReader(Arc::clone(&self.internal)));
        sub
    }

    /// The latest timestamp the players have been sent.
    pub fn last_timestamp(&self) -> u32 {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last_timestamp
    }

    /// How many players are attached.
    pub fn players(&self) -> usize {
        self.tx
            .receiver_count()
            .saturating_sub(self.internal.load(Ordering::Relaxed))
    }

    /// The current sequence headers (video, audio), for measurements.
    pub fn headers(&self) -> (Option<Arc<Frame>>, Option<Arc<Frame>>) {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (state.video_header.clone(), state.audio_header.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: FrameKind, ts: u32, keyframe: bool, header: bool) -> Frame {
        Frame::new(
            kind,
            ts,
            keyframe,
            header,
            Bytes::from(format!("p{ts}")),
            128,
        )
    }

    fn timestamps(frames: &[Arc<Frame>]) -> Vec<u32> {
        frames.iter().map(|f| f.timestamp).collect()
    }

    #[test]
    fn a_new_player_starts_with_headers_and_the_gop_from_the_last_keyframe() {
        let hub = Hub::new();
        hub.push(frame(FrameKind::Script, 0, false, false));
        hub.push(frame(FrameKind::Video, 1, true, true));
        hub.push(frame(FrameKind::Audio, 2, false, true));
        hub.push(frame(FrameKind::Video, 10, true, false));
        hub.push(frame(FrameKind::Audio, 11, false, false));
        hub.push(frame(FrameKind::Video, 20, false, false));
        hub.push(frame(FrameKind::Video, 30, true, false));
        hub.push(frame(FrameKind::Audio, 31, false, false));
        let sub = hub.subscribe();
        assert_eq!(timestamps(&sub.start), vec![0, 1, 2, 30, 31]);
    }

    #[test]
    fn frames_before_the_first_keyframe_are_not_cached() {
        let hub = Hub::new();
        hub.push(frame(FrameKind::Video, 1, true, true));
        hub.push(frame(FrameKind::Video, 5, false, false));
        hub.push(frame(FrameKind::Audio, 6, false, false));
        assert_eq!(timestamps(&hub.subscribe().start), vec![1]);
    }

    #[tokio::test]
    async fn live_frames_follow_the_snapshot_without_gaps_or_repeats() {
        let hub = Hub::new();
        hub.push(frame(FrameKind::Video, 1, true, true));
        hub.push(frame(FrameKind::Video, 10, true, false));
        let mut sub = hub.subscribe();
        hub.push(frame(FrameKind::Video, 20, false, false));
        assert_eq!(timestamps(&sub.start), vec![1, 10]);
        let next = sub.live.recv().await.expect("frame");
        assert_eq!(next.timestamp, 20);
        assert_eq!(hub.players(), 1);
    }

    #[test]
    fn an_internal_reader_is_not_counted_as_a_player() {
        let hub = Hub::new();
        let player = hub.subscribe();
        let reader = hub.subscribe_internal();
        assert_eq!(hub.players(), 1);
        drop(player);
        assert_eq!(hub.players(), 0);
        drop(reader);
        assert_eq!(hub.players(), 0);
        let _again = hub.subscribe();
        assert_eq!(hub.players(), 1);
    }

    #[test]
    fn players_share_the_encoded_bytes() {
        let hub = Hub::new();
        hub.push(frame(FrameKind::Video, 10, true, false));
        let a = hub.subscribe();
        let b = hub.subscribe();
        assert!(Arc::ptr_eq(&a.start[0], &b.start[0]));
        assert_eq!(a.start[0].flv.as_ptr(), b.start[0].flv.as_ptr());
    }

    #[test]
    fn one_copy_of_the_payload_serves_both_wires() {
        let body: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let frame = Frame::new(
            FrameKind::Video,
            40,
            true,
            false,
            Bytes::from(body.clone()),
            128,
        );
        assert_eq!(frame.payload, body);
        // The payload is the FLV tag's body, not a copy of its own.
        let body_at = frame.flv.as_ptr() as usize + flv::TAG_HEADER_LEN;
        assert_eq!(frame.payload.as_ptr() as usize, body_at);
        let rtmp: Vec<u8> = frame.slices(Wire::Rtmp).flatten().copied().collect();
        let expected = livestack_rtmp::chunk::encode_message_fmt0(6, 9, 1, 40, &body, 128);
        assert_eq!(rtmp, expected);
        assert_eq!(frame.wire_len(Wire::Rtmp), expected.len());
        let tag: Vec<u8> = frame.slices(Wire::Flv).flatten().copied().collect();
        assert_eq!(
            tag,
            flv::encode_tag(TagKind::Video, 40, &body).expect("tag")
        );
        assert_eq!(frame.wire_len(Wire::Flv), tag.len());
    }
}
