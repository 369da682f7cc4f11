//! Observers: sample the honest servers over simulated time (divergence, extremities,
//! deliveries, agreement, state resets), and at the end compute the metrics and the verdict of
//! each expectation.
//!
//! Two servers agree when they hold the same current state and the same set of authorized
//! events (accepted or soft-failed). While the workload still sends, agreement comes and goes
//! with every event in flight, so the sampler keeps every sample's verdict ([`Agreement`]):
//! the convergence time is the first agreement after the last heal (the merge is done), and
//! agreement "for good" can only begin once the workload has stopped.
//!
//! Invariants: observers only read (through `Homeserver::with_room` and metrics); what they
//! record depends only on the simulation, never on the wall clock.

use crate::observe::record::Sample;
use crate::proto::auth::check_auth;
use crate::proto::event::{Event, StateKey, StateMap};
pub use crate::proto::hex::hex;
use crate::proto::pdu::Pdu;
use crate::proto::state_res::{Replayer, ResolveError, WithRejected, resolve};
use crate::server::store::set_digest::SetDigest;
use crate::server::store::{EventRecord, EventStatus, RoomStore, StateGroupId};
use crate::sim::runner::world::World;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// How often the timeline is sampled.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(500);

/// How far back the reset check walks the DAG from the previous event.
const ANCESTRY_STEPS_MAX: usize = 10_000;

/// Whether the honest servers agreed at each sample, in time order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Agreement {
    samples: Vec<(u64, bool)>,
}

impl Agreement {
    pub fn record(&mut self, t_ms: u64, agreed: bool) {
        debug_assert!(self.samples.last().is_none_or(|(last, _)| *last <= t_ms));
        self.samples.push((t_ms, agreed));
    }

    /// The first sample after `from_ms` at which the servers agreed. Strictly after: a
    /// sample taken at the very moment of a heal or restart may precede it (a restarted
    /// server is not yet up, so the others agree among themselves).
    pub fn first_after(&self, from_ms: u64) -> Option<u64> {
        self.samples
            .iter()
            .find(|(t_ms, agreed)| *agreed && *t_ms > from_ms)
            .map(|(t_ms, _)| *t_ms)
    }

    /// When agreement began to hold for good: the first sample of the final run of agreeing
    /// samples, if the last sample agreed.
    pub fn for_good_since(&self) -> Option<u64> {
        let mut since = None;
        for (t_ms, agreed) in self.samples.iter().rev() {
            if !agreed {
                break;
            }
            since = Some(*t_ms);
        }
        since
    }
}

/// What the sampler keeps between samples.
#[derive(Default)]
struct SamplerState {
    /// Per server, the current state at the previous sample.
    previous_state: BTreeMap<usize, Rc<StateMap>>,
    /// The states some server held at its previous sample, by state digest: servers that agree
    /// share one copy (a thousand servers hold a thousand copies of a room's state otherwise).
    /// Copies no server holds any more are dropped after each sample.
    states: BTreeMap<String, Rc<StateMap>>,
    agreement: Agreement,
    divergence_max: u32,
    /// First time servers were seen diverged, for the witness.
    first_divergence_ms: Option<u64>,
    /// Whether the room of a server that reset state was written to the trace already.
    reset_room_traced: bool,
    /// Per server, one more than the arrival number of the last event it held at the previous
    /// sample: what the reset recheck replays the server's DAG of that moment up to.
    previous_sequence_end: BTreeMap<usize, u64>,
    /// Per server, its digests at the last sample its room changed before.
    views: BTreeMap<usize, CachedView>,
    /// Per server, what the deliveries check last looked at.
    deliveries_seen: BTreeMap<usize, DeliveriesSeen>,
}

/// The mark of a server's store when the deliveries check last read it, and how many events
/// had been sent then. While the mark is the same, the store holds with state exactly the
/// events it held then, so only events sent since can have reached it.
struct DeliveriesSeen {
    mark: (u64, (u64, Option<StateGroupId>)),
    sent: usize,
}

/// A server's digests and the mark of the store they were computed from: while the mark is
/// the same (same incarnation, same [`RoomStore::change_mark`]), so are the digests.
struct CachedView {
    mark: (u64, (u64, Option<StateGroupId>)),
    digest: String,
    state_digest: String,
}

/// Samples until the run ends; returns whether the servers agreed at each sample.
pub async fn run(world: Rc<World>, end_ms: u64) -> Agreement {
    let mut state = SamplerState::default();
    loop {
        sample(&world, &mut state);
        let now = world.now_ms();
        if now >= end_ms {
            return state.agreement;
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
    // The stream is gathered first and hashed in one pass: six small updates per entry each
    // went through the hasher's block buffer (measured at 100 servers: 1.5% of the run).
    let state = room.current_state();
    let mut stream = Vec::with_capacity(state.len() * 80);
    for ((event_type, state_key), event_id) in state {
        for part in [event_type, "\u{0}", state_key, "\u{0}", event_id, "\n"] {
            stream.extend_from_slice(part.as_bytes());
        }
    }
    hex(&Sha256::digest(&stream))
}

/// The events a server holds in its room DAG as having passed authorization: accepted and
/// soft-failed ones. Soft failure depends on arrival order (an event that arrived before a
/// concurrent ban is accepted, one that arrived after is soft-failed), so it is not part of
/// what servers must agree on; rejection is.
pub fn authorized_event_ids(room: &RoomStore) -> BTreeSet<String> {
    authorized_ids(room).map(str::to_owned).collect()
}

/// [`authorized_event_ids`] without copying, in the same (byte) order.
pub fn authorized_ids(room: &RoomStore) -> impl Iterator<Item = &str> {
    room.records()
        .filter(|(_, record)| record.status().is_authorized())
        .map(|(event_id, _)| event_id)
}

/// The digest of a server's whole view, current state and authorized events (convergence
/// means every honest server has the same one; see `adversary::view_digest` for which events
/// count): of a room whose state digest is `state_digest`, over the event ids
/// `event_ids` (in order).
pub fn view_digest_over<'a>(
    state_digest: &str,
    event_ids: impl Iterator<Item = &'a str>,
) -> String {
    let mut hasher = Sha256::new();
    hasher.update(state_digest.as_bytes());
    hasher.update(b"--\n");
    for event_id in event_ids {
        hasher.update(event_id.as_bytes());
        hasher.update(b"\n");
    }
    hex(&hasher.finalize())
}

/// [`view_digest_over`] with the events given by the digest of their set, which the store
/// keeps as records change: the same comparisons, without reading every event id per sample.
pub fn view_digest_of_set(state_digest: &str, authorized: SetDigest) -> String {
    let mut hasher = Sha256::new();
    hasher.update(state_digest.as_bytes());
    hasher.update(b"--set\n");
    hasher.update(authorized.to_bytes());
    hex(&hasher.finalize())
}

fn sample(world: &World, state: &mut SamplerState) {
    let now = world.now_ms();
    let servers = observed(world);
    let mut digests = BTreeSet::new();
    let mut state_digests = BTreeSet::new();
    let mut extremities = Vec::new();
    for &index in &servers {
        let incarnation = world.slots[index].incarnations();
        let cached = state.views.get(&index);
        let Some((extremity_count, changed)) = read_room(world, index, |room| {
            let count = room.forward_extremities().len() as u32;
            let mark = (incarnation, room.change_mark());
            if cached.is_some_and(|view| view.mark == mark) {
                return (count, None);
            }
            // Current state is that of the current group, which never changes: a server whose
            // room only gained messages keeps its state digest (and its shared copy).
            let same_group =
                cached.filter(|view| (view.mark.0, view.mark.1.1) == (mark.0, mark.1.1));
            let state_only = match same_group {
                Some(view) => view.state_digest.clone(),
                None => state_digest(room),
            };
            let current = match state.states.get(&state_only) {
                Some(held) if same_group.is_some() || **held == *room.current_state() => {
                    held.clone()
                }
                _ => Rc::new(room.current_state().clone()),
            };
            let view = CachedView {
                mark,
                digest: crate::sim::runner::adversary::view_digest_with_state(
                    world,
                    room,
                    &state_only,
                ),
                state_digest: state_only,
            };
            (count, Some((view, current, sequence_end(room))))
        }) else {
            continue;
        };
        extremities.push(extremity_count);
        if let Some((view, current, sequence_end)) = changed {
            state
                .states
                .entry(view.state_digest.clone())
                .or_insert_with(|| current.clone());
            state.views.insert(index, view);
            let previous_end = state.previous_sequence_end.insert(index, sequence_end);
            check_resets(world, state, index, current, previous_end);
        }
        // Unchanged since the previous sample: same digests, and no reset to look for (the
        // state the reset check compares against is this very state).
        let view = &state.views[&index];
        digests.insert(view.digest.clone());
        state_digests.insert(view.state_digest.clone());
    }
    state.states.retain(|_, held| Rc::strong_count(held) > 1);
    check_deliveries(world, &servers, &mut state.deliveries_seen);
    let divergence = state_digests.len() as u32;
    state.divergence_max = state.divergence_max.max(divergence);
    let agreed = digests.len() <= 1;
    state.agreement.record(now, agreed);
    if !agreed {
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

/// A state key that went back, found by [`find_reverts`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateRevert {
    pub key: StateKey,
    /// The event that held the key at the previous sample.
    pub before: String,
    /// The event that holds it now: an ancestor of `before`, or `None` if the key is gone.
    pub after: Option<String>,
    /// Whether `before` still passes the authorization rules against the current state: if
    /// so the room does not explain the revert, and it is a state reset.
    pub is_reset: bool,
}

/// The keys of `previous` that went back in `current`: to an ancestor of their previous event,
/// or out of the state. Such a revert is a state reset when the previous event would still pass
/// the authorization rules against `current`. A revert the room explains is not a reset: when
/// the newer event's sender has since lost the power to send it (a concurrent ban, demotion or
/// join-rule change won), state resolution dropping it is the protocol doing its job.
pub fn find_reverts(room: &RoomStore, previous: &StateMap, current: &StateMap) -> Vec<StateRevert> {
    let mut reverts = Vec::new();
    for (key, before) in previous {
        let went_back = match current.get(key) {
            None => true,
            Some(after) if after == before => false,
            Some(after) => is_ancestor(room, after, before),
        };
        if went_back {
            reverts.push(StateRevert {
                key: key.clone(),
                before: before.clone(),
                after: current.get(key).cloned(),
                is_reset: allowed_by(room, before, current),
            });
        }
    }
    reverts
}

/// Whether the held event `event_id` passes the authorization rules against `state`. An event
/// the room does not hold cannot be judged, so it does not count as allowed.
fn allowed_by(room: &RoomStore, event_id: &str, state: &StateMap) -> bool {
    let Some(event) = room.event(event_id) else {
        return false;
    };
    let held: Vec<(StateKey, Arc<Pdu>)> = state
        .iter()
        .filter_map(|(key, id)| room.event(id).map(|pdu| (key.clone(), pdu)))
        .collect();
    let view: BTreeMap<StateKey, &Event> = held
        .iter()
        .map(|(key, pdu)| (key.clone(), pdu.event()))
        .collect();
    check_auth(room.room_version(), event.event(), &view).is_ok()
}

/// Records the state resets of server `index` since the previous sample. `previous_end` bounds
/// the arrival numbers of the events the server held at the previous sample.
fn check_resets(
    world: &World,
    state: &mut SamplerState,
    index: usize,
    current: Rc<StateMap>,
    previous_end: Option<u64>,
) {
    let Some(previous) = state.previous_state.insert(index, current.clone()) else {
        return;
    };
    if Rc::ptr_eq(&previous, &current) || previous == current {
        return;
    }
    let reverts =
        read_room(world, index, |room| find_reverts(room, &previous, &current)).unwrap_or_default();
    let server = &world.plan.servers[index].name;
    let t_s = world.now_ms() as f64 / 1000.0;
    for revert in &reverts {
        let after = revert.after.as_deref().unwrap_or("(gone)");
        // Explained reverts are traced too: they are what tells a reset from resolution
        // doing its job when a run is read by hand.
        let kind = if revert.is_reset {
            "state_reset"
        } else {
            "state_revert_explained"
        };
        world.trace(format!(
            "\"kind\":\"{kind}\",\"server\":\"{server}\",\"type\":{},\"state_key\":{},\"before\":\"{}\",\"after\":\"{after}\"",
            Value::from(revert.key.0.as_str()),
            Value::from(revert.key.1.as_str()),
            revert.before
        ));
        if !revert.is_reset {
            continue;
        }
        let mut records = world.records.borrow_mut();
        records.state_resets += 1;
        if records.reset_examples.len() < 5 {
            records.reset_examples.push(format!(
                "{server}: ({}, {:?}) went back from {} to {after} at t={t_s:.1}s",
                revert.key.0, revert.key.1, revert.before
            ));
        }
    }
    if !reverts.iter().any(|revert| revert.is_reset) {
        return;
    }
    trace_recheck(world, index, &previous, &current, previous_end);
    if !state.reset_room_traced {
        state.reset_room_traced = true;
        if let Some(input) = read_room(world, index, resolver_input) {
            let previous: Vec<&String> = previous.values().collect();
            world.trace(format!(
                "\"kind\":\"state_reset_room\",\"server\":\"{server}\",\"previous_state\":{},\"resolve_input\":{input}",
                json!(previous)
            ));
        }
    }
}

/// Traces whether the server's state before and after a reset is what a from-scratch
/// recomputation over its DAG of that moment gives: if not, the reset is the server correcting
/// an earlier mistake (or making one), not state resolution.
fn trace_recheck(
    world: &World,
    index: usize,
    previous: &StateMap,
    current: &StateMap,
    previous_end: Option<u64>,
) {
    let server = &world.plan.servers[index].name;
    let Some((before, after)) = read_room(world, index, |room| {
        let before = previous_end.and_then(|end| recompute_current_state(room, end).ok());
        (before, recompute_current_state(room, u64::MAX).ok())
    }) else {
        return;
    };
    // `null`: not recomputed (no previous sample, or the resolution failed).
    let verdict = |recomputed: Option<&Recomputed>, held: &StateMap| match recomputed {
        None => "null".to_owned(),
        Some(recomputed) => (recomputed.state == *held).to_string(),
    };
    world.trace(format!(
        "\"kind\":\"state_reset_recheck\",\"server\":\"{server}\",\"before_matches\":{},\"after_matches\":{},\"placed_with_reported_state\":{}",
        verdict(before.as_ref(), previous),
        verdict(after.as_ref(), current),
        after.map_or(0, |after| after.placed_with_reported_state)
    ));
}

/// One more than the greatest arrival number of the events the room holds.
fn sequence_end(room: &RoomStore) -> u64 {
    room.sequence_end()
}

/// A server's current state recomputed from scratch, by [`recompute_current_state`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recomputed {
    pub state: StateMap,
    pub extremities: BTreeSet<String>,
    /// Events whose prev events the server does not all hold with state (it placed them with
    /// the state a peer reported): their state before is taken as stored.
    pub placed_with_reported_state: usize,
}

/// The current state of the room as it was when the server held exactly the events that
/// arrived before `sequence_end`, recomputed without the store's state groups and memoised
/// resolutions: every event held with state is replayed in topological order (the state before
/// it the resolution of its prev events' states, then the authorization rules), the forward
/// extremities are found again (not rejected by the replay, not soft-failed on arrival, without
/// such a descendant), and their states are resolved. Soft failure depends on arrival order, so
/// the server's verdict is kept. An event first held as an outlier keeps its arrival number
/// when it is placed with state, so for an earlier moment it counts as placed already.
pub fn recompute_current_state(
    room: &RoomStore,
    sequence_end: u64,
) -> Result<Recomputed, ResolveError> {
    let version = room.room_version();
    let held = |record: &EventRecord| record.sequence() < sequence_end;
    let events: BTreeMap<String, Event> = room
        .records()
        .filter(|(_, record)| held(record))
        .map(|(id, record)| (id.to_owned(), record.pdu().event().clone()))
        .collect();
    let with_state: BTreeSet<&str> = room
        .records()
        .filter(|(id, record)| held(record) && room.has_state(id))
        .map(|(id, _)| id)
        .collect();
    let mut children: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut waiting: BTreeMap<&str, usize> = BTreeMap::new();
    for &id in &with_state {
        let prevs: BTreeSet<&str> = events[id]
            .prev_events
            .iter()
            .map(String::as_str)
            .filter(|prev| with_state.contains(prev))
            .collect();
        for &prev in &prevs {
            children.entry(prev).or_default().push(id);
        }
        waiting.insert(id, prevs.len());
    }
    let mut ready: BTreeSet<&str> = waiting
        .iter()
        .filter(|(_, count)| **count == 0)
        .map(|(id, _)| *id)
        .collect();
    let mut replayer = Replayer::new(version, version.state_res);
    let mut placed_with_reported_state = 0;
    while let Some(id) = ready.pop_first() {
        let event = &events[id];
        let before = replayer.state_before(event, &events).unwrap_or_else(|_| {
            placed_with_reported_state += 1;
            room.state_before(id)
                .expect("events held with state have a state before")
        });
        replayer.apply(event, before, &events);
        for &child in children.get(id).map(Vec::as_slice).unwrap_or_default() {
            let count = waiting
                .get_mut(child)
                .expect("children are held with state");
            *count -= 1;
            if *count == 0 {
                ready.insert(child);
            }
        }
    }
    let replay = replayer.finish();
    let timeline = |id: &str| {
        !replay.is_rejected(id) && !matches!(room.status(id), Some(EventStatus::SoftFailed(_)))
    };
    let has_timeline_descendant = |id: &str| {
        let mut stack: Vec<&str> = children.get(id).cloned().unwrap_or_default();
        let mut seen = BTreeSet::new();
        while let Some(next) = stack.pop() {
            if !seen.insert(next) {
                continue;
            }
            if timeline(next) {
                return true;
            }
            stack.extend(children.get(next).map(Vec::as_slice).unwrap_or_default());
        }
        false
    };
    let extremities: BTreeSet<String> = with_state
        .iter()
        .filter(|id| timeline(id) && !has_timeline_descendant(id))
        .map(|id| (*id).to_owned())
        .collect();
    let state_sets: Vec<StateMap> = extremities
        .iter()
        .filter_map(|id| replay.state_after(id).cloned())
        .collect();
    let source = WithRejected {
        events: &events,
        rejected: replay.rejected(),
    };
    let state = match state_sets.len() {
        0 => StateMap::new(),
        1 => state_sets.into_iter().next().expect("one state set"),
        _ => resolve(version, version.state_res, &state_sets, &source)?.state,
    };
    Ok(Recomputed {
        state,
        extremities,
        placed_with_reported_state,
    })
}

/// The room as `fedlab proto resolve` reads it, to check a reset by hand: every event the
/// server holds (with its id) and the state at each forward extremity as the state sets
/// (their resolution is the current state).
pub fn resolver_input(room: &RoomStore) -> Value {
    let events: Vec<Value> = room
        .records()
        .map(|(event_id, record)| {
            let mut json = record.pdu().json().clone();
            json.insert("event_id".into(), Value::from(event_id));
            Value::Object(json)
        })
        .collect();
    let state_sets: Vec<Vec<String>> = room
        .forward_extremities()
        .iter()
        .filter_map(|id| room.state_after(id))
        .map(|state| state.into_values().collect())
        .collect();
    json!({
        "room_version": room.room_version().id,
        "events": events,
        "state_sets": state_sets,
    })
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

/// Notes the first sample at which each honest server holds each sent event. Each server's
/// room is read once per sample, for every event still open (only those sent since the
/// previous sample when its store did not change since, see [`DeliveriesSeen`]); an event
/// held by every other honest server is closed and not looked for again.
fn check_deliveries(world: &World, servers: &[usize], seen: &mut BTreeMap<usize, DeliveriesSeen>) {
    let now = world.now_ms();
    for &server in servers {
        let held_before = world
            .records
            .borrow()
            .room_held_since_ms
            .contains_key(&server);
        if !held_before && read_room(world, server, |_| ()).is_some() {
            world
                .records
                .borrow_mut()
                .room_held_since_ms
                .insert(server, now);
        }
    }
    let Some(room) = world.room() else {
        return;
    };
    let honest = world.honest().count();
    let mut records = world.records.borrow_mut();
    let records = &mut *records;
    let open = records.delivered.open_events(records.sent.len());
    for &server in servers {
        let Some(homeserver) = world.slots[server].current() else {
            continue;
        };
        let held_since_ms = records.room_held_since_ms.get(&server).copied();
        let (sent, delivered) = (&records.sent, &mut records.delivered);
        let incarnation = world.slots[server].incarnations();
        homeserver.with_room(&room, |store| {
            let mark = (incarnation, store.change_mark());
            let first_new = match seen.get(&server) {
                Some(last) if last.mark == mark => last.sent,
                _ => 0,
            };
            seen.insert(
                server,
                DeliveriesSeen {
                    mark,
                    sent: sent.len(),
                },
            );
            let unseen = &open[open.partition_point(|&event_index| event_index < first_new)..];
            for &event_index in unseen {
                let event = &sent[event_index];
                if event.origin == server || delivered.contains_key(&(event_index, server)) {
                    continue;
                }
                if store.has_state(&event.event_id) {
                    let from_ms = event
                        .sent_at_ms
                        .max(held_since_ms.unwrap_or(event.sent_at_ms));
                    delivered.insert((event_index, server), now.saturating_sub(from_ms));
                }
            }
        });
    }
    for event_index in open {
        // Deliveries are counted at honest servers other than the origin only.
        let origin = records.sent[event_index].origin;
        let reachable = honest - usize::from(world.plan.servers[origin].honest);
        if records.delivered.reached(event_index) >= reachable {
            records.delivered.mark_complete(event_index);
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
    let mut records = world.records.borrow_mut();
    records.acked_checked += acked.len() as u64;
    records.acked_lost += lost;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::room_version::room_version;
    use crate::proto::state_res::scenario::Scenario;
    use crate::server::store::log::DurableLog;
    use crate::server::store::testkit::{EventSpec, RoomBuilder};
    use serde_json::json;

    const ALICE: &str = "@alice:a.example";
    const BOB: &str = "@bob:b.example";

    fn topic_key() -> StateKey {
        ("m.room.topic".to_owned(), String::new())
    }

    /// Alice (admin) sets topic T1; Bob, allowed to set state, sets T2 on top of it.
    fn room_with_two_topics() -> (RoomBuilder, String, String) {
        let mut room = RoomBuilder::standard(room_version("11").unwrap(), ALICE);
        room.join(BOB);
        room.state(
            ALICE,
            "m.room.power_levels",
            json!({"users": {ALICE: 100, BOB: 50}, "state_default": 50, "ban": 50}),
        );
        let t1 = room.state(ALICE, "m.room.topic", json!({"topic": "one"}));
        let t2 = room.state(BOB, "m.room.topic", json!({"topic": "two"}));
        (room, t1.event_id().to_owned(), t2.event_id().to_owned())
    }

    fn store_of(room: &RoomBuilder, events: &[Arc<Pdu>]) -> RoomStore {
        let mut store = RoomStore::new(room.room_id(), room.version(), DurableLog::new());
        for pdu in events {
            store.ingest(pdu.clone(), false).unwrap();
        }
        store
    }

    #[test]
    fn a_revert_the_room_explains_is_not_a_reset() {
        let (mut room, t1, t2) = room_with_two_topics();
        let before_ban = room.built().to_vec();
        // Concurrently with T2, Alice bans Bob: resolution drops T2, whose sender is banned.
        let ban = room.event(
            EventSpec::new(ALICE, "m.room.member")
                .state_key(BOB)
                .content(json!({"membership": "ban"}))
                .prev(&[&t1]),
        );
        let mut store = store_of(&room, &before_ban);
        let previous = store.current_state().clone();
        assert_eq!(previous[&topic_key()], t2);
        store.ingest(ban, false).unwrap();
        let current = store.current_state().clone();
        assert_eq!(current[&topic_key()], t1, "T2 went back to its ancestor T1");
        let expected = StateRevert {
            key: topic_key(),
            before: t2,
            after: Some(t1),
            is_reset: false,
        };
        assert_eq!(find_reverts(&store, &previous, &current), [expected]);
    }

    #[test]
    fn going_back_to_an_ancestor_or_vanishing_while_still_allowed_is_a_reset() {
        let (room, t1, t2) = room_with_two_topics();
        let store = store_of(&room, room.built());
        let previous = store.current_state().clone();
        assert_eq!(find_reverts(&store, &previous, &previous), []);
        let mut back = previous.clone();
        back.insert(topic_key(), t1.clone());
        let expected = StateRevert {
            key: topic_key(),
            before: t2.clone(),
            after: Some(t1),
            is_reset: true,
        };
        assert_eq!(find_reverts(&store, &previous, &back), [expected]);
        let mut gone = previous.clone();
        gone.remove(&topic_key());
        let expected = StateRevert {
            key: topic_key(),
            before: t2,
            after: None,
            is_reset: true,
        };
        assert_eq!(find_reverts(&store, &previous, &gone), [expected]);
    }

    #[test]
    fn resolver_input_reproduces_the_current_state_through_the_resolver() {
        let (mut room, t1, _) = room_with_two_topics();
        room.event(
            EventSpec::new(ALICE, "m.room.member")
                .state_key(BOB)
                .content(json!({"membership": "ban"}))
                .prev(&[&t1]),
        );
        let store = store_of(&room, room.built());
        assert_eq!(store.forward_extremities().len(), 2);
        let input = resolver_input(&store);
        assert_eq!(
            input["events"].as_array().unwrap().len(),
            room.built().len()
        );
        assert_eq!(input["state_sets"].as_array().unwrap().len(), 2);
        let scenario = Scenario::from_value(&input, None).unwrap();
        let resolved = scenario.run(room.version().state_res).unwrap();
        assert_eq!(&resolved.state, store.current_state());
    }

    #[test]
    fn recomputing_from_scratch_gives_the_held_state_now_and_at_an_earlier_moment() {
        let (mut room, t1, t2) = room_with_two_topics();
        let before_ban = room.built().to_vec();
        let ban = room.event(
            EventSpec::new(ALICE, "m.room.member")
                .state_key(BOB)
                .content(json!({"membership": "ban"}))
                .prev(&[&t1]),
        );
        let mut store = store_of(&room, &before_ban);
        let earlier = store.current_state().clone();
        let earlier_end = sequence_end(&store);
        store.ingest(ban.clone(), false).unwrap();
        let now = recompute_current_state(&store, u64::MAX).unwrap();
        assert_eq!(&now.state, store.current_state());
        assert_eq!(&now.extremities, store.forward_extremities());
        assert_eq!(now.extremities.len(), 2, "the ban forks off T1");
        assert_eq!(now.placed_with_reported_state, 0);
        assert_ne!(now.state, earlier, "the ban won over T2");
        let then = recompute_current_state(&store, earlier_end).unwrap();
        assert_eq!(then.state, earlier);
        assert_eq!(then.extremities, BTreeSet::from([t2]));
        assert!(!then.state.values().any(|id| id == ban.event_id()));
    }

    #[test]
    fn agreement_first_after_a_moment_and_for_good() {
        let mut agreement = Agreement::default();
        assert_eq!(agreement.for_good_since(), None);
        for (t_ms, agreed) in [
            (0, true),
            (500, false),
            (1000, true),
            (1500, false),
            (2000, true),
        ] {
            agreement.record(t_ms, agreed);
        }
        assert_eq!(agreement.first_after(0), Some(1000));
        assert_eq!(agreement.first_after(400), Some(1000));
        assert_eq!(agreement.first_after(1000), Some(2000));
        assert_eq!(agreement.for_good_since(), Some(2000));
        agreement.record(2500, true);
        assert_eq!(agreement.for_good_since(), Some(2000));
        agreement.record(3000, false);
        assert_eq!(agreement.for_good_since(), None);
        assert_eq!(agreement.first_after(2600), None);
    }
}
