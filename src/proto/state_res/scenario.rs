//! The input of `fedlab proto resolve`: a room version, events, and either state sets to resolve
//! or an event to compute the state after.
//!
//! ```json
//! {"room_version": "11",
//!  "events": [{"event_id": "$create", "type": "m.room.create", "state_key": "", ...}, ...],
//!  "state_sets": [["$create", "$join_alice"], ["$create", "$join_bob"]]}
//! ```
//!
//! or `"at": "$event"` instead of `state_sets`. Two kinds of events are read:
//! - hand-written ones: an explicit `event_id`, plain-string `prev_events` and `auth_events` in
//!   every room version, no hashes or signatures; `auth_events` may be left out (they are then
//!   chosen by the spec's auth events selection from the state before the event, found by
//!   replaying the DAG), and so may `depth` (one more than the deepest prev event), `content`
//!   (empty) and `room_id` (the create event's room: in room v12 `!` and the create event's id
//!   without `$`, before that the create event's `room_id`, or `!room:` and its sender's
//!   server);
//! - events exported from a server: `[id, {hashes}]` pairs in `prev_events` and `auth_events`
//!   (rooms v1 and v2), `redacts` at the top level or in `content`, and keys such as `hashes`,
//!   `signatures` or `unsigned`, which are ignored.
//!
//! Errors name the event by its position in `events` (from 0) and its id, and the field:
//! "event #3 ($abc): `prev_events` must be an array of event ids".
//!
//! Invariant: a parsed [`Scenario`] has unique event ids, and every id in its state sets or
//! `at` is one of its events; state sets hold state events only, one per key.

use super::replay::{Edges, Replayer, check_create_event, topological_order};
use super::{Replay, Resolved, WithRejected, resolve};
use crate::proto::auth::auth_types_for_event;
use crate::proto::event::{Event, StateMap};
use crate::proto::room_version::{RoomVersion, StateResAlgorithm, room_version};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The room id given to events without a `room_id` when there is no create event either.
pub const DEFAULT_ROOM_ID: &str = "!room:example.org";

/// Why the input is unusable; the message names the event, field or state set.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScenarioError(pub String);

/// What to compute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// Resolve these state sets.
    StateSets(Vec<StateMap>),
    /// The state after this event, replaying the whole DAG.
    At(String),
}

/// A parsed resolver input.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub version: &'static RoomVersion,
    pub events: BTreeMap<String, Event>,
    pub query: Query,
    /// Events written without `auth_events`: theirs are chosen during the replay.
    auth_events_to_choose: BTreeSet<String>,
}

impl Scenario {
    /// Parses the JSON text; `room_version`, if given, overrides the input's.
    pub fn parse(
        text: &str,
        room_version: Option<&'static RoomVersion>,
    ) -> Result<Self, ScenarioError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| ScenarioError(format!("input is not valid JSON: {e}")))?;
        Self::from_value(&value, room_version)
    }

    /// Reads a parsed JSON value; `room_version`, if given, overrides the input's.
    pub fn from_value(
        value: &Value,
        room_version: Option<&'static RoomVersion>,
    ) -> Result<Self, ScenarioError> {
        let top = value
            .as_object()
            .ok_or_else(|| error("input must be a JSON object"))?;
        check_top_level_keys(top)?;
        let version = match room_version {
            Some(version) => version,
            None => version_of(top)?,
        };
        let raw_events = top
            .get("events")
            .ok_or_else(|| error("missing `events`"))?
            .as_array()
            .ok_or_else(|| error("`events` must be an array of event objects"))?;
        let mut parsed = Vec::with_capacity(raw_events.len());
        for (index, raw) in raw_events.iter().enumerate() {
            parsed.push(parse_event(index, raw, version)?);
        }
        fill_room_ids(&mut parsed, version)?;
        let mut events = BTreeMap::new();
        let mut position = BTreeMap::new();
        let mut auth_events_to_choose = BTreeSet::new();
        let mut depth_missing = BTreeSet::new();
        for (index, event) in parsed.into_iter().enumerate() {
            let id = event.event.event_id.clone();
            if let Some(first) = position.insert(id.clone(), index) {
                return Err(error(format!(
                    "event #{index} ({id}): duplicate event id, already used by event #{first}"
                )));
            }
            if !event.auth_events_given {
                auth_events_to_choose.insert(id.clone());
            }
            if !event.depth_given {
                depth_missing.insert(id.clone());
            }
            events.insert(id, event.event);
        }
        if !depth_missing.is_empty() {
            fill_depths(&mut events, &depth_missing, &position)?;
        }
        let query = read_query(top, &events)?;
        Ok(Self {
            version,
            events,
            query,
            auth_events_to_choose,
        })
    }

    /// Computes the answer with `algorithm`: the resolution of the state sets, or the state
    /// after the `at` event with the events the replay rejected.
    pub fn run(&self, algorithm: StateResAlgorithm) -> Result<Resolved, ScenarioError> {
        match &self.query {
            Query::StateSets(sets) if self.auth_events_to_choose.is_empty() => {
                resolve(self.version, algorithm, sets, &self.events)
                    .map_err(|e| error(e.to_string()))
            }
            Query::StateSets(sets) => {
                let replayed = self.replay(algorithm)?;
                let source = WithRejected {
                    events: &replayed.events,
                    rejected: replayed.replay.rejected(),
                };
                resolve(self.version, algorithm, sets, &source).map_err(|e| error(e.to_string()))
            }
            Query::At(event_id) => {
                let replayed = self.replay(algorithm)?;
                Ok(Resolved {
                    state: replayed
                        .replay
                        .state_after(event_id)
                        .expect("every event was replayed")
                        .clone(),
                    rejected: replayed.replay.rejected().clone(),
                })
            }
        }
    }

    /// Replays the whole DAG with `algorithm`, choosing the auth events of the events written
    /// without them from the state before each. Every prev and auth event must be given.
    pub fn replay(&self, algorithm: StateResAlgorithm) -> Result<Replayed, ScenarioError> {
        check_create_event(&self.events).map_err(|e| error(e.to_string()))?;
        let mut events = self.events.clone();
        let order: Vec<String> = topological_order(&events, Edges::PrevAndAuthEvents)
            .map_err(|e| error(e.to_string()))?
            .into_iter()
            .map(str::to_owned)
            .collect();
        let mut replayer = Replayer::new(self.version, algorithm);
        for event_id in &order {
            let state_before = replayer
                .state_before(&events[event_id], &events)
                .map_err(|e| error(format!("replaying {event_id}: {e}")))?;
            if self.auth_events_to_choose.contains(event_id) {
                let chosen = select_auth_events(self.version, &events[event_id], &state_before);
                events
                    .get_mut(event_id)
                    .expect("ordered ids are events")
                    .auth_events = chosen;
            }
            replayer.apply(&events[event_id], state_before, &events);
        }
        Ok(Replayed {
            events,
            replay: replayer.finish(),
        })
    }
}

/// A replayed scenario: its events, each with its auth events, and the state after each.
#[derive(Clone, Debug)]
pub struct Replayed {
    pub events: BTreeMap<String, Event>,
    pub replay: Replay,
}

/// The answer as JSON, keys sorted: `{"rejected": [id, ...], "state": [[type, state_key, id],
/// ...]}`, the state sorted by key and the rejected ids sorted.
pub fn output_json(resolved: &Resolved) -> Value {
    let state = resolved
        .state
        .iter()
        .map(|((event_type, state_key), event_id)| {
            Value::from(vec![
                event_type.as_str(),
                state_key.as_str(),
                event_id.as_str(),
            ])
        })
        .collect();
    let rejected = resolved.rejected.iter().map(|id| Value::from(id.as_str()));
    let mut output = Map::new();
    output.insert("rejected".to_owned(), Value::Array(rejected.collect()));
    output.insert("state".to_owned(), Value::Array(state));
    Value::Object(output)
}

/// The spec's auth events selection, made from the state before the event.
fn select_auth_events(
    version: &RoomVersion,
    event: &Event,
    state_before: &StateMap,
) -> Vec<String> {
    auth_types_for_event(
        version,
        &event.event_type,
        event.state_key.as_deref(),
        &event.sender,
        &event.content,
    )
    .into_iter()
    .filter_map(|key| state_before.get(&key).cloned())
    .collect()
}

fn error(message: impl Into<String>) -> ScenarioError {
    ScenarioError(message.into())
}

const TOP_LEVEL_KEYS: [&str; 6] = [
    "room_version",
    "events",
    "state_sets",
    "at",
    "description",
    "comment",
];

fn check_top_level_keys(top: &Map<String, Value>) -> Result<(), ScenarioError> {
    if let Some(unknown) = top
        .keys()
        .find(|key| !TOP_LEVEL_KEYS.contains(&key.as_str()))
    {
        return Err(error(format!(
            "unknown key `{unknown}`; expected {}",
            TOP_LEVEL_KEYS.map(|key| format!("`{key}`")).join(", ")
        )));
    }
    Ok(())
}

fn version_of(top: &Map<String, Value>) -> Result<&'static RoomVersion, ScenarioError> {
    let id = match top.get("room_version") {
        None => {
            return Err(error(
                "missing `room_version` (or give --room-version on the command line)",
            ));
        }
        Some(Value::String(id)) => id.clone(),
        Some(Value::Number(number)) => number.to_string(),
        Some(_) => return Err(error("`room_version` must be a string such as \"11\"")),
    };
    room_version(&id).map_err(|e| error(format!("`room_version`: {e}")))
}

/// An event as read, before the defaults that need the other events.
struct ParsedEvent {
    event: Event,
    room_id_given: bool,
    auth_events_given: bool,
    depth_given: bool,
}

/// Names an event in messages: `event #3 ($abc)`.
struct Where<'a> {
    index: usize,
    event_id: Option<&'a str>,
}

impl Where<'_> {
    fn fail(&self, message: impl std::fmt::Display) -> ScenarioError {
        match self.event_id {
            Some(id) => error(format!("event #{} ({id}): {message}", self.index)),
            None => error(format!("event #{}: {message}", self.index)),
        }
    }
}

fn parse_event(
    index: usize,
    raw: &Value,
    version: &RoomVersion,
) -> Result<ParsedEvent, ScenarioError> {
    let unnamed = Where {
        index,
        event_id: None,
    };
    let object = raw
        .as_object()
        .ok_or_else(|| unnamed.fail("must be a JSON object"))?;
    let event_id = match object.get("event_id") {
        Some(Value::String(id)) => id.as_str(),
        Some(_) => return Err(unnamed.fail("`event_id` must be a string")),
        None => {
            return Err(unnamed.fail(
                "missing `event_id` (hand-written events name themselves; for an exported \
                 event of room v3 or later, compute it with `fedlab proto event-id`)",
            ));
        }
    };
    let at = Where {
        index,
        event_id: Some(event_id),
    };
    let required_string = |field: &str| -> Result<String, ScenarioError> {
        match object.get(field) {
            Some(Value::String(text)) => Ok(text.clone()),
            Some(_) => Err(at.fail(format!("`{field}` must be a string"))),
            None => Err(at.fail(format!("missing `{field}`"))),
        }
    };
    let optional_string = |field: &str| -> Result<Option<String>, ScenarioError> {
        match object.get(field) {
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(at.fail(format!("`{field}` must be a string"))),
            None => Ok(None),
        }
    };
    let optional_integer = |field: &str| -> Result<Option<u64>, ScenarioError> {
        match object.get(field) {
            None => Ok(None),
            Some(value) => value
                .as_u64()
                .map(Some)
                .ok_or_else(|| at.fail(format!("`{field}` must be a non-negative integer"))),
        }
    };
    let content = match object.get("content") {
        None => Map::new(),
        Some(Value::Object(content)) => content.clone(),
        Some(_) => return Err(at.fail("`content` must be an object")),
    };
    let room_id = optional_string("room_id")?;
    let prev_events = event_references(&at, object, "prev_events")?
        .ok_or_else(|| at.fail("missing `prev_events` (an empty array for the create event)"))?;
    let auth_events = event_references(&at, object, "auth_events")?;
    let depth = optional_integer("depth")?;
    let origin_server_ts = optional_integer("origin_server_ts")?
        .ok_or_else(|| at.fail("missing `origin_server_ts`"))?;
    let top_level_redacts = optional_string("redacts")?;
    let content_redacts = content
        .get("redacts")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let redacts = if version.redacts_in_content {
        content_redacts.or(top_level_redacts)
    } else {
        top_level_redacts.or(content_redacts)
    };
    Ok(ParsedEvent {
        room_id_given: room_id.is_some(),
        auth_events_given: auth_events.is_some(),
        depth_given: depth.is_some(),
        event: Event {
            event_id: event_id.to_owned(),
            room_id: room_id.unwrap_or_default(),
            sender: required_string("sender")?,
            event_type: required_string("type")?,
            state_key: optional_string("state_key")?,
            content,
            prev_events,
            auth_events: auth_events.unwrap_or_default(),
            depth: depth.unwrap_or(0),
            origin_server_ts,
            redacts,
        },
    })
}

/// `prev_events` or `auth_events`: event ids, or `[id, {hashes}]` pairs as rooms v1 and v2
/// send them.
fn event_references(
    at: &Where<'_>,
    object: &Map<String, Value>,
    field: &str,
) -> Result<Option<Vec<String>>, ScenarioError> {
    let Some(value) = object.get(field) else {
        return Ok(None);
    };
    let invalid = || {
        at.fail(format!(
            "`{field}` must be an array of event ids (or of [event id, hashes] pairs)"
        ))
    };
    let items = value.as_array().ok_or_else(invalid)?;
    let mut ids = Vec::with_capacity(items.len());
    for item in items {
        let id = match item {
            Value::String(id) => id,
            Value::Array(pair) => match pair.as_slice() {
                [Value::String(id), Value::Object(_)] => id,
                _ => return Err(invalid()),
            },
            _ => return Err(invalid()),
        };
        ids.push(id.clone());
    }
    Ok(Some(ids))
}

/// Gives events without a `room_id` the create event's room: in room version 12 `!` followed by
/// the create event's id without `$`, before that the create event's own `room_id`.
fn fill_room_ids(events: &mut [ParsedEvent], version: &RoomVersion) -> Result<(), ScenarioError> {
    if events.iter().all(|event| event.room_id_given) {
        return Ok(());
    }
    let creates: Vec<usize> = (0..events.len())
        .filter(|&index| events[index].event.is("m.room.create", ""))
        .collect();
    let room_id = match creates.as_slice() {
        [] => DEFAULT_ROOM_ID.to_owned(),
        [create] => {
            let create = &events[*create];
            if version.room_id_from_create_event {
                format!("!{}", create.event.event_id.trim_start_matches('$'))
            } else if create.room_id_given {
                create.event.room_id.clone()
            } else {
                // Before v12 the rules want the room on the create event sender's server.
                format!("!room:{}", create.event.sender_server())
            }
        }
        [first, second, ..] => {
            return Err(error(format!(
                "events #{first} and #{second} are both m.room.create events, so the room of \
                 events without a `room_id` is ambiguous"
            )));
        }
    };
    for event in events.iter_mut() {
        let is_v12_create =
            version.room_id_from_create_event && event.event.is("m.room.create", "");
        if !event.room_id_given && !is_v12_create {
            event.event.room_id = room_id.clone();
        }
    }
    Ok(())
}

/// Gives the events in `missing` one more than the deepest of their prev events (1 for the
/// create event). Needs every prev event among the events.
fn fill_depths(
    events: &mut BTreeMap<String, Event>,
    missing: &BTreeSet<String>,
    position: &BTreeMap<String, usize>,
) -> Result<(), ScenarioError> {
    for (event_id, event) in events.iter() {
        if let Some(unknown) = event
            .prev_events
            .iter()
            .find(|prev| !events.contains_key(*prev))
        {
            return Err(error(format!(
                "event #{} ({event_id}): unknown prev event {unknown} (all prev events must be \
                 given when depths are left out)",
                position[event_id]
            )));
        }
    }
    let order: Vec<String> = topological_order(events, Edges::PrevEvents)
        .map_err(|e| error(e.to_string()))?
        .into_iter()
        .map(str::to_owned)
        .collect();
    for event_id in order {
        if !missing.contains(&event_id) {
            continue;
        }
        let depth = 1 + events[&event_id]
            .prev_events
            .iter()
            .map(|prev| events[prev].depth)
            .max()
            .unwrap_or(0);
        events
            .get_mut(&event_id)
            .expect("ordered ids are events")
            .depth = depth;
    }
    Ok(())
}

fn read_query(
    top: &Map<String, Value>,
    events: &BTreeMap<String, Event>,
) -> Result<Query, ScenarioError> {
    match (top.get("state_sets"), top.get("at")) {
        (Some(_), Some(_)) => Err(error("give either `state_sets` or `at`, not both")),
        (None, None) => Err(error(
            "missing `state_sets` (the states to resolve) or `at` (an event to compute the \
             state after)",
        )),
        (None, Some(at)) => {
            let event_id = at
                .as_str()
                .ok_or_else(|| error("`at` must be an event id"))?;
            if !events.contains_key(event_id) {
                return Err(error(format!("`at`: unknown event {event_id}")));
            }
            Ok(Query::At(event_id.to_owned()))
        }
        (Some(sets), None) => {
            let sets = sets
                .as_array()
                .ok_or_else(|| error("`state_sets` must be an array of arrays of event ids"))?;
            let state_sets = sets
                .iter()
                .enumerate()
                .map(|(index, set)| read_state_set(index, set, events))
                .collect::<Result<_, _>>()?;
            Ok(Query::StateSets(state_sets))
        }
    }
}

fn read_state_set(
    index: usize,
    set: &Value,
    events: &BTreeMap<String, Event>,
) -> Result<StateMap, ScenarioError> {
    let fail = |message: String| error(format!("state set #{index}: {message}"));
    let ids = set
        .as_array()
        .ok_or_else(|| fail("must be an array of event ids".to_owned()))?;
    let mut state = StateMap::new();
    for id in ids {
        let id = id
            .as_str()
            .ok_or_else(|| fail(format!("{id} is not an event id")))?;
        let event = events
            .get(id)
            .ok_or_else(|| fail(format!("unknown event {id}")))?;
        let key = event
            .state_key_pair()
            .ok_or_else(|| fail(format!("{id} is not a state event (it has no state_key)")))?;
        if let Some(other) = state.insert(key.clone(), id.to_owned()) {
            if other != id {
                return Err(fail(format!(
                    "{other} and {id} both hold ({}, {:?})",
                    key.0, key.1
                )));
            }
        }
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn create() -> Value {
        json!({"event_id": "$create", "type": "m.room.create", "state_key": "",
               "sender": "@alice:a.example", "content": {}, "prev_events": [],
               "origin_server_ts": 0})
    }

    fn join(id: &str, prev: &str) -> Value {
        json!({"event_id": id, "type": "m.room.member", "state_key": "@alice:a.example",
               "sender": "@alice:a.example", "content": {"membership": "join"},
               "prev_events": [prev], "origin_server_ts": 1})
    }

    fn parse(input: Value) -> Result<Scenario, ScenarioError> {
        Scenario::from_value(&input, None)
    }

    fn parse_error(input: Value) -> String {
        parse(input).unwrap_err().0
    }

    #[test]
    fn fills_in_depths_room_ids_and_reads_exported_references() {
        let mut exported = join("$join", "$create");
        exported["prev_events"] = json!([["$create", {"sha256": "abc"}]]);
        exported["hashes"] = json!({"sha256": "xyz"});
        exported["unsigned"] = json!({"age": 1});
        let message = json!({"event_id": "$msg", "type": "m.room.message", "sender": "@alice:a.example",
                             "prev_events": ["$join"], "origin_server_ts": 2, "depth": 10});
        let scenario = parse(
            json!({"room_version": "11", "events": [create(), exported, message], "at": "$msg"}),
        )
        .unwrap();
        let joined = &scenario.events["$join"];
        assert_eq!(joined.prev_events, ["$create"]);
        assert_eq!(joined.depth, 2);
        assert_eq!(scenario.events["$create"].depth, 1);
        assert_eq!(scenario.events["$msg"].depth, 10, "a given depth is kept");
        assert_eq!(joined.room_id, "!room:a.example");
        assert!(scenario.events["$msg"].content.is_empty());

        let scenario = parse(
            json!({"room_version": "12", "events": [create(), join("$join", "$create")],
                         "at": "$join"}),
        )
        .unwrap();
        assert_eq!(scenario.events["$join"].room_id, "!create");
        assert_eq!(
            scenario.events["$create"].room_id, "",
            "a v12 create event has no room id"
        );
    }

    #[test]
    fn reads_redacts_from_either_place() {
        for (version, top_level, in_content) in [("10", "$a", "$b"), ("11", "$b", "$a")] {
            let mut redaction = join("$redaction", "$create");
            redaction["type"] = json!("m.room.redaction");
            redaction["state_key"] = Value::Null;
            redaction.as_object_mut().unwrap().remove("state_key");
            redaction["redacts"] = json!(top_level);
            redaction["content"] = json!({"redacts": in_content});
            let scenario = parse(json!({"room_version": version,
                                        "events": [create(), redaction], "at": "$create"}))
            .unwrap();
            let expected = if version == "11" {
                in_content
            } else {
                top_level
            };
            assert_eq!(
                scenario.events["$redaction"].redacts.as_deref(),
                Some(expected)
            );
        }
    }

    #[test]
    fn errors_name_the_event_and_the_field() {
        let with_events =
            |events: Vec<Value>| json!({"room_version": "11", "events": events, "at": "$create"});
        let mut bad_prev = join("$abc", "$create");
        bad_prev["prev_events"] = json!("$create");
        let mut bad_ts = join("$abc", "$create");
        bad_ts["origin_server_ts"] = json!(-1);
        let mut no_sender = join("$abc", "$create");
        no_sender.as_object_mut().unwrap().remove("sender");
        let mut no_id = join("$abc", "$create");
        no_id.as_object_mut().unwrap().remove("event_id");
        let cases = [
            (
                with_events(vec![create(), bad_prev]),
                "event #1 ($abc): `prev_events` must be an array of event ids (or of [event id, \
                 hashes] pairs)",
            ),
            (
                with_events(vec![create(), bad_ts]),
                "event #1 ($abc): `origin_server_ts` must be a non-negative integer",
            ),
            (
                with_events(vec![create(), no_sender]),
                "event #1 ($abc): missing `sender`",
            ),
            (
                with_events(vec![create(), join("$create", "$create")]),
                "event #1 ($create): duplicate event id, already used by event #0",
            ),
            (
                with_events(vec![create(), join("$abc", "$ghost")]),
                "event #1 ($abc): unknown prev event $ghost (all prev events must be given \
                 when depths are left out)",
            ),
            (
                with_events(vec![json!(3)]),
                "event #0: must be a JSON object",
            ),
        ];
        for (input, message) in cases {
            assert_eq!(parse_error(input), message);
        }
        assert!(parse_error(with_events(vec![no_id])).starts_with("event #0: missing `event_id`"));
    }

    #[test]
    fn errors_in_the_top_level_and_the_state_sets() {
        let events = json!([create(), join("$join", "$create"),
            {"event_id": "$msg", "type": "m.room.message", "sender": "@alice:a.example",
             "prev_events": ["$join"], "origin_server_ts": 2}]);
        let cases = [
            (json!([]), "input must be a JSON object"),
            (
                json!({"events": events, "at": "$msg"}),
                "missing `room_version` (or give --room-version on the command line)",
            ),
            (
                json!({"room_version": "13", "events": events, "at": "$msg"}),
                "`room_version`: unknown room version \"13\"; known versions are 1 to 12",
            ),
            (
                json!({"room_version": "11", "events": events, "at": "$msg", "extra": 1}),
                "unknown key `extra`; expected `room_version`, `events`, `state_sets`, `at`, \
              `description`, `comment`",
            ),
            (
                json!({"room_version": "11", "events": events}),
                "missing `state_sets` (the states to resolve) or `at` (an event to compute the \
              state after)",
            ),
            (
                json!({"room_version": "11", "events": events, "at": "$msg", "state_sets": []}),
                "give either `state_sets` or `at`, not both",
            ),
            (
                json!({"room_version": "11", "events": events, "at": "$nope"}),
                "`at`: unknown event $nope",
            ),
            (
                json!({"room_version": "11", "events": events, "state_sets": [["$create", "$nope"]]}),
                "state set #0: unknown event $nope",
            ),
            (
                json!({"room_version": "11", "events": events, "state_sets": [["$create"], ["$msg"]]}),
                "state set #1: $msg is not a state event (it has no state_key)",
            ),
            (
                json!({"room_version": "11", "events": events, "state_sets": [["$create"], "$join"]}),
                "state set #1: must be an array of event ids",
            ),
        ];
        for (input, message) in cases {
            assert_eq!(parse_error(input), message);
        }
        let mut second_join = join("$join2", "$join");
        second_join["origin_server_ts"] = json!(5);
        let input = json!({"room_version": 11, "events": [create(), join("$join", "$create"), second_join],
                           "state_sets": [["$join", "$join2"]]});
        assert_eq!(
            parse_error(input),
            "state set #0: $join and $join2 both hold (m.room.member, \"@alice:a.example\")"
        );
    }

    #[test]
    fn output_lists_state_by_key_and_sorted_rejections() {
        let mut resolved = Resolved::default();
        resolved
            .state
            .insert(("m.room.topic".into(), "".into()), "$t".into());
        resolved
            .state
            .insert(("m.room.create".into(), "".into()), "$c".into());
        resolved.rejected.insert("$z".into());
        resolved.rejected.insert("$a".into());
        assert_eq!(
            output_json(&resolved),
            json!({"rejected": ["$a", "$z"],
                   "state": [["m.room.create", "", "$c"], ["m.room.topic", "", "$t"]]})
        );
    }
}
