//! Crash and restart: a store rebuilt from its durable log equals a store built by the same
//! ingests; a crash loses only what was not flushed.

mod store_common;

use fedlab::proto::pdu::{Pdu, build_pdu};
use fedlab::proto::room_version::RoomVersion;
use fedlab::server::store::testkit::{EventSpec, RoomBuilder, server_key};
use fedlab::server::store::{DurableLog, LocalEventDraft, RoomStore, ServerStore};
use serde_json::json;
use std::sync::Arc;
use store_common::*;

/// One thing a server does to its store.
#[derive(Clone)]
enum Op {
    Open(String, &'static RoomVersion),
    Ingest(String, Arc<Pdu>, bool),
    Outliers(String, Vec<Arc<Pdu>>),
    WithState(String, Arc<Pdu>),
    /// Alice sends a message through `prepare_local_event`.
    Local(String, &'static str),
}

fn apply(store: &mut ServerStore, op: &Op, rooms: &[RoomBuilder]) {
    let builder = |room_id: &str| rooms.iter().find(|r| r.room_id() == room_id).unwrap();
    match op {
        Op::Open(room_id, version) => {
            store.open_room(room_id, version).unwrap();
        }
        Op::Ingest(room_id, pdu, held_redacted) => {
            store
                .room_mut(room_id)
                .unwrap()
                .ingest(pdu.clone(), *held_redacted)
                .unwrap();
        }
        Op::Outliers(room_id, pdus) => {
            let batch = pdus.iter().map(|pdu| (pdu.clone(), false)).collect();
            store
                .room_mut(room_id)
                .unwrap()
                .ingest_outliers(batch)
                .unwrap();
        }
        Op::WithState(room_id, pdu) => {
            let state = builder(room_id)
                .author()
                .state_before(pdu.event_id())
                .unwrap();
            store
                .room_mut(room_id)
                .unwrap()
                .ingest_with_state(pdu.clone(), false, state)
                .unwrap();
        }
        Op::Local(room_id, body) => {
            let room = store.room_mut(room_id).unwrap();
            let new = room
                .prepare_local_event(LocalEventDraft {
                    sender: ALICE.to_owned(),
                    event_type: "m.room.message".to_owned(),
                    state_key: None,
                    content: json!({"body": body}).as_object().unwrap().clone(),
                    redacts: None,
                    origin_server_ts: 500,
                })
                .unwrap();
            let pdu = build_pdu(
                new,
                room.room_version(),
                "a.example",
                &server_key("a.example"),
            )
            .unwrap();
            room.ingest_local(pdu).unwrap();
        }
    }
}

/// Two rooms and a varied history: accepted, rejected, soft-failed, held redacted, redacted
/// by a redaction, outliers, an event placed with state, local events.
fn scenario() -> (Vec<RoomBuilder>, Vec<Op>) {
    let mut first = standard_room(v("11"));
    let fork = first.join(BOB).event_id().to_owned();
    let ban = first.event(
        EventSpec::new(ALICE, "m.room.member")
            .state_key(BOB)
            .content(json!({"membership": "ban"}))
            .prev(&[&fork]),
    );
    let soft = first.event(
        EventSpec::new(BOB, "m.room.message")
            .content(json!({"body": "soft"}))
            .prev(&[&fork]),
    );
    let rejected = first.member(CAROL, CAROL, "ban");
    let message = first.message(ALICE, "to redact");
    let redaction = first.event(
        EventSpec::new(ALICE, "m.room.redaction")
            .content(json!({}))
            .redacts(message.event_id()),
    );
    let tampered = first.message(ALICE, "tampered");

    let mut second = RoomBuilder::new(v("12"), BOB);
    second.join(BOB);
    second.state(BOB, "m.room.join_rules", json!({"join_rule": "public"}));
    let gap_start = second.message(BOB, "gap");
    second.join(ALICE);
    let after_gap = second.message(ALICE, "after the gap");

    let (r1, r2) = (first.room_id().to_owned(), second.room_id().to_owned());
    let mut ops = vec![Op::Open(r1.clone(), v("11")), Op::Open(r2.clone(), v("12"))];
    for pdu in &first.built()[..6] {
        ops.push(Op::Ingest(r1.clone(), pdu.clone(), false));
    }
    ops.push(Op::Ingest(r1.clone(), ban, false));
    ops.push(Op::Ingest(r1.clone(), soft, false));
    ops.push(Op::Ingest(r1.clone(), rejected, false));
    ops.push(Op::Ingest(r1.clone(), message, false));
    ops.push(Op::Local(r1.clone(), "local one"));
    ops.push(Op::Ingest(r1.clone(), redaction, false));
    ops.push(Op::Ingest(r1.clone(), tampered, true));
    let before_gap = second.built().len() - 3;
    for pdu in &second.built()[..before_gap] {
        ops.push(Op::Ingest(r2.clone(), pdu.clone(), false));
    }
    let alice_join = second.built()[before_gap + 1].clone();
    ops.push(Op::Outliers(r2.clone(), vec![alice_join.clone()]));
    ops.push(Op::WithState(r2.clone(), after_gap));
    ops.push(Op::Ingest(r2.clone(), gap_start, false));
    ops.push(Op::Ingest(r2.clone(), alice_join, false));
    ops.push(Op::Local(r2.clone(), "local two"));
    ops.push(Op::Local(r1, "local three"));
    (vec![first, second], ops)
}

fn build(ops: &[Op], rooms: &[RoomBuilder]) -> ServerStore {
    let mut store = ServerStore::new(DurableLog::new());
    for op in ops {
        apply(&mut store, op, rooms);
    }
    store
}

#[test]
fn recovery_rebuilds_an_equal_store() {
    let (rooms, ops) = scenario();
    let store = build(&ops, &rooms);
    store.check_invariants().unwrap();
    let metrics = &store.metrics()[rooms[0].room_id()];
    assert_eq!(
        (
            metrics.accepted,
            metrics.soft_failed,
            metrics.rejected,
            metrics.redacted
        ),
        (11, 1, 1, 2)
    );
    let recovered = ServerStore::recover(store.log().clone()).unwrap();
    assert!(recovered == store, "the recovered store differs");
    recovered.check_invariants().unwrap();
}

#[test]
fn a_crash_keeps_exactly_what_was_flushed() {
    let (rooms, ops) = scenario();
    for flushed in [0, 3, 9, 14, ops.len() - 2, ops.len()] {
        let mut store = ServerStore::new(DurableLog::new());
        for (index, op) in ops.iter().enumerate() {
            if index == flushed {
                store.flush();
            }
            apply(&mut store, op, &rooms);
        }
        if flushed == ops.len() {
            store.flush();
        }
        let log = store.log().clone();
        drop(store);
        log.crash();
        let recovered = ServerStore::recover(log.clone()).unwrap();
        assert!(
            recovered == build(&ops[..flushed], &rooms),
            "flushed after {flushed} operations"
        );
        if flushed < ops.len() {
            assert!(
                recovered != build(&ops[..flushed + 1], &rooms),
                "unflushed work is lost"
            );
        }

        // The restarted server goes on where it stopped: redoing the lost work gives the
        // store that never crashed, and the log grows on.
        let mut recovered = recovered;
        for op in &ops[flushed..] {
            apply(&mut recovered, op, &rooms);
        }
        assert!(recovered == build(&ops, &rooms), "redo after {flushed}");
        assert!(ServerStore::recover(log).unwrap() == recovered);
    }
}

#[test]
fn a_room_store_recovers_alone() {
    let room = standard_room(v("10"));
    let log = DurableLog::new();
    let mut store = RoomStore::new(room.room_id(), room.version(), log.clone());
    ingest_all(&mut store, room.built());
    let recovered = RoomStore::recover(log.clone()).unwrap();
    assert!(recovered == store);
    assert!(recovered.log().same_log(&log));
    assert!(RoomStore::recover(DurableLog::new()).is_err());
}
