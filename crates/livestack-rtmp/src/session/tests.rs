//! Scripted client/server exchanges, entirely in memory.

use bytes::{BufMut, Bytes, BytesMut};

use super::*;
use crate::chunk::{encode_message_fmt0, CSID_AUDIO, CSID_VIDEO};
use crate::client::{ClientConfig, ClientEvent, ClientSession};
use crate::handshake::DigestSchema;

/// A client and a server wired back to back.
struct Pair {
    client: ClientSession,
    server: ServerSession,
    client_events: Vec<ClientEvent>,
    server_events: Vec<SessionEvent>,
}

impl Pair {
    fn new(complex: bool) -> Self {
        let mut config = ClientConfig::new("live", "rtmp://127.0.0.1/live");
        config.complex_handshake = complex;
        Pair {
            client: ClientSession::new(config),
            server: ServerSession::new(ServerConfig::default()),
            client_events: Vec::new(),
            server_events: Vec::new(),
        }
    }

    /// Moves bytes both ways until neither side has anything to say.
    fn pump(&mut self) {
        for _ in 0..100 {
            let mut moved = false;
            while let Some(bytes) = self.client.take_output() {
                moved = true;
                // Deliver in uneven pieces to exercise partial input.
                for piece in bytes.chunks(1000) {
                    self.server
                        .feed(piece)
                        .expect("server accepts client bytes");
                }
            }
            while let Some(bytes) = self.server.take_output() {
                moved = true;
                self.client
                    .feed(&bytes)
                    .expect("client accepts server bytes");
            }
            while let Some(event) = self.server.poll_event() {
                self.server_events.push(event);
            }
            while let Some(event) = self.client.poll_event() {
                self.client_events.push(event);
            }
            if !moved {
                return;
            }
        }
        panic!("the exchange did not settle");
    }

    fn status_codes(&self) -> Vec<String> {
        self.client_events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Status { code, .. } => Some(code.clone()),
                _ => None,
            })
            .collect()
    }
}

fn metadata_payload() -> Bytes {
    let mut payload = BytesMut::new();
    amf0::encode_string("@setDataFrame", &mut payload);
    amf0::encode_string("onMetaData", &mut payload);
    amf0::encode(
        &Amf0Value::EcmaArray(vec![
            (String::from("width"), Amf0Value::Number(320.0)),
            (String::from("videocodecid"), Amf0Value::Number(7.0)),
        ]),
        &mut payload,
    );
    payload.freeze()
}

#[test]
fn a_client_publishes_and_the_server_sees_every_message_in_order() {
    let mut pair = Pair::new(false);
    pair.client.publish("test?k=v", "live");
    pair.pump();

    assert_eq!(pair.server.handshake_kind(), Some(HandshakeKind::Simple));
    match &pair.server_events[0] {
        SessionEvent::Connect {
            app,
            tc_url,
            command_object,
        } => {
            assert_eq!(app, "live");
            assert_eq!(tc_url.as_deref(), Some("rtmp://127.0.0.1/live"));
            assert!(command_object.iter().any(|(k, _)| k == "flashVer"));
        }
        other => panic!("expected Connect, got {other:?}"),
    }
    assert_eq!(
        pair.server_events[1],
        SessionEvent::Publish {
            stream_id: 1,
            name: String::from("test?k=v"),
            publish_type: String::from("live"),
        }
    );
    assert!(
        !pair.client.is_publishing(),
        "nothing until the caller accepts"
    );

    pair.server.accept_publish(1);
    pair.pump();
    assert_eq!(pair.status_codes(), vec!["NetStream.Publish.Start"]);
    assert!(pair.client.is_publishing());
    assert!(pair.client_events.contains(&ClientEvent::Connected));
    assert!(pair
        .client_events
        .contains(&ClientEvent::StreamCreated { stream_id: 1 }));

    let video = vec![0x17u8; 70_000];
    assert!(pair.client.send_data(&metadata_payload()));
    assert!(pair.client.send_video(0, &[0x17, 0, 0, 0, 0, 1, 2]));
    assert!(pair.client.send_audio(0, &[0xAF, 0, 0x12, 0x10]));
    assert!(pair.client.send_video(40, &video));
    assert!(pair.client.send_audio(23, &[0xAF, 1, 9]));
    pair.client.stop();
    pair.pump();

    let media: Vec<&SessionEvent> = pair.server_events[2..].iter().collect();
    match media[0] {
        SessionEvent::Metadata { stream_id, payload } => {
            assert_eq!(*stream_id, 1);
            assert_eq!(payload, &metadata_payload());
            let stripped = strip_set_data_frame(payload);
            let values = amf0::decode_all(&stripped).expect("valid AMF0");
            assert_eq!(values[0].as_str(), Some("onMetaData"));
            assert_eq!(values[1].get("width"), Some(&Amf0Value::Number(320.0)));
        }
        other => panic!("expected Metadata, got {other:?}"),
    }
    assert!(
        matches!(media[1], SessionEvent::Video { timestamp: 0, payload, .. } if payload.len() == 7)
    );
    assert!(matches!(media[2], SessionEvent::Audio { timestamp: 0, .. }));
    assert!(
        matches!(media[3], SessionEvent::Video { stream_id: 1, timestamp: 40, payload } if payload[..] == video[..])
    );
    assert!(matches!(
        media[4],
        SessionEvent::Audio { timestamp: 23, .. }
    ));
    assert_eq!(
        media[5],
        &SessionEvent::Unpublish {
            name: String::from("test?k=v")
        }
    );
    assert_eq!(media[6], &SessionEvent::DeleteStream { stream_id: 1 });
}

#[test]
fn a_client_plays_and_receives_fan_out_bytes_encoded_once() {
    let mut pair = Pair::new(false);
    pair.client.play("test?token=abc");
    pair.pump();
    assert!(pair.server_events.contains(&SessionEvent::Play {
        stream_id: 1,
        name: String::from("test?token=abc"),
        start: -2.0,
        duration: -1.0,
        reset: true,
    }));
    assert!(pair.server_events.contains(&SessionEvent::SetBufferLength {
        stream_id: 1,
        buffer_ms: 3000
    }));

    pair.server.accept_play(1);
    pair.pump();
    assert_eq!(
        pair.status_codes(),
        vec!["NetStream.Play.Reset", "NetStream.Play.Start"]
    );
    assert!(pair
        .client_events
        .contains(&ClientEvent::StreamBegin { stream_id: 1 }));
    let data: Vec<Amf0Value> = pair
        .client_events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Data { payload, .. } => amf0::decode(&mut &payload[..]).ok(),
            _ => None,
        })
        .collect();
    assert_eq!(
        data,
        vec![
            Amf0Value::String(String::from("|RtmpSampleAccess")),
            Amf0Value::String(String::from("onStatus"))
        ]
    );

    // Fan-out: encode once, hand the same bytes to the player.
    let stream_id = pair.server.media_stream_id();
    let chunk_size = pair.server.chunk_size_out();
    assert_eq!((stream_id, chunk_size), (1, 60_000));
    let keyframe: Vec<u8> = (0..150_000u32).map(|i| i as u8).collect();
    let shared = encode_message_fmt0(
        CSID_VIDEO,
        msg_type::VIDEO,
        stream_id,
        0x0100_0000,
        &keyframe,
        chunk_size,
    );
    let audio = encode_message_fmt0(
        CSID_AUDIO,
        msg_type::AUDIO,
        stream_id,
        5,
        &[0xAF, 1],
        chunk_size,
    );
    let metadata = strip_set_data_frame(&metadata_payload());
    let metadata = encode_message_fmt0(
        crate::chunk::CSID_DATA,
        msg_type::DATA_AMF0,
        stream_id,
        0,
        &metadata,
        chunk_size,
    );
    pair.client_events.clear();
    for bytes in [&metadata, &shared, &audio, &shared] {
        pair.client
            .feed(bytes)
            .expect("player decodes fan-out bytes");
    }
    while let Some(event) = pair.client.poll_event() {
        pair.client_events.push(event);
    }
    assert!(matches!(
        &pair.client_events[0],
        ClientEvent::Metadata { stream_id: 1, .. }
    ));
    assert!(
        matches!(&pair.client_events[1], ClientEvent::Video { timestamp: 0x0100_0000, payload, .. } if payload[..] == keyframe[..])
    );
    assert!(matches!(
        &pair.client_events[2],
        ClientEvent::Audio { timestamp: 5, .. }
    ));
    assert!(matches!(&pair.client_events[3], ClientEvent::Video { .. }));
}

#[test]
fn rejected_play_and_publish_carry_the_callers_error_code() {
    let mut pair = Pair::new(false);
    pair.client.play("missing");
    pair.pump();
    pair.server
        .reject_play(1, "NetStream.Play.StreamNotFound", "No such stream.");
    pair.pump();
    assert!(pair.client_events.contains(&ClientEvent::Status {
        stream_id: 1,
        level: String::from("error"),
        code: String::from("NetStream.Play.StreamNotFound"),
        description: String::from("No such stream."),
    }));

    let mut pair = Pair::new(false);
    pair.client.publish("bad", "live");
    pair.pump();
    pair.server
        .reject_publish(1, "NetStream.Publish.BadName", "Stream already publishing.");
    pair.pump();
    assert_eq!(pair.status_codes(), vec!["NetStream.Publish.BadName"]);
    assert!(!pair.client.is_publishing());
}

#[test]
fn the_complex_handshake_is_answered_with_digests() {
    let mut pair = Pair::new(true);
    pair.client.play("x");
    pair.pump();
    assert_eq!(
        pair.server.handshake_kind(),
        Some(HandshakeKind::Complex(DigestSchema::Schema0))
    );
    assert!(pair
        .server_events
        .iter()
        .any(|e| matches!(e, SessionEvent::Play { .. })));
}

/// Bytes for a connected raw client: C0, C1, C2 and a `connect`.
fn connected_server() -> ServerSession {
    let mut pair = Pair::new(false);
    pair.pump();
    assert!(pair.client_events.contains(&ClientEvent::Connected));
    pair.server
}

fn command_bytes(name: &str, transaction_id: f64, chunk_size: u32) -> Bytes {
    let mut payload = BytesMut::new();
    amf0::encode_string(name, &mut payload);
    amf0::encode_number(transaction_id, &mut payload);
    amf0::encode_null(&mut payload);
    encode_message_fmt0(3, msg_type::COMMAND_AMF0, 0, 0, &payload, chunk_size)
}

/// Decodes the server's output as a client would (chunk size 60000).
fn replies(server: &mut ServerSession) -> Vec<crate::command::Command> {
    let mut decoder = crate::chunk::ChunkDecoder::new();
    decoder.set_chunk_size(60_000).expect("valid");
    let mut buf = BytesMut::new();
    while let Some(bytes) = server.take_output() {
        buf.put_slice(&bytes);
    }
    let mut out = Vec::new();
    while let Some(m) = decoder.decode(&mut buf).expect("valid output") {
        if m.msg_type == msg_type::COMMAND_AMF0 {
            out.push(crate::command::parse(&m).expect("valid command"));
        }
    }
    out
}

#[test]
fn unknown_commands_get_an_error_and_known_ones_are_not_errors() {
    let mut server = connected_server();
    server.take_output();
    // The pair's client announced chunk size 4096.
    server
        .feed(&command_bytes("fancyMethod", 7.0, 4096))
        .expect("ok");
    server
        .feed(&command_bytes("getStreamLength", 8.0, 4096))
        .expect("ok");
    server
        .feed(&command_bytes("_checkbw", 9.0, 4096))
        .expect("ok");
    server
        .feed(&command_bytes("fancyNotification", 0.0, 4096))
        .expect("ok");
    server
        .feed(&command_bytes("releaseStream", 10.0, 4096))
        .expect("ok");
    let replies = replies(&mut server);
    let summary: Vec<(&str, f64)> = replies
        .iter()
        .map(|c| (c.name.as_str(), c.transaction_id))
        .collect();
    assert_eq!(summary, vec![("_error", 7.0), ("_result", 10.0)]);
    let (_, code, _) = crate::command::status_fields(&replies[0].args[0]);
    assert_eq!(code, "NetConnection.Call.Failed");
}

#[test]
fn create_stream_hands_out_increasing_ids() {
    let mut server = connected_server();
    server.take_output();
    server
        .feed(&command_bytes("createStream", 2.0, 4096))
        .expect("ok");
    server
        .feed(&command_bytes("createStream", 3.0, 4096))
        .expect("ok");
    let ids: Vec<Option<f64>> = replies(&mut server)
        .iter()
        .map(|c| c.number_arg(0))
        .collect();
    assert_eq!(ids, vec![Some(1.0), Some(2.0)]);
}

#[test]
fn commands_before_connect_fail_the_session_for_good() {
    let mut server = ServerSession::new(ServerConfig::default());
    let mut hello = vec![3u8];
    hello.extend_from_slice(&[0u8; 2 * crate::handshake::PACKET_SIZE]);
    server.feed(&hello).expect("handshake");
    assert_eq!(
        server.feed(&command_bytes("createStream", 2.0, 128)),
        Err(RtmpError::NotConnected(String::from("createStream")))
    );
    assert_eq!(server.feed(b"more"), Err(RtmpError::Failed));
}

#[test]
fn malformed_commands_are_errors_not_panics() {
    let mut server = connected_server();
    let garbage = encode_message_fmt0(3, msg_type::COMMAND_AMF0, 0, 0, &[0x02, 0xFF], 4096);
    assert!(matches!(server.feed(&garbage), Err(RtmpError::Amf0(_))));

    let mut server = connected_server();
    let mut payload = BytesMut::new();
    amf0::encode_string("publish", &mut payload);
    amf0::encode_number(0.0, &mut payload);
    amf0::encode_null(&mut payload);
    let publish = encode_message_fmt0(5, msg_type::COMMAND_AMF0, 1, 0, &payload, 4096);
    assert!(matches!(
        server.feed(&publish),
        Err(RtmpError::InvalidCommand { .. })
    ));
}

#[test]
fn strip_set_data_frame_leaves_other_payloads_alone() {
    let mut payload = BytesMut::new();
    amf0::encode_string("onMetaData", &mut payload);
    let payload = payload.freeze();
    assert_eq!(strip_set_data_frame(&payload), payload);
    let empty = Bytes::new();
    assert_eq!(strip_set_data_frame(&empty), empty);
}

#[test]
fn a_playing_client_acknowledges_the_window_the_server_asked_for() {
    let mut pair = Pair::new(false);
    pair.client.play("test");
    pair.pump();
    pair.server.accept_play(1);
    pair.pump();
    assert_eq!(pair.server.conn.peer_acknowledged(), 0);
    let frame = vec![0x27u8; 100_000];
    for i in 0..30 {
        let bytes = encode_message_fmt0(CSID_VIDEO, msg_type::VIDEO, 1, i * 40, &frame, 60_000);
        pair.client.feed(&bytes).expect("player decodes");
    }
    pair.pump();
    let acked = pair.server.conn.peer_acknowledged();
    assert!(
        acked >= ServerConfig::default().window_ack_size,
        "acknowledged {acked} bytes"
    );
}

#[test]
fn an_unauthorized_client_cannot_make_the_session_hold_a_large_message() {
    let mut server = connected_server();
    server.set_input_limits(64 * 1024, 256 * 1024);
    // A chunk header declaring a 16 MiB message (after raising the chunk
    // size, so that the bytes would all be buffered) is refused at once.
    let mut payload = BytesMut::new();
    payload.put_u32(0x7FFF_FFFF);
    let set_chunk = encode_message_fmt0(2, 1, 0, 0, &payload, 128);
    server.feed(&set_chunk).expect("a chunk size is fine");
    let mut header = BytesMut::new();
    header.put_u8(0x03); // fmt 0, csid 3
    header.put_slice(&[0, 0, 0]); // timestamp
    header.put_slice(&[0xFF, 0xFF, 0xFF]); // length
    header.put_u8(msg_type::COMMAND_AMF0);
    header.put_u32_le(0);
    assert!(
        server.feed(&header).is_err(),
        "a 16 MiB message was accepted"
    );
}
