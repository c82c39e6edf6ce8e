//! The server side of one RTMP connection, as a state machine driven by
//! bytes.
//!
//! This module owns what a server says and hears on one connection: the
//! handshake, the NetConnection and NetStream commands (`connect`,
//! `releaseStream`, `FCPublish`, `createStream`, `publish`, `play`,
//! `FCUnpublish`, `deleteStream`, `closeStream`, ...), and the replies that
//! ffmpeg, OBS/librtmp and Flash-era players expect, following nginx-rtmp
//! and SRS. It turns everything else into [`SessionEvent`]s.
//!
//! It must not do I/O, keep time, or decide policy: whether a stream may be
//! published or played is the caller's answer ([`ServerSession::accept_publish`]
//! and friends), and media fan-out to players bypasses the session entirely
//! (see [`crate::chunk::encode_message_fmt0`]).

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::amf0::{self, Amf0Value};
use crate::chunk::control::LIMIT_TYPE_DYNAMIC;
use crate::chunk::{
    msg_type, ChunkConnection, Message, UserControlEvent, CSID_COMMAND, CSID_DATA,
    CSID_STREAM_COMMAND,
};
use crate::command::{self, Command};
use crate::error::RtmpError;
use crate::handshake::{HandshakeKind, ServerHandshake};

/// Settings a [`ServerSession`] announces to its peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Chunk size for everything we send (announced right after `connect`).
    /// Fan-out bytes must be encoded with the same value.
    pub chunk_size: u32,
    /// Window Acknowledgement Size we ask the client to honour.
    pub window_ack_size: u32,
    /// Set Peer Bandwidth we send (dynamic limit).
    pub peer_bandwidth: u32,
}

impl Default for ServerConfig {
    /// 60000-byte chunks (as SRS uses) and 2.5 MB windows.
    fn default() -> Self {
        ServerConfig {
            chunk_size: 60_000,
            window_ack_size: 2_500_000,
            peer_bandwidth: 2_500_000,
        }
    }
}

/// Something the caller of a [`ServerSession`] should know or act on.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// The client connected to `app`; already answered with
    /// `NetConnection.Connect.Success`.
    Connect {
        /// Application name, as sent (it may carry a `?query`).
        app: String,
        /// The `tcUrl` property, if present.
        tc_url: Option<String>,
        /// Every property of the command object, in order.
        command_object: Vec<(String, Amf0Value)>,
    },
    /// The client wants to publish; answer with
    /// [`ServerSession::accept_publish`] or [`ServerSession::reject_publish`].
    Publish {
        /// Message stream id the publish arrived on.
        stream_id: u32,
        /// Stream name as sent, including any `?query`.
        name: String,
        /// `live`, `record` or `append` (`live` when absent).
        publish_type: String,
    },
    /// The client wants to play; answer with [`ServerSession::accept_play`]
    /// or [`ServerSession::reject_play`].
    Play {
        /// Message stream id the play arrived on.
        stream_id: u32,
        /// Stream name as sent, including any `?query`.
        name: String,
        /// Start argument (-2: live or recorded, -1: live only, >= 0: seconds).
        start: f64,
        /// Duration argument (-1: until the end).
        duration: f64,
        /// Whether to flush previous playlists (default true).
        reset: bool,
    },
    /// An audio message (an FLV audio tag body).
    Audio {
        /// Message stream id.
        stream_id: u32,
        /// Absolute timestamp in milliseconds.
        timestamp: u32,
        /// Tag body.
        payload: Bytes,
    },
    /// A video message (an FLV video tag body).
    Video {
        /// Message stream id.
        stream_id: u32,
        /// Absolute timestamp in milliseconds.
        timestamp: u32,
        /// Tag body.
        payload: Bytes,
    },
    /// Stream metadata: an AMF0 data message starting with `@setDataFrame`
    /// or `onMetaData`, as received (AMF3-typed messages lose their leading
    /// format byte). [`strip_set_data_frame`] makes it ready for players.
    Metadata {
        /// Message stream id.
        stream_id: u32,
        /// AMF0 data message body.
        payload: Bytes,
    },
    /// Any other data message (`onTextData`, `onCuePoint`, ...).
    Data {
        /// Message stream id.
        stream_id: u32,
        /// Absolute timestamp in milliseconds.
        timestamp: u32,
        /// AMF0 data message body.
        payload: Bytes,
    },
    /// `FCUnpublish`: the encoder is about to stop publishing `name`.
    Unpublish {
        /// Stream name from the command (may be empty).
        name: String,
    },
    /// `closeStream` on a message stream.
    CloseStream {
        /// Message stream id.
        stream_id: u32,
    },
    /// `deleteStream`: the message stream is gone (publish or play ended).
    /// Clients may also just close the connection, so treat end of input as
    /// the end of every stream on it too.
    DeleteStream {
        /// The deleted message stream id.
        stream_id: u32,
    },
    /// `pause` from a player.
    Pause {
        /// Message stream id.
        stream_id: u32,
        /// True to pause, false to resume.
        pause: bool,
        /// Playhead position in milliseconds.
        position_ms: f64,
    },
    /// The player's buffer length (User Control SetBufferLength).
    SetBufferLength {
        /// Message stream id.
        stream_id: u32,
        /// Buffer length in milliseconds.
        buffer_ms: u32,
    },
}

/// What we remember about a message stream the client has used.
struct StreamRecord {
    stream_id: u32,
    name: String,
    /// The client sent `FCPublish` for this name (it then expects
    /// `onFCPublish`).
    fc_publish: bool,
    reset: bool,
}

/// Server side of one RTMP connection.
///
/// Call [`feed`](Self::feed) with bytes read from the socket, then drain
/// [`poll_event`](Self::poll_event) and write out
/// [`take_output`](Self::take_output). Media for players is not written by
/// the session: encode it once with [`crate::chunk::encode_message_fmt0`]
/// using [`media_stream_id`](Self::media_stream_id) and
/// [`chunk_size_out`](Self::chunk_size_out), and interleave those bytes with
/// the session's output at message boundaries (that is, whole `Bytes` at a
/// time).
pub struct ServerSession {
    config: ServerConfig,
    handshake: Option<ServerHandshake>,
    handshake_kind: Option<HandshakeKind>,
    conn: ChunkConnection,
    input: BytesMut,
    out: BytesMut,
    events: VecDeque<SessionEvent>,
    connected: bool,
    next_stream_id: u32,
    streams: Vec<StreamRecord>,
    /// Names sent with `FCPublish` before `publish`.
    fc_published: Vec<String>,
    play_stream_id: Option<u32>,
    failed: bool,
}

/// At most this many streams are remembered per connection; a client
/// creating more is either broken or hostile.
const MAX_STREAMS: usize = 64;

impl ServerSession {
    /// A session waiting for the client's C0.
    pub fn new(config: ServerConfig) -> Self {
        ServerSession {
            config,
            handshake: Some(ServerHandshake::new()),
            handshake_kind: None,
            conn: ChunkConnection::new(),
            input: BytesMut::new(),
            out: BytesMut::new(),
            events: VecDeque::new(),
            connected: false,
            next_stream_id: 1,
            streams: Vec::new(),
            fc_published: Vec::new(),
            play_stream_id: None,
            failed: false,
        }
    }

    /// Caps what the client can make this session hold: the longest
    /// message and the bytes of partial messages. A server keeps these
    /// small until the client is authorized (a connection that has not
    /// published or played needs only a few small commands).
    pub fn set_input_limits(&mut self, max_message_len: u32, max_buffered: usize) {
        let decoder = self.conn.decoder_mut();
        decoder.set_max_message_len(max_message_len);
        decoder.set_max_buffered(max_buffered);
    }

    /// Draws the bytes of this session's partial messages from `budget`,
    /// shared with other sessions (see [`crate::chunk::SharedBudget`]).
    pub fn set_shared_budget(&mut self, budget: std::sync::Arc<crate::chunk::SharedBudget>) {
        self.conn.decoder_mut().set_shared_budget(budget);
    }

    /// Processes bytes received from the client. An error means the
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
            self.handshake_kind = handshake.kind();
            self.handshake = None;
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
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
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

    /// The handshake variant the client used, once known.
    pub fn handshake_kind(&self) -> Option<HandshakeKind> {
        self.handshake_kind
    }

    /// The message stream id players receive media on: the one `play` was
    /// accepted on, or 1 before that.
    pub fn media_stream_id(&self) -> u32 {
        self.play_stream_id.unwrap_or(1)
    }

    /// The chunk size of everything this session (and fan-out for it)
    /// writes, once `connect` has been answered.
    pub fn chunk_size_out(&self) -> u32 {
        self.conn.chunk_size_out()
    }

    /// Answers a [`SessionEvent::Publish`] with `NetStream.Publish.Start`
    /// (preceded by `onFCPublish` for encoders that sent `FCPublish`).
    pub fn accept_publish(&mut self, stream_id: u32) {
        let (name, fc_publish) = match self.stream(stream_id) {
            Some(record) => (record.name.clone(), record.fc_publish),
            None => (String::new(), false),
        };
        if fc_publish {
            let info = command::status_object(
                "status",
                "NetStream.Publish.Start",
                "Started publishing stream.",
                Vec::new(),
            );
            command::write(
                &self.conn,
                &mut self.out,
                CSID_STREAM_COMMAND,
                stream_id,
                "onFCPublish",
                0.0,
                &[Amf0Value::Null, info],
            );
        }
        self.write_status(
            stream_id,
            "status",
            "NetStream.Publish.Start",
            &format!("{name} is now published."),
            Some(&name),
        );
    }

    /// Answers a [`SessionEvent::Publish`] with an error status such as
    /// `NetStream.Publish.BadName`; the caller should then close.
    pub fn reject_publish(&mut self, stream_id: u32, code: &str, description: &str) {
        self.write_status(stream_id, "error", code, description, None);
    }

    /// Answers a [`SessionEvent::Play`]: StreamBegin, `NetStream.Play.Reset`
    /// (when the player asked for a reset), `NetStream.Play.Start`,
    /// `|RtmpSampleAccess` and `NetStream.Data.Start`, as SRS does. The chunk
    /// size was already set when `connect` was answered; media may follow
    /// immediately.
    pub fn accept_play(&mut self, stream_id: u32) {
        let (name, reset) = match self.stream(stream_id) {
            Some(record) => (record.name.clone(), record.reset),
            None => (String::new(), true),
        };
        self.play_stream_id = Some(stream_id);
        self.conn
            .write_user_control(&UserControlEvent::StreamBegin(stream_id), &mut self.out);
        if reset {
            self.write_status(
                stream_id,
                "status",
                "NetStream.Play.Reset",
                &format!("Playing and resetting {name}."),
                Some(&name),
            );
        }
        self.write_status(
            stream_id,
            "status",
            "NetStream.Play.Start",
            &format!("Started playing {name}."),
            Some(&name),
        );
        command::write_data(
            &self.conn,
            &mut self.out,
            CSID_DATA,
            stream_id,
            &[
                Amf0Value::String(String::from("|RtmpSampleAccess")),
                Amf0Value::Boolean(true),
                Amf0Value::Boolean(true),
            ],
        );
        command::write_data(
            &self.conn,
            &mut self.out,
            CSID_DATA,
            stream_id,
            &[
                Amf0Value::String(String::from("onStatus")),
                Amf0Value::Object(vec![(
                    String::from("code"),
                    Amf0Value::String(String::from("NetStream.Data.Start")),
                )]),
            ],
        );
    }

    /// Answers a [`SessionEvent::Play`] with an error status such as
    /// `NetStream.Play.StreamNotFound`.
    pub fn reject_play(&mut self, stream_id: u32, code: &str, description: &str) {
        self.write_status(stream_id, "error", code, description, None);
    }

    /// Sends any `onStatus` (for example `NetStream.Play.UnpublishNotify`
    /// when a player's publisher goes away).
    pub fn send_status(&mut self, stream_id: u32, level: &str, code: &str, description: &str) {
        self.write_status(stream_id, level, code, description, None);
    }

    /// Sends a User Control event (StreamEof, PingRequest, ...).
    pub fn send_user_control(&mut self, event: &UserControlEvent) {
        self.conn.write_user_control(event, &mut self.out);
    }

    fn write_status(
        &mut self,
        stream_id: u32,
        level: &str,
        code: &str,
        description: &str,
        details: Option<&str>,
    ) {
        let mut extra = Vec::new();
        if let Some(details) = details {
            extra.push((
                String::from("details"),
                Amf0Value::String(details.to_owned()),
            ));
        }
        extra.push((
            String::from("clientid"),
            Amf0Value::String(String::from("livestack")),
        ));
        let info = command::status_object(level, code, description, extra);
        command::write(
            &self.conn,
            &mut self.out,
            CSID_STREAM_COMMAND,
            stream_id,
            "onStatus",
            0.0,
            &[Amf0Value::Null, info],
        );
    }

    fn stream(&self, stream_id: u32) -> Option<&StreamRecord> {
        self.streams.iter().find(|s| s.stream_id == stream_id)
    }

    fn remember_stream(&mut self, record: StreamRecord) {
        self.streams.retain(|s| s.stream_id != record.stream_id);
        if self.streams.len() >= MAX_STREAMS {
            self.streams.remove(0);
        }
        self.streams.push(record);
    }

    fn handle_message(&mut self, message: Message) -> Result<(), RtmpError> {
        match message.msg_type {
            msg_type::AUDIO => self.events.push_back(SessionEvent::Audio {
                stream_id: message.stream_id,
                timestamp: message.timestamp,
                payload: message.payload,
            }),
            msg_type::VIDEO => self.events.push_back(SessionEvent::Video {
                stream_id: message.stream_id,
                timestamp: message.timestamp,
                payload: message.payload,
            }),
            msg_type::DATA_AMF0 | msg_type::DATA_AMF3 => self.handle_data(&message),
            msg_type::COMMAND_AMF0 | msg_type::COMMAND_AMF3 => {
                let command = command::parse(&message)?;
                self.handle_command(&message, command)?;
            }
            msg_type::USER_CONTROL => {
                if let UserControlEvent::SetBufferLength {
                    stream_id,
                    buffer_ms,
                } = UserControlEvent::parse(&message.payload)?
                {
                    self.events.push_back(SessionEvent::SetBufferLength {
                        stream_id,
                        buffer_ms,
                    });
                }
            }
            // Shared objects and aggregates are not used by encoders that
            // publish to us; ignore them like nginx-rtmp does.
            _ => {}
        }
        Ok(())
    }

    fn handle_data(&mut self, message: &Message) {
        let payload = command::amf0_body(message);
        if is_metadata(&payload) {
            self.events.push_back(SessionEvent::Metadata {
                stream_id: message.stream_id,
                payload,
            });
        } else {
            self.events.push_back(SessionEvent::Data {
                stream_id: message.stream_id,
                timestamp: message.timestamp,
                payload,
            });
        }
    }

    fn reply_result(&mut self, transaction_id: f64, values: &[Amf0Value]) {
        // Transaction id 0 means "no reply expected".
        if transaction_id != 0.0 {
            command::write(
                &self.conn,
                &mut self.out,
                CSID_COMMAND,
                0,
                "_result",
                transaction_id,
                values,
            );
        }
    }

    fn handle_command(&mut self, message: &Message, command: Command) -> Result<(), RtmpError> {
        if !self.connected && command.name != "connect" {
            return Err(RtmpError::NotConnected(command.name));
        }
        let stream_id = message.stream_id;
        match command.name.as_str() {
            "connect" => self.handle_connect(command)?,
            "releaseStream" | "FCPublish" => {
                if command.name == "FCPublish" {
                    if let Some(name) = command.str_arg(0) {
                        if self.fc_published.len() < MAX_STREAMS {
                            self.fc_published.push(name.to_owned());
                        }
                    }
                }
                self.reply_result(
                    command.transaction_id,
                    &[Amf0Value::Null, Amf0Value::Undefined],
                );
            }
            "createStream" => {
                let id = self.next_stream_id;
                self.next_stream_id = self.next_stream_id.saturating_add(1);
                self.reply_result(
                    command.transaction_id,
                    &[Amf0Value::Null, Amf0Value::Number(f64::from(id))],
                );
            }
            "publish" => {
                let name = command
                    .str_arg(0)
                    .ok_or_else(|| command.invalid("missing stream name"))?
                    .to_owned();
                let publish_type = command.str_arg(1).unwrap_or("live").to_owned();
                let fc_publish = self.fc_published.contains(&name);
                self.remember_stream(StreamRecord {
                    stream_id,
                    name: name.clone(),
                    fc_publish,
                    reset: false,
                });
                self.events.push_back(SessionEvent::Publish {
                    stream_id,
                    name,
                    publish_type,
                });
            }
            "play" => {
                let name = command
                    .str_arg(0)
                    .ok_or_else(|| command.invalid("missing stream name"))?
                    .to_owned();
                let start = command.number_arg(1).unwrap_or(-2.0);
                let duration = command.number_arg(2).unwrap_or(-1.0);
                let reset = command
                    .args
                    .get(3)
                    .and_then(Amf0Value::as_bool)
                    .unwrap_or(true);
                self.remember_stream(StreamRecord {
                    stream_id,
                    name: name.clone(),
                    fc_publish: false,
                    reset,
                });
                self.events.push_back(SessionEvent::Play {
                    stream_id,
                    name,
                    start,
                    duration,
                    reset,
                });
            }
            "FCUnpublish" => {
                // Deliberately unanswered (as nginx-rtmp does): ffmpeg closes
                // right after `deleteStream`, and a reply still unread in its
                // socket turns that close into a reset that can drop the
                // `deleteStream` it had just queued.
                let name = command.str_arg(0).unwrap_or_default().to_owned();
                self.events.push_back(SessionEvent::Unpublish { name });
            }
            "deleteStream" => {
                // NaN and negatives saturate to 0; bigger values to u32::MAX.
                let deleted = command.number_arg(0).unwrap_or(f64::from(stream_id)) as u32;
                self.streams.retain(|s| s.stream_id != deleted);
                self.events
                    .push_back(SessionEvent::DeleteStream { stream_id: deleted });
            }
            "closeStream" => self
                .events
                .push_back(SessionEvent::CloseStream { stream_id }),
            "pause" => {
                let pause = command
                    .args
                    .first()
                    .and_then(Amf0Value::as_bool)
                    .unwrap_or(true);
                let position_ms = command.number_arg(1).unwrap_or(0.0);
                self.events.push_back(SessionEvent::Pause {
                    stream_id,
                    pause,
                    position_ms,
                });
            }
            // Sent by ffmpeg and Flash players; nginx-rtmp and SRS leave them
            // unanswered, and an `_error` would make ffmpeg abort on some.
            "getStreamLength" | "_checkbw" | "FCSubscribe" | "FCUnsubscribe" | "receiveAudio"
            | "receiveVideo" | "seek" | "_result" | "_error" | "onStatus" | "onBWDone"
            | "_onbwcheck" | "_onbwdone" => {}
            _ => {
                if command.transaction_id != 0.0 {
                    let info = command::status_object(
                        "error",
                        "NetConnection.Call.Failed",
                        &format!("Method not found ({}).", command.name),
                        Vec::new(),
                    );
                    command::write(
                        &self.conn,
                        &mut self.out,
                        CSID_COMMAND,
                        0,
                        "_error",
                        command.transaction_id,
                        &[Amf0Value::Null, info],
                    );
                }
            }
        }
        Ok(())
    }

    fn handle_connect(&mut self, command: Command) -> Result<(), RtmpError> {
        if self.connected {
            return Err(command.invalid("connect sent twice"));
        }
        let Some(properties) = command.command_object.as_properties() else {
            return Err(command.invalid("missing command object"));
        };
        let app = command
            .command_object
            .get("app")
            .and_then(Amf0Value::as_str)
            .ok_or_else(|| command.invalid("missing app"))?
            .to_owned();
        let tc_url = command
            .command_object
            .get("tcUrl")
            .and_then(Amf0Value::as_str)
            .map(str::to_owned);
        let object_encoding = command
            .command_object
            .get("objectEncoding")
            .and_then(Amf0Value::as_number)
            .unwrap_or(0.0);
        let properties = properties.to_vec();

        self.conn
            .set_window_ack_size(self.config.window_ack_size, &mut self.out);
        self.conn.set_peer_bandwidth(
            self.config.peer_bandwidth,
            LIMIT_TYPE_DYNAMIC,
            &mut self.out,
        );
        self.conn
            .set_chunk_size_out(self.config.chunk_size, &mut self.out);
        let server_properties = Amf0Value::Object(vec![
            (
                String::from("fmsVer"),
                Amf0Value::String(String::from(command::FMS_VERSION)),
            ),
            (
                String::from("capabilities"),
                Amf0Value::Number(command::FMS_CAPABILITIES),
            ),
        ]);
        let info = command::status_object(
            "status",
            "NetConnection.Connect.Success",
            "Connection succeeded.",
            vec![(
                String::from("objectEncoding"),
                Amf0Value::Number(object_encoding),
            )],
        );
        // `connect` always expects a reply, even with transaction id 0.
        let transaction_id = if command.transaction_id == 0.0 {
            1.0
        } else {
            command.transaction_id
        };
        command::write(
            &self.conn,
            &mut self.out,
            CSID_COMMAND,
            0,
            "_result",
            transaction_id,
            &[server_properties, info],
        );
        self.connected = true;
        self.events.push_back(SessionEvent::Connect {
            app,
            tc_url,
            command_object: properties,
        });
        Ok(())
    }
}

/// Whether an AMF0 data message body is stream metadata.
fn is_metadata(payload: &[u8]) -> bool {
    let mut input = payload;
    matches!(
        amf0::decode(&mut input),
        Ok(Amf0Value::String(name)) if name == "@setDataFrame" || name == "onMetaData"
    )
}

/// Makes a [`SessionEvent::Metadata`] payload fit for players: drops a
/// leading `@setDataFrame` string so the message starts with `onMetaData`.
/// Returns a slice of the same buffer (no copy); other payloads are returned
/// unchanged.
pub fn strip_set_data_frame(payload: &Bytes) -> Bytes {
    let mut input = &payload[..];
    match amf0::decode(&mut input) {
        Ok(Amf0Value::String(name)) if name == "@setDataFrame" => {
            payload.slice(payload.len() - input.len()..)
        }
        _ => payload.clone(),
    }
}

#[cfg(test)]
mod tests;
