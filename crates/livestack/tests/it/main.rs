//! Whole-app tests: the real `livestack` binary on 127.0.0.1 port 0, called
//! through the official Tencent Cloud clients (Python SDK, tccli, Node SDK)
//! and, where no client can send the request, through raw HTTP.
//!
//! `scripts/test` installs the clients before running these.

// Test helpers are `pub` for the sibling modules; the binary exports nothing.
#![allow(unreachable_pub)]

pub(crate) mod access;
mod access_clients;
pub(crate) mod backup_streams;
mod browser;
pub(crate) mod callbacks;
mod certs;
mod clients;
mod cluster;
mod console;
mod domain_owner;
mod domains;
mod errors;
mod fetch;
mod harness;
mod limits;
pub(crate) mod llhls;
mod media;
mod metrics;
pub(crate) mod mix;
mod operations;
mod parity;
mod policy;
pub(crate) mod processing;
pub(crate) mod recording;
pub(crate) mod relay_tasks;
mod rtmps;
mod srt;
mod stats;
mod task_processing;
mod tasks;
pub(crate) mod templates;
mod timeshift;
mod webrtc;
