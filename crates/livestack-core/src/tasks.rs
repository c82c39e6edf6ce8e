//! Record and screenshot tasks: recordings and snapshots asked for by API
//! call (`CreateRecordTask`, `CreateScreenshotTask`, the legacy
//! `CreateLiveRecord`) for one stream and a time window, as opposed to the
//! rules that apply to every push.
//!
//! Owns: the task type both planes share and the answer to "which tasks
//! want this stream now" ([`active_tasks`]). Must not: know wire names or
//! error codes, or do I/O.

use crate::rules::{RecordFormat, TemplateId};
use crate::AccountId;

/// What a task makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskKind {
    /// Recordings (`CreateRecordTask`, `CreateLiveRecord`).
    Record,
    /// Snapshots (`CreateScreenshotTask`).
    Screenshot,
}

/// What a legacy `CreateLiveRecord` task records: one format, with or
/// without video. Current tasks take this from their template instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegacyRecord {
    /// The file format.
    pub format: RecordFormat,
    /// `RecordType` `audio`: sound only.
    pub audio_only: bool,
}

/// A task as the media plane needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// The row id: unique across kinds and accounts.
    pub id: i64,
    /// The id the API gave the caller for it (`TaskId`): what record
    /// callbacks report as `task_id`. Filled by the control plane when it
    /// publishes the policy (the store leaves it empty); the media plane
    /// treats it as opaque text.
    pub public_id: String,
    /// The owner.
    pub account: AccountId,
    /// Recording or snapshots.
    pub kind: TaskKind,
    /// The push domain, lower-case.
    pub domain: String,
    /// AppName.
    pub app: String,
    /// StreamName.
    pub stream: String,
    /// Unix seconds the task starts.
    pub start: i64,
    /// Unix seconds the task ends.
    pub end: i64,
    /// The record or snapshot template; `None` for a record task without
    /// one (CSS then records HLS) or a legacy task.
    pub template: Option<TemplateId>,
    /// Set by `CreateLiveRecord`.
    pub legacy: Option<LegacyRecord>,
    /// `Extension` of the create call, passed back in callbacks.
    pub extension: String,
}

impl Task {
    /// Whether it wants `stream` of `account` pushed to `domain` at `now`
    /// (seconds): same stream, and `start <= now < end`.
    pub fn wants(
        &self,
        account: AccountId,
        domain: &str,
        app: &str,
        stream: &str,
        now: i64,
    ) -> bool {
        self.account == account
            && self.domain.eq_ignore_ascii_case(domain)
            && self.app == app
            && self.stream == stream
            && self.start <= now
            && now < self.end
    }
}

/// The tasks among `tasks` that want the stream now ([`Task::wants`]), in
/// id order.
pub fn active_tasks<'t>(
    tasks: &'t [Task],
    account: AccountId,
    domain: &str,
    app: &str,
    stream: &str,
    now: i64,
) -> Vec<&'t Task> {
    let mut out: Vec<&Task> = tasks
        .iter()
        .filter(|t| t.wants(account, domain, app, stream, now))
        .collect();
    out.sort_by_key(|t| t.id);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: i64, start: i64, end: i64) -> Task {
        Task {
            id,
            public_id: format!("T{id}"),
            account: AccountId(1),
            kind: TaskKind::Record,
            domain: "push.example.com".into(),
            app: "live".into(),
            stream: "s".into(),
            start,
            end,
            template: None,
            legacy: None,
            extension: String::new(),
        }
    }

    #[test]
    fn a_task_wants_its_stream_only_inside_its_window() {
        let t = task(1, 100, 200);
        assert!(!t.wants(AccountId(1), "push.example.com", "live", "s", 99));
        assert!(t.wants(AccountId(1), "PUSH.example.com", "live", "s", 100));
        assert!(t.wants(AccountId(1), "push.example.com", "live", "s", 199));
        assert!(!t.wants(AccountId(1), "push.example.com", "live", "s", 200));
    }

    #[test]
    fn a_task_of_another_account_app_or_stream_is_not_active() {
        let t = task(1, 0, 10);
        assert!(!t.wants(AccountId(2), "push.example.com", "live", "s", 5));
        assert!(!t.wants(AccountId(1), "push.example.com", "other", "s", 5));
        assert!(!t.wants(AccountId(1), "push.example.com", "live", "s2", 5));
        assert!(!t.wants(AccountId(1), "other.example.com", "live", "s", 5));
    }

    #[test]
    fn active_tasks_come_in_id_order() {
        let tasks = vec![task(3, 0, 10), task(1, 0, 10), task(2, 20, 30)];
        let ids: Vec<i64> = active_tasks(&tasks, AccountId(1), "push.example.com", "live", "s", 5)
            .iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(ids, vec![1, 3]);
    }
}
