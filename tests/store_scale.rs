//! Size and speed of the store on a larger room: state is held as deltas (memory grows with
//! the number of state changes, not with events times state size), and ingest time per event.
//! Prints its figures (run with `--nocapture` to see them).

mod store_common;

use fedlab::server::store::RoomStore;
use serde_json::json;
use std::time::Instant;
use store_common::*;

#[test]
fn state_is_held_as_deltas() {
    let members = 50;
    let mut room = standard_room(v("11"));
    for index in 0..members {
        room.join(&format!("@user{index}:s{}.example", index % 7));
    }
    for index in 0..1000 {
        if index % 10 == 0 {
            room.state(ALICE, "m.room.topic", json!({"topic": format!("{index}")}));
        } else {
            room.message(
                &format!(
                    "@user{}:s{}.example",
                    index % members,
                    (index % members) % 7
                ),
                "m",
            );
        }
    }
    let pdus = room.built().to_vec();
    let mut store = fresh_store(&room);
    let started = Instant::now();
    for pdu in &pdus {
        store.ingest(pdu.clone(), false).unwrap();
    }
    let elapsed = started.elapsed();
    store.check_invariants().unwrap();

    let metrics = store.metrics();
    let entries: usize = (0..store.state_groups().len())
        .map(|index| {
            let id = fedlab::server::store::StateGroupId(index as u32);
            store.state_groups().group(id).delta().len()
        })
        .sum();
    let full_copies = pdus.len() * store.current_state().len();
    println!(
        "{} events, state of {} entries: {} state groups holding {} entries (full copies \
         would hold {}), {} bytes approx, {:.1} µs per ingest (unoptimised build)",
        pdus.len(),
        store.current_state().len(),
        metrics.state_groups,
        entries,
        full_copies,
        metrics.bytes_approx,
        elapsed.as_secs_f64() * 1e6 / pdus.len() as f64
    );
    assert_eq!(metrics.accepted as usize, pdus.len());
    // One group per state event plus snapshots of the whole state every 64 deltas.
    assert!(entries < 20 * store.current_state().len() + 2 * metrics.state_groups as usize);
    assert!(entries * 20 < full_copies);
    assert_recovers_equal(&store);
}

fn assert_recovers_equal(store: &RoomStore) {
    let started = Instant::now();
    let recovered = RoomStore::recover(store.log().clone()).unwrap();
    println!(
        "recovery replayed {} records in {:.0} ms",
        store.log().len(),
        started.elapsed().as_secs_f64() * 1e3
    );
    assert!(recovered == *store);
}

#[test]
fn forks_cost_one_resolution_per_new_set_of_states() {
    use fedlab::server::store::testkit::EventSpec;
    let mut room = standard_room(v("11"));
    let branches_count = 4;
    let mut ends: Vec<String> =
        vec![room.built().last().unwrap().event_id().to_owned(); branches_count];
    for round in 0..60 {
        for (branch, end) in ends.iter_mut().enumerate() {
            let spec = if round % 5 == 0 {
                EventSpec::new(ALICE, "m.room.topic")
                    .state_key("")
                    .content(json!({"topic": format!("{round}.{branch}")}))
            } else {
                EventSpec::new(ALICE, "m.room.message").content(json!({"body": round}))
            };
            *end = room.event(spec.prev(&[end.as_str()])).event_id().to_owned();
        }
        if round % 20 == 19 {
            let prevs: Vec<&str> = ends.iter().map(String::as_str).collect();
            let merge = room.event(EventSpec::new(ALICE, "m.room.message").prev(&prevs));
            ends = vec![merge.event_id().to_owned(); branches_count];
        }
    }
    let pdus = room.built().to_vec();
    let mut store = fresh_store(&room);
    let started = Instant::now();
    for pdu in &pdus {
        store.ingest(pdu.clone(), false).unwrap();
    }
    let elapsed = started.elapsed();
    store.check_invariants().unwrap();
    let metrics = store.metrics();
    println!(
        "{} events on {branches_count} branches: {} state groups, {} resolutions, {:.1} µs per \
         ingest (unoptimised build)",
        pdus.len(),
        metrics.state_groups,
        metrics.resolutions,
        elapsed.as_secs_f64() * 1e6 / pdus.len() as f64
    );
    assert_eq!(metrics.forward_extremities, 1);
    // Messages keep their branch's state group, so only the 48 topic changes make new sets of
    // extremity states to resolve; merges find their resolution already made.
    assert!(
        metrics.resolutions <= 48,
        "{} resolutions",
        metrics.resolutions
    );
    assert_eq!(store.current_state(), room.author().current_state());
    assert_recovers_equal(&store);
}
