//! Rejection and soft failure: the three checks on receipt and what each verdict does to the
//! DAG, the state and the extremities.

mod store_common;

use fedlab::proto::auth::AuthRule;
use fedlab::server::store::testkit::EventSpec;
use fedlab::server::store::{Check, EventStatus};
use serde_json::json;
use store_common::*;

fn rejection(status: &EventStatus) -> (Check, AuthRule) {
    match status {
        EventStatus::Rejected { check, error } => (*check, error.rule),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn a_ban_by_a_user_without_power_is_rejected_and_changes_nothing() {
    for id in ["1", "6", "11", "12"] {
        let mut room = standard_room(v(id));
        room.join(BOB);
        let carol_join = room.join(CAROL);
        let ban = room.member(BOB, CAROL, "ban");
        let mut store = fresh_store(&room);
        let outcomes = ingest_all(&mut store, room.built());
        let verdict = &outcomes.last().unwrap().status;
        assert_eq!(
            rejection(verdict),
            (Check::AuthEvents, AuthRule::BanWithoutPower),
            "room v{id}"
        );
        let carol_key = ("m.room.member".to_owned(), CAROL.to_owned());
        assert_eq!(store.current_state()[&carol_key], carol_join.event_id());
        assert_eq!(
            store.state_after(ban.event_id()),
            store.state_before(ban.event_id())
        );
        assert_eq!(
            store.forward_extremities().iter().collect::<Vec<_>>(),
            [carol_join.event_id()]
        );
        assert_eq!(store.metrics().rejected, 1);

        // An event of another server citing the rejected one is allowed if it passes auth.
        let after = room.event(
            EventSpec::new(CAROL, "m.room.message")
                .content(json!({"body": "still here"}))
                .prev(&[ban.event_id()]),
        );
        let outcome = store.ingest(after.clone(), false).unwrap();
        assert!(outcome.is_accepted(), "room v{id}: {:?}", outcome.status);
        assert_eq!(
            store.forward_extremities().iter().collect::<Vec<_>>(),
            [after.event_id()],
            "the rejected event does not keep Carol's join an extremity"
        );
        assert_matches_replay(&store);
        store.check_invariants().unwrap();
    }
}

#[test]
fn an_event_from_a_user_banned_on_another_branch_is_soft_failed() {
    for id in ["2", "11", "12"] {
        let mut room = standard_room(v(id));
        let fork = room.join(BOB).event_id().to_owned();
        let ban = room.event(
            EventSpec::new(ALICE, "m.room.member")
                .state_key(BOB)
                .content(json!({"membership": "ban"}))
                .prev(&[&fork]),
        );
        let message = room.event(
            EventSpec::new(BOB, "m.room.message")
                .content(json!({"body": "sent before I saw the ban"}))
                .prev(&[&fork]),
        );
        // The ban first: the message passes against its own state, not the current one.
        let mut store = fresh_store(&room);
        let outcomes = ingest_all(&mut store, room.built());
        let verdict = &outcomes.last().unwrap().status;
        assert!(
            matches!(verdict, EventStatus::SoftFailed(error) if error.rule == AuthRule::SenderNotJoined),
            "room v{id}: {verdict:?}"
        );
        assert_eq!(
            store.forward_extremities().iter().collect::<Vec<_>>(),
            [ban.event_id()]
        );
        assert!(!store.accepted_event_ids().contains(message.event_id()));
        let (prevs, _) = store.dag().prev_events_for_new_event();
        assert_eq!(prevs, [ban.event_id()]);
        assert_eq!(store.metrics().soft_failed, 1);

        // The message first: both are accepted, and the ban wins the current state.
        let mut other_order = fresh_store(&room);
        let mut pdus = room.built().to_vec();
        let len = pdus.len();
        pdus.swap(len - 1, len - 2);
        let outcomes = ingest_all(&mut other_order, &pdus);
        assert!(outcomes.iter().all(|outcome| outcome.is_accepted()));
        assert_eq!(other_order.forward_extremities().len(), 2);
        let bob_key = ("m.room.member".to_owned(), BOB.to_owned());
        assert_eq!(other_order.current_state()[&bob_key], ban.event_id());
        assert_eq!(store.current_state(), other_order.current_state());
    }
}

#[test]
fn a_soft_failed_event_counts_for_the_state_of_events_that_cite_it() {
    let mut room = standard_room(v("11"));
    let fork = room.join(BOB).event_id().to_owned();
    room.event(
        EventSpec::new(ALICE, "m.room.member")
            .state_key(BOB)
            .content(json!({"membership": "ban"}))
            .prev(&[&fork]),
    );
    // Bob changes his own display name on the other branch: soft-failed here.
    let rename = room.event(
        EventSpec::new(BOB, "m.room.member")
            .state_key(BOB)
            .content(json!({"membership": "join", "displayname": "B"}))
            .prev(&[&fork]),
    );
    let mut store = fresh_store(&room);
    let outcomes = ingest_all(&mut store, room.built());
    assert!(is_soft_failed(&outcomes.last().unwrap().status));
    let bob_key = ("m.room.member".to_owned(), BOB.to_owned());
    assert_eq!(
        store.state_after(rename.event_id()).unwrap()[&bob_key],
        rename.event_id(),
        "a soft-failed state event is in the state after it"
    );
    assert_matches_replay(&store);
}

#[test]
fn stale_auth_events_do_not_beat_the_state_before_the_event() {
    let mut room = standard_room(v("11"));
    let bob_join = room.join(BOB);
    let ban = room.member(ALICE, BOB, "ban");
    // Bob cites his old join as auth event, but the ban is in the state before his event.
    let power =
        room.author().current_state()[&("m.room.power_levels".to_owned(), String::new())].clone();
    let create = room.create_event().event_id().to_owned();
    let message = room.event(
        EventSpec::new(BOB, "m.room.message")
            .content(json!({"body": "x"}))
            .auth(&[&create, &power, bob_join.event_id()])
            .prev(&[ban.event_id()]),
    );
    let mut store = fresh_store(&room);
    let outcomes = ingest_all(&mut store, room.built());
    assert_eq!(
        rejection(&outcomes.last().unwrap().status),
        (Check::StateBefore, AuthRule::SenderNotJoined)
    );
    assert!(store.state_after(message.event_id()).is_some());
}

#[test]
fn citing_a_rejected_auth_event_is_rejected() {
    let mut room = standard_room(v("11"));
    room.join(BOB);
    // Bob gives himself power: rejected.
    let grab = room.state(
        BOB,
        "m.room.power_levels",
        json!({"users": {ALICE: 100, BOB: 100}}),
    );
    let create = room.create_event().event_id().to_owned();
    let bob_join =
        room.author().current_state()[&("m.room.member".to_owned(), BOB.to_owned())].clone();
    let topic = room.event(
        EventSpec::new(BOB, "m.room.topic")
            .state_key("")
            .content(json!({"topic": "mine"}))
            .auth(&[&create, grab.event_id(), &bob_join]),
    );
    let mut store = fresh_store(&room);
    let outcomes = ingest_all(&mut store, room.built());
    let verdicts: Vec<_> = outcomes[outcomes.len() - 2..]
        .iter()
        .map(|outcome| rejection(&outcome.status))
        .collect();
    assert_eq!(verdicts[0].0, Check::AuthEvents);
    assert_eq!(
        verdicts[1],
        (Check::AuthEvents, AuthRule::AuthEventRejected)
    );
    assert!(
        !store
            .current_state()
            .values()
            .any(|id| id == topic.event_id() || id == grab.event_id())
    );
}

#[test]
fn outliers_are_checked_against_their_auth_events_only() {
    let mut room = standard_room(v("12"));
    room.join(BOB);
    let grab = room.state(BOB, "m.room.power_levels", json!({"users": {BOB: 100}}));
    let mut store = fresh_store(&room);
    let batch: Vec<_> = room
        .built()
        .iter()
        .rev()
        .map(|pdu| (pdu.clone(), false))
        .collect();
    let outcomes = store.ingest_outliers(batch).unwrap();
    assert_eq!(outcomes.len(), room.built().len());
    assert_eq!(
        outcomes[0].event_id,
        room.create_event().event_id(),
        "auth order"
    );
    assert!(
        outcomes[..outcomes.len() - 1]
            .iter()
            .all(|outcome| outcome.status == EventStatus::Outlier)
    );
    assert_eq!(
        rejection(&store.status(grab.event_id()).unwrap().clone()).0,
        Check::AuthEvents
    );
    assert!(store.dag().is_empty());
    assert!(store.current_state().is_empty());
    let metrics = store.metrics();
    assert_eq!((metrics.outliers, metrics.rejected), (5, 1));
    store.check_invariants().unwrap();

    // Outliers become part of the DAG when ingested with state.
    ingest_all(&mut store, room.built());
    assert_eq!(store.metrics().outliers, 0);
    assert_eq!(store.dag().len(), room.built().len());
    assert_matches_replay(&store);
}
