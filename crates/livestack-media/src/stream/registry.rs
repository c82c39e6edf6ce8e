//! The live pushes by stream, and the rules of changing them.
//!
//! Owns: the map from [`StreamKey`] to its current [`Live`] push, and the
//! backup pushes of streams whose push domain takes them. A second push
//! of a live stream replaces the first and keeps its hub, so players stay
//! attached (CSS's 21/102), unless the push domain takes backup streams
//! (主备流, `[media] backup_domains`): then it is kept warm beside the
//! first as its backup (a third replaces the backup), players follow the
//! current one, and when that one ends, or a switch asks for it, the
//! backup takes over the hub at its next keyframe ([`Switch`]). A push
//! that ends removes its entry only if it is still the current one. Must
//! not: hold its lock across an `.await` or while calling out (every
//! method takes it for one map operation).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use livestack_core::media::{EndReason, StreamKey};

use crate::stream::hub::Hub;
use crate::stream::live::{Live, Switch};

/// Every live push, internal ones (processing outputs) included.
#[derive(Default)]
pub(crate) struct Registry {
    streams: Mutex<Streams>,
}

#[derive(Default)]
struct Streams {
    current: HashMap<StreamKey, Arc<Live>>,
    /// The backup push of a stream, where its domain takes one.
    backups: HashMap<StreamKey, Arc<Live>>,
    /// Hubs of relay-task pushes that just ended, kept until
    /// [`LINGER`] for the task's next push, so its players stay attached
    /// across the restart of its ffmpeg (between inserted files, after a
    /// source error).
    lingering: HashMap<StreamKey, (Arc<Hub>, std::time::Instant)>,
}

/// How long the hub of an ended relay-task push waits for the next one.
pub(crate) const LINGER: std::time::Duration = std::time::Duration::from_secs(5);

impl Streams {
    /// Registers the push `make` builds on the stream's hub: the hub of
    /// the push it replaces (stopped as `Replaced`, with its backup), of
    /// a relay-task push that ended less than [`LINGER`] ago (taken over
    /// at a keyframe), or a new one.
    fn replace(
        &mut self,
        key: &StreamKey,
        session: u64,
        make: impl FnOnce((Arc<Hub>, Arc<Switch>)) -> Arc<Live>,
    ) -> Arc<Live> {
        let lingering = self
            .lingering
            .remove(key)
            .filter(|(_, until)| std::time::Instant::now() < *until);
        let (hub, switch) = match (self.current.get(key), lingering) {
            (Some(old), _) => {
                old.stop(EndReason::Replaced);
                (Arc::clone(&old.hub), Switch::new(session))
            }
            (None, Some((hub, _))) => (hub, Switch::taking_over(session)),
            (None, None) => (Arc::new(Hub::new()), Switch::new(session)),
        };
        if let Some(backup) = self.backups.remove(key) {
            backup.stop(EndReason::Replaced);
        }
        let live = make((hub, Arc::new(switch)));
        self.current.insert(key.clone(), Arc::clone(&live));
        live
    }

    /// Registers the push `make` builds on `primary`'s hub and switch as
    /// its backup, stopping a backup it replaces.
    fn add_backup(
        &mut self,
        key: &StreamKey,
        primary: &Live,
        make: impl FnOnce((Arc<Hub>, Arc<Switch>)) -> Arc<Live>,
    ) -> Arc<Live> {
        if let Some(old) = self.backups.remove(key) {
            old.stop(EndReason::Replaced);
        }
        let live = make((Arc::clone(&primary.hub), Arc::clone(&primary.switch)));
        self.backups.insert(key.clone(), Arc::clone(&live));
        live
    }

    /// Makes the backup `backup` of `key` the current push, feeding from
    /// its next keyframe; `current` becomes the backup.
    fn promote(&mut self, key: &StreamKey, current: Arc<Live>, backup: Arc<Live>) {
        current.switch.hand_over(backup.publisher.session);
        self.current.insert(key.clone(), backup);
        self.backups.insert(key.clone(), current);
    }
}

/// Why a switch to another push of a stream was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SwitchRefusal {
    /// The stream is not live here.
    NotLive,
    /// No push of it has that session.
    NoSuchPush,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Streams> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The push of `key`, if live.
    pub(crate) fn get(&self, key: &StreamKey) -> Option<Arc<Live>> {
        self.lock().current.get(key).cloned()
    }

    /// The current push of `key` and its backup, if any.
    pub(crate) fn pushes(&self, key: &StreamKey) -> (Option<Arc<Live>>, Option<Arc<Live>>) {
        let s = self.lock();
        (s.current.get(key).cloned(), s.backups.get(key).cloned())
    }

    /// Optimal switching (`EnableOptimalSwitching`), once a second: of a
    /// stream with it on and a backup, players move to the backup when
    /// its measured frame rate is at least 1 and more than twice the
    /// current push's (a push that stalls or starves falls to 0 within
    /// the meter's window). Returns the streams switched, with the push
    /// session now feeding each.
    pub(crate) fn switch_optimally(&self) -> Vec<(StreamKey, u64)> {
        // The same once-a-second look lets go of lingering hubs nobody
        // took over: their players see the stream end.
        self.lock()
            .lingering
            .retain(|_, (_, until)| std::time::Instant::now() < *until);
        let pairs: Vec<(StreamKey, Arc<Live>, Arc<Live>)> = {
            let s = self.lock();
            s.backups
                .iter()
                .filter_map(|(k, b)| {
                    let c = s.current.get(k)?;
                    c.switch
                        .optimal()
                        .then(|| (k.clone(), Arc::clone(c), Arc::clone(b)))
                })
                .collect()
        };
        let mut switched = Vec::new();
        for (key, current, backup) in pairs {
            let (now, other) = (current.snapshot().fps, backup.snapshot().fps);
            if other >= 1.0
                && other > 2.0 * now
                && self.switch_to(&key, backup.publisher.session).is_ok()
            {
                switched.push((key, backup.publisher.session));
            }
        }
        switched
    }

    /// Registers the push `make` builds (session `session`): as the
    /// backup of the current push of `key` when `backup` is allowed and
    /// that one is an ordinary push (stopping a backup it replaces), else
    /// replacing the current push ([`Streams::replace`])
    /// does. Returns the push and whether it is a backup.
    pub(crate) fn insert_push(
        &self,
        key: &StreamKey,
        session: u64,
        backup: bool,
        make: impl FnOnce((Arc<Hub>, Arc<Switch>)) -> Arc<Live>,
    ) -> (Arc<Live>, bool) {
        let mut streams = self.lock();
        let primary = streams
            .current
            .get(key)
            .filter(|l| backup && !l.publisher.internal && !l.publisher.relay)
            .cloned();
        let Some(primary) = primary else {
            return (streams.replace(key, session, make), false);
        };
        (streams.add_backup(key, &primary, make), true)
    }

    /// Registers a processing job's output push (session `session`, of
    /// the job of `generation`) when another job's push of `key` is live:
    /// - made by an earlier job (one being replaced): the new push becomes
    ///   the current one, beside it, and takes its players at its first
    ///   keyframe, so they do not notice the change of process; the
    ///   earlier push waits as its backup (an even earlier one is stopped);
    /// - made by a later job: the new push comes from a job being
    ///   replaced, and is left out (its frames reach nobody) until its job
    ///   is stopped;
    ///
    /// else (no such push, or the same job's) as a replacing push.
    pub(crate) fn insert_beside(
        &self,
        key: &StreamKey,
        session: u64,
        generation: u64,
        make: impl FnOnce((Arc<Hub>, Arc<Switch>)) -> Arc<Live>,
    ) -> Arc<Live> {
        let mut streams = self.lock();
        let current = streams
            .current
            .get(key)
            .filter(|l| {
                l.publisher.internal
                    && !l.publisher.relay
                    && l.end_reason().is_none()
                    && l.publisher.generation != generation
            })
            .cloned();
        let Some(current) = current else {
            return streams.replace(key, session, make);
        };
        if current.publisher.generation > generation {
            // Not registered: the switch never picks its session.
            return make((Arc::clone(&current.hub), Arc::clone(&current.switch)));
        }
        let live = streams.add_backup(key, &current, make);
        streams.promote(key, current, Arc::clone(&live));
        live
    }

    /// Makes push session `session` of `key` the one players get, from its
    /// next keyframe; the current one becomes the backup.
    pub(crate) fn switch_to(&self, key: &StreamKey, session: u64) -> Result<(), SwitchRefusal> {
        let mut streams = self.lock();
        let current = streams
            .current
            .get(key)
            .cloned()
            .ok_or(SwitchRefusal::NotLive)?;
        if current.publisher.session == session {
            return Ok(());
        }
        let backup = streams
            .backups
            .get(key)
            .filter(|b| b.publisher.session == session)
            .cloned()
            .ok_or(SwitchRefusal::NoSuchPush)?;
        streams.promote(key, current, backup);
        Ok(())
    }

    /// Every live push (the current one of each stream).
    pub(crate) fn all(&self) -> Vec<Arc<Live>> {
        self.lock().current.values().cloned().collect()
    }

    /// Registers the push `make` builds on a new hub, unless `key` is
    /// live already (an edge relay never replaces a push).
    pub(crate) fn insert_if_absent(
        &self,
        key: &StreamKey,
        session: u64,
        make: impl FnOnce((Arc<Hub>, Arc<Switch>)) -> Arc<Live>,
    ) -> Option<Arc<Live>> {
        let mut streams = self.lock();
        if streams.current.contains_key(key) {
            return None;
        }
        let live = make((Arc::new(Hub::new()), Arc::new(Switch::new(session))));
        streams.current.insert(key.clone(), Arc::clone(&live));
        Some(live)
    }

    /// Removes the push of `key` if it is still session `session` (a
    /// replacement may own the key by now): its backup, if it has one,
    /// takes over (returned), else with `linger` its hub waits [`LINGER`]
    /// for the next push; or removes the backup if that is `session`.
    pub(crate) fn remove_if_current(
        &self,
        key: &StreamKey,
        session: u64,
        linger: bool,
    ) -> Option<Arc<Live>> {
        let mut streams = self.lock();
        if streams
            .backups
            .get(key)
            .is_some_and(|l| l.publisher.session == session)
        {
            streams.backups.remove(key);
            return None;
        }
        if streams
            .current
            .get(key)
            .is_some_and(|l| l.publisher.session == session)
        {
            let ended = streams.current.remove(key);
            // A backup being stopped with it (a drop, a forbid) does not
            // take over.
            let backup = streams
                .backups
                .remove(key)
                .filter(|b| b.end_reason().is_none());
            if let Some(backup) = backup {
                backup.switch.hand_over(backup.publisher.session);
                streams.current.insert(key.clone(), Arc::clone(&backup));
                return Some(backup);
            }
            if let Some(ended) = ended.filter(|_| linger) {
                let until = std::time::Instant::now() + LINGER;
                streams
                    .lingering
                    .insert(key.clone(), (Arc::clone(&ended.hub), until));
            }
        }
        None
    }
}
