//! Chunk streams: arbitrary bytes after a fixed handshake never panic a
//! server session; the decoder gives the same messages (and
//! the same error) however the input is split; and every decoded message
//! survives `encode_message_fmt0` and a second decode.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use livestack_rtmp::chunk::{ChunkConnection, ChunkDecoder, ChunkError, Message};
use livestack_rtmp::handshake::PACKET_SIZE;
use livestack_rtmp::{encode_message_fmt0, ServerConfig, ServerSession, SessionEvent};

/// C0 and zeroed C1 and C2: a simple handshake (a zero version field
/// skips the digest search, which keeps runs fast).
fn handshake() -> Vec<u8> {
    let mut bytes = vec![0u8; 1 + 2 * PACKET_SIZE];
    bytes[0] = 3;
    bytes
}

fn decode_in_pieces(data: &[u8], step: usize) -> (Vec<Message>, Option<ChunkError>) {
    let mut conn = ChunkConnection::new();
    let mut buf = BytesMut::new();
    let mut out = BytesMut::new();
    let mut messages = Vec::new();
    for piece in data.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            match conn.read_message(&mut buf, &mut out) {
                Ok(Some(message)) => messages.push(message),
                Ok(None) => break,
                Err(e) => return (messages, Some(e)),
            }
        }
    }
    (messages, None)
}

fuzz_target!(|data: &[u8]| {
    let mut server = ServerSession::new(ServerConfig::default());
    server.feed(&handshake()).expect("the handshake is valid");
    if server.feed(data).is_ok() {
        while let Some(event) = server.poll_event() {
            match event {
                SessionEvent::Publish { stream_id, .. } => server.accept_publish(stream_id),
                SessionEvent::Play { stream_id, .. } => server.accept_play(stream_id),
                _ => {}
            }
        }
    }
    let _ = server.take_output();

    let whole = decode_in_pieces(data, data.len().max(1));
    let step = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let split = decode_in_pieces(data, step);
    assert_eq!(
        whole, split,
        "splitting the input at {step} changes nothing"
    );

    for chunk_size in [3u32, 128, 60_000] {
        let mut decoder = ChunkDecoder::new();
        decoder
            .set_chunk_size(chunk_size)
            .expect("valid chunk size");
        for message in &whole.0 {
            let bytes = encode_message_fmt0(
                message.csid,
                message.msg_type,
                message.stream_id,
                message.timestamp,
                &message.payload,
                chunk_size,
            );
            let mut buf = BytesMut::from(&bytes[..]);
            let again = decoder
                .decode(&mut buf)
                .expect("our encoding decodes")
                .expect("one whole message");
            assert_eq!(&again, message);
            assert!(buf.is_empty());
        }
    }
});
