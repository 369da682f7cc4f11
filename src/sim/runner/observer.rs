//! Observers: sample the honest servers over simulated time (divergence, extremities,
//! deliveries, state resets), and at the end compute the metrics and the verdict of each
//! expectation.
//!
//! Invariants: observers only read (through `Homeserver::with_room` and metrics); what they
//! record depends only on the simulation, never on the wall clock.

use crate::observe::record::Sample;
use crate::proto::event::StateMap;
use crate::server::store::{EventStatus, RoomStore};
use crate::sim::runner::world::World;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

/// How often the timeline is sampled.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(500);

/// How far back the reset check walks the DAG from the previous event.
const ANCESTRY_STEPS_MAX: usize = 10_000;

/// What the sampler keeps between samples.
#[derive(Default)]
struct SamplerState {
    /// Per server, the current state at the previous sample.
    previous_state: BTreeMap<usize, StateMap>,
    /// When convergence last began to hold, if it holds now.
    converged_since_ms: Option<u64>,
    divergence_max: u32,
    /// First time servers were seen diverged, for the witness.
    first_divergence_ms: Option<u64>,
}

/// Samples until the run ends; returns when convergence began to hold for good (if it does).
pub async fn run(world: Rc<World>, end_ms: u64) -> Option<u64> {
    let mut state = SamplerState::default();
    loop {
        sample(&world, &mut state);
        let now = world.now_ms();
        if now >= end_ms {
            return state.converged_since_ms;
        }
        let step = (SAMPLE_INTERVAL.as_millis() as u64).min(end_ms - now);
        tokio::time::sleep(Duration::from_millis(step)).await;
    }
}

/// Honest servers that are up and hold the room.
pub fn observed(world: &World) -> Vec<usize> {
    let Some(room) = world.room() else {
        return Vec::new();
    };
    world
        .honest()
        .filter(|index| {
            world.slots[*index]
                .current()
                .is_some_and(|server| server.is_in_room(&room))
        })
        .collect()
}

/// Reads the room on server `index`.
pub fn read_room<T>(world: &World, index: usize, read: impl FnOnce(&RoomStore) -> T) -> Option<T> {
    let room = world.room()?;
    world.slots[index].current()?.with_room(&room, read)
}

/// A digest of a server's current state map: what `divergence` counts.
pub fn state_digest(room: &RoomStore) -> String {
    let mut hasher = Sha256::new();
    for ((event_type, state_key), event_id) in room.current_state() {
        hasher.update(format!("{event_type}\u{0}{state_key}\u{0}{event_id}\n").as_bytes());
    }
    hex(&hasher.finalize())
}

/// The events a server holds in its room DAG as having passed authorization: accepted and
/// soft-failed ones. Soft failure depends on arrival order (an event that arrived before a
/// concurrent ban is accepted, one that arrived after is soft-failed), so it is not part of
/// what servers must agree on; rejection is.
pub fn authorized_event_ids(room: &RoomStore) -> BTreeSet<String> {
    room.records()
        .filter(|(_, record)| {
            matches!(
                record.status(),
                EventStatus::Accepted | EventStatus::SoftFailed(_)
            )
        })
        .map(|(event_id, _)| event_id.to_owned())
        .collect()
}

/// A digest of a server's whole view, current state and authorized events: convergence means
/// every honest server has the same one.
pub fn view_digest(room: &RoomStore) -> String {
    let mut hasher = Sha256::new();
    hasher.update(state_digest(room).as_bytes());
    hasher.update(b"--\n");
    for event_id in authorized_event_ids(room) {
        hasher.update(event_id.as_bytes());
        hasher.update(b"\n");
    }
    hex(&hasher.finalize())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sample(world: &World, state: &mut SamplerState) {
    let now = world.now_ms();
    let servers = observed(world);
    let mut digests = BTreeSet::new();
    let mut state_digests = BTreeSet::new();
    let mut extremities = Vec::new();
    for &index in &servers {
        let Some((digest, state_only, extremity_count, current)) =
            read_room(world, index, |room| {
                let count = room.forward_extremities().len() as u32;
                (
                    view_digest(room),
                    state_digest(room),
                    count,
                    room.current_state().clone(),
                )
            })
        else {
            continue;
        };
        digests.insert(digest);
        state_digests.insert(state_only);
        extremities.push(extremity_count);
        check_resets(world, state, index, current);
    }
    check_deliveries(world, &servers);
    let divergence = state_digests.len() as u32;
    state.divergence_max = state.divergence_max.max(divergence);
    if digests.len() <= 1 {
        state.converged_since_ms.get_or_insert(now);
    } else {
        state.converged_since_ms = None;
        state.first_divergence_ms.get_or_insert(now);
    }
    let totals = world.network.with_model(|model| model.totals());
    let requests: u64 = world
        .slots
        .iter()
        .filter_map(|slot| slot.current())
        .map(|s| s.metrics().requests_sent)
        .sum();
    let records = &mut world.records.borrow_mut();
    let sample = Sample {
        t_ms: now,
        divergence,
        forward_extremities_max: extremities.iter().copied().max().unwrap_or(0),
        forward_extremities_mean: if extremities.is_empty() {
            0.0
        } else {
            extremities.iter().map(|&n| f64::from(n)).sum::<f64>() / extremities.len() as f64
        },
        servers_up: world
            .slots
            .iter()
            .filter(|slot| slot.current().is_some())
            .count() as u32,
        deliveries: records.delivered.len() as u64,
        messages_dropped: totals.dropped_cut + totals.dropped_loss,
        requests,
    };
    records.samples.push(sample);
}

/// Records a state reset when a key moves back to an ancestor of its previous event, or
/// disappears, while the previous event would still be allowed by the current state: a revert
/// the room does not explain. (A revert because the newer event's sender lost the power to
/// send it, say to a concurrent ban, is state resolution doing its job.)
fn check_resets(world: &World, state: &mut SamplerState, index: usize, current: StateMap) {
    let Some(previous) = state.previous_state.insert(index, current.clone()) else {
        return;
    };
    for (key, before) in &previous {
        let reset = match current.get(key) {
            None => true,
            Some(after) if after == before => false,
            Some(after) => {
                read_room(world, index, |room| is_ancestor(room, after, before)).unwrap_or(false)
            }
        };
        if reset {
            let mut records = world.records.borrow_mut();
            records.state_resets += 1;
            if records.reset_examples.len() < 5 {
                let server = &world.plan.servers[index].name;
                let after = current.get(key).map_or("(gone)", String::as_str);
                records.reset_examples.push(format!(
                    "{server}: ({}, {:?}) went back from {before} to {after} at t={:.1}s",
                    key.0,
                    key.1,
                    world.now_ms() as f64 / 1000.0
                ));
            }
        }
    }
}

/// Whether `ancestor` is reachable from `descendant` through prev events.
fn is_ancestor(room: &RoomStore, ancestor: &str, descendant: &str) -> bool {
    let Some(floor) = room.dag().depth(ancestor) else {
        return false;
    };
    let mut stack = vec![descendant.to_owned()];
    let mut seen = BTreeSet::new();
    while let Some(id) = stack.pop() {
        if seen.len() > ANCESTRY_STEPS_MAX {
            return false;
        }
        if !seen.insert(id.clone()) {
            continue;
        }
        for prev in room.dag().prev_events(&id).unwrap_or(&[]) {
            if prev == ancestor {
                return true;
            }
            if room.dag().depth(prev).is_some_and(|depth| depth >= floor) {
                stack.push(prev.clone());
            }
        }
    }
    false
}

/// Notes the first sample at which each honest server holds each sent event.
fn check_deliveries(world: &World, servers: &[usize]) {
    let now = world.now_ms();
    let pending: Vec<(usize, String, u64, usize)> = {
        let records = world.records.borrow();
        records
            .sent
            .iter()
            .enumerate()
            .flat_map(|(event_index, sent)| {
                servers.iter().filter_map(move |&server| {
                    (server != sent.origin).then_some((
                        event_index,
                        sent.event_id.clone(),
                        sent.sent_at_ms,
                        server,
                    ))
                })
            })
            .filter(|(event_index, _, _, server)| {
                !records.delivered.contains_key(&(*event_index, *server))
            })
            .collect()
    };
    for (event_index, event_id, sent_at_ms, server) in pending {
        if read_room(world, server, |room| room.has_state(&event_id)).unwrap_or(false) {
            world
                .records
                .borrow_mut()
                .delivered
                .insert((event_index, server), now - sent_at_ms);
        }
    }
}

/// After a restart: every event the crashed incarnation acknowledged must still be there.
pub fn check_acked_after_restart(world: &World, index: usize) {
    let Some(acked) = world.records.borrow_mut().acked_before_crash.remove(&index) else {
        return;
    };
    let Some(server) = world.slots[index].current() else {
        return;
    };
    let lost = acked
        .iter()
        .filter(|event_id| {
            !world.room().is_some_and(|room| {
                server
                    .with_room(&room, |store| store.contains(event_id))
                    .unwrap_or(false)
            })
        })
        .count() as u64;
    world.records.borrow_mut().acked_lost += lost;
}

/// Divergence and extremity figures kept by the sampler, for the summary.
pub fn divergence_max(samples: &[Sample]) -> u32 {
    samples
        .iter()
        .map(|sample| sample.divergence)
        .max()
        .unwrap_or(0)
}

/// The state keys two diverged servers disagree on: a minimal witness.
pub fn witness(world: &World) -> Option<String> {
    let servers = observed(world);
    let views: Vec<(usize, StateMap, BTreeSet<String>)> = servers
        .iter()
        .filter_map(|&index| {
            read_room(world, index, |room| {
                (
                    index,
                    room.current_state().clone(),
                    authorized_event_ids(room),
                )
            })
        })
        .collect();
    let (first, rest) = views.split_first()?;
    let other = rest
        .iter()
        .find(|view| view.1 != first.1 || view.2 != first.2)?;
    let name = |index: usize| world.plan.servers[index].name.clone();
    let mut lines = vec![format!("{} and {} disagree:", name(first.0), name(other.0))];
    let keys: BTreeSet<_> = first.1.keys().chain(other.1.keys()).collect();
    for key in keys {
        let (a, b) = (first.1.get(key), other.1.get(key));
        if a != b {
            lines.push(format!(
                "  ({}, {:?}): {} vs {}",
                key.0,
                key.1,
                a.map_or("(none)", String::as_str),
                b.map_or("(none)", String::as_str)
            ));
        }
    }
    let only_first = first.2.difference(&other.2).count();
    let only_other = other.2.difference(&first.2).count();
    if only_first + only_other > 0 {
        lines.push(format!(
            "  authorized events: {} only on {}, {} only on {}",
            only_first,
            name(first.0),
            only_other,
            name(other.0)
        ));
    }
    Some(lines.join("\n"))
}
