//! The two orderings of state resolution v2: the reverse topological power ordering of the power
//! events and the mainline ordering of the other events.
//!
//! Both are total orders with the event id as the last tie-break, so the result never depends on
//! the order in which events were given. The topological sort is Kahn's algorithm picking the
//! smallest ready event from a binary heap, as the spec describes.
//!
//! Which DAG the power ordering sorts: the spec orders the power events "based on the DAG formed
//! by auth events", without saying whether two events of the set are ordered by an auth path
//! that leaves the set. fedlab reads it as Synapse and ruma do, for interoperability: the DAG
//! holds the events being sorted and only the `auth_events` links between two of them. An auth
//! path that runs through an event outside the set orders nothing, so two events joined only by
//! such a path are sorted by power, timestamp and id alone (and in state resolution v2 the event
//! selected for sorting likewise comes only through links inside the full conflicted set: see
//! `v2`). Reading it the other way would make fedlab resolve some forks differently from the
//! servers it federates with, which is the one thing a resolution must not do; the case is
//! `tests/data/resolve/v2-ordering-inside-the-set.json`. In v2.1 the full conflicted set holds
//! every auth path between two of its events, so both readings agree there.
//!
//! Invariant: the reverse topological power ordering lists every selected event exactly once and
//! after every selected event among its own auth events.

use super::auth_chain::{AuthGraph, Node};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Sorts the selected events (`selected[node]`) by the reverse topological power ordering over
/// the `auth_events` links between selected events: auth events first and, among the events that
/// are ready, the greatest sender power level (`sender_power(node)`), then the smallest
/// `origin_server_ts`, then the smallest event id.
pub(crate) fn reverse_topological_power_order(
    graph: &AuthGraph<'_>,
    selected: &[bool],
    sender_power: impl Fn(Node) -> i128,
) -> Vec<Node> {
    let mut waiting_on: Vec<usize> = vec![0; graph.len()];
    // Min-heap on (power descending, ts ascending, id ascending).
    let mut ready = BinaryHeap::new();
    for node in nodes_where(selected) {
        let selected_auth_events = graph
            .auth_events(node)
            .iter()
            .filter(|&&auth| selected[auth as usize])
            .count();
        waiting_on[node as usize] = selected_auth_events;
        if selected_auth_events == 0 {
            ready.push(Reverse(power_order_key(graph, node, &sender_power)));
        }
    }
    let mut order = Vec::new();
    while let Some(Reverse((_, _, _, node))) = ready.pop() {
        order.push(node);
        for &citer in graph.citers(node) {
            if selected[citer as usize] {
                waiting_on[citer as usize] -= 1;
                if waiting_on[citer as usize] == 0 {
                    ready.push(Reverse(power_order_key(graph, citer, &sender_power)));
                }
            }
        }
    }
    assert_eq!(
        order.len(),
        selected.iter().filter(|&&s| s).count(),
        "the auth graph has no cycle, so every selected event is sorted"
    );
    order
}

/// The key of the power ordering, smallest first: the greatest power, then the smallest
/// timestamp, then the smallest event id (the node last, to carry it along).
fn power_order_key<'a>(
    graph: &AuthGraph<'a>,
    node: Node,
    sender_power: impl Fn(Node) -> i128,
) -> (Reverse<i128>, u64, &'a str, Node) {
    (
        Reverse(sender_power(node)),
        graph.event(node).origin_server_ts,
        graph.id(node),
        node,
    )
}

/// Sorts `events` by the mainline ordering based on the power levels event `power_levels`:
/// the greatest mainline position first (an event whose power levels are unrelated to the
/// mainline, position infinity, comes before all), then the smallest `origin_server_ts`, then
/// the smallest event id. Without a power levels event every position is infinity.
pub(crate) fn mainline_order(
    graph: &AuthGraph<'_>,
    power_levels: Option<Node>,
    events: &[Node],
) -> Vec<Node> {
    let mut positions = MainlinePositions::new(graph, power_levels);
    let mut keyed: Vec<(Reverse<u64>, u64, &str, Node)> = events
        .iter()
        .map(|&node| {
            let position = positions.of(node);
            (
                Reverse(position),
                graph.event(node).origin_server_ts,
                graph.id(node),
                node,
            )
        })
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, _, _, node)| node).collect()
}

/// The mainline position that stands for "no event of the mainline": greater than any index.
pub(crate) const POSITION_INFINITY: u64 = u64::MAX;

/// Mainline positions, memoised along the power levels chains they walk.
pub(crate) struct MainlinePositions<'g, 'a> {
    graph: &'g AuthGraph<'a>,
    /// Per node: its index in the mainline, or the position found for it as a power levels
    /// event met on some event's chain; `None` until known.
    known: Vec<Option<u64>>,
}

impl<'g, 'a> MainlinePositions<'g, 'a> {
    pub(crate) fn new(graph: &'g AuthGraph<'a>, power_levels: Option<Node>) -> Self {
        let mut known = vec![None; graph.len()];
        let mut next = power_levels;
        let mut index = 0_u64;
        while let Some(node) = next {
            known[node as usize] = Some(index);
            index += 1;
            next = graph.power_levels_auth_event(node);
        }
        Self { graph, known }
    }

    /// The mainline position of `event`: the mainline index of the first power levels event on
    /// its chain (its own power levels auth event, that one's, and so on), not counting itself.
    pub(crate) fn of(&mut self, event: Node) -> u64 {
        let mut chain = Vec::new();
        let mut next = self.graph.power_levels_auth_event(event);
        let position = loop {
            let Some(node) = next else {
                break POSITION_INFINITY;
            };
            if let Some(position) = self.known[node as usize] {
                break position;
            }
            chain.push(node);
            next = self.graph.power_levels_auth_event(node);
        };
        for node in chain {
            self.known[node as usize] = Some(position);
        }
        position
    }
}

fn nodes_where(flags: &[bool]) -> impl Iterator<Item = Node> + '_ {
    flags
        .iter()
        .enumerate()
        .filter(|(_, flag)| **flag)
        .map(|(node, _)| node as Node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::event::Event;
    use crate::proto::room_version::room_version;
    use crate::proto::state_res::auth_chain::NeededBy;
    use crate::proto::state_res::auth_chain::tests::state_event;
    use std::collections::BTreeMap;

    fn graph_of(events: &BTreeMap<String, Event>) -> AuthGraph<'_> {
        let version = room_version("11").unwrap();
        let roots = events.keys().map(|id| (id.as_str(), NeededBy::StateSet(0)));
        AuthGraph::build(version, roots, events).unwrap()
    }

    fn map(events: Vec<Event>) -> BTreeMap<String, Event> {
        events
            .into_iter()
            .map(|e| (e.event_id.clone(), e))
            .collect()
    }

    fn with_ts(mut event: Event, ts: u64) -> Event {
        event.origin_server_ts = ts;
        event
    }

    fn ids(graph: &AuthGraph<'_>, nodes: &[Node]) -> Vec<String> {
        nodes.iter().map(|&n| graph.id(n).to_owned()).collect()
    }

    #[test]
    fn power_ordering_ties_break_by_power_then_ts_then_id() {
        let events = map(vec![
            state_event("$create", "m.room.create", &[]),
            with_ts(state_event("$low_early", "x", &["$create"]), 1),
            with_ts(state_event("$high_late", "x", &["$create"]), 9),
            with_ts(state_event("$b_same", "x", &["$create"]), 5),
            with_ts(state_event("$a_same", "x", &["$create"]), 5),
        ]);
        let graph = graph_of(&events);
        let selected = vec![true; graph.len()];
        let power = |node: Node| match graph.id(node) {
            "$high_late" => 100,
            "$low_early" => -5,
            _ => 0,
        };
        let order = reverse_topological_power_order(&graph, &selected, power);
        assert_eq!(
            ids(&graph, &order),
            ["$create", "$high_late", "$a_same", "$b_same", "$low_early"]
        );
    }

    #[test]
    fn power_ordering_keeps_auth_order_between_selected_events() {
        // $late cites $early directly: $early comes first although $late's sender has more
        // power.
        let events = map(vec![
            state_event("$early", "x", &[]),
            state_event("$late", "z", &["$early"]),
            state_event("$free", "w", &[]),
        ]);
        let graph = graph_of(&events);
        let selected = vec![true; graph.len()];
        let power = |node: Node| if graph.id(node) == "$early" { 0 } else { 50 };
        let order = reverse_topological_power_order(&graph, &selected, power);
        assert_eq!(ids(&graph, &order), ["$free", "$early", "$late"]);
    }

    #[test]
    fn power_ordering_ignores_auth_paths_through_unselected_events() {
        // $late cites $mid which cites $early; $mid is not selected, so nothing orders $early
        // before $late and the power decides (as Synapse and ruma sort).
        let events = map(vec![
            state_event("$early", "x", &[]),
            state_event("$mid", "y", &["$early"]),
            state_event("$late", "z", &["$mid"]),
            state_event("$free", "w", &[]),
        ]);
        let graph = graph_of(&events);
        let mut selected = vec![true; graph.len()];
        selected[graph.node("$mid").unwrap() as usize] = false;
        let power = |node: Node| if graph.id(node) == "$early" { 0 } else { 50 };
        let order = reverse_topological_power_order(&graph, &selected, power);
        assert_eq!(ids(&graph, &order), ["$free", "$late", "$early"]);
    }

    /// create <- pl1 <- pl2 <- pl3 (the mainline of pl3), and events citing each.
    fn mainline_room() -> BTreeMap<String, Event> {
        map(vec![
            state_event("$create", "m.room.create", &[]),
            state_event("$pl1", "m.room.power_levels", &["$create"]),
            state_event("$pl2", "m.room.power_levels", &["$create", "$pl1"]),
            state_event("$pl3", "m.room.power_levels", &["$create", "$pl2"]),
            state_event("$side_pl", "m.room.power_levels", &["$create", "$pl1"]),
            with_ts(state_event("$on_pl3", "t", &["$create", "$pl3"]), 1),
            with_ts(state_event("$on_pl1", "t", &["$create", "$pl1"]), 3),
            with_ts(state_event("$on_pl2_late", "t", &["$create", "$pl2"]), 9),
            with_ts(state_event("$on_pl2_early", "t", &["$create", "$pl2"]), 2),
            with_ts(state_event("$on_side", "t", &["$create", "$side_pl"]), 0),
            with_ts(state_event("$no_pl", "t", &["$create"]), 7),
        ])
    }

    #[test]
    fn mainline_positions_follow_the_power_levels_chain() {
        let events = mainline_room();
        let graph = graph_of(&events);
        let node = |id| graph.node(id).unwrap();
        let mut positions = MainlinePositions::new(&graph, Some(node("$pl3")));
        assert_eq!(positions.of(node("$on_pl3")), 0);
        assert_eq!(positions.of(node("$on_pl2_late")), 1);
        assert_eq!(positions.of(node("$on_pl1")), 2);
        // The side power levels event is not on the mainline; its own is $pl1.
        assert_eq!(positions.of(node("$on_side")), 2);
        assert_eq!(positions.of(node("$no_pl")), POSITION_INFINITY);
        // An event of the mainline is placed by its predecessor, not by itself.
        assert_eq!(positions.of(node("$pl3")), 1);
    }

    #[test]
    fn mainline_order_puts_older_power_first() {
        let events = mainline_room();
        let graph = graph_of(&events);
        let all: Vec<Node> = [
            "$on_pl3",
            "$on_pl1",
            "$on_pl2_late",
            "$on_pl2_early",
            "$on_side",
            "$no_pl",
        ]
        .iter()
        .map(|id| graph.node(id).unwrap())
        .collect();
        let order = mainline_order(&graph, graph.node("$pl3"), &all);
        assert_eq!(
            ids(&graph, &order),
            [
                "$no_pl",
                "$on_side",
                "$on_pl1",
                "$on_pl2_early",
                "$on_pl2_late",
                "$on_pl3"
            ]
        );
        // Without a power levels event, only ts and id count.
        let order = mainline_order(&graph, None, &all);
        assert_eq!(
            ids(&graph, &order),
            [
                "$on_side",
                "$on_pl3",
                "$on_pl2_early",
                "$on_pl1",
                "$no_pl",
                "$on_pl2_late"
            ]
        );
    }
}
