//! Sans-IO RTMP for livestack's media plane: AMF0, the handshake, chunk
//! streams, and server and client sessions driven by bytes.
//!
//! This crate owns the RTMP wire protocol. It must not open sockets, spawn
//! tasks, read clocks or decide policy (who may publish or play): callers
//! feed it bytes, write out the bytes it returns, and act on its events.
//! That keeps it fuzzable and lets one encoded media message be shared by
//! every player (see [`chunk::encode_message_fmt0`]).
//!
//! Layers, bottom up: [`amf0`] values; [`handshake`]; [`chunk`] framing and
//! protocol control; [`session`] (server) and [`client`] state machines.
#![warn(missing_docs)]

pub mod amf0;
pub mod chunk;
pub mod client;
mod command;
pub mod error;
pub mod handshake;
pub mod session;

pub use amf0::Amf0Value;
pub use chunk::{encode_message_fmt0, ChunkHeaders, ChunkParts, Message};
pub use client::{ClientConfig, ClientEvent, ClientSession};
pub use error::RtmpError;
pub use session::{strip_set_data_frame, ServerConfig, ServerSession, SessionEvent};
