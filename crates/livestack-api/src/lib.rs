//! livestack's control plane: the Tencent Cloud Live API 3.0 gateway and
//! its action handlers.
//!
//! Owns: the wire protocol (signatures, envelope, error codes), parameter
//! checking against the generated model, and the handlers. Must not: spawn
//! processes, open media sockets, or hold a database connection across an
//! `.await` (the store runs queries on its blocking pool).
//!
//! Entry point: [`Gateway::router`], served by the `livestack` binary.

pub mod access;
pub mod actions;
pub mod auth;
pub mod console;
pub mod coverage;
pub mod cx;
pub mod dispatch;
pub mod error;
pub mod events;
pub mod gateway;
mod ids;
pub mod metrics;
mod params;
pub mod policy;
pub mod propagation;
pub mod ratelimit;
pub mod settings;
pub mod time;

pub use access::Enforce;
pub use gateway::{ApiSettings, Gateway, DEFAULT_REGIONS, VERSION};
pub use policy::PolicyPublisher;
pub use settings::{OwnerVerification, TaskLimits};
