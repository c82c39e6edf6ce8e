//! What leaves the media plane besides media: event callbacks (`notify`),
//! the storage of recordings and snapshots (`storage`) and the hourly
//! access logs (`access_log`).
//!
//! Owns: the callback protocol and retries, local and object storage.
//! Must not: decide what to record (`process` does).

pub(crate) mod access_log;
pub(crate) mod notify;
pub mod storage;
