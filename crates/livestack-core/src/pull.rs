//! Relay (pull-stream) tasks, 拉流转推: a live URL or a list of files
//! pulled by the server and pushed as a live stream, from `StartTime` to
//! `EndTime` (`CreateLivePullStreamTask`).
//!
//! Owns: the task type both planes share, the answer to "which relay
//! tasks run now" ([`PullTask::runs_at`]) and which node of a cluster runs
//! each ([`assigned_node`]). Must not: know wire names or error codes, or
//! do I/O.

use crate::AccountId;

/// Where a relay task pulls from (`SourceType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PullSourceKind {
    /// `PullLivePushLive`: one live URL.
    Live,
    /// `PullVodPushLive`: up to 30 files, played in order and looped.
    Vod,
    /// `PullPicPushLive`: one picture, pushed as a still live stream.
    Picture,
}

/// Where a relay task pushes to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PullTarget {
    /// A stream of one of the task account's push domains: pushed into
    /// this platform as a push like any other (listed, processed, called
    /// back).
    Stream {
        /// The push domain, lower-case.
        domain: String,
        /// AppName.
        app: String,
        /// StreamName.
        stream: String,
    },
    /// `ToUrl`: any RTMP URL, another server's included.
    Url(String),
}

/// A relay task as the media plane needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullTask {
    /// The row id.
    pub id: i64,
    /// The `TaskId` the caller was given (what callbacks report).
    pub public_id: String,
    /// The owner.
    pub account: AccountId,
    /// Live or files.
    pub kind: PullSourceKind,
    /// The source URLs: one for a live source, the files in order else.
    pub sources: Vec<String>,
    /// `BackupSourceUrl`: pulled while the live source fails.
    pub backup: Option<String>,
    /// Where it pushes.
    pub target: PullTarget,
    /// `PushArgs`: appended to the target's query.
    pub push_args: String,
    /// `BackupToUrl`: a second RTMP URL pushed beside the target; its
    /// failure does not stop the main push.
    pub backup_target: Option<String>,
    /// Unix seconds it starts.
    pub start: i64,
    /// Unix seconds it ends.
    pub end: i64,
    /// `Status` `enable` (true) or `pause`.
    pub enabled: bool,
    /// `VodLoopTimes`: -1 forever, 0 once, n: n more times after the first.
    pub loops: i64,
    /// `CallbackUrl` of its 314 events; empty: none.
    pub callback_url: String,
    /// `CallbackEvents`: which events go there; empty: all.
    pub callback_events: Vec<String>,
    /// Changes whenever the task must start over (`RestartLivePullStreamTask`,
    /// a `ModifyLivePullStreamTask` of what it pulls or pushes): the media
    /// plane runs one job per (id, generation).
    pub generation: i64,
    /// Files inserted while it runs (`InsertTaskTemporaryFiles`) and not
    /// played yet, oldest first.
    pub inserts: Vec<PullInsert>,
    /// `FileIndex` - 1: the file (0-based) the first loop starts at.
    pub start_file: usize,
    /// `OffsetTime`: seconds into that file the first loop starts at.
    pub start_offset: u64,
    /// `TranscodeTemplateName`: the task's push is encoded by the
    /// account's transcode template of that name; empty: copied as it is.
    pub transcode_template: String,
    /// `RecordTemplateId`: the account's record template the target
    /// stream is recorded by while the task pushes it.
    pub record_template: Option<i64>,
    /// `WatermarkList`: pictures laid over the push (re-encoding it).
    pub watermarks: Vec<PullWatermark>,
}

/// One of a relay task's own watermarks (`PullPushWatermarkInfo`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PullWatermark {
    /// `PictureUrl`, as given.
    pub picture_url: String,
    /// The local copy.
    pub picture: crate::rules::Picture,
    /// Offsets from the corner, percent of the picture's width / height.
    pub x: u32,
    /// See `x`.
    pub y: u32,
    /// Size, percent of the video's width / height; 0 keeps the aspect.
    pub width: u32,
    /// See `width`.
    pub height: u32,
    /// The corner offsets count from: 0 top left, 1 top right, 2 bottom
    /// right, 3 bottom left.
    pub location: u32,
}

/// Files to play once between a file task's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullInsert {
    /// The row id.
    pub id: i64,
    /// `InsertAfterIndex`: after which file (1-based) they play; 0 after
    /// the one playing when they are seen; past the end after the last.
    pub after: i64,
    /// `InsertPriorityType`: of inserts after the same file, 0 plays
    /// first, then 1, then 2.
    pub priority: i64,
    /// The files.
    pub files: Vec<String>,
    /// `InsertContext`, echoed in their file callbacks.
    pub context: String,
}

impl PullTask {
    /// Whether it should be running at `now` (Unix seconds): enabled and
    /// inside its window.
    pub fn runs_at(&self, now: i64) -> bool {
        self.enabled && self.start <= now && now < self.end
    }

    /// Whether its callbacks include `event` (`TaskStart`, …).
    pub fn wants_event(&self, event: &str) -> bool {
        !self.callback_url.is_empty()
            && (self.callback_events.is_empty() || self.callback_events.iter().any(|e| e == event))
    }
}

/// Which of `nodes` runs relay task `id`: rendezvous hashing, so that
/// every node that sees the same list picks the same node, and a node
/// joining or leaving moves only the tasks it gains or had. `None` when
/// `nodes` is empty (one node outside a cluster runs every task).
pub fn assigned_node(id: i64, nodes: &[String]) -> Option<&str> {
    nodes
        .iter()
        .max_by_key(|n| (score(id, n), n.as_str()))
        .map(String::as_str)
}

/// FNV-1a of the node name and the task id, then a 64-bit finaliser
/// (splitmix64) so that close ids spread over the nodes.
fn score(id: i64, node: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.bytes().chain(id.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(enabled: bool) -> PullTask {
        PullTask {
            id: 1,
            public_id: "t".into(),
            account: AccountId(1),
            kind: PullSourceKind::Live,
            sources: vec!["rtmp://a/b/c".into()],
            backup: None,
            target: PullTarget::Url("rtmp://x/y/z".into()),
            push_args: String::new(),
            backup_target: None,
            start: 100,
            end: 200,
            enabled,
            loops: 0,
            callback_url: "http://cb".into(),
            callback_events: vec![],
            generation: 0,
            inserts: vec![],
            start_file: 0,
            start_offset: 0,
            transcode_template: String::new(),
            record_template: None,
            watermarks: vec![],
        }
    }

    #[test]
    fn a_task_runs_when_enabled_from_its_start_until_its_end() {
        let t = task(true);
        assert!(!t.runs_at(99));
        assert!(t.runs_at(100));
        assert!(t.runs_at(199));
        assert!(!t.runs_at(200));
        assert!(!task(false).runs_at(150));
    }

    #[test]
    fn no_event_filter_means_every_event_and_no_url_means_none() {
        let mut t = task(true);
        assert!(t.wants_event("TaskStart"));
        t.callback_events = vec!["TaskExit".into()];
        assert!(!t.wants_event("TaskStart"));
        assert!(t.wants_event("TaskExit"));
        t.callback_url.clear();
        assert!(!t.wants_event("TaskExit"));
    }

    #[test]
    fn every_node_picks_the_same_node_and_a_leaving_node_moves_only_its_tasks() {
        let three: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let mut shuffled = three.clone();
        shuffled.reverse();
        let two: Vec<String> = ["a", "b"].map(String::from).to_vec();
        let mut used = std::collections::HashSet::new();
        for id in 1..200 {
            let of_three = assigned_node(id, &three).unwrap();
            assert_eq!(Some(of_three), assigned_node(id, &shuffled));
            used.insert(of_three.to_owned());
            if of_three != "c" {
                assert_eq!(Some(of_three), assigned_node(id, &two), "task {id} moved");
            }
        }
        assert_eq!(used.len(), 3, "every node gets tasks");
        assert_eq!(assigned_node(1, &[]), None);
    }
}
