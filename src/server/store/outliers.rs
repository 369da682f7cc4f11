//! Placing a batch of auth chain events (from `send_join`, `/state_ids`, `/event_auth`) as
//! outliers, each after the auth events it cites.
//!
//! Invariant: the batch is checked whole (room, id conflicts, auth events held or in the
//! batch, no cycle) before any event is placed, so a failing batch changes nothing.

use super::room::RoomStore;
use super::{IngestOutcome, StoreError};
use crate::proto::pdu::Pdu;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

impl RoomStore {
    /// Places a batch of auth chain events as outliers, each after the auth events it cites;
    /// each comes with its `held_redacted` flag. Fails without change when an event cites an
    /// auth event that is neither held nor in the batch, or the batch's auth events form a
    /// cycle. Outcomes come in the order the events were placed.
    pub fn ingest_outliers(
        &mut self,
        pdus: Vec<(Arc<Pdu>, bool)>,
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        let mut held_redacted: BTreeMap<String, bool> = BTreeMap::new();
        let mut batch: BTreeMap<String, Arc<Pdu>> = BTreeMap::new();
        for (pdu, redacted) in pdus {
            *held_redacted.entry(pdu.event_id().to_owned()).or_default() |= redacted;
            batch.insert(pdu.event_id().to_owned(), pdu);
        }
        for pdu in batch.values() {
            self.check_belongs(pdu)?;
            if let Some(existing) = self.events.get(pdu.event_id()) {
                self.check_same_event(existing, pdu)?;
            }
            let missing: Vec<String> = self
                .cited_auth_events(pdu.event())
                .into_iter()
                .filter(|id| !self.contains(id) && !batch.contains_key(id))
                .collect();
            if !missing.is_empty() {
                return Err(StoreError::Missing {
                    event_id: pdu.event_id().to_owned(),
                    prev_events: Vec::new(),
                    auth_events: missing,
                    state_events: Vec::new(),
                });
            }
        }
        let order = self.auth_order(&batch)?;
        let mut outcomes = Vec::with_capacity(order.len());
        for event_id in order {
            let pdu = batch[&event_id].clone();
            outcomes.push(self.ingest_outlier(pdu, held_redacted[&event_id])?);
        }
        Ok(outcomes)
    }

    /// The events of `batch` in an order where each comes after the auth events it cites.
    fn auth_order(&self, batch: &BTreeMap<String, Arc<Pdu>>) -> Result<Vec<String>, StoreError> {
        let mut waiting_on: BTreeMap<&str, usize> = BTreeMap::new();
        let mut dependants: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (event_id, pdu) in batch {
            let in_batch: BTreeSet<String> = self
                .cited_auth_events(pdu.event())
                .into_iter()
                .filter(|id| batch.contains_key(id) && !self.contains(id))
                .collect();
            waiting_on.insert(event_id, in_batch.len());
            for auth_id in in_batch {
                let (auth_id, _) = batch.get_key_value(&auth_id).expect("in the batch");
                dependants.entry(auth_id).or_default().push(event_id);
            }
        }
        let mut ready: BTreeSet<&str> = waiting_on
            .iter()
            .filter(|(_, count)| **count == 0)
            .map(|(id, _)| *id)
            .collect();
        let mut order = Vec::with_capacity(batch.len());
        while let Some(next) = ready.pop_first() {
            order.push(next.to_owned());
            for dependant in dependants.get(next).into_iter().flatten() {
                let count = waiting_on.get_mut(dependant).expect("a batch event");
                *count -= 1;
                if *count == 0 {
                    ready.insert(dependant);
                }
            }
        }
        if order.len() < batch.len() {
            let placed: BTreeSet<&String> = order.iter().collect();
            return Err(StoreError::AuthCycle {
                event_ids: batch
                    .keys()
                    .filter(|id| !placed.contains(id))
                    .cloned()
                    .collect(),
            });
        }
        Ok(order)
    }
}
