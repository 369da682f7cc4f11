//! Merging state groups from their differences only: the store's way to resolve state in room
//! versions whose algorithm is v2 or v2.1.
//!
//! Groups that meet at a merge share most of their state: in a room of a thousand members they
//! differ in a few keys. The groups' chains say which keys differ without reading either state
//! whole; the unconflicted state map is then the first group less those keys, read key by key,
//! and whether an event is in its auth chain is found by walking up from the event through the
//! state events that cite it, until one of the map's events (see [`AuthCiters`]). State
//! resolution runs on the conflicted keys only (`state_res::resolve_conflicts`), and the new
//! group is stored as a delta over the group it differs least from, counted over the
//! conflicted keys: the same group [`StateGroups::add_state`] would choose given full states.
//!
//! Invariants: the result is the group of the state that the full algorithm gives for the
//! groups' full states (property test in `tests/store_state_fast_path.rs`); every event the
//! store holds is in the citer index under each of its auth events, once.

use super::records::Records;
use super::room::RoomStore;
use super::shared_resolutions::{ResolutionKey, ResolvedEvents, SharedResolutions};
use super::state_groups::{DeltaEntry, StateGroupId, StateGroups};
use super::state_names::{EventNo, KeyNo};
use super::views::EventsView;
use crate::proto::event::{StateKey, StateMap};
use crate::proto::pdu::Pdu;
use crate::proto::room_version::EventIdFormat;
use crate::proto::state_res::{ResolveError, UnconflictedState, resolve_conflicts};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// For each event, the state events that cite it in their `auth_events`: the auth DAG read
/// upwards. Messages are left out: no event cites them, and no state holds them.
#[derive(Debug, Default)]
pub(super) struct AuthCiters {
    citers: BTreeMap<Arc<str>, Vec<Arc<str>>>,
}

impl AuthCiters {
    /// Notes the auth links of an event stored for the first time, named by the store's
    /// `Arc<str>` of its id; `key_of` gives the store's `Arc<str>` of a held auth event.
    pub(super) fn add(
        &mut self,
        event_id: &Arc<str>,
        pdu: &Pdu,
        key_of: impl Fn(&str) -> Option<Arc<str>>,
    ) {
        let event = pdu.event();
        if !event.is_state() {
            return;
        }
        for auth_id in &event.auth_events {
            // An event is stored after its auth events; one that is not held (a malformed
            // event kept as rejected) cannot lie on a chain the walk needs.
            if let Some(auth) = key_of(auth_id) {
                self.citers.entry(auth).or_default().push(event_id.clone());
            }
        }
    }

    fn of(&self, event_id: &str) -> &[Arc<str>] {
        self.citers.get(event_id).map_or(&[], Vec::as_slice)
    }
}

/// The unconflicted state map of groups being merged: the first group's state less the keys
/// at which the groups differ.
struct GroupsUnconflicted<'a> {
    groups: &'a StateGroups,
    base: StateGroupId,
    /// The numbers of the keys at which the groups differ, sorted.
    conflicted: &'a [KeyNo],
    events: &'a Records,
    citers: &'a AuthCiters,
}

impl GroupsUnconflicted<'_> {
    fn get_of(&self, event_type: &str, state_key: &str) -> Option<&str> {
        let names = self.groups.names();
        let key = names.key_no_of(event_type, state_key)?;
        if self.conflicted.binary_search(&key).is_ok() {
            return None;
        }
        let event = self.groups.get_no(self.base, key)?;
        Some(names.event_id(event))
    }

    /// Whether the event is one of the unconflicted state map's.
    fn holds(&self, event_id: &str) -> bool {
        let Some(record) = self.events.get(event_id) else {
            return false;
        };
        let event = record.pdu.event();
        let Some(state_key) = &event.state_key else {
            return false;
        };
        self.get_of(&event.event_type, state_key) == Some(event_id)
    }
}

impl UnconflictedState for GroupsUnconflicted<'_> {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&str> {
        self.get_of(event_type, state_key)
    }

    /// Walks up from the event through its citers: it is in the map's auth chain exactly when
    /// some event of the map is reached.
    fn in_auth_chain(&self, event_id: &str) -> bool {
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut stack: Vec<&str> = vec![event_id];
        while let Some(current) = stack.pop() {
            for citer in self.citers.of(current) {
                if !seen.insert(citer) {
                    continue;
                }
                if self.holds(citer) {
                    return true;
                }
                stack.push(citer);
            }
        }
        false
    }
}

impl RoomStore {
    /// The group of the resolution of `groups` (sorted, distinct, at least two), found from
    /// the keys at which they differ, through the run's shared resolutions when the store
    /// takes part.
    pub(super) fn resolve_groups_by_conflicts(
        &mut self,
        groups: &[StateGroupId],
    ) -> Result<StateGroupId, ResolveError> {
        let differing = self.groups.differing_numbered(groups);
        if differing.is_empty() {
            // Equal states: the candidate with the smallest id, as `add_state` would pick.
            return Ok(groups[0]);
        }
        let shared = self.shared_resolution_key(groups);
        let found = shared.as_ref().and_then(|(memo, key)| memo.get(key));
        let resolved = match found {
            Some(resolved) => resolved,
            None => {
                let resolved = self.resolve_differing(groups, &differing)?;
                let resolved = self.resolved_events(&resolved);
                if let Some((memo, key)) = shared {
                    memo.insert(key, resolved.clone());
                }
                resolved
            }
        };
        Ok(self.add_resolved(groups, &differing, &resolved))
    }

    /// A resolution's result as the ids of its events, each the `Arc<str>` this store holds
    /// the event by (a resolution picks held events; another id would be copied).
    fn resolved_events(&self, resolved: &StateMap) -> ResolvedEvents {
        resolved
            .values()
            .map(|event_id| match self.events.get_key_value(event_id) {
                Some((held_id, _)) => held_id.clone(),
                None => Arc::from(event_id.as_str()),
            })
            .collect()
    }

    /// The run's shared resolutions and the key of `groups` there, when this store may share
    /// (see `shared_resolutions.rs`): ids are the events' hashes, no event is held redacted,
    /// the authorization rules are enforced.
    fn shared_resolution_key(
        &self,
        groups: &[StateGroupId],
    ) -> Option<(Arc<SharedResolutions>, ResolutionKey)> {
        let memo = self.shared_resolutions.as_ref()?;
        let shares = self.version.event_id_format != EventIdFormat::ServerMade
            && self.auth_rules_enforced
            && self.counts.redacted == 0;
        let digests = groups.iter().map(|id| self.groups.group(*id).digest());
        shares.then(|| (memo.clone(), ResolutionKey::new(self.version.id, digests)))
    }

    /// Resolves the groups' conflicted keys, `differing` (by number, as
    /// [`StateGroups::differing_numbered`] gives them): the resolved state at those keys and
    /// at any key the unconflicted map lacks.
    fn resolve_differing(
        &self,
        groups: &[StateGroupId],
        differing: &[(KeyNo, Vec<Option<EventNo>>)],
    ) -> Result<StateMap, ResolveError> {
        let names = self.groups.names();
        let conflicted_keys: Vec<KeyNo> = differing.iter().map(|(key, _)| *key).collect();
        // Each group's events at the conflicted keys, borrowed, in a state map's key order.
        let sets: Vec<Vec<(&str, &str, &str)>> = (0..groups.len())
            .map(|index| {
                let mut set: Vec<(&str, &str, &str)> = differing
                    .iter()
                    .filter_map(|(key, held)| {
                        let (event_type, state_key) = names.key(*key);
                        Some((
                            event_type.as_str(),
                            state_key.as_str(),
                            names.event_id(held[index]?),
                        ))
                    })
                    .collect();
                set.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
                set
            })
            .collect();
        let unconflicted = GroupsUnconflicted {
            groups: &self.groups,
            base: groups[0],
            conflicted: &conflicted_keys,
            events: &self.events,
            citers: &self.auth_citers,
        };
        let events = EventsView {
            events: &self.events,
        };
        let algorithm = self.version.state_res;
        let resolved = resolve_conflicts(self.version, algorithm, &unconflicted, &sets, &events)?;
        Ok(resolved.state)
    }

    /// Stores the state that is the groups' unconflicted map plus `resolved` (the events of
    /// the result at the keys the map lacks, each at the key of its type and state key),
    /// choosing as `add_state` does: an equal group, else a delta over the closest group when
    /// it is at most half the state, else a snapshot. Works on numbers: a merge at a thousand
    /// servers allocates no names.
    fn add_resolved(
        &mut self,
        groups: &[StateGroupId],
        differing: &[(KeyNo, Vec<Option<EventNo>>)],
        resolved: &[Arc<str>],
    ) -> StateGroupId {
        // The result at each conflicted key, by number, matched to a held event by id, so
        // only events no group holds there are numbered anew; entries at keys the groups do
        // not differ at (rare: keys the unconflicted map lacks) are numbered by name.
        let mut resolved_at: Vec<Option<EventNo>> = vec![None; differing.len()];
        let mut unnumbered: Vec<(usize, &str)> = Vec::new();
        let mut others: Vec<(StateKey, &str)> = Vec::new();
        let names = self.groups.names();
        for event_id in resolved {
            let Some(record) = self.events.get(event_id) else {
                continue;
            };
            let event = record.pdu.event();
            let Some(state_key) = event.state_key.as_deref() else {
                continue;
            };
            let conflicted = names
                .key_no_of(&event.event_type, state_key)
                .and_then(|key| differing.binary_search_by_key(&key, |(held, _)| *held).ok());
            let Some(index) = conflicted else {
                others.push(((event.event_type.clone(), state_key.to_owned()), event_id));
                continue;
            };
            let held_event = differing[index]
                .1
                .iter()
                .flatten()
                .find(|event| names.event_id(**event) == &**event_id);
            match held_event {
                Some(held) => resolved_at[index] = Some(*held),
                None => unnumbered.push((index, event_id)),
            }
        }
        for (index, event_id) in unnumbered {
            resolved_at[index] = Some(self.groups.number_event(event_id));
        }
        let added: Vec<DeltaEntry> = others
            .into_iter()
            .map(|(key, event_id)| {
                let (key, event) = self.groups.number_entry(&key, event_id);
                (key, Some(event))
            })
            .collect();
        // Each candidate's delta is counted first and only the closest one's is built.
        let delta_len = |index: usize| {
            let changed = differing
                .iter()
                .zip(&resolved_at)
                .filter(|((_, held), new)| **new != held[index])
                .count();
            changed + added.len()
        };
        let base_len = self.groups.group(groups[0]).state_len();
        let base_conflicted = differing
            .iter()
            .filter(|(_, held)| held[0].is_some())
            .count();
        let state_len = base_len - base_conflicted + resolved.len();
        let closest = (0..groups.len())
            .min_by_key(|&index| (delta_len(index), groups[index]))
            .expect("at least two groups are merged");
        let parent = groups[closest];
        let changed = differing
            .iter()
            .zip(&resolved_at)
            .filter_map(|((key, held), new)| (*new != held[closest]).then_some((*key, *new)));
        let mut delta: Vec<DeltaEntry> = changed.chain(added.iter().copied()).collect();
        delta.sort_unstable_by_key(|(key, _)| *key);
        debug_assert_eq!(delta.len(), delta_len(closest));
        if delta.is_empty() {
            return parent;
        }
        if delta.len() <= state_len / 2 {
            return self.groups.add_delta_entries(parent, delta);
        }
        self.groups.add_snapshot_over(parent, &delta)
    }
}
