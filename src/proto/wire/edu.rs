//! EDUs: the ephemeral messages a transaction carries besides PDUs.
//!
//! A transaction holds [`RawEdu`]s (`edu_type` plus untyped `content`) so that a receiver can
//! process the PDUs of a transaction whose EDUs it cannot read; [`RawEdu::parse`] turns one into
//! a typed [`Edu`], checking what the spec's schemas require. Unknown EDU types come back as
//! [`Edu::Other`], since receivers ignore what they do not understand.
//!
//! Invariant: `RawEdu::from(edu).parse()` gives back an equal `edu` for every `Edu` that passed
//! `parse` once.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The spec's limit on the length of a to-device `message_id`, in code points.
pub const DIRECT_TO_DEVICE_MESSAGE_ID_CHARS_MAX: usize = 32;

/// An EDU as it travels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RawEdu {
    pub edu_type: String,
    pub content: Value,
}

/// An EDU whose content was checked against its type's schema.
#[derive(Clone, Debug, PartialEq)]
pub enum Edu {
    Typing(TypingContent),
    Presence(PresenceContent),
    Receipt(ReceiptContent),
    DirectToDevice(DirectToDeviceContent),
    DeviceListUpdate(DeviceListUpdateContent),
    /// A type this crate does not model; kept as it came.
    Other(RawEdu),
}

/// Why an EDU's content does not match its type.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EduError {
    #[error("{edu_type} EDU: {reason}")]
    Malformed { edu_type: String, reason: String },
    #[error(
        "m.receipt EDU: receipt of {user_id} in {room_id} lists {count} event ids; exactly 1 is allowed"
    )]
    ReceiptEventCount {
        room_id: String,
        user_id: String,
        count: usize,
    },
    #[error(
        "m.direct_to_device EDU: message_id has {chars} code points; at most {DIRECT_TO_DEVICE_MESSAGE_ID_CHARS_MAX} are allowed"
    )]
    MessageIdTooLong { chars: usize },
}

pub const TYPING: &str = "m.typing";
pub const PRESENCE: &str = "m.presence";
pub const RECEIPT: &str = "m.receipt";
pub const DIRECT_TO_DEVICE: &str = "m.direct_to_device";
pub const DEVICE_LIST_UPDATE: &str = "m.device_list_update";

/// `m.typing`: a user started or stopped typing in a room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypingContent {
    pub room_id: String,
    pub user_id: String,
    pub typing: bool,
}

/// `m.presence`: presence updates for users of the sending server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceContent {
    pub push: Vec<PresenceUpdate>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceUpdate {
    pub user_id: String,
    pub presence: PresenceState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_msg: Option<String>,
    /// Milliseconds since the user last did something.
    pub last_active_ago: u64,
    /// The spec's default is false.
    #[serde(default)]
    pub currently_active: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PresenceState {
    Offline,
    Unavailable,
    Online,
}

/// `m.receipt`: read receipts, keyed by room id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReceiptContent(pub BTreeMap<String, RoomReceipts>);

/// The receipts of one room. `m.read` is the only receipt type that federates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomReceipts {
    /// Keyed by user id.
    #[serde(rename = "m.read")]
    pub read: BTreeMap<String, ReadReceipt>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadReceipt {
    /// The event the user has read up to; the spec requires exactly one.
    pub event_ids: Vec<String>,
    pub data: ReadReceiptData,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadReceiptData {
    /// When the user read the event, in milliseconds since the Unix epoch.
    pub ts: u64,
    /// The thread root (or `main`); absent for an unthreaded receipt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
}

/// `m.direct_to_device`: messages for specific devices of users on the receiving server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectToDeviceContent {
    pub sender: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// Unique per message, for idempotence; at most 32 code points.
    pub message_id: String,
    /// User id -> device id (or `*` for all devices) -> message body.
    pub messages: BTreeMap<String, BTreeMap<String, Map<String, Value>>>,
}

/// `m.device_list_update`: a user's device was added, changed or deleted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceListUpdateContent {
    pub user_id: String,
    pub device_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_display_name: Option<String>,
    pub stream_id: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prev_id: Vec<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<Map<String, Value>>,
}

impl RawEdu {
    /// Reads the content according to `edu_type`.
    pub fn parse(&self) -> Result<Edu, EduError> {
        let edu = match self.edu_type.as_str() {
            TYPING => Edu::Typing(self.content_as()?),
            PRESENCE => Edu::Presence(self.content_as()?),
            RECEIPT => Edu::Receipt(check_receipts(self.content_as()?)?),
            DIRECT_TO_DEVICE => Edu::DirectToDevice(check_to_device(self.content_as()?)?),
            DEVICE_LIST_UPDATE => Edu::DeviceListUpdate(self.content_as()?),
            _ => Edu::Other(self.clone()),
        };
        Ok(edu)
    }

    fn content_as<T: DeserializeOwned>(&self) -> Result<T, EduError> {
        T::deserialize(&self.content).map_err(|error| EduError::Malformed {
            edu_type: self.edu_type.clone(),
            reason: error.to_string(),
        })
    }
}

fn check_receipts(content: ReceiptContent) -> Result<ReceiptContent, EduError> {
    for (room_id, receipts) in &content.0 {
        for (user_id, receipt) in &receipts.read {
            if receipt.event_ids.len() != 1 {
                return Err(EduError::ReceiptEventCount {
                    room_id: room_id.clone(),
                    user_id: user_id.clone(),
                    count: receipt.event_ids.len(),
                });
            }
        }
    }
    Ok(content)
}

fn check_to_device(content: DirectToDeviceContent) -> Result<DirectToDeviceContent, EduError> {
    let chars = content.message_id.chars().count();
    if chars > DIRECT_TO_DEVICE_MESSAGE_ID_CHARS_MAX {
        return Err(EduError::MessageIdTooLong { chars });
    }
    Ok(content)
}

impl Edu {
    pub fn edu_type(&self) -> &str {
        match self {
            Edu::Typing(_) => TYPING,
            Edu::Presence(_) => PRESENCE,
            Edu::Receipt(_) => RECEIPT,
            Edu::DirectToDevice(_) => DIRECT_TO_DEVICE,
            Edu::DeviceListUpdate(_) => DEVICE_LIST_UPDATE,
            Edu::Other(raw) => &raw.edu_type,
        }
    }
}

impl From<&Edu> for RawEdu {
    fn from(edu: &Edu) -> Self {
        let content = match edu {
            Edu::Typing(content) => to_value(content),
            Edu::Presence(content) => to_value(content),
            Edu::Receipt(content) => to_value(content),
            Edu::DirectToDevice(content) => to_value(content),
            Edu::DeviceListUpdate(content) => to_value(content),
            Edu::Other(raw) => return raw.clone(),
        };
        RawEdu {
            edu_type: edu.edu_type().to_owned(),
            content,
        }
    }
}

fn to_value(content: &impl Serialize) -> Value {
    // These types hold only strings, integers, booleans and JSON values with string keys.
    serde_json::to_value(content).expect("EDU content always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(edu_type: &str, content: Value) -> RawEdu {
        RawEdu {
            edu_type: edu_type.into(),
            content,
        }
    }

    /// Parses, checks the typed value, and checks that it goes back to the same JSON.
    fn parse_round_trip(edu_type: &str, content: Value) -> Edu {
        let original = raw(edu_type, content);
        let edu = original.parse().unwrap();
        assert_eq!(edu.edu_type(), edu_type);
        assert_eq!(RawEdu::from(&edu), original);
        assert_eq!(RawEdu::from(&edu).parse().unwrap(), edu);
        edu
    }

    #[test]
    fn typing_spec_example() {
        let edu = parse_round_trip(
            TYPING,
            json!({"room_id": "!somewhere:matrix.org", "user_id": "@john:matrix.org",
                   "typing": true}),
        );
        let Edu::Typing(typing) = edu else { panic!() };
        assert!(typing.typing);
    }

    #[test]
    fn presence_spec_example() {
        let edu = parse_round_trip(
            PRESENCE,
            json!({"push": [{"user_id": "@john:matrix.org", "presence": "online",
                             "status_msg": "Making cupcakes", "last_active_ago": 5000,
                             "currently_active": true}]}),
        );
        let Edu::Presence(presence) = edu else {
            panic!()
        };
        assert_eq!(presence.push[0].presence, PresenceState::Online);
        // `currently_active` defaults to false.
        let minimal = raw(
            PRESENCE,
            json!({"push": [{"user_id": "@a:b", "presence": "offline", "last_active_ago": 0}]}),
        );
        let Edu::Presence(minimal) = minimal.parse().unwrap() else {
            panic!()
        };
        assert!(!minimal.push[0].currently_active);
        let bad = raw(
            PRESENCE,
            json!({"push": [{"user_id": "@a:b", "presence": "busy", "last_active_ago": 0}]}),
        );
        assert!(matches!(bad.parse(), Err(EduError::Malformed { .. })));
    }

    #[test]
    fn receipt_spec_example_and_event_count() {
        parse_round_trip(
            RECEIPT,
            json!({"!some_room:example.org": {"m.read": {"@john:matrix.org": {
                "event_ids": ["$read_this_event:matrix.org"],
                "data": {"ts": 1533358089009_u64}}}}}),
        );
        parse_round_trip(
            RECEIPT,
            json!({"!r:a": {"m.read": {"@u:a": {"event_ids": ["$e"],
                "data": {"ts": 1, "thread_id": "$threadroot"}}}}}),
        );
        let two = raw(
            RECEIPT,
            json!({"!r:a": {"m.read": {"@u:a": {"event_ids": ["$e", "$f"], "data": {"ts": 1}}}}}),
        );
        assert_eq!(
            two.parse(),
            Err(EduError::ReceiptEventCount {
                room_id: "!r:a".into(),
                user_id: "@u:a".into(),
                count: 2
            })
        );
        let no_read = raw(RECEIPT, json!({"!r:a": {}}));
        let error = no_read.parse().unwrap_err();
        assert!(error.to_string().contains("m.read"), "{error}");
    }

    #[test]
    fn direct_to_device_spec_example_and_message_id_limit() {
        let content = json!({
            "sender": "@john:example.com",
            "type": "m.room_key_request",
            "message_id": "hiezohf6Hoo7kaev",
            "messages": {"@alice:example.org": {"IWHQUZUIAH": {
                "algorithm": "m.megolm.v1.aes-sha2",
                "room_id": "!Cuyf34gef24t:localhost",
                "session_id": "X3lUlvLELLYxeTx4yOVu6UDpasGEVO0Jbu+QFnm0cKQ",
                "session_key": "AgAAAADxKHa9uFxcXzwYoNueL5Xqi69IkD4sni8LlfJL7qNBEY..."}}}
        });
        parse_round_trip(DIRECT_TO_DEVICE, content.clone());
        let mut long = content;
        long["message_id"] = json!("é".repeat(33));
        assert_eq!(
            raw(DIRECT_TO_DEVICE, long).parse(),
            Err(EduError::MessageIdTooLong { chars: 33 })
        );
    }

    #[test]
    fn device_list_update_spec_example() {
        parse_round_trip(
            DEVICE_LIST_UPDATE,
            json!({"user_id": "@john:example.com", "device_id": "QBUAZIFURK",
                   "device_display_name": "Mobile", "stream_id": 6, "prev_id": [5],
                   "deleted": false, "keys": {"user_id": "@john:example.com"}}),
        );
        parse_round_trip(
            DEVICE_LIST_UPDATE,
            json!({"user_id": "@a:b", "device_id": "D", "stream_id": 1}),
        );
    }

    #[test]
    fn unknown_types_pass_through_and_errors_name_the_type() {
        let unknown = raw("org.example.custom", json!({"key": "value"}));
        assert_eq!(unknown.parse().unwrap(), Edu::Other(unknown.clone()));
        assert_eq!(RawEdu::from(&Edu::Other(unknown.clone())), unknown);
        let error = raw(TYPING, json!({"room_id": "!r:a"})).parse().unwrap_err();
        let text = error.to_string();
        assert!(
            text.starts_with("m.typing EDU:") && text.contains("user_id"),
            "{text}"
        );
        assert!(raw(TYPING, json!("not an object")).parse().is_err());
    }
}
