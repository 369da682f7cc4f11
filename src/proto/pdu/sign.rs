//! Hashing and signing outgoing events, and building new PDUs.
//!
//! The spec's "Adding hashes and signatures to outgoing events": compute the content hash and
//! store it under `hashes.sha256`, redact the event, sign the redacted form as "Signing JSON"
//! does, and copy the signatures back to the full event. The signature therefore survives
//! redaction, and the content hash tells a receiver whether it holds the full event.
//!
//! Invariant: a PDU made by [`build_pdu`] passes the format checks of its room version, its
//! content hash matches, and it carries a valid signature of the building server.

use super::{EventRef, Pdu, PduError, PduProblem, add_content_hash, content_hash, redact};
use crate::proto::base64::{self, Alphabet};
use crate::proto::room_version::RoomVersion;
use crate::proto::signing::{SigningKey, sign_json};
use serde_json::{Map, Value, json};

/// How many bytes of the content hash make the opaque part of a derived room v1/v2 event id.
const DERIVED_OPAQUE_ID_BYTES: usize = 16;

/// Signs `event` in place as `server_name`: the signature covers the redacted event without
/// `signatures` and `unsigned`, and joins any signatures already present.
pub fn sign_event(
    event: &mut Map<String, Value>,
    room_version: &RoomVersion,
    server_name: &str,
    key: &SigningKey,
) -> Result<(), PduError> {
    let mut redacted = redact(event, room_version)?;
    sign_json(&mut redacted, server_name, key, room_version.numbers())
        .map_err(|e| PduError::new(e.into()))?;
    let signatures = redacted
        .remove("signatures")
        .expect("signing JSON leaves a `signatures` object");
    event.insert("signatures".to_owned(), signatures);
    Ok(())
}

/// Adds the content hash, then signs: the full treatment of an outgoing event.
pub fn hash_and_sign_event(
    event: &mut Map<String, Value>,
    room_version: &RoomVersion,
    server_name: &str,
    key: &SigningKey,
) -> Result<(), PduError> {
    add_content_hash(event, room_version.numbers())?;
    sign_event(event, room_version, server_name, key)
}

/// The fields of an event to build. `redacts` goes where the room version puts it.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    /// `None` only for the create event of a room v12 room, whose room id is its own hash.
    pub room_id: Option<String>,
    pub sender: String,
    pub event_type: String,
    pub state_key: Option<String>,
    pub content: Map<String, Value>,
    pub prev_events: Vec<EventRef>,
    pub auth_events: Vec<EventRef>,
    pub depth: u64,
    pub origin_server_ts: u64,
    pub redacts: Option<String>,
    /// Room v1/v2 only: the opaque part of the server-made id `$opaque:server`. When `None`, it
    /// is derived from the event's content hash, so the same event always gets the same id.
    pub event_id_opaque: Option<String>,
}

/// Builds, hashes and signs a new PDU as `server_name`, and checks it like a received one.
pub fn build_pdu(
    new: NewEvent,
    room_version: &'static RoomVersion,
    server_name: &str,
    key: &SigningKey,
) -> Result<Pdu, PduError> {
    check_new_event(&new, room_version)?;
    let mut event = Map::new();
    let mut content = new.content;
    if let Some(redacts) = new.redacts {
        if room_version.redacts_in_content {
            content.insert("redacts".to_owned(), Value::String(redacts));
        } else {
            event.insert("redacts".to_owned(), Value::String(redacts));
        }
    }
    if let Some(room_id) = new.room_id {
        event.insert("room_id".to_owned(), Value::String(room_id));
    }
    event.insert("sender".to_owned(), Value::String(new.sender));
    event.insert("type".to_owned(), Value::String(new.event_type));
    if let Some(state_key) = new.state_key {
        event.insert("state_key".to_owned(), Value::String(state_key));
    }
    event.insert("content".to_owned(), Value::Object(content));
    let references = |refs: Vec<EventRef>| references_json(refs, room_version);
    event.insert("prev_events".to_owned(), references(new.prev_events));
    event.insert("auth_events".to_owned(), references(new.auth_events));
    event.insert("depth".to_owned(), json!(new.depth));
    event.insert("origin_server_ts".to_owned(), json!(new.origin_server_ts));
    if room_version.event_ids_in_events() {
        let opaque = match new.event_id_opaque {
            Some(opaque) => opaque,
            None => derived_opaque_id(&event, room_version)?,
        };
        event.insert(
            "event_id".to_owned(),
            Value::String(format!("${opaque}:{server_name}")),
        );
    }
    hash_and_sign_event(&mut event, room_version, server_name, key)?;
    Pdu::from_json(event, room_version)
}

fn check_new_event(new: &NewEvent, room_version: &RoomVersion) -> Result<(), PduError> {
    let unexpected = |field: &str, reason| {
        Err(PduError::new(PduProblem::Unexpected {
            field: field.to_owned(),
            reason,
        }))
    };
    let implied_room_id =
        room_version.room_id_from_create_event && new.event_type == "m.room.create";
    if implied_room_id && new.room_id.is_some() {
        return unexpected(
            "room_id",
            "the room id of a room version 12 create event is derived from its hash",
        );
    }
    if !room_version.event_ids_in_events() && new.event_id_opaque.is_some() {
        return unexpected(
            "event_id",
            "event ids are reference hashes from room version 3 on",
        );
    }
    Ok(())
}

fn references_json(refs: Vec<EventRef>, room_version: &RoomVersion) -> Value {
    let items = refs
        .into_iter()
        .map(|reference| {
            if room_version.event_ids_in_events() {
                let hashes = match reference.sha256 {
                    Some(hash) => json!({"sha256": hash}),
                    None => json!({}),
                };
                json!([reference.event_id, hashes])
            } else {
                Value::String(reference.event_id)
            }
        })
        .collect();
    Value::Array(items)
}

/// A deterministic opaque id for room v1/v2: URL-safe base64 of the start of the content hash
/// of the event before it has an id. It has no `:`, so the id splits at the right place.
fn derived_opaque_id(
    event: &Map<String, Value>,
    room_version: &RoomVersion,
) -> Result<String, PduError> {
    let hash = content_hash(event, room_version.numbers())?;
    Ok(base64::encode(
        &hash[..DERIVED_OPAQUE_ID_BYTES],
        Alphabet::UrlSafe,
    ))
}
