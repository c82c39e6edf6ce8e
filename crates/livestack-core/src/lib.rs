//! The contract between livestack's control plane and media plane.
//!
//! Owns: plain domain types that both planes speak (account ids, domain
//! kinds). Must not: know Tencent wire names, touch sockets, files or the
//! database. Every other crate may depend on this one; this one depends on
//! nothing of ours, so it stays small and cheap to compile.

pub mod buckets;
pub mod cam;
pub mod clock;
pub mod limits;
pub mod media;
pub mod mix;
pub mod naming;
pub mod netpolicy;
pub mod pull;
pub mod rules;
pub mod tasks;
pub mod urlsign;

use std::fmt;

pub use clock::Clock;

/// The numeric id of an account: the owner of every resource.
///
/// Every store query for a resource is scoped by one, which is how tenancy
/// is enforced: a handler can only ever ask for its caller's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(pub i64);

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Whether a live domain receives pushes or serves players.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DomainKind {
    /// Publishers push to it (`DomainType` 0 on the wire).
    Push,
    /// Players pull from it (`DomainType` 1 on the wire).
    Play,
}
