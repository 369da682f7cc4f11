//! What the store knows of one event: the PDU as held, its verdict, its state and why it is
//! held redacted.
//!
//! Invariants: `state` is `None` exactly for events held without state (outliers, including
//! rejected ones); for an event that changed nothing (rejected, or not a state event) `after`
//! equals `before`; `pdu` is the redacted form whenever `redacted` is set.

use super::log::Origin;
use super::state_groups::StateGroupId;
use crate::proto::auth::AuthError;
use crate::proto::pdu::Pdu;
use std::sync::Arc;

/// Which check on receipt rejected an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// The checks against the event's own auth events (the list and the rules).
    AuthEvents,
    /// The rules against the state before the event.
    StateBefore,
}

/// An event's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventStatus {
    /// Passed every check: part of the room.
    Accepted,
    /// Passed the checks against its auth events and the state before it, failed against the
    /// current state when it arrived: kept in the DAG and in later events' state, never an
    /// extremity, never sent to clients.
    SoftFailed(Box<AuthError>),
    /// Failed a check that rejects: kept, but changes no state and is never cited.
    Rejected { check: Check, error: Box<AuthError> },
    /// Passed the checks against its auth events; held for auth chains only, without state.
    Outlier,
}

impl EventStatus {
    pub fn is_rejected(&self) -> bool {
        matches!(self, Self::Rejected { .. })
    }

    /// Passed authorization: accepted or soft-failed (soft failure depends on arrival order, so
    /// servers that agree may differ in it; rejection is what they must agree on).
    pub fn is_authorized(&self) -> bool {
        matches!(self, Self::Accepted | Self::SoftFailed(_))
    }

    /// Whether the event's own key is set in the state after it (it passed the checks that
    /// reject and was placed with state).
    pub fn changes_state(&self) -> bool {
        matches!(self, Self::Accepted | Self::SoftFailed(_))
    }
}

/// Why an event is held redacted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedactedBecause {
    /// Its content hash did not match when it was received.
    ContentHashMismatch,
    /// An accepted `m.room.redaction` that was allowed to redact it.
    Redaction { redaction_id: String },
}

/// The state groups of an event placed with state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventState {
    pub before: StateGroupId,
    pub after: StateGroupId,
}

/// An `Option<EventState>` in 8 bytes instead of 12: `None` is a `before` no group has. A
/// server of a thousand-server room holds ten thousand records, and a record of 48 bytes
/// instead of 56 is 130 MB less in such a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct HeldState(EventState);

/// No state group is numbered this (`StateGroups::push` asserts it).
pub(super) const NO_STATE_GROUP: StateGroupId = StateGroupId(u32::MAX);

impl HeldState {
    pub(super) const NONE: Self = Self(EventState {
        before: NO_STATE_GROUP,
        after: NO_STATE_GROUP,
    });

    pub(super) fn new(state: Option<EventState>) -> Self {
        match state {
            Some(state) => {
                assert!(
                    state.before != NO_STATE_GROUP && state.after != NO_STATE_GROUP,
                    "a state group numbered as none"
                );
                Self(state)
            }
            None => Self::NONE,
        }
    }

    pub(super) fn get(self) -> Option<EventState> {
        (self.0.before != NO_STATE_GROUP).then_some(self.0)
    }
}

/// One event as the store holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct EventRecord {
    pub(super) pdu: Arc<Pdu>,
    pub(super) status: EventStatus,
    pub(super) redacted: Option<Box<RedactedBecause>>,
    /// Read with [`EventRecord::state`].
    pub(super) held_state: HeldState,
    pub(super) origin: Origin,
    /// The order in which the store first learnt of the event; an event's auth events always
    /// have smaller numbers.
    pub(super) sequence: u32,
}

impl EventRecord {
    /// The PDU as held: redacted when [`EventRecord::redacted`] says so.
    pub fn pdu(&self) -> &Arc<Pdu> {
        &self.pdu
    }

    pub fn status(&self) -> &EventStatus {
        &self.status
    }

    pub fn redacted(&self) -> Option<&RedactedBecause> {
        self.redacted.as_deref()
    }

    /// `None` for events held without state.
    pub fn state(&self) -> Option<EventState> {
        self.held_state.get()
    }

    pub fn origin(&self) -> Origin {
        self.origin
    }

    pub fn sequence(&self) -> u64 {
        u64::from(self.sequence)
    }

    pub fn is_outlier(&self) -> bool {
        self.state().is_none()
    }

    /// Accepted and not soft-failed: the event may be cited and sent to clients.
    pub fn is_accepted(&self) -> bool {
        self.status == EventStatus::Accepted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_takes_48_bytes_and_keeps_its_state_or_none() {
        assert_eq!(std::mem::size_of::<EventRecord>(), 48);
        let state = EventState {
            before: StateGroupId(0),
            after: StateGroupId(7),
        };
        assert_eq!(HeldState::new(Some(state)).get(), Some(state));
        assert_eq!(HeldState::new(None).get(), None);
    }
}
