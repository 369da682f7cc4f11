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

/// History fetched after a join that does not reach what the joiner holds: its oldest event
/// is placed with the state a peer reports before it, the rest on top of it, in one batch.
/// The joiner ends with that history held with state, the resident's current state and its
/// join as the only extremity; the log replays to an equal store.
#[test]
fn history_cut_off_is_placed_from_its_oldest_event_with_state() {
    for id in ["2", "11", "12"] {
        let mut room = standard_room(v(id));
        let mut history = Vec::new();
        for index in 0..20 {
            history.push(room.message(ALICE, &format!("before the join {index}")));
        }
        let carol_join = room.join(CAROL);

        // The joiner: its join with the state before it (send_join), and that state's chain.
        let mut store = fresh_store(&room);
        let needed = |event_id: &str| {
            let (state_ids, auth_chain_ids) = room.author().state_ids_at(event_id).unwrap();
            state_ids
                .into_iter()
                .chain(auth_chain_ids)
                .collect::<BTreeSet<String>>()
        };
        let outliers = needed(carol_join.event_id())
            .iter()
            .map(|event_id| (room.pdu(event_id), false))
            .collect();
        store.ingest_outliers(outliers).unwrap();
        let join_state = room.author().state_before(carol_join.event_id()).unwrap();
        store
            .ingest_with_state(carol_join.clone(), false, join_state)
            .unwrap();
        let current = store.current_state().clone();

        // Backfill took the newest ten messages; the oldest of them cites one never fetched.
        let (beyond, taken) = history.split_at(10);
        let cut = &taken[0];
        let cut_state = room.author().state_before(cut.event_id()).unwrap();
        assert!(needed(cut.event_id()).iter().all(|id| store.contains(id)));
        let mut rest: Vec<(std::sync::Arc<_>, bool)> =
            taken[1..].iter().map(|pdu| (pdu.clone(), false)).collect();
        rest.reverse();
        rest.sort_by_key(|(pdu, _)| pdu.event().depth);
        let outcomes = store.ingest_history(vec![(cut.clone(), false, cut_state)], rest);

        assert_eq!(outcomes.len(), taken.len(), "room v{id}");
        assert!(outcomes.iter().all(|o| o.status == EventStatus::Accepted));
        assert!(taken.iter().all(|pdu| store.has_state(pdu.event_id())));
        assert!(!beyond.iter().any(|pdu| store.contains(pdu.event_id())));
        assert_eq!(store.current_state(), &current, "room v{id}");
        assert_eq!(
            store.forward_extremities().iter().collect::<Vec<_>>(),
            [carol_join.event_id()],
            "room v{id}"
        );
        store.check_invariants().unwrap();
        let recovered = fedlab::server::store::RoomStore::recover(store.log().clone()).unwrap();
        assert!(
            recovered == store,
            "room v{id}: replay places the cut alike"
        );
    }
}
