//! State groups: the state of a room at many points, held as deltas instead of full copies.
//!
//! A group is either a *snapshot* (no parent, its delta is the whole state) or a *delta* over a
//! parent group: for each changed key, the new event, or `None` where the key was removed
//! (state resolution can drop a key). Events that do not change state share their group, so a
//! room of messages holds one group per state change, not one map per event.
//!
//! Memory: every server holds its own groups, so a group keeps its delta as a boxed slice of
//! numbered entries (a key's and an event's number in the room, see [`StateNames`]), 8 bytes
//! each, sorted by key number. Answers leave as maps keyed by the strings, so the numbers'
//! order never reaches results.
//!
//! Invariants:
//! - Parents always have smaller ids than their children, so every parent chain ends, at a
//!   snapshot.
//! - A chain holds at most `snapshot_interval` deltas above its snapshot: a group that would
//!   exceed it is stored as a snapshot. A lookup therefore reads at most that many deltas.
//! - Groups are never changed once added; each stored delta is sorted by key number without
//!   duplicates.
//! - A group's digest is that of the set of its full state's event ids, kept from its
//!   parent's by the delta (so equal states have equal digests on every server).

use super::set_digest::SetDigest;
use super::state_names::{EventNo, KeyNo, StateNames};
use crate::proto::event::{StateKey, StateMap};
use std::collections::BTreeMap;

/// The id of a state group; ids are dense and given in creation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StateGroupId(pub u32);

/// How many deltas a chain may hold above its snapshot, unless told otherwise. Bounds a lookup
/// to that many delta reads; each snapshot costs one full copy of the state.
pub const SNAPSHOT_INTERVAL_DEFAULT: usize = 64;

/// Changes to a state: the new event id for each key, or `None` for a removed key.
pub type StateDelta = BTreeMap<StateKey, Option<String>>;

/// One stored entry of a delta: a key's number and its new event's, or `None` where the key
/// was removed.
pub type DeltaEntry = (KeyNo, Option<EventNo>);

/// One state group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateGroup {
    parent: Option<StateGroupId>,
    /// Sorted by key number, no key twice.
    delta: Box<[DeltaEntry]>,
    /// How many deltas lie between this group and its snapshot (0 for a snapshot).
    deltas_above_snapshot: u32,
    /// How many keys the group's full state holds.
    state_len: u32,
    /// The digest of the set of event ids of the group's full state: equal digests, equal
    /// states (an event id names one event, hence one key, in rooms v3 on), whichever server
    /// holds the groups and however they were made.
    digest: SetDigest,
}

impl StateGroup {
    pub fn parent(&self) -> Option<StateGroupId> {
        self.parent
    }

    /// The group's changes over its parent (its whole state for a snapshot), numbered.
    pub fn delta(&self) -> &[DeltaEntry] {
        &self.delta
    }

    /// The entry of `key` in this group's delta, if it changes it.
    fn entry(&self, key: KeyNo) -> Option<Option<EventNo>> {
        find_entry(&self.delta, key)
    }

    pub fn is_snapshot(&self) -> bool {
        self.parent.is_none()
    }

    /// How many keys the group's full state holds.
    pub fn state_len(&self) -> usize {
        self.state_len as usize
    }

    /// The digest of the event ids of the group's full state.
    pub fn digest(&self) -> SetDigest {
        self.digest
    }
}

/// Every state group of a room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateGroups {
    groups: Vec<StateGroup>,
    names: StateNames,
    snapshot_interval: u32,
    /// For each snapshot stored only because a delta's chain would have grown too long: the
    /// parent and the delta it stands for. The groups' lineage then stays one tree across
    /// snapshots, so merging groups on both sides of one reads their differences only.
    lineage: BTreeMap<StateGroupId, (StateGroupId, Box<[DeltaEntry]>)>,
}

impl Default for StateGroups {
    fn default() -> Self {
        Self::new(SNAPSHOT_INTERVAL_DEFAULT)
    }
}

impl StateGroups {
    /// An empty set of groups; `snapshot_interval` must be at least 1.
    pub fn new(snapshot_interval: usize) -> Self {
        assert!(
            snapshot_interval >= 1,
            "a snapshot interval of 0 allows no delta"
        );
        Self {
            groups: Vec::new(),
            names: StateNames::default(),
            lineage: BTreeMap::new(),
            snapshot_interval: u32::try_from(snapshot_interval).unwrap_or(u32::MAX),
        }
    }

    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    pub fn group(&self, id: StateGroupId) -> &StateGroup {
        &self.groups[id.0 as usize]
    }

    /// Adds a snapshot holding `state` whole.
    pub fn add_snapshot(&mut self, state: &StateMap) -> StateGroupId {
        let entries = state
            .iter()
            .map(|(key, event_id)| {
                let event = self.names.number_event(event_id);
                (self.names.number_key(key), Some(event))
            })
            .collect();
        self.add_snapshot_entries(entries)
    }

    /// Adds a snapshot of the entries of a whole state (no removals), in any order.
    fn add_snapshot_entries(&mut self, entries: Vec<DeltaEntry>) -> StateGroupId {
        let digest = SetDigest::of(
            entries
                .iter()
                .filter_map(|(_, event)| Some(self.names.event_id((*event)?))),
        );
        self.add_snapshot_with_digest(entries, digest)
    }

    /// As [`StateGroups::add_snapshot_entries`], given the digest of the state.
    fn add_snapshot_with_digest(
        &mut self,
        mut entries: Vec<DeltaEntry>,
        digest: SetDigest,
    ) -> StateGroupId {
        entries.sort_unstable_by_key(|(key, _)| *key);
        debug_assert!(entries.iter().all(|(_, event)| event.is_some()));
        let state_len = len_u32(entries.len());
        self.push(StateGroup {
            parent: None,
            delta: entries.into_boxed_slice(),
            deltas_above_snapshot: 0,
            state_len,
            digest,
        })
    }

    /// Adds the state of `parent` changed by `delta`; stored as a snapshot when the chain would
    /// grow past the interval.
    pub fn add_delta(&mut self, parent: StateGroupId, delta: StateDelta) -> StateGroupId {
        let mut entries: Vec<DeltaEntry> = delta
            .iter()
            .map(|(key, entry)| {
                let event = entry
                    .as_deref()
                    .map(|event_id| self.names.number_event(event_id));
                (self.names.number_key(key), event)
            })
            .collect();
        entries.sort_unstable_by_key(|(key, _)| *key);
        self.add_delta_entries(parent, entries)
    }

    /// As [`StateGroups::add_delta`], given the delta as numbered entries sorted by key
    /// number, no key twice.
    pub(super) fn add_delta_entries(
        &mut self,
        parent: StateGroupId,
        entries: Vec<DeltaEntry>,
    ) -> StateGroupId {
        debug_assert!(entries.windows(2).all(|pair| pair[0].0 < pair[1].0));
        let mut state_len = self.group(parent).state_len;
        let mut digest = self.group(parent).digest;
        for (key, entry) in &entries {
            let old = self.get_no(parent, *key);
            match (old.is_some(), entry.is_some()) {
                (false, true) => state_len += 1,
                (true, false) => state_len -= 1,
                _ => {}
            }
            if old != *entry {
                if let Some(old) = old {
                    digest.remove(self.names.event_id(old));
                }
                if let Some(new) = entry {
                    digest.add(self.names.event_id(*new));
                }
            }
        }
        let deltas_above_snapshot = self.group(parent).deltas_above_snapshot + 1;
        if deltas_above_snapshot > self.snapshot_interval {
            let state = apply_numbered(self.full_entries(parent), &entries);
            let snapshot = self.add_snapshot_with_digest(state, digest);
            self.lineage
                .insert(snapshot, (parent, entries.into_boxed_slice()));
            return snapshot;
        }
        self.push(StateGroup {
            parent: Some(parent),
            delta: entries.into_boxed_slice(),
            deltas_above_snapshot,
            state_len,
            digest,
        })
    }

    /// The group holding `state`: a candidate (group ids with their full states) equal to it,
    /// else a new delta over the candidate it differs least from, or a new snapshot when none
    /// is close (a delta bigger than half the state saves too little to be worth a longer
    /// chain).
    pub fn add_state(
        &mut self,
        state: &StateMap,
        candidates: &[(StateGroupId, &StateMap)],
    ) -> StateGroupId {
        // Counted before any delta is built: only the closest candidate's is needed, and the
        // others can differ in most of a large state.
        let closest = candidates
            .iter()
            .map(|(id, candidate)| (diff_len(candidate, state), *id))
            .min()
            .map(|(_, id)| {
                let candidate = candidates
                    .iter()
                    .find(|(candidate_id, _)| *candidate_id == id)
                    .map(|(_, candidate)| *candidate)
                    .expect("the closest is a candidate");
                (diff(candidate, state), id)
            });
        match closest {
            Some((delta, equal)) if delta.is_empty() => equal,
            Some((delta, parent)) if delta.len() <= state.len() / 2 => {
                self.add_delta(parent, delta)
            }
            _ => self.add_snapshot(state),
        }
    }

    /// The number of an event, numbering it if new.
    pub(super) fn number_event(&mut self, event_id: &str) -> EventNo {
        self.names.number_event(event_id)
    }

    /// The numbers of a key and an event, numbering them if new.
    pub(super) fn number_entry(&mut self, key: &StateKey, event_id: &str) -> (KeyNo, EventNo) {
        (
            self.names.number_key(key),
            self.names.number_event(event_id),
        )
    }

    /// Adds a snapshot of the state of `parent` changed by `delta` (numbered entries).
    pub(super) fn add_snapshot_over(
        &mut self,
        parent: StateGroupId,
        delta: &[DeltaEntry],
    ) -> StateGroupId {
        let state = apply_numbered(self.full_entries(parent), delta);
        self.add_snapshot_entries(state)
    }

    /// The event holding `key` in group `id`.
    pub fn get(&self, id: StateGroupId, key: &StateKey) -> Option<&str> {
        let event = self.get_no(id, self.names.key_no(key)?)?;
        Some(self.names.event_id(event))
    }

    /// The event holding (`event_type`, `state_key`) in group `id`, read without building
    /// the key.
    pub fn get_of(&self, id: StateGroupId, event_type: &str, state_key: &str) -> Option<&str> {
        let key = self.names.key_no_of(event_type, state_key)?;
        let event = self.get_no(id, key)?;
        Some(self.names.event_id(event))
    }

    /// The numbers of the keys and events the groups hold.
    pub fn names(&self) -> &StateNames {
        &self.names
    }

    /// The event holding key number `key` in group `id`.
    pub fn get_no(&self, id: StateGroupId, key: KeyNo) -> Option<EventNo> {
        let mut current = Some(id);
        while let Some(group_id) = current {
            let group = self.group(group_id);
            if let Some(entry) = group.entry(key) {
                return entry;
            }
            current = group.parent;
        }
        None
    }

    /// The deltas that make up group `id`, from the group itself down to its snapshot, each
    /// as its keys and events: the first entry of a key met on the way is its value in the
    /// group.
    pub fn chain(
        &self,
        id: StateGroupId,
    ) -> impl Iterator<Item = impl Iterator<Item = (&StateKey, Option<&str>)>> {
        self.chain_numbered(id)
            .map(|delta| delta.iter().map(|entry| self.named(*entry)))
    }

    /// The group's own delta over its parent (its whole state for a snapshot), named.
    pub fn delta_entries(
        &self,
        id: StateGroupId,
    ) -> impl Iterator<Item = (&StateKey, Option<&str>)> {
        self.group(id).delta.iter().map(|entry| self.named(*entry))
    }

    fn named(&self, (key, event): DeltaEntry) -> (&StateKey, Option<&str>) {
        let event_id = event.map(|event| self.names.event_id(event));
        (self.names.key(key), event_id)
    }

    fn chain_numbered(&self, id: StateGroupId) -> impl Iterator<Item = &[DeltaEntry]> {
        std::iter::successors(Some(self.group(id)), |group| {
            group.parent.map(|parent| self.group(parent))
        })
        .map(|group| &*group.delta)
    }

    /// The full state of group `id`.
    pub fn state(&self, id: StateGroupId) -> StateMap {
        self.full_entries(id)
            .into_iter()
            .map(|entry| {
                let (key, event_id) = self.named(entry);
                let event_id = event_id.expect("a full state holds no removals");
                (key.clone(), event_id.to_owned())
            })
            .collect()
    }

    /// The full state of group `id` as numbered entries, sorted by key number.
    fn full_entries(&self, id: StateGroupId) -> Vec<DeltaEntry> {
        let mut entries = nearest_entries(self.chain_numbered(id));
        entries.retain(|(_, event)| event.is_some());
        entries
    }

    /// Turns `state`, the full state of group `from`, into that of group `to` by the keys
    /// changed on the way through their nearest common ancestor, without reading either
    /// state whole. `false` (and `state` untouched) when the two lineages share no group.
    pub fn move_state(&self, state: &mut StateMap, from: StateGroupId, to: StateGroupId) -> bool {
        self.move_state_keys(state, from, to).is_some()
    }

    /// As [`StateGroups::move_state`], returning the keys read (a superset of those changed),
    /// or `None` when the groups share no ancestor and `state` was left alone.
    pub fn move_state_keys(
        &self,
        state: &mut StateMap,
        from: StateGroupId,
        to: StateGroupId,
    ) -> Option<Vec<&StateKey>> {
        let common = self.common_ancestor(&[from, to])?;
        let mut keys: Vec<KeyNo> = [from, to]
            .into_iter()
            .flat_map(|top| self.path_below(top, common))
            .flat_map(|id| self.lineage_delta(id).iter().map(|(key, _)| *key))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let mut names = Vec::with_capacity(keys.len());
        for key in keys {
            let name = self.names.key(key);
            names.push(name);
            match self.get_no(to, key) {
                Some(event) => {
                    let event_id = self.names.event_id(event);
                    if state.get(name).map(String::as_str) != Some(event_id) {
                        state.insert(name.clone(), event_id.to_owned());
                    }
                }
                None => {
                    state.remove(name);
                }
            }
        }
        Some(names)
    }

    /// The keys at which `groups` do not all hold the same event, with the event each group
    /// holds there (`None` where it lacks the key), in the order of `groups`. Reads only the
    /// keys changed below the groups' nearest common ancestor, when their chains share one.
    pub fn differing_keys(
        &self,
        groups: &[StateGroupId],
    ) -> BTreeMap<StateKey, Vec<Option<String>>> {
        self.name_differing(&self.differing_numbered(groups))
    }

    /// Differing keys by number (as [`StateGroups::differing_numbered`] gives them), named.
    pub fn name_differing(
        &self,
        differing: &[(KeyNo, Vec<Option<EventNo>>)],
    ) -> BTreeMap<StateKey, Vec<Option<String>>> {
        differing
            .iter()
            .map(|(key, held)| {
                let held = held
                    .iter()
                    .map(|event| event.map(|event| self.names.event_id(event).to_owned()))
                    .collect();
                (self.names.key(*key).clone(), held)
            })
            .collect()
    }

    /// [`StateGroups::differing_keys`] by number, sorted by key number.
    pub fn differing_numbered(
        &self,
        groups: &[StateGroupId],
    ) -> Vec<(KeyNo, Vec<Option<EventNo>>)> {
        let Some(common) = self.common_ancestor(groups) else {
            let states: Vec<Vec<DeltaEntry>> =
                groups.iter().map(|id| self.full_entries(*id)).collect();
            return differing_of_states(&states);
        };
        if groups.len() <= MASK_GROUPS_MAX {
            return self.differing_by_tree(groups, common);
        }
        self.differing_by_paths(groups, common)
    }

    /// [`StateGroups::differing_numbered`] for groups below `common`, reading each group
    /// between them and `common` once: the groups are visited from the newest down (a parent
    /// always has a smaller id than its child), each with the set of `groups` it lies below, so
    /// the history the groups share is read once, not once per group. A key's first entry met
    /// for a group is the nearest on its way down, hence its value there.
    fn differing_by_tree(
        &self,
        groups: &[StateGroupId],
        common: StateGroupId,
    ) -> Vec<(KeyNo, Vec<Option<EventNo>>)> {
        debug_assert!(groups.len() <= MASK_GROUPS_MAX);
        // Most keys get one value for every group (they changed in the shared history): the
        // first value is held inline, any later ones in `more`, so such keys cost no vector.
        let mut seen: BTreeMap<KeyNo, KeyBelow> = BTreeMap::new();
        let mut more: Vec<(KeyNo, u64, Option<EventNo>)> = Vec::new();
        let mut frontier: BTreeMap<StateGroupId, u64> = BTreeMap::new();
        for (index, top) in groups.iter().enumerate() {
            *frontier.entry(*top).or_default() |= 1 << index;
        }
        while let Some((id, below)) = frontier.pop_last() {
            if id == common {
                continue;
            }
            for (key, event) in self.lineage_delta(id) {
                let seen = seen.entry(*key).or_insert(KeyBelow {
                    given: 0,
                    first: *event,
                    first_to: 0,
                    more: false,
                });
                let new = below & !seen.given;
                if new == 0 {
                    continue;
                }
                if seen.given == 0 {
                    (seen.first, seen.first_to) = (*event, new);
                } else {
                    seen.more = true;
                    more.push((*key, new, *event));
                }
                seen.given |= new;
            }
            let parent = self
                .lineage_parent(id)
                .expect("every group between the groups and their common ancestor has a parent");
            *frontier.entry(parent).or_default() |= below;
        }
        let all = u64::MAX >> (u64::BITS as usize - groups.len());
        let gaps: Vec<KeyNo> = seen
            .iter()
            .filter(|(_, seen)| seen.given != all)
            .map(|(key, _)| *key)
            .collect();
        let at_common = self.get_many_numbered(common, gaps);
        // Stable: a key's later values keep the order they were met in.
        more.sort_by_key(|(key, _, _)| *key);
        let mut more = more.into_iter().peekable();
        let mut differing = Vec::new();
        for (key, seen) in seen {
            let unchanged = (seen.given != all).then(|| {
                find_entry(&at_common, key)
                    .expect("a key unchanged below the ancestor is read there")
            });
            if !seen.more && unchanged.is_none_or(|unchanged| unchanged == seen.first) {
                continue;
            }
            let mut held: Vec<Option<EventNo>> = vec![unchanged.flatten(); groups.len()];
            let mut give = |to: u64, event: Option<EventNo>| {
                for (index, slot) in held.iter_mut().enumerate() {
                    if to & (1 << index) != 0 {
                        *slot = event;
                    }
                }
            };
            give(seen.first_to, seen.first);
            while let Some((_, to, event)) = more.next_if(|(more_key, _, _)| *more_key == key) {
                give(to, event);
            }
            if held.iter().any(|event| *event != held[0]) {
                differing.push((key, held));
            }
        }
        differing
    }

    /// [`StateGroups::differing_numbered`] for groups below `common`, reading each group's way
    /// down to `common` on its own (for more groups than [`MASK_GROUPS_MAX`]).
    fn differing_by_paths(
        &self,
        groups: &[StateGroupId],
        common: StateGroupId,
    ) -> Vec<(KeyNo, Vec<Option<EventNo>>)> {
        // Each group's entries below the common ancestor, the nearest entry of a key winning.
        let below: Vec<Vec<DeltaEntry>> = groups
            .iter()
            .map(|&top| {
                nearest_entries(
                    self.path_below(top, common)
                        .map(|id| self.lineage_delta(id)),
                )
            })
            .collect();
        let changed = keys_of_all(&below);
        let unchanged_somewhere = changed
            .iter()
            .copied()
            .filter(|key| below.iter().any(|held| find_entry(held, *key).is_none()));
        let at_common = self.get_many_numbered(common, unchanged_somewhere.collect());
        changed
            .into_iter()
            .filter_map(|key| {
                let held: Vec<Option<EventNo>> = below
                    .iter()
                    .map(|held| {
                        find_entry(held, key)
                            .or_else(|| find_entry(&at_common, key))
                            .expect("a key unchanged below the ancestor is read there")
                    })
                    .collect();
                let differ = held.iter().any(|event| *event != held[0]);
                differ.then_some((key, held))
            })
            .collect()
    }

    /// The events holding `keys` (sorted, distinct) in group `id`, read in one walk down its
    /// chain, sorted by key number.
    fn get_many_numbered(&self, id: StateGroupId, mut pending: Vec<KeyNo>) -> Vec<DeltaEntry> {
        let mut found = Vec::with_capacity(pending.len());
        for delta in self.chain_numbered(id) {
            if pending.is_empty() {
                break;
            }
            pending.retain(|key| match find_entry(delta, *key) {
                Some(entry) => {
                    found.push((*key, entry));
                    false
                }
                None => true,
            });
        }
        found.extend(pending.into_iter().map(|key| (key, None)));
        found.sort_unstable_by_key(|(key, _)| *key);
        found
    }

    /// The nearest group that is in the lineage of every one of `groups` (each included).
    fn common_ancestor(&self, groups: &[StateGroupId]) -> Option<StateGroupId> {
        let (first, others) = groups.split_first()?;
        others.iter().try_fold(*first, |common, other| {
            // A parent always has a smaller id than its child: step down from the larger.
            let (mut left, mut right) = (common, *other);
            while left != right {
                if left > right {
                    left = self.lineage_parent(left)?;
                } else {
                    right = self.lineage_parent(right)?;
                }
            }
            Some(left)
        })
    }

    /// `top` and its lineage down to `common` (left out), which must be in that lineage.
    fn path_below(
        &self,
        top: StateGroupId,
        common: StateGroupId,
    ) -> impl Iterator<Item = StateGroupId> + '_ {
        std::iter::successors(Some(top), |id| self.lineage_parent(*id))
            .take_while(move |id| *id != common)
    }

    /// The group's parent, or for a snapshot that stands for a delta, that delta's parent.
    fn lineage_parent(&self, id: StateGroupId) -> Option<StateGroupId> {
        let group = self.group(id);
        group
            .parent
            .or_else(|| self.lineage.get(&id).map(|(parent, _)| *parent))
    }

    /// The changes over [`StateGroups::lineage_parent`]: the delta, or the one a snapshot
    /// stands for (a snapshot without lineage: its whole state).
    fn lineage_delta(&self, id: StateGroupId) -> &[DeltaEntry] {
        let group = self.group(id);
        match (group.parent, self.lineage.get(&id)) {
            (None, Some((_, delta))) => delta,
            _ => &group.delta,
        }
    }

    /// `id` and its lineage, down to the root of its tree.
    #[cfg(test)]
    fn lineage_ids(&self, id: StateGroupId) -> impl Iterator<Item = StateGroupId> + '_ {
        std::iter::successors(Some(id), |id| self.lineage_parent(*id))
    }

    /// Whether `ancestor` is `id` or on its parent chain.
    pub fn descends_from(&self, id: StateGroupId, ancestor: StateGroupId) -> bool {
        let mut current = Some(id);
        while let Some(group_id) = current {
            if group_id == ancestor {
                return true;
            }
            current = self.group(group_id).parent;
        }
        false
    }

    /// Approximate bytes held: the numbered entries of every delta (and of the deltas that
    /// snapshots stand for), each group's fixed part, and the names once.
    pub fn bytes_approx(&self) -> usize {
        const GROUP_OVERHEAD_BYTES: usize = std::mem::size_of::<StateGroup>();
        const ENTRY_BYTES: usize = std::mem::size_of::<DeltaEntry>();
        let entries: usize = self.groups.iter().map(|group| group.delta.len()).sum();
        let lineage: usize = self.lineage.values().map(|(_, delta)| delta.len()).sum();
        (entries + lineage) * ENTRY_BYTES
            + self.groups.len() * GROUP_OVERHEAD_BYTES
            + self.names.bytes_approx()
    }

    /// Checks that every parent has a smaller id (so every chain ends) and that no chain is
    /// longer than the interval; names the first group that breaks it.
    pub fn check_invariants(&self) -> Result<(), String> {
        for (index, group) in self.groups.iter().enumerate() {
            let expected = match group.parent {
                None => 0,
                Some(parent) if (parent.0 as usize) < index => {
                    self.group(parent).deltas_above_snapshot + 1
                }
                Some(parent) => {
                    return Err(format!(
                        "state group {index} has a later parent {}",
                        parent.0
                    ));
                }
            };
            let full = self.full_entries(StateGroupId(len_u32(index)));
            let event_ids = full
                .iter()
                .filter_map(|(_, event)| Some(self.names.event_id((*event)?)));
            if group.digest != SetDigest::of(event_ids) {
                return Err(format!(
                    "state group {index}'s digest is not that of its state"
                ));
            }
            let state_len = full.len();
            if group.state_len() != state_len {
                return Err(format!(
                    "state group {index} says it holds {} keys but holds {state_len}",
                    group.state_len
                ));
            }
            if !group.delta.windows(2).all(|pair| pair[0].0 < pair[1].0) {
                return Err(format!("state group {index} has an unsorted delta"));
            }
            if group.deltas_above_snapshot != expected || expected > self.snapshot_interval {
                return Err(format!(
                    "state group {index} is {} deltas above its snapshot (expected {expected}, \
                     at most {})",
                    group.deltas_above_snapshot, self.snapshot_interval
                ));
            }
        }
        Ok(())
    }

    fn push(&mut self, group: StateGroup) -> StateGroupId {
        let id = StateGroupId(
            u32::try_from(self.groups.len()).expect("fewer than 2^32 state groups per room"),
        );
        // Records read this number as "held without state".
        assert_ne!(id, super::record::NO_STATE_GROUP, "too many state groups");
        if let Some(parent) = group.parent {
            assert!(parent < id, "a state group's parent must come before it");
        }
        self.groups.push(group);
        id
    }
}

/// A key changed below the groups' common ancestor, in [`StateGroups::differing_numbered`]:
/// the groups (one bit each) given a value so far, the first value given and to which groups,
/// and whether other values were given to others.
struct KeyBelow {
    given: u64,
    first: Option<EventNo>,
    first_to: u64,
    more: bool,
}

/// How many groups [`StateGroups::differing_numbered`] tells apart with one bit each.
const MASK_GROUPS_MAX: usize = u64::BITS as usize;

/// The entry of `key` in a delta sorted by key number.
fn find_entry(delta: &[DeltaEntry], key: KeyNo) -> Option<Option<EventNo>> {
    delta
        .binary_search_by_key(&key, |(held, _)| *held)
        .ok()
        .map(|index| delta[index].1)
}

/// The entries of deltas given nearest first, the nearest entry of each key winning, sorted
/// by key number (removals kept).
fn nearest_entries<'a>(deltas: impl Iterator<Item = &'a [DeltaEntry]>) -> Vec<DeltaEntry> {
    let mut entries: Vec<DeltaEntry> = deltas.flatten().copied().collect();
    // Stable: of a key's entries, the nearest stays first and is the one kept.
    entries.sort_by_key(|(key, _)| *key);
    entries.dedup_by_key(|(key, _)| *key);
    entries
}

/// A whole state (sorted by key number) changed by a delta (sorted by key number), as the
/// entries of the new whole state in any order.
fn apply_numbered(state: Vec<DeltaEntry>, delta: &[DeltaEntry]) -> Vec<DeltaEntry> {
    let mut applied: Vec<DeltaEntry> = state
        .into_iter()
        .filter(|(key, _)| find_entry(delta, *key).is_none())
        .collect();
    applied.extend(delta.iter().filter(|(_, event)| event.is_some()));
    applied
}

/// Every key that any of the entry lists names, sorted by number, once each.
fn keys_of_all(lists: &[Vec<DeltaEntry>]) -> Vec<KeyNo> {
    let mut keys: Vec<KeyNo> = lists
        .iter()
        .flat_map(|entries| entries.iter().map(|(key, _)| *key))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// [`StateGroups::differing_keys`] of states held whole (each sorted by key number).
fn differing_of_states(states: &[Vec<DeltaEntry>]) -> Vec<(KeyNo, Vec<Option<EventNo>>)> {
    keys_of_all(states)
        .into_iter()
        .filter_map(|key| {
            let held: Vec<Option<EventNo>> = states
                .iter()
                .map(|state| find_entry(state, key).flatten())
                .collect();
            let differ = held.iter().any(|event| *event != held[0]);
            differ.then_some((key, held))
        })
        .collect()
}

fn len_u32(len: usize) -> u32 {
    u32::try_from(len).expect("fewer than 2^32 keys in a state")
}

/// Applies `delta` to `state`.
pub fn apply_delta(state: &mut StateMap, delta: &StateDelta) {
    apply_entries(
        state,
        delta.iter().map(|(key, entry)| (key, entry.as_deref())),
    );
}

/// Applies delta entries (of a map, or of a stored group) to `state`.
pub fn apply_entries<'a>(
    state: &mut StateMap,
    entries: impl IntoIterator<Item = (&'a StateKey, Option<&'a str>)>,
) {
    for (key, entry) in entries {
        match entry {
            Some(event_id) => {
                state.insert(key.clone(), event_id.to_owned());
            }
            None => {
                state.remove(key);
            }
        }
    }
}

/// How many entries [`diff`] would hold, found in one merge of the two sorted maps without
/// building it.
pub fn diff_len(from: &StateMap, to: &StateMap) -> usize {
    let (mut from, mut to) = (from.iter().peekable(), to.iter().peekable());
    let mut count = 0;
    loop {
        match (from.peek(), to.peek()) {
            (None, None) => return count,
            (Some(_), None) => {
                count += from.count();
                return count;
            }
            (None, Some(_)) => {
                count += to.count();
                return count;
            }
            (Some((from_key, from_id)), Some((to_key, to_id))) => match from_key.cmp(to_key) {
                std::cmp::Ordering::Less => {
                    count += 1;
                    from.next();
                }
                std::cmp::Ordering::Greater => {
                    count += 1;
                    to.next();
                }
                std::cmp::Ordering::Equal => {
                    count += usize::from(from_id != to_id);
                    from.next();
                    to.next();
                }
            },
        }
    }
}

/// The delta that turns `from` into `to`.
pub fn diff(from: &StateMap, to: &StateMap) -> StateDelta {
    let mut delta = StateDelta::new();
    for (key, event_id) in to {
        if from.get(key) != Some(event_id) {
            delta.insert(key.clone(), Some(event_id.clone()));
        }
    }
    for key in from.keys() {
        if !to.contains_key(key) {
            delta.insert(key.clone(), None);
        }
    }
    delta
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> StateKey {
        ("m.test".to_owned(), name.to_owned())
    }

    fn map(entries: &[(&str, &str)]) -> StateMap {
        entries
            .iter()
            .map(|(k, v)| (key(k), (*v).to_owned()))
            .collect()
    }

    fn set(name: &str, event_id: &str) -> StateDelta {
        StateDelta::from([(key(name), Some(event_id.to_owned()))])
    }

    #[test]
    fn diff_len_counts_the_entries_of_the_diff() {
        let cases = [
            (map(&[]), map(&[])),
            (map(&[("a", "$1")]), map(&[])),
            (map(&[]), map(&[("a", "$1"), ("b", "$2")])),
            (
                map(&[("a", "$1"), ("c", "$3")]),
                map(&[("a", "$9"), ("b", "$2")]),
            ),
            (
                map(&[("a", "$1"), ("b", "$2")]),
                map(&[("a", "$1"), ("b", "$2")]),
            ),
        ];
        for (from, to) in cases {
            assert_eq!(
                diff_len(&from, &to),
                diff(&from, &to).len(),
                "{from:?} -> {to:?}"
            );
        }
    }

    /// Groups in two trees, interval 3: a fork whose right branch reaches the same event at
    /// `a` as the left one by another path, goes past the interval (`beyond` is a snapshot
    /// with lineage) and comes back to the root's value at `c`; and an unrelated snapshot.
    struct GroupTree {
        groups: StateGroups,
        root: StateGroupId,
        left_deeper: StateGroupId,
        right: StateGroupId,
        far: StateGroupId,
        beyond: StateGroupId,
        back: StateGroupId,
        all: [StateGroupId; 9],
    }

    fn group_tree() -> GroupTree {
        let mut groups = StateGroups::new(3);
        let root = groups.add_snapshot(&map(&[("a", "$1"), ("b", "$2"), ("c", "$0")]));
        let left = groups.add_delta(root, set("a", "$3"));
        let left_deeper = groups.add_delta(left, StateDelta::from([(key("b"), None)]));
        let right = groups.add_delta(root, set("c", "$4"));
        let right_deeper = groups.add_delta(right, set("a", "$3"));
        let far = groups.add_delta(right_deeper, set("d", "$6"));
        let beyond = groups.add_delta(far, set("b", "$7"));
        let back = groups.add_delta(right, set("c", "$0"));
        let other_snapshot = groups.add_snapshot(&map(&[("a", "$3"), ("z", "$9")]));
        let all = [
            root,
            left,
            left_deeper,
            right,
            right_deeper,
            far,
            beyond,
            back,
            other_snapshot,
        ];
        GroupTree {
            groups,
            root,
            left_deeper,
            right,
            far,
            beyond,
            back,
            all,
        }
    }

    #[test]
    fn moving_between_groups_gives_the_target_state() {
        let GroupTree {
            groups,
            root,
            beyond,
            all,
            ..
        } = group_tree();
        assert!(groups.group(beyond).is_snapshot(), "made for chain length");
        let mut state = groups.state(beyond);
        assert!(
            groups.move_state(&mut state, beyond, root),
            "through its lineage"
        );
        assert_eq!(state, groups.state(root));
        for from in all {
            for to in all {
                let mut state = groups.state(from);
                let moved = groups.move_state(&mut state, from, to);
                let shared = groups
                    .lineage_ids(from)
                    .any(|id| groups.lineage_ids(to).any(|t| t == id));
                assert_eq!(moved, shared, "{from:?} -> {to:?}");
                if moved {
                    assert_eq!(state, groups.state(to), "{from:?} -> {to:?}");
                } else {
                    assert_eq!(state, groups.state(from), "untouched");
                }
            }
        }
    }

    /// The differing keys of whole states, compared as strings: the oracle.
    fn differing_keys_of_maps(states: &[StateMap]) -> BTreeMap<StateKey, Vec<Option<String>>> {
        let keys: std::collections::BTreeSet<&StateKey> =
            states.iter().flat_map(|state| state.keys()).collect();
        keys.into_iter()
            .filter_map(|key| {
                let held: Vec<Option<String>> =
                    states.iter().map(|state| state.get(key).cloned()).collect();
                let differ = held.iter().any(|event_id| *event_id != held[0]);
                differ.then(|| (key.clone(), held))
            })
            .collect()
    }

    #[test]
    fn differing_keys_read_through_chains_equal_those_of_full_states() {
        let GroupTree {
            groups,
            root,
            left_deeper,
            right,
            far,
            beyond,
            back,
            all,
        } = group_tree();
        for id in all {
            let mut read: BTreeMap<&StateKey, Option<&str>> = BTreeMap::new();
            for delta in groups.chain(id) {
                for (key, event_id) in delta {
                    read.entry(key).or_insert(event_id);
                }
            }
            let read: StateMap = read
                .into_iter()
                .filter_map(|(key, event_id)| Some((key.clone(), event_id?.to_owned())))
                .collect();
            assert_eq!(read, groups.state(id), "{id:?}");
        }
        for first in all {
            for second in all {
                for third in [None, Some(far), Some(left_deeper)] {
                    let ids: Vec<StateGroupId> = [Some(first), Some(second), third]
                        .into_iter()
                        .flatten()
                        .collect();
                    let states: Vec<StateMap> = ids.iter().map(|id| groups.state(*id)).collect();
                    assert_eq!(
                        groups.differing_keys(&ids),
                        differing_keys_of_maps(&states),
                        "{ids:?}"
                    );
                }
            }
        }
        let differing = groups.differing_keys(&[left_deeper, beyond]);
        assert_eq!(
            differing
                .keys()
                .map(|(_, name)| name.as_str())
                .collect::<Vec<_>>(),
            ["b", "c", "d"],
            "a is $3 on both sides, reached by different paths"
        );
        assert!(
            groups
                .differing_keys(&[right, back, root])
                .contains_key(&key("c"))
        );
        assert!(groups.differing_keys(&[back, root]).is_empty());
        groups.check_invariants().unwrap();
    }

    /// Random trees of groups (short chains, so snapshots with lineage come often): the keys
    /// at which any choice of groups differ are those of their full states, with one bit per
    /// group (up to 64) or one walk per group (more).
    fn random_tree(changes: &[(usize, u8, Option<u8>)]) -> StateGroups {
        let mut groups = StateGroups::new(3);
        groups.add_snapshot(&map(&[("a", "$0")]));
        for (index, (parent, key_name, event)) in changes.iter().enumerate() {
            let parent = StateGroupId(len_u32(parent % groups.len()));
            let name = ["a", "b", "c", "d", "e"][*key_name as usize % 5];
            let event = event.map(|event| format!("${}", u32::from(event) % 7));
            let delta = StateDelta::from([(key(name), event)]);
            assert_eq!(groups.len(), index + 1);
            groups.add_delta(parent, delta);
        }
        groups
    }

    proptest::proptest! {
        #[test]
        fn differing_keys_of_random_trees_equal_those_of_full_states(
            changes in proptest::collection::vec(
                (0..usize::MAX, proptest::prelude::any::<u8>(), proptest::option::of(proptest::prelude::any::<u8>())),
                1..40,
            ),
            picks in proptest::collection::vec(0..usize::MAX, 2..7),
        ) {
            let groups = random_tree(&changes);
            let ids: Vec<StateGroupId> = picks
                .iter()
                .map(|pick| StateGroupId(len_u32(pick % groups.len())))
                .collect();
            let states: Vec<StateMap> = ids.iter().map(|id| groups.state(*id)).collect();
            proptest::prop_assert_eq!(groups.differing_keys(&ids), differing_keys_of_maps(&states));
        }
    }

    #[test]
    fn more_groups_than_bits_are_told_apart_too() {
        let changes: Vec<(usize, u8, Option<u8>)> = (0..120_u8)
            .map(|n| (usize::from(n) * 7 / 3, n % 5, (n % 4 != 0).then_some(n)))
            .collect();
        let groups = random_tree(&changes);
        let ids: Vec<StateGroupId> = (0..70).map(|n| StateGroupId(50 + n)).collect();
        let states: Vec<StateMap> = ids.iter().map(|id| groups.state(*id)).collect();
        let differing = groups.differing_keys(&ids);
        assert!(!differing.is_empty());
        assert_eq!(differing, differing_keys_of_maps(&states));
    }

    #[test]
    fn deltas_read_through_their_parents() {
        let mut groups = StateGroups::new(8);
        let root = groups.add_snapshot(&map(&[("a", "$1"), ("b", "$2")]));
        let child = groups.add_delta(root, set("a", "$3"));
        let removed = groups.add_delta(child, StateDelta::from([(key("b"), None)]));
        assert_eq!(groups.get(child, &key("a")), Some("$3"));
        assert_eq!(groups.get(child, &key("b")), Some("$2"));
        assert_eq!(groups.get(removed, &key("b")), None);
        assert_eq!(groups.state(removed), map(&[("a", "$3")]));
        assert_eq!(groups.state(root), map(&[("a", "$1"), ("b", "$2")]));
        assert!(groups.descends_from(removed, root));
        assert!(!groups.descends_from(root, removed));
        groups.check_invariants().unwrap();
    }

    #[test]
    fn chains_are_cut_by_snapshots() {
        let mut groups = StateGroups::new(3);
        let mut id = groups.add_snapshot(&StateMap::new());
        for step in 0..10 {
            id = groups.add_delta(id, set(&format!("k{step}"), &format!("${step}")));
            let group = groups.group(id);
            assert_eq!(group.is_snapshot(), step % 4 == 3, "step {step}");
        }
        assert_eq!(groups.state(id).len(), 10);
        assert_eq!(groups.get(id, &key("k0")), Some("$0"));
        groups.check_invariants().unwrap();
    }

    #[test]
    fn add_state_picks_the_closest_candidate() {
        let mut groups = StateGroups::new(8);
        let far_state = map(&[("a", "$x"), ("b", "$y"), ("c", "$z")]);
        let near_state = map(&[("a", "$1"), ("b", "$2"), ("c", "$3")]);
        let far = groups.add_snapshot(&far_state);
        let near = groups.add_snapshot(&near_state);
        let target = map(&[("a", "$1"), ("b", "$2"), ("c", "$4")]);
        let id = groups.add_state(&target, &[(far, &far_state), (near, &near_state)]);
        assert_eq!(groups.group(id).parent(), Some(near));
        assert_eq!(groups.group(id).delta().len(), 1);
        assert_eq!(groups.state(id), target);
        let groups_before = groups.len();
        assert_eq!(groups.add_state(&target, &[(id, &target)]), id);
        assert_eq!(groups.len(), groups_before, "an equal candidate is reused");
        let unrelated = map(&[("q", "$q")]);
        let snapshot = groups.add_state(&unrelated, &[(near, &near_state)]);
        assert!(groups.group(snapshot).is_snapshot());
        assert_eq!(groups.state(snapshot), unrelated);
    }

    #[test]
    fn diff_then_apply_round_trips() {
        let from = map(&[("a", "$1"), ("b", "$2")]);
        let to = map(&[("b", "$3"), ("c", "$4")]);
        let delta = diff(&from, &to);
        assert_eq!(delta.len(), 3);
        let mut state = from.clone();
        apply_delta(&mut state, &delta);
        assert_eq!(state, to);
    }
}
