//! The iterative auth checks of state resolution v2 and the state views the authorization rules
//! read during a resolution.
//!
//! Each event is checked against its own auth events, overlaid, for every state key the auth
//! events selection names for it, by the event holding that key in the partially resolved
//! state. Auth events rejected on receipt are left out, as the spec says. In room version 12 the
//! create event, which no event cites, is added from the room id.
//!
//! Invariant: an event enters the partial state only if `check_auth` allowed it against that
//! view; every other event of the list is reported as rejected.

use super::PartialState;
use super::auth_chain::{AuthGraph, Node};
use crate::proto::auth::{AuthState, auth_keys_of, check_auth, user_power_level};
use crate::proto::event::Event;
use crate::proto::room_version::RoomVersion;

/// Applies `events`, in order, to `state`: each one that the authorization rules allow replaces
/// its key; the others are pushed to `rejected`. Non-state events cannot enter a state and are
/// passed over.
pub(crate) fn iterative_auth_checks(
    version: &RoomVersion,
    graph: &AuthGraph<'_>,
    events: &[Node],
    state: &mut PartialState,
    rejected: &mut Vec<Node>,
) {
    let mut entries = Vec::with_capacity(8);
    for &node in events {
        let event = graph.event(node);
        if !event.is_state() {
            continue;
        }
        let view = AuthEventsView::for_iterative_check(version, graph, node, state, entries);
        let allowed = check_auth(version, event, &view).is_ok();
        entries = view.into_entries();
        if allowed {
            state.apply(graph, node);
        } else {
            rejected.push(node);
        }
    }
}

/// The power level of an event's sender as its own auth events say (plus, in room version 12,
/// the create event its room id names, for the creators' infinite power).
pub(crate) fn sender_power_from_auth_events(
    version: &RoomVersion,
    graph: &AuthGraph<'_>,
    node: Node,
) -> i128 {
    let view = AuthEventsView::auth_events_only(graph, node);
    user_power_level(version, &graph.event(node).sender, &view)
}

/// A small state: a few state events, at most one per key, looked up by key id.
pub(crate) struct AuthEventsView<'g, 'a> {
    graph: &'g AuthGraph<'a>,
    entries: Vec<Node>,
}

impl<'g, 'a> AuthEventsView<'g, 'a> {
    /// All of the event's auth events, and the implied create event.
    fn auth_events_only(graph: &'g AuthGraph<'a>, node: Node) -> Self {
        let mut view = Self {
            graph,
            entries: Vec::with_capacity(8),
        };
        for &auth in graph.auth_events(node) {
            view.insert(auth);
        }
        view.add_implied_create(node);
        view
    }

    /// The view of the iterative auth checks: the event's auth events that were not rejected,
    /// and for each key of its auth events selection the event of the partial state, if any
    /// and not rejected. `entries` is a buffer to reuse.
    fn for_iterative_check(
        version: &RoomVersion,
        graph: &'g AuthGraph<'a>,
        node: Node,
        state: &PartialState,
        mut entries: Vec<Node>,
    ) -> Self {
        entries.clear();
        let mut view = Self { graph, entries };
        for &auth in graph.auth_events(node) {
            if !graph.is_known_rejected(auth) {
                view.insert(auth);
            }
        }
        let event = graph.event(node);
        let auth_keys = auth_keys_of(version, event);
        for (event_type, state_key) in auth_keys.iter() {
            let holder = graph
                .key_id(event_type, state_key)
                .and_then(|key| state.get(key));
            if let Some(holder) = holder.filter(|&holder| !graph.is_known_rejected(holder)) {
                view.insert(holder);
            }
        }
        view.add_implied_create(node);
        view
    }

    fn into_entries(self) -> Vec<Node> {
        self.entries
    }

    /// Adds a state event, replacing the entry with the same key.
    fn insert(&mut self, node: Node) {
        let Some(key) = self.graph.key_of(node) else {
            return;
        };
        let graph = self.graph;
        match self
            .entries
            .iter_mut()
            .find(|entry| graph.key_of(**entry) == Some(key))
        {
            Some(entry) => *entry = node,
            None => self.entries.push(node),
        }
    }

    /// Room version 12: the create event is in every state, yet cited by no event.
    fn add_implied_create(&mut self, node: Node) {
        let Some(create) = self.graph.implied_create(node) else {
            return;
        };
        let key = self.graph.key_of(create);
        let graph = self.graph;
        if !self.entries.iter().any(|entry| graph.key_of(*entry) == key) {
            self.entries.push(create);
        }
    }
}

impl AuthState for AuthEventsView<'_, '_> {
    /// Compares the query with the entries' keys as the graph keeps them, contiguous and with
    /// their lengths, rather than with the entries' own strings, each in another event
    /// scattered in memory.
    fn get(&self, event_type: &str, state_key: &str) -> Option<&Event> {
        let graph = self.graph;
        self.entries
            .iter()
            .find(|&&node| {
                graph
                    .key_of(node)
                    .is_some_and(|key| graph.key_is(key, event_type, state_key))
            })
            .map(|&node| graph.event(node))
    }
}

/// A whole partial state as the authorization rules see it (state resolution v1 checks events
/// against the state resolved so far), with the implied create event of room version 12.
pub(crate) struct PartialStateView<'g, 'a> {
    pub(crate) graph: &'g AuthGraph<'a>,
    pub(crate) state: &'g PartialState,
    pub(crate) implied_create: Option<Node>,
}

impl AuthState for PartialStateView<'_, '_> {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&Event> {
        let key = self.graph.key_id(event_type, state_key)?;
        let node = self.state.get(key).or_else(|| {
            self.implied_create
                .filter(|&create| self.graph.key_of(create) == Some(key))
        })?;
        Some(self.graph.event(node))
    }
}
