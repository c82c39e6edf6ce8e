//! Server sessions: arbitrary bytes from a client, handshake included, fed
//! whole or in pieces, never panic, and a session that failed stays failed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livestack_rtmp::{RtmpError, ServerConfig, ServerSession, SessionEvent};

fuzz_target!(|data: &[u8]| {
    // The piece size depends on the length only, so recorded sessions stay
    // valid seeds whatever it is.
    let step = match data.len() % 4 {
        0 => data.len().max(1),
        1 => 1,
        2 => 7,
        _ => 1000,
    };
    let mut server = ServerSession::new(ServerConfig::default());
    for piece in data.chunks(step) {
        if server.feed(piece).is_err() {
            assert_eq!(server.feed(piece), Err(RtmpError::Failed));
            break;
        }
        while let Some(event) = server.poll_event() {
            match event {
                SessionEvent::Publish { stream_id, .. } => server.accept_publish(stream_id),
                SessionEvent::Play { stream_id, .. } => {
                    server.accept_play(stream_id);
                    let _ = server.media_stream_id();
                }
                _ => {}
            }
        }
        let _ = server.take_output();
    }
});
