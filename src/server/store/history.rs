//! Read paths for the federation endpoints that serve history: `/backfill`,
//! `/get_missing_events`, `/state_ids` (and `/state`), `/event_auth`.
//!
//! Each is a pure read with a bound on its result. Which of the results a requesting server
//! may see is decided by the caller with [`RoomStore::server_may_see`]; these functions return
//! what the DAG holds.
//!
//! Invariants: results are deterministic (ties broken by event id); limits are clamped to the
//! named maxima; events held without state are never walked as part of the DAG.

use super::StoreError;
use super::room::RoomStore;
use crate::proto::pdu::Pdu;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::sync::Arc;

/// The most events one `/backfill` answer holds, whatever the request asks for.
pub const BACKFILL_LIMIT_MAX: usize = 100;

/// The most events one `/get_missing_events` answer holds, whatever the request asks for.
pub const MISSING_EVENTS_LIMIT_MAX: usize = 100;

impl RoomStore {
    /// `/backfill`: the events `from` and those before them, up to `limit`, walking prev
    /// edges from the deepest event down (ties by event id); in that order, newest first.
    pub fn backfill(&self, from: &[String], limit: usize) -> Vec<Arc<Pdu>> {
        let limit = limit.min(BACKFILL_LIMIT_MAX);
        let mut queued: BTreeSet<&str> = BTreeSet::new();
        let mut queue: BinaryHeap<(u64, Reverse<&str>)> = BinaryHeap::new();
        for event_id in from {
            if let Some(depth) = self.dag().depth(event_id)
                && queued.insert(event_id)
            {
                queue.push((depth, Reverse(event_id)));
            }
        }
        let mut events = Vec::new();
        while events.len() < limit {
            let Some((_, Reverse(event_id))) = queue.pop() else {
                break;
            };
            events.push(self.events[event_id].pdu.clone());
            for prev_id in self.dag().prev_events(event_id).into_iter().flatten() {
                if let Some(depth) = self.dag().depth(prev_id)
                    && queued.insert(prev_id)
                {
                    queue.push((depth, Reverse(prev_id)));
                }
            }
        }
        events
    }

    /// `/get_missing_events`: a breadth-first walk of the prev events of `latest`, skipping
    /// (and not walking past) `earliest`, events below `min_depth` and events not held with
    /// state, stopping at `limit`. Within one step of the walk, deeper events come first
    /// (ties by event id). Returned oldest first (by depth, then event id), the order in
    /// which the requester can place them.
    pub fn missing_events(
        &self,
        earliest: &[String],
        latest: &[String],
        limit: usize,
        min_depth: u64,
    ) -> Vec<Arc<Pdu>> {
        let limit = limit.min(MISSING_EVENTS_LIMIT_MAX);
        let mut seen: BTreeSet<&str> = earliest.iter().chain(latest).map(String::as_str).collect();
        let mut frontier: Vec<&str> = latest.iter().map(String::as_str).collect();
        let mut found: Vec<(u64, &str)> = Vec::new();
        while !frontier.is_empty() && found.len() < limit {
            let mut step: Vec<(Reverse<u64>, &str)> = Vec::new();
            for event_id in &frontier {
                for prev_id in self.dag().prev_events(event_id).into_iter().flatten() {
                    if !seen.insert(prev_id) {
                        continue;
                    }
                    match self.dag().depth(prev_id) {
                        Some(depth) if depth >= min_depth => step.push((Reverse(depth), prev_id)),
                        _ => {}
                    }
                }
            }
            step.sort_unstable();
            step.truncate(limit - found.len());
            found.extend(step.iter().map(|(Reverse(depth), id)| (*depth, *id)));
            frontier = step.into_iter().map(|(_, id)| id).collect();
        }
        found.sort_unstable();
        found
            .into_iter()
            .map(|(_, event_id)| self.events[event_id].pdu.clone())
            .collect()
    }

    /// `/state_ids`: the ids of the state before `event_id` and of its auth chain.
    pub fn state_ids_at(&self, event_id: &str) -> Result<(Vec<String>, Vec<String>), StoreError> {
        let record = self
            .events
            .get(event_id)
            .ok_or_else(|| StoreError::UnknownEvent {
                event_id: event_id.to_owned(),
            })?;
        let state = record.state().ok_or_else(|| StoreError::NoState {
            event_id: event_id.to_owned(),
        })?;
        let state_ids: Vec<String> = self.groups.state(state.before).into_values().collect();
        let auth_chain_ids = self.auth_chain_ids(&state_ids);
        Ok((state_ids, auth_chain_ids))
    }

    /// The auth chain of `event_ids`: every held event reached through one or more
    /// `auth_events` edges (in room v12 the create event too, which is implied rather than
    /// cited), in the order the store learnt them, so each comes after its own auth events.
    pub fn auth_chain_ids(&self, event_ids: &[String]) -> Vec<String> {
        let mut reached: BTreeSet<&str> = BTreeSet::new();
        let mut queue: Vec<&str> = event_ids
            .iter()
            .flat_map(|event_id| self.cited_auth_ids(event_id))
            .collect();
        while let Some(next) = queue.pop() {
            if self.events.contains_key(next) && reached.insert(next) {
                queue.extend(self.cited_auth_ids(next));
            }
        }
        let implied = self.implied_create_id().filter(|create_id| {
            self.events.contains_key(create_id) && event_ids.iter().any(|id| id != create_id)
        });
        reached.extend(implied);
        let mut chain: Vec<(u64, &str)> = reached
            .into_iter()
            .map(|event_id| (self.events[event_id].sequence(), event_id))
            .collect();
        chain.sort_unstable();
        chain.into_iter().map(|(_, id)| id.to_owned()).collect()
    }

    /// The auth events an event held by the store lists (none for an unknown event).
    fn cited_auth_ids(&self, event_id: &str) -> impl Iterator<Item = &str> {
        self.events
            .get(event_id)
            .into_iter()
            .flat_map(|record| record.pdu.event().auth_events.iter().map(String::as_str))
    }

    /// `/event_auth`: the events of the auth chain of `event_ids`, each after its own auth
    /// events.
    pub fn auth_chain(&self, event_ids: &[String]) -> Vec<Arc<Pdu>> {
        self.auth_chain_ids(event_ids)
            .iter()
            .map(|event_id| self.events[event_id.as_str()].pdu.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::server::store::test_support::*;
    use crate::server::store::testkit::RoomBuilder;

    #[test]
    fn repeated_and_unknown_starting_points_are_ignored() {
        let mut room = RoomBuilder::standard(v("11"), ALICE);
        let last = room.message(ALICE, "x").event_id().to_owned();
        let store = store_with_all(&room);
        let from = [last.clone(), last.clone(), "$unknown".to_owned()];
        let events = store.backfill(&from, 3);
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].event_id(), last);
        assert!(
            store
                .missing_events(&[], &["$unknown".to_owned()], 5, 0)
                .is_empty()
        );
        assert!(store.auth_chain_ids(&["$unknown".to_owned()]).is_empty());
    }

    #[test]
    fn the_create_event_has_an_empty_auth_chain_even_when_implied() {
        let room = RoomBuilder::standard(v("12"), ALICE);
        let store = store_with_all(&room);
        let create = room.create_event().event_id().to_owned();
        assert!(
            store
                .auth_chain_ids(std::slice::from_ref(&create))
                .is_empty()
        );
        let join = room.built()[1].event_id().to_owned();
        assert_eq!(store.auth_chain_ids(&[join]), [create]);
    }
}
