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
use crate::server::fifo_map::FifoMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// How many resolved keys (summed over the resolutions) a run keeps unless told otherwise:
/// about 40 MB once full, each key an event id shared with a store (a small run never fills
/// it). At 1,000 servers a fork is resolved
/// by every server within a second or two of the first, and a join storm makes a few thousand
/// distinct resolutions a second. Measured there (30 s, joins over 15 s): a quarter of this
/// bound missed 79,739 times, this bound 61,769 times: 15% less CPU.
pub const SHARED_RESOLVED_KEYS_MAX_DEFAULT: usize = 1_048_576;

/// A resolution's result, as the ids of the events it holds (what `resolve_conflicts` returns
/// as a state map: each event holds the key of its type and state key, so the ids alone say
/// it), each the `Arc<str>` the resolving store knows the event by: 16 bytes an entry, where a
/// state map of strings took about 190.
pub type ResolvedEvents = Arc<[Arc<str>]>;

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
    /// Bounded by `resolved_keys_max` below, not by its count of entries.
    entries: FifoMap<ResolutionKey, ResolvedEvents, IdKeys>,
    /// The keys of every held resolution, summed.
    resolved_keys: usize,
    resolved_keys_max: usize,
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
        Self::new(SHARED_RESOLVED_KEYS_MAX_DEFAULT)
    }
}

impl SharedResolutions {
    /// An empty memo holding resolutions of at most `resolved_keys_max` keys in all (but
    /// always the newest one).
    pub fn new(resolved_keys_max: usize) -> Self {
        Self {
            shared: Mutex::new(Shared {
                entries: FifoMap::with_hasher(usize::MAX),
                resolved_keys: 0,
                resolved_keys_max,
                stats: SharedResolutionStats::default(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A poisoned lock only means a panic elsewhere; every entry is still a whole result.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The resolution of the key's states, if a store of this run made it.
    pub fn get(&self, key: &ResolutionKey) -> Option<ResolvedEvents> {
        let mut shared = self.lock();
        let found = shared.entries.get(key).cloned();
        match found {
            Some(_) => shared.stats.hits += 1,
            None => shared.stats.misses += 1,
        }
        found
    }

    /// Keeps the resolution of the key's states for the other stores, forgetting the oldest
    /// ones past the bound.
    pub fn insert(&self, key: ResolutionKey, resolved: ResolvedEvents) {
        let mut shared = self.lock();
        let shared = &mut *shared;
        shared.resolved_keys += resolved.len().max(1);
        if let Some(replaced) = shared.entries.get(&key) {
            shared.resolved_keys -= replaced.len().max(1);
        }
        shared.entries.insert(key, resolved);
        while shared.resolved_keys > shared.resolved_keys_max && shared.entries.len() > 1 {
            let (_, oldest) = shared.entries.pop_oldest().expect("more than one entry");
            shared.resolved_keys -= oldest.len().max(1);
            shared.stats.evictions += 1;
        }
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

    fn resolved(ids: &[&str]) -> ResolvedEvents {
        ids.iter().map(|id| Arc::from(format!("${id}"))).collect()
    }

    #[test]
    fn resolutions_are_found_counted_and_forgotten_oldest_first_by_their_keys() {
        let shared = SharedResolutions::new(3);
        let key = |other: &str| ResolutionKey::new("11", [digest("$a"), digest(other)]);
        assert!(shared.get(&key("$b")).is_none());
        shared.insert(key("$b"), resolved(&["@x", "@y"]));
        shared.insert(key("$c"), resolved(&["@z"]));
        assert_eq!(shared.get(&key("$b")), Some(resolved(&["@x", "@y"])));
        assert!(
            shared.get(&key("$c")).is_some(),
            "three keys held: within the bound"
        );
        shared.insert(key("$d"), resolved(&["@v", "@w"]));
        assert!(shared.get(&key("$b")).is_none(), "the oldest is forgotten");
        assert!(shared.get(&key("$c")).is_some());
        assert!(shared.get(&key("$d")).is_some());
        shared.insert(key("$e"), resolved(&["@1", "@2", "@3", "@4"]));
        assert!(
            shared.get(&key("$e")).is_some(),
            "the newest is kept, even past the bound"
        );
        assert!(shared.get(&key("$d")).is_none());
        assert_eq!(
            shared.stats(),
            SharedResolutionStats {
                hits: 5,
                misses: 3,
                evictions: 3
            }
        );
    }
}
