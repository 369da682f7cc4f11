//! ruma's state resolution and authorization rules, fed with fedlab's events: the oracle that
//! the differential tests and benches compare fedlab against.
//!
//! [`RumaRoom`] converts every fedlab [`Event`] once into ruma's event model ([`RumaPdu`], which
//! implements ruma's `Event` trait) and then answers with ruma's code alone. The two inputs that
//! ruma leaves to its caller are computed here from the spec's definitions, not from fedlab:
//! - the full auth chain of each state set: the union of the auth chains of its events, an
//!   event's auth chain being everything reachable through `auth_events`, the event itself
//!   excluded;
//! - for v2.1 (room v12), the conflicted state subgraph: every event on an `auth_events` path
//!   between two events of the conflicted state set, endpoints included.
//!
//! Invariant: results come back as fedlab's sorted [`StateMap`], so a comparison never depends
//! on ruma's hash map order.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use fedlab::proto::event::{Event, StateMap};
use fedlab::proto::room_version::RoomVersion;
use ruma::events::{StateEventType, TimelineEventType};
use ruma::room_version_rules::{AuthorizationRules, RoomVersionRules, StateResolutionV2Rules};
use ruma::state_res::utils::event_id_set::EventIdSet;
use ruma::{
    EventId, MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId, OwnedUserId, RoomId,
    RoomVersionId, UInt, UserId,
};
use serde_json::value::RawValue as RawJsonValue;

/// A fedlab event in ruma's event model.
#[derive(Debug)]
pub struct RumaPdu {
    event_id: OwnedEventId,
    room_id: Option<OwnedRoomId>,
    sender: OwnedUserId,
    origin_server_ts: MilliSecondsSinceUnixEpoch,
    event_type: TimelineEventType,
    state_key: Option<String>,
    content: Box<RawJsonValue>,
    prev_events: Vec<OwnedEventId>,
    auth_events: Vec<OwnedEventId>,
    redacts: Option<OwnedEventId>,
}

impl RumaPdu {
    /// Converts `event` for a room of `version`. From room v12 on the create event has no room
    /// id (the room id is derived from it), so ruma sees none whatever `event.room_id` holds.
    pub fn from_event(version: &RoomVersion, event: &Event) -> Result<Self, String> {
        let at = |field: &str| format!("event {} field {field}", event.event_id);
        let is_create = event.is("m.room.create", "");
        let room_id =
            if (version.room_id_from_create_event && is_create) || event.room_id.is_empty() {
                None
            } else {
                Some(
                    RoomId::parse(&event.room_id)
                        .map_err(|error| format!("{}: {error}", at("room_id")))?,
                )
            };
        let content = serde_json::value::to_raw_value(&event.content)
            .map_err(|error| format!("{}: {error}", at("content")))?;
        Ok(Self {
            event_id: parse_event_id(&event.event_id)
                .map_err(|e| format!("{}: {e}", at("event_id")))?,
            room_id,
            sender: UserId::parse(&event.sender)
                .map_err(|error| format!("{}: {error}", at("sender")))?,
            origin_server_ts: MilliSecondsSinceUnixEpoch(
                UInt::try_from(event.origin_server_ts)
                    .map_err(|error| format!("{}: {error}", at("origin_server_ts")))?,
            ),
            event_type: TimelineEventType::from(event.event_type.as_str()),
            state_key: event.state_key.clone(),
            content,
            prev_events: parse_event_ids(&event.prev_events)
                .map_err(|e| format!("{}: {e}", at("prev_events")))?,
            auth_events: parse_event_ids(&event.auth_events)
                .map_err(|e| format!("{}: {e}", at("auth_events")))?,
            redacts: event
                .redacts
                .as_deref()
                .map(parse_event_id)
                .transpose()
                .map_err(|error| format!("{}: {error}", at("redacts")))?,
        })
    }
}

fn parse_event_id(text: &str) -> Result<OwnedEventId, String> {
    EventId::parse(text).map_err(|error| format!("{text:?}: {error}"))
}

fn parse_event_ids(ids: &[String]) -> Result<Vec<OwnedEventId>, String> {
    ids.iter().map(|id| parse_event_id(id)).collect()
}

impl ruma::state_res::Event for RumaPdu {
    type Id = OwnedEventId;

    fn event_id(&self) -> &Self::Id {
        &self.event_id
    }

    fn room_id(&self) -> Option<&RoomId> {
        self.room_id.as_deref()
    }

    fn sender(&self) -> &UserId {
        &self.sender
    }

    fn origin_server_ts(&self) -> MilliSecondsSinceUnixEpoch {
        self.origin_server_ts
    }

    fn event_type(&self) -> &TimelineEventType {
        &self.event_type
    }

    fn content(&self) -> &RawJsonValue {
        &self.content
    }

    fn state_key(&self) -> Option<&str> {
        self.state_key.as_deref()
    }

    fn prev_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.prev_events.iter())
    }

    fn auth_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.auth_events.iter())
    }

    fn redacts(&self) -> Option<&Self::Id> {
        self.redacts.as_ref()
    }

    /// Every event handed to the oracle passed the checks on receipt: the histories under test
    /// hold accepted events only.
    fn rejected(&self) -> bool {
        false
    }
}

/// ruma's id for a fedlab room version.
pub fn ruma_version_id(version: &RoomVersion) -> RoomVersionId {
    RoomVersionId::try_from(version.id).expect("every fedlab room version id is a ruma one")
}

/// A room's events, converted once, and ruma's rules for its version.
pub struct RumaRoom {
    auth_rules: AuthorizationRules,
    state_res_rules: StateResolutionV2Rules,
    events: HashMap<OwnedEventId, Arc<RumaPdu>>,
    /// Whether a state set's full auth chain also holds the state set's own events, as Synapse
    /// computes it; the spec's definition (the default) leaves them out.
    state_events_in_auth_chains: bool,
}

/// ruma's state maps are keyed by its own event type enum.
pub type RumaStateMap = ruma::state_res::StateMap<OwnedEventId>;

impl RumaRoom {
    /// Converts `events` for a room of `version`. Fails on ids ruma cannot parse, and for room
    /// version 1, whose resolution algorithm ruma does not implement.
    pub fn new<'a>(
        version: &RoomVersion,
        events: impl IntoIterator<Item = &'a Event>,
    ) -> Result<Self, String> {
        let rules: RoomVersionRules = ruma_version_id(version)
            .rules()
            .ok_or_else(|| format!("ruma has no rules for room version {}", version.id))?;
        let state_res_rules = *rules.state_res.v2_rules().ok_or_else(|| {
            format!(
                "ruma has no state resolution v1 (room version {})",
                version.id
            )
        })?;
        let events = events
            .into_iter()
            .map(|event| {
                let pdu = RumaPdu::from_event(version, event)?;
                Ok((pdu.event_id.clone(), Arc::new(pdu)))
            })
            .collect::<Result<_, String>>()?;
        Ok(Self {
            auth_rules: rules.authorization,
            state_res_rules,
            events,
            state_events_in_auth_chains: false,
        })
    }

    /// The same room, with full auth chains that hold the state sets' own events (Synapse's
    /// reading of the auth difference) instead of the spec's.
    pub fn with_state_events_in_auth_chains(mut self) -> Self {
        self.state_events_in_auth_chains = true;
        self
    }

    /// Resolves `state_sets` with ruma's state resolution v2 (v2.1 for room v12).
    pub fn resolve(&self, state_sets: &[StateMap]) -> Result<StateMap, String> {
        let prepared = self.prepare(state_sets)?;
        Ok(from_ruma_state_map(&self.resolve_prepared(&prepared)?))
    }

    /// `state_sets` in ruma's own map type.
    pub fn prepare(&self, state_sets: &[StateMap]) -> Result<Vec<RumaStateMap>, String> {
        state_sets
            .iter()
            .map(|set| self.to_ruma_state_map(set))
            .collect()
    }

    /// Resolves state sets already in ruma's map type: everything ruma needs from its caller
    /// (the auth chains, the conflicted state subgraph) is computed here, in the call. Never
    /// inlined, so that an instruction-counting profiler sees each call of the bench whole.
    #[inline(never)]
    pub fn resolve_prepared(&self, state_sets: &[RumaStateMap]) -> Result<RumaStateMap, String> {
        let auth_chains = state_sets
            .iter()
            .map(|set| self.full_auth_chain(set.values()))
            .collect();
        ruma::state_res::resolve(
            &self.auth_rules,
            &self.state_res_rules,
            state_sets,
            auth_chains,
            |event_id: &EventId| self.events.get(event_id).cloned(),
            |conflicted: &ruma::state_res::StateMap<Vec<OwnedEventId>>| {
                Some(self.conflicted_state_subgraph(conflicted.values().flatten()))
            },
        )
        .map_err(|error| format!("ruma failed to resolve: {error}"))
    }

    /// The full conflicted set of `state_sets` by the spec's definitions: the conflicted state
    /// set, the auth difference and (v2.1) the conflicted state subgraph. For reporting the size
    /// of a problem; resolution itself leaves this to ruma.
    pub fn full_conflicted_set(&self, state_sets: &[StateMap]) -> Result<BTreeSet<String>, String> {
        let ruma_sets = state_sets
            .iter()
            .map(|set| self.to_ruma_state_map(set))
            .collect::<Result<Vec<_>, _>>()?;
        let mut conflicted: BTreeSet<OwnedEventId> = BTreeSet::new();
        let keys: BTreeSet<_> = ruma_sets.iter().flat_map(|set| set.keys()).collect();
        for key in keys {
            let values: Vec<Option<&OwnedEventId>> =
                ruma_sets.iter().map(|set| set.get(key)).collect();
            if values.windows(2).any(|pair| pair[0] != pair[1]) {
                conflicted.extend(values.into_iter().flatten().cloned());
            }
        }
        let chains: Vec<EventIdSet<OwnedEventId>> = ruma_sets
            .iter()
            .map(|set| self.full_auth_chain(set.values()))
            .collect();
        let mut full: BTreeSet<OwnedEventId> = conflicted.clone();
        for chain in &chains {
            full.extend(
                chain
                    .iter()
                    .filter(|id| !chains.iter().all(|other| other.contains(id)))
                    .cloned(),
            );
        }
        if self.state_res_rules.consider_conflicted_state_subgraph {
            full.extend(self.conflicted_state_subgraph(&conflicted));
        }
        Ok(full.into_iter().map(|id| id.to_string()).collect())
    }

    /// The size of the largest auth chain among `event_ids`: how deep the history behind them is.
    pub fn auth_chain_size_max(&self, event_ids: impl IntoIterator<Item = String>) -> usize {
        event_ids
            .into_iter()
            .filter_map(|id| parse_event_id(&id).ok())
            .map(|id| self.full_auth_chain([&id]).len())
            .max()
            .unwrap_or(0)
    }

    fn to_ruma_state_map(&self, set: &StateMap) -> Result<RumaStateMap, String> {
        set.iter()
            .map(|((event_type, state_key), event_id)| {
                let event_id = parse_event_id(event_id)?;
                Ok((
                    (StateEventType::from(event_type.as_str()), state_key.clone()),
                    event_id,
                ))
            })
            .collect()
    }

    fn auth_events_of(&self, event_id: &EventId) -> &[OwnedEventId] {
        self.events
            .get(event_id)
            .map_or(&[], |event| event.auth_events.as_slice())
    }

    /// The union of the auth chains of `event_ids`, the events themselves left out unless one is
    /// in the auth chain of another (or the room reads auth chains as Synapse does).
    fn full_auth_chain<'a>(
        &self,
        event_ids: impl IntoIterator<Item = &'a OwnedEventId>,
    ) -> EventIdSet<OwnedEventId> {
        let mut chain = EventIdSet::new();
        let mut to_visit: Vec<&OwnedEventId> = Vec::new();
        for id in event_ids {
            if self.state_events_in_auth_chains {
                chain.insert(id.clone());
            }
            to_visit.extend(self.auth_events_of(id));
        }
        while let Some(id) = to_visit.pop() {
            if chain.insert(id.clone()) {
                to_visit.extend(self.auth_events_of(id));
            }
        }
        chain
    }

    /// Every event on an `auth_events` path from one conflicted event to another, endpoints
    /// included: the events reachable from the conflicted set that reach back into it.
    fn conflicted_state_subgraph<'a>(
        &self,
        conflicted: impl IntoIterator<Item = &'a OwnedEventId>,
    ) -> EventIdSet<OwnedEventId> {
        let conflicted: BTreeSet<&OwnedEventId> = conflicted.into_iter().collect();
        // Depth-first over the auth DAG from the conflicted events; an event is on a path when it
        // is conflicted itself or one of its auth events is on a path. Post-order makes every
        // auth event's verdict known before its dependants'.
        let mut on_path: HashMap<&OwnedEventId, bool> = HashMap::new();
        let mut stack: Vec<(&OwnedEventId, bool)> =
            conflicted.iter().map(|&id| (id, false)).collect();
        while let Some((id, children_done)) = stack.pop() {
            if children_done {
                let reaches = conflicted.contains(id)
                    || self
                        .auth_events_of(id)
                        .iter()
                        .any(|auth_id| on_path.get(auth_id).copied().unwrap_or(false));
                on_path.insert(id, reaches);
                continue;
            }
            if on_path.contains_key(id) {
                continue;
            }
            stack.push((id, true));
            for auth_id in self.auth_events_of(id) {
                if !on_path.contains_key(auth_id) {
                    stack.push((auth_id, false));
                }
            }
        }
        on_path
            .into_iter()
            .filter(|&(_, reaches)| reaches)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// ruma's verdict on `event` under the authorization rules that depend on state, given the
    /// room state before it. `event` need not be one of the room's events.
    pub fn check_auth(
        &self,
        version: &RoomVersion,
        event: &Event,
        state: &StateMap,
    ) -> Result<(), String> {
        let pdu = RumaPdu::from_event(version, event)?;
        ruma::state_res::check_state_dependent_auth_rules(
            &self.auth_rules,
            &pdu,
            |event_type: &StateEventType, state_key: &str| {
                let event_id = state.get(&(event_type.to_string(), state_key.to_owned()))?;
                self.events.get(event_id.as_str()).cloned()
            },
        )
    }

    /// The state keys ruma's auth events selection asks for, sorted.
    pub fn auth_types(&self, event: &Event) -> Result<BTreeSet<(String, String)>, String> {
        let pdu_content = serde_json::value::to_raw_value(&event.content)
            .map_err(|error| format!("event {} content: {error}", event.event_id))?;
        let sender = UserId::parse(&event.sender)
            .map_err(|error| format!("event {} sender: {error}", event.event_id))?;
        let types = ruma::state_res::auth_types_for_event(
            &TimelineEventType::from(event.event_type.as_str()),
            &sender,
            event.state_key.as_deref(),
            &pdu_content,
            &self.auth_rules,
        )?;
        Ok(types
            .into_iter()
            .map(|(event_type, state_key)| (event_type.to_string(), state_key))
            .collect())
    }

    /// Adds one more event (an accepted one) to the room.
    pub fn insert(&mut self, version: &RoomVersion, event: &Event) -> Result<(), String> {
        let pdu = RumaPdu::from_event(version, event)?;
        self.events.insert(pdu.event_id.clone(), Arc::new(pdu));
        Ok(())
    }
}

/// ruma's state map as fedlab's sorted one.
fn from_ruma_state_map(map: &RumaStateMap) -> StateMap {
    map.iter()
        .map(|((event_type, state_key), event_id)| {
            (
                (event_type.to_string(), state_key.clone()),
                event_id.to_string(),
            )
        })
        .collect()
}
