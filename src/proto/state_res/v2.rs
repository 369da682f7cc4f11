//! State resolution v2 (room versions 2 to 11) and v2.1 (room version 12), step by step as the
//! spec's "State resolution" section of those room versions defines it.
//!
//! v2.1 differs in two places only: the full conflicted set also holds the conflicted state
//! subgraph, and the first iterative auth checks start from an empty state instead of the
//! unconflicted state map. (The creators' infinite power in the ordering comes from the
//! authorization rules of room version 12, through `user_power_level`.)
//!
//! The auth DAG of the power ordering is that of Synapse and ruma: only the `auth_events` links
//! between events of the full conflicted set, both for enlarging the power events by their auth
//! chains and for ordering them (see `ordering` for the reading and why). In v2.1 this changes
//! nothing, because no auth path between two events of the full conflicted set leaves it. Every
//! event of the set is conflicted or in the auth chain of a conflicted event (an event of the
//! auth difference is in the auth chain of a state event that some state set lacks, hence a
//! conflicted one). So an event on such a path is below a conflicted event. If the path's end is
//! or leads to a conflicted event, the event is in the conflicted state subgraph; otherwise the
//! end is in the auth difference, missing from some state set's full auth chain, which then
//! lacks the event too, while the chain of the conflicted event above it holds it: the event is
//! in the auth difference.
//!
//! Invariants: the unconflicted state map is part of the result unchanged; every event of the
//! full conflicted set is checked exactly once, in the power ordering or in the mainline
//! ordering.

use super::auth_chain::{AuthGraph, Node};
use super::iterative::{iterative_auth_checks, sender_power_from_auth_events};
use super::ordering::{mainline_order, reverse_topological_power_order};
use super::{PartialState, Resolved, is_power_event};
use crate::proto::room_version::{RoomVersion, StateResAlgorithm};

pub(crate) fn resolve(
    version: &RoomVersion,
    algorithm: StateResAlgorithm,
    graph: &AuthGraph<'_>,
    state_sets: &[Vec<Node>],
) -> Resolved {
    let split = split_conflicted(graph, state_sets);
    if split.conflicted.is_empty() {
        return Resolved {
            state: split.unconflicted.to_state_map(graph),
            rejected: Default::default(),
        };
    }
    let auth_difference = graph.auth_difference(state_sets);
    let (mut state, rejected) = resolve_conflicted(
        version,
        algorithm,
        graph,
        &split.unconflicted,
        &split.conflicted,
        auth_difference,
    );
    // Step 5: the unconflicted state map wins wherever it has a key.
    state.overlay(&split.unconflicted);
    Resolved {
        state: state.to_state_map(graph),
        rejected: rejected
            .into_iter()
            .map(|node| graph.id(node).to_owned())
            .collect(),
    }
}

/// Steps 1 to 4 of the algorithm: the partially resolved state before the unconflicted state
/// map is applied on top, and the events rejected on the way. `unconflicted` needs to hold
/// only the keys the authorization rules read for the events of the full conflicted set (and
/// the power levels); `auth_difference` is a flag per node.
pub(crate) fn resolve_conflicted(
    version: &RoomVersion,
    algorithm: StateResAlgorithm,
    graph: &AuthGraph<'_>,
    unconflicted: &PartialState,
    conflicted: &[Node],
    auth_difference: Vec<bool>,
) -> (PartialState, Vec<Node>) {
    let full_conflicted = full_conflicted_set(graph, algorithm, auth_difference, conflicted);

    // Step 1: the power events of the full conflicted set and the events of their auth chains
    // that are in it, in reverse topological power ordering. As Synapse and ruma read it, the
    // auth chain is followed through events of the full conflicted set only (see `ordering`).
    let power_events: Vec<Node> = (0..graph.len() as Node)
        .filter(|&node| full_conflicted[node as usize] && is_power_event(graph.event(node)))
        .collect();
    let power_selected = graph.ancestors_within(power_events, &full_conflicted);
    let power_order = reverse_topological_power_order(graph, &power_selected, |node| {
        sender_power_from_auth_events(version, graph, node)
    });

    // Step 2: iterative auth checks of those, from the unconflicted state map (v2) or from an
    // empty state map (v2.1).
    let mut state = match algorithm {
        StateResAlgorithm::V2_1 => PartialState::empty(graph),
        _ => unconflicted.clone(),
    };
    let mut rejected = Vec::new();
    iterative_auth_checks(version, graph, &power_order, &mut state, &mut rejected);

    // Step 3: every other event of the full conflicted set, in mainline ordering based on the
    // power levels of the partially resolved state.
    let others: Vec<Node> = (0..graph.len() as Node)
        .filter(|&node| full_conflicted[node as usize] && !power_selected[node as usize])
        .collect();
    let power_levels = graph
        .key_id("m.room.power_levels", "")
        .and_then(|key| state.get(key));
    let others_order = mainline_order(graph, power_levels, &others);
    assert_eq!(
        power_order.len() + others_order.len(),
        full_conflicted.iter().filter(|&&in_set| in_set).count(),
        "every event of the full conflicted set is checked exactly once"
    );

    // Step 4: iterative auth checks of those, on top of the partially resolved state.
    iterative_auth_checks(version, graph, &others_order, &mut state, &mut rejected);
    (state, rejected)
}

/// The unconflicted state map and the conflicted state set of some state sets.
pub(crate) struct Split {
    /// Keys present in every state set with the same event.
    pub(crate) unconflicted: PartialState,
    /// Every other event of the state sets, each once, in node order.
    pub(crate) conflicted: Vec<Node>,
}

/// Splits state sets into the unconflicted state map and the conflicted state set (v2: a key
/// missing from some state set is conflicted).
pub(crate) fn split_conflicted(graph: &AuthGraph<'_>, state_sets: &[Vec<Node>]) -> Split {
    let mut sets_holding_key = vec![0_usize; graph.key_count()];
    let mut first_holder: Vec<Option<Node>> = vec![None; graph.key_count()];
    let mut key_disagrees = vec![false; graph.key_count()];
    for set in state_sets {
        for &node in set {
            let key = graph.key_of(node).expect("state sets hold state events") as usize;
            sets_holding_key[key] += 1;
            match first_holder[key] {
                None => first_holder[key] = Some(node),
                Some(first) => key_disagrees[key] |= first != node,
            }
        }
    }
    let mut unconflicted = PartialState::empty(graph);
    let mut conflicted_keys = vec![false; graph.key_count()];
    for key in 0..graph.key_count() {
        let Some(holder) = first_holder[key] else {
            continue;
        };
        if sets_holding_key[key] == state_sets.len() && !key_disagrees[key] {
            unconflicted.set(key as u32, holder);
        } else {
            conflicted_keys[key] = true;
        }
    }
    let mut is_conflicted = vec![false; graph.len()];
    for set in state_sets {
        for &node in set {
            let key = graph.key_of(node).expect("state sets hold state events") as usize;
            is_conflicted[node as usize] |= conflicted_keys[key];
        }
    }
    let conflicted = (0..graph.len() as Node)
        .filter(|&node| is_conflicted[node as usize])
        .collect();
    Split {
        unconflicted,
        conflicted,
    }
}

/// The full conflicted set, as a flag per node: the conflicted state set and the auth
/// difference, and in v2.1 the conflicted state subgraph.
fn full_conflicted_set(
    graph: &AuthGraph<'_>,
    algorithm: StateResAlgorithm,
    auth_difference: Vec<bool>,
    conflicted: &[Node],
) -> Vec<bool> {
    let mut full = auth_difference;
    let mut is_conflicted = vec![false; graph.len()];
    for &node in conflicted {
        is_conflicted[node as usize] = true;
        full[node as usize] = true;
    }
    if algorithm == StateResAlgorithm::V2_1 {
        let subgraph = graph.conflicted_subgraph(&is_conflicted);
        for (in_full, in_subgraph) in full.iter_mut().zip(subgraph) {
            *in_full |= in_subgraph;
        }
    }
    full
}
