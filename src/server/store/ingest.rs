//! The checks on receipt of a PDU, and placing events in the store.
//!
//! The caller has already checked the event's format and signatures (dropping what fails)
//! and its content hash (passing `held_redacted` when it did not match). The store does the
//! rest, in the spec's order: the checks on the `auth_events` list and the authorization rules
//! against the event's auth events (reject), the rules against the state before the event
//! (reject), the rules against the current state (soft-fail).
//!
//! Preconditions, else [`StoreError::Missing`] and no change: every auth event is held (as an
//! outlier at least; in room v12 also the create event the room id implies), and every prev
//! event is held with state, unless the state before the event is handed in
//! ([`RoomStore::ingest_with_state`]), whose events must then be held.
//!
//! Invariants: a call that returns an error changes nothing; every change is appended to the
//! durable log after it is made; an event already held with state is never placed twice.

use super::log::{EventInput, LogRecord, Origin, RecordedVerdict};
use super::record::{Check, EventRecord, EventState, EventStatus, HeldState, RedactedBecause};
use super::room::RoomStore;
use super::state_groups::{StateDelta, StateGroupId};
use super::views::{GroupState, MapState};
use super::{IngestOutcome, StoreError};
use crate::proto::auth::{
    AuthError, AuthEventsState, AuthRule, AuthState, check_auth,
    check_auth_events_list_with_rejections,
};
use crate::proto::event::{Event, StateMap};
use crate::proto::pdu::{Pdu, reference_hash};
use std::collections::BTreeSet;
use std::sync::Arc;

impl From<&EventStatus> for RecordedVerdict {
    fn from(status: &EventStatus) -> Self {
        match status {
            EventStatus::Accepted => Self::Accepted,
            EventStatus::SoftFailed(_) => Self::SoftFailed,
            EventStatus::Rejected { .. } => Self::Rejected,
            EventStatus::Outlier => Self::Outlier,
        }
    }
}

impl RoomStore {
    /// Places a PDU received from another server whose prev events the store holds with state.
    /// `held_redacted`: its content hash did not match, so it is held (and checked) redacted.
    pub fn ingest(
        &mut self,
        pdu: impl Into<Arc<Pdu>>,
        held_redacted: bool,
    ) -> Result<IngestOutcome, StoreError> {
        self.ingest_input(EventInput::Pdu {
            pdu: pdu.into(),
            held_redacted,
            origin: Origin::Remote,
        })
    }

    /// Places an event this server built for one of its users (see
    /// [`RoomStore::prepare_local_event`]); it goes through the same checks.
    pub fn ingest_local(&mut self, pdu: impl Into<Arc<Pdu>>) -> Result<IngestOutcome, StoreError> {
        self.ingest_input(EventInput::Pdu {
            pdu: pdu.into(),
            held_redacted: false,
            origin: Origin::Local,
        })
    }

    /// Places a PDU of the room's history fetched with `/backfill`, whose prev events the store
    /// holds with state: checked against its auth events and the state before it only.
    pub fn ingest_backfilled(
        &mut self,
        pdu: impl Into<Arc<Pdu>>,
        held_redacted: bool,
    ) -> Result<IngestOutcome, StoreError> {
        self.ingest_input(EventInput::Pdu {
            pdu: pdu.into(),
            held_redacted,
            origin: Origin::Backfilled,
        })
    }

    /// Places a batch of history fetched with `/backfill`: first the `oldest` events, whose
    /// prev events lie beyond what was fetched, each with the state before it as a peer
    /// reported it; then the `events`, given oldest first, each whose prev events are all held
    /// with state and that is not held with state itself, as [`RoomStore::ingest_backfilled`].
    /// Current state is recomputed once, after the batch: a backfilled event is judged without
    /// it, and each one placed would otherwise resolve the states of extremities that exist
    /// only until its successor is placed. Returns the outcome of each event placed, in order;
    /// an event that cannot be placed (its auth events are missing, say) is skipped, as
    /// history is best effort.
    pub fn ingest_history(
        &mut self,
        oldest: Vec<(Arc<Pdu>, bool, StateMap)>,
        events: Vec<(Arc<Pdu>, bool)>,
    ) -> Vec<IngestOutcome> {
        if oldest.is_empty() && events.is_empty() {
            return Vec::new();
        }
        self.begin_history_batch(true);
        let mut outcomes = Vec::new();
        for (pdu, held_redacted, state_before) in oldest {
            if self.has_state(pdu.event_id()) {
                continue;
            }
            let input = EventInput::WithState {
                pdu,
                held_redacted,
                state_before,
                origin: Origin::Backfilled,
            };
            if let Ok(outcome) = self.ingest_input(input) {
                outcomes.push(outcome);
            }
        }
        for (pdu, held_redacted) in events {
            if self.has_state(pdu.event_id()) || !self.holds_prev_events(&pdu) {
                continue;
            }
            if let Ok(outcome) = self.ingest_backfilled(pdu, held_redacted) {
                outcomes.push(outcome);
            }
        }
        self.begin_history_batch(false);
        outcomes
    }

    /// Starts (`begins`) or ends a batch of history, logged so that replay batches alike.
    fn begin_history_batch(&mut self, begins: bool) {
        self.log.append(LogRecord::HistoryBatch {
            room_id: self.room_id.clone(),
            begins,
        });
        self.apply_history_batch(begins);
    }

    /// Defers current state within a batch of history; recomputes it at the batch's end if
    /// the extremities moved.
    pub(super) fn apply_history_batch(&mut self, begins: bool) {
        assert_ne!(
            self.current_state_deferred, begins,
            "history batches neither nest nor end unopened"
        );
        self.current_state_deferred = begins;
        if !begins && std::mem::take(&mut self.current_state_stale) {
            self.update_current_state();
        }
    }

    /// Places an event of an auth chain without state: it is checked against its auth events
    /// only, and is not part of the DAG until it is ingested with state.
    pub fn ingest_outlier(
        &mut self,
        pdu: impl Into<Arc<Pdu>>,
        held_redacted: bool,
    ) -> Result<IngestOutcome, StoreError> {
        self.ingest_input(EventInput::Outlier {
            pdu: pdu.into(),
            held_redacted,
        })
    }

    /// Places a PDU with the state before it as a peer reported it (`/state_ids` when a gap in
    /// the DAG could not be closed, or the state of a `send_join` response). Its prev events
    /// need not be held; the events of `state_before` must be, and must not be rejected.
    pub fn ingest_with_state(
        &mut self,
        pdu: impl Into<Arc<Pdu>>,
        held_redacted: bool,
        state_before: StateMap,
    ) -> Result<IngestOutcome, StoreError> {
        self.ingest_input(EventInput::WithState {
            pdu: pdu.into(),
            held_redacted,
            state_before,
            origin: Origin::Remote,
        })
    }

    /// Prev events of `pdu` that the store does not hold with state.
    /// Whether every prev event of `pdu` is held with state ([`RoomStore::missing_prev_events`]
    /// is empty), without listing them.
    pub fn holds_prev_events(&self, pdu: &Pdu) -> bool {
        pdu.event().prev_events.iter().all(|id| self.has_state(id))
    }

    pub fn missing_prev_events(&self, pdu: &Pdu) -> Vec<String> {
        let mut missing: Vec<String> = pdu
            .event()
            .prev_events
            .iter()
            .filter(|id| !self.has_state(id))
            .cloned()
            .collect();
        missing.sort();
        missing.dedup();
        missing
    }

    /// Auth events of `pdu` that the store does not hold (in room v12 including the create
    /// event the room id implies).
    pub fn missing_auth_events(&self, pdu: &Pdu) -> Vec<String> {
        if self.holds_cited_auth_events(pdu.event()) {
            return Vec::new();
        }
        let mut missing: Vec<String> = self
            .cited_auth_events(pdu.event())
            .into_iter()
            .filter(|id| !self.contains(id))
            .collect();
        missing.sort();
        missing.dedup();
        missing
    }

    /// The id of the create event the room id implies, in room versions where it is never
    /// listed among auth events.
    pub(super) fn implied_create_id(&self) -> Option<&str> {
        self.implied_create.as_deref()
    }

    /// Whether every event of [`RoomStore::cited_auth_events`] is held, without listing them:
    /// the common case, asked for every received event.
    fn holds_cited_auth_events(&self, event: &Event) -> bool {
        event.auth_events.iter().all(|id| self.contains(id))
            && (event.event_type == "m.room.create"
                || self.implied_create_id().is_none_or(|id| self.contains(id)))
    }

    /// The auth events an event depends on: its list, and the implied create event.
    pub(super) fn cited_auth_events(&self, event: &Event) -> Vec<String> {
        let mut cited = event.auth_events.clone();
        if event.event_type != "m.room.create"
            && let Some(create_id) = self.implied_create_id()
        {
            cited.push(create_id.to_owned());
        }
        cited
    }

    fn ingest_input(&mut self, input: EventInput) -> Result<IngestOutcome, StoreError> {
        let outcome = self.apply(&input)?;
        if !outcome.duplicate {
            self.log.append(LogRecord::Event {
                room_id: self.room_id.clone(),
                verdict: RecordedVerdict::from(&outcome.status),
                input,
            });
        }
        Ok(outcome)
    }

    /// Applies one input without logging it: the common path of ingesting and of replaying
    /// the log.
    pub(super) fn apply(&mut self, input: &EventInput) -> Result<IngestOutcome, StoreError> {
        match input {
            EventInput::Pdu {
                pdu,
                held_redacted,
                origin,
            } => self.place(pdu, *held_redacted, *origin, None),
            EventInput::Outlier { pdu, held_redacted } => self.place_outlier(pdu, *held_redacted),
            EventInput::WithState {
                pdu,
                held_redacted,
                state_before,
                origin,
            } => self.place(pdu, *held_redacted, *origin, Some(state_before)),
        }
    }

    fn place(
        &mut self,
        pdu: &Arc<Pdu>,
        held_redacted: bool,
        origin: Origin,
        given_state: Option<&StateMap>,
    ) -> Result<IngestOutcome, StoreError> {
        self.check_belongs(pdu)?;
        if let Some(existing) = self.events.get(pdu.event_id()) {
            self.check_same_event(existing, pdu)?;
            if existing.state().is_some() {
                return Ok(self.duplicate(pdu.event_id()));
            }
        }
        self.check_present(pdu, given_state)?;
        let event = pdu.event();
        self.dag
            .check_insertable(&self.events, &event.event_id, &event.prev_events)?;
        if let Some(state) = given_state {
            self.check_given_state(event, state)?;
        }
        // History is not held against the current state, so it needs no current state.
        let gap_current_state = match given_state {
            Some(state) if origin != Origin::Backfilled => {
                self.current_state_across_gap(&pdu.event().event_id, state)?
            }
            _ => None,
        };
        let (held, redacted) = self.held_form(pdu, held_redacted);
        let event = held.event();
        let auth_events_verdict = self.check_against_auth_events(event);
        let before = match given_state {
            Some(state) => self.add_given_state(event, state),
            None => self.state_before_from_prevs(event)?,
        };
        // Nothing below fails: the event is placed.
        let status = match auth_events_verdict {
            _ if !self.auth_rules_enforced => EventStatus::Accepted,
            Err(error) => EventStatus::Rejected {
                check: Check::AuthEvents,
                error: Box::new(error),
            },
            Ok(()) => {
                let history = origin == Origin::Backfilled;
                self.verdict_with_state(event, before, gap_current_state.as_ref(), history)
            }
        };
        let after = match (status.changes_state(), event.state_key_pair()) {
            (true, Some(key)) => {
                let delta = StateDelta::from([(key, Some(event.event_id.clone()))]);
                self.groups.add_delta(before, delta)
            }
            _ => before,
        };
        let event_id = event.event_id.clone();
        self.store_record(
            held,
            status.clone(),
            redacted,
            Some(EventState { before, after }),
            origin,
        );
        // Held with state now, so a node: link it (checked insertable above).
        let (key, _) = self
            .events
            .get_key_value(event_id.as_str())
            .expect("stored above");
        let extremities_changed = self.dag.link(&self.events, key);
        if extremities_changed && self.current_state_deferred {
            self.current_state_stale = true;
        } else if extremities_changed {
            self.update_current_state();
        }
        let redacted = self.apply_redactions_for(&event_id);
        Ok(IngestOutcome {
            event_id,
            status,
            duplicate: false,
            redacted,
        })
    }

    fn place_outlier(
        &mut self,
        pdu: &Arc<Pdu>,
        held_redacted: bool,
    ) -> Result<IngestOutcome, StoreError> {
        self.check_belongs(pdu)?;
        if let Some(existing) = self.events.get(pdu.event_id()) {
            self.check_same_event(existing, pdu)?;
            return Ok(self.duplicate(pdu.event_id()));
        }
        let missing_auth_events = self.missing_auth_events(pdu);
        if !missing_auth_events.is_empty() {
            return Err(StoreError::Missing {
                event_id: pdu.event_id().to_owned(),
                prev_events: Vec::new(),
                auth_events: missing_auth_events,
                state_events: Vec::new(),
            });
        }
        let (held, redacted) = self.held_form(pdu, held_redacted);
        let status = match self.check_against_auth_events(held.event()) {
            Ok(()) => EventStatus::Outlier,
            Err(error) => EventStatus::Rejected {
                check: Check::AuthEvents,
                error: Box::new(error),
            },
        };
        let event_id = held.event_id().to_owned();
        self.store_record(held, status.clone(), redacted, None, Origin::Remote);
        let redacted = self.apply_redactions_for(&event_id);
        Ok(IngestOutcome {
            event_id,
            status,
            duplicate: false,
            redacted,
        })
    }

    fn duplicate(&self, event_id: &str) -> IngestOutcome {
        IngestOutcome {
            event_id: event_id.to_owned(),
            status: self.events[event_id].status.clone(),
            duplicate: true,
            redacted: Vec::new(),
        }
    }

    /// The event's room and room version are this room's.
    pub(super) fn check_belongs(&self, pdu: &Pdu) -> Result<(), StoreError> {
        let event = pdu.event();
        if *event.room_id != *self.room_id {
            return Err(StoreError::WrongRoom {
                event_id: event.event_id.clone(),
                room_id: event.room_id.clone(),
                expected: self.room_id.to_string(),
            });
        }
        if pdu.room_version().id != self.version.id {
            return Err(StoreError::WrongRoomVersion {
                event_id: event.event_id.clone(),
                version: pdu.room_version().id,
                expected: self.version.id,
            });
        }
        Ok(())
    }

    /// Rooms v1 and v2 let servers choose event ids, so two different events can claim one;
    /// later versions derive the id from the redacted event, so the same id is the same event
    /// (perhaps redacted, or with other signatures).
    pub(super) fn check_same_event(
        &self,
        existing: &EventRecord,
        pdu: &Pdu,
    ) -> Result<(), StoreError> {
        if !self.version.event_ids_in_events() {
            return Ok(());
        }
        let hash = |pdu: &Pdu| reference_hash(pdu.json(), self.version).ok();
        if hash(&existing.pdu) != hash(pdu) {
            return Err(StoreError::IdConflict {
                event_id: pdu.event_id().to_owned(),
            });
        }
        Ok(())
    }

    fn check_present(&self, pdu: &Pdu, given_state: Option<&StateMap>) -> Result<(), StoreError> {
        let prev_events = match given_state {
            None if !self.holds_prev_events(pdu) => self.missing_prev_events(pdu),
            _ => Vec::new(),
        };
        let auth_events = self.missing_auth_events(pdu);
        let state_events: Vec<String> = given_state
            .into_iter()
            .flat_map(|state| state.values())
            .filter(|id| !self.contains(id))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if prev_events.is_empty() && auth_events.is_empty() && state_events.is_empty() {
            return Ok(());
        }
        Err(StoreError::Missing {
            event_id: pdu.event_id().to_owned(),
            prev_events,
            auth_events,
            state_events,
        })
    }

    /// A state handed with an event holds, under each key, a state event of that key that
    /// the store did not reject.
    fn check_given_state(&self, event: &Event, state: &StateMap) -> Result<(), StoreError> {
        let bad = |problem: String| StoreError::BadState {
            event_id: event.event_id.clone(),
            problem,
        };
        for (key, state_id) in state {
            let record = &self.events[state_id.as_str()];
            let held_key = record.pdu.event().state_key_pair();
            if held_key.as_ref() != Some(key) {
                return Err(bad(format!(
                    "{state_id} is listed under {key:?} but holds {held_key:?}"
                )));
            }
            if record.status.is_rejected() {
                return Err(bad(format!("{state_id} was rejected")));
            }
        }
        Ok(())
    }

    /// The PDU to hold and why it is redacted, if it is.
    fn held_form(
        &self,
        pdu: &Arc<Pdu>,
        held_redacted: bool,
    ) -> (Arc<Pdu>, Option<RedactedBecause>) {
        // An outlier that was already held redacted stays so when it is placed with state.
        if let Some(existing) = self.events.get(pdu.event_id())
            && existing.redacted.is_some()
        {
            return (existing.pdu.clone(), existing.redacted.as_deref().cloned());
        }
        if held_redacted {
            (
                Arc::new(pdu.redacted()),
                Some(RedactedBecause::ContentHashMismatch),
            )
        } else {
            (pdu.clone(), None)
        }
    }

    /// The checks against the event's own auth events: the list (no duplicates, only what
    /// the selection allows, none rejected, the create event where required) and the rules
    /// in the state they form.
    fn check_against_auth_events(&self, event: &Event) -> Result<(), AuthError> {
        let events = &self.events;
        let lookup = |id: &str| events.get(id).map(|record| record.pdu.event());
        let rejected = |id: &str| {
            events
                .get(id)
                .is_some_and(|record| record.status.is_rejected())
        };
        check_auth_events_list_with_rejections(self.version, event, &lookup, &rejected)?;
        let mut auth_state = AuthEventsState::with_capacity(event.auth_events.len() + 1);
        for auth_event in event.auth_events.iter().filter_map(|id| lookup(id)) {
            auth_state.insert(auth_event);
        }
        if event.event_type != "m.room.create"
            && let Some(create_id) = self.implied_create_id()
        {
            let create = &events[create_id];
            if create.status.is_rejected() {
                return Err(AuthError::new(
                    AuthRule::AuthEventRejected,
                    format!(
                        "{}: the create event {create_id} the room id implies was rejected",
                        event.event_id
                    ),
                ));
            }
            auth_state.insert_as(("m.room.create", ""), create.pdu.event());
        }
        check_auth(self.version, event, &auth_state)
    }

    /// The current state to soft-fail an event placed with state against. Across a gap the
    /// store's current state may be stale (it missed what happened in the gap), yet gaps are
    /// easy to make on purpose, so the check is kept, against the resolution of the
    /// extremities' states together with the state reported for the event (as the reference
    /// server does). `None` before the first accepted event.
    fn current_state_across_gap(
        &self,
        event_id: &str,
        state_before: &StateMap,
    ) -> Result<Option<StateMap>, StoreError> {
        if self.current_group.is_none() {
            return Ok(None);
        }
        let mut state_sets: Vec<StateMap> = self
            .dag
            .extremities()
            .iter()
            .map(|id| self.groups.state(self.group_after(id)))
            .collect();
        state_sets.push(state_before.clone());
        let resolved =
            self.resolve_state_sets(&state_sets)
                .map_err(|error| StoreError::Resolve {
                    event_id: event_id.to_owned(),
                    error,
                })?;
        Ok(Some(resolved))
    }

    /// The verdict of an event that passed the checks against its auth events: the rules
    /// against the state before it (reject), then against the current state (soft-fail), or
    /// `gap_current_state` for an event placed with state. `history` (a backfilled event) skips
    /// the current state.
    fn verdict_with_state(
        &self,
        event: &Event,
        before: StateGroupId,
        gap_current_state: Option<&StateMap>,
        history: bool,
    ) -> EventStatus {
        // Current state is the state of the current group held whole: reading it spares a walk
        // down the group's chain per key, for the many events placed on top of it.
        let (by_current, by_group);
        let state_before: &dyn AuthState = if self.current_group == Some(before) {
            by_current = self.current_state_view();
            &by_current
        } else {
            by_group = GroupState {
                groups: &self.groups,
                group: before,
                events: &self.events,
            };
            &by_group
        };
        if let Err(error) = check_auth(self.version, event, state_before) {
            return EventStatus::Rejected {
                check: Check::StateBefore,
                error: Box::new(error),
            };
        }
        // Before the first accepted event there is no current state to hold it against, and
        // when the state before the event is the current state the verdict is already known.
        let (by_map, by_current);
        let current_state: &dyn AuthState = match (gap_current_state, self.current_group) {
            _ if history => return EventStatus::Accepted,
            (Some(state), _) => {
                by_map = MapState {
                    state,
                    events: &self.events,
                };
                &by_map
            }
            (None, Some(current)) if current != before => {
                by_current = self.current_state_view();
                &by_current
            }
            (None, _) => return EventStatus::Accepted,
        };
        match check_auth(self.version, event, current_state) {
            Ok(()) => EventStatus::Accepted,
            Err(error) => EventStatus::SoftFailed(Box::new(error)),
        }
    }

    /// The group for a state handed with an event, as a delta over the closest of the states
    /// after its held prev events and the current state.
    fn add_given_state(&mut self, event: &Event, state: &StateMap) -> StateGroupId {
        let mut candidate_groups: Vec<StateGroupId> = event
            .prev_events
            .iter()
            .filter(|id| self.has_state(id))
            .map(|id| self.group_after(id))
            .chain(self.current_group)
            .collect();
        candidate_groups.sort_unstable();
        candidate_groups.dedup();
        let states: Vec<StateMap> = candidate_groups
            .iter()
            .map(|id| self.groups.state(*id))
            .collect();
        let candidates: Vec<(StateGroupId, &StateMap)> = candidate_groups
            .iter()
            .copied()
            .zip(states.iter())
            .collect();
        self.groups.add_state(state, &candidates)
    }

    /// Stores the record of an event, replacing an outlier record of the same event, and keeps
    /// the counts.
    fn store_record(
        &mut self,
        pdu: Arc<Pdu>,
        status: EventStatus,
        redacted: Option<RedactedBecause>,
        state: Option<EventState>,
        origin: Origin,
    ) {
        let sequence = match self.events.get(pdu.event_id()) {
            Some(old) => {
                if old.status.is_authorized() {
                    self.authorized_digest.remove(pdu.event_id());
                }
                self.counts.add(&old.status, -1);
                if old.redacted.is_some() {
                    self.counts.redacted -= 1;
                }
                self.event_bytes -= old.pdu.canonical_len();
                old.sequence()
            }
            None => {
                self.next_sequence += 1;
                self.next_sequence - 1
            }
        };
        if status.is_authorized() {
            self.authorized_digest.add(pdu.event_id());
        }
        self.counts.add(&status, 1);
        if redacted.is_some() {
            self.counts.redacted += 1;
        }
        self.event_bytes += pdu.canonical_len();
        let record = EventRecord {
            pdu: pdu.clone(),
            status,
            redacted: redacted.map(Box::new),
            held_state: HeldState::new(state),
            origin,
            sequence: u32::try_from(sequence).expect("fewer than 2^32 events in a room"),
        };
        let key = self.event_key(&pdu);
        if !self.events.contains_key(&key) {
            let events = &self.events;
            let key_of = |id: &str| events.get_key_value(id).map(|(held, _)| held.clone());
            self.auth_citers.add(&key, &pdu, key_of);
        }
        self.events.insert(record);
        self.current_events
            .sync_event(&pdu, &self.current_state, &self.events);
    }

    /// The one `Arc<str>` the store keeps for the PDU's event id: of its record or of the DAG,
    /// else the PDU's own, which every server holding the shared PDU also takes. Shared, so
    /// that each id is held once whatever indexes name it.
    fn event_key(&self, pdu: &Pdu) -> Arc<str> {
        let event_id = pdu.event_id();
        if let Some((key, _)) = self.events.get_key_value(event_id) {
            return key.clone();
        }
        self.dag
            .interned(event_id)
            .cloned()
            .unwrap_or_else(|| pdu.shared_event_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::pdu::{NewEvent, build_pdu};
    use crate::proto::room_version::room_version;
    use crate::server::store::log::DurableLog;
    use crate::server::store::test_support::{ALICE, BOB};
    use crate::server::store::testkit::{EventSpec, RoomBuilder, server_key};
    use serde_json::json;

    fn store_for(room: &RoomBuilder) -> RoomStore {
        RoomStore::new(room.room_id(), room.version(), DurableLog::new())
    }

    /// Guards joins by invitation: the joiner backfilled the invite that let it in, checked it
    /// against the current state (where the invitee is already joined) and soft-failed it, so
    /// it never held the same events as the resident.
    #[test]
    fn backfilled_history_is_not_held_against_the_current_state() {
        let mut room = RoomBuilder::standard(room_version("11").unwrap(), ALICE);
        let fork = room.join(BOB).event_id().to_owned();
        room.event(
            EventSpec::new(ALICE, "m.room.member")
                .state_key(BOB)
                .content(json!({"membership": "ban"}))
                .prev(&[&fork]),
        );
        let message = room.event(
            EventSpec::new(BOB, "m.room.message")
                .content(json!({"body": "before the ban"}))
                .prev(&[&fork]),
        );
        let (history, last) = room.built().split_at(room.built().len() - 1);
        let mut received = store_for(&room);
        let mut backfilled = store_for(&room);
        for pdu in history {
            received.ingest(pdu.clone(), false).unwrap();
            backfilled.ingest(pdu.clone(), false).unwrap();
        }
        let status = received.ingest(last[0].clone(), false).unwrap().status;
        assert!(matches!(status, EventStatus::SoftFailed(_)), "{status:?}");
        let outcome = backfilled.ingest_backfilled(message, false).unwrap();
        assert!(outcome.is_accepted(), "{:?}", outcome.status);
        assert_eq!(backfilled.current_state(), received.current_state());
    }

    /// A batch of history ends in the same state, with the same verdicts, as the same events
    /// placed one by one, resolves fewer states on the way, and replays to an equal store.
    #[test]
    fn a_history_batch_equals_placing_one_by_one() {
        let mut room = RoomBuilder::standard(room_version("12").unwrap(), ALICE);
        let fork = room.join(BOB).event_id().to_owned();
        let topic = |text: &str, prev: &str| {
            EventSpec::new(ALICE, "m.room.topic")
                .state_key("")
                .content(json!({"topic": text}))
                .prev(&[prev])
        };
        // Placed one by one, {first left, right} are extremities for a while: a resolution
        // nothing after needs.
        let first_left = room.event(topic("left 1", &fork)).event_id().to_owned();
        let right = room.event(topic("right", &fork)).event_id().to_owned();
        let left = room
            .event(topic("left 2", &first_left))
            .event_id()
            .to_owned();
        room.event(
            EventSpec::new(BOB, "m.room.message")
                .content(json!({"body": "merge"}))
                .prev(&[&left, &right]),
        );
        room.message(ALICE, "after");
        let events: Vec<(Arc<Pdu>, bool)> = room
            .built()
            .iter()
            .map(|pdu| (pdu.clone(), false))
            .collect();

        let mut one_by_one = store_for(&room);
        let singles: Vec<IngestOutcome> = events
            .iter()
            .map(|(pdu, _)| one_by_one.ingest_backfilled(pdu.clone(), false).unwrap())
            .collect();
        let mut batched = store_for(&room);
        let mut shuffled = events.clone();
        shuffled.push(events[1].clone());
        let outcomes = batched.ingest_history(Vec::new(), shuffled);

        assert_eq!(
            outcomes, singles,
            "same events placed, same verdicts, held twice skipped"
        );
        assert_eq!(batched.current_state(), one_by_one.current_state());
        assert_eq!(
            batched.forward_extremities(),
            one_by_one.forward_extremities()
        );
        assert!(batched.resolutions.len() < one_by_one.resolutions.len());
        batched.check_invariants().unwrap();
        let recovered = RoomStore::recover(batched.log.clone()).unwrap();
        assert!(recovered == batched, "replay batches alike");
    }

    #[test]
    fn a_failed_ingest_changes_nothing() {
        let mut room = RoomBuilder::standard(room_version("11").unwrap(), ALICE);
        let join = room.join(BOB);
        let message = room.message(BOB, "hi");
        let mut tried = store_for(&room);
        let mut untouched = store_for(&room);
        for pdu in &room.built()[..4] {
            tried.ingest(pdu.clone(), false).unwrap();
            untouched.ingest(pdu.clone(), false).unwrap();
        }
        assert!(tried.ingest(message.clone(), false).is_err());
        assert!(
            tried
                .ingest_with_state(message, false, StateMap::new())
                .is_err()
        );
        assert!(tried == untouched);
        assert_eq!(tried.log().len(), untouched.log().len());
        assert!(tried.ingest(join, false).unwrap().is_accepted());
    }

    #[test]
    fn room_v1_events_claiming_a_known_id_must_be_the_same_event() {
        let version = room_version("1").unwrap();
        let room = RoomBuilder::standard(version, ALICE);
        let mut store = store_for(&room);
        for pdu in room.built() {
            store.ingest(pdu.clone(), false).unwrap();
        }
        let join_rules = room.built()[3].clone();
        let (prev, depth) = store.dag().prev_events_for_new_event();
        let opaque = join_rules
            .event_id()
            .trim_start_matches('$')
            .split(':')
            .next()
            .unwrap()
            .to_owned();
        let impostor = NewEvent {
            room_id: Some(room.room_id().to_owned()),
            sender: ALICE.to_owned(),
            event_type: "m.room.topic".to_owned(),
            state_key: Some(String::new()),
            content: json!({"topic": "same id"}).as_object().unwrap().clone(),
            prev_events: prev
                .iter()
                .map(|id| store.events[id.as_str()].pdu.as_reference())
                .collect(),
            auth_events: Vec::new(),
            depth,
            origin_server_ts: 7,
            redacts: None,
            event_id_opaque: Some(opaque),
        };
        let impostor = build_pdu(impostor, version, "a.example", &server_key("a.example")).unwrap();
        assert_eq!(impostor.event_id(), join_rules.event_id());
        assert_eq!(
            store.ingest(impostor, false),
            Err(StoreError::IdConflict {
                event_id: join_rules.event_id().to_owned()
            })
        );
        assert!(store.ingest(join_rules, false).unwrap().duplicate);
    }

    #[test]
    fn an_outlier_batch_must_bring_its_auth_events() {
        let mut room = RoomBuilder::standard(room_version("10").unwrap(), ALICE);
        let join = room.join(BOB);
        let mut store = store_for(&room);
        let batch = vec![(join.clone(), false), (room.built()[2].clone(), false)];
        let error = store.ingest_outliers(batch).unwrap_err();
        let StoreError::Missing {
            event_id,
            auth_events,
            ..
        } = error
        else {
            panic!("{error}")
        };
        assert!(auth_events.contains(&room.create_event().event_id().to_owned()));
        assert!([join.event_id(), room.built()[2].event_id()].contains(&event_id.as_str()));
        assert!(store.records().next().is_none());
    }

    /// Guards against current state lagging the extremities when a late event that is not
    /// accepted links an event placed with state to an older extremity.
    #[test]
    fn a_late_rejected_event_can_retire_an_extremity() {
        let mut room = RoomBuilder::standard(room_version("11").unwrap(), ALICE);
        let older = room.state(ALICE, "m.room.name", json!({"name": "n"}));
        let older = older.event_id().to_owned();
        let rejected = room.message(BOB, "not a member");
        let placed_with_state = room.event(
            EventSpec::new(ALICE, "m.room.topic")
                .state_key("")
                .content(json!({"topic": "t"}))
                .prev(&[rejected.event_id()]),
        );
        let mut store = store_for(&room);
        for pdu in &room.built()[..5] {
            store.ingest(pdu.clone(), false).unwrap();
        }
        // The peer reports a state without the name: the two extremities disagree on it.
        let mut state = room
            .author()
            .state_before(placed_with_state.event_id())
            .unwrap();
        let name_key = ("m.room.name".to_owned(), String::new());
        state.remove(&name_key).unwrap();
        store
            .ingest_with_state(placed_with_state.clone(), false, state)
            .unwrap();
        assert_eq!(store.forward_extremities().len(), 2);
        assert!(store.forward_extremities().contains(&older));
        assert!(store.current_state().contains_key(&name_key));
        let outcome = store.ingest(rejected, false).unwrap();
        assert!(outcome.status.is_rejected());
        assert_eq!(
            store.forward_extremities().iter().collect::<Vec<_>>(),
            [placed_with_state.event_id()]
        );
        assert!(!store.current_state().contains_key(&name_key));
        store.check_invariants().unwrap();
    }

    #[test]
    fn recorded_verdicts_follow_the_status() {
        let error = AuthError::new(AuthRule::SenderNotJoined, "x");
        assert_eq!(
            RecordedVerdict::from(&EventStatus::SoftFailed(Box::new(error.clone()))),
            RecordedVerdict::SoftFailed
        );
        let rejected = EventStatus::Rejected {
            check: Check::StateBefore,
            error: Box::new(error),
        };
        assert_eq!(RecordedVerdict::from(&rejected), RecordedVerdict::Rejected);
        assert!(!rejected.changes_state() && EventStatus::Accepted.changes_state());
    }
}
