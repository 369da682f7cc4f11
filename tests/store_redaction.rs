//! Events held redacted: on a content hash mismatch, and by an accepted `m.room.redaction`
//! when the redaction is allowed (same server as the target's sender, or enough power).

mod store_common;

use fedlab::proto::pdu::{Pdu, content_hash_matches};
use fedlab::server::store::testkit::EventSpec;
use fedlab::server::store::{EventStatus, RedactedBecause};
use serde_json::{Value, json};
use std::sync::Arc;
use store_common::*;

/// The same event with its content changed in transit: same id (room v3+), wrong hash.
fn tampered(pdu: &Pdu) -> Arc<Pdu> {
    let mut json = pdu.json().clone();
    json.insert(
        "content".to_owned(),
        json!({"msgtype": "m.text", "body": "forged"}),
    );
    Arc::new(Pdu::from_json(json, pdu.room_version()).unwrap())
}

fn redaction(sender: &str, target: &str) -> EventSpec {
    EventSpec::new(sender, "m.room.redaction")
        .content(json!({"reason": "spam"}))
        .redacts(target)
}

fn body(store: &fedlab::server::store::RoomStore, event_id: &str) -> Option<Value> {
    store
        .event(event_id)
        .unwrap()
        .event()
        .content
        .get("body")
        .cloned()
}

#[test]
fn an_event_with_a_wrong_content_hash_is_held_redacted() {
    for id in ["4", "11", "12"] {
        let mut room = standard_room(v(id));
        room.join(BOB);
        let message = room.message(BOB, "original");
        let forged = tampered(&message);
        assert_eq!(forged.event_id(), message.event_id());
        assert!(!content_hash_matches(forged.json(), forged.room_version().numbers()).unwrap());

        let mut store = fresh_store(&room);
        let built = room.built();
        ingest_all(&mut store, &built[..built.len() - 1]);
        let outcome = store.ingest(forged, true).unwrap();
        assert_eq!(outcome.status, EventStatus::Accepted, "room v{id}");
        let record = store.record(message.event_id()).unwrap();
        assert_eq!(
            record.redacted(),
            Some(&RedactedBecause::ContentHashMismatch)
        );
        assert_eq!(record.pdu().event().content.len(), 0, "room v{id}");
        assert_eq!(record.pdu().json(), message.redacted().json());
        assert_eq!(store.metrics().redacted, 1);
        // The genuine copy arriving later is a duplicate: the event stays redacted.
        assert!(store.ingest(message.clone(), false).unwrap().duplicate);
        assert_eq!(body(&store, message.event_id()), None);
        store.check_invariants().unwrap();
    }
}

#[test]
fn a_sender_may_redact_events_of_its_own_server() {
    let mut room = standard_room(v("11"));
    room.join(BOB);
    let message = room.message(BOB, "oops");
    let redact = room.event(redaction(BOB, message.event_id()));
    let mut store = fresh_store(&room);
    let outcomes = ingest_all(&mut store, room.built());
    assert_eq!(outcomes.last().unwrap().redacted, [message.event_id()]);
    assert_eq!(body(&store, message.event_id()), None);
    assert_eq!(
        store.record(message.event_id()).unwrap().redacted(),
        Some(&RedactedBecause::Redaction {
            redaction_id: redact.event_id().to_owned()
        })
    );
}

#[test]
fn a_redaction_from_another_server_needs_the_redact_level() {
    for id in ["3", "11", "12"] {
        let mut room = standard_room(v(id));
        room.join(BOB);
        let alices = room.message(ALICE, "alice's");
        let bobs = room.message(BOB, "bob's");
        // Bob (power 0) may send a redaction, but it does not apply to Alice's event.
        let powerless = room.event(redaction(BOB, alices.event_id()));
        // Alice (power 100, redact level 50) may redact Bob's.
        let powerful = room.event(redaction(ALICE, bobs.event_id()));
        let mut store = fresh_store(&room);
        let outcomes = ingest_all(&mut store, room.built());
        let n = outcomes.len();
        assert!(outcomes[n - 2].is_accepted(), "room v{id}");
        assert!(outcomes[n - 2].redacted.is_empty(), "room v{id}");
        assert_eq!(outcomes[n - 1].redacted, [bobs.event_id()], "room v{id}");
        assert_eq!(body(&store, alices.event_id()), Some(json!("alice's")));
        assert_eq!(body(&store, bobs.event_id()), None);
        assert_eq!(
            store.status(powerless.event_id()),
            Some(&EventStatus::Accepted)
        );
        assert!(
            store
                .record(powerful.event_id())
                .unwrap()
                .redacted()
                .is_none()
        );
    }
}

#[test]
fn room_v1_redactions_without_power_or_same_server_are_rejected() {
    let mut room = standard_room(v("1"));
    room.join(BOB);
    let alices = room.message(ALICE, "alice's");
    room.event(redaction(BOB, alices.event_id()));
    let mut store = fresh_store(&room);
    let outcomes = ingest_all(&mut store, room.built());
    assert!(outcomes.last().unwrap().status.is_rejected());
    assert_eq!(body(&store, alices.event_id()), Some(json!("alice's")));
}

#[test]
fn a_redaction_that_arrives_before_its_target_applies_when_the_target_comes() {
    let mut room = standard_room(v("11"));
    let fork = room.join(BOB).event_id().to_owned();
    let message = room.event(
        EventSpec::new(BOB, "m.room.message")
            .content(json!({"body": "late"}))
            .prev(&[&fork]),
    );
    let redact = room.event(redaction(BOB, message.event_id()).prev(&[&fork]));
    let mut store = fresh_store(&room);
    let built = room.built().to_vec();
    let n = built.len();
    ingest_all(&mut store, &built[..n - 2]);
    assert!(store.ingest(redact, false).unwrap().redacted.is_empty());
    let outcome = store.ingest(message.clone(), false).unwrap();
    assert_eq!(outcome.redacted, [message.event_id()]);
    assert_eq!(body(&store, message.event_id()), None);
    store.check_invariants().unwrap();
}

#[test]
fn soft_failed_redactions_do_not_apply() {
    let mut room = standard_room(v("11"));
    room.join(BOB);
    let message = room.message(BOB, "keep me");
    let fork2 = message.event_id().to_owned();
    room.event(
        EventSpec::new(ALICE, "m.room.member")
            .state_key(BOB)
            .content(json!({"membership": "ban"}))
            .prev(&[&fork2]),
    );
    room.event(redaction(BOB, message.event_id()).prev(&[&fork2]));
    let mut store = fresh_store(&room);
    let outcomes = ingest_all(&mut store, room.built());
    assert!(is_soft_failed(&outcomes.last().unwrap().status));
    assert_eq!(body(&store, message.event_id()), Some(json!("keep me")));
}
