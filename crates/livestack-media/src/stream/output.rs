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

use bytes::{Buf, Bytes};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio_util::sync::CancellationToken;

use crate::stream::hub::{Frame, Subscription};

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

/// The most slices passed to one `writev`.
const MAX_SLICES: usize = 64;

/// Writes every buffer in `queue`, in order, with vectored writes.
pub async fn write_queue<W: AsyncWrite + Unpin>(
    w: &mut W,
    queue: &mut VecDeque<Bytes>,
) -> std::io::Result<()> {
    while !queue.is_empty() {
        let n = {
            let slices: Vec<IoSlice<'_>> = queue
                .iter()
                .take(MAX_SLICES)
                .map(|b| IoSlice::new(b))
                .collect();
            w.write_vectored(&slices).await?
        };
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let mut left = n;
        while left > 0 {
            let Some(front) = queue.front_mut() else {
                break;
            };
            if front.len() <= left {
                left -= front.len();
                queue.pop_front();
            } else {
                front.advance(left);
                left = 0;
            }
        }
    }
    Ok(())
}

/// Sends `prelude`, the subscription's start frames, then live frames
/// until the stream ends, the player goes away or `cancel` fires.
/// `bytes_of` picks the frame's encoding for this output (RTMP or FLV).
pub async fn play<W: AsyncWrite + Unpin>(
    w: &mut W,
    prelude: Vec<Bytes>,
    sub: Subscription,
    bytes_of: fn(&Frame) -> &Bytes,
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
    let mut queue: VecDeque<Bytes> = prelude.into();
    queue.extend(start.iter().map(|f| bytes_of(f).clone()));
    // One registration with the token for the whole session: a fresh
    // `cancelled()` in every `select!` registers and unregisters a waiter
    // (a lock each) several times per write, for every player.
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    loop {
        if !queue.is_empty() {
            let bytes: usize = queue.iter().map(Bytes::len).sum();
            let written = tokio::select! {
                r = write_queue(w, &mut queue) => r,
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
            if let Err(end) = drain(&mut live, &mut queue, bytes_of) {
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
        queue.push_back(bytes_of(&first).clone());
        // ...then let more arrive and send them together.
        if !merge.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(merge) => {}
                () = &mut cancelled => return PlayEnd::Cancelled,
            }
        }
        if let Err(end) = drain(&mut live, &mut queue, bytes_of) {
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
    queue: &mut VecDeque<Bytes>,
    bytes_of: fn(&Frame) -> &Bytes,
) -> Result<(), PlayEnd> {
    loop {
        match live.try_recv() {
            Ok(f) => queue.push_back(bytes_of(&f).clone()),
            Err(TryRecvError::Empty) => return Ok(()),
            Err(TryRecvError::Closed) => return Err(PlayEnd::StreamEnded),
            Err(TryRecvError::Lagged(_)) => return Err(PlayEnd::TooSlow),
        }
    }
}

/// Delivers what is left when the stream ends (counted like every write).
async fn finish<W: AsyncWrite + Unpin>(
    w: &mut W,
    queue: &mut VecDeque<Bytes>,
    sent: &impl Fn(u64),
) {
    let bytes: usize = queue.iter().map(Bytes::len).sum();
    if write_queue(w, queue).await.is_ok() {
        sent(bytes as u64);
    }
    let _ = w.flush().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ts: u32) -> crate::stream::hub::Frame {
        crate::stream::hub::Frame {
            kind: crate::stream::hub::FrameKind::Video,
            timestamp: ts,
            keyframe: ts == 0,
            sequence_header: false,
            payload: Bytes::new(),
            rtmp: Bytes::from(format!("r{ts};")),
            flv: Bytes::from(format!("f{ts};")),
        }
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
                |f| &f.flv,
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
        let mut out = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut b, &mut out)
            .await
            .expect("read");
        let expected: String = (0..=20).map(|t| format!("f{};", t * 10)).collect();
        assert_eq!(out, expected);
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
        let mut queue: VecDeque<Bytes> = [&b"hello "[..], b"shared ", b"world"]
            .into_iter()
            .map(Bytes::from_static)
            .collect();
        let reader = tokio::spawn(async move {
            let mut out = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut b, &mut out)
                .await
                .map(|_| out)
        });
        write_queue(&mut a, &mut queue).await.expect("write");
        drop(a);
        let out = reader.await.expect("join").expect("read");
        assert_eq!(out, b"hello shared world");
        assert!(queue.is_empty());
    }
}
