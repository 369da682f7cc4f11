//! The authorization rules a history generator can ask: fedlab's, ruma's, or both side by side.
//!
//! [`ComparingJudge`] is what the oracle tests use: fedlab decides, ruma is asked the same
//! questions, and every difference is written down with the event and the state it concerned.
//!
//! Invariant: a judge sees every accepted event through `accepted` before it is asked about an
//! event that may cite it.

use std::collections::BTreeSet;

use fedlab::proto::auth::{auth_types_for_event, check_auth};
use fedlab::proto::event::{Event, StateKey, StateMap};
use fedlab::proto::room_version::RoomVersion;

use super::history::{AuthJudge, BranchState, state_ids};
use super::ruma_oracle::RumaRoom;

/// ruma's authorization rules.
pub struct RumaJudge {
    version: &'static RoomVersion,
    room: RumaRoom,
}

impl RumaJudge {
    pub fn new(version: &'static RoomVersion) -> Self {
        let room = RumaRoom::new(version, []).expect("ruma knows room versions 2 to 12");
        Self { version, room }
    }
}

impl AuthJudge for RumaJudge {
    fn auth_types(&mut self, event: &Event) -> Vec<StateKey> {
        self.room
            .auth_types(event)
            .map(|types| types.into_iter().collect())
            .unwrap_or_default()
    }

    fn check(&mut self, event: &Event, state: &BranchState) -> Result<(), String> {
        self.room.check_auth(self.version, event, &state_ids(state))
    }

    fn accepted(&mut self, event: &Event) {
        self.room
            .insert(self.version, event)
            .expect("generated events have ids ruma can parse");
    }

    fn resolve(&mut self, state_sets: &[StateMap]) -> Option<StateMap> {
        self.room.resolve(state_sets).ok()
    }
}

/// fedlab's authorization rules.
pub struct FedlabJudge {
    version: &'static RoomVersion,
}

impl FedlabJudge {
    pub fn new(version: &'static RoomVersion) -> Self {
        Self { version }
    }
}

impl AuthJudge for FedlabJudge {
    fn auth_types(&mut self, event: &Event) -> Vec<StateKey> {
        auth_types_for_event(
            self.version,
            &event.event_type,
            event.state_key.as_deref(),
            &event.sender,
            &event.content,
        )
    }

    fn check(&mut self, event: &Event, state: &BranchState) -> Result<(), String> {
        check_auth(self.version, event, state).map_err(|error| error.to_string())
    }
}

/// One question fedlab and ruma answered differently.
#[derive(Clone, Debug)]
pub struct Disagreement {
    /// What was asked and the two answers.
    pub what: String,
    /// The event concerned (for auth questions).
    pub event: Option<Event>,
    /// The state the event was checked against, or the state sets that were resolved.
    pub state_sets: Vec<StateMap>,
}

/// fedlab decides; ruma answers the same questions; differences are recorded.
pub struct ComparingJudge {
    fedlab: FedlabJudge,
    ruma: RumaJudge,
    pub disagreements: Vec<Disagreement>,
}

impl ComparingJudge {
    pub fn new(version: &'static RoomVersion) -> Self {
        Self {
            fedlab: FedlabJudge::new(version),
            ruma: RumaJudge::new(version),
            disagreements: Vec::new(),
        }
    }
}

impl AuthJudge for ComparingJudge {
    fn auth_types(&mut self, event: &Event) -> Vec<StateKey> {
        let ours = self.fedlab.auth_types(event);
        let theirs = self.ruma.auth_types(event);
        let ours_set: BTreeSet<&StateKey> = ours.iter().collect();
        let theirs_set: BTreeSet<&StateKey> = theirs.iter().collect();
        if ours_set != theirs_set {
            self.disagreements.push(Disagreement {
                what: format!(
                    "auth events selection for {}: fedlab {ours_set:?}, ruma {theirs_set:?}",
                    event.event_id
                ),
                event: Some(event.clone()),
                state_sets: Vec::new(),
            });
        }
        ours
    }

    fn check(&mut self, event: &Event, state: &BranchState) -> Result<(), String> {
        let ours = self.fedlab.check(event, state);
        let theirs = self.ruma.check(event, state);
        if ours.is_ok() != theirs.is_ok() {
            self.disagreements.push(Disagreement {
                what: format!(
                    "authorization of {} ({} by {}): fedlab {ours:?}, ruma {theirs:?}",
                    event.event_id, event.event_type, event.sender
                ),
                event: Some(event.clone()),
                state_sets: vec![state_ids(state)],
            });
        }
        ours
    }

    fn accepted(&mut self, event: &Event) {
        self.fedlab.accepted(event);
        self.ruma.accepted(event);
    }
}
