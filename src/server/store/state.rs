//! State before an event, resolution at merges, and the room's current state.
//!
//! The state before an event is the state after its single prev event, shared as the same
//! group; at a merge, the resolution of the states after its prev events, by the room
//! version's algorithm. Current state is the resolution of the forward extremities' states.
//! Resolutions are memoised by the sorted set of input groups, so two events merging the same
//! states, or current state after a merge event, cost one resolution.
//!
//! Invariants: a remembered resolution is not recomputed (the memo holds the latest
//! [`MERGES_REMEMBERED`]); `current_state` always equals the
//! full state of `current_group`, kept by applying a delta when the new group's parent is the
//! old one, and by reading the group whole otherwise.

use super::StoreError;
use super::room::RoomStore;
use super::state_groups::{StateGroupId, apply_entries};
use super::views::EventsView;
use crate::proto::event::{Event, StateMap};
use crate::proto::room_version::StateResAlgorithm;
use crate::proto::state_res::{ResolveError, resolve};

/// How many merges a room's store remembers (the group each gave, by its input groups), the
/// oldest forgotten first. A merge is asked for again soon after it is made (current state
/// over the extremities, then the next event citing them), and a forgotten one is resolved
/// again to the same state. At a thousand servers every event makes a merge at every server:
/// unbounded, the memo grew by an entry per event per server.
pub(super) const MERGES_REMEMBERED: usize = 1024;

impl RoomStore {
    /// The group of the empty state (the state before the create event), made on first use.
    pub(super) fn empty_group(&mut self) -> StateGroupId {
        match self.empty_group {
            Some(group) => group,
            None => {
                let group = self.groups.add_snapshot(&StateMap::new());
                self.empty_group = Some(group);
                group
            }
        }
    }

    /// The state after an event held with state.
    pub(super) fn group_after(&self, event_id: &str) -> StateGroupId {
        self.events[event_id]
            .state()
            .expect("only events held with state are asked for their state after")
            .after
    }

    /// The group of the state before `event`, whose prev events are all held with state.
    pub(super) fn state_before_from_prevs(
        &mut self,
        event: &Event,
    ) -> Result<StateGroupId, StoreError> {
        let groups: Vec<StateGroupId> = event
            .prev_events
            .iter()
            .map(|prev_id| self.group_after(prev_id))
            .collect();
        self.merge_groups(groups)
            .map_err(|error| StoreError::Resolve {
                event_id: event.event_id.clone(),
                error,
            })
    }

    /// One group for the state that merges `groups`: the empty state for none, the group
    /// itself for one, a (memoised) resolution for more.
    pub(super) fn merge_groups(
        &mut self,
        mut groups: Vec<StateGroupId>,
    ) -> Result<StateGroupId, ResolveError> {
        groups.sort_unstable();
        groups.dedup();
        match groups.as_slice() {
            [] => Ok(self.empty_group()),
            [only] => Ok(*only),
            _ => self.resolve_groups(groups),
        }
    }

    fn resolve_groups(&mut self, groups: Vec<StateGroupId>) -> Result<StateGroupId, ResolveError> {
        if let Some(resolved) = self.resolutions.get(groups.as_slice()) {
            return Ok(*resolved);
        }
        let group = match self.version.state_res {
            StateResAlgorithm::V1 => self.resolve_full_groups(&groups)?,
            StateResAlgorithm::V2 | StateResAlgorithm::V2_1 => {
                self.resolve_groups_by_conflicts(&groups)?
            }
        };
        self.resolutions.insert(groups.into(), group);
        Ok(group)
    }

    /// Resolves the groups' full states (v1 has no unconflicted state map to start from).
    fn resolve_full_groups(
        &mut self,
        groups: &[StateGroupId],
    ) -> Result<StateGroupId, ResolveError> {
        let states: Vec<StateMap> = groups.iter().map(|id| self.groups.state(*id)).collect();
        let resolved = self.resolve_state_sets(&states)?;
        let candidates: Vec<(StateGroupId, &StateMap)> =
            groups.iter().copied().zip(states.iter()).collect();
        Ok(self.groups.add_state(&resolved, &candidates))
    }

    /// Resolves state sets over the events of this room, with the room version's algorithm.
    /// Also for the server, which resolves the states that peers report at the prev events it
    /// could not fetch, before it places an event with [`RoomStore::ingest_with_state`].
    pub fn resolve_state_sets(&self, state_sets: &[StateMap]) -> Result<StateMap, ResolveError> {
        let events = EventsView {
            events: &self.events,
        };
        let resolved = resolve(self.version, self.version.state_res, state_sets, &events)?;
        Ok(resolved.state)
    }

    /// Recomputes current state from the forward extremities after they changed.
    pub(super) fn update_current_state(&mut self) {
        let groups: Vec<StateGroupId> = self
            .dag
            .extremities()
            .iter()
            .map(|event_id| self.group_after(event_id))
            .collect();
        let group = match groups.len() {
            0 => None,
            _ => Some(self.merge_groups(groups).unwrap_or_else(|error| {
                // The extremities are accepted events: their states hold only events the store
                // holds, each with its auth chain, so resolution has everything it needs.
                panic!("resolving the forward extremities' states failed: {error}")
            })),
        };
        if group == self.current_group {
            return;
        }
        match group {
            None => {
                self.current_state.clear();
                self.current_events
                    .rebuild(&self.current_state, &self.events);
            }
            Some(group_id) => {
                let stored = self.groups.group(group_id);
                let moved = if stored.parent().is_some() && stored.parent() == self.current_group {
                    let entries = self.groups.delta_entries(group_id);
                    apply_entries(&mut self.current_state, entries);
                    Some(
                        self.groups
                            .delta_entries(group_id)
                            .map(|(key, _)| key)
                            .collect(),
                    )
                } else {
                    self.current_group.and_then(|current| {
                        self.groups
                            .move_state_keys(&mut self.current_state, current, group_id)
                    })
                };
                match moved {
                    Some(keys) => {
                        for (event_type, state_key) in keys {
                            self.current_events.sync_key(
                                event_type,
                                state_key,
                                &self.current_state,
                                &self.events,
                            );
                        }
                    }
                    None => {
                        self.current_state = self.groups.state(group_id);
                        self.current_events
                            .rebuild(&self.current_state, &self.events);
                    }
                }
            }
        }
        self.current_group = group;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::pdu::Pdu;
    use crate::server::store::test_support::*;
    use crate::server::store::testkit::{EventSpec, RoomBuilder};
    use serde_json::json;
    use std::sync::Arc;

    /// A room where Bob's join is followed by one topic change per text, each citing only
    /// the join: as many forward extremities as texts.
    fn topics_on_a_fork(texts: &[&str]) -> (RoomBuilder, Vec<Arc<Pdu>>) {
        let mut room = RoomBuilder::standard(v("11"), ALICE);
        let fork = room.join(BOB).event_id().to_owned();
        let topics = texts
            .iter()
            .map(|text| {
                room.event(
                    EventSpec::new(ALICE, "m.room.topic")
                        .state_key("")
                        .content(json!({"topic": text}))
                        .prev(&[&fork]),
                )
            })
            .collect();
        (room, topics)
    }

    #[test]
    fn merges_are_memoised_and_current_state_follows_deltas() {
        let (mut room, topics) = topics_on_a_fork(&["a", "b"]);
        let (a, b) = (&topics[0], &topics[1]);
        let mut store = store_with_all(&room);
        let groups = vec![
            store.group_after(a.event_id()),
            store.group_after(b.event_id()),
        ];
        let resolutions = store.resolutions.len();
        let merged = store.merge_groups(groups.clone()).unwrap();
        let reversed: Vec<StateGroupId> = groups.iter().rev().copied().collect();
        assert_eq!(store.merge_groups(reversed).unwrap(), merged);
        assert_eq!(
            store.resolutions.len(),
            resolutions,
            "already resolved for current state"
        );
        assert_eq!(store.current_group, Some(merged));
        assert_eq!(
            store.merge_groups(vec![groups[0], groups[0]]).unwrap(),
            groups[0]
        );
        let empty = store.merge_groups(Vec::new()).unwrap();
        assert!(store.groups.state(empty).is_empty());

        // A message after the merge keeps the group; a state event extends it by one delta.
        let merge = room.message(ALICE, "merge");
        store.ingest(merge.clone(), false).unwrap();
        assert_eq!(store.current_group, Some(merged));
        let name = room.state(ALICE, "m.room.name", json!({"name": "n"}));
        store.ingest(name, false).unwrap();
        let current = store.current_group.unwrap();
        assert_eq!(store.groups.group(current).parent(), Some(merged));
        assert_eq!(store.current_state, store.groups.state(current));
    }

    /// A forgotten merge is resolved again to the same state, and a store whose current
    /// merge was forgotten still checks out.
    #[test]
    fn forgotten_merges_resolve_to_the_same_state() {
        let (room, topics) = topics_on_a_fork(&["a", "b", "c"]);
        let mut store = store_with_all(&room);
        store.resolutions = crate::server::fifo_map::FifoMap::new(1);
        let groups: Vec<StateGroupId> = topics
            .iter()
            .map(|topic| store.group_after(topic.event_id()))
            .collect();
        let (ga, gb, gc) = (groups[0], groups[1], groups[2]);
        let current = store.current_group.unwrap();
        // Another merge takes the memo's one place: the current merge is forgotten.
        let other = store.merge_groups(vec![ga, gb]).unwrap();
        assert_eq!(store.resolutions.len(), 1);
        assert_eq!(store.check_invariants(), Ok(()));
        let again = store.merge_groups(vec![ga, gb, gc]).unwrap();
        assert_eq!(store.groups.state(again), store.groups.state(current));
        assert_eq!(store.groups.state(again), store.current_state);
        assert_ne!(store.groups.state(other), store.current_state);
    }
}
