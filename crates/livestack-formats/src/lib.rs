//! Media containers and codec headers for livestack's media plane.
//!
//! Owns: the byte formats between an RTMP publisher and the players: FLV
//! tags ([`flv`]), H.264/H.265/AAC decoder configuration ([`avc`],
//! [`hevc`], [`aac`]), Annex-B conversion ([`annexb`]), the MPEG-TS muxer
//! ([`ts`]), its demuxer ([`ts_demux`]) HLS segmenting and playlists ([`hls`]), and LL-HLS with fMP4 parts
//! ([`fmp4`], [`llhls`]), and plain MP4 from fragments ([`mp4`]).
//! Must not: do I/O, depend on tokio or any runtime, know about streams,
//! sessions or configuration beyond plain parameters, or panic on any input
//! (every parser returns a typed error; the fuzz targets in `fuzz/` check it).
//!
//! Everything is sans-IO: callers push bytes in and get `Bytes` out, so the
//! same code serves the server, recording tools, tests and fuzzers. Per-frame
//! paths write into caller-provided buffers and size their output first, so
//! they make at most one allocation per output.

#![warn(missing_docs)]

/// The `bytes` crate, re-exported so callers name the version this crate uses.
pub use bytes;

pub mod aac;
pub mod annexb;
pub mod avc;
mod bits;
pub mod flv;
pub mod fmp4;
pub mod hevc;
pub mod hls;
pub mod llhls;
pub mod mp4;
pub mod stun;
pub mod ts;
pub mod ts_demux;

/// The video codecs the Annex-B converter, the TS muxer and HLS handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// H.264 / AVC.
    H264,
    /// H.265 / HEVC.
    H265,
}
