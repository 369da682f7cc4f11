//! The read paths peers use to fill gaps: `/backfill`, `/get_missing_events`, `/state_ids`
//! and auth chains: their order, their limits and what they skip.

mod store_common;

use fedlab::server::store::testkit::EventSpec;
use fedlab::server::store::{BACKFILL_LIMIT_MAX, MISSING_EVENTS_LIMIT_MAX};
use serde_json::json;
use store_common::*;

fn message_after(sender: &str, body: &str, prev: &[&str]) -> EventSpec {
    EventSpec::new(sender, "m.room.message")
        .content(json!({"body": body}))
        .prev(prev)
}

/// A room whose history ends in a fork of two branches of three messages each.
/// Returns the builder, the fork point, and the two branches (oldest first).
fn forked_room() -> (
    fedlab::server::store::testkit::RoomBuilder,
    String,
    [Vec<String>; 2],
) {
    let mut room = standard_room(v("11"));
    let fork = room.join(BOB).event_id().to_owned();
    let mut branches: [Vec<String>; 2] = [vec![], vec![]];
    for (index, sender) in [ALICE, BOB].into_iter().enumerate() {
        let mut prev = fork.clone();
        for step in 0..3 {
            let pdu = room.event(message_after(sender, &format!("{index}.{step}"), &[&prev]));
            prev = pdu.event_id().to_owned();
            branches[index].push(prev.clone());
        }
    }
    (room, fork, branches)
}

#[test]
fn backfill_walks_deepest_first_from_the_given_events() {
    let (room, fork, branches) = forked_room();
    let store = store_with_all(&room);
    let from = [branches[0][2].clone(), branches[1][2].clone()];
    let events = ids(&store.backfill(&from, 7));
    // Depths: each branch 6, 7, 8 above the fork at depth 5; equal depths by event id.
    let mut expected = Vec::new();
    for step in (0..3).rev() {
        let mut pair = [branches[0][step].clone(), branches[1][step].clone()];
        pair.sort();
        expected.extend(pair);
    }
    expected.push(fork.clone());
    assert_eq!(events, expected);
    let depths: Vec<u64> = events
        .iter()
        .map(|id| store.dag().depth(id).unwrap())
        .collect();
    assert!(depths.windows(2).all(|pair| pair[0] >= pair[1]));

    // The whole room, newest first, ends at the create event; limits are clamped.
    let all = store.backfill(&from, 1000);
    assert_eq!(all.len(), room.built().len());
    assert_eq!(
        all.last().unwrap().event_id(),
        room.create_event().event_id()
    );
    assert_eq!(store.backfill(&from, 2).len(), 2);
    assert!(store.backfill(&["$unknown".to_owned()], 10).is_empty());
}

#[test]
fn missing_events_walk_back_from_latest_and_stop_at_earliest() {
    let (room, fork, branches) = forked_room();
    let store = store_with_all(&room);
    let latest = [branches[0][2].clone()];
    // The requester has the fork point: it is missing the first two of branch 0.
    let events = ids(&store.missing_events(std::slice::from_ref(&fork), &latest, 10, 0));
    assert_eq!(events, [branches[0][0].clone(), branches[0][1].clone()]);

    // Without `earliest`, the walk goes to the create event, oldest first, up to the limit.
    let events = ids(&store.missing_events(&[], &latest, 3, 0));
    assert_eq!(
        events,
        [fork.clone(), branches[0][0].clone(), branches[0][1].clone()],
        "the three nearest, returned oldest first"
    );
    // min_depth: nothing below depth 6 (the fork is at 5).
    assert_eq!(store.dag().depth(&fork), Some(5));
    let events = ids(&store.missing_events(&[], &latest, 10, 6));
    assert_eq!(events, [branches[0][0].clone(), branches[0][1].clone()]);

    // Two latest events: both branches, each event once.
    let latest = [branches[0][2].clone(), branches[1][2].clone()];
    let events = store.missing_events(&[fork], &latest, 10, 0);
    assert_eq!(events.len(), 4);
}

#[test]
fn state_ids_give_the_state_before_the_event_and_its_auth_chain() {
    for id in ["11", "12"] {
        let mut room = standard_room(v(id));
        let bob_join = room.join(BOB);
        let topic = room.state(BOB, "m.room.topic", json!({"topic": "no power"}));
        let message = room.message(ALICE, "m");
        let store = store_with_all(&room);

        let (state_ids, auth_chain) = store.state_ids_at(bob_join.event_id()).unwrap();
        assert_eq!(
            state_ids.len(),
            4,
            "create, alice, power levels, join rules"
        );
        assert!(!state_ids.contains(&bob_join.event_id().to_owned()));
        let create = room.create_event().event_id().to_owned();
        assert_eq!(
            auth_chain.first(),
            Some(&create),
            "room v{id}: auth events first"
        );
        assert!(auth_chain.len() >= 3);

        let (state_ids, _) = store.state_ids_at(message.event_id()).unwrap();
        assert!(state_ids.contains(&bob_join.event_id().to_owned()));
        assert!(
            !state_ids.contains(&topic.event_id().to_owned()),
            "rejected"
        );

        // The auth chain of Bob's join: create, Alice's join, power levels, join rules.
        let chain = store.auth_chain_ids(&[bob_join.event_id().to_owned()]);
        assert_eq!(chain.len(), 4, "room v{id}: {chain:?}");
        assert_eq!(chain[0], create);
        let pdus = store.auth_chain(&[bob_join.event_id().to_owned()]);
        assert_eq!(ids(&pdus), chain);
        assert!(store.state_ids_at("$nope").is_err());
    }
}

#[test]
fn limits_are_clamped_to_the_maxima() {
    let mut room = standard_room(v("11"));
    for index in 0..110 {
        room.message(ALICE, &format!("{index}"));
    }
    let mut store = fresh_store(&room);
    for pdu in room.built() {
        store.ingest(pdu.clone(), false).unwrap();
    }
    let latest = room.built().last().unwrap().event_id().to_owned();
    let backfilled = store.backfill(std::slice::from_ref(&latest), usize::MAX);
    assert_eq!(backfilled.len(), BACKFILL_LIMIT_MAX);
    assert_eq!(backfilled[0].event_id(), latest);
    let missing = store.missing_events(&[], &[latest], usize::MAX, 0);
    assert_eq!(missing.len(), MISSING_EVENTS_LIMIT_MAX);
}
