//! Where clients come in: the RTMP port (push and play) and RTMPS, the
//! SRT port (push), the HTTP port (HTTP-FLV, HLS, `/records/`) and HTTPS
//! by SNI, with push and play authorization against the policy
//! (`access`), one push path and one play decision for every protocol
//! (`ingest`, `playback`); and edge
//! relays, which
//! pull a stream pushed to another node of a cluster for players here
//! (`relay`).
//!
//! Owns: listeners, connection tasks and protocol handling up to the point
//! where a push is registered or a player attached. Must not: fan out
//! frames (`stream` does) or run jobs (`process` does).

pub(crate) mod access;
pub(crate) mod http;
pub(crate) mod ingest;
pub(crate) mod playback;
pub(crate) mod ranges;
pub(crate) mod relay;
pub(crate) mod rtmp;
pub(crate) mod srt;
pub(crate) mod tls;
pub(crate) mod webrtc;
