//! State resolution: v1 (room version 1), v2 (room versions 2 to 11) and v2.1 (room version
//! 12), and the state after each event of a DAG computed the way a server does.
//!
//! [`resolve`] merges state sets as the room version pages of the spec define ("State
//! resolution"); [`resolve_conflicts`] does the same from the conflicted part of the sets, for
//! callers that hold the unconflicted state map; [`replay`] walks a whole DAG and resolves the states of the prev events at
//! every merge; [`scenario`] reads the JSON input of `fedlab proto resolve`.
//!
//! Invariants:
//! - Pure and deterministic: the result depends on the state sets and the events only, never on
//!   the order of the state sets, of the events in a source, or of any hash map.
//! - Every event the algorithm needs is found in the [`EventSource`], or the call fails with
//!   [`ResolveError::MissingEvent`] naming it and who needed it; the auth graph has no cycle.
//! - Bad input gives a [`ResolveError`], never a panic; assertions guard our own invariants.

mod auth_chain;
mod conflicts;
mod fast_hash;
mod intern_table;
mod iterative;
mod ordering;
pub mod replay;
pub mod scenario;
mod v1;
mod v2;

use crate::proto::event::{Event, StateKey, StateMap};
use crate::proto::room_version::{RoomVersion, StateResAlgorithm};
use auth_chain::{AuthGraph, NeededBy, Node};
use std::collections::{BTreeMap, BTreeSet};

pub use conflicts::{HeldUnconflicted, UnconflictedState, resolve_conflicts};
pub use replay::{Replay, Replayer, replay};

/// Where the resolver finds events by id.
pub trait EventSource {
    fn event(&self, event_id: &str) -> Option<&Event>;

    /// Whether the event was rejected when it was received. Rejected events are not used as
    /// auth events during the iterative auth checks. A plain collection of events knows of no
    /// rejection.
    fn is_rejected(&self, _event_id: &str) -> bool {
        false
    }
}

impl EventSource for BTreeMap<String, Event> {
    fn event(&self, event_id: &str) -> Option<&Event> {
        self.get(event_id)
    }
}

impl EventSource for BTreeMap<String, &Event> {
    fn event(&self, event_id: &str) -> Option<&Event> {
        self.get(event_id).copied()
    }
}

/// Events plus the ids of those that were rejected on receipt.
pub struct WithRejected<'a> {
    pub events: &'a dyn EventSource,
    pub rejected: &'a BTreeSet<String>,
}

impl EventSource for WithRejected<'_> {
    fn event(&self, event_id: &str) -> Option<&Event> {
        self.events.event(event_id)
    }

    fn is_rejected(&self, event_id: &str) -> bool {
        self.rejected.contains(event_id) || self.events.is_rejected(event_id)
    }
}

/// Why state could not be resolved. Each message names the events concerned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("event {event_id} is missing (needed by {needed_by})")]
    MissingEvent { event_id: String, needed_by: String },
    #[error("events form a cycle through their auth_events or prev_events: {}", event_ids.join(", "))]
    Cycle { event_ids: Vec<String> },
    #[error(
        "no m.room.create event for room {room_id} among the events (from room version 12 the \
         room id is \"!\" followed by the create event's id without its \"$\")"
    )]
    MissingCreateEvent { room_id: String },
    #[error("state set #{state_set}: {event_id} is not a state event")]
    NotAStateEvent { state_set: usize, event_id: String },
    #[error(
        "state set #{state_set}: {event_id} holds ({}, {}) but is listed under ({}, {})",
        held.0, held.1, listed.0, listed.1
    )]
    StateKeyMismatch {
        state_set: usize,
        event_id: String,
        held: Box<StateKey>,
        listed: Box<StateKey>,
    },
}

/// The result of a resolution.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    pub state: StateMap,
    /// Events that failed the authorization rules during the resolution (the iterative auth
    /// checks of v2 and v2.1, the checks against the partial state of v1).
    pub rejected: BTreeSet<String>,
}

/// Resolves state sets with the given algorithm; the authorization rules follow `version`.
pub fn resolve(
    version: &RoomVersion,
    algorithm: StateResAlgorithm,
    state_sets: &[StateMap],
    events: &dyn EventSource,
) -> Result<Resolved, ResolveError> {
    let roots = state_sets.iter().enumerate().flat_map(|(index, set)| {
        set.values()
            .map(move |event_id| (event_id.as_str(), NeededBy::StateSet(index)))
    });
    let graph = AuthGraph::build(version, roots, events)?;
    let sets = state_sets_as_nodes(&graph, state_sets)?;
    let resolved = match algorithm {
        StateResAlgorithm::V1 => v1::resolve(version, &graph, &sets),
        StateResAlgorithm::V2 | StateResAlgorithm::V2_1 => {
            v2::resolve(version, algorithm, &graph, &sets)
        }
    };
    Ok(resolved)
}

/// A state set read as its entries, `(event type, state key, event id)` in the order of a
/// [`StateMap`] (by type, then state key): a state map, or a list of borrowed entries in that
/// order, which a caller holding its states in another form builds without copying strings.
pub trait StateSetEntries {
    fn entries(&self) -> impl Iterator<Item = (&str, &str, &str)>;
    fn entry_count(&self) -> usize;
}

impl StateSetEntries for StateMap {
    fn entries(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.iter().map(|((event_type, state_key), event_id)| {
            (event_type.as_str(), state_key.as_str(), event_id.as_str())
        })
    }

    fn entry_count(&self) -> usize {
        self.len()
    }
}

impl StateSetEntries for Vec<(&str, &str, &str)> {
    fn entries(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        debug_assert!(
            self.is_sorted_by(|a, b| (a.0, a.1) < (b.0, b.1)),
            "entries by key"
        );
        self.iter().copied()
    }

    fn entry_count(&self) -> usize {
        self.len()
    }
}

/// The state sets as lists of nodes, checked: every value is a state event that holds the key
/// it is listed under.
fn state_sets_as_nodes(
    graph: &AuthGraph<'_>,
    state_sets: &[impl StateSetEntries],
) -> Result<Vec<Vec<Node>>, ResolveError> {
    let mut sets = Vec::with_capacity(state_sets.len());
    for (index, set) in state_sets.iter().enumerate() {
        let mut nodes = Vec::with_capacity(set.entry_count());
        for (event_type, state_key, event_id) in set.entries() {
            let node = graph.node(event_id).expect("the graph holds every root");
            // Comparing key ids spares reading the event's own strings when all is well.
            let listed_key = graph.key_id(event_type, state_key);
            if listed_key.is_some() && graph.key_of(node) == listed_key {
                nodes.push(node);
                continue;
            }
            let event = graph.event(node);
            let Some(held_key) = event.state_key.as_deref() else {
                return Err(ResolveError::NotAStateEvent {
                    state_set: index,
                    event_id: event_id.to_owned(),
                });
            };
            if event.event_type != event_type || held_key != state_key {
                return Err(ResolveError::StateKeyMismatch {
                    state_set: index,
                    event_id: event_id.to_owned(),
                    held: Box::new((event.event_type.clone(), held_key.to_owned())),
                    listed: Box::new((event_type.to_owned(), state_key.to_owned())),
                });
            }
            nodes.push(node);
        }
        sets.push(nodes);
    }
    Ok(sets)
}

/// A partially resolved state: per key of the graph, the node that holds it.
#[derive(Clone, Debug)]
pub(crate) struct PartialState {
    by_key: Vec<Option<Node>>,
}

impl PartialState {
    pub(crate) fn empty(graph: &AuthGraph<'_>) -> Self {
        Self {
            by_key: vec![None; graph.key_count()],
        }
    }

    pub(crate) fn get(&self, key: auth_chain::KeyId) -> Option<Node> {
        self.by_key[key as usize]
    }

    pub(crate) fn set(&mut self, key: auth_chain::KeyId, node: Node) {
        self.by_key[key as usize] = Some(node);
    }

    /// Sets the key of a state event to that event.
    pub(crate) fn apply(&mut self, graph: &AuthGraph<'_>, node: Node) {
        let key = graph.key_of(node).expect("only state events are applied");
        self.set(key, node);
    }

    /// Overwrites this state with every entry of `other`.
    pub(crate) fn overlay(&mut self, other: &PartialState) {
        for (mine, theirs) in self.by_key.iter_mut().zip(&other.by_key) {
            if theirs.is_some() {
                *mine = *theirs;
            }
        }
    }

    pub(crate) fn to_state_map(&self, graph: &AuthGraph<'_>) -> StateMap {
        self.by_key
            .iter()
            .enumerate()
            .filter_map(|(key, node)| {
                let node = (*node)?;
                let (event_type, state_key) = graph.key_strings(key as auth_chain::KeyId);
                Some((
                    (event_type.to_owned(), state_key.to_owned()),
                    graph.id(node).to_owned(),
                ))
            })
            .collect()
    }
}

/// Whether an event is a power event: `m.room.power_levels`, `m.room.join_rules`, or a
/// membership of `leave` or `ban` sent by someone other than its target (a kick or a ban).
/// This is the spec's definition; some servers also count `m.room.create`, which only matters
/// when state sets disagree on the create event itself.
pub(crate) fn is_power_event(event: &Event) -> bool {
    let Some(state_key) = event.state_key.as_deref() else {
        return false;
    };
    match event.event_type.as_str() {
        "m.room.power_levels" | "m.room.join_rules" => true,
        "m.room.member" => {
            matches!(event.membership(), Some("leave" | "ban")) && event.sender != state_key
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
