//! State resolution v1 (room version 1), as the spec's room version 1 page defines it.
//!
//! The resolved state R starts as the union of the state sets without the conflicting events
//! (a key held by one event in every set that has it is not a conflict). Then the conflicts are
//! resolved in passes that each read R as resolved so far: power levels, join rules, each
//! membership, then everything else.
//!
//! - Power levels, join rules and memberships: the candidates sorted by ascending depth, then
//!   descending SHA-1 of the event id; the first goes into R unchecked; each next one replaces
//!   it if the authorization rules allow it in R, and the pass stops at the first that fails.
//! - Other keys: the candidate with the highest depth, then the lowest SHA-1 of the event id,
//!   that the rules allow in R. The spec does not say what happens when none is allowed; like
//!   the reference server of that era, the last candidate in that order (the shallowest) is
//!   taken, so the key does not vanish.
//!
//! Invariant: R only ever changes to an event of a conflicted key; unconflicted keys are never
//! touched.

use super::auth_chain::{AuthGraph, KeyId, Node};
use super::iterative::PartialStateView;
use super::{PartialState, Resolved};
use crate::proto::auth::check_auth;
use crate::proto::room_version::RoomVersion;
use sha1::{Digest, Sha1};
use std::cmp::Reverse;

pub(crate) fn resolve(
    version: &RoomVersion,
    graph: &AuthGraph<'_>,
    state_sets: &[Vec<Node>],
) -> Resolved {
    let (mut resolved, candidates) = split(graph, state_sets);
    let mut rejected = Vec::new();
    let conflicted_keys = conflicted_keys_in_pass_order(graph, &candidates);
    let implied_create = state_sets
        .iter()
        .flatten()
        .find_map(|&node| graph.implied_create(node));
    for key in conflicted_keys {
        let mut events = candidates[key as usize].clone();
        let (event_type, _) = graph.key_strings(key);
        if matches!(
            event_type,
            "m.room.power_levels" | "m.room.join_rules" | "m.room.member"
        ) {
            events.sort_by_cached_key(|&node| {
                (graph.event(node).depth, Reverse(sha1_of_id(graph, node)))
            });
            resolve_auth_key(
                version,
                graph,
                &events,
                &mut resolved,
                implied_create,
                &mut rejected,
            );
        } else {
            events.sort_by_cached_key(|&node| {
                (Reverse(graph.event(node).depth), sha1_of_id(graph, node))
            });
            resolve_other_key(
                version,
                graph,
                &events,
                &mut resolved,
                implied_create,
                &mut rejected,
            );
        }
    }
    Resolved {
        state: resolved.to_state_map(graph),
        rejected: rejected
            .into_iter()
            .map(|node| graph.id(node).to_owned())
            .collect(),
    }
}

/// R without conflicts, and per key the distinct candidate events (two or more for a
/// conflicted key).
fn split(graph: &AuthGraph<'_>, state_sets: &[Vec<Node>]) -> (PartialState, Vec<Vec<Node>>) {
    let mut candidates: Vec<Vec<Node>> = vec![Vec::new(); graph.key_count()];
    for &node in state_sets.iter().flatten() {
        let key = graph.key_of(node).expect("state sets hold state events") as usize;
        if !candidates[key].contains(&node) {
            candidates[key].push(node);
        }
    }
    let mut resolved = PartialState::empty(graph);
    for (key, events) in candidates.iter().enumerate() {
        if let [only] = events.as_slice() {
            resolved.set(key as KeyId, *only);
        }
    }
    (resolved, candidates)
}

/// The conflicted keys: power levels, join rules, memberships (by user id), then the rest (by
/// type and state key).
fn conflicted_keys_in_pass_order(graph: &AuthGraph<'_>, candidates: &[Vec<Node>]) -> Vec<KeyId> {
    let pass = |event_type: &str| match event_type {
        "m.room.power_levels" => 0,
        "m.room.join_rules" => 1,
        "m.room.member" => 2,
        _ => 3,
    };
    let mut keys: Vec<KeyId> = (0..candidates.len())
        .filter(|&key| candidates[key].len() > 1)
        .map(|key| key as KeyId)
        .collect();
    keys.sort_by_key(|&key| {
        let (event_type, state_key) = graph.key_strings(key);
        (pass(event_type), event_type, state_key)
    });
    keys
}

/// Power levels, join rules and memberships: the first candidate unchecked, then each next one
/// while the rules allow it.
fn resolve_auth_key(
    version: &RoomVersion,
    graph: &AuthGraph<'_>,
    events: &[Node],
    resolved: &mut PartialState,
    implied_create: Option<Node>,
    rejected: &mut Vec<Node>,
) {
    let Some((&first, rest)) = events.split_first() else {
        return;
    };
    resolved.apply(graph, first);
    for &node in rest {
        if allowed(version, graph, node, resolved, implied_create) {
            resolved.apply(graph, node);
        } else {
            rejected.push(node);
            return;
        }
    }
}

/// Any other key: the first candidate the rules allow, else the last candidate.
fn resolve_other_key(
    version: &RoomVersion,
    graph: &AuthGraph<'_>,
    events: &[Node],
    resolved: &mut PartialState,
    implied_create: Option<Node>,
    rejected: &mut Vec<Node>,
) {
    let mut failed = Vec::new();
    let chosen = events
        .iter()
        .copied()
        .find(|&node| {
            let ok = allowed(version, graph, node, resolved, implied_create);
            if !ok {
                failed.push(node);
            }
            ok
        })
        .or_else(|| failed.pop());
    if let Some(node) = chosen {
        resolved.apply(graph, node);
    }
    rejected.extend(failed);
}

fn allowed(
    version: &RoomVersion,
    graph: &AuthGraph<'_>,
    node: Node,
    resolved: &PartialState,
    implied_create: Option<Node>,
) -> bool {
    let view = PartialStateView {
        graph,
        state: resolved,
        implied_create,
    };
    check_auth(version, graph.event(node), &view).is_ok()
}

fn sha1_of_id(graph: &AuthGraph<'_>, node: Node) -> [u8; 20] {
    Sha1::digest(graph.id(node).as_bytes()).into()
}
