//! Property: the store's shortcuts for the state before an event (one prev event, prev events
//! sharing one state group, memoised resolutions, current state kept by deltas) give exactly
//! the state the full algorithm gives: the resolution of the states after *every* prev event,
//! duplicates included, with no memo.
//!
//! The DAGs are random forks and merges of state changes (topic, name, power levels raised for
//! a user, joins and leaves) and messages, delivered in build order.

mod store_common;

use fedlab::proto::event::{Event, StateMap};
use fedlab::proto::state_res::{EventSource, resolve};
use fedlab::server::store::RoomStore;
use fedlab::server::store::shared_resolutions::SharedResolutions;
use fedlab::server::store::testkit::EventSpec;
use proptest::prelude::*;
use serde_json::json;
use std::sync::Arc;
use store_common::*;

fn spec(step: &Step, index: usize) -> EventSpec {
    let sender = USERS[step.sender];
    match step.kind {
        0 => EventSpec::new(sender, "m.room.topic")
            .state_key("")
            .content(json!({"topic": format!("topic {index}")})),
        1 => EventSpec::new(ALICE, "m.room.name")
            .state_key("")
            .content(json!({"name": format!("name {index}")})),
        2 => EventSpec::new(ALICE, "m.room.power_levels")
            .state_key("")
            .content(json!({"users": {ALICE: 100, sender: 50}, "state_default": 50})),
        3 => EventSpec::new(sender, "m.room.member")
            .state_key(sender)
            .content(json!({"membership": "leave"})),
        4 => EventSpec::new(sender, "m.room.member")
            .state_key(sender)
            .content(json!({"membership": "join"})),
        _ => EventSpec::new(sender, "m.room.message")
            .content(json!({"body": format!("message {index}")})),
    }
}

/// The events of a store with their rejection marks, for the full algorithm.
struct Held<'a>(&'a RoomStore);

impl EventSource for Held<'_> {
    fn event(&self, event_id: &str) -> Option<&Event> {
        self.0.record(event_id).map(|record| record.pdu().event())
    }

    fn is_rejected(&self, event_id: &str) -> bool {
        self.0
            .status(event_id)
            .is_some_and(|status| status.is_rejected())
    }
}

/// The full algorithm: the resolution of every given state, none skipped or deduplicated.
fn resolve_all(store: &RoomStore, states: &[StateMap]) -> StateMap {
    if states.is_empty() {
        return StateMap::new();
    }
    let version = store.room_version();
    resolve(version, version.state_res, states, &Held(store))
        .unwrap()
        .state
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn shortcuts_give_the_state_of_the_full_algorithm(
        version in prop::sample::select(vec!["1", "2", "11", "12"]),
        steps in prop::collection::vec(step(4, 7, USERS.len()), 1..16),
    ) {
        let room = random_room(version, &steps, spec);
        let mut store = fresh_store(&room);
        for pdu in room.built() {
            store.ingest(pdu.clone(), false).unwrap();
            let event = pdu.event();
            let prev_states: Vec<StateMap> = event
                .prev_events
                .iter()
                .map(|id| store.state_after(id).unwrap())
                .collect();
            if !prev_states.is_empty() {
                prop_assert_eq!(
                    store.state_before(&event.event_id).unwrap(),
                    resolve_all(&store, &prev_states),
                    "state before {}", event.event_id
                );
            }
            let extremity_states: Vec<StateMap> = store
                .forward_extremities()
                .iter()
                .map(|id| store.state_after(id).unwrap())
                .collect();
            prop_assert_eq!(
                store.current_state(),
                &resolve_all(&store, &extremity_states),
                "current state after {}", event.event_id
            );
        }
        store.check_invariants().unwrap();
    }

    /// Stores that share resolutions hold exactly what a store resolving on its own holds
    /// (their state groups included), whether they made a resolution or found it made.
    #[test]
    fn shared_resolutions_change_nothing_a_store_holds(
        version in prop::sample::select(vec!["2", "11", "12"]),
        steps in prop::collection::vec(step(4, 7, USERS.len()), 1..16),
    ) {
        let room = random_room(version, &steps, spec);
        let shared = Arc::new(SharedResolutions::default());
        let mut alone = fresh_store(&room);
        let mut first = fresh_store(&room);
        let mut second = fresh_store(&room);
        first.share_resolutions(Some(shared.clone()));
        second.share_resolutions(Some(shared.clone()));
        for pdu in room.built() {
            alone.ingest(pdu.clone(), false).unwrap();
            first.ingest(pdu.clone(), false).unwrap();
        }
        let made = shared.stats();
        for pdu in room.built() {
            second.ingest(pdu.clone(), false).unwrap();
        }
        prop_assert!(alone == first, "the store that made the resolutions");
        prop_assert!(alone == second, "the store that found them made");
        second.check_invariants().unwrap();
        let found = shared.stats();
        if version == "2" {
            // Ids chosen by senders name no one event: nothing is shared.
            prop_assert_eq!(found.hits + found.misses, 0);
        } else {
            prop_assert_eq!(found.misses, made.misses, "the second store made none");
            prop_assert_eq!(found.hits - made.hits, made.misses + made.hits);
        }
    }
}
