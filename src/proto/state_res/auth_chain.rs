//! The auth DAG that one resolution works on, interned, and the sets the spec defines on it:
//! auth chains, the auth difference and the conflicted state subgraph.
//!
//! [`AuthGraph::build`] walks `auth_events` from the events of the state sets and gives every
//! event it meets a dense index ([`Node`]), so the rest of the algorithm compares integers and
//! borrows the events instead of cloning them. Each event's auth chain is never materialised:
//! the sets the algorithm needs (the full auth chain of a state set, ancestors, descendants) are
//! one linear walk each over the interned graph. Event ids and state keys are interned in
//! tables that keep their own contiguous copy of the strings (`intern_table`): looking an id or
//! a key up, or matching a key, then reads the graph's memory only, never the strings of other
//! events scattered in memory, which were most of a resolution's time.
//!
//! Invariants: every event reachable through `auth_events` from a root is in the graph (else
//! `build` fails with `MissingEvent`); the graph has no cycle (else `build` fails with `Cycle`);
//! `topological` lists every node after all of its auth events.

use super::intern_table::InternTable;
use super::{EventSource, ResolveError};
use crate::proto::event::Event;
use crate::proto::room_version::RoomVersion;
use std::collections::BTreeMap;

/// The index of an event in an [`AuthGraph`].
pub(crate) type Node = u32;

/// The index of a state key (event type, state key) in an [`AuthGraph`].
pub(crate) type KeyId = u32;

/// Who asked for an event, to name it when the event is missing.
#[derive(Clone, Copy, Debug)]
pub(crate) enum NeededBy {
    /// The resolution's input: state set number `index` (from 0).
    StateSet(usize),
    /// Another event in the graph, through its `auth_events`.
    AuthEventOf(Node),
    /// Room version 12: an event whose room id names the create event.
    RoomIdOf(Node),
    /// The unconflicted state map, for a key the authorization rules read.
    UnconflictedState,
}

/// The interned auth DAG of a resolution.
pub(crate) struct AuthGraph<'a> {
    events: Vec<&'a Event>,
    /// Event ids to nodes (the id is the pair's first string, the second is empty).
    index: InternTable,
    /// The distinct auth events of each node, as nodes: `auth_targets[auth_ranges[node]]`.
    /// One flat array rather than a vector per node: a resolution interns the whole auth DAG
    /// of the room, and one allocation per event showed up in profiles.
    auth_ranges: Vec<(u32, u32)>,
    auth_targets: Vec<Node>,
    /// The events that cite each node in their auth events, in the same flat layout.
    citer_ranges: Vec<(u32, u32)>,
    citer_targets: Vec<Node>,
    /// The `m.room.power_levels` event among each node's auth events (the first, in the order
    /// the event lists them, should a malformed event cite several).
    power_levels_auth: Vec<Option<Node>>,
    /// The state key each state event sets.
    key_of: Vec<Option<KeyId>>,
    keys: InternTable,
    /// The key ("m.room.power_levels", ""), once an event that sets it is interned.
    power_levels_key: Option<KeyId>,
    /// Per key, one event that sets it (to read the key's strings back).
    key_holder: Vec<Node>,
    /// Room version 12: the create event implied by each node's room id (`None` for the create
    /// event itself and in earlier versions, where it is one of the auth events).
    implied_create: Vec<Option<Node>>,
    /// Events the caller already knows to be rejected (on receipt).
    known_rejected: Vec<bool>,
    /// Every node after its auth events.
    topological: Vec<Node>,
}

impl<'a> AuthGraph<'a> {
    /// Interns `roots` and everything reachable from them through `auth_events` (and, in room
    /// version 12, the create event each one's room id names).
    pub(crate) fn build(
        version: &RoomVersion,
        roots: impl IntoIterator<Item = (&'a str, NeededBy)>,
        source: &'a dyn EventSource,
    ) -> Result<Self, ResolveError> {
        Self::build_with_extra_roots(version, roots, source, |_| Vec::new())
    }

    /// Like [`AuthGraph::build`], then also interns the events that `extra_roots` names, given
    /// every event interned from `roots` (with their auth chains), and their auth chains.
    pub(crate) fn build_with_extra_roots(
        version: &RoomVersion,
        roots: impl IntoIterator<Item = (&'a str, NeededBy)>,
        source: &'a dyn EventSource,
        extra_roots: impl FnOnce(&[&'a Event]) -> Vec<&'a str>,
    ) -> Result<Self, ResolveError> {
        let roots: Vec<(&'a str, NeededBy)> = roots.into_iter().collect();
        // The auth DAG behind a state is usually a small multiple of the state's size; sizing
        // the maps for it up front saves rehashing them as they grow.
        let expected_events = roots.len() * 2;
        let mut builder = Builder {
            graph: AuthGraph {
                events: Vec::with_capacity(expected_events),
                index: InternTable::with_capacity(expected_events),
                auth_ranges: Vec::new(),
                auth_targets: Vec::new(),
                citer_ranges: Vec::new(),
                citer_targets: Vec::new(),
                power_levels_auth: Vec::new(),
                key_of: Vec::new(),
                keys: InternTable::with_capacity(roots.len()),
                power_levels_key: None,
                key_holder: Vec::new(),
                implied_create: Vec::new(),
                known_rejected: Vec::new(),
                topological: Vec::new(),
            },
            source,
            create_by_room: BTreeMap::new(),
            pending: Vec::new(),
        };
        for (event_id, needed_by) in roots {
            builder.intern(event_id, needed_by)?;
        }
        while let Some(node) = builder.pending.pop() {
            builder.expand(version, node)?;
        }
        for event_id in extra_roots(&builder.graph.events) {
            builder.intern(event_id, NeededBy::UnconflictedState)?;
        }
        while let Some(node) = builder.pending.pop() {
            builder.expand(version, node)?;
        }
        let mut graph = builder.graph;
        graph.index_citers();
        graph.topological = graph.topological_order()?;
        Ok(graph)
    }

    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    pub(crate) fn event(&self, node: Node) -> &'a Event {
        self.events[node as usize]
    }

    pub(crate) fn id(&self, node: Node) -> &'a str {
        &self.events[node as usize].event_id
    }

    pub(crate) fn node(&self, event_id: &str) -> Option<Node> {
        self.index.get(event_id, "")
    }

    pub(crate) fn auth_events(&self, node: Node) -> &[Node] {
        let (start, end) = self.auth_ranges[node as usize];
        &self.auth_targets[start as usize..end as usize]
    }

    /// The events that cite `node` in their auth events.
    pub(crate) fn citers(&self, node: Node) -> &[Node] {
        let (start, end) = self.citer_ranges[node as usize];
        &self.citer_targets[start as usize..end as usize]
    }

    /// The `m.room.power_levels` event among the node's auth events.
    pub(crate) fn power_levels_auth_event(&self, node: Node) -> Option<Node> {
        self.power_levels_auth[node as usize]
    }

    pub(crate) fn key_of(&self, node: Node) -> Option<KeyId> {
        self.key_of[node as usize]
    }

    pub(crate) fn key_count(&self) -> usize {
        self.key_holder.len()
    }

    /// The id of a state key, if some event in the graph sets it.
    pub(crate) fn key_id(&self, event_type: &str, state_key: &str) -> Option<KeyId> {
        self.keys.get(event_type, state_key)
    }

    /// Whether `key` is (`event_type`, `state_key`), read from the graph's own copy of the key
    /// strings (contiguous), not from the events.
    pub(crate) fn key_is(&self, key: KeyId, event_type: &str, state_key: &str) -> bool {
        self.keys.is(key, event_type, state_key)
    }

    /// The (event type, state key) strings of a key id.
    pub(crate) fn key_strings(&self, key: KeyId) -> (&'a str, &'a str) {
        let event = self.event(self.key_holder[key as usize]);
        let state_key = event
            .state_key
            .as_deref()
            .expect("key holders are state events");
        (&event.event_type, state_key)
    }

    pub(crate) fn implied_create(&self, node: Node) -> Option<Node> {
        self.implied_create[node as usize]
    }

    pub(crate) fn is_known_rejected(&self, node: Node) -> bool {
        self.known_rejected[node as usize]
    }

    /// Every node, each after its auth events.
    #[cfg(test)]
    pub(crate) fn topological(&self) -> &[Node] {
        &self.topological
    }

    /// The full auth chain of a set of events: everything reachable from them through one or
    /// more `auth_events` links (an event is in it only if another one leads to it). Marks the
    /// chain in `marks` with `stamp` and calls `visit` once per node of the chain.
    pub(crate) fn walk_auth_chain(
        &self,
        events: impl IntoIterator<Item = Node>,
        marks: &mut [u32],
        stamp: u32,
        mut visit: impl FnMut(Node),
    ) {
        let mut stack: Vec<Node> = Vec::new();
        for event in events {
            stack.extend_from_slice(self.auth_events(event));
        }
        while let Some(node) = stack.pop() {
            if marks[node as usize] == stamp {
                continue;
            }
            marks[node as usize] = stamp;
            visit(node);
            stack.extend_from_slice(self.auth_events(node));
        }
    }

    /// The auth difference of state sets given as node lists: every event in the full auth
    /// chain of at least one set but not of all of them.
    pub(crate) fn auth_difference(&self, state_sets: &[Vec<Node>]) -> Vec<bool> {
        let mut counts = vec![0_u32; self.len()];
        let mut marks = vec![0_u32; self.len()];
        for (index, set) in state_sets.iter().enumerate() {
            let stamp = u32::try_from(index + 1).expect("fewer than 2^32 state sets");
            self.walk_auth_chain(set.iter().copied(), &mut marks, stamp, |node| {
                counts[node as usize] += 1;
            });
        }
        let all = u32::try_from(state_sets.len()).expect("fewer than 2^32 state sets");
        counts
            .iter()
            .map(|&count| count > 0 && count < all)
            .collect()
    }

    /// The conflicted state subgraph: every event on an `auth_events` path from one conflicted
    /// event to another, endpoints included. An event is on such a path exactly when it is
    /// reachable from a conflicted event (or is one) and a conflicted event is reachable from it
    /// (or it is one); since the graph has no cycle, the two ends then differ unless the event
    /// is itself conflicted, and conflicted events are in the full conflicted set anyway.
    pub(crate) fn conflicted_subgraph(&self, conflicted: &[bool]) -> Vec<bool> {
        let mut below_conflicted = conflicted.to_vec();
        let mut stack: Vec<Node> = (0..self.len() as Node)
            .filter(|&node| conflicted[node as usize])
            .collect();
        while let Some(node) = stack.pop() {
            for &auth in self.auth_events(node) {
                if !below_conflicted[auth as usize] {
                    below_conflicted[auth as usize] = true;
                    stack.push(auth);
                }
            }
        }
        let mut above_conflicted = conflicted.to_vec();
        for &node in &self.topological {
            let reaches = self
                .auth_events(node)
                .iter()
                .any(|&auth| above_conflicted[auth as usize]);
            above_conflicted[node as usize] |= reaches;
        }
        below_conflicted
            .iter()
            .zip(&above_conflicted)
            .map(|(&below, &above)| below && above)
            .collect()
    }

    /// Nodes reachable from `seeds` through `auth_events` links that stay inside `within` (a
    /// flag per node), the seeds included. A path that leaves `within` is not followed, even
    /// where it comes back into it further down.
    pub(crate) fn ancestors_within(
        &self,
        seeds: impl IntoIterator<Item = Node>,
        within: &[bool],
    ) -> Vec<bool> {
        let mut reached = vec![false; self.len()];
        let mut stack: Vec<Node> = seeds.into_iter().collect();
        while let Some(node) = stack.pop() {
            if reached[node as usize] {
                continue;
            }
            reached[node as usize] = true;
            let auth_inside = self
                .auth_events(node)
                .iter()
                .filter(|&&auth| within[auth as usize] && !reached[auth as usize]);
            stack.extend(auth_inside);
        }
        reached
    }

    /// Kahn's algorithm over all nodes; fails with the nodes left over if there is a cycle.
    fn topological_order(&self) -> Result<Vec<Node>, ResolveError> {
        let mut waiting_on: Vec<u32> = self
            .auth_ranges
            .iter()
            .map(|&(start, end)| end - start)
            .collect();
        let mut ready: Vec<Node> = (0..self.len() as Node)
            .filter(|&node| waiting_on[node as usize] == 0)
            .collect();
        let mut order = Vec::with_capacity(self.len());
        while let Some(node) = ready.pop() {
            order.push(node);
            for &citer in self.citers(node) {
                waiting_on[citer as usize] -= 1;
                if waiting_on[citer as usize] == 0 {
                    ready.push(citer);
                }
            }
        }
        if order.len() == self.len() {
            return Ok(order);
        }
        let mut event_ids: Vec<String> = (0..self.len())
            .filter(|&node| waiting_on[node] > 0)
            .map(|node| self.events[node].event_id.clone())
            .collect();
        event_ids.sort();
        Err(ResolveError::Cycle { event_ids })
    }

    /// Fills the citer lists from the auth lists (a counting sort into one flat array).
    fn index_citers(&mut self) {
        let mut counts = vec![0_u32; self.len() + 1];
        for &auth in &self.auth_targets {
            counts[auth as usize + 1] += 1;
        }
        for index in 1..counts.len() {
            counts[index] += counts[index - 1];
        }
        self.citer_ranges = (0..self.len())
            .map(|node| (counts[node], counts[node + 1]))
            .collect();
        let mut next = counts;
        self.citer_targets = vec![0; self.auth_targets.len()];
        for node in 0..self.len() as Node {
            let (start, end) = self.auth_ranges[node as usize];
            for index in start..end {
                let auth = self.auth_targets[index as usize] as usize;
                self.citer_targets[next[auth] as usize] = node;
                next[auth] += 1;
            }
        }
    }
}

/// Moves the distinct values of a sorted slice to its front; returns how many there are.
fn dedup_sorted(values: &mut [Node]) -> usize {
    let mut distinct = 0;
    for index in 0..values.len() {
        if index == 0 || values[index] != values[distinct - 1] {
            values[distinct] = values[index];
            distinct += 1;
        }
    }
    distinct
}

fn to_u32(index: usize) -> u32 {
    u32::try_from(index).expect("fewer than 2^32 auth links")
}

struct Builder<'a> {
    graph: AuthGraph<'a>,
    source: &'a dyn EventSource,
    create_by_room: BTreeMap<&'a str, Node>,
    pending: Vec<Node>,
}

impl<'a> Builder<'a> {
    fn intern(&mut self, event_id: &'a str, needed_by: NeededBy) -> Result<Node, ResolveError> {
        if let Some(node) = self.graph.index.get(event_id, "") {
            return Ok(node);
        }
        let event = self
            .source
            .event(event_id)
            .ok_or_else(|| ResolveError::MissingEvent {
                event_id: event_id.to_owned(),
                needed_by: self.describe(needed_by),
            })?;
        let graph = &mut self.graph;
        let node = Node::try_from(graph.events.len()).expect("fewer than 2^32 events");
        graph.events.push(event);
        let (interned, _) = graph.index.insert(event_id, "");
        debug_assert_eq!(interned, node, "event ids are interned in node order");
        graph.auth_ranges.push((0, 0));
        graph.power_levels_auth.push(None);
        graph.implied_create.push(None);
        graph.known_rejected.push(self.source.is_rejected(event_id));
        let key = event.state_key.as_deref().map(|state_key| {
            let (key, new) = graph.keys.insert(&event.event_type, state_key);
            if new {
                graph.key_holder.push(node);
                if event.is("m.room.power_levels", "") {
                    graph.power_levels_key = Some(key);
                }
            }
            key
        });
        graph.key_of.push(key);
        self.pending.push(node);
        Ok(node)
    }

    fn expand(&mut self, version: &RoomVersion, node: Node) -> Result<(), ResolveError> {
        let event = self.graph.events[node as usize];
        let start = self.graph.auth_targets.len();
        for auth_id in &event.auth_events {
            let auth = self.intern(auth_id, NeededBy::AuthEventOf(node))?;
            // Interning set the key of the auth event: comparing key ids spares reading the
            // auth event's strings, scattered in memory, once per auth link.
            let auth_key = self.graph.key_of[auth as usize];
            let is_power_levels = auth_key.is_some() && auth_key == self.graph.power_levels_key;
            let power_levels_auth = &mut self.graph.power_levels_auth[node as usize];
            if is_power_levels && power_levels_auth.is_none() {
                *power_levels_auth = Some(auth);
            }
            self.graph.auth_targets.push(auth);
        }
        // Interning only queues new nodes, so this node's auth events are the array's tail.
        let auth = &mut self.graph.auth_targets[start..];
        auth.sort_unstable();
        let distinct = dedup_sorted(auth);
        self.graph.auth_targets.truncate(start + distinct);
        let range = (to_u32(start), to_u32(start + distinct));
        self.graph.auth_ranges[node as usize] = range;
        if version.create_event_implied && event.event_type != "m.room.create" {
            let create = self.implied_create(node)?;
            self.graph.implied_create[node as usize] = Some(create);
        }
        Ok(())
    }

    /// Room version 12: the room id is `!` followed by the create event's id without its `$`.
    fn implied_create(&mut self, node: Node) -> Result<Node, ResolveError> {
        let event = self.graph.events[node as usize];
        let room_id = event.room_id.as_str();
        if let Some(&node) = self.create_by_room.get(room_id) {
            return Ok(node);
        }
        let missing = || ResolveError::MissingCreateEvent {
            room_id: room_id.to_owned(),
        };
        let create_id = format!("${}", room_id.strip_prefix('!').ok_or_else(missing)?);
        let create = self.source.event(&create_id).ok_or_else(missing)?;
        if !create.is("m.room.create", "") {
            return Err(missing());
        }
        // Interned under the id the event carries, a borrow that lives as long as the source.
        let create = self.intern(&create.event_id, NeededBy::RoomIdOf(node))?;
        self.create_by_room.insert(room_id, create);
        Ok(create)
    }

    fn describe(&self, needed_by: NeededBy) -> String {
        match needed_by {
            NeededBy::StateSet(index) => format!("state set #{index}"),
            NeededBy::AuthEventOf(node) => {
                format!(
                    "the auth_events of {}",
                    self.graph.events[node as usize].event_id
                )
            }
            NeededBy::RoomIdOf(node) => {
                format!(
                    "the room id of {}",
                    self.graph.events[node as usize].event_id
                )
            }
            NeededBy::UnconflictedState => "the unconflicted state map".to_owned(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::proto::room_version::room_version;
    use serde_json::{Map, Value};

    /// A state event with the given auth events, for graph tests.
    pub(crate) fn state_event(id: &str, event_type: &str, auth: &[&str]) -> Event {
        Event {
            event_id: id.to_owned(),
            room_id: "!room:example.org".to_owned(),
            sender: "@alice:example.org".to_owned(),
            event_type: event_type.to_owned(),
            state_key: Some(String::new()),
            content: Map::<String, Value>::new(),
            prev_events: Vec::new(),
            auth_events: auth.iter().map(|id| (*id).to_owned()).collect(),
            depth: 1,
            origin_server_ts: 0,
            redacts: None,
        }
    }

    fn source(events: Vec<Event>) -> BTreeMap<String, Event> {
        events
            .into_iter()
            .map(|event| (event.event_id.clone(), event))
            .collect()
    }

    fn ids(graph: &AuthGraph<'_>, marks: &[bool]) -> Vec<String> {
        let mut ids: Vec<String> = (0..graph.len() as Node)
            .filter(|&node| marks[node as usize])
            .map(|node| graph.id(node).to_owned())
            .collect();
        ids.sort();
        ids
    }

    /// create <- a <- b <- c, and create <- d.
    fn chain() -> BTreeMap<String, Event> {
        source(vec![
            state_event("$create", "m.room.create", &[]),
            state_event("$a", "a", &["$create"]),
            state_event("$b", "b", &["$create", "$a"]),
            state_event("$c", "c", &["$b", "$create"]),
            state_event("$d", "d", &["$create"]),
        ])
    }

    fn build<'a>(events: &'a BTreeMap<String, Event>, roots: &[&'a str]) -> AuthGraph<'a> {
        let version = room_version("11").unwrap();
        AuthGraph::build(
            version,
            roots.iter().map(|id| (*id, NeededBy::StateSet(0))),
            events,
        )
        .unwrap()
    }

    #[test]
    fn interns_everything_reachable_in_topological_order() {
        let events = chain();
        let graph = build(&events, &["$c", "$d"]);
        assert_eq!(graph.len(), 5);
        let position = |id: &str| {
            let node = graph.node(id).unwrap();
            graph.topological().iter().position(|&n| n == node).unwrap()
        };
        assert!(position("$create") < position("$a"));
        assert!(position("$a") < position("$b"));
        assert!(position("$b") < position("$c"));
        assert!(position("$create") < position("$d"));
        assert_eq!(
            graph.key_strings(graph.key_of(graph.node("$c").unwrap()).unwrap()),
            ("c", "")
        );
    }

    #[test]
    fn auth_difference_excludes_the_state_events_themselves() {
        let events = chain();
        let graph = build(&events, &["$c", "$b", "$d"]);
        let node = |id| graph.node(id).unwrap();
        // Chain of {c}: b, a, create. Chain of {b, d}: a, create.
        let difference = graph.auth_difference(&[vec![node("$c")], vec![node("$b"), node("$d")]]);
        assert_eq!(ids(&graph, &difference), ["$b"]);
        // Identical sets have no difference.
        let difference = graph.auth_difference(&[vec![node("$c")], vec![node("$c")]]);
        assert!(ids(&graph, &difference).is_empty());
    }

    #[test]
    fn conflicted_subgraph_holds_the_paths_between_conflicted_events() {
        let events = chain();
        let graph = build(&events, &["$c", "$d"]);
        let mut conflicted = vec![false; graph.len()];
        for id in ["$c", "$a", "$d"] {
            conflicted[graph.node(id).unwrap() as usize] = true;
        }
        // c -> b -> a is a path between conflicted events; create lies below a and d only.
        assert_eq!(
            ids(&graph, &graph.conflicted_subgraph(&conflicted)),
            ["$a", "$b", "$c", "$d"]
        );
    }

    #[test]
    fn ancestors_within_do_not_pass_through_outside_events() {
        let events = chain();
        let graph = build(&events, &["$c", "$d"]);
        let mut within = vec![false; graph.len()];
        for id in ["$c", "$a", "$create"] {
            within[graph.node(id).unwrap() as usize] = true;
        }
        let seeds = [graph.node("$c").unwrap()];
        // $c reaches $create directly, but $a only through $b, which is outside.
        assert_eq!(
            ids(&graph, &graph.ancestors_within(seeds, &within)),
            ["$c", "$create"]
        );
        within[graph.node("$b").unwrap() as usize] = true;
        assert_eq!(
            ids(&graph, &graph.ancestors_within(seeds, &within)),
            ["$a", "$b", "$c", "$create"]
        );
    }

    #[test]
    fn missing_auth_event_names_who_needs_it() {
        let events = source(vec![state_event("$a", "a", &["$nowhere"])]);
        let version = room_version("11").unwrap();
        let error = AuthGraph::build(version, [("$a", NeededBy::StateSet(1))], &events)
            .err()
            .unwrap();
        assert_eq!(
            error.to_string(),
            "event $nowhere is missing (needed by the auth_events of $a)"
        );
        let error = AuthGraph::build(version, [("$b", NeededBy::StateSet(1))], &events)
            .err()
            .unwrap();
        assert_eq!(
            error.to_string(),
            "event $b is missing (needed by state set #1)"
        );
    }

    #[test]
    fn cycle_is_reported_with_its_events() {
        let events = source(vec![
            state_event("$create", "m.room.create", &[]),
            state_event("$x", "x", &["$create", "$y"]),
            state_event("$y", "y", &["$x"]),
        ]);
        let version = room_version("11").unwrap();
        let error = AuthGraph::build(version, [("$x", NeededBy::StateSet(0))], &events)
            .err()
            .unwrap();
        assert!(
            matches!(error, ResolveError::Cycle { ref event_ids } if event_ids == &["$x", "$y"])
        );
    }

    #[test]
    fn room_version_12_links_the_create_event_through_the_room_id() {
        let mut create = state_event("$abc", "m.room.create", &[]);
        create.room_id = String::new();
        let mut member = state_event("$m", "m.room.member", &[]);
        member.room_id = "!abc".to_owned();
        let events = source(vec![create, member]);
        let version = room_version("12").unwrap();
        let graph = AuthGraph::build(version, [("$m", NeededBy::StateSet(0))], &events).unwrap();
        let create = graph.node("$abc").unwrap();
        assert_eq!(
            graph.implied_create(graph.node("$m").unwrap()),
            Some(create)
        );
        assert_eq!(graph.implied_create(create), None);
        // The implied link is not an auth_events link: no auth chain contains it.
        assert!(graph.auth_events(graph.node("$m").unwrap()).is_empty());
    }
}
