//! [`CurrentEvents`]: the events of a room's current state as held, found by state key with
//! one hash probe.
//!
//! The authorization rules read the current state a few times per placed event (the create
//! event, the power levels, the join rules, the sender's and the target's membership), once for
//! the state before an event placed on the current state and again for the soft-fail check.
//! Through the current state's map each read searched a B-tree of owned string pairs (a dozen
//! comparisons, each reading two heap strings of this server's own) and then found the event's
//! record by id; here it hashes the pair once and compares it with the key of the PDU found,
//! which every server holding the event shares.
//!
//! No key is stored: an entry is the held PDU itself, keyed by its own type and state key.
//!
//! Invariant (checked by [`RoomStore::check_invariants`](super::room::RoomStore)): the table
//! holds, for each entry of the current state whose event the store holds, that event's record's
//! PDU (the same `Arc`, redacted when the record is), and nothing else. The store keeps it so
//! where current state changes (`state.rs`), where a record is stored (`ingest.rs`) and where
//! one is redacted (`redaction.rs`). Never read in iteration order.

use super::id_map::IdKeys;
use super::records::Records;
use crate::proto::event::{StateMap, state_entry};
use crate::proto::pdu::Pdu;
use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

#[derive(Clone, Debug, Default)]
pub(crate) struct CurrentEvents {
    table: HashTable<Arc<Pdu>>,
}

/// Hashes a state key's two parts; the type's length first, so that no two pairs with the
/// same concatenation hash as one stream.
fn hash_of(event_type: &str, state_key: &str) -> u64 {
    let mut hasher = IdKeys.build_hasher();
    hasher.write_usize(event_type.len());
    hasher.write(event_type.as_bytes());
    hasher.write(state_key.as_bytes());
    hasher.finish()
}

/// The state key of a PDU in the table (every PDU in it is a state event).
fn key_of(pdu: &Pdu) -> (&str, &str) {
    let event = pdu.event();
    let state_key = event
        .state_key
        .as_deref()
        .expect("the current state holds only state events");
    (event.event_type.as_str(), state_key)
}

fn hash_of_pdu(pdu: &Arc<Pdu>) -> u64 {
    let (event_type, state_key) = key_of(pdu);
    hash_of(event_type, state_key)
}

impl CurrentEvents {
    /// The held event under (`event_type`, `state_key`) in the current state.
    pub fn get(&self, event_type: &str, state_key: &str) -> Option<&Arc<Pdu>> {
        self.table.find(hash_of(event_type, state_key), |pdu| {
            key_of(pdu) == (event_type, state_key)
        })
    }

    /// Makes the entry under (`event_type`, `state_key`) follow `current`: the record of the
    /// event it names there, or nothing when it names none or one not held.
    pub fn sync_key(
        &mut self,
        event_type: &str,
        state_key: &str,
        current: &StateMap,
        events: &Records,
    ) {
        let held = state_entry(current, event_type, state_key)
            .and_then(|event_id| events.get(event_id))
            .map(|record| record.pdu().clone());
        let hash = hash_of(event_type, state_key);
        let found = self.table.entry(
            hash,
            |pdu| key_of(pdu) == (event_type, state_key),
            hash_of_pdu,
        );
        match (found, held) {
            (Entry::Occupied(mut entry), Some(pdu)) => *entry.get_mut() = pdu,
            (Entry::Occupied(entry), None) => {
                entry.remove();
            }
            (Entry::Vacant(slot), Some(pdu)) => {
                slot.insert(pdu);
            }
            (Entry::Vacant(_), None) => {}
        }
    }

    /// After the record of `pdu`'s event was stored or redacted: follows it if the current
    /// state names that event.
    pub fn sync_event(&mut self, pdu: &Pdu, current: &StateMap, events: &Records) {
        let event = pdu.event();
        let Some(state_key) = event.state_key.as_deref() else {
            return;
        };
        let named = state_entry(current, &event.event_type, state_key)
            .is_some_and(|event_id| *event_id == event.event_id);
        if named {
            self.sync_key(&event.event_type, state_key, current, events);
        }
    }

    /// Rebuilds the table from `current` (after current state was replaced whole).
    pub fn rebuild(&mut self, current: &StateMap, events: &Records) {
        self.table.clear();
        for event_id in current.values() {
            if let Some(record) = events.get(event_id) {
                let pdu = record.pdu().clone();
                self.table
                    .insert_unique(hash_of_pdu(&pdu), pdu, hash_of_pdu);
            }
        }
    }

    /// Whether the table holds exactly the held events `current` names, as their records
    /// hold them; the error names the first key that differs.
    pub fn check(&self, current: &StateMap, events: &Records) -> Result<(), String> {
        let mut held = 0;
        for ((event_type, state_key), event_id) in current {
            let expected = events.get(event_id).map(|record| record.pdu());
            let found = self.get(event_type, state_key);
            let same = match (expected, found) {
                (Some(expected), Some(found)) => Arc::ptr_eq(expected, found),
                (None, None) => true,
                _ => false,
            };
            if !same {
                return Err(format!(
                    "the current events under ({event_type}, {state_key}) do not follow {event_id}"
                ));
            }
            held += usize::from(expected.is_some());
        }
        if held != self.table.len() {
            return Err(format!(
                "the current events hold {} entries for {held} held events of current state",
                self.table.len()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::store::test_support::*;
    use crate::server::store::testkit::{EventSpec, RoomBuilder};
    use serde_json::json;

    /// The topic in the current state as the store hands it out, and the record it must be.
    fn current_topic(store: &crate::server::store::RoomStore) -> Option<Arc<Pdu>> {
        let found = store.current_state_event_of("m.room.topic", "");
        let expected = store
            .current_state()
            .get(&("m.room.topic".to_owned(), String::new()))
            .map(|event_id| store.record(event_id).unwrap().pdu().clone());
        assert_eq!(found.is_some(), expected.is_some());
        if let (Some(found), Some(expected)) = (&found, &expected) {
            assert!(Arc::ptr_eq(found, expected), "a stale topic event");
        }
        found
    }

    #[test]
    fn the_current_events_follow_new_state_forks_and_redactions() {
        let mut room = RoomBuilder::standard(v("12"), ALICE);
        let base = room.message(ALICE, "base");
        let first = room.state(ALICE, "m.room.topic", json!({"topic": "first"}));
        // A fork from before the topic: merging it moves current state between groups.
        let side = room.event(
            EventSpec::new(ALICE, "m.room.name")
                .state_key("")
                .content(json!({"name": "side"}))
                .prev(&[base.event_id()]),
        );
        let merge = room.message(ALICE, "merge");
        let second = room.state(ALICE, "m.room.topic", json!({"topic": "second"}));
        room.event(
            EventSpec::new(ALICE, "m.room.redaction")
                .content(json!({}))
                .redacts(second.event_id()),
        );
        let mut store = crate::server::store::RoomStore::new(
            room.room_id(),
            room.version(),
            crate::server::store::log::DurableLog::new(),
        );
        for pdu in room.built() {
            store.ingest(pdu.clone(), false).unwrap();
            store.check_invariants().unwrap();
            current_topic(&store);
        }
        assert!(store.has_state(side.event_id()) && store.has_state(merge.event_id()));
        let topic = current_topic(&store).expect("a topic is set");
        assert_eq!(topic.event_id(), second.event_id());
        assert!(
            topic.event().content.get("topic").is_none(),
            "held redacted"
        );
        assert_ne!(first.event_id(), second.event_id());
    }

    #[test]
    fn a_stale_table_breaks_the_store_invariants() {
        let mut room = RoomBuilder::standard(v("11"), ALICE);
        room.state(ALICE, "m.room.topic", json!({"topic": "t"}));
        let mut store = store_with_all(&room);
        store.check_invariants().unwrap();
        store
            .current_events
            .rebuild(&StateMap::new(), &store.events);
        let error = store.check_invariants().unwrap_err();
        assert!(error.contains("current events"), "{error}");
    }
}
