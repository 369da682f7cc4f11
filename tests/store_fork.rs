//! A fork and a merge: two extremities while the branches are apart, current state resolved
//! from both, the state before the merge event resolved the same way, and every state checked
//! against the replay of the DAG by `state_res`.

mod store_common;

use fedlab::server::store::EventStatus;
use fedlab::server::store::testkit::EventSpec;
use serde_json::json;
use std::collections::BTreeSet;
use store_common::*;

fn topic(sender: &str, text: &str, prev: &str) -> EventSpec {
    EventSpec::new(sender, "m.room.topic")
        .state_key("")
        .content(json!({"topic": text}))
        .prev(&[prev])
}

#[test]
fn fork_and_merge_in_every_state_resolution_algorithm() {
    for id in ["1", "2", "11", "12"] {
        let mut room = standard_room(v(id));
        let bob_join = room.join(BOB);
        let fork = bob_join.event_id().to_owned();
        // Branch A: Alice lets Bob set state, Bob sets the topic.
        let power = room.event(
            EventSpec::new(ALICE, "m.room.power_levels")
                .state_key("")
                .content(json!({"users": if id == "12" { json!({BOB: 50}) } else { json!({ALICE: 100, BOB: 50}) },
                                "state_default": 50}))
                .prev(&[&fork]),
        );
        let bob_topic = room.event(topic(BOB, "from bob", power.event_id()));
        // Branch B: Alice sets the topic and the name.
        let alice_topic = room.event(topic(ALICE, "from alice", &fork));
        let name = room.event(
            EventSpec::new(ALICE, "m.room.name")
                .state_key("")
                .content(json!({"name": "n"}))
                .prev(&[alice_topic.event_id()]),
        );
        let mut store = fresh_store(&room);
        ingest_all(&mut store, room.built());
        let branches: BTreeSet<String> = [bob_topic.event_id(), name.event_id()]
            .map(str::to_owned)
            .into();
        assert_eq!(store.forward_extremities(), &branches, "room v{id}");
        let (prevs, depth) = store.dag().prev_events_for_new_event();
        assert_eq!(prevs.len(), 2);
        assert_eq!(depth, 8);

        let current_before_merge = store.current_state().clone();
        let merge = room.message(ALICE, "merged");
        assert_eq!(merge.event().prev_events.len(), 2);
        let outcome = store.ingest(merge.clone(), false).unwrap();
        assert_eq!(outcome.status, EventStatus::Accepted, "room v{id}");
        assert_eq!(
            store.state_before(merge.event_id()).unwrap(),
            current_before_merge,
            "room v{id}: the merge event sees the state current state resolved"
        );
        assert_eq!(
            store.forward_extremities().iter().collect::<Vec<_>>(),
            [merge.event_id()]
        );
        let key = |t: &str| (t.to_owned(), String::new());
        let resolved = store.current_state();
        assert_eq!(resolved[&key("m.room.name")], name.event_id());
        assert_eq!(resolved[&key("m.room.power_levels")], power.event_id());
        let topic_holder = &resolved[&key("m.room.topic")];
        assert!(
            topic_holder == bob_topic.event_id() || topic_holder == alice_topic.event_id(),
            "room v{id}"
        );
        assert_matches_replay(&store);
        store.check_invariants().unwrap();
    }
}

#[test]
fn a_merge_of_the_same_states_is_resolved_once() {
    let mut room = standard_room(v("11"));
    let fork = room.join(BOB).event_id().to_owned();
    let a = room.event(topic(ALICE, "a", &fork));
    let b = room.event(
        EventSpec::new(ALICE, "m.room.name")
            .state_key("")
            .content(json!({"name": "b"}))
            .prev(&[&fork]),
    );
    let mut store = fresh_store(&room);
    ingest_all(&mut store, room.built());
    let groups_after_fork = store.metrics().state_groups;
    // Two merge events with the same prev events, on two branches of their own.
    let prevs = [a.event_id(), b.event_id()];
    let first = room.event(EventSpec::new(ALICE, "m.room.message").prev(&prevs));
    let second = room.event(EventSpec::new(BOB, "m.room.message").prev(&prevs));
    ingest_all(&mut store, &[first.clone(), second.clone()]);
    assert_eq!(
        store.record(first.event_id()).unwrap().state(),
        store.record(second.event_id()).unwrap().state()
    );
    // Resolving {a, b} for current state made the one group both merges share.
    assert_eq!(store.metrics().state_groups, groups_after_fork);
    assert_eq!(store.forward_extremities().len(), 2);
}

#[test]
fn deep_histories_stay_within_the_snapshot_interval() {
    let mut room = standard_room(v("11"));
    for index in 0..150 {
        room.state(ALICE, "m.room.topic", json!({"topic": format!("t{index}")}));
    }
    let store = store_with_all(&room);
    let groups = store.state_groups();
    let snapshots = (0..groups.len())
        .filter(|index| {
            groups
                .group(fedlab::server::store::StateGroupId(*index as u32))
                .is_snapshot()
        })
        .count();
    // The empty state, then one snapshot each 65 groups along the chain.
    assert_eq!(snapshots, 1 + groups.len() / 65);
    assert_matches_replay(&store);
}
