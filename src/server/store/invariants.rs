//! A full check of the store's invariants, from scratch. Too slow to run on every ingest; the
//! tests run it after each scenario, and the simulation may run it at the end of a run.
//!
//! Checked: the DAG has no cycle and its extremities are right; every state group's parent
//! chain ends; each record agrees with the DAG and the state groups; an accepted or
//! soft-failed event passes the authorization rules against the state before it (unless a
//! redaction changed what the rules read since); extremities are accepted; current state is
//! the resolution of the extremities' states and equals its group, and its events by key follow
//! it and the records; the counts, the digest of
//! authorized events and the next sequence number match the records.

use super::record::{EventStatus, RedactedBecause};
use super::room::{Counts, RoomStore};
use super::set_digest::SetDigest;
use super::views::GroupState;
use crate::proto::auth::{auth_types_for_event, check_auth};

impl RoomStore {
    /// Checks every invariant; the error names the first one broken and where.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.dag.check_invariants(&self.events)?;
        self.groups.check_invariants()?;
        let mut counts = Counts::default();
        let mut event_bytes = 0;
        for (event_id, record) in self.events.sorted() {
            counts.add(&record.status, 1);
            if record.redacted.is_some() {
                counts.redacted += 1;
            }
            event_bytes += record.pdu.canonical_len();
            self.check_record(event_id)?;
        }
        let authorized = self
            .events
            .values()
            .filter(|record| record.status.is_authorized())
            .map(|record| record.pdu.event_id());
        if SetDigest::of(authorized) != self.authorized_digest {
            return Err("the digest of authorized events does not match the records".to_owned());
        }
        let sequence_end = self.events.values().map(|r| r.sequence() + 1).max();
        if sequence_end.unwrap_or(0) != self.next_sequence {
            return Err(format!(
                "next sequence {} after records ending at {sequence_end:?}",
                self.next_sequence
            ));
        }
        if counts != self.counts || event_bytes != self.event_bytes {
            return Err(format!(
                "counts {:?} / {} bytes kept, {counts:?} / {event_bytes} bytes held",
                self.counts, self.event_bytes
            ));
        }
        for event_id in self.dag.extremities() {
            if !self.events[event_id.as_str()].is_accepted() {
                return Err(format!("extremity {event_id} is not accepted"));
            }
        }
        let mut extremity_groups: Vec<_> = self
            .dag
            .extremities()
            .iter()
            .map(|event_id| self.group_after(event_id))
            .collect();
        extremity_groups.sort_unstable();
        extremity_groups.dedup();
        let expected_group = match extremity_groups.as_slice() {
            [] => None,
            [only] => Some(*only),
            // A merge long current may have been forgotten by the bounded memo: then only the
            // current state's agreement with its group is checked below.
            groups => match self.resolutions.get(groups) {
                Some(group) => Some(*group),
                None => self.current_group,
            },
        };
        if expected_group != self.current_group {
            return Err(format!(
                "current state is group {:?}, the extremities resolve to {expected_group:?}",
                self.current_group
            ));
        }
        match self.current_group {
            Some(group) if self.groups.state(group) != self.current_state => {
                return Err("current state differs from its state group".to_owned());
            }
            None if !self.current_state.is_empty() => {
                return Err("current state without a state group".to_owned());
            }
            _ => {}
        }
        self.current_events
            .check(&self.current_state, &self.events)?;
        for target_id in self.pending_redactions.keys() {
            if self.events.contains_key(target_id.as_str()) {
                return Err(format!(
                    "redaction of {target_id} pending though it is held"
                ));
            }
        }
        Ok(())
    }

    fn check_record(&self, event_id: &str) -> Result<(), String> {
        let record = &self.events[event_id];
        let event = record.pdu.event();
        if event.event_id != event_id {
            return Err(format!("{event_id} is held under another id"));
        }
        // The DAG's nodes are the records held with state (see `dag_view`), so only the
        // verdict can disagree with the state here.
        let Some(state) = record.state() else {
            if record.status.changes_state() {
                return Err(format!("{event_id} has no state yet is accepted"));
            }
            return Ok(());
        };
        if record.status == EventStatus::Outlier {
            return Err(format!("{event_id} has state but is marked an outlier"));
        }
        let sets_key = record.status.changes_state() && event.is_state();
        let holds_itself = self
            .groups
            .get(state.after, &event.state_key_pair().unwrap_or_default())
            == Some(event_id);
        if sets_key != holds_itself || (!sets_key && state.after != state.before) {
            return Err(format!(
                "the state after {event_id} does not match its verdict"
            ));
        }
        if record.status.changes_state() && !self.auth_inputs_redacted(event_id, state.before) {
            let state_before = GroupState {
                groups: &self.groups,
                group: state.before,
                events: &self.events,
            };
            if let Err(error) = check_auth(self.version, event, &state_before) {
                return Err(format!(
                    "{event_id} is marked passed but fails auth: {error}"
                ));
            }
        }
        Ok(())
    }

    /// Whether a redaction event changed the event or what the rules read for it: redaction
    /// keeps the keys the rules read in most versions, but not all (power levels' `invite`
    /// before room v11), so a verdict given before a redaction may differ from one after.
    fn auth_inputs_redacted(&self, event_id: &str, before: super::StateGroupId) -> bool {
        let by_redaction = |id: &str| {
            matches!(
                self.events
                    .get(id)
                    .and_then(|record| record.redacted.as_deref()),
                Some(RedactedBecause::Redaction { .. })
            )
        };
        let event = self.events[event_id].pdu.event();
        by_redaction(event_id)
            || auth_types_for_event(
                self.version,
                &event.event_type,
                event.state_key.as_deref(),
                &event.sender,
                &event.content,
            )
            .iter()
            .chain([&("m.room.create".to_owned(), String::new())])
            .filter_map(|key| self.groups.get(before, key))
            .any(by_redaction)
    }
}

#[cfg(test)]
mod tests {
    use crate::server::store::test_support::*;
    use crate::server::store::testkit::RoomBuilder;

    #[test]
    fn a_consistent_store_passes_and_corruptions_are_named() {
        let mut room = RoomBuilder::standard(v("11"), ALICE);
        room.join(BOB);
        let message = room.message(BOB, "hi");
        let store = store_with_all(&room);
        store.check_invariants().unwrap();

        let mut wrong_counts = store_with_all(&room);
        wrong_counts.counts.accepted += 1;
        assert!(
            wrong_counts
                .check_invariants()
                .unwrap_err()
                .contains("counts")
        );

        let mut wrong_state = store_with_all(&room);
        wrong_state.current_state.clear();
        assert!(
            wrong_state
                .check_invariants()
                .unwrap_err()
                .contains("current state")
        );

        let mut wrong_digest = store_with_all(&room);
        wrong_digest.authorized_digest.remove(message.event_id());
        assert!(
            wrong_digest
                .check_invariants()
                .unwrap_err()
                .contains("digest of authorized events")
        );

        let mut stray_redaction = store_with_all(&room);
        stray_redaction
            .pending_redactions
            .insert(message.event_id().to_owned(), Default::default());
        assert!(
            stray_redaction
                .check_invariants()
                .unwrap_err()
                .contains("pending")
        );

        let mut unchecked = store_with_all(&room);
        let record = unchecked.events.get_mut(message.event_id()).unwrap();
        record.held_state = crate::server::store::record::HeldState::NONE;
        assert!(
            unchecked
                .check_invariants()
                .unwrap_err()
                .contains(message.event_id())
        );
    }
}
