//! A linear room history in the store: state after every event, current state, extremities,
//! delta-based state groups, local events, duplicates and missing events.

mod store_common;

use fedlab::proto::pdu::build_pdu;
use fedlab::server::store::testkit::{EventSpec, server_key};
use fedlab::server::store::{EventStatus, LocalEventDraft, StoreError};
use serde_json::json;
use store_common::*;

const VERSIONS: [&str; 6] = ["1", "2", "6", "10", "11", "12"];

#[test]
fn linear_history_in_every_version() {
    for id in VERSIONS {
        let mut room = standard_room(v(id));
        room.join(BOB);
        room.message(BOB, "hello");
        let topic = room.state(ALICE, "m.room.topic", json!({"topic": "t"}));
        let last = room.message(ALICE, "bye");
        let store = store_with_all(&room);

        assert_eq!(
            store.forward_extremities().iter().collect::<Vec<_>>(),
            [last.event_id()],
            "room v{id}"
        );
        let key = |t: &str, k: &str| (t.to_owned(), k.to_owned());
        let current = store.current_state();
        assert_eq!(
            current.len(),
            6,
            "room v{id}: create, 2 members, power, join rules, topic"
        );
        assert_eq!(current[&key("m.room.topic", "")], topic.event_id());
        assert_eq!(
            store.current_state(),
            &store.state_after(last.event_id()).unwrap()
        );
        let metrics = store.metrics();
        assert_eq!(
            (metrics.accepted, metrics.rejected, metrics.soft_failed),
            (8, 0, 0)
        );
        assert_eq!(metrics.forward_extremities, 1);
        // The empty state plus one group per state event: messages share their group.
        assert_eq!(metrics.state_groups, 7, "room v{id}");
        assert_matches_replay(&store);
    }
}

#[test]
fn new_events_cite_the_extremity_and_are_checked_before_they_are_built() {
    for id in VERSIONS {
        let mut room = standard_room(v(id));
        room.join(BOB);
        let last = room.message(BOB, "hi");
        let mut store = store_with_all(&room);
        let draft = |sender: &str| LocalEventDraft {
            sender: sender.to_owned(),
            event_type: "m.room.message".to_owned(),
            state_key: None,
            content: json!({"body": "local"}).as_object().unwrap().clone(),
            redacts: None,
            origin_server_ts: 99,
        };
        let new = store.prepare_local_event(draft(BOB)).unwrap();
        assert_eq!(new.prev_events.len(), 1);
        assert_eq!(new.prev_events[0].event_id, last.event_id());
        assert_eq!(new.depth, last.event().depth + 1);
        assert_eq!(
            new.auth_events.len(),
            if id == "12" { 2 } else { 3 },
            "room v{id}"
        );
        let pdu = build_pdu(new, v(id), "b.example", &server_key("b.example")).unwrap();
        let outcome = store.ingest_local(pdu.clone()).unwrap();
        assert_eq!(outcome.status, EventStatus::Accepted);
        assert_eq!(
            store.forward_extremities().iter().collect::<Vec<_>>(),
            [pdu.event_id()]
        );

        let refused = store.prepare_local_event(draft(CAROL)).unwrap_err();
        assert!(
            matches!(refused, StoreError::NotAllowed { ref sender, .. } if sender == CAROL),
            "{refused}"
        );
        store.check_invariants().unwrap();
    }
}

#[test]
fn duplicates_change_nothing() {
    let room = standard_room(v("11"));
    let mut store = store_with_all(&room);
    let log_len = store.log().len();
    let metrics = store.metrics();
    let outcome = store.ingest(room.built()[2].clone(), false).unwrap();
    assert!(outcome.duplicate);
    assert_eq!(outcome.status, EventStatus::Accepted);
    assert_eq!(store.log().len(), log_len);
    assert_eq!(store.metrics(), metrics);
}

#[test]
fn missing_prev_and_auth_events_are_named_and_nothing_changes() {
    for id in ["11", "12"] {
        let mut room = standard_room(v(id));
        let join = room.join(BOB);
        let message = room.message(BOB, "hi");
        let mut store = fresh_store(&room);
        ingest_all(&mut store, &room.built()[..4]);
        let log_len = store.log().len();
        let error = store.ingest(message.clone(), false).unwrap_err();
        assert_eq!(
            error,
            StoreError::Missing {
                event_id: message.event_id().to_owned(),
                prev_events: vec![join.event_id().to_owned()],
                auth_events: vec![join.event_id().to_owned()],
                state_events: vec![],
            },
            "room v{id}"
        );
        assert_eq!(store.missing_prev_events(&message), [join.event_id()]);
        assert_eq!(store.log().len(), log_len);
        assert!(!store.contains(message.event_id()));
        store.ingest(join, false).unwrap();
        assert!(store.ingest(message, false).unwrap().is_accepted());
    }
}

#[test]
fn room_v12_events_need_the_create_event_the_room_id_names() {
    let room = standard_room(v("12"));
    let mut store = fresh_store(&room);
    let join = room.built()[1].clone();
    let error = store.ingest(join.clone(), false).unwrap_err();
    let create_id = room.create_event().event_id().to_owned();
    assert!(
        matches!(&error, StoreError::Missing { auth_events, .. } if auth_events == &vec![create_id.clone()]),
        "{error}"
    );
    assert_eq!(store.missing_auth_events(&join), [create_id]);
}

#[test]
fn events_of_other_rooms_are_refused() {
    let room = standard_room(v("11"));
    let mut store = store_with_all(&room);
    let log_len = store.log().len();
    let mut bobs_room = fedlab::server::store::testkit::RoomBuilder::new(v("11"), BOB);
    let foreign = bobs_room.event(EventSpec::new(BOB, "m.room.message").content(json!({"x": 1})));
    let error = store.ingest(foreign, false).unwrap_err();
    assert!(
        matches!(&error, StoreError::WrongRoom { room_id, .. } if room_id == "!room:b.example"),
        "{error}"
    );
    // Same room id, other room version.
    let v10_room = standard_room(v("10"));
    let error = store
        .ingest(v10_room.built()[1].clone(), false)
        .unwrap_err();
    assert!(
        matches!(error, StoreError::WrongRoomVersion { .. }),
        "{error}"
    );
    assert_eq!(store.log().len(), log_len);
}
