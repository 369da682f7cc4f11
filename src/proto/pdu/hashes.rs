//! Content hashes, reference hashes and the ids derived from them.
//!
//! The *content hash* covers the whole event except `unsigned`, `signatures` and `hashes`, so a
//! receiver can tell whether it got the full event or a redacted one. The *reference hash*
//! covers the redacted event without `signatures` and `unsigned`; it is the event id from room
//! v3 on, and the room id (with sigil `!`) of a room v12 room's create event. A top-level
//! `age_ts`, which older spec text removed explicitly, is removed by redaction anyway.
//!
//! Invariant: the reference hash of an event equals that of its redacted form, because
//! redaction is idempotent; `Pdu::redacted` asserts this.

use super::{PduError, PduProblem, redaction};
use crate::proto::base64::{self, Alphabet};
use crate::proto::canonical_json::{Numbers, object_to_canonical_bytes};
use crate::proto::ids;
use crate::proto::room_version::{EventIdFormat, RoomVersion};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The hash algorithm name under `hashes`, the only one Matrix uses.
pub const SHA256: &str = "sha256";

/// A sha256 digest.
pub type Sha256Hash = [u8; 32];

fn sha256(bytes: &[u8]) -> Sha256Hash {
    Sha256::digest(bytes).into()
}

/// Canonical JSON of `object` without the top-level `keys`.
fn canonical_without(
    object: &Map<String, Value>,
    keys: &[&str],
    numbers: Numbers,
) -> Result<Vec<u8>, PduError> {
    let stripped: Map<String, Value> = object
        .iter()
        .filter(|(key, _)| !keys.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    object_to_canonical_bytes(&stripped, numbers).map_err(|e| PduError::new(e.into()))
}

/// The content hash: sha256 of the canonical JSON without `unsigned`, `signatures`, `hashes`.
pub fn content_hash(event: &Map<String, Value>, numbers: Numbers) -> Result<Sha256Hash, PduError> {
    Ok(sha256(&canonical_without(
        event,
        &["unsigned", "signatures", "hashes"],
        numbers,
    )?))
}

/// Computes the content hash and stores it as `hashes.sha256` in unpadded standard base64,
/// keeping any other algorithms' entries.
pub fn add_content_hash(event: &mut Map<String, Value>, numbers: Numbers) -> Result<(), PduError> {
    let hash = base64::encode_standard(&content_hash(event, numbers)?);
    let hashes = event
        .entry("hashes")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| PduError::new(PduProblem::wrong_type("hashes", "an object")))?;
    hashes.insert(SHA256.to_owned(), Value::String(hash));
    Ok(())
}

/// Whether `hashes.sha256` holds the event's content hash. A missing, non-string or
/// undecodable hash does not match.
pub fn content_hash_matches(
    event: &Map<String, Value>,
    numbers: Numbers,
) -> Result<bool, PduError> {
    let claimed = event
        .get("hashes")
        .and_then(|hashes| hashes.get(SHA256))
        .and_then(Value::as_str)
        .and_then(|text| base64::decode_standard(text).ok());
    let Some(claimed) = claimed else {
        return Ok(false);
    };
    Ok(claimed == content_hash(event, numbers)?)
}

/// The reference hash: sha256 of the canonical JSON of the redacted event without
/// `signatures` and `unsigned`.
pub fn reference_hash(
    event: &Map<String, Value>,
    room_version: &RoomVersion,
) -> Result<Sha256Hash, PduError> {
    let redacted = redaction::redact(event, room_version)?;
    Ok(sha256(&canonical_without(
        &redacted,
        &["signatures", "unsigned"],
        room_version.numbers(),
    )?))
}

/// The reference hash in the base64 alphabet the room version uses for ids: standard up to v3
/// (in v1/v2 it appears in `prev_events` / `auth_events` pairs), URL-safe from v4.
pub fn reference_hash_base64(
    event: &Map<String, Value>,
    room_version: &RoomVersion,
) -> Result<String, PduError> {
    let alphabet = match room_version.event_id_format {
        EventIdFormat::ReferenceHashUrlSafe => Alphabet::UrlSafe,
        EventIdFormat::ServerMade | EventIdFormat::ReferenceHashStandard => Alphabet::Standard,
    };
    Ok(base64::encode(
        &reference_hash(event, room_version)?,
        alphabet,
    ))
}

/// The event's id: in room v1/v2 the `event_id` the sending server put in it (checked for
/// format), from v3 on `$` + the reference hash.
pub fn event_id(
    event: &Map<String, Value>,
    room_version: &RoomVersion,
) -> Result<String, PduError> {
    if room_version.event_ids_in_events() {
        let text = match event.get("event_id") {
            Some(Value::String(text)) => text,
            Some(_) => {
                return Err(PduError::new(PduProblem::wrong_type(
                    "event_id", "a string",
                )));
            }
            None => return Err(PduError::new(PduProblem::missing("event_id"))),
        };
        ids::parse_event_id(text, room_version)
            .map_err(|error| PduError::new(PduProblem::bad_id("event_id", error)))?;
        return Ok(text.clone());
    }
    Ok(format!("${}", reference_hash_base64(event, room_version)?))
}

/// The room id a room v12 create event makes: `!` + its URL-safe reference hash.
pub fn room_id_of_create_event(
    create_event: &Map<String, Value>,
    room_version: &RoomVersion,
) -> Result<String, PduError> {
    Ok(ids::room_id_from_create_event_id(&event_id(
        create_event,
        room_version,
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::room_version::room_version;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    /// The first event of the spec's "Event Signing" test vectors, whose content hash the spec
    /// gives as `5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos`.
    fn spec_minimal_event() -> Map<String, Value> {
        object(json!({
            "room_id": "!x:domain", "sender": "@a:domain", "origin": "domain",
            "origin_server_ts": 1000000, "signatures": {}, "hashes": {}, "type": "X",
            "content": {}, "prev_events": [], "auth_events": [], "depth": 3,
            "unsigned": {"age_ts": 1000000}
        }))
    }

    #[test]
    fn content_hash_of_the_spec_vector() {
        let mut event = spec_minimal_event();
        add_content_hash(&mut event, Numbers::Strict).unwrap();
        assert_eq!(
            event["hashes"],
            json!({"sha256": "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"})
        );
        assert!(content_hash_matches(&event, Numbers::Strict).unwrap());
        // `unsigned`, `signatures` and other hash algorithms are not covered.
        event.insert("unsigned".into(), json!({"age": 4}));
        event.insert("signatures".into(), json!({"x": {"ed25519:1": "s"}}));
        event["hashes"]
            .as_object_mut()
            .unwrap()
            .insert("sha512".into(), json!("y"));
        assert!(content_hash_matches(&event, Numbers::Strict).unwrap());
        event.insert("content".into(), json!({"body": "changed"}));
        assert!(!content_hash_matches(&event, Numbers::Strict).unwrap());
    }

    #[test]
    fn missing_or_garbled_hashes_do_not_match() {
        let mut event = spec_minimal_event();
        assert!(!content_hash_matches(&event, Numbers::Strict).unwrap());
        event.insert("hashes".into(), json!({"sha256": "!!"}));
        assert!(!content_hash_matches(&event, Numbers::Strict).unwrap());
        event.insert("hashes".into(), json!("x"));
        assert!(add_content_hash(&mut event, Numbers::Strict).is_err());
    }

    #[test]
    fn reference_hash_ignores_what_redaction_strips() {
        let version = room_version("4").unwrap();
        let mut event = spec_minimal_event();
        add_content_hash(&mut event, Numbers::Strict).unwrap();
        let id = event_id(&event, version).unwrap();
        let mut changed = event.clone();
        changed.insert("age_ts".into(), json!(5));
        changed.insert("unsigned".into(), json!({"age": 5}));
        changed.insert("signatures".into(), json!({"x": {}}));
        changed.insert(
            "content".into(),
            json!({"body": "not covered by the reference hash"}),
        );
        assert_eq!(event_id(&changed, version).unwrap(), id);
        changed.insert("depth".into(), json!(4));
        assert_ne!(event_id(&changed, version).unwrap(), id);
    }

    #[test]
    fn event_id_alphabets_per_version() {
        let mut event = spec_minimal_event();
        add_content_hash(&mut event, Numbers::Strict).unwrap();
        let hash = reference_hash(&event, room_version("3").unwrap()).unwrap();
        let v3 = event_id(&event, room_version("3").unwrap()).unwrap();
        let v4 = event_id(&event, room_version("4").unwrap()).unwrap();
        assert_eq!(
            v3,
            format!("${}", base64::encode(&hash, Alphabet::Standard))
        );
        assert_eq!(v4, format!("${}", base64::encode(&hash, Alphabet::UrlSafe)));
        assert_eq!(v3.len(), 44);
        // v1/v2 take the id from the event.
        let v1 = room_version("1").unwrap();
        assert_eq!(
            event_id(&event, v1).unwrap_err().to_string(),
            "`event_id` is missing"
        );
        event.insert("event_id".into(), json!("$0:domain"));
        assert_eq!(event_id(&event, v1).unwrap(), "$0:domain");
        event.insert("event_id".into(), json!("$0"));
        assert!(
            event_id(&event, v1)
                .unwrap_err()
                .to_string()
                .contains("event_id")
        );
    }

    #[test]
    fn v12_room_id_is_the_create_event_hash() {
        let v12 = room_version("12").unwrap();
        let mut create = object(json!({
            "type": "m.room.create", "state_key": "", "sender": "@a:x", "content": {"room_version": "12"},
            "origin_server_ts": 1, "depth": 1, "prev_events": [], "auth_events": [], "signatures": {}
        }));
        add_content_hash(&mut create, Numbers::Strict).unwrap();
        let event_id = event_id(&create, v12).unwrap();
        let room_id = room_id_of_create_event(&create, v12).unwrap();
        assert_eq!(&room_id[1..], &event_id[1..]);
        assert!(room_id.starts_with('!'));
        ids::parse_room_id(&room_id, v12).unwrap();
    }
}
