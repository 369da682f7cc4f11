//! The authorization rules a history generator can ask: ruma's for now.
//!
//! Invariant: a judge sees every accepted event through `accepted` before it is asked about an
//! event that may cite it.

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
