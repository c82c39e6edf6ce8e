//! Per-account, per-action request rate limits, as CSS enforces them.
//!
//! Owns: the documented default limit of each action and a one-second
//! fixed-window counter per (account, action). Must not: sleep or queue; a
//! request over the limit is refused at once with `RequestLimitExceeded`,
//! which the SDKs' opt-in retryers understand.

use std::collections::HashMap;
use std::sync::Mutex;

use livestack_core::AccountId;

/// Requests per second for an action whose page documents no limit.
pub const DEFAULT_LIMIT: u32 = 20;

/// The documented default limit of `action` (each action's API page, for
/// example <https://www.tencentcloud.com/document/api/267/37303>).
pub fn documented_limit(action: &str) -> u32 {
    match action {
        "DescribeLiveStreamPushInfoList"
        | "DescribeLiveRecordRules"
        | "DescribeLiveRecordTemplates"
        | "DescribeLiveCallbackRules"
        | "DescribeLiveWatermark"
        | "DescribeLivePushAuthKey"
        | "CreateLiveRecord" => 500,
        "DescribeLiveStreamState" | "DescribeLiveStreamPublishedList" => 300,
        "ForbidLiveStream"
        | "CreateLiveTranscodeTemplate"
        | "CreateLiveTranscodeRule"
        | "CreateLiveRecordTemplate"
        | "CreateLiveRecordRule"
        | "CreateLiveCallbackTemplate"
        | "CreateLiveCallbackRule"
        | "ModifyLivePushAuthKey"
        | "DeleteLiveRecord"
        | "AddDelayLiveStream"
        | "ResumeDelayLiveStream"
        | "CreateCommonMixStream" => 200,
        "AddLiveDomain"
        | "EnableLiveDomain"
        | "DropLiveStream"
        | "DescribeLiveStreamOnlineList"
        | "AddLiveWatermark"
        | "ModifyLivePlayAuthKey"
        | "DescribeScreenShotSheetNumList" => 100,
        "DescribeLivePullStreamTasks" => 30,
        // STS (https://cloud.tencent.com/document/api/1312/48195).
        "GetFederationToken" => 600,
        _ => DEFAULT_LIMIT,
    }
}

/// A refused request: how many were made this second, and the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exceeded {
    /// Requests counted in the current second, this one included.
    pub count: u32,
    /// The limit that applies.
    pub limit: u32,
}

/// A window: which Unix second it counts, and how many requests so far.
type Window = (i64, u32);

/// Fixed one-second windows per (account, action).
pub struct RateLimiter {
    /// `Some(n)`: one limit for every action (`--api-rate-limit`); `None`:
    /// each action's documented default.
    override_limit: Option<u32>,
    windows: Mutex<HashMap<(AccountId, &'static str), Window>>,
}

impl RateLimiter {
    /// A limiter; `override_limit` replaces every documented limit.
    pub fn new(override_limit: Option<u32>) -> RateLimiter {
        RateLimiter {
            override_limit,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request at Unix second `now`; `Err` when it is over the limit.
    pub fn check(
        &self,
        account: AccountId,
        action: &'static str,
        now: i64,
    ) -> Result<(), Exceeded> {
        let limit = self
            .override_limit
            .unwrap_or_else(|| documented_limit(action));
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() > 100_000 {
            // Bound memory: drop every window that is not the current second.
            windows.retain(|_, (second, _)| *second == now);
        }
        let window = windows.entry((account, action)).or_insert((now, 0));
        if window.0 != now {
            *window = (now, 0);
        }
        window.1 = window.1.saturating_add(1);
        if window.1 > limit {
            Err(Exceeded {
                count: window.1,
                limit,
            })
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_over_the_limit_in_one_second_are_refused_with_the_counts() {
        let rl = RateLimiter::new(Some(2));
        let a = AccountId(1);
        assert!(rl.check(a, "DescribeLiveDomains", 100).is_ok());
        assert!(rl.check(a, "DescribeLiveDomains", 100).is_ok());
        assert_eq!(
            rl.check(a, "DescribeLiveDomains", 100),
            Err(Exceeded { count: 3, limit: 2 })
        );
        // Another action and another account have their own windows.
        assert!(rl.check(a, "AddLiveDomain", 100).is_ok());
        assert!(rl.check(AccountId(2), "DescribeLiveDomains", 100).is_ok());
        // The next second starts afresh.
        assert!(rl.check(a, "DescribeLiveDomains", 101).is_ok());
    }

    #[test]
    fn documented_limits_apply_without_an_override() {
        assert_eq!(documented_limit("DescribeLiveStreamState"), 300);
        assert_eq!(documented_limit("CreateRecordTask"), DEFAULT_LIMIT);
        let rl = RateLimiter::new(None);
        for _ in 0..DEFAULT_LIMIT {
            assert!(rl.check(AccountId(1), "DescribeLiveDomains", 7).is_ok());
        }
        assert!(rl.check(AccountId(1), "DescribeLiveDomains", 7).is_err());
    }
}
