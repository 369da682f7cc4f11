//! The names a room's state groups hold, numbered: each state key and each event id is kept
//! once per room, and groups hold pairs of small numbers instead of strings.
//!
//! A room of a thousand members keeps a snapshot of its whole state every so many groups, on
//! every server; held as strings, such snapshots were most of a large run's memory, and
//! comparing groups compared strings. Numbered, an entry is 8 bytes and compares as integers.
//!
//! Invariants: a name's number never changes once given; numbers are dense, in the order the
//! names were first seen. That order is the room's history on this server, not the order of
//! the strings: nothing whose order can reach results may be sorted by number (the groups'
//! public answers are maps keyed by the strings).

use super::id_map::IdKeys;
use crate::proto::event::StateKey;
use hashbrown::HashTable;
use std::hash::{BuildHasher, Hash, Hasher};
use std::num::NonZeroU32;
use std::sync::Arc;

/// A state key's number in its room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyNo(u32);

/// An event id's number in its room; never zero, so `Option<EventNo>` is four bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventNo(NonZeroU32);

impl EventNo {
    /// Where the id numbered this is listed.
    fn slot(self) -> usize {
        self.0.get() as usize - 1
    }
}

/// The state keys and event ids of one room's groups, each with its number. Each name is held
/// once, in the list its number indexes; the lookups from names to numbers are hash tables of
/// the numbers alone, which compare a candidate's name in the list (a room of a thousand
/// members on each of a thousand servers held every key twice, once per ordered map).
/// The tables are only looked up, never iterated, so their order cannot reach a result.
#[derive(Clone, Debug, Default)]
pub struct StateNames {
    keys: Vec<StateKey>,
    key_numbers: HashTable<KeyNo>,
    event_ids: Vec<Arc<str>>,
    event_numbers: HashTable<EventNo>,
}

/// Equal when they number the same names alike (the lookup tables follow from the lists).
impl PartialEq for StateNames {
    fn eq(&self, other: &Self) -> bool {
        self.keys == other.keys && self.event_ids == other.event_ids
    }
}

impl Eq for StateNames {}

fn key_hash(event_type: &str, state_key: &str) -> u64 {
    let mut hasher = IdKeys.build_hasher();
    event_type.hash(&mut hasher);
    state_key.hash(&mut hasher);
    hasher.finish()
}

fn event_hash(event_id: &str) -> u64 {
    IdKeys.hash_one(event_id)
}

impl StateNames {
    /// The number of `key`, if any group has held it.
    pub fn key_no(&self, key: &StateKey) -> Option<KeyNo> {
        self.key_no_of(&key.0, &key.1)
    }

    /// The number of the key (`event_type`, `state_key`), if any group has held it.
    pub fn key_no_of(&self, event_type: &str, state_key: &str) -> Option<KeyNo> {
        self.find_key(key_hash(event_type, state_key), event_type, state_key)
    }

    fn find_key(&self, hash: u64, event_type: &str, state_key: &str) -> Option<KeyNo> {
        let keys = &self.keys;
        self.key_numbers
            .find(hash, |number| {
                let held = &keys[number.0 as usize];
                held.0 == event_type && held.1 == state_key
            })
            .copied()
    }

    /// The number of `key`, given now if it has none yet.
    pub fn number_key(&mut self, key: &StateKey) -> KeyNo {
        let hash = key_hash(&key.0, &key.1);
        if let Some(number) = self.find_key(hash, &key.0, &key.1) {
            return number;
        }
        let number = KeyNo(u32::try_from(self.keys.len()).expect("fewer than 2^32 state keys"));
        self.keys.push(key.clone());
        let keys = &self.keys;
        self.key_numbers.insert_unique(hash, number, |held| {
            let (event_type, state_key) = &keys[held.0 as usize];
            key_hash(event_type, state_key)
        });
        number
    }

    pub fn key(&self, number: KeyNo) -> &StateKey {
        &self.keys[number.0 as usize]
    }

    /// The number of `event_id`, given now if it has none yet.
    pub fn number_event(&mut self, event_id: &str) -> EventNo {
        let hash = event_hash(event_id);
        let event_ids = &self.event_ids;
        let held = self
            .event_numbers
            .find(hash, |number| &*event_ids[number.slot()] == event_id);
        if let Some(number) = held {
            return *number;
        }
        let position = u32::try_from(self.event_ids.len() + 1).expect("fewer than 2^32 events");
        let number = EventNo(NonZeroU32::new(position).expect("positions start at 1"));
        self.event_ids.push(Arc::from(event_id));
        let event_ids = &self.event_ids;
        self.event_numbers
            .insert_unique(hash, number, |held| event_hash(&event_ids[held.slot()]));
        number
    }

    pub fn event_id(&self, number: EventNo) -> &str {
        &self.event_ids[number.slot()]
    }

    /// Approximate bytes held: the strings, plus each name's slot and table entry. A key's
    /// strings count twice, as they did when the names held them twice, so that
    /// `victim_store_bytes_max` stays comparable across versions.
    pub fn bytes_approx(&self) -> usize {
        const NAME_OVERHEAD_BYTES: usize = 64;
        let keys: usize = self
            .keys
            .iter()
            .map(|key| 2 * (key.0.len() + key.1.len()) + NAME_OVERHEAD_BYTES)
            .sum();
        let events: usize = self
            .event_ids
            .iter()
            .map(|event_id| event_id.len() + NAME_OVERHEAD_BYTES)
            .sum();
        keys + events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_their_numbers_and_read_back() {
        let mut names = StateNames::default();
        let member = ("m.room.member".to_owned(), "@a:x".to_owned());
        let topic = ("m.room.topic".to_owned(), String::new());
        let first = names.number_key(&member);
        let second = names.number_key(&topic);
        assert_ne!(first, second);
        assert_eq!(names.number_key(&member), first, "numbered once");
        assert_eq!(names.key(second), &topic);
        assert_eq!(names.key_no(&topic), Some(second));
        assert_eq!(names.key_no_of("m.room.member", "@a:x"), Some(first));
        assert_eq!(
            names.key_no(&("m.room.name".to_owned(), String::new())),
            None
        );
        let event = names.number_event("$one");
        assert_eq!(names.number_event("$one"), event);
        assert_ne!(names.number_event("$two"), event);
        assert_eq!(names.event_id(event), "$one");
        assert_eq!(std::mem::size_of::<(KeyNo, Option<EventNo>)>(), 8);
    }
}
