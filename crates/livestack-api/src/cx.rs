//! What a handler runs with: the caller, the shared services, and the
//! commit point of a dry run.
//!
//! Owns: [`Cx`]. Must not: know any action.

use std::sync::Arc;

use livestack_core::media::MediaControl;
use livestack_core::AccountId;
use livestack_store::Store;

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::policy::PolicyPublisher;

/// What a handler gets besides its request: the caller and shared services.
#[derive(Clone)]
pub struct Cx {
    /// The database.
    pub store: Store,
    /// The media plane, for live-stream questions and orders.
    pub media: Arc<dyn MediaControl>,
    /// Publishes configuration changes to the media plane.
    pub policy: Arc<PolicyPublisher>,
    /// The calling account; every query a handler makes is scoped by it.
    pub account: AccountId,
    /// The request's id, for log lines.
    pub request_id: Arc<str>,
    /// `DryRun=true`: check everything, change nothing.
    pub dry_run: bool,
    /// The server clock at the start of the request (Unix seconds).
    pub now: i64,
    /// Server-side fetches of user-given URLs (watermark pictures), which
    /// never reach an address the operator did not allow.
    pub fetch: livestack_net::Fetcher,
    /// The limits of legacy recording tasks.
    pub task_limits: crate::settings::TaskLimits,
    /// How domain ownership is checked, and when it is required.
    pub owner: Arc<crate::settings::OwnerVerification>,
    /// This node's name (whose streams the local media plane holds).
    pub node: Arc<str>,
    /// Who is calling: the root account or one of its sub-accounts, and
    /// with which key.
    pub caller: Arc<crate::access::Caller>,
    /// The request's region, if it named one.
    pub region: Option<Arc<str>>,
}

impl Cx {
    /// Puts a configuration change in force on the media plane (call after
    /// the store write, before answering).
    pub async fn publish_policy(&self) -> ApiResult<()> {
        self.policy.changed().await.map_err(ApiError::from)
    }

    /// Marks the point where a handler starts changing state. A dry run
    /// stops here with `DryRunOperation`: everything before it was checked,
    /// nothing after it happens.
    pub fn commit_point(&self) -> ApiResult<()> {
        if self.dry_run {
            Err(ApiError::bare(ErrorCode::DryRunOperation))
        } else {
            Ok(())
        }
    }
}
