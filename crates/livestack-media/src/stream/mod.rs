//! Live streams: the registry of pushes, each push's hub (GOP cache and
//! fan-out), the per-player output loop, the measurements, and the
//! time-shift segments kept on disk.
//!
//! Owns: frames from the moment a publisher hands them over until they
//! are written to a player. Must not: accept connections or authorize
//! anyone (`serve` does).

pub mod hub;
pub(crate) mod live;
pub mod output;
pub(crate) mod plays;
pub(crate) mod registry;
pub mod stats;
pub(crate) mod timeshift;
