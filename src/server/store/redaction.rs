//! Applying `m.room.redaction`: the target is then held in its redacted form.
//!
//! A redaction applies once it is accepted (not soft-failed) and both it and its target are
//! held, whichever arrived first. From room v3 on the authorization rules let any member with
//! the power to send `m.room.redaction` send one; the redaction is applied only when its
//! sender's server is the target's sender's server, or its sender's power level reaches the
//! `redact` level (default 50) in the state before the redaction. In rooms v1 and v2 the
//! authorization rules already required one or the other, so an accepted redaction applies.
//!
//! Invariants: redaction never changes an event's id, its verdict or the state groups; an
//! event is redacted at most once (later redactions of it change nothing); a pending redaction
//! names a target the store does not hold.

use super::RedactedBecause;
use super::room::RoomStore;
use super::views::GroupState;
use crate::proto::auth::{AuthState, parse_power_level, user_power_level};
use std::sync::Arc;

/// The spec's default for `redact` in `m.room.power_levels`.
const REDACT_LEVEL_DEFAULT: i128 = 50;

impl RoomStore {
    /// After `event_id` was stored: applies it if it is an accepted redaction, and applies the
    /// redactions that were waiting for it. Returns the events newly held redacted.
    pub(super) fn apply_redactions_for(&mut self, event_id: &str) -> Vec<String> {
        let mut redacted = Vec::new();
        let record = &self.events[event_id];
        let event = record.pdu.event();
        let applies = record.is_accepted() && event.event_type == "m.room.redaction";
        if let (true, Some(target_id)) = (applies, event.redacts.clone()) {
            if self.events.contains_key(target_id.as_str()) {
                if self.redact_if_allowed(event_id, &target_id) {
                    redacted.push(target_id);
                }
            } else {
                self.pending_redactions
                    .entry(target_id)
                    .or_default()
                    .insert(event_id.to_owned());
            }
        }
        for redaction_id in self
            .pending_redactions
            .remove(event_id)
            .into_iter()
            .flatten()
        {
            if self.redact_if_allowed(&redaction_id, event_id) {
                redacted.push(event_id.to_owned());
            }
        }
        redacted
    }

    fn redact_if_allowed(&mut self, redaction_id: &str, target_id: &str) -> bool {
        if self.events[target_id].redacted.is_some()
            || !self.redaction_applies(redaction_id, target_id)
        {
            return false;
        }
        let record = self.events.get_mut(target_id).expect("the target is held");
        let pdu = Arc::new(record.pdu.redacted());
        self.event_bytes = self.event_bytes - record.pdu.canonical_len() + pdu.canonical_len();
        record.pdu = pdu.clone();
        record.redacted = Some(Box::new(RedactedBecause::Redaction {
            redaction_id: redaction_id.to_owned(),
        }));
        self.counts.redacted += 1;
        self.current_events
            .sync_event(&pdu, &self.current_state, &self.events);
        true
    }

    /// Whether an accepted redaction may redact its target (see the module doc).
    fn redaction_applies(&self, redaction_id: &str, target_id: &str) -> bool {
        if self.version.event_ids_in_events() {
            return true;
        }
        let redaction_record = &self.events[redaction_id];
        let redaction = redaction_record.pdu.event();
        let target = self.events[target_id].pdu.event();
        if redaction.sender_server() == target.sender_server() {
            return true;
        }
        let before = redaction_record
            .state()
            .expect("an accepted redaction is held with state")
            .before;
        let state = GroupState {
            groups: &self.groups,
            group: before,
            events: &self.events,
        };
        let redact_level = state
            .get("m.room.power_levels", "")
            .and_then(|power_levels| power_levels.content.get("redact"))
            .and_then(|value| parse_power_level(self.version, value))
            .unwrap_or(REDACT_LEVEL_DEFAULT);
        user_power_level(self.version, &redaction.sender, &state) >= redact_level
    }
}

#[cfg(test)]
mod tests {
    use crate::server::store::RedactedBecause;
    use crate::server::store::test_support::*;
    use crate::server::store::testkit::{EventSpec, RoomBuilder};
    use serde_json::json;

    /// Power levels without a `redact` key: the level is the spec's default, 50.
    #[test]
    fn the_redact_level_defaults_to_fifty() {
        for (moderator_level, applies) in [(49, false), (50, true)] {
            let mut room = RoomBuilder::new(v("11"), ALICE);
            room.join(ALICE);
            let moderator = "@mod:m.example";
            room.state(
                ALICE,
                "m.room.power_levels",
                json!({"users": {ALICE: 100, moderator: moderator_level}}),
            );
            room.state(ALICE, "m.room.join_rules", json!({"join_rule": "public"}));
            room.join(moderator);
            let target = room.message(ALICE, "x");
            room.event(
                EventSpec::new(moderator, "m.room.redaction")
                    .content(json!({}))
                    .redacts(target.event_id()),
            );
            let store = store_with_all(&room);
            let redacted = store.record(target.event_id()).unwrap().redacted().cloned();
            assert_eq!(
                matches!(redacted, Some(RedactedBecause::Redaction { .. })),
                applies,
                "level {moderator_level}"
            );
        }
    }

    #[test]
    fn an_event_is_redacted_once() {
        let mut room = RoomBuilder::standard(v("12"), ALICE);
        let target = room.message(ALICE, "x");
        let redaction = |room: &mut RoomBuilder| {
            room.event(
                EventSpec::new(ALICE, "m.room.redaction")
                    .content(json!({"reason": room.built().len()}))
                    .redacts(target.event_id()),
            )
        };
        let first = redaction(&mut room);
        redaction(&mut room);
        let store = store_with_all(&room);
        assert_eq!(
            store.record(target.event_id()).unwrap().redacted(),
            Some(&RedactedBecause::Redaction {
                redaction_id: first.event_id().to_owned()
            })
        );
        assert_eq!(store.metrics().redacted, 1);
    }
}
