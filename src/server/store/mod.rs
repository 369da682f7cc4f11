//! The event store of one homeserver: per room, the event DAG with the state after every
//! event, current state, forward extremities and each event's verdict; and the durable log
//! it is rebuilt from after a crash.
//!
//! The store is a synchronous data structure: no I/O, no clock, no randomness. The async
//! server code drives it (fetching missing events, verifying signatures and hashes) and asks it
//! to place events; everything the store decides is a function of the events it was given and
//! their order.
//!
//! Code map: `room` (the [`RoomStore`] and its accessors), `ingest` (the checks on receipt of
//! a PDU), `outliers` (batches of auth chain events), `state` (state before an event,
//! resolution at merges, current state), `current_events` (current state's events by key, for the
//! authorization rules), `redaction` (applying `m.room.redaction`), `local`
//! (new events of local users), `history` (backfill, missing events, state and auth chains
//! for peers), `visibility` (which servers may see an event), `metrics`, `invariants`,
//! `recover` (rebuilding from the log), `server_store` (the rooms of one server), `dag`,
//! `state_groups`, `log`, `record`, `views` (adapters for the authorization rules and state
//! resolution) and `testkit` (signed rooms for tests).
//!
//! Invariants kept across the store:
//! - Every event's auth events, and (for events not placed with state) its prev events, were
//!   in the store before it; so auth chains are complete and the DAG has no cycle.
//! - An event marked accepted or soft-failed passed the authorization rules against its auth
//!   events and against the state before it; a soft-failed one failed them against the
//!   current state when it arrived.
//! - Forward extremities are accepted events without accepted descendants; current state is
//!   the resolution of their states.
//! - Every change is appended to the durable log, and replaying the log rebuilds an equal
//!   store.

mod conflicts;
mod current_events;
pub mod dag;
mod dag_view;
mod history;
pub(crate) mod id_map;
mod ingest;
mod invariants;
mod local;
pub mod log;
mod metrics;
mod outliers;
mod record;
mod records;
mod recover;
mod redaction;
mod room;
mod server_store;
pub mod set_digest;
pub mod shared_resolutions;
mod state;
pub mod state_groups;
pub mod state_names;
#[cfg(test)]
mod test_support;
pub mod testkit;
mod views;
mod visibility;

pub use dag::{DagError, PREV_EVENTS_MAX};
pub use history::{BACKFILL_LIMIT_MAX, MISSING_EVENTS_LIMIT_MAX};
pub use local::LocalEventDraft;
pub use log::{DurableLog, EventInput, LogRecord, Origin, RecordedVerdict};
pub use metrics::{RoomMetrics, state_digest};
pub use record::{Check, EventRecord, EventState, EventStatus, RedactedBecause};
pub use recover::RecoverError;
pub use room::RoomStore;
pub use server_store::ServerStore;
pub use state_groups::{StateGroupId, StateGroups};

use crate::proto::auth::AuthError;
use crate::proto::state_res::ResolveError;

/// What happened to an event handed to the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngestOutcome {
    pub event_id: String,
    /// The verdict the event holds now.
    pub status: EventStatus,
    /// The store already held the event (with state); nothing changed.
    pub duplicate: bool,
    /// Events this one caused to be held redacted (itself a redaction that applies, or the
    /// target of redactions that were waiting for it).
    pub redacted: Vec<String>,
}

impl IngestOutcome {
    /// Whether the event is part of the room as clients see it (accepted, not soft-failed).
    pub fn is_accepted(&self) -> bool {
        self.status == EventStatus::Accepted
    }
}

/// Why the store did not place an event. None of these changes the store.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error(
        "event {event_id}: missing prev events {prev_events:?}, auth events {auth_events:?}, \
         state events {state_events:?}"
    )]
    Missing {
        event_id: String,
        /// Prev events the store does not hold with state.
        prev_events: Vec<String>,
        /// Auth events the store does not hold at all (in room v12 including the create event
        /// the room id implies).
        auth_events: Vec<String>,
        /// Events named by a state handed with the event that the store does not hold.
        state_events: Vec<String>,
    },
    #[error("event {event_id} is in room {room_id}, not {expected}")]
    WrongRoom {
        event_id: String,
        room_id: String,
        expected: String,
    },
    #[error(
        "event {event_id} was parsed as room version {version}, the room is version {expected}"
    )]
    WrongRoomVersion {
        event_id: String,
        version: &'static str,
        expected: &'static str,
    },
    #[error("event {event_id} differs from the event the store holds under the same id")]
    IdConflict { event_id: String },
    #[error(transparent)]
    Dag(#[from] DagError),
    #[error("the auth events of {event_ids:?} form a cycle")]
    AuthCycle { event_ids: Vec<String> },
    #[error("event {event_id}: the state handed with it is unusable: {problem}")]
    BadState { event_id: String, problem: String },
    #[error("event {event_id} is not held with state")]
    NoState { event_id: String },
    #[error("event {event_id} is unknown")]
    UnknownEvent { event_id: String },
    #[error("event {event_id}: state resolution failed: {error}")]
    Resolve {
        event_id: String,
        error: ResolveError,
    },
    #[error("{sender} may not send this event now: {error}")]
    NotAllowed { sender: String, error: AuthError },
    #[error("room {room_id} is not in the store")]
    UnknownRoom { room_id: String },
    #[error("room {room_id} is held as room version {expected}, not {version}")]
    RoomVersionMismatch {
        room_id: String,
        version: &'static str,
        expected: &'static str,
    },
}
