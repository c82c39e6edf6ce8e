//! Writing a stream to one player: the shared frames of the hub, batched
//! into vectored writes (SRS's "merged write").
//!
//! Owns: the per-player send loop for RTMP and HTTP-FLV. Must not: copy
//! frame bytes (they are shared by every player) or hold the hub's lock.
//!
//! Why batching: writing each message as it arrives costs a wakeup and a
//! syscall per message per player (about 70 per second at 25 fps with
//! audio). Waiting `merge` after the first pending frame and then writing
//! everything pending in one `writev` brings that to a few per second.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio_util::sync::CancellationToken;

use crate::stream::hub::{Frame, FrameSlices, Subscription, Wire};

/// How a player's session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum PlayEnd {
    /// The publisher stopped; the stream is over.
    StreamEnded,
    /// The player fell more than the channel's capacity behind.
    TooSlow,
    /// The connection failed (the player went away).
    Disconnected,
    /// The server told it to stop (shutdown, forbid).
    Cancelled,
}

/// The most slices passed to one `writev` (an RTMP frame is two: its
/// chunk header and its payload).
const MAX_SLICES: usize = 128;

/// Writes `bufs` whole, in order, with vectored writes.
pub async fn write_all<W: AsyncWrite + Unpin>(
    w: &mut W,
    bufs: impl IntoIterator<Item = Bytes>,
) -> std::io::Result<()> {
    Pending::new(Wire::Flv, bufs).write(w).await
}

/// What a player has still to be sent: connection bytes of its own (the
/// `play` answer), then frames, written as each frame's slices on the
/// player's wire. `skip` is how much of the first item went out already.
struct Pending {
    wire: Wire,
    items: VecDeque<Item>,
    skip: usize,
}

enum Item {
    Bytes(Bytes),
    Frame(Arc<Frame>),
}

impl Item {
    /// The item's bytes on `wire`, as slices to write in order.
    fn slices(&self, wire: Wire) -> FrameSlices<'_> {
        match self {
            Item::Bytes(b) => FrameSlices::Flv(Some(&b[..])),
            Item::Frame(f) => f.slices(wire),
        }
    }

    fn len(&self, wire: Wire) -> usize {
        match self {
            Item::Bytes(b) => b.len(),
            Item::Frame(f) => f.wire_len(wire),
        }
    }
}

impl Pending {
    /// `bufs` to write first, on a player of `wire`.
    fn new(wire: Wire, bufs: impl IntoIterator<Item = Bytes>) -> Pending {
        Pending {
            wire,
            items: bufs.into_iter().map(Item::Bytes).collect(),
            skip: 0,
        }
    }

    /// Bytes not yet written.
    fn bytes(&self) -> usize {
        self.items.iter().map(|i| i.len(self.wire)).sum::<usize>() - self.skip
    }

    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn push(&mut self, frame: Arc<Frame>) {
        self.items.push_back(Item::Frame(frame));
    }

    /// Writes everything pending, in order, with vectored writes.
    async fn write<W: AsyncWrite + Unpin>(&mut self, w: &mut W) -> std::io::Result<()> {
        while !self.items.is_empty() {
            let n = {
                // Two slices per item covers nearly every frame.
                let want = (2 * self.items.len()).min(MAX_SLICES);
                let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(want);
                let mut skip = self.skip;
                'items: for item in &self.items {
                    for part in item.slices(self.wire) {
                        if skip >= part.len() {
                            skip -= part.len();
                            continue;
                        }
                        slices.push(IoSlice::new(&part[skip..]));
                        skip = 0;
                        if slices.len() == MAX_SLICES {
                            break 'items;
                        }
                    }
                }
                if slices.is_empty() {
                    // Only empty items were left.
                    self.items.clear();
                    self.skip = 0;
                    return Ok(());
                }
                w.write_vectored(&slices).await?
            };
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            let mut done = self.skip + n;
            while let Some(front) = self.items.front() {
                let len = front.len(self.wire);
                if len > done {
                    break;
                }
                done -= len;
                self.items.pop_front();
            }
            self.skip = done;
        }
        Ok(())
    }
}

/// Sends `prelude`, the subscription's start frames, then live frames
/// until the stream ends, the player goes away or `cancel` fires.
/// `wire` picks the frames' encoding for this output (RTMP or FLV).
pub async fn play<W: AsyncWrite + Unpin>(
    w: &mut W,
    prelude: Vec<Bytes>,
    sub: Subscription,
    wire: Wire,
    merge: Duration,
    cancel: &CancellationToken,
    sent: impl Fn(u64),
) -> PlayEnd {
    let Subscription {
        start,
        mut live,
        ticker,
        ..
    } = sub;
    // Players with the hub's window wait for its tick; another window (a
    // relay's shorter one) keeps a timer of its own.
    let ticked = !merge.is_zero() && ticker.ticks_every(merge);
    let mut queue = Pending::new(wire, prelude);
    queue.items.extend(start.into_iter().map(Item::Frame));
    // One registration with the token for the whole session: a fresh
    // `cancelled()` in every `select!` registers and unregisters a waiter
    // (a lock each) several times per write, for every player.
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    loop {
        if !queue.is_empty() {
            let bytes = queue.bytes();
            let written = tokio::select! {
                r = queue.write(w) => r,
                () = &mut cancelled => return PlayEnd::Cancelled,
            };
            if written.is_err() {
                return PlayEnd::Disconnected;
            }
            sent(bytes as u64);
        }
        if ticked {
            let tick = ticker.next();
            if !ticker.is_closed() {
                tokio::select! {
                    () = tick => {}
                    () = &mut cancelled => return PlayEnd::Cancelled,
                }
            }
            if let Err(end) = drain(&mut live, &mut queue) {
                if end == PlayEnd::StreamEnded {
                    finish(w, &mut queue, &sent).await;
                }
                return end;
            }
            if queue.is_empty() && ticker.is_closed() {
                return PlayEnd::StreamEnded;
            }
            continue;
        }
        // Wait for the next frame...
        let first: Arc<Frame> = tokio::select! {
            r = live.recv() => match r {
                Ok(f) => f,
                Err(RecvError::Closed) => return PlayEnd::StreamEnded,
                Err(RecvError::Lagged(_)) => return PlayEnd::TooSlow,
            },
            () = &mut cancelled => return PlayEnd::Cancelled,
        };
        queue.push(first);
        // ...then let more arrive and send them together.
        if !merge.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(merge) => {}
                () = &mut cancelled => return PlayEnd::Cancelled,
            }
        }
        if let Err(end) = drain(&mut live, &mut queue) {
            if end == PlayEnd::StreamEnded {
                finish(w, &mut queue, &sent).await;
            }
            return end;
        }
    }
}

/// Moves every frame waiting in the channel to `queue`; `Err` when the
/// stream ended (what is queued is still to be written) or the player
/// fell too far behind.
fn drain(
    live: &mut tokio::sync::broadcast::Receiver<Arc<Frame>>,
    queue: &mut Pending,
) -> Result<(), PlayEnd> {
    loop {
        match live.try_recv() {
            Ok(f) => queue.push(f),
            Err(TryRecvError::Empty) => return Ok(()),
            Err(TryRecvError::Closed) => return Err(PlayEnd::StreamEnded),
            Err(TryRecvError::Lagged(_)) => return Err(PlayEnd::TooSlow),
        }
    }
}

/// Delivers what is left when the stream ends (counted like every write).
async fn finish<W: AsyncWrite + Unpin>(w: &mut W, queue: &mut Pending, sent: &impl Fn(u64)) {
    let bytes = queue.bytes();
    if queue.write(w).await.is_ok() {
        sent(bytes as u64);
    }
    let _ = w.flush().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ts: u32) -> Frame {
        let body = Bytes::from(format!("f{ts};").repeat(40));
        Frame::new(
            crate::stream::hub::FrameKind::Video,
            ts,
            ts == 0,
            false,
            body,
            128,
        )
    }

    /// What a player on `wire` must have received for `frames`.
    fn expected(frames: &[Frame], wire: Wire) -> Vec<u8> {
        frames
            .iter()
            .flat_map(|f| f.slices(wire).flatten().copied())
            .collect()
    }

    #[tokio::test]
    async fn players_on_the_hubs_tick_get_every_frame_in_order_and_the_rest_when_it_ends() {
        let hub = crate::stream::hub::Hub::new();
        hub.push(frame(0));
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let sub = hub.subscribe();
        let ticked = Arc::clone(&sub.ticker);
        let cancel = CancellationToken::new();
        let player = tokio::spawn(async move {
            let end = play(
                &mut a,
                Vec::new(),
                sub,
                Wire::Flv,
                Duration::from_millis(50),
                &cancel,
                |_| {},
            )
            .await;
            drop(a);
            end
        });
        // Several frames inside one window, then the hub goes: whatever
        // was not written on a tick is written at the end.
        for ts in 1..=20 {
            hub.push(frame(ts * 10));
            tokio::task::yield_now().await;
        }
        drop(hub);
        assert_eq!(player.await.expect("join"), PlayEnd::StreamEnded);
        assert!(ticked.is_closed());
        let mut out = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut b, &mut out)
            .await
            .expect("read");
        let frames: Vec<Frame> = (0..=20).map(|t| frame(t * 10)).collect();
        assert_eq!(out, expected(&frames, Wire::Flv));
    }

    #[tokio::test]
    async fn rtmp_chunks_and_flv_tags_arrive_whole_through_short_writes() {
        // A duplex pipe with a tiny buffer forces writes that end inside
        // a chunk header and inside a payload piece.
        for wire in [Wire::Rtmp, Wire::Flv] {
            let frames: Vec<Frame> = (0..6).map(|t| frame(t * 40)).collect();
            let want = [b"answer".to_vec(), expected(&frames, wire)].concat();
            let mut queue = Pending::new(wire, [Bytes::from_static(b"answer"), Bytes::new()]);
            for f in frames {
                queue.push(Arc::new(f));
            }
            assert_eq!(queue.bytes(), want.len());
            let (mut a, mut b) = tokio::io::duplex(7);
            let reader = tokio::spawn(async move {
                let mut out = Vec::new();
                tokio::io::AsyncReadExt::read_to_end(&mut b, &mut out)
                    .await
                    .map(|_| out)
            });
            queue.write(&mut a).await.expect("write");
            drop(a);
            assert_eq!(reader.await.expect("join").expect("read"), want, "{wire:?}");
            assert!(queue.is_empty());
            assert_eq!(queue.bytes(), 0);
        }
    }

    #[tokio::test]
    async fn a_player_with_another_window_than_the_hubs_keeps_its_own_timer() {
        let hub = crate::stream::hub::Hub::new();
        let first = hub.subscribe();
        assert!(first.ticker.ticks_every(Duration::from_millis(200)));
        let relay = hub.subscribe();
        assert!(!relay.ticker.ticks_every(Duration::from_millis(20)));
        assert!(relay.ticker.ticks_every(Duration::from_millis(200)));
    }

    #[tokio::test]
    async fn a_queue_is_written_whole_and_in_order_even_with_short_writes() {
        // A duplex pipe with a tiny buffer forces partial vectored writes.
        let (mut a, mut b) = tokio::io::duplex(7);
        let queue = [&b"hello "[..], b"shared ", b"world"].map(Bytes::from_static);
        let reader = tokio::spawn(async move {
            let mut out = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut b, &mut out)
                .await
                .map(|_| out)
        });
        write_all(&mut a, queue).await.expect("write");
        drop(a);
        let out = reader.await.expect("join").expect("read");
        assert_eq!(out, b"hello shared world");
    }
}
