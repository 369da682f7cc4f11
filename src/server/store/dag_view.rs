//! The room DAG as the store holds it: the [`Dag`]'s edges and extremities over nodes read
//! from the records ([`Nodes`] for the record map), and [`DagView`], the read-only view
//! `RoomStore::dag` gives to everything outside the store.
//!
//! Invariant: a record is a node exactly when it is held with state (not an outlier); it is a
//! timeline node exactly when it was accepted. Statuses never change once placed, so the
//! DAG's extremities stay right without being told about records.

use super::dag::{Dag, Node, Nodes};
use super::record::EventStatus;
use super::records::Records;
use std::collections::BTreeSet;
use std::sync::Arc;

impl Nodes for Records {
    fn node(&self, event_id: &str) -> Option<Node<'_>> {
        let record = self.get(event_id)?;
        record.state()?;
        let event = record.pdu.event();
        Some(Node {
            prev_events: &event.prev_events,
            depth: event.depth,
            timeline: matches!(record.status, EventStatus::Accepted),
        })
    }

    fn node_ids(&self) -> Vec<&str> {
        self.values()
            .filter(|record| record.state().is_some())
            .map(|record| record.pdu.event_id())
            .collect()
    }

    fn shared_id(&self, event_id: &str) -> Option<&Arc<str>> {
        self.get_key_value(event_id).map(|(id, _)| id)
    }
}

/// The DAG of a room store, read-only.
#[derive(Clone, Copy)]
pub struct DagView<'a> {
    pub(super) dag: &'a Dag,
    pub(super) nodes: &'a Records,
}

impl<'a> DagView<'a> {
    pub fn contains(&self, event_id: &str) -> bool {
        self.nodes.node(event_id).is_some()
    }

    /// How many events are nodes (held with state).
    pub fn len(&self) -> usize {
        self.nodes
            .values()
            .filter(|record| record.state().is_some())
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn depth(&self, event_id: &str) -> Option<u64> {
        self.nodes.node(event_id).map(|node| node.depth)
    }

    pub fn prev_events(&self, event_id: &str) -> Option<&'a [String]> {
        self.nodes.node(event_id).map(|node| node.prev_events)
    }

    pub fn extremities(&self) -> &'a BTreeSet<String> {
        self.dag.extremities()
    }

    /// See [`Dag::prev_events_for_new_event`].
    pub fn prev_events_for_new_event(&self) -> (Vec<String>, u64) {
        self.dag.prev_events_for_new_event(self.nodes)
    }
}
