//! AMF0 command messages: parsing incoming ones and writing replies.
//!
//! This module owns the shape of a command (`name`, transaction id, command
//! object, arguments) and the `onStatus` info object, shared by the server
//! and client sessions. It must not decide which commands to send; the
//! sessions do.

use bytes::{Bytes, BytesMut};

use crate::amf0::{self, Amf0Value};
use crate::chunk::{msg_type, ChunkConnection, Message};
use crate::error::RtmpError;

/// Version string servers report in the `connect` result (nginx-rtmp's).
pub(crate) const FMS_VERSION: &str = "FMS/3,0,1,123";
/// Capabilities reported with [`FMS_VERSION`].
pub(crate) const FMS_CAPABILITIES: f64 = 31.0;

/// A decoded command message.
#[derive(Debug)]
pub(crate) struct Command {
    pub(crate) name: String,
    pub(crate) transaction_id: f64,
    /// The first value after the transaction id (`Null` when absent).
    pub(crate) command_object: Amf0Value,
    /// The values after the command object.
    pub(crate) args: Vec<Amf0Value>,
}

impl Command {
    /// The string argument at `index`.
    pub(crate) fn str_arg(&self, index: usize) -> Option<&str> {
        self.args.get(index).and_then(Amf0Value::as_str)
    }

    /// The number argument at `index`.
    pub(crate) fn number_arg(&self, index: usize) -> Option<f64> {
        self.args.get(index).and_then(Amf0Value::as_number)
    }

    pub(crate) fn invalid(&self, reason: &'static str) -> RtmpError {
        RtmpError::InvalidCommand {
            command: self.name.clone(),
            reason,
        }
    }
}

/// The AMF0 body of a command or data message: AMF3-typed messages (17, 15)
/// start with a format byte before AMF0 values.
pub(crate) fn amf0_body(message: &Message) -> Bytes {
    match message.msg_type {
        msg_type::COMMAND_AMF3 | msg_type::DATA_AMF3 if !message.payload.is_empty() => {
            message.payload.slice(1..)
        }
        _ => message.payload.clone(),
    }
}

/// Parses a command message (type 20 or 17).
pub(crate) fn parse(message: &Message) -> Result<Command, RtmpError> {
    let body = amf0_body(message);
    let mut input = &body[..];
    let (Amf0Value::String(name) | Amf0Value::LongString(name)) = amf0::decode(&mut input)? else {
        return Err(RtmpError::InvalidCommand {
            command: String::from("(unnamed)"),
            reason: "the first value is not a command name",
        });
    };
    let transaction_id = if input.is_empty() {
        0.0
    } else {
        amf0::decode(&mut input)?.as_number().unwrap_or(0.0)
    };
    let command_object = if input.is_empty() {
        Amf0Value::Null
    } else {
        amf0::decode(&mut input)?
    };
    let args = amf0::decode_all(input)?;
    Ok(Command {
        name,
        transaction_id,
        command_object,
        args,
    })
}

/// Writes a command message.
pub(crate) fn write(
    conn: &ChunkConnection,
    out: &mut BytesMut,
    csid: u32,
    stream_id: u32,
    name: &str,
    transaction_id: f64,
    values: &[Amf0Value],
) {
    let mut payload = BytesMut::with_capacity(256);
    amf0::encode_string(name, &mut payload);
    amf0::encode_number(transaction_id, &mut payload);
    for value in values {
        amf0::encode(value, &mut payload);
    }
    conn.write_message(out, csid, msg_type::COMMAND_AMF0, stream_id, 0, &payload);
}

/// Writes an AMF0 data message made of `values`.
pub(crate) fn write_data(
    conn: &ChunkConnection,
    out: &mut BytesMut,
    csid: u32,
    stream_id: u32,
    values: &[Amf0Value],
) {
    let mut payload = BytesMut::with_capacity(128);
    for value in values {
        amf0::encode(value, &mut payload);
    }
    conn.write_message(out, csid, msg_type::DATA_AMF0, stream_id, 0, &payload);
}

/// Builds `{level, code, description}` plus optional extra properties.
pub(crate) fn status_object(
    level: &str,
    code: &str,
    description: &str,
    extra: Vec<(String, Amf0Value)>,
) -> Amf0Value {
    let mut props = vec![
        (String::from("level"), Amf0Value::String(level.to_owned())),
        (String::from("code"), Amf0Value::String(code.to_owned())),
        (
            String::from("description"),
            Amf0Value::String(description.to_owned()),
        ),
    ];
    props.extend(extra);
    Amf0Value::Object(props)
}

/// `level`, `code` and `description` of an info object, where present.
pub(crate) fn status_fields(info: &Amf0Value) -> (String, String, String) {
    let field = |key: &str| {
        info.get(key)
            .and_then(Amf0Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (field("level"), field("code"), field("description"))
}
