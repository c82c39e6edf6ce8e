//! The live pushes by stream, and the two rules of changing them.
//!
//! Owns: the map from [`StreamKey`] to its [`Live`] push. A second push of
//! a live stream replaces the first and keeps its hub, so players stay
//! attached (CSS's 21/102); a push that ends removes its entry only if it
//! is still the current one. Must not: hold its lock across an `.await`
//! or while calling out (every method takes it for one map operation).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use livestack_core::media::{EndReason, StreamKey};

use crate::stream::hub::Hub;
use crate::stream::live::Live;

/// Every live push, internal ones (processing outputs) included.
#[derive(Default)]
pub(crate) struct Registry {
    streams: Mutex<HashMap<StreamKey, Arc<Live>>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StreamKey, Arc<Live>>> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The push of `key`, if live.
    pub(crate) fn get(&self, key: &StreamKey) -> Option<Arc<Live>> {
        self.lock().get(key).cloned()
    }

    /// Every live push.
    pub(crate) fn all(&self) -> Vec<Arc<Live>> {
        self.lock().values().cloned().collect()
    }

    /// Registers the push `make` builds on the stream's hub: the hub of
    /// the push it replaces (which is stopped as `Replaced`), or a new one.
    pub(crate) fn insert_replacing(
        &self,
        key: &StreamKey,
        make: impl FnOnce(Arc<Hub>) -> Arc<Live>,
    ) -> Arc<Live> {
        let mut streams = self.lock();
        let hub = match streams.get(key) {
            Some(old) => {
                old.stop(EndReason::Replaced);
                Arc::clone(&old.hub)
            }
            None => Arc::new(Hub::new()),
        };
        let live = make(hub);
        streams.insert(key.clone(), Arc::clone(&live));
        live
    }

    /// Registers the push `make` builds on a new hub, unless `key` is
    /// live already (an edge relay never replaces a push).
    pub(crate) fn insert_if_absent(
        &self,
        key: &StreamKey,
        make: impl FnOnce(Arc<Hub>) -> Arc<Live>,
    ) -> Option<Arc<Live>> {
        let mut streams = self.lock();
        if streams.contains_key(key) {
            return None;
        }
        let live = make(Arc::new(Hub::new()));
        streams.insert(key.clone(), Arc::clone(&live));
        Some(live)
    }

    /// Removes the push of `key` if it is still session `session` (a
    /// replacement may own the key by now).
    pub(crate) fn remove_if_current(&self, key: &StreamKey, session: u64) {
        let mut streams = self.lock();
        if streams
            .get(key)
            .is_some_and(|l| l.publisher.session == session)
        {
            streams.remove(key);
        }
    }
}
