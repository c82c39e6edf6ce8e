//! The error type of RTMP sessions.
//!
//! This module owns [`RtmpError`], which wraps the per-layer errors
//! (handshake, chunk stream, AMF0) and adds the command-level ones. It must
//! not decide what to do about an error: a session that returns one is
//! finished, and its owner closes that connection alone.

use crate::{amf0::Amf0Error, chunk::ChunkError, handshake::HandshakeError};

/// Why a session cannot continue.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RtmpError {
    /// The handshake failed.
    #[error("RTMP handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// The chunk stream is malformed.
    #[error("RTMP chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    /// A command message is not valid AMF0.
    #[error("RTMP command: {0}")]
    Amf0(#[from] Amf0Error),
    /// A command lacks a field it needs.
    #[error("malformed RTMP {command} command: {reason}")]
    InvalidCommand {
        /// Command name.
        command: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A command other than `connect` arrived before `connect`.
    #[error("RTMP {0} command before connect")]
    NotConnected(String),
    /// The session already returned an error; it accepts no more input.
    #[error("RTMP session already failed")]
    Failed,
}
