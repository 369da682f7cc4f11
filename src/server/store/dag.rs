//! The room DAG: prev-event edges, children, depths and forward extremities.
//!
//! Nodes are the events placed in the timeline (everything but outliers), whatever their
//! verdict. A node is a *timeline* node when it was accepted and not soft-failed: only those
//! may be cited as prev events of new events. An edge may point at an event the store does not
//! hold (an event placed with state from a peer, whose gap could not be closed); such a
//! dangling edge is kept, so that the event, if it arrives later, finds its children.
//!
//! Forward extremities are defined without reference to arrival order: the timeline nodes with
//! no timeline descendant. They therefore form an antichain, and a soft-failed or rejected
//! event between an extremity and a later event does not keep the older one alive.
//!
//! Memory: every server of a run holds a DAG of the same events, so the DAG keeps one string
//! per event id (an `Arc<str>` shared by every index that names the event) and reads an
//! event's prev events from its PDU, which the run shares between servers, instead of copying
//! them.
//!
//! Invariants: the graph has no cycle (an insert that would close one fails); every extremity
//! is a timeline node without timeline descendants; each list of children is sorted and
//! without duplicates; one id has one `Arc<str>` in the DAG.

use super::id_map::{IdMap, sorted_by_id};
pub use crate::proto::pdu::PREV_EVENTS_MAX;
use crate::proto::pdu::Pdu;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// An event id, held once per DAG and shared by its indexes.
type Id = Arc<str>;

/// A node: placed from a PDU (its prev events and depth are read from the PDU, which the run
/// shares between servers), or from ids alone (boxed: rare, and it keeps the common node at
/// two words).
#[derive(Clone, Debug)]
enum Node {
    Pdu { pdu: Arc<Pdu>, timeline: bool },
    Ids(Box<IdsNode>),
}

#[derive(Clone, Debug)]
struct IdsNode {
    prev_events: Box<[String]>,
    depth: u64,
    timeline: bool,
}

impl Node {
    fn prev_events(&self) -> &[String] {
        match self {
            Self::Pdu { pdu, .. } => &pdu.event().prev_events,
            Self::Ids(node) => &node.prev_events,
        }
    }

    fn depth(&self) -> u64 {
        match self {
            Self::Pdu { pdu, .. } => pdu.event().depth,
            Self::Ids(node) => node.depth,
        }
    }

    fn timeline(&self) -> bool {
        match self {
            Self::Pdu { timeline, .. } => *timeline,
            Self::Ids(node) => node.timeline,
        }
    }
}

impl PartialEq for Node {
    fn eq(&self, other: &Self) -> bool {
        (self.prev_events(), self.depth(), self.timeline())
            == (other.prev_events(), other.depth(), other.timeline())
    }
}

impl Eq for Node {}

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

/// The DAG of one room.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dag {
    nodes: IdMap<Node>,
    /// For every prev edge target, known or not, the nodes that cite it (sorted).
    /// One child inline, more in a slice sized to them (a `Vec` would keep room for four).
    children: IdMap<Children>,
    extremities: BTreeSet<String>,
}

impl Dag {
    pub fn contains(&self, event_id: &str) -> bool {
        self.nodes.contains_key(event_id)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn depth(&self, event_id: &str) -> Option<u64> {
        self.nodes.get(event_id).map(Node::depth)
    }

    pub fn prev_events(&self, event_id: &str) -> Option<&[String]> {
        self.nodes.get(event_id).map(Node::prev_events)
    }

    /// The nodes citing `event_id` as a prev event, in id order.
    pub fn children(&self, event_id: &str) -> impl Iterator<Item = &str> {
        self.children
            .get(event_id)
            .into_iter()
            .flat_map(Children::as_slice)
            .map(|id| &**id)
    }

    pub fn is_timeline(&self, event_id: &str) -> bool {
        self.nodes.get(event_id).is_some_and(Node::timeline)
    }

    pub fn extremities(&self) -> &BTreeSet<String> {
        &self.extremities
    }

    /// Places an event given by its id and prev events. `timeline` says whether it was
    /// accepted and not soft-failed. Returns whether the forward extremities changed (a late
    /// event that is not accepted changes them too, when it links accepted events already
    /// placed to older ones).
    pub fn insert(
        &mut self,
        event_id: &str,
        prev_events: &[String],
        depth: u64,
        timeline: bool,
    ) -> Result<bool, DagError> {
        let node = Node::Ids(Box::new(IdsNode {
            prev_events: prev_events.into(),
            depth,
            timeline,
        }));
        self.insert_node(Id::from(event_id), node)
    }

    /// [`Dag::insert`] for a PDU: its prev events and depth are read from it and not copied.
    /// `id` is its event id as the caller holds it, kept unless the DAG already holds one.
    pub fn insert_pdu(
        &mut self,
        id: Arc<str>,
        pdu: &Arc<Pdu>,
        timeline: bool,
    ) -> Result<bool, DagError> {
        debug_assert_eq!(&*id, pdu.event_id());
        let node = Node::Pdu {
            pdu: pdu.clone(),
            timeline,
        };
        self.insert_node(id, node)
    }

    /// The DAG's `Arc<str>` for `event_id`, if a node or an edge names it.
    pub fn interned(&self, event_id: &str) -> Option<&Arc<str>> {
        match self.nodes.get_key_value(event_id) {
            Some((id, _)) => Some(id),
            None => self.children.get_key_value(event_id).map(|(id, _)| id),
        }
    }

    fn insert_node(&mut self, id: Id, node: Node) -> Result<bool, DagError> {
        let event_id: &str = &id;
        self.check_insertable(event_id, node.prev_events())?;
        let has_timeline_descendant = self.has_timeline_descendant(event_id);
        let timeline = node.timeline();
        let id = self.interned(event_id).cloned().unwrap_or(id);
        for prev_event_id in node.prev_events() {
            let prev = self.intern(prev_event_id);
            match self.children.entry(prev) {
                Entry::Occupied(mut children) => children.get_mut().add(&id),
                Entry::Vacant(slot) => {
                    slot.insert(Children::One(id.clone()));
                }
            }
        }
        self.nodes.insert(id.clone(), node);
        let event_id: &str = &id;
        let mut changed = false;
        if timeline || has_timeline_descendant {
            changed = self.retire_ancestor_extremities(event_id);
        }
        if timeline && !has_timeline_descendant {
            changed |= self.extremities.insert(event_id.to_owned());
        }
        Ok(changed)
    }

    /// The DAG's one `Arc<str>` for `event_id`: of its node or of the edges citing it, else a
    /// new one.
    fn intern(&self, event_id: &str) -> Id {
        self.interned(event_id)
            .cloned()
            .unwrap_or_else(|| Id::from(event_id))
    }

    /// Whether [`Dag::insert`] would accept the event: it is not yet a node and closes no
    /// cycle.
    pub fn check_insertable(&self, event_id: &str, prev_events: &[String]) -> Result<(), DagError> {
        if self.nodes.contains_key(event_id) {
            return Err(DagError::Duplicate {
                event_id: event_id.to_owned(),
            });
        }
        self.check_no_cycle(event_id, prev_events)
    }

    /// Up to [`PREV_EVENTS_MAX`] extremities for a new event to cite, deepest first, ties by
    /// event id, and the depth the new event gets (one more than the deepest prev event).
    pub fn prev_events_for_new_event(&self) -> (Vec<String>, u64) {
        let mut chosen: Vec<(u64, &String)> = self
            .extremities
            .iter()
            .map(|event_id| (self.nodes[event_id.as_str()].depth(), event_id))
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
    /// descends from it, which only events already citing it (placed with state) can make.
    fn check_no_cycle(&self, event_id: &str, prev_events: &[String]) -> Result<(), DagError> {
        let prevs: BTreeSet<&str> = prev_events.iter().map(String::as_str).collect();
        let cycle = |prev_event_id: &str| DagError::Cycle {
            event_id: event_id.to_owned(),
            prev_event_id: prev_event_id.to_owned(),
        };
        if prevs.contains(event_id) {
            return Err(cycle(event_id));
        }
        for descendant in self.descendants(event_id) {
            if prevs.contains(descendant) {
                return Err(cycle(descendant));
            }
        }
        Ok(())
    }

    /// Every node reachable from `event_id` through child edges (not `event_id` itself).
    fn descendants(&self, event_id: &str) -> BTreeSet<&str> {
        let mut seen = BTreeSet::new();
        let mut queue: VecDeque<&str> = self.children(event_id).collect();
        while let Some(next) = queue.pop_front() {
            if seen.insert(next) {
                queue.extend(self.children(next));
            }
        }
        seen
    }

    fn has_timeline_descendant(&self, event_id: &str) -> bool {
        self.descendants(event_id)
            .into_iter()
            .any(|descendant| self.is_timeline(descendant))
    }

    /// Removes from the extremities the nearest timeline ancestors of `event_id`: those reached
    /// through non-timeline nodes only. Farther ones already left when those nearer were placed
    /// (or were never extremities, having a timeline descendant when they came).
    fn retire_ancestor_extremities(&mut self, event_id: &str) -> bool {
        let mut retired = false;
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut queue: VecDeque<&str> = self.nodes[event_id]
            .prev_events()
            .iter()
            .map(String::as_str)
            .collect();
        let mut timeline_ancestors: Vec<&str> = Vec::new();
        while let Some(next) = queue.pop_front() {
            if !seen.insert(next) {
                continue;
            }
            let Some(node) = self.nodes.get(next) else {
                continue;
            };
            if node.timeline() {
                timeline_ancestors.push(next);
            } else {
                queue.extend(node.prev_events().iter().map(String::as_str));
            }
        }
        let timeline_ancestors: Vec<String> =
            timeline_ancestors.into_iter().map(str::to_owned).collect();
        for ancestor in timeline_ancestors {
            retired |= self.extremities.remove(&ancestor);
        }
        retired
    }

    /// Checks the invariants from scratch: no cycle (Kahn's algorithm over the known nodes),
    /// the extremities are exactly the timeline nodes without timeline descendants, and the
    /// depth index matches the nodes. Names the first problem found.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut unplaced_prevs: BTreeMap<&str, usize> = self
            .nodes
            .iter()
            .map(|(id, node)| {
                let known = node
                    .prev_events()
                    .iter()
                    .filter(|p| self.contains(p))
                    .count();
                (&**id, known)
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
            for child in self.children(id) {
                let count = unplaced_prevs.get_mut(child).expect("children are nodes");
                *count -= self.nodes[child]
                    .prev_events()
                    .iter()
                    .filter(|p| p.as_str() == id)
                    .count();
                if *count == 0 {
                    ready.push(child);
                }
            }
        }
        if placed != self.nodes.len() {
            return Err(format!(
                "the DAG has a cycle among {} events",
                self.nodes.len() - placed
            ));
        }
        let expected: BTreeSet<String> = self
            .nodes
            .iter()
            .filter(|(id, node)| node.timeline() && !self.has_timeline_descendant(id))
            .map(|(id, _)| id.to_string())
            .collect();
        if expected != self.extremities {
            return Err(format!(
                "forward extremities are {:?} but should be {:?}",
                self.extremities, expected
            ));
        }
        for (target, children) in sorted_by_id(&self.children) {
            if !children.as_slice().windows(2).all(|pair| pair[0] < pair[1]) {
                return Err(format!("the children of {target} are not sorted"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|id| (*id).to_owned()).collect()
    }

    fn extremities(dag: &Dag) -> Vec<&str> {
        dag.extremities().iter().map(String::as_str).collect()
    }

    #[test]
    fn a_linear_chain_has_one_extremity() {
        let mut dag = Dag::default();
        dag.insert("$a", &[], 1, true).unwrap();
        dag.insert("$b", &ids(&["$a"]), 2, true).unwrap();
        dag.insert("$c", &ids(&["$b"]), 3, true).unwrap();
        assert_eq!(extremities(&dag), ["$c"]);
        assert_eq!(dag.prev_events_for_new_event(), (ids(&["$c"]), 4));
        dag.check_invariants().unwrap();
    }

    #[test]
    fn a_fork_has_two_extremities_until_merged() {
        let mut dag = Dag::default();
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
        let mut dag = Dag::default();
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
        let mut dag = Dag::default();
        dag.insert("$a", &[], 1, true).unwrap();
        // $c was placed with state from a peer; its prev $b was not known then.
        dag.insert("$c", &ids(&["$b"]), 3, true).unwrap();
        assert_eq!(extremities(&dag), ["$a", "$c"]);
        dag.insert("$b", &ids(&["$a"]), 2, true).unwrap();
        assert_eq!(extremities(&dag), ["$c"]);
        assert_eq!(dag.children("$b").collect::<Vec<_>>(), ["$c"]);
        dag.check_invariants().unwrap();
    }

    #[test]
    fn a_late_rejected_event_retires_its_ancestors_when_it_has_accepted_children() {
        let mut dag = Dag::default();
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
    fn cycles_and_duplicates_are_refused() {
        let mut dag = Dag::default();
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
        let mut dag = Dag::default();
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
