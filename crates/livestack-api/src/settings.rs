//! Settings of the API that an operator chooses.
//!
//! Owns: [`TaskLimits`], the per-account limits of legacy recording
//! tasks and of relay tasks, and [`OwnerVerification`], how domain
//! ownership is checked. Must not: read files or the environment (the binary does).

/// How long fetching a watermark picture may take, connection to last byte.
pub const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Legacy tasks an account may create in one Beijing day, by default.
pub const LEGACY_PER_DAY: u64 = 4000;
/// Legacy tasks of an account that may run at once, by default.
pub const LEGACY_AT_ONCE: u64 = 400;

/// Relay tasks an account may hold, by default (CSS's documented 200).
pub const PULL_TASKS: u64 = 200;

/// The limits of legacy `CreateLiveRecord` tasks. CSS raises them on
/// request ("有超出此限制的需要提工单申请"), so an operator may set them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskLimits {
    /// Tasks an account may create in one Beijing day (deleted ones not
    /// counted): `LimitExceeded.MaximumTask` beyond.
    pub legacy_per_day: u64,
    /// Tasks of an account that may run at once:
    /// `LimitExceeded.MaximumRunningTask` beyond.
    pub legacy_running: u64,
    /// Relay (pull-stream) tasks an account may hold:
    /// `InvalidParameter.TaskNumMoreThanLimit` beyond.
    pub pull_tasks: u64,
}

impl Default for TaskLimits {
    /// The documented limits: 4000 a day, 400 at once.
    fn default() -> Self {
        TaskLimits {
            legacy_per_day: LEGACY_PER_DAY,
            legacy_running: LEGACY_AT_ONCE,
            pull_tasks: PULL_TASKS,
        }
    }
}

/// How `AuthenticateDomainOwner` checks that an account controls a
/// domain, and when `AddLiveDomain` requires it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerVerification {
    /// `AddLiveDomain` refuses a domain whose main domain another account
    /// already has a domain under, until this account has verified it
    /// (`FailedOperation.DomainNeedVerifyOwner`), as CSS does. Off by
    /// default: a platform of one tenant has no one to keep out.
    pub required: bool,
    /// The name server TXT records are asked of; `None`: the system's.
    pub dns_server: Option<std::net::SocketAddr>,
    /// The TXT record's name, `{domain}` standing for the main domain.
    pub txt_name: String,
    /// The verification file's URL, `{domain}` standing for the domain
    /// verified.
    pub file_url: String,
}

impl Default for OwnerVerification {
    /// CSS's record (`_cssauth` TXT) and file (`cssauth.html` at the
    /// root), not required.
    fn default() -> Self {
        OwnerVerification {
            required: false,
            dns_server: None,
            txt_name: "_cssauth.{domain}".to_owned(),
            file_url: "http://{domain}/cssauth.html".to_owned(),
        }
    }
}
