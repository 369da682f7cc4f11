//! [`SharedResolutions`]: state resolutions shared by the servers of one run.
//!
//! In a room joined by a thousand servers, every server resolves the same forks: each one
//! that receives an event with several prev events merges the same states after them, and the
//! forward extremities of many servers meet in the same states. The result of resolving a
//! set of states depends only on those states and on the events their resolution reads (the
//! conflicted events and their auth chains, with the rejections found on receipt), so one
//! server's answer serves every other server that holds the same states.
//!
//! A resolution is keyed by the room version and the digests of the input states (each the
//! digest of the set of its event ids, [`super::state_groups::StateGroup::digest`]), sorted:
//! resolution does not depend on the order of its inputs. A store takes part only while
//! every event it holds is the one its id names, as it was sent (rooms v3 on, where an id is
//! the event's hash; no event held redacted for a content hash mismatch or by a redaction,
//! whose copies other servers may hold whole) and the authorization rules are enforced.
//! Then two stores holding the same states hold the same events under their ids and the same
//! rejections, and resolve them alike; a test runs experiments with and without sharing and
//! compares their results byte for byte.
//!
//! Invariants: an entry holds what [`crate::proto::state_res::resolve_conflicts`] returned
//! for its key's states (only successes are kept); the map is bounded and forgets its oldest
//! entry first, which only costs resolving again; it is looked up, never iterated.

use super::id_map::IdKeys;
use super::set_digest::SetDigest;
use crate::proto::event::StateMap;
use crate::server::fifo_map::FifoMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// How many resolutions a run keeps unless told otherwise: a few minutes of forks in a large
/// room, each entry the resolved keys only.
pub const SHARED_RESOLUTIONS_MAX_DEFAULT: usize = 16_384;

/// The inputs of one resolution: the room version and the sorted digests of its states.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResolutionKey {
    version: &'static str,
    states: Box<[SetDigest]>,
}

impl ResolutionKey {
    pub fn new(version: &'static str, states: impl IntoIterator<Item = SetDigest>) -> Self {
        let mut states: Vec<SetDigest> = states.into_iter().collect();
        states.sort_unstable_by_key(|digest| digest.to_bytes());
        Self {
            version,
            states: states.into_boxed_slice(),
        }
    }
}

/// How often a resolution was found shared, for perf figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SharedResolutionStats {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
}

/// Resolutions shared by the stores of one run (see the module comment). Behind a lock so
/// that stores stay shareable across threads; a run uses it from one thread.
pub struct SharedResolutions {
    shared: Mutex<Shared>,
}

struct Shared {
    entries: FifoMap<ResolutionKey, Arc<StateMap>, IdKeys>,
    stats: SharedResolutionStats,
}

impl std::fmt::Debug for SharedResolutions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shared = self.lock();
        f.debug_struct("SharedResolutions")
            .field("entries", &shared.entries.len())
            .field("stats", &shared.stats)
            .finish()
    }
}

impl Default for SharedResolutions {
    fn default() -> Self {
        Self::new(SHARED_RESOLUTIONS_MAX_DEFAULT)
    }
}

impl SharedResolutions {
    pub fn new(entries_max: usize) -> Self {
        Self {
            shared: Mutex::new(Shared {
                entries: FifoMap::with_hasher(entries_max),
                stats: SharedResolutionStats::default(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A poisoned lock only means a panic elsewhere; every entry is still a whole result.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The resolution of the key's states, if a store of this run made it.
    pub fn get(&self, key: &ResolutionKey) -> Option<Arc<StateMap>> {
        let mut shared = self.lock();
        let found = shared.entries.get(key).cloned();
        match found {
            Some(_) => shared.stats.hits += 1,
            None => shared.stats.misses += 1,
        }
        found
    }

    /// Keeps the resolution of the key's states for the other stores.
    pub fn insert(&self, key: ResolutionKey, resolved: Arc<StateMap>) {
        let mut shared = self.lock();
        shared.stats.evictions += shared.entries.insert(key, resolved);
    }

    pub fn stats(&self) -> SharedResolutionStats {
        self.lock().stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(id: &str) -> SetDigest {
        SetDigest::of([id])
    }

    #[test]
    fn keys_ignore_the_order_of_the_states_but_not_the_version() {
        let forward = ResolutionKey::new("11", [digest("$a"), digest("$b")]);
        let backward = ResolutionKey::new("11", [digest("$b"), digest("$a")]);
        assert_eq!(forward, backward);
        assert_ne!(
            forward,
            ResolutionKey::new("12", [digest("$a"), digest("$b")])
        );
        assert_ne!(
            forward,
            ResolutionKey::new("11", [digest("$a"), digest("$c")])
        );
    }

    #[test]
    fn resolutions_are_found_counted_and_forgotten_oldest_first() {
        let shared = SharedResolutions::new(1);
        let first = ResolutionKey::new("11", [digest("$a"), digest("$b")]);
        let second = ResolutionKey::new("11", [digest("$a"), digest("$c")]);
        assert!(shared.get(&first).is_none());
        let resolved = Arc::new(StateMap::from([(
            ("m.room.topic".to_owned(), String::new()),
            "$b".to_owned(),
        )]));
        shared.insert(first.clone(), resolved.clone());
        assert_eq!(shared.get(&first), Some(resolved));
        shared.insert(second.clone(), Arc::new(StateMap::new()));
        assert!(shared.get(&first).is_none(), "the oldest is forgotten");
        assert!(shared.get(&second).is_some());
        assert_eq!(
            shared.stats(),
            SharedResolutionStats {
                hits: 2,
                misses: 2,
                evictions: 1
            }
        );
    }
}
