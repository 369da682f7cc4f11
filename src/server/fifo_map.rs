//! [`FifoMap`]: a map bounded by its number of entries that forgets the oldest entry first, for
//! the run-wide memos of pure work (parsed PDUs, verified key responses, request signatures),
//! a store's memo of its merges, and shared values (transaction answers), where forgetting
//! only costs doing the work again or holding another copy.
//!
//! Invariants: at most `entries_max` entries; `order` lists every key of `entries` exactly once,
//! oldest first. The hash map is only looked up, never iterated, so its order cannot leak into
//! a run.

use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash};

#[derive(Debug)]
pub(crate) struct FifoMap<K, V, S = RandomState> {
    entries: HashMap<K, V, S>,
    order: VecDeque<K>,
    entries_max: usize,
}

/// Equal when they hold the same entries in the same order under the same bound.
impl<K: Eq + Hash, V: PartialEq, S: BuildHasher> PartialEq for FifoMap<K, V, S> {
    fn eq(&self, other: &Self) -> bool {
        self.entries_max == other.entries_max
            && self.order == other.order
            && self.entries == other.entries
    }
}

impl<K: Eq + Hash + Clone, V> FifoMap<K, V> {
    /// An empty map holding at most `entries_max` entries (at least 1).
    pub(crate) fn new(entries_max: usize) -> Self {
        Self::with_hasher(entries_max)
    }
}

impl<K: Eq + Hash + Clone, V, S: BuildHasher + Default> FifoMap<K, V, S> {
    /// An empty map holding at most `entries_max` entries (at least 1), hashing keys with `S`.
    pub(crate) fn with_hasher(entries_max: usize) -> Self {
        Self {
            entries: HashMap::with_hasher(S::default()),
            order: VecDeque::new(),
            entries_max: entries_max.max(1),
        }
    }

    pub(crate) fn get<Q: Eq + Hash + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.entries.get(key)
    }

    /// The key as held, and its value.
    pub(crate) fn get_key_value<Q: Eq + Hash + ?Sized>(&self, key: &Q) -> Option<(&K, &V)>
    where
        K: Borrow<Q>,
    {
        self.entries.get_key_value(key)
    }

    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.entries.get_mut(key)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Removes and returns the oldest entry.
    pub(crate) fn pop_oldest(&mut self) -> Option<(K, V)> {
        let oldest = self.order.pop_front()?;
        let value = self
            .entries
            .remove(&oldest)
            .expect("every key in the order is held");
        Some((oldest, value))
    }

    /// Inserts or replaces the entry of `key` (a replaced entry keeps its place in the order);
    /// returns how many of the oldest entries were forgotten to stay within the bound.
    pub(crate) fn insert(&mut self, key: K, value: V) -> u64 {
        if self.entries.insert(key.clone(), value).is_none() {
            self.order.push_back(key);
        }
        let mut evicted = 0;
        while self.entries.len() > self.entries_max {
            let oldest = self.order.pop_front().expect("every key is in the order");
            self.entries.remove(&oldest);
            evicted += 1;
        }
        assert_eq!(
            self.entries.len(),
            self.order.len(),
            "the order lists every key once"
        );
        evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_entry_is_forgotten_first_and_replacing_keeps_the_place() {
        let mut map = FifoMap::new(2);
        assert_eq!(map.insert("a", 1), 0);
        assert_eq!(map.insert("b", 2), 0);
        assert_eq!(map.insert("a", 3), 0, "replaced, not added");
        assert_eq!(map.insert("c", 4), 1);
        assert_eq!(map.get(&"a"), None, "a was inserted first");
        assert_eq!(map.get(&"b"), Some(&2));
        assert_eq!(map.get(&"c"), Some(&4));
        *map.get_mut(&"b").unwrap() = 5;
        assert_eq!(map.get(&"b"), Some(&5));
        assert_eq!(map.len(), 2);
        assert_eq!(map.pop_oldest(), Some(("b", 5)));
        assert_eq!(map.len(), 1);
        assert_eq!(map.insert("d", 6), 0, "room again");
        assert_eq!(
            FifoMap::<u8, ()>::new(0).insert(1, ()),
            0,
            "at least one entry"
        );
    }
}
