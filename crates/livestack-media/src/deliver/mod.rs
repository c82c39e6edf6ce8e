//! What leaves the media plane besides media: event callbacks (`notify`)
//! and the storage of recordings and snapshots (`storage`).
//!
//! Owns: the callback protocol and retries, local and object storage.
//! Must not: decide what to record (`process` does).

pub(crate) mod notify;
pub mod storage;
