//! Property: ingesting the same DAG in any topological order gives the same current state,
//! the same forward extremities, the same verdicts and the same state after every event.
//!
//! The DAGs are random forks and merges in which only the room creator changes state, so no
//! event can be soft-failed: soft failure depends on arrival order by definition.

mod store_common;

use fedlab::proto::pdu::Pdu;
use fedlab::server::store::RoomStore;
use fedlab::server::store::testkit::EventSpec;
use proptest::prelude::*;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use store_common::*;

/// Only the creator changes state, so no event can be soft-failed.
fn spec(step: &Step, index: usize) -> EventSpec {
    match step.kind {
        0 => EventSpec::new(ALICE, "m.room.topic")
            .state_key("")
            .content(json!({"topic": format!("topic {index}")})),
        1 => EventSpec::new(ALICE, "m.room.name")
            .state_key("")
            .content(json!({"name": format!("name {index}")})),
        _ => EventSpec::new(USERS[step.sender], "m.room.message")
            .content(json!({"body": format!("message {index}")})),
    }
}

/// A topological order of `pdus` (prev and auth events first) picking, among the events
/// ready, the one with the smallest priority.
fn shuffled_order(pdus: &[Arc<Pdu>], priorities: &[u32]) -> Vec<Arc<Pdu>> {
    let known: BTreeSet<&str> = pdus.iter().map(|pdu| pdu.event_id()).collect();
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    let mut order = Vec::new();
    while order.len() < pdus.len() {
        let (ready, pdu) = pdus
            .iter()
            .enumerate()
            .filter(|(_, pdu)| !placed.contains(pdu.event_id()))
            .filter(|(_, pdu)| {
                let event = pdu.event();
                event
                    .prev_events
                    .iter()
                    .chain(&event.auth_events)
                    .all(|id| placed.contains(id.as_str()) || !known.contains(id.as_str()))
            })
            .min_by_key(|(index, _)| (priorities[index % priorities.len()], *index))
            .expect("a DAG always has a ready event");
        placed.insert(pdus[ready].event_id());
        order.push(pdu.clone());
    }
    order
}

fn summary(store: &RoomStore) -> (BTreeMap<String, Option<String>>, BTreeSet<String>) {
    let states = store
        .records()
        .map(|(id, _)| {
            let state = store.state_after(id).map(|s| format!("{s:?}"));
            (id.to_owned(), state)
        })
        .collect();
    (states, store.forward_extremities().clone())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn any_topological_order_gives_the_same_room(
        version in prop::sample::select(vec!["1", "2", "11", "12"]),
        steps in prop::collection::vec(step(3, 4, USERS.len()), 1..14),
        priorities in prop::collection::vec(any::<u32>(), 1..40),
    ) {
        let room = random_room(version, &steps, spec);
        let in_build_order = store_with_all(&room);
        let mut shuffled = fresh_store(&room);
        for pdu in shuffled_order(room.built(), &priorities) {
            let outcome = shuffled.ingest(pdu, false).unwrap();
            prop_assert!(outcome.is_accepted(), "{:?}", outcome);
        }
        shuffled.check_invariants().unwrap();
        prop_assert_eq!(shuffled.current_state(), in_build_order.current_state());
        prop_assert_eq!(summary(&shuffled), summary(&in_build_order));
        prop_assert_eq!(shuffled.accepted_event_ids(), in_build_order.accepted_event_ids());
        prop_assert_eq!(shuffled.current_state(), room.author().current_state());
    }
}
