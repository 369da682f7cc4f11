//! The room DAG: prev-event edges, depths and forward extremities.
//!
//! Nodes are the events placed in the timeline (everything but outliers), whatever their
//! verdict. A node is a *timeline* node when it was accepted and not soft-failed: only those
//! may be cited as prev events of new events. An edge may point at an event the store does not
//! hold (an event placed with state from a peer, whose gap could not be closed); such an
//! event is listed with the nodes citing it, so that if it arrives later it finds them.
//!
//! Forward extremities are defined without reference to arrival order: the timeline nodes with
//! no timeline descendant. They therefore form an antichain, and a soft-failed or rejected
//! event between an extremity and a later event does not keep the older one alive.
//!
//! Memory: every server of a run holds a DAG of the same events, so the DAG keeps almost
//! nothing of its own. It reads nodes from the store's records through [`Nodes`] (a record
//! held with state is a node; its prev events and depth are its PDU's, shared by the run),
//! indexes no children (edges are read from prev events; an event that arrives after its
//! children checks for a cycle by walking up from its prev events to a node citing it, and
//! only one cited by rejected or soft-failed nodes alone builds the children in one pass to
//! find a timeline descendant), and keeps the extremities and the events cited while not
//! held. Ids are the records' `Arc<str>`s.
//!
//! Invariants: the graph has no cycle (an insert that would close one is refused before the
//! node is added); every extremity is a timeline node without timeline descendants; an event
//! listed as cited while not held is not a node, and the nodes listed as citing it do, sorted
//! and without duplicates.

use super::id_map::{IdMap, sorted_by_id};
pub use crate::proto::pdu::PREV_EVENTS_MAX;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// An event id, shared with the store's records.
type Id = Arc<str>;

/// What the DAG knows of a node: read from its record.
#[derive(Clone, Copy, Debug)]
pub struct Node<'a> {
    pub prev_events: &'a [String],
    pub depth: u64,
    /// Accepted and not soft-failed: may be cited by new events.
    pub timeline: bool,
}

/// Where the DAG reads its nodes (the store's records; a map in tests).
pub trait Nodes {
    /// The node `event_id`, if it is one.
    fn node(&self, event_id: &str) -> Option<Node<'_>>;

    /// Every node's id, in any order (to check invariants).
    fn node_ids(&self) -> Vec<&str>;

    /// The one `Arc<str>` the nodes' holder keeps for `event_id`, if it holds the event
    /// (as a node or not): edges share it instead of allocating their own.
    fn shared_id(&self, event_id: &str) -> Option<&Arc<str>>;
}

/// Why an event cannot be placed in the DAG.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DagError {
    #[error("event {event_id} is already in the DAG")]
    Duplicate { event_id: String },
    #[error("event {event_id} would close a cycle through prev event {prev_event_id}")]
    Cycle {
        event_id: String,
        prev_event_id: String,
    },
}

/// The nodes citing one event, sorted. Most events have one child, kept inline; a boxed
/// slice would cost an allocation per event.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Children {
    One(Id),
    Many(Box<[Id]>),
}

impl Children {
    fn as_slice(&self) -> &[Id] {
        match self {
            Self::One(id) => std::slice::from_ref(id),
            Self::Many(ids) => ids,
        }
    }

    /// Adds `id` in order, unless it is there already.
    fn add(&mut self, id: &Id) {
        let ids = self.as_slice();
        if let Err(at) = ids.binary_search(id) {
            let mut grown = Vec::with_capacity(ids.len() + 1);
            grown.extend_from_slice(&ids[..at]);
            grown.push(id.clone());
            grown.extend_from_slice(&ids[at..]);
            *self = Self::Many(grown.into_boxed_slice());
        }
    }
}

/// The edges and extremities of one room's DAG, over nodes read from [`Nodes`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dag {
    /// Events cited as prev events while they were not nodes: target -> the nodes citing it
    /// (sorted). An entry leaves when its target becomes a node. Edges between nodes are read
    /// from the nodes' prev events and not indexed: a full index of children cost about 70
    /// bytes per event per server, and only an event that arrives after its children needs
    /// one (see [`Dag::descendants`]).
    cited_unheld: IdMap<Children>,
    extremities: BTreeSet<String>,
}

/// Every node's children: the prev edges read backwards, built by one pass over the nodes.
type ChildIndex<'a> = BTreeMap<&'a str, Vec<&'a str>>;

impl Dag {
    pub fn extremities(&self) -> &BTreeSet<String> {
        &self.extremities
    }

    /// The DAG's `Arc<str>` for `event_id`, if it was cited while not held.
    pub fn interned(&self, event_id: &str) -> Option<&Arc<str>> {
        self.cited_unheld.get_key_value(event_id).map(|(id, _)| id)
    }

    /// Whether the event may be added as a node: it is not one yet and closes no cycle.
    pub fn check_insertable(
        &self,
        nodes: &impl Nodes,
        event_id: &str,
        prev_events: &[String],
    ) -> Result<(), DagError> {
        if nodes.node(event_id).is_some() {
            return Err(DagError::Duplicate {
                event_id: event_id.to_owned(),
            });
        }
        self.check_no_cycle(nodes, event_id, prev_events)
    }

    /// Links the node `id`, just added to `nodes` after [`Dag::check_insertable`] allowed it:
    /// its edges and the extremities. Returns whether the forward extremities changed (a late
    /// event that is not accepted changes them too, when it links accepted events already
    /// placed to older ones).
    pub fn link(&mut self, nodes: &impl Nodes, id: &Id) -> bool {
        let node = nodes.node(id).expect("a node is added before it is linked");
        debug_assert!(self.check_no_cycle(nodes, id, node.prev_events).is_ok());
        let has_timeline_descendant = self.has_timeline_descendant(nodes, id);
        self.cited_unheld.remove(&**id);
        for prev_event_id in node.prev_events {
            if nodes.node(prev_event_id).is_some() {
                continue;
            }
            let prev = self.intern(nodes, prev_event_id);
            match self.cited_unheld.entry(prev) {
                Entry::Occupied(mut citing) => citing.get_mut().add(id),
                Entry::Vacant(slot) => {
                    slot.insert(Children::One(id.clone()));
                }
            }
        }
        let mut changed = false;
        if node.timeline || has_timeline_descendant {
            changed = self.retire_ancestor_extremities(nodes, node.prev_events);
        }
        if node.timeline && !has_timeline_descendant {
            changed |= self.extremities.insert(id.to_string());
        }
        changed
    }

    /// The one `Arc<str>` for `event_id`: of the entry citing it, else of the nodes' holder,
    /// else a new one (for an event not held).
    fn intern(&self, nodes: &impl Nodes, event_id: &str) -> Id {
        self.interned(event_id)
            .or_else(|| nodes.shared_id(event_id))
            .cloned()
            .unwrap_or_else(|| Id::from(event_id))
    }

    /// Up to [`PREV_EVENTS_MAX`] extremities for a new event to cite, deepest first, ties by
    /// event id, and the depth the new event gets (one more than the deepest prev event).
    pub fn prev_events_for_new_event(&self, nodes: &impl Nodes) -> (Vec<String>, u64) {
        let depth_of = |event_id: &str| {
            nodes
                .node(event_id)
                .expect("every extremity is a node")
                .depth
        };
        let mut chosen: Vec<(u64, &String)> = self
            .extremities
            .iter()
            .map(|event_id| (depth_of(event_id), event_id))
            .collect();
        chosen
            .sort_by(|(a_depth, a_id), (b_depth, b_id)| b_depth.cmp(a_depth).then(a_id.cmp(b_id)));
        chosen.truncate(PREV_EVENTS_MAX);
        let depth = chosen
            .iter()
            .map(|(depth, _)| depth.saturating_add(1))
            .max()
            .unwrap_or(1);
        (
            chosen.into_iter().map(|(_, id)| id.clone()).collect(),
            depth,
        )
    }

    /// An insert of `event_id` closes a cycle if one of its prev events is the event itself or
    /// descends from it, which only nodes already citing it (placed with state) can make.
    fn check_no_cycle(
        &self,
        nodes: &impl Nodes,
        event_id: &str,
        prev_events: &[String],
    ) -> Result<(), DagError> {
        let cycle = |prev_event_id: &str| DagError::Cycle {
            event_id: event_id.to_owned(),
            prev_event_id: prev_event_id.to_owned(),
        };
        if prev_events.iter().any(|prev| prev == event_id) {
            return Err(cycle(event_id));
        }
        let Some(citing) = self.cited_unheld.get(event_id) else {
            return Ok(());
        };
        // A prev event descends from the event exactly when it is, or has among its
        // ancestors, a node citing the event: walked up from each prev event (in id order, so
        // the one named is the first in that order), through nodes only. A late event's prev
        // events are older than it, so the walk covers older history, not the whole DAG.
        let citing: BTreeSet<&str> = citing.as_slice().iter().map(|id| &**id).collect();
        let prevs: BTreeSet<&str> = prev_events.iter().map(String::as_str).collect();
        // Nodes from which no citing node is reachable upwards, shared by the walks.
        let mut cleared: BTreeSet<&str> = BTreeSet::new();
        for prev in prevs {
            let mut stack = vec![prev];
            while let Some(next) = stack.pop() {
                if !cleared.insert(next) {
                    continue;
                }
                let Some(node) = nodes.node(next) else {
                    continue;
                };
                if citing.contains(next) {
                    return Err(cycle(prev));
                }
                stack.extend(node.prev_events.iter().map(String::as_str));
            }
        }
        Ok(())
    }

    /// Whether a timeline node descends from `event_id`. Only nodes that cited it before it
    /// was a node can: none for an event that came after its prev events, the common case.
    /// The rare late event pays one pass over the nodes, unless a node citing it directly is
    /// a timeline node.
    fn has_timeline_descendant(&self, nodes: &impl Nodes, event_id: &str) -> bool {
        let Some(citing) = self.cited_unheld.get(event_id) else {
            return false;
        };
        let is_timeline = |id: &str| nodes.node(id).is_some_and(|node| node.timeline);
        if citing.as_slice().iter().any(|id| is_timeline(id)) {
            return true;
        }
        let index = child_index(nodes);
        descendants(&index, event_id).into_iter().any(is_timeline)
    }

    /// Removes from the extremities the nearest timeline ancestors of a node whose prev events
    /// are `prev_events`: those reached through non-timeline nodes only. Farther ones already
    /// left when those nearer were placed (or were never extremities, having a timeline
    /// descendant when they came).
    fn retire_ancestor_extremities(&mut self, nodes: &impl Nodes, prev_events: &[String]) -> bool {
        let mut retired = false;
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut queue: VecDeque<&str> = prev_events.iter().map(String::as_str).collect();
        while let Some(next) = queue.pop_front() {
            if !seen.insert(next) {
                continue;
            }
            let Some(node) = nodes.node(next) else {
                continue;
            };
            if node.timeline {
                retired |= self.extremities.remove(next);
            } else {
                queue.extend(node.prev_events.iter().map(String::as_str));
            }
        }
        retired
    }

    /// Checks the invariants from scratch: no cycle (Kahn's algorithm over the nodes), the
    /// extremities are exactly the timeline nodes without timeline descendants, the entries
    /// of events cited while not held name non-nodes, cited by nodes, in sorted lists. Names
    /// the first problem found.
    pub fn check_invariants(&self, nodes: &impl Nodes) -> Result<(), String> {
        let index = child_index(nodes);
        let node = |id: &str| nodes.node(id).expect("listed as a node");
        let mut ids = nodes.node_ids();
        ids.sort_unstable();
        let mut unplaced_prevs: BTreeMap<&str, usize> = ids
            .iter()
            .map(|&id| {
                // Distinct, as the index lists a child once per parent.
                let known: BTreeSet<&str> = node(id)
                    .prev_events
                    .iter()
                    .map(String::as_str)
                    .filter(|p| nodes.node(p).is_some())
                    .collect();
                (id, known.len())
            })
            .collect();
        let mut ready: Vec<&str> = unplaced_prevs
            .iter()
            .filter(|(_, count)| **count == 0)
            .map(|(id, _)| *id)
            .collect();
        let mut placed = 0;
        while let Some(id) = ready.pop() {
            placed += 1;
            for &child in index.get(id).into_iter().flatten() {
                let count = unplaced_prevs.get_mut(child).expect("children are nodes");
                *count -= 1;
                if *count == 0 {
                    ready.push(child);
                }
            }
        }
        if placed != ids.len() {
            return Err(format!(
                "the DAG has a cycle among {} events",
                ids.len() - placed
            ));
        }
        let expected: BTreeSet<String> = ids
            .iter()
            .filter(|&&id| node(id).timeline)
            .filter(|&&id| {
                !descendants(&index, id)
                    .into_iter()
                    .any(|d| node(d).timeline)
            })
            .map(|id| id.to_string())
            .collect();
        if expected != self.extremities {
            return Err(format!(
                "forward extremities are {:?} but should be {:?}",
                self.extremities, expected
            ));
        }
        for (target, citing) in sorted_by_id(&self.cited_unheld) {
            let citing = citing.as_slice();
            if nodes.node(target).is_some() {
                return Err(format!("{target} is a node but still listed as not held"));
            }
            if !citing.windows(2).all(|pair| pair[0] < pair[1]) {
                return Err(format!("the nodes citing {target} are not sorted"));
            }
            if let Some(stray) = citing.iter().find(|id| {
                nodes
                    .node(id)
                    .is_none_or(|node| !node.prev_events.iter().any(|p| p.as_str() == &**target))
            }) {
                return Err(format!("{stray} is listed as citing {target} but does not"));
            }
        }
        Ok(())
    }
}

/// The children of every node, from one pass over the nodes' prev events: each list sorted
/// and without duplicates (an event may list a prev event twice).
fn child_index(nodes: &impl Nodes) -> ChildIndex<'_> {
    let mut index: ChildIndex<'_> = BTreeMap::new();
    for id in nodes.node_ids() {
        let node = nodes.node(id).expect("listed as a node");
        for prev in node.prev_events {
            index.entry(prev.as_str()).or_default().push(id);
        }
    }
    for children in index.values_mut() {
        children.sort_unstable();
        children.dedup();
    }
    index
}

/// Every node reachable from `event_id` through child edges (not `event_id` itself).
fn descendants<'a>(index: &ChildIndex<'a>, event_id: &str) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    let mut queue: VecDeque<&str> = index.get(event_id).into_iter().flatten().copied().collect();
    while let Some(next) = queue.pop_front() {
        if seen.insert(next) {
            queue.extend(index.get(next).into_iter().flatten().copied());
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestNodes = BTreeMap<String, (Vec<String>, u64, bool)>;

    impl Nodes for TestNodes {
        fn node(&self, event_id: &str) -> Option<Node<'_>> {
            self.get(event_id)
                .map(|(prev_events, depth, timeline)| Node {
                    prev_events,
                    depth: *depth,
                    timeline: *timeline,
                })
        }

        fn node_ids(&self) -> Vec<&str> {
            self.keys().map(String::as_str).collect()
        }

        fn shared_id(&self, _: &str) -> Option<&Arc<str>> {
            None
        }
    }

    /// A DAG with its nodes, added as the store adds them: checked, added, then linked.
    #[derive(Default)]
    struct TestDag {
        dag: Dag,
        nodes: TestNodes,
    }

    impl TestDag {
        fn insert(
            &mut self,
            event_id: &str,
            prev_events: &[String],
            depth: u64,
            timeline: bool,
        ) -> Result<bool, DagError> {
            self.dag
                .check_insertable(&self.nodes, event_id, prev_events)?;
            let node = (prev_events.to_vec(), depth, timeline);
            self.nodes.insert(event_id.to_owned(), node);
            Ok(self.dag.link(&self.nodes, &Id::from(event_id)))
        }

        fn extremities(&self) -> &BTreeSet<String> {
            self.dag.extremities()
        }

        fn children(&self, event_id: &str) -> Vec<&str> {
            child_index(&self.nodes)
                .get(event_id)
                .cloned()
                .unwrap_or_default()
        }

        fn depth(&self, event_id: &str) -> Option<u64> {
            self.nodes.node(event_id).map(|node| node.depth)
        }

        fn prev_events_for_new_event(&self) -> (Vec<String>, u64) {
            self.dag.prev_events_for_new_event(&self.nodes)
        }

        fn check_invariants(&self) -> Result<(), String> {
            self.dag.check_invariants(&self.nodes)
        }
    }

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|id| (*id).to_owned()).collect()
    }

    fn extremities(dag: &TestDag) -> Vec<&str> {
        dag.extremities().iter().map(String::as_str).collect()
    }

    #[test]
    fn a_linear_chain_has_one_extremity() {
        let mut dag = TestDag::default();
        dag.insert("$a", &[], 1, true).unwrap();
        dag.insert("$b", &ids(&["$a"]), 2, true).unwrap();
        dag.insert("$c", &ids(&["$b"]), 3, true).unwrap();
        assert_eq!(extremities(&dag), ["$c"]);
        assert_eq!(dag.prev_events_for_new_event(), (ids(&["$c"]), 4));
        dag.check_invariants().unwrap();
    }

    #[test]
    fn a_fork_has_two_extremities_until_merged() {
        let mut dag = TestDag::default();
        dag.insert("$a", &[], 1, true).unwrap();
        dag.insert("$b", &ids(&["$a"]), 2, true).unwrap();
        dag.insert("$c", &ids(&["$a"]), 5, true).unwrap();
        assert_eq!(extremities(&dag), ["$b", "$c"]);
        assert_eq!(dag.prev_events_for_new_event(), (ids(&["$c", "$b"]), 6));
        dag.insert("$m", &ids(&["$b", "$c"]), 6, true).unwrap();
        assert_eq!(extremities(&dag), ["$m"]);
        dag.check_invariants().unwrap();
    }

    #[test]
    fn rejected_and_soft_failed_events_are_never_extremities() {
        let mut dag = TestDag::default();
        dag.insert("$a", &[], 1, true).unwrap();
        assert!(!dag.insert("$rejected", &ids(&["$a"]), 2, false).unwrap());
        assert_eq!(extremities(&dag), ["$a"]);
        // A later accepted event citing the rejected one retires $a too.
        dag.insert("$b", &ids(&["$rejected"]), 3, true).unwrap();
        assert_eq!(extremities(&dag), ["$b"]);
        dag.check_invariants().unwrap();
    }

    #[test]
    fn a_late_ancestor_is_not_an_extremity() {
        let mut dag = TestDag::default();
        dag.insert("$a", &[], 1, true).unwrap();
        // $c was placed with state from a peer; its prev $b was not known then.
        dag.insert("$c", &ids(&["$b"]), 3, true).unwrap();
        assert_eq!(extremities(&dag), ["$a", "$c"]);
        dag.insert("$b", &ids(&["$a"]), 2, true).unwrap();
        assert_eq!(extremities(&dag), ["$c"]);
        assert_eq!(dag.children("$b"), ["$c"]);
        dag.check_invariants().unwrap();
    }

    #[test]
    fn a_late_rejected_event_retires_its_ancestors_when_it_has_accepted_children() {
        let mut dag = TestDag::default();
        dag.insert("$a", &[], 1, true).unwrap();
        dag.insert("$c", &ids(&["$r"]), 3, true).unwrap();
        assert!(
            dag.insert("$r", &ids(&["$a"]), 2, false).unwrap(),
            "$a retired"
        );
        assert_eq!(extremities(&dag), ["$c"]);
        dag.check_invariants().unwrap();
    }

    #[test]
    fn a_late_event_sees_timeline_nodes_beyond_the_nodes_citing_it() {
        let mut dag = TestDag::default();
        dag.insert("$a", &[], 1, true).unwrap();
        // $c (rejected) cites $r before $r is held; $d (accepted) cites $c.
        dag.insert("$c", &ids(&["$r"]), 3, false).unwrap();
        dag.insert("$d", &ids(&["$c"]), 4, true).unwrap();
        assert_eq!(extremities(&dag), ["$a", "$d"]);
        assert!(
            dag.insert("$r", &ids(&["$a"]), 2, false).unwrap(),
            "$a retired"
        );
        assert_eq!(extremities(&dag), ["$d"]);
        dag.check_invariants().unwrap();
    }

    #[test]
    fn a_cycle_through_descendants_of_descendants_is_refused() {
        let mut dag = TestDag::default();
        dag.insert("$b", &ids(&["$x"]), 2, true).unwrap();
        dag.insert("$c", &ids(&["$b"]), 3, true).unwrap();
        assert_eq!(
            dag.insert("$x", &ids(&["$c"]), 1, true),
            Err(DagError::Cycle {
                event_id: "$x".into(),
                prev_event_id: "$c".into()
            })
        );
        dag.insert("$x", &[], 1, true).unwrap();
        assert_eq!(extremities(&dag), ["$c"]);
        dag.check_invariants().unwrap();
    }

    #[test]
    fn cycles_and_duplicates_are_refused() {
        let mut dag = TestDag::default();
        assert!(matches!(
            dag.insert("$a", &ids(&["$a"]), 1, true),
            Err(DagError::Cycle { .. })
        ));
        dag.insert("$b", &ids(&["$a"]), 2, true).unwrap();
        dag.insert("$c", &ids(&["$b"]), 3, true).unwrap();
        assert_eq!(
            dag.insert("$a", &ids(&["$c"]), 1, true),
            Err(DagError::Cycle {
                event_id: "$a".into(),
                prev_event_id: "$c".into()
            })
        );
        assert!(matches!(
            dag.insert("$b", &[], 1, true),
            Err(DagError::Duplicate { .. })
        ));
        dag.check_invariants().unwrap();
    }

    #[test]
    fn at_most_twenty_prev_events_deepest_first() {
        let mut dag = TestDag::default();
        dag.insert("$root", &[], 1, true).unwrap();
        for index in 0..25u64 {
            let id = format!("$e{index:02}");
            dag.insert(&id, &ids(&["$root"]), 2 + index % 3, true)
                .unwrap();
        }
        let (prevs, depth) = dag.prev_events_for_new_event();
        assert_eq!(prevs.len(), PREV_EVENTS_MAX);
        assert_eq!(depth, 5);
        let depths: Vec<u64> = prevs.iter().map(|id| dag.depth(id).unwrap()).collect();
        assert!(depths.windows(2).all(|pair| pair[0] >= pair[1]));
        assert_eq!(prevs[0], "$e02");
        dag.check_invariants().unwrap();
    }
}
