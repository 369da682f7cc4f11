//! Shared helpers of the store integration tests: users on a few servers, a standard room
//! (create, creator joins, power levels, public join rule), and fresh stores fed with events.
#![allow(dead_code)]

use fedlab::proto::event::Event;
use fedlab::proto::pdu::Pdu;
use fedlab::proto::room_version::{RoomVersion, room_version};
use fedlab::proto::state_res::replay;
use fedlab::server::store::testkit::{EventSpec, RoomBuilder};
use fedlab::server::store::{DurableLog, EventStatus, IngestOutcome, RoomStore};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub const ALICE: &str = "@alice:a.example";
pub const BOB: &str = "@bob:b.example";
pub const CAROL: &str = "@carol:c.example";
pub const DAVE: &str = "@dave:a.example";

pub fn v(id: &str) -> &'static RoomVersion {
    room_version(id).unwrap()
}

/// Alice's room: see [`RoomBuilder::standard`].
pub fn standard_room(version: &'static RoomVersion) -> RoomBuilder {
    RoomBuilder::standard(version, ALICE)
}

/// An empty store for the builder's room, with its own log.
pub fn fresh_store(room: &RoomBuilder) -> RoomStore {
    RoomStore::new(room.room_id(), room.version(), DurableLog::new())
}

/// Ingests each event (none held redacted) and checks the invariants after each.
pub fn ingest_all(store: &mut RoomStore, pdus: &[Arc<Pdu>]) -> Vec<IngestOutcome> {
    pdus.iter()
        .map(|pdu| {
            let outcome = store
                .ingest(pdu.clone(), false)
                .unwrap_or_else(|e| panic!("ingesting {}: {e}", pdu.event_id()));
            store.check_invariants().unwrap();
            outcome
        })
        .collect()
}

/// A store holding every event the builder built, in build order.
pub fn store_with_all(room: &RoomBuilder) -> RoomStore {
    let mut store = fresh_store(room);
    ingest_all(&mut store, room.built());
    store
}

pub fn ids(pdus: &[Arc<Pdu>]) -> Vec<String> {
    pdus.iter().map(|pdu| pdu.event_id().to_owned()).collect()
}

pub fn is_soft_failed(status: &EventStatus) -> bool {
    matches!(status, EventStatus::SoftFailed(_))
}

/// The store's state after each event held with state, and its rejections, equal the replay
/// of the same DAG by `state_res` (an independent computation of the same definitions).
pub fn assert_matches_replay(store: &RoomStore) {
    let events: BTreeMap<String, Event> = store
        .records()
        .filter(|(_, record)| !record.is_outlier())
        .map(|(id, record)| (id.to_owned(), record.pdu().event().clone()))
        .collect();
    let version = store.room_version();
    let replayed = replay(version, version.state_res, &events).unwrap();
    for (event_id, record) in store.records().filter(|(_, r)| !r.is_outlier()) {
        assert_eq!(
            store.state_after(event_id).as_ref(),
            replayed.state_after(event_id),
            "state after {event_id}"
        );
        assert_eq!(
            record.status().is_rejected(),
            replayed.is_rejected(event_id),
            "verdict of {event_id}"
        );
    }
}

/// One random event of a property test's DAG: which earlier events it cites (indices into the
/// events after the setup), what kind of event it is, who sends it.
#[derive(Clone, Debug)]
pub struct Step {
    pub prev_picks: Vec<usize>,
    pub kind: u8,
    pub sender: usize,
}

/// Random steps citing 1 to `prevs_max` earlier events, of `kinds` kinds, sent by one of
/// `senders` users.
pub fn step(
    prevs_max: usize,
    kinds: u8,
    senders: usize,
) -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    (
        prop::collection::vec(any::<usize>(), 1..=prevs_max),
        0u8..kinds,
        0usize..senders,
    )
        .prop_map(|(prev_picks, kind, sender)| Step {
            prev_picks,
            kind,
            sender,
        })
}

/// The users of the random DAGs: the creator first, then one per other server.
pub const USERS: [&str; 4] = [ALICE, BOB, CAROL, DAVE];

/// A standard room all `USERS` joined, then one event per step: `spec` says what the step's
/// event is, and it cites the earlier events its picks name (the last setup event and
/// everything after it are the candidates).
pub fn random_room(
    version: &str,
    steps: &[Step],
    spec: impl Fn(&Step, usize) -> EventSpec,
) -> RoomBuilder {
    let mut room = standard_room(v(version));
    for user in &USERS[1..] {
        room.join(user);
    }
    let setup_len = room.built().len();
    for (index, step) in steps.iter().enumerate() {
        let candidates: Vec<String> = room.built()[setup_len - 1..]
            .iter()
            .map(|pdu| pdu.event_id().to_owned())
            .collect();
        let prevs: BTreeSet<&str> = step
            .prev_picks
            .iter()
            .map(|pick| candidates[pick % candidates.len()].as_str())
            .collect();
        let prevs: Vec<&str> = prevs.into_iter().collect();
        room.event(spec(step, index).prev(&prevs));
    }
    room
}
