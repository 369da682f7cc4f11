//! State resolution v2 and v2.1 from the conflicted part of the state sets only, for callers
//! that hold the unconflicted state map already (a server merging state groups that share
//! most of their state).
//!
//! [`resolve`](super::resolve) reads every event of every state set and their whole auth
//! chains: in a room of a thousand members that is thousands of events per resolution, even
//! when the sets differ in one key. The algorithm needs much less. The unconflicted events are
//! in every set, so their auth chain is in every set's full auth chain and drops out of the
//! auth difference: that is the union of the conflicted events' auth chains, less what is in
//! all of them and less what is in the unconflicted events' chain (which the caller answers,
//! [`UnconflictedState::in_auth_chain`]). The iterative auth checks read the unconflicted map
//! (v2) at a few keys per event only, and it wins over the result at the end anyway. So this
//! interns the conflicted events, their auth chains, and the unconflicted events at the keys
//! the authorization rules read for them.
//!
//! Invariant: for state sets split into an unconflicted map and conflicted parts, the
//! unconflicted map overlaid with the result equals [`resolve`](super::resolve) of the full
//! sets (a property test checks it on random rooms).

use super::auth_chain::{AuthGraph, NeededBy, Node};
use super::{
    EventSource, PartialState, ResolveError, Resolved, StateSetEntries, state_sets_as_nodes, v2,
};
use crate::proto::auth::auth_keys_of;
use crate::proto::event::{Event, StateMap, state_entry};
use crate::proto::room_version::{RoomVersion, StateResAlgorithm};
use std::collections::{BTreeMap, BTreeSet};

/// The unconflicted state map of a resolution, as the caller holds it.
pub trait UnconflictedState {
    /// The event at a key of the unconflicted state map; `None` for a key it lacks, which
    /// includes every conflicted key.
    fn get(&self, event_type: &str, state_key: &str) -> Option<&str>;

    /// Whether `event_id` is in the full auth chain of the unconflicted state map's events.
    fn in_auth_chain(&self, event_id: &str) -> bool;
}

/// Resolves state sets given as their unconflicted state map and, per state set, its events at
/// the conflicted keys (every key of `conflicted` is one: no event holds it in every set).
/// The result holds the keys the unconflicted map lacks only; the unconflicted map overlaid
/// with it is the resolved state. Room versions whose algorithm is v2 or v2.1 only.
pub fn resolve_conflicts(
    version: &RoomVersion,
    algorithm: StateResAlgorithm,
    unconflicted: &dyn UnconflictedState,
    conflicted: &[impl StateSetEntries],
    events: &dyn EventSource,
) -> Result<Resolved, ResolveError> {
    assert!(
        matches!(algorithm, StateResAlgorithm::V2 | StateResAlgorithm::V2_1),
        "resolution from the conflicted part is defined for v2 and v2.1 only"
    );
    let roots = conflicted.iter().enumerate().flat_map(|(index, set)| {
        set.entries()
            .map(move |(_, _, event_id)| (event_id, NeededBy::StateSet(index)))
    });
    let graph = AuthGraph::build_with_extra_roots(version, roots, events, |interned| {
        match algorithm {
            // v2.1 starts the iterative auth checks from an empty state.
            StateResAlgorithm::V2_1 => Vec::new(),
            _ => unconflicted_events_read(version, unconflicted, events, interned),
        }
    })?;
    let sets = state_sets_as_nodes(&graph, conflicted)?;
    let conflicted_nodes: Vec<Node> = sets
        .iter()
        .flatten()
        .copied()
        .collect::<BTreeSet<Node>>()
        .into_iter()
        .collect();
    let mut auth_difference = graph.auth_difference(&sets);
    for (node, in_difference) in auth_difference.iter_mut().enumerate() {
        if *in_difference && unconflicted.in_auth_chain(graph.id(node as Node)) {
            *in_difference = false;
        }
    }
    let mut start = PartialState::empty(&graph);
    for key in 0..graph.key_count() as u32 {
        let (event_type, state_key) = graph.key_strings(key);
        if let Some(node) = unconflicted
            .get(event_type, state_key)
            .and_then(|event_id| graph.node(event_id))
        {
            start.set(key, node);
        }
    }
    let (state, rejected) = v2::resolve_conflicted(
        version,
        algorithm,
        &graph,
        &start,
        &conflicted_nodes,
        auth_difference,
    );
    let mut resolved = StateMap::new();
    for key in 0..graph.key_count() as u32 {
        let (event_type, state_key) = graph.key_strings(key);
        if unconflicted.get(event_type, state_key).is_some() {
            continue;
        }
        if let Some(node) = state.get(key) {
            let key = (event_type.to_owned(), state_key.to_owned());
            resolved.insert(key, graph.id(node).to_owned());
        }
    }
    Ok(Resolved {
        state: resolved,
        rejected: rejected
            .into_iter()
            .map(|node| graph.id(node).to_owned())
            .collect(),
    })
}

/// The events of the unconflicted state map at the keys the authorization rules read for
/// `interned` (a superset of the full conflicted set), and at the power levels key, which the
/// mainline ordering starts from. Named by the ids the events carry, which live as long as
/// the event source.
fn unconflicted_events_read<'a>(
    version: &RoomVersion,
    unconflicted: &dyn UnconflictedState,
    events: &'a dyn EventSource,
    interned: &[&'a Event],
) -> Vec<&'a str> {
    let mut keys: BTreeSet<(&str, &str)> = BTreeSet::new();
    keys.insert(("m.room.power_levels", ""));
    keys.insert(("m.room.create", ""));
    for event in interned.iter().filter(|event| event.is_state()) {
        let auth_keys = auth_keys_of(version, event);
        for (event_type, state_key) in auth_keys.iter() {
            keys.insert((event_type, state_key));
        }
    }
    keys.into_iter()
        .filter_map(|(event_type, state_key)| unconflicted.get(event_type, state_key))
        .filter_map(|event_id| events.event(event_id))
        .map(|event| event.event_id.as_str())
        .collect()
}

/// An unconflicted state map held whole, with its auth chain walked up front: the reference
/// [`UnconflictedState`], for tests and for callers that hold full state sets anyway.
#[derive(Clone, Debug, Default)]
pub struct HeldUnconflicted {
    pub state: StateMap,
    pub auth_chain: BTreeSet<String>,
}

impl HeldUnconflicted {
    /// Splits full state sets into the unconflicted map (with its auth chain, read from
    /// `events`) and each set's events at the conflicted keys.
    pub fn split(
        state_sets: &[StateMap],
        events: &dyn EventSource,
    ) -> Result<(Self, Vec<StateMap>), ResolveError> {
        let mut holders: BTreeMap<&(String, String), Vec<&String>> = BTreeMap::new();
        for set in state_sets {
            for (key, event_id) in set {
                holders.entry(key).or_default().push(event_id);
            }
        }
        let mut state = StateMap::new();
        for (key, ids) in &holders {
            if ids.len() == state_sets.len() && ids.iter().all(|id| *id == ids[0]) {
                state.insert((*key).clone(), ids[0].clone());
            }
        }
        let conflicted = state_sets
            .iter()
            .map(|set| {
                set.iter()
                    .filter(|(key, _)| !state.contains_key(*key))
                    .map(|(key, id)| (key.clone(), id.clone()))
                    .collect()
            })
            .collect();
        let auth_chain = auth_chain_of(state.values(), events)?;
        Ok((Self { state, auth_chain }, conflicted))
    }
}

impl UnconflictedState for HeldUnconflicted {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&str> {
        state_entry(&self.state, event_type, state_key).map(String::as_str)
    }

    fn in_auth_chain(&self, event_id: &str) -> bool {
        self.auth_chain.contains(event_id)
    }
}

/// Every event reachable from `roots` through one or more `auth_events` links.
fn auth_chain_of<'a>(
    roots: impl IntoIterator<Item = &'a String>,
    events: &dyn EventSource,
) -> Result<BTreeSet<String>, ResolveError> {
    let mut chain = BTreeSet::new();
    let mut stack: Vec<(String, String)> = Vec::new();
    for root in roots {
        let event = events
            .event(root)
            .ok_or_else(|| ResolveError::MissingEvent {
                event_id: root.clone(),
                needed_by: "the unconflicted state map".to_owned(),
            })?;
        stack.extend(
            event
                .auth_events
                .iter()
                .map(|auth| (auth.clone(), root.clone())),
        );
    }
    while let Some((event_id, citer)) = stack.pop() {
        if chain.contains(&event_id) {
            continue;
        }
        let event = events
            .event(&event_id)
            .ok_or_else(|| ResolveError::MissingEvent {
                event_id: event_id.clone(),
                needed_by: format!("the auth_events of {citer}"),
            })?;
        stack.extend(
            event
                .auth_events
                .iter()
                .map(|auth| (auth.clone(), event_id.clone())),
        );
        chain.insert(event_id);
    }
    Ok(chain)
}
