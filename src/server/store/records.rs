//! [`Records`]: a room's event records, found by event id.
//!
//! A hash table of the records themselves, each found by the event id its PDU holds: no
//! separate key is stored (a key was 16 bytes per event per server, about 25 once the table's
//! spare room is counted, at a thousand servers and ten thousand events a quarter gigabyte).
//! The id a record is known by is its PDU's shared `Arc<str>`
//! ([`crate::proto::pdu::Pdu::shared_event_id`]), which every server holding the PDU shares.
//!
//! Invariants: at most one record per event id; a record's id never changes while it is held
//! (a replacing record has the same id); nothing reads the table in its iteration order where
//! the order can reach a result ([`Records::sorted`] sorts first; `values` is for order-free
//! folds).

use super::id_map::IdKeys;
use super::record::EventRecord;
use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use std::hash::BuildHasher;
use std::sync::Arc;

#[derive(Clone, Debug, Default)]
pub(crate) struct Records {
    table: HashTable<EventRecord>,
}

fn hash_of(event_id: &str) -> u64 {
    IdKeys.hash_one(event_id)
}

fn id_of(record: &EventRecord) -> &str {
    record.pdu.event_id()
}

impl Records {
    pub fn get(&self, event_id: &str) -> Option<&EventRecord> {
        self.table
            .find(hash_of(event_id), |record| id_of(record) == event_id)
    }

    pub fn get_mut(&mut self, event_id: &str) -> Option<&mut EventRecord> {
        self.table
            .find_mut(hash_of(event_id), |record| id_of(record) == event_id)
    }

    /// The record and the shared id it is known by.
    pub fn get_key_value(&self, event_id: &str) -> Option<(&Arc<str>, &EventRecord)> {
        self.get(event_id)
            .map(|record| (record.pdu.shared_event_id_ref(), record))
    }

    pub fn contains_key(&self, event_id: &str) -> bool {
        self.get(event_id).is_some()
    }

    /// Holds `record`, replacing the one with the same event id if any.
    pub fn insert(&mut self, record: EventRecord) -> Option<EventRecord> {
        let event_id = id_of(&record);
        let hash = hash_of(event_id);
        let found = self.table.entry(
            hash,
            |held| id_of(held) == event_id,
            |held| hash_of(id_of(held)),
        );
        match found {
            Entry::Occupied(mut held) => Some(std::mem::replace(held.get_mut(), record)),
            Entry::Vacant(slot) => {
                slot.insert(record);
                None
            }
        }
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Every record, in no particular order: for order-free folds (counts, maxima, sets).
    pub fn values(&self) -> impl Iterator<Item = &EventRecord> {
        self.table.iter()
    }

    /// Every record with its id, in event-id (byte) order.
    pub fn sorted(&self) -> Vec<(&str, &EventRecord)> {
        let mut entries: Vec<(&str, &EventRecord)> = self
            .table
            .iter()
            .map(|record| (id_of(record), record))
            .collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        entries
    }
}

impl std::ops::Index<&str> for Records {
    type Output = EventRecord;

    fn index(&self, event_id: &str) -> &EventRecord {
        self.get(event_id)
            .unwrap_or_else(|| panic!("no record of {event_id}"))
    }
}

/// Equal when they hold equal records under the same ids.
impl PartialEq for Records {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .values()
                .all(|record| other.get(id_of(record)) == Some(record))
    }
}
