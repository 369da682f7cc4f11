//! The state after each event of a DAG, computed the way a server does.
//!
//! Events are taken in topological order (prev events and auth events first, ties by event id).
//! The state before an event is the resolution of the states after its prev events (one prev
//! event: its state as is; none: the empty state). The event is then checked against its auth
//! events and against the state before it; if it passes both it is accepted, and a state event
//! replaces its key. A rejected event changes nothing, yet stays in the DAG: its own state after
//! is the state before it.
//!
//! [`Replayer`] does one event at a time, for callers that complete events as they go (the
//! scenario reader picks missing auth events from the state before each event).
//!
//! Invariants: an event is applied only after all of its prev and auth events; the result does
//! not depend on the order of the input map or of any event's `prev_events`.

use super::{EventSource, ResolveError, WithRejected, resolve};
use crate::proto::auth::{AuthState, check_auth, check_auth_events_list_with_rejections};
use crate::proto::event::{Event, StateMap, state_entry};
use crate::proto::room_version::{RoomVersion, StateResAlgorithm};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

/// The state after every event of a DAG and the events that were rejected.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replay {
    state_after: BTreeMap<String, StateMap>,
    rejected: BTreeSet<String>,
}

impl Replay {
    /// The state after an event (for a rejected event, the state before it).
    pub fn state_after(&self, event_id: &str) -> Option<&StateMap> {
        self.state_after.get(event_id)
    }

    /// Every event replayed, with the state after it.
    pub fn states_after(&self) -> &BTreeMap<String, StateMap> {
        &self.state_after
    }

    /// Events that failed the authorization rules against their auth events or against the
    /// state before them.
    pub fn rejected(&self) -> &BTreeSet<String> {
        &self.rejected
    }

    pub fn is_rejected(&self, event_id: &str) -> bool {
        self.rejected.contains(event_id)
    }
}

/// Replays a whole DAG: the state after each event, the way a server computes it.
pub fn replay(
    version: &RoomVersion,
    algorithm: StateResAlgorithm,
    events: &BTreeMap<String, Event>,
) -> Result<Replay, ResolveError> {
    check_create_event(events)?;
    let order = topological_order(events, Edges::PrevAndAuthEvents)?;
    let mut replayer = Replayer::new(version, algorithm);
    for event_id in order {
        let event = &events[event_id];
        let state_before = replayer.state_before(event, events)?;
        replayer.apply(event, state_before, events);
    }
    Ok(replayer.finish())
}

/// Replays events one at a time, each after its prev and auth events.
pub struct Replayer<'v> {
    version: &'v RoomVersion,
    algorithm: StateResAlgorithm,
    replay: Replay,
}

impl<'v> Replayer<'v> {
    pub fn new(version: &'v RoomVersion, algorithm: StateResAlgorithm) -> Self {
        Self {
            version,
            algorithm,
            replay: Replay::default(),
        }
    }

    /// The state before `event`: the resolution of the states after its prev events, which
    /// must all have been applied.
    pub fn state_before(
        &self,
        event: &Event,
        events: &dyn EventSource,
    ) -> Result<StateMap, ResolveError> {
        let mut prev_states: Vec<&StateMap> = Vec::with_capacity(event.prev_events.len());
        for prev_id in &event.prev_events {
            let state =
                self.replay
                    .state_after(prev_id)
                    .ok_or_else(|| ResolveError::MissingEvent {
                        event_id: prev_id.clone(),
                        needed_by: format!("the prev_events of {}", event.event_id),
                    })?;
            if !prev_states.contains(&state) {
                prev_states.push(state);
            }
        }
        match prev_states.as_slice() {
            [] => Ok(StateMap::new()),
            [only] => Ok((*only).clone()),
            _ => {
                let sets: Vec<StateMap> = prev_states.into_iter().cloned().collect();
                let source = WithRejected {
                    events,
                    rejected: &self.replay.rejected,
                };
                Ok(resolve(self.version, self.algorithm, &sets, &source)?.state)
            }
        }
    }

    /// Checks `event` against its auth events and against `state_before`, records the state
    /// after it and returns whether it was accepted. Its auth events must have been applied.
    pub fn apply(
        &mut self,
        event: &Event,
        state_before: StateMap,
        events: &dyn EventSource,
    ) -> bool {
        let accepted = self.passes_auth_events(event, events)
            && check_auth(
                self.version,
                event,
                &StateMapView {
                    state: &state_before,
                    events,
                },
            )
            .is_ok();
        let mut state_after = state_before;
        if accepted {
            if let Some(key) = event.state_key_pair() {
                state_after.insert(key, event.event_id.clone());
            }
        } else {
            self.replay.rejected.insert(event.event_id.clone());
        }
        self.replay
            .state_after
            .insert(event.event_id.clone(), state_after);
        accepted
    }

    pub fn finish(self) -> Replay {
        self.replay
    }

    /// The checks on receipt against the event's own auth events: the list is well formed,
    /// none of its events was rejected, and the rules allow the event in the state they form.
    fn passes_auth_events(&self, event: &Event, events: &dyn EventSource) -> bool {
        let lookup = |event_id: &str| events.event(event_id);
        let rejected = |event_id: &str| self.replay.is_rejected(event_id);
        if check_auth_events_list_with_rejections(self.version, event, &lookup, &rejected).is_err()
        {
            return false;
        }
        let mut auth_state: BTreeMap<(String, String), &Event> = BTreeMap::new();
        for auth_id in &event.auth_events {
            if let Some(auth_event) = events.event(auth_id) {
                if let Some(key) = auth_event.state_key_pair() {
                    auth_state.insert(key, auth_event);
                }
            }
        }
        if self.version.create_event_implied && event.event_type != "m.room.create" {
            let create = implied_create_id(&event.room_id)
                .filter(|create_id| !self.replay.is_rejected(create_id))
                .and_then(|create_id| events.event(&create_id));
            if let Some(create) = create {
                auth_state.insert(("m.room.create".to_owned(), String::new()), create);
            }
        }
        check_auth(self.version, event, &auth_state).is_ok()
    }
}

/// Room version 12: the id of the create event that a room id names.
pub(crate) fn implied_create_id(room_id: &str) -> Option<String> {
    room_id.strip_prefix('!').map(|rest| format!("${rest}"))
}

/// A state map read through an event source.
struct StateMapView<'a> {
    state: &'a StateMap,
    events: &'a dyn EventSource,
}

impl AuthState for StateMapView<'_> {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&Event> {
        self.events
            .event(state_entry(self.state, event_type, state_key)?)
    }
}

/// Fails unless there is a create event among the events.
pub fn check_create_event(events: &BTreeMap<String, Event>) -> Result<(), ResolveError> {
    if events.values().any(|event| event.is("m.room.create", "")) {
        return Ok(());
    }
    let room_id = events
        .values()
        .next()
        .map(|event| event.room_id.clone())
        .unwrap_or_default();
    Err(ResolveError::MissingCreateEvent { room_id })
}

/// Which references order events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edges {
    PrevEvents,
    PrevAndAuthEvents,
}

/// The events in an order where each comes after the events it references (ties by smallest
/// event id). Fails if a referenced event is not among the events or if the references form a
/// cycle.
pub fn topological_order(
    events: &BTreeMap<String, Event>,
    edges: Edges,
) -> Result<Vec<&str>, ResolveError> {
    let mut waiting_on: HashMap<&str, usize> = HashMap::with_capacity(events.len());
    let mut citers: HashMap<&str, Vec<&str>> = HashMap::with_capacity(events.len());
    for (event_id, event) in events {
        let mut parents: Vec<&str> = Vec::new();
        let references = event
            .prev_events
            .iter()
            .map(|id| (id, "prev_events"))
            .chain(
                event
                    .auth_events
                    .iter()
                    .filter(|_| edges == Edges::PrevAndAuthEvents)
                    .map(|id| (id, "auth_events")),
            );
        for (parent, field) in references {
            if !events.contains_key(parent) {
                return Err(ResolveError::MissingEvent {
                    event_id: parent.clone(),
                    needed_by: format!("the {field} of {event_id}"),
                });
            }
            if !parents.contains(&parent.as_str()) {
                parents.push(parent);
            }
        }
        waiting_on.insert(event_id, parents.len());
        for parent in parents {
            citers.entry(parent).or_default().push(event_id);
        }
    }
    let mut ready: BinaryHeap<Reverse<&str>> = waiting_on
        .iter()
        .filter(|(_, waiting)| **waiting == 0)
        .map(|(event_id, _)| Reverse(*event_id))
        .collect();
    let mut order = Vec::with_capacity(events.len());
    while let Some(Reverse(event_id)) = ready.pop() {
        order.push(event_id);
        for &citer in citers.get(event_id).into_iter().flatten() {
            let waiting = waiting_on.get_mut(citer).expect("every citer is an event");
            *waiting -= 1;
            if *waiting == 0 {
                ready.push(Reverse(citer));
            }
        }
    }
    if order.len() < events.len() {
        let mut event_ids: Vec<String> = waiting_on
            .iter()
            .filter(|(_, waiting)| **waiting > 0)
            .map(|(event_id, _)| (*event_id).to_owned())
            .collect();
        event_ids.sort();
        return Err(ResolveError::Cycle { event_ids });
    }
    Ok(order)
}
