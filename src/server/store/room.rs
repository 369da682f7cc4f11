//! [`RoomStore`]: everything one server holds about one room, and the read accessors.
//!
//! Invariants: `events` holds every event the room knows, with or without state; the DAG
//! holds exactly those with state; `current_group`/`current_state` are the resolution of the
//! extremities' states (absent before the first accepted event); `resolutions` maps each
//! sorted set of state groups that was resolved to the group of the result.

use super::conflicts::AuthCiters;
use super::current_events::CurrentEvents;
use super::dag::Dag;
use super::dag_view::DagView;
use super::log::{DurableLog, LogRecord};
use super::record::{EventRecord, EventStatus};
use super::records::Records;
use super::set_digest::SetDigest;
use super::shared_resolutions::SharedResolutions;
use super::state_groups::{StateGroupId, StateGroups};
use crate::proto::event::{StateKey, StateMap};
use crate::proto::pdu::Pdu;
use crate::proto::room_version::RoomVersion;
use crate::server::fifo_map::FifoMap;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// How many of each verdict the room holds.
#[derive(Clone, Copy, Debug, Default, Eq)]
pub(super) struct Counts {
    pub accepted: u64,
    pub soft_failed: u64,
    pub rejected: u64,
    pub outliers: u64,
    pub redacted: u64,
    /// How many times [`Counts::add`] was called: every record stored or replaced keeps the
    /// counts through it, so this moves whenever the set of records or a status changes.
    /// A change mark, not a figure: left out of equality.
    pub changes: u64,
}

impl PartialEq for Counts {
    fn eq(&self, other: &Self) -> bool {
        // Destructured so that a new figure cannot be left out of the comparison by mistake.
        let Counts {
            accepted,
            soft_failed,
            rejected,
            outliers,
            redacted,
            changes: _,
        } = *self;
        (accepted, soft_failed, rejected, outliers, redacted)
            == (
                other.accepted,
                other.soft_failed,
                other.rejected,
                other.outliers,
                other.redacted,
            )
    }
}

impl Counts {
    pub fn add(&mut self, status: &EventStatus, delta: i64) {
        self.changes += 1;
        let count = match status {
            EventStatus::Accepted => &mut self.accepted,
            EventStatus::SoftFailed(_) => &mut self.soft_failed,
            EventStatus::Rejected { .. } => &mut self.rejected,
            EventStatus::Outlier => &mut self.outliers,
        };
        *count = count
            .checked_add_signed(delta)
            .expect("verdict counts never go below zero");
    }
}

/// One room as one server holds it.
#[derive(Debug)]
pub struct RoomStore {
    pub(super) log: DurableLog,
    /// Shared with every log record of the room.
    pub(super) room_id: Arc<str>,
    pub(super) version: &'static RoomVersion,
    /// Keyed by the one `Arc<str>` of each event id, which the DAG shares.
    pub(super) events: Records,
    pub(super) dag: Dag,
    /// The auth DAG read upwards, for merging state groups by their differences. Derived from
    /// `events`, so left out of equality.
    pub(super) auth_citers: AuthCiters,
    pub(super) groups: StateGroups,
    /// The group of the empty state, the state before the create event.
    pub(super) empty_group: Option<StateGroupId>,
    /// The group each recent merge gave, by its sorted input groups: bounded (see
    /// `state.rs`), so a long run does not keep one entry per merge it ever made.
    pub(super) resolutions: FifoMap<Arc<[StateGroupId]>, StateGroupId>,
    pub(super) current_group: Option<StateGroupId>,
    pub(super) current_state: StateMap,
    /// The held events `current_state` names, by state key. Derived from `current_state` and
    /// `events`, so left out of equality.
    pub(super) current_events: CurrentEvents,
    /// Accepted redactions whose target the store does not hold yet: target -> redactions.
    pub(super) pending_redactions: BTreeMap<String, BTreeSet<String>>,
    pub(super) counts: Counts,
    /// The digest of the ids of authorized records (accepted or soft-failed). Derived from
    /// `events`, so left out of equality.
    pub(super) authorized_digest: SetDigest,
    pub(super) event_bytes: usize,
    pub(super) next_sequence: u64,
    /// The servers joined in the current state, for the current group it was computed at:
    /// asked for every event served to a peer, recomputed only when current state changed.
    /// The id of the create event the room id implies, in room versions where it is never
    /// listed among auth events (asked for every event placed). Follows from `room_id`.
    pub(super) implied_create: Option<Box<str>>,
    pub(super) joined_servers_memo: std::sync::Mutex<Option<JoinedServers>>,
    /// The history visibility of the state group last asked about (see `visibility.rs`).
    /// Derived from the groups, so left out of equality.
    pub(super) visibility_memo:
        std::sync::Mutex<Option<(StateGroupId, super::visibility::HistoryVisibility)>>,
    /// Off only in tests that show what an attack achieves without the authorization rules:
    /// then every event placed with state is accepted. Configuration, not state: not logged,
    /// not compared.
    pub(super) auth_rules_enforced: bool,
    /// Within a batch of backfilled history: current state is recomputed once at its end
    /// (`current_state_stale` says whether the extremities moved meanwhile). Both are false
    /// outside a batch, so they are not compared.
    pub(super) current_state_deferred: bool,
    pub(super) current_state_stale: bool,
    /// The run's shared resolutions, when the store takes part (see `shared_resolutions.rs`).
    /// Configuration, not state: not logged, not compared.
    pub(super) shared_resolutions: Option<Arc<SharedResolutions>>,
}

/// The id of the create event that `room_id` implies, if `version` implies one.
fn implied_create_id(room_id: &str, version: &RoomVersion) -> Option<Box<str>> {
    if !version.create_event_implied {
        return None;
    }
    let hash = room_id.strip_prefix('!')?;
    Some(format!("${hash}").into())
}

/// The servers with a user joined in the state of a current group.
#[derive(Debug)]
pub(super) struct JoinedServers {
    pub group: Option<StateGroupId>,
    pub servers: BTreeSet<String>,
}

/// Two stores are equal when they hold the same room the same way; the log they write to is
/// not part of it (a recovered store writes to the log it was rebuilt from).
impl PartialEq for RoomStore {
    fn eq(&self, other: &Self) -> bool {
        // Destructured so that a new field cannot be left out of the comparison by mistake.
        let RoomStore {
            log: _,
            room_id,
            version,
            events,
            dag,
            auth_citers: _,
            groups,
            empty_group,
            resolutions,
            current_group,
            current_state,
            current_events: _,
            pending_redactions,
            counts,
            authorized_digest: _,
            event_bytes,
            next_sequence,
            implied_create: _,
            joined_servers_memo: _,
            visibility_memo: _,
            auth_rules_enforced: _,
            current_state_deferred: _,
            current_state_stale: _,
            shared_resolutions: _,
        } = self;
        *room_id == other.room_id
            && version.id == other.version.id
            && *events == other.events
            && *dag == other.dag
            && *groups == other.groups
            && *empty_group == other.empty_group
            && *resolutions == other.resolutions
            && *current_group == other.current_group
            && *current_state == other.current_state
            && *pending_redactions == other.pending_redactions
            && *counts == other.counts
            && *event_bytes == other.event_bytes
            && *next_sequence == other.next_sequence
    }
}

impl RoomStore {
    /// Whether the event `event_id` would pass the authorization rules against the current
    /// state (`None` if it is unknown). Observers use it to tell a state reset (a key going
    /// back although its newer value is still allowed) from a revert the room explains (the
    /// newer value's sender lost the power to set it).
    pub fn allowed_by_current_state(&self, event_id: &str) -> Option<bool> {
        let record = self.events.get(event_id)?;
        let current = self.current_state_view();
        Some(crate::proto::auth::check_auth(self.version, record.pdu.event(), &current).is_ok())
    }

    /// A new, empty room writing to `log`; the opening is logged.
    pub fn new(room_id: &str, version: &'static RoomVersion, log: DurableLog) -> Self {
        log.append(LogRecord::OpenRoom {
            room_id: room_id.to_owned(),
            room_version: version,
        });
        Self::unlogged(room_id, version, log)
    }

    /// A new, empty room without a log record (for replaying a log).
    pub(super) fn unlogged(room_id: &str, version: &'static RoomVersion, log: DurableLog) -> Self {
        Self {
            log,
            room_id: room_id.into(),
            version,
            events: Records::default(),
            dag: Dag::default(),
            auth_citers: AuthCiters::default(),
            groups: StateGroups::default(),
            empty_group: None,
            resolutions: FifoMap::new(super::state::MERGES_REMEMBERED),
            current_group: None,
            current_state: StateMap::new(),
            current_events: CurrentEvents::default(),
            pending_redactions: BTreeMap::new(),
            counts: Counts::default(),
            authorized_digest: SetDigest::default(),
            event_bytes: 0,
            next_sequence: 0,
            implied_create: implied_create_id(room_id, version),
            joined_servers_memo: std::sync::Mutex::new(None),
            visibility_memo: std::sync::Mutex::new(None),
            auth_rules_enforced: true,
            current_state_deferred: false,
            current_state_stale: false,
            shared_resolutions: None,
        }
    }

    /// Shares state resolutions with the other stores given the same `shared` (see
    /// `shared_resolutions.rs`); `None` shares nothing.
    pub fn share_resolutions(&mut self, shared: Option<Arc<SharedResolutions>>) {
        self.shared_resolutions = shared;
    }

    pub fn room_id(&self) -> &str {
        &self.room_id
    }

    pub fn room_version(&self) -> &'static RoomVersion {
        self.version
    }

    /// A mark that differs whenever the held records, their statuses or the current state
    /// changed since it was taken (redaction of a held event's content aside). Comparable only
    /// between marks of the same store: observers use it to skip recomputing what they derive
    /// from a store that did not change.
    pub fn change_mark(&self) -> (u64, Option<StateGroupId>) {
        (self.counts.changes, self.current_group)
    }

    pub fn log(&self) -> &DurableLog {
        &self.log
    }

    /// Makes everything the store did so far durable. The server calls this before it
    /// acknowledges a transaction.
    pub fn flush(&self) {
        self.log.flush();
    }

    /// The event as held (redacted if it is held redacted).
    pub fn event(&self, event_id: &str) -> Option<Arc<Pdu>> {
        self.events.get(event_id).map(|record| record.pdu.clone())
    }

    pub fn record(&self, event_id: &str) -> Option<&EventRecord> {
        self.events.get(event_id)
    }

    pub fn status(&self, event_id: &str) -> Option<&EventStatus> {
        self.events.get(event_id).map(|record| &record.status)
    }

    pub fn contains(&self, event_id: &str) -> bool {
        self.events.contains_key(event_id)
    }

    /// Whether the event is held with state (not only as an outlier).
    pub fn has_state(&self, event_id: &str) -> bool {
        self.events
            .get(event_id)
            .is_some_and(|record| record.state().is_some())
    }

    /// Every event with its record, by event id.
    /// The digest of the set of authorized events held (accepted or soft-failed): two stores
    /// hold the same such set exactly when their digests are equal. Kept as records change.
    pub fn authorized_set_digest(&self) -> SetDigest {
        self.authorized_digest
    }

    /// One more than the largest sequence number of a held record (0 when none is held).
    pub fn sequence_end(&self) -> u64 {
        self.next_sequence
    }

    /// Every held record, in event-id (byte) order. Sorts: for reports and checks, not for
    /// paths taken per event.
    pub fn records(&self) -> impl Iterator<Item = (&str, &EventRecord)> {
        self.events.sorted().into_iter()
    }

    /// The ids of accepted events (not soft-failed, not rejected, not outliers).
    pub fn accepted_event_ids(&self) -> BTreeSet<String> {
        self.events
            .values()
            .filter(|record| record.is_accepted() && record.state().is_some())
            .map(|record| record.pdu.event_id().to_owned())
            .collect()
    }

    pub fn forward_extremities(&self) -> &BTreeSet<String> {
        self.dag.extremities()
    }

    /// The DAG of events held with state.
    pub fn dag(&self) -> DagView<'_> {
        DagView {
            dag: &self.dag,
            nodes: &self.events,
        }
    }

    pub fn state_groups(&self) -> &StateGroups {
        &self.groups
    }

    /// The room's current state (empty before the first accepted event).
    pub fn current_state(&self) -> &StateMap {
        &self.current_state
    }

    /// The event holding `key` in the current state.
    pub fn current_state_event(&self, key: &StateKey) -> Option<Arc<Pdu>> {
        self.current_state_event_of(&key.0, &key.1)
    }

    /// As [`RoomStore::current_state_event`], for a key given as its two parts.
    pub fn current_state_event_of(&self, event_type: &str, state_key: &str) -> Option<Arc<Pdu>> {
        self.current_events.get(event_type, state_key).cloned()
    }

    /// The current state as the authorization rules read it.
    pub(super) fn current_state_view(&self) -> super::views::CurrentStateView<'_> {
        super::views::CurrentStateView {
            events: &self.current_events,
        }
    }

    /// The state before an event held with state.
    pub fn state_before(&self, event_id: &str) -> Option<StateMap> {
        let state = self.events.get(event_id)?.state()?;
        Some(self.groups.state(state.before))
    }

    /// The state after an event held with state (for a rejected event, the state before it).
    pub fn state_after(&self, event_id: &str) -> Option<StateMap> {
        let state = self.events.get(event_id)?.state()?;
        Some(self.groups.state(state.after))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::store::test_support::*;
    use crate::server::store::testkit::RoomBuilder;

    #[test]
    fn accessors_and_equality() {
        let mut room = RoomBuilder::standard(v("11"), ALICE);
        let join = room.join(BOB);
        let message = room.message(BOB, "hi");
        let store = store_with_all(&room);
        assert_eq!(store.event(message.event_id()), Some(message.clone()));
        assert_eq!(
            store.status(message.event_id()),
            Some(&EventStatus::Accepted)
        );
        assert!(store.has_state(message.event_id()) && !store.has_state("$unknown"));
        assert_eq!(store.accepted_event_ids().len(), room.built().len());
        let bob = ("m.room.member".to_owned(), BOB.to_owned());
        assert_eq!(store.current_state_event(&bob), Some(join.clone()));
        assert!(
            !store
                .state_before(join.event_id())
                .unwrap()
                .contains_key(&bob)
        );
        assert!(
            store
                .state_after(join.event_id())
                .unwrap()
                .contains_key(&bob)
        );
        assert_eq!(
            store.state_after(message.event_id()),
            store.state_before(message.event_id())
        );

        // Equal contents, different logs: equal. One more event: different.
        let other = store_with_all(&room);
        assert!(!other.log().same_log(store.log()));
        assert!(other == store);
        let mut longer = store_with_all(&room);
        longer.ingest(room.message(ALICE, "more"), false).unwrap();
        assert!(longer != store);
    }
}
