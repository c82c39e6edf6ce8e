//! Action handlers, one module per resource family, one function per action.
//!
//! A handler converts its typed request into domain values (choosing the
//! Tencent code for each invalid value), calls the store, and builds the
//! typed response. Handlers must not spawn tasks, open media sockets or
//! talk to the client directly.
//!
//! Family modules never import each other: what two families share lives
//! in [`check`] (validators) or [`processing`] (the create/modify/delete/
//! describe flows of the five template families), and ids and settings
//! in the crate's `ids` and `settings` modules.

pub mod backup;
pub mod callback;
pub mod cam;
pub mod cert;
pub mod check;
pub mod domain;
pub mod mix;
pub mod owner;
pub mod processing;
pub mod pull;
pub mod record;
pub mod snapshot;
pub mod stats;
pub mod stream;
pub mod sts;
pub mod task;
pub mod timeshift;
pub mod transcode;
pub mod usage;
pub mod watermark;
