//! The event format of each room version, and the mapping of a checked PDU into `Event`.
//!
//! Checked here, as the spec's room version pages and "Size limits" ask: the whole PDU is at
//! most 65,536 bytes of canonical JSON (strict canonical JSON numbers from room v6, so floats
//! and out-of-range integers make the event invalid there); the required keys exist with the
//! right types; `sender`, `room_id`, `state_key`, `type` and `event_id` are at most 255 bytes;
//! ids follow the room version's grammar; `prev_events` has at most 20 entries and
//! `auth_events` at most 10, as `[id, {hashes}]` pairs in event format v1 (rooms v1/v2) and plain
//! ids later; `depth` lies in 0 to 2^63-1 (2^53-1 from v6); `redacts` is top-level up to v10 and
//! inside `content` from v11; in room v12 the create event has no `room_id`.
//!
//! Not checked here, because the spec makes them authorization rules (rejection, not dropping):
//! the content schemas of event types, and a v12 create event that does carry a `room_id`.
//!
//! Invariant: [`parse`] succeeds exactly when [`check_format`] does, and every value it returns
//! comes from the JSON it was given.

use super::{PduError, PduProblem};
use crate::proto::canonical_json::{INTEGER_MAX, object_to_canonical_bytes};
use crate::proto::event::Event;
use crate::proto::ids::{self, UserIdGrammar};
use crate::proto::room_version::RoomVersion;
use serde_json::{Map, Value};

/// The largest PDU, in bytes of canonical JSON, signatures included.
pub const PDU_BYTES_MAX: usize = 65_536;
/// The longest `sender`, `room_id`, `state_key`, `type` or `event_id`, in bytes.
pub const FIELD_BYTES_MAX: usize = 255;
/// The most `prev_events` an event may list.
pub const PREV_EVENTS_MAX: usize = 20;
/// The most `auth_events` an event may list.
pub const AUTH_EVENTS_MAX: usize = 10;
/// The largest `depth` in room versions 1 to 5 (2^63 - 1).
pub const DEPTH_MAX_BEFORE_V6: u64 = i64::MAX as u64;
/// The largest `depth` from room version 6 on (2^53 - 1, the canonical JSON integer limit).
pub const DEPTH_MAX_FROM_V6: u64 = INTEGER_MAX as u64;

/// The fields of a PDU that passed the format checks, before its event id is known.
pub(super) struct Fields {
    /// `None` only for the create event of a room v12 room.
    room_id: Option<String>,
    sender: String,
    event_type: String,
    state_key: Option<String>,
    content: Map<String, Value>,
    prev_events: Vec<String>,
    auth_events: Vec<String>,
    depth: u64,
    origin_server_ts: u64,
    redacts: Option<String>,
}

impl Fields {
    /// The typed event, given the id derived from the same JSON.
    pub(super) fn into_event(self, event_id: String) -> Event {
        let room_id = self
            .room_id
            .unwrap_or_else(|| ids::room_id_from_create_event_id(&event_id));
        Event {
            event_id,
            room_id,
            sender: self.sender,
            event_type: self.event_type,
            state_key: self.state_key,
            content: self.content,
            prev_events: self.prev_events,
            auth_events: self.auth_events,
            depth: self.depth,
            origin_server_ts: self.origin_server_ts,
            redacts: self.redacts,
        }
    }
}

/// Checks `json` against the event format of `room_version`.
pub fn check_format(json: &Map<String, Value>, room_version: &RoomVersion) -> Result<(), PduError> {
    parse(json, room_version).map(|_| ())
}

/// Checks the format and extracts the fields the typed `Event` needs.
pub(super) fn parse(
    json: &Map<String, Value>,
    room_version: &RoomVersion,
) -> Result<Fields, PduError> {
    check_size(json, room_version)?;
    let event_type = required_string(json, "type")?;
    check_field_bytes("type", event_type)?;
    let sender = required_string(json, "sender")?;
    ids::parse_user_id(sender, UserIdGrammar::Historical)
        .map_err(|e| problem(PduProblem::bad_id("sender", e)))?;
    let room_id = parse_room_id(json, event_type, room_version)?;
    let state_key = optional_string(json, "state_key")?;
    if let Some(state_key) = state_key {
        check_field_bytes("state_key", state_key)?;
    }
    let content = required_object(json, "content")?;
    let depth = parse_depth(json, room_version)?;
    let origin_server_ts = required_integer(json, "origin_server_ts").and_then(|ts| {
        u64::try_from(ts).map_err(|_| {
            problem(PduProblem::wrong_type(
                "origin_server_ts",
                "a non-negative integer",
            ))
        })
    })?;
    check_hashes(json)?;
    check_signatures(json)?;
    if json.get("unsigned").is_some() {
        required_object(json, "unsigned")?;
    }
    let prev_events = parse_references(json, "prev_events", PREV_EVENTS_MAX, room_version)?;
    let auth_events = parse_references(json, "auth_events", AUTH_EVENTS_MAX, room_version)?;
    if room_version.event_ids_in_events() {
        let event_id = required_string(json, "event_id")?;
        ids::parse_event_id(event_id, room_version)
            .map_err(|e| problem(PduProblem::bad_id("event_id", e)))?;
    }
    let redacts = parse_redacts(json, event_type, content, room_version)?;
    Ok(Fields {
        room_id: room_id.map(str::to_owned),
        sender: sender.to_owned(),
        event_type: event_type.to_owned(),
        state_key: state_key.map(str::to_owned),
        content: content.clone(),
        prev_events,
        auth_events,
        depth,
        origin_server_ts,
        redacts,
    })
}

fn problem(problem: PduProblem) -> PduError {
    PduError::new(problem)
}

fn check_size(json: &Map<String, Value>, room_version: &RoomVersion) -> Result<(), PduError> {
    let bytes = object_to_canonical_bytes(json, room_version.numbers())
        .map_err(|e| problem(e.into()))?
        .len();
    if bytes > PDU_BYTES_MAX {
        return Err(problem(PduProblem::TooLarge {
            bytes,
            max: PDU_BYTES_MAX,
        }));
    }
    Ok(())
}

fn check_field_bytes(field: &str, text: &str) -> Result<(), PduError> {
    if text.len() > FIELD_BYTES_MAX {
        return Err(problem(PduProblem::TooLong {
            field: field.to_owned(),
            bytes: text.len(),
            max: FIELD_BYTES_MAX,
        }));
    }
    Ok(())
}

fn required<'a>(json: &'a Map<String, Value>, field: &str) -> Result<&'a Value, PduError> {
    json.get(field)
        .ok_or_else(|| problem(PduProblem::missing(field)))
}

fn required_string<'a>(json: &'a Map<String, Value>, field: &str) -> Result<&'a str, PduError> {
    required(json, field)?
        .as_str()
        .ok_or_else(|| problem(PduProblem::wrong_type(field, "a string")))
}

fn optional_string<'a>(
    json: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, PduError> {
    match json.get(field) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(problem(PduProblem::wrong_type(field, "a string"))),
    }
}

fn required_object<'a>(
    json: &'a Map<String, Value>,
    field: &str,
) -> Result<&'a Map<String, Value>, PduError> {
    required(json, field)?
        .as_object()
        .ok_or_else(|| problem(PduProblem::wrong_type(field, "an object")))
}

/// An integer, written plainly or (as canonical JSON allows) as an integral number like `1e3`.
fn integer(value: &Value) -> Option<i128> {
    let Value::Number(number) = value else {
        return None;
    };
    if let Some(i) = number.as_i64() {
        return Some(i.into());
    }
    if let Some(u) = number.as_u64() {
        return Some(u.into());
    }
    let float = number.as_f64()?;
    (float.fract() == 0.0 && float.abs() <= INTEGER_MAX as f64).then_some(float as i128)
}

fn required_integer(json: &Map<String, Value>, field: &str) -> Result<i128, PduError> {
    integer(required(json, field)?)
        .ok_or_else(|| problem(PduProblem::wrong_type(field, "an integer")))
}

fn parse_depth(json: &Map<String, Value>, room_version: &RoomVersion) -> Result<u64, PduError> {
    let depth = required_integer(json, "depth")?;
    let max = if room_version.strict_canonical_json {
        DEPTH_MAX_FROM_V6
    } else {
        DEPTH_MAX_BEFORE_V6
    };
    u64::try_from(depth)
        .ok()
        .filter(|depth| *depth <= max)
        .ok_or_else(|| {
            problem(PduProblem::DepthOutOfRange {
                depth: depth.to_string(),
                max,
            })
        })
}

/// `room_id` is required, except on the create event of a room v12 room, whose room id is
/// derived from its own hash. A v12 create event that has one is left to the authorization
/// rules, which reject it.
fn parse_room_id<'a>(
    json: &'a Map<String, Value>,
    event_type: &str,
    room_version: &RoomVersion,
) -> Result<Option<&'a str>, PduError> {
    let implied = room_version.room_id_from_create_event && event_type == "m.room.create";
    let room_id = if implied {
        optional_string(json, "room_id")?
    } else {
        Some(required_string(json, "room_id")?)
    };
    if let Some(room_id) = room_id {
        ids::parse_room_id(room_id, room_version)
            .map_err(|e| problem(PduProblem::bad_id("room_id", e)))?;
    }
    Ok(room_id)
}

fn check_hashes(json: &Map<String, Value>) -> Result<(), PduError> {
    let hashes = required_object(json, "hashes")?;
    match hashes.get("sha256") {
        Some(Value::String(_)) => Ok(()),
        Some(_) => Err(problem(PduProblem::wrong_type("hashes.sha256", "a string"))),
        None => Err(problem(PduProblem::missing("hashes.sha256"))),
    }
}

fn check_signatures(json: &Map<String, Value>) -> Result<(), PduError> {
    for (server, by_key) in required_object(json, "signatures")? {
        let by_key = by_key.as_object().ok_or_else(|| {
            problem(PduProblem::wrong_type(
                format!("signatures.{server}"),
                "an object",
            ))
        })?;
        for (key_id, signature) in by_key {
            if !signature.is_string() {
                return Err(problem(PduProblem::wrong_type(
                    format!("signatures.{server}.{key_id}"),
                    "a string",
                )));
            }
        }
    }
    Ok(())
}

/// `prev_events` / `auth_events`: plain ids, or `[id, {hashes}]` pairs in room v1/v2. The
/// hashes object is not required to hold a `sha256`: servers write `{}` for events whose hash
/// they do not know.
fn parse_references(
    json: &Map<String, Value>,
    field: &str,
    max: usize,
    room_version: &RoomVersion,
) -> Result<Vec<String>, PduError> {
    let items = required(json, field)?
        .as_array()
        .ok_or_else(|| problem(PduProblem::wrong_type(field, "an array")))?;
    if items.len() > max {
        return Err(problem(PduProblem::TooMany {
            field: field.to_owned(),
            count: items.len(),
            max,
        }));
    }
    let pairs = room_version.event_ids_in_events();
    let expected = if pairs {
        "an [event id, {hashes}] pair"
    } else {
        "an event id string"
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let path = format!("{field}.{index}");
            let event_id = if pairs {
                match item.as_array().map(Vec::as_slice) {
                    Some([Value::String(event_id), Value::Object(_)]) => Some(event_id),
                    _ => None,
                }
            } else {
                match item {
                    Value::String(event_id) => Some(event_id),
                    _ => None,
                }
            };
            let event_id =
                event_id.ok_or_else(|| problem(PduProblem::wrong_type(path.clone(), expected)))?;
            ids::parse_event_id(event_id, room_version)
                .map_err(|e| problem(PduProblem::bad_id(path, e)))?;
            Ok(event_id.clone())
        })
        .collect()
}

/// The event a redaction redacts: top-level `redacts` up to room v10, `content.redacts` from
/// v11 on. Only `m.room.redaction` events redact; the key is ignored on other types.
fn parse_redacts(
    json: &Map<String, Value>,
    event_type: &str,
    content: &Map<String, Value>,
    room_version: &RoomVersion,
) -> Result<Option<String>, PduError> {
    let redacts = if room_version.redacts_in_content {
        content.get("redacts").and_then(Value::as_str)
    } else {
        optional_string(json, "redacts")?
    };
    Ok(redacts
        .filter(|_| event_type == "m.room.redaction")
        .map(str::to_owned))
}
