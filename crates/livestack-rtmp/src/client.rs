//! The client side of one RTMP connection, as a state machine driven by
//! bytes: enough to play or publish one stream.
//!
//! This module owns the client's half of the conversation ffmpeg has with a
//! server: handshake, `connect`, `createStream`, then `play` (with a buffer
//! length) or `releaseStream`/`FCPublish`/`publish`, and decoding what comes
//! back into [`ClientEvent`]s. It exists for tests and for the load-test
//! tool; it must not grow into a general-purpose client (no reconnects, no
//! RTMPE, no AMF3), and it does no I/O.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::amf0::Amf0Value;
use crate::chunk::{
    msg_type, ChunkConnection, Message, UserControlEvent, CSID_AUDIO, CSID_COMMAND, CSID_DATA,
    CSID_STREAM_COMMAND, CSID_VIDEO,
};
use crate::command::{self, Command};
use crate::error::RtmpError;
use crate::handshake::ClientHandshake;

/// How a [`ClientSession`] introduces itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Application name for `connect` (`live` in `rtmp://host/live/name`).
    pub app: String,
    /// `tcUrl` for `connect` (`rtmp://host/live`).
    pub tc_url: String,
    /// `flashVer` for `connect`.
    pub flash_ver: String,
    /// Chunk size we write with (announced before `connect`).
    pub chunk_size: u32,
    /// Buffer length sent with `play`, in milliseconds.
    pub buffer_ms: u32,
    /// Offer the complex (digest) handshake like ffmpeg does.
    pub complex_handshake: bool,
}

impl ClientConfig {
    /// Defaults for `app` and `tc_url`: ffmpeg's flashVer, 4096-byte
    /// chunks, a 3 s buffer and the simple handshake.
    pub fn new(app: impl Into<String>, tc_url: impl Into<String>) -> Self {
        ClientConfig {
            app: app.into(),
            tc_url: tc_url.into(),
            flash_ver: String::from("LNX 9,0,124,2"),
            chunk_size: 4096,
            buffer_ms: 3000,
            complex_handshake: false,
        }
    }
}

/// Something that happened on a [`ClientSession`].
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// `connect` succeeded.
    Connected,
    /// `createStream` returned a message stream id.
    StreamCreated {
        /// The new message stream id.
        stream_id: u32,
    },
    /// An `onStatus` from the server (`NetStream.Play.Start`, ...).
    Status {
        /// Message stream id it arrived on.
        stream_id: u32,
        /// `status`, `warning` or `error`.
        level: String,
        /// Status code.
        code: String,
        /// Human-readable description.
        description: String,
    },
    /// An `_error` reply to one of our commands.
    CommandFailed {
        /// The command that failed.
        command: String,
        /// Status code from the error object.
        code: String,
        /// Description from the error object.
        description: String,
    },
    /// A User Control StreamBegin.
    StreamBegin {
        /// Message stream id.
        stream_id: u32,
    },
    /// A User Control StreamEOF.
    StreamEof {
        /// Message stream id.
        stream_id: u32,
    },
    /// An audio message.
    Audio {
        /// Message stream id.
        stream_id: u32,
        /// Absolute timestamp in milliseconds.
        timestamp: u32,
        /// FLV audio tag body.
        payload: Bytes,
    },
    /// A video message.
    Video {
        /// Message stream id.
        stream_id: u32,
        /// Absolute timestamp in milliseconds.
        timestamp: u32,
        /// FLV video tag body.
        payload: Bytes,
    },
    /// An `onMetaData` (or `@setDataFrame`) data message.
    Metadata {
        /// Message stream id.
        stream_id: u32,
        /// AMF0 data message body.
        payload: Bytes,
    },
    /// Any other data message (`|RtmpSampleAccess`, `onStatus` data, ...).
    Data {
        /// Message stream id.
        stream_id: u32,
        /// AMF0 data message body.
        payload: Bytes,
    },
}

/// What the caller asked the client to do once connected.
#[derive(Debug, Clone)]
enum Action {
    Play(String),
    Publish { name: String, publish_type: String },
}

/// Replies we are waiting for, by transaction id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Connect,
    CreateStream,
    Other,
}

/// Client side of one RTMP connection.
///
/// Create it, write [`take_output`](Self::take_output) to the socket, feed
/// what the socket returns to [`feed`](Self::feed), and read
/// [`poll_event`](Self::poll_event). [`play`](Self::play) and
/// [`publish`](Self::publish) may be called at once: they run as soon as
/// `connect` succeeds.
pub struct ClientSession {
    config: ClientConfig,
    handshake: Option<ClientHandshake>,
    conn: ChunkConnection,
    input: BytesMut,
    out: BytesMut,
    events: VecDeque<ClientEvent>,
    connected: bool,
    next_transaction: f64,
    pending: Vec<(f64, Pending, String)>,
    action: Option<Action>,
    action_started: bool,
    stream_id: Option<u32>,
    publishing: bool,
    failed: bool,
}

impl ClientSession {
    /// A client whose C0 and C1 are ready in [`take_output`](Self::take_output).
    pub fn new(config: ClientConfig) -> Self {
        let mut out = BytesMut::new();
        let handshake = ClientHandshake::new(config.complex_handshake, &mut out);
        ClientSession {
            config,
            handshake: Some(handshake),
            conn: ChunkConnection::new(),
            input: BytesMut::new(),
            out,
            events: VecDeque::new(),
            connected: false,
            next_transaction: 1.0,
            pending: Vec::new(),
            action: None,
            action_started: false,
            stream_id: None,
            publishing: false,
            failed: false,
        }
    }

    /// Processes bytes received from the server. An error means the
    /// connection must be closed; later calls return [`RtmpError::Failed`].
    pub fn feed(&mut self, input: &[u8]) -> Result<(), RtmpError> {
        if self.failed {
            return Err(RtmpError::Failed);
        }
        let result = self.feed_inner(input);
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn feed_inner(&mut self, mut input: &[u8]) -> Result<(), RtmpError> {
        if let Some(handshake) = &mut self.handshake {
            let used = handshake.feed(input, &mut self.out)?;
            input = &input[used..];
            if !handshake.is_complete() {
                return Ok(());
            }
            self.handshake = None;
            self.send_connect();
        }
        if input.is_empty() {
            return Ok(());
        }
        self.input.extend_from_slice(input);
        while let Some(message) = self.conn.read_message(&mut self.input, &mut self.out)? {
            self.handle_message(message)?;
        }
        self.conn.bytes_received(input.len(), &mut self.out);
        Ok(())
    }

    /// The next queued event, in arrival order.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Bytes to write to the socket, if any.
    pub fn take_output(&mut self) -> Option<Bytes> {
        if self.out.is_empty() {
            None
        } else {
            Some(self.out.split().freeze())
        }
    }

    /// Plays `name` (which may carry a `?query`) once connected.
    pub fn play(&mut self, name: &str) {
        self.action = Some(Action::Play(name.to_owned()));
        self.start_action();
    }

    /// Publishes `name` as `publish_type` (`live`) once connected.
    pub fn publish(&mut self, name: &str, publish_type: &str) {
        self.action = Some(Action::Publish {
            name: name.to_owned(),
            publish_type: publish_type.to_owned(),
        });
        self.start_action();
    }

    /// The message stream id from `createStream`, once known.
    pub fn stream_id(&self) -> Option<u32> {
        self.stream_id
    }

    /// Whether the server answered `NetStream.Publish.Start`.
    pub fn is_publishing(&self) -> bool {
        self.publishing
    }

    /// Queues an audio message on our stream; false if no stream exists yet.
    pub fn send_audio(&mut self, timestamp: u32, payload: &[u8]) -> bool {
        self.send_on_stream(CSID_AUDIO, msg_type::AUDIO, timestamp, payload)
    }

    /// Queues a video message on our stream; false if no stream exists yet.
    pub fn send_video(&mut self, timestamp: u32, payload: &[u8]) -> bool {
        self.send_on_stream(CSID_VIDEO, msg_type::VIDEO, timestamp, payload)
    }

    /// Queues an AMF0 data message (e.g. `@setDataFrame` + `onMetaData` +
    /// the ECMA array); false if no stream exists yet.
    pub fn send_data(&mut self, payload: &[u8]) -> bool {
        self.send_on_stream(CSID_DATA, msg_type::DATA_AMF0, 0, payload)
    }

    /// Ends a publish the way ffmpeg does: `FCUnpublish` and `deleteStream`.
    pub fn stop(&mut self) {
        let Some(stream_id) = self.stream_id else {
            return;
        };
        if let Some(Action::Publish { name, .. }) = self.action.clone() {
            self.send_command(
                CSID_COMMAND,
                0,
                "FCUnpublish",
                Pending::Other,
                &[Amf0Value::Null, Amf0Value::String(name)],
            );
        }
        self.send_command(
            CSID_COMMAND,
            0,
            "deleteStream",
            Pending::Other,
            &[Amf0Value::Null, Amf0Value::Number(f64::from(stream_id))],
        );
        self.publishing = false;
    }

    fn send_on_stream(&mut self, csid: u32, kind: u8, timestamp: u32, payload: &[u8]) -> bool {
        let Some(stream_id) = self.stream_id else {
            return false;
        };
        self.conn
            .write_message(&mut self.out, csid, kind, stream_id, timestamp, payload);
        true
    }

    fn send_command(
        &mut self,
        csid: u32,
        stream_id: u32,
        name: &str,
        pending: Pending,
        values: &[Amf0Value],
    ) {
        let transaction_id = self.next_transaction;
        self.next_transaction += 1.0;
        self.pending
            .push((transaction_id, pending, name.to_owned()));
        command::write(
            &self.conn,
            &mut self.out,
            csid,
            stream_id,
            name,
            transaction_id,
            values,
        );
    }

    fn send_connect(&mut self) {
        self.conn
            .set_chunk_size_out(self.config.chunk_size, &mut self.out);
        let string = |s: &str| Amf0Value::String(s.to_owned());
        let object = Amf0Value::Object(vec![
            (String::from("app"), string(&self.config.app)),
            (String::from("flashVer"), string(&self.config.flash_ver)),
            (String::from("tcUrl"), string(&self.config.tc_url)),
            (String::from("fpad"), Amf0Value::Boolean(false)),
            (String::from("capabilities"), Amf0Value::Number(15.0)),
            (String::from("audioCodecs"), Amf0Value::Number(4071.0)),
            (String::from("videoCodecs"), Amf0Value::Number(252.0)),
            (String::from("videoFunction"), Amf0Value::Number(1.0)),
            (String::from("objectEncoding"), Amf0Value::Number(0.0)),
        ]);
        self.send_command(CSID_COMMAND, 0, "connect", Pending::Connect, &[object]);
    }

    fn start_action(&mut self) {
        if !self.connected || self.action_started {
            return;
        }
        let Some(action) = self.action.clone() else {
            return;
        };
        self.action_started = true;
        if let Action::Publish { name, .. } = &action {
            for step in ["releaseStream", "FCPublish"] {
                self.send_command(
                    CSID_COMMAND,
                    0,
                    step,
                    Pending::Other,
                    &[Amf0Value::Null, Amf0Value::String(name.clone())],
                );
            }
        }
        self.send_command(
            CSID_COMMAND,
            0,
            "createStream",
            Pending::CreateStream,
            &[Amf0Value::Null],
        );
    }

    fn on_stream_created(&mut self, stream_id: u32) {
        self.stream_id = Some(stream_id);
        self.events
            .push_back(ClientEvent::StreamCreated { stream_id });
        match self.action.clone() {
            Some(Action::Play(name)) => {
                command::write(
                    &self.conn,
                    &mut self.out,
                    CSID_STREAM_COMMAND,
                    stream_id,
                    "play",
                    0.0,
                    &[
                        Amf0Value::Null,
                        Amf0Value::String(name),
                        Amf0Value::Number(-2.0),
                    ],
                );
                self.conn.write_user_control(
                    &UserControlEvent::SetBufferLength {
                        stream_id,
                        buffer_ms: self.config.buffer_ms,
                    },
                    &mut self.out,
                );
            }
            Some(Action::Publish { name, publish_type }) => {
                command::write(
                    &self.conn,
                    &mut self.out,
                    CSID_STREAM_COMMAND,
                    stream_id,
                    "publish",
                    0.0,
                    &[
                        Amf0Value::Null,
                        Amf0Value::String(name),
                        Amf0Value::String(publish_type),
                    ],
                );
            }
            None => {}
        }
    }

    fn handle_message(&mut self, message: Message) -> Result<(), RtmpError> {
        let stream_id = message.stream_id;
        match message.msg_type {
            msg_type::AUDIO => self.events.push_back(ClientEvent::Audio {
                stream_id,
                timestamp: message.timestamp,
                payload: message.payload,
            }),
            msg_type::VIDEO => self.events.push_back(ClientEvent::Video {
                stream_id,
                timestamp: message.timestamp,
                payload: message.payload,
            }),
            msg_type::DATA_AMF0 | msg_type::DATA_AMF3 => {
                let payload = command::amf0_body(&message);
                let mut input = &payload[..];
                let is_metadata = matches!(
                    crate::amf0::decode(&mut input),
                    Ok(Amf0Value::String(name)) if name == "onMetaData" || name == "@setDataFrame"
                );
                self.events.push_back(if is_metadata {
                    ClientEvent::Metadata { stream_id, payload }
                } else {
                    ClientEvent::Data { stream_id, payload }
                });
            }
            msg_type::COMMAND_AMF0 | msg_type::COMMAND_AMF3 => {
                let command = command::parse(&message)?;
                self.handle_command(stream_id, command);
            }
            msg_type::USER_CONTROL => match UserControlEvent::parse(&message.payload)? {
                UserControlEvent::StreamBegin(stream_id) => {
                    self.events
                        .push_back(ClientEvent::StreamBegin { stream_id });
                }
                UserControlEvent::StreamEof(stream_id) => {
                    self.events.push_back(ClientEvent::StreamEof { stream_id });
                }
                _ => {}
            },
            _ => {}
        }
        Ok(())
    }

    fn take_pending(&mut self, transaction_id: f64) -> Option<(Pending, String)> {
        let index = self
            .pending
            .iter()
            .position(|(id, _, _)| *id == transaction_id)?;
        let (_, pending, name) = self.pending.swap_remove(index);
        Some((pending, name))
    }

    fn handle_command(&mut self, stream_id: u32, command: Command) {
        match command.name.as_str() {
            "_result" => match self.take_pending(command.transaction_id) {
                Some((Pending::Connect, _)) => {
                    self.connected = true;
                    self.events.push_back(ClientEvent::Connected);
                    self.start_action();
                }
                Some((Pending::CreateStream, _)) => {
                    let id = command.number_arg(0).unwrap_or(1.0);
                    self.on_stream_created(id as u32);
                }
                _ => {}
            },
            "_error" => {
                let name = self
                    .take_pending(command.transaction_id)
                    .map(|(_, name)| name)
                    .unwrap_or_default();
                let info = command.args.first().unwrap_or(&Amf0Value::Null);
                let (_, code, description) = command::status_fields(info);
                self.events.push_back(ClientEvent::CommandFailed {
                    command: name,
                    code,
                    description,
                });
            }
            "onStatus" => {
                let info = command.args.first().unwrap_or(&Amf0Value::Null);
                let (level, code, description) = command::status_fields(info);
                if code == "NetStream.Publish.Start" {
                    self.publishing = true;
                }
                self.events.push_back(ClientEvent::Status {
                    stream_id,
                    level,
                    code,
                    description,
                });
            }
            _ => {}
        }
    }
}
