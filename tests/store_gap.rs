//! Placing an event with the state a peer reports when the gap before it cannot be closed
//! (`/state_ids` fallback), and the DAG joining up when the gap is filled later.

mod store_common;

use fedlab::proto::event::StateMap;
use fedlab::server::store::{EventStatus, StoreError};
use std::collections::BTreeSet;
use store_common::*;

#[test]
fn an_event_placed_with_state_then_its_gap_filled() {
    for id in ["2", "11", "12"] {
        let mut room = standard_room(v(id));
        room.join(BOB);
        let known = room.message(BOB, "the last event the receiver saw");
        let known_count = room.built().len();
        let mut gap = Vec::new();
        for index in 0..30 {
            gap.push(room.message(ALICE, &format!("missed {index}")));
        }
        gap.push(room.join(CAROL));
        let latest = room.message(CAROL, "hello");

        let mut store = fresh_store(&room);
        ingest_all(&mut store, &room.built()[..known_count]);
        assert!(matches!(
            store.ingest(latest.clone(), false),
            Err(StoreError::Missing { .. })
        ));

        // What the sender reports: the state before `latest` and its auth chain.
        let (state_ids, auth_chain_ids) = room.author().state_ids_at(latest.event_id()).unwrap();
        let needed: BTreeSet<String> = state_ids.iter().chain(&auth_chain_ids).cloned().collect();
        let outliers = needed
            .iter()
            .filter(|event_id| !store.contains(event_id))
            .map(|event_id| (room.pdu(event_id), false))
            .collect();
        store.ingest_outliers(outliers).unwrap();
        let state_before: StateMap = room.author().state_before(latest.event_id()).unwrap();
        let outcome = store
            .ingest_with_state(latest.clone(), false, state_before.clone())
            .unwrap();
        assert_eq!(outcome.status, EventStatus::Accepted, "room v{id}");
        assert_eq!(store.state_before(latest.event_id()).unwrap(), state_before);
        let both: BTreeSet<String> = [known.event_id(), latest.event_id()]
            .map(str::to_owned)
            .into();
        assert_eq!(
            store.forward_extremities(),
            &both,
            "no link between them yet"
        );
        let carol_key = ("m.room.member".to_owned(), CAROL.to_owned());
        assert!(store.current_state().contains_key(&carol_key));
        store.check_invariants().unwrap();

        // Filling the gap joins the DAG up: one extremity, and the same state as the sender.
        ingest_all(&mut store, &gap);
        assert_eq!(
            store.forward_extremities().iter().collect::<Vec<_>>(),
            [latest.event_id()],
            "room v{id}"
        );
        assert_eq!(store.current_state(), room.author().current_state());
        assert_eq!(
            store.metrics().outliers,
            0,
            "Carol's join came as an outlier, then with state"
        );
        assert_matches_replay(&store);
    }
}

#[test]
fn a_state_handed_in_must_be_held_and_consistent() {
    let mut room = standard_room(v("11"));
    room.join(BOB);
    let latest = room.message(BOB, "x");
    let mut store = fresh_store(&room);
    ingest_all(&mut store, &room.built()[..3]);
    let state_before = room.author().state_before(latest.event_id()).unwrap();

    let error = store
        .ingest_with_state(latest.clone(), false, state_before.clone())
        .unwrap_err();
    let StoreError::Missing {
        state_events,
        prev_events,
        ..
    } = &error
    else {
        panic!("{error}")
    };
    assert!(prev_events.is_empty(), "prev events are not needed");
    assert_eq!(state_events.len(), 2, "join rules and Bob's join: {error}");

    ingest_all(&mut store, &room.built()[3..5]);
    let mut mislabelled = state_before.clone();
    let join_rules = mislabelled
        .remove(&("m.room.join_rules".to_owned(), String::new()))
        .unwrap();
    mislabelled.insert(("m.room.topic".to_owned(), String::new()), join_rules);
    let error = store
        .ingest_with_state(latest.clone(), false, mislabelled)
        .unwrap_err();
    assert!(matches!(error, StoreError::BadState { .. }), "{error}");
    assert!(!store.contains(latest.event_id()));
}
