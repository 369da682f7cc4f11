//! PDUs: room events as signed JSON on the wire, per room version.
//!
//! A [`Pdu`] holds the exact JSON object that was received (so hashes and signatures can be
//! recomputed byte for byte) together with the typed [`Event`] the authorization rules and state
//! resolution work on, and the room version it was parsed under. Building one checks the event
//! format of that room version (`format`) and derives the event id (`hashes`); it does not check
//! signatures or hashes, which is `verify`'s job, as the spec orders the checks on receipt:
//! format, then signatures (drop), then the content hash (redact).
//!
//! Modules: `redaction` (the redaction algorithm), `hashes` (content and reference hashes,
//! event ids), `format` (event format checks and the mapping into `Event`), `sign` (hashing and
//! signing outgoing events, building new PDUs), `verify` (signature and hash checks on
//! received PDUs).
//!
//! Invariants: a `Pdu`'s JSON passed the format checks of its room version; its `Event` was
//! derived from that JSON and nothing else; in room v12 the create event's `Event::room_id` is
//! `!` + its event id's hash exactly when its JSON has no `room_id` (a create event that names a
//! room id can never equal its own hash, which lets the authorization rules reject it).

mod format;
mod hashes;
mod redaction;
mod sign;
mod verify;

pub use format::{
    AUTH_EVENTS_MAX, DEPTH_MAX_BEFORE_V6, DEPTH_MAX_FROM_V6, FIELD_BYTES_MAX, PDU_BYTES_MAX,
    PREV_EVENTS_MAX, check_format,
};
pub use hashes::{
    SHA256, Sha256Hash, add_content_hash, content_hash, content_hash_matches, event_id,
    reference_hash, reference_hash_base64, room_id_of_create_event,
};
pub use redaction::redact;
pub use sign::{NewEvent, build_pdu, hash_and_sign_event, sign_event};
pub use verify::{
    KeyLookup, KeyQuery, SignatureFailure, Verification, authorising_server,
    check_authorising_server_signature, check_signatures, required_signers, signature_key_queries,
    verify_pdu,
};

use crate::proto::canonical_json::{CanonicalJsonError, Numbers, object_to_canonical_bytes};
use crate::proto::event::Event;
use crate::proto::ids::IdError;
use crate::proto::room_version::RoomVersion;
use crate::proto::signing::SigningError;
use serde_json::{Map, Value};

/// What is wrong with a PDU; `field` names where, like `prev_events.3`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PduProblem {
    #[error("not valid JSON: {0}")]
    Syntax(String),
    #[error("a PDU must be a JSON object")]
    NotAnObject,
    #[error("is {bytes} bytes as canonical JSON; at most {max} are allowed")]
    TooLarge { bytes: usize, max: usize },
    #[error("`{field}` is missing")]
    Missing { field: String },
    #[error("`{field}` must be {expected}")]
    WrongType {
        field: String,
        expected: &'static str,
    },
    #[error("`{field}` is {bytes} bytes long; at most {max} are allowed")]
    TooLong {
        field: String,
        bytes: usize,
        max: usize,
    },
    #[error("`{field}` has {count} entries; at most {max} are allowed")]
    TooMany {
        field: String,
        count: usize,
        max: usize,
    },
    #[error("`depth` {depth} is outside the range 0 to {max}")]
    DepthOutOfRange { depth: String, max: u64 },
    #[error("`{field}`: {error}")]
    BadId { field: String, error: IdError },
    #[error("`{field}` must not be present: {reason}")]
    Unexpected { field: String, reason: &'static str },
    #[error(transparent)]
    CanonicalJson(#[from] CanonicalJsonError),
    #[error(transparent)]
    Signing(#[from] SigningError),
}

impl PduProblem {
    pub fn missing(field: impl Into<String>) -> Self {
        Self::Missing {
            field: field.into(),
        }
    }

    pub fn wrong_type(field: impl Into<String>, expected: &'static str) -> Self {
        Self::WrongType {
            field: field.into(),
            expected,
        }
    }

    pub fn bad_id(field: impl Into<String>, error: IdError) -> Self {
        Self::BadId {
            field: field.into(),
            error,
        }
    }
}

/// A PDU that cannot be used, with its event id when one could be determined.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct PduError {
    pub event_id: Option<String>,
    pub problem: PduProblem,
}

impl std::fmt::Display for PduError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.event_id {
            Some(event_id) => write!(f, "event {event_id}: {}", self.problem),
            None => write!(f, "{}", self.problem),
        }
    }
}

impl PduError {
    pub fn new(problem: PduProblem) -> Self {
        Self {
            event_id: None,
            problem,
        }
    }

    /// Names the event, unless an id is already named.
    pub fn with_event_id(mut self, event_id: Option<String>) -> Self {
        if self.event_id.is_none() {
            self.event_id = event_id;
        }
        self
    }
}

/// A reference to another event from `prev_events` or `auth_events`. In room v1/v2 references
/// carry the referenced event's reference hash; later versions use the id alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRef {
    pub event_id: String,
    /// Unpadded standard base64 of the reference hash (room v1/v2 only; `None` writes `{}`).
    pub sha256: Option<String>,
}

impl From<&str> for EventRef {
    fn from(event_id: &str) -> Self {
        String::from(event_id).into()
    }
}

impl From<String> for EventRef {
    fn from(event_id: String) -> Self {
        Self {
            event_id,
            sha256: None,
        }
    }
}

/// A room event as received or built: the exact JSON, its typed view and its room version.
#[derive(Clone, PartialEq)]
pub struct Pdu {
    json: Map<String, Value>,
    event: Event,
    room_version: &'static RoomVersion,
    derived: Derived,
}

/// What is computed from a PDU's JSON the first time it is asked for: its compact JSON text (a
/// PDU shared by many servers goes on the wire many times, and is serialized once), the
/// length of its canonical JSON (which every server holding it counts), the SHA-256 of the
/// text (which every server's log digest writes) and its event id as one shared string (which
/// every server's store keys it by). Derived from the JSON alone, so it takes no
/// part in equality.
#[derive(Clone, Default)]
struct Derived {
    text: std::sync::OnceLock<Box<serde_json::value::RawValue>>,
    canonical_len: std::sync::OnceLock<usize>,
    text_sha256: std::sync::OnceLock<[u8; 32]>,
    event_id: std::sync::OnceLock<std::sync::Arc<str>>,
}

impl PartialEq for Derived {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// Without the text: a derived view, and run digests hash this output.
impl std::fmt::Debug for Pdu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pdu")
            .field("json", &self.json)
            .field("event", &self.event)
            .field("room_version", &self.room_version)
            .finish()
    }
}

impl Pdu {
    /// Checks `json` against the event format of `room_version`, derives its event id and the
    /// typed `Event`. Signatures and hashes are not checked here (see [`verify_pdu`]).
    pub fn from_json(
        json: Map<String, Value>,
        room_version: &'static RoomVersion,
    ) -> Result<Self, PduError> {
        let described = |error: PduError| {
            let event_id = event_id(&json, room_version).ok();
            error.with_event_id(event_id)
        };
        let fields = format::parse(&json, room_version).map_err(described)?;
        let event_id = event_id(&json, room_version).map_err(described)?;
        let event = fields.into_event(event_id);
        Ok(Self {
            json,
            event,
            room_version,
            derived: Derived::default(),
        })
    }

    /// Parses JSON text, then as [`Pdu::from_json`].
    pub fn parse(text: &str, room_version: &'static RoomVersion) -> Result<Self, PduError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| PduError::new(PduProblem::Syntax(e.to_string())))?;
        match value {
            Value::Object(json) => Self::from_json(json, room_version),
            _ => Err(PduError::new(PduProblem::NotAnObject)),
        }
    }

    /// The JSON object exactly as received or built.
    pub fn json(&self) -> &Map<String, Value> {
        &self.json
    }

    /// The JSON object as compact JSON text (keys in order, no whitespace): the bytes
    /// `serde_json` writes for [`Pdu::json`], computed once per PDU.
    pub fn json_text(&self) -> &serde_json::value::RawValue {
        self.derived.text.get_or_init(|| {
            serde_json::value::to_raw_value(&self.json).expect("a JSON object serializes")
        })
    }

    pub fn event(&self) -> &Event {
        &self.event
    }

    pub fn event_id(&self) -> &str {
        &self.event.event_id
    }

    pub fn room_version(&self) -> &'static RoomVersion {
        self.room_version
    }

    pub fn into_parts(self) -> (Map<String, Value>, Event) {
        (self.json, self.event)
    }

    /// The event id as a shared string: every holder of this PDU that keeps the id takes this
    /// one instead of a copy.
    pub fn shared_event_id(&self) -> std::sync::Arc<str> {
        self.shared_event_id_ref().clone()
    }

    /// [`Pdu::shared_event_id`] without taking a reference count.
    pub fn shared_event_id_ref(&self) -> &std::sync::Arc<str> {
        self.derived
            .event_id
            .get_or_init(|| std::sync::Arc::from(self.event_id()))
    }

    /// The SHA-256 of [`Pdu::json_text`]: names these exact bytes in digests.
    pub fn text_sha256(&self) -> &[u8; 32] {
        self.derived.text_sha256.get_or_init(|| {
            use sha2::{Digest, Sha256};
            Sha256::digest(self.json_text().get().as_bytes()).into()
        })
    }

    /// The length of [`Pdu::canonical_bytes`], computed once per PDU.
    pub fn canonical_len(&self) -> usize {
        *self
            .derived
            .canonical_len
            .get_or_init(|| self.canonical_bytes().len())
    }

    /// The canonical JSON bytes of the PDU as it goes on the wire.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        object_to_canonical_bytes(&self.json, Numbers::Lenient)
            .expect("lenient canonical JSON accepts every JSON value")
    }

    /// A reference to this event for the `prev_events` / `auth_events` of a new one.
    pub fn as_reference(&self) -> EventRef {
        let sha256 = self.room_version.event_ids_in_events().then(|| {
            reference_hash_base64(&self.json, self.room_version)
                .expect("the reference hash of a format-checked PDU can be computed")
        });
        EventRef {
            event_id: self.event.event_id.clone(),
            sha256,
        }
    }

    /// The redacted form of this PDU: same event id, same room version.
    pub fn redacted(&self) -> Pdu {
        let json = redact(&self.json, self.room_version)
            .expect("a format-checked PDU has a string `type` and an object `content`");
        let redacted = Pdu::from_json(json, self.room_version)
            .expect("redacting a format-checked PDU keeps its format valid");
        assert_eq!(
            redacted.event_id(),
            self.event_id(),
            "redaction must not change an event's id"
        );
        redacted
    }
}

#[cfg(test)]
mod tests;
