//! The authorization rules a history generator can ask: fedlab's, ruma's, or both side by side.
//!
//! [`ComparingJudge`] is what the oracle tests use: fedlab decides, ruma is asked the same
//! questions, and every difference is written down with the event and the state it concerned.
//!
//! Invariant: a judge sees every accepted event through `accepted` before it is asked about an
//! event that may cite it.

use std::collections::{BTreeMap, BTreeSet};

use fedlab::proto::auth::{auth_types_for_event, check_auth};
use fedlab::proto::event::{Event, StateKey, StateMap};
use fedlab::proto::room_version::RoomVersion;
use fedlab::proto::state_res::resolve;

use super::history::{AuthJudge, BranchState, state_ids};
use super::ruma_oracle::RumaRoom;

/// ruma's authorization rules.
pub struct RumaJudge {
    version: &'static RoomVersion,
    pub room: RumaRoom,
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
    version: &'static RoomVersion,
    fedlab: FedlabJudge,
    ruma: RumaJudge,
    /// Every accepted event, for fedlab's resolver.
    events: BTreeMap<String, Event>,
    /// Differences in authorization and auth events selection.
    pub disagreements: Vec<Disagreement>,
    /// Differences in the resolution of the states at merges.
    pub resolution_disagreements: Vec<Disagreement>,
}

impl ComparingJudge {
    pub fn new(version: &'static RoomVersion) -> Self {
        Self {
            version,
            fedlab: FedlabJudge::new(version),
            ruma: RumaJudge::new(version),
            events: BTreeMap::new(),
            disagreements: Vec::new(),
            resolution_disagreements: Vec::new(),
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
        self.events.insert(event.event_id.clone(), event.clone());
    }

    fn resolve(&mut self, state_sets: &[StateMap]) -> Option<StateMap> {
        let ours = resolve(
            self.version,
            self.version.state_res,
            state_sets,
            &self.events,
        )
        .map(|resolved| resolved.state)
        .map_err(|error| error.to_string());
        let theirs = self.ruma.room.resolve(state_sets);
        if ours != theirs {
            self.resolution_disagreements.push(Disagreement {
                what: format!(
                    "resolution at a merge: {}",
                    describe_states(ours.as_ref(), theirs.as_ref())
                ),
                event: None,
                state_sets: state_sets.to_vec(),
            });
        }
        ours.ok()
    }
}

/// Two resolution outcomes, differing keys first.
pub fn describe_states(
    ours: Result<&StateMap, &String>,
    theirs: Result<&StateMap, &String>,
) -> String {
    let (Ok(ours), Ok(theirs)) = (ours, theirs) else {
        return format!("fedlab {ours:?}, ruma {theirs:?}");
    };
    let keys: BTreeSet<&StateKey> = ours.keys().chain(theirs.keys()).collect();
    let differences: Vec<String> = keys
        .into_iter()
        .filter(|key| ours.get(*key) != theirs.get(*key))
        .map(|key| {
            format!(
                "({}, {:?}): fedlab {:?}, ruma {:?}",
                key.0,
                key.1,
                ours.get(key),
                theirs.get(key)
            )
        })
        .collect();
    format!(
        "{} key(s) differ: {}",
        differences.len(),
        differences.join("; ")
    )
}
