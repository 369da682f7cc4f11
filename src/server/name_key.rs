//! [`NameMap`]: a hash table keyed by server name, each name ([`NameKey`]) held in the
//! table's slot when short.
//!
//! A server looks up its tables by peer name on every request it sends or receives: the
//! destinations it sends to, the origins its inbound gate admits, the transactions each origin
//! sent, the keys it holds per peer; the network model finds each server's node by name. With
//! `String` keys each hit read the key's bytes from a heap allocation of that server's own,
//! cold among a hundred servers' tables: a cache miss per lookup, the larger part of its cost
//! (at 100 servers, holding the names in the slots took 2.5% off the run). A name of up to
//! [`INLINE_MAX`] bytes (the experiments' names are 10 to 20) sits in the slot itself, which the
//! lookup reads anyway.
//!
//! Invariants: a key's hash is that of its bytes, whichever form holds them, and a lookup
//! compares the bytes in full; so a `NameMap` finds exactly what a map keyed by `String`
//! would. Keys compare and order by their bytes. Nothing reads a `NameMap` in its iteration
//! order where the order can reach behaviour.

use crate::server::store::id_map::IdKeys;
use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use std::fmt;
use std::hash::{BuildHasher, Hasher};

/// The longest name held inline (the enum is then 32 bytes).
pub(crate) const INLINE_MAX: usize = 30;

#[derive(Clone)]
pub(crate) enum NameKey {
    Inline { len: u8, bytes: [u8; INLINE_MAX] },
    Heap(Box<str>),
}

impl NameKey {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            NameKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
            NameKey::Heap(name) => name.as_bytes(),
        }
    }

    /// The name (checks the inline bytes are UTF-8 again: for reports, not per lookup).
    pub fn as_str(&self) -> &str {
        match self {
            NameKey::Inline { .. } => {
                std::str::from_utf8(self.as_bytes()).expect("built from a str")
            }
            NameKey::Heap(name) => name,
        }
    }
}

impl From<&str> for NameKey {
    fn from(name: &str) -> Self {
        match u8::try_from(name.len()) {
            Ok(len) if name.len() <= INLINE_MAX => {
                let mut bytes = [0; INLINE_MAX];
                bytes[..name.len()].copy_from_slice(name.as_bytes());
                NameKey::Inline { len, bytes }
            }
            _ => NameKey::Heap(name.into()),
        }
    }
}

impl PartialEq for NameKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for NameKey {}

impl PartialOrd for NameKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for NameKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl fmt::Debug for NameKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for NameKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A hash table keyed by server name, read with `&str` (see the module comment). Never read
/// in its iteration order where the order can reach behaviour: whoever iterates sorts or folds.
#[derive(Clone, Debug)]
pub(crate) struct NameMap<V> {
    table: HashTable<(NameKey, V)>,
}

impl<V> Default for NameMap<V> {
    fn default() -> Self {
        NameMap {
            table: HashTable::new(),
        }
    }
}

fn hash_of(name: &[u8]) -> u64 {
    let mut hasher = IdKeys.build_hasher();
    hasher.write(name);
    hasher.write_u8(0xff);
    hasher.finish()
}

fn hash_of_entry<V>(entry: &(NameKey, V)) -> u64 {
    hash_of(entry.0.as_bytes())
}

impl<V> NameMap<V> {
    pub fn get(&self, name: &str) -> Option<&V> {
        let name = name.as_bytes();
        self.table
            .find(hash_of(name), |(key, _)| key.as_bytes() == name)
            .map(|(_, value)| value)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut V> {
        let name = name.as_bytes();
        self.table
            .find_mut(hash_of(name), |(key, _)| key.as_bytes() == name)
            .map(|(_, value)| value)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The value under `name`, made by `make` if there is none: one lookup either way.
    pub fn get_or_insert_with(&mut self, name: &str, make: impl FnOnce() -> V) -> &mut V {
        let bytes = name.as_bytes();
        let entry = self.table.entry(
            hash_of(bytes),
            |(key, _)| key.as_bytes() == bytes,
            hash_of_entry,
        );
        let held = match entry {
            Entry::Occupied(held) => held.into_mut(),
            Entry::Vacant(slot) => slot.insert((NameKey::from(name), make())).into_mut(),
        };
        &mut held.1
    }

    /// Holds `value` under `name`, returning the value it replaces.
    pub fn insert(&mut self, name: &str, value: V) -> Option<V> {
        match self.get_mut(name) {
            Some(held) => Some(std::mem::replace(held, value)),
            None => {
                let hash = hash_of(name.as_bytes());
                self.table
                    .insert_unique(hash, (NameKey::from(name), value), hash_of_entry);
                None
            }
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<V> {
        let name = name.as_bytes();
        match self
            .table
            .find_entry(hash_of(name), |(key, _)| key.as_bytes() == name)
        {
            Ok(held) => Some(held.remove().0.1),
            Err(_) => None,
        }
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Every entry, in no particular order (see the type's comment).
    pub fn iter(&self) -> impl Iterator<Item = (&NameKey, &V)> {
        self.table.iter().map(|(key, value)| (key, value))
    }

    /// Every value, in no particular order (see the type's comment).
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.table.iter().map(|(_, value)| value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_names_are_inline_long_ones_on_the_heap() {
        assert!(matches!(
            NameKey::from("hs1.example"),
            NameKey::Inline { .. }
        ));
        let longest = "a".repeat(INLINE_MAX);
        assert!(matches!(
            NameKey::from(longest.as_str()),
            NameKey::Inline { .. }
        ));
        let longer = "a".repeat(INLINE_MAX + 1);
        assert!(matches!(NameKey::from(longer.as_str()), NameKey::Heap(_)));
        assert_eq!(size_of::<NameKey>(), 32);
    }

    proptest! {
        /// A [`NameMap`] answers a `&str` as a map keyed by `String` does, and the keys keep
        /// the strings' order.
        #[test]
        fn a_str_finds_what_a_string_key_would(
            names in proptest::collection::vec("[a-z0-9.:-]{0,40}", 1..20),
            probe in "[a-z0-9.:-]{0,40}",
        ) {
            let mut by_key: NameMap<usize> = NameMap::default();
            let mut by_string: std::collections::HashMap<String, usize, IdKeys> =
                Default::default();
            for (index, name) in names.iter().enumerate() {
                by_key.insert(name, index);
                by_string.insert(name.clone(), index);
            }
            for name in names.iter().chain(std::iter::once(&probe)) {
                prop_assert_eq!(by_key.get(name), by_string.get(name.as_str()));
                prop_assert_eq!(by_key.len(), by_string.len());
                let key = NameKey::from(name.as_str());
                prop_assert_eq!(key.as_str(), name.as_str());
            }
            let (a, b) = (&names[0], &probe);
            prop_assert_eq!(NameKey::from(a.as_str()).cmp(&NameKey::from(b.as_str())), a.cmp(b));
        }
    }
}
