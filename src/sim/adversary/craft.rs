//! The builder of crafted events: events an attacker signs with its own server's real key,
//! with whatever sender, prev events and auth events the attack needs. The starting point is
//! the attacker's own honest view of the room (its forward extremities, depth and current
//! state), so a crafted event differs from an honest one only where the attack says.
//!
//! Invariant: every event built here is signed by the attacker's server only, with its real
//! key; a crafted event never enters the attacker's own store, so the attacker's honest server
//! keeps behaving honestly around it.

use crate::proto::auth::auth_types_for_event;
use crate::proto::event::{StateMap, state_entry};
use crate::proto::pdu::{EventRef, NewEvent, Pdu, build_pdu, hash_and_sign_event};
use crate::proto::room_version::RoomVersion;
use crate::proto::signing::SigningKey;
use crate::proto::wire::RawPdu;
use crate::server::Homeserver;
use serde_json::{Map, Value};

/// The attacker's honest view of a room at one moment.
#[derive(Clone, Debug)]
pub struct RoomView {
    pub room_id: String,
    pub version: &'static RoomVersion,
    /// Forward extremities with references, deepest first (at most the spec's 20).
    pub extremities: Vec<EventRef>,
    /// Depth for a new event citing `extremities`.
    pub depth: u64,
    pub current_state: StateMap,
}

impl RoomView {
    /// The view of `room_id` on `server`, if it holds the room.
    pub fn of(server: &Homeserver, room_id: &str) -> Option<Self> {
        server.with_room(room_id, |room| {
            let (prev, depth) = room.dag().prev_events_for_new_event();
            let extremities = prev
                .iter()
                .filter_map(|id| room.event(id).map(|pdu| pdu.as_reference()))
                .collect();
            Self {
                room_id: room_id.to_owned(),
                version: room.room_version(),
                extremities,
                depth,
                current_state: room.current_state().clone(),
            }
        })
    }

    /// The auth events the spec's selection names for this event, from the current state.
    pub fn selected_auth_events(
        &self,
        event_type: &str,
        state_key: Option<&str>,
        sender: &str,
        content: &Map<String, Value>,
    ) -> Vec<EventRef> {
        auth_types_for_event(self.version, event_type, state_key, sender, content)
            .iter()
            .filter_map(|key| self.current_state.get(key))
            .map(|id| EventRef::from(id.as_str()))
            .collect()
    }

    /// The state event id under (`event_type`, `state_key`), if any.
    pub fn state_id(&self, event_type: &str, state_key: &str) -> Option<&str> {
        state_entry(&self.current_state, event_type, state_key).map(String::as_str)
    }

    /// A new event citing the extremities and the selected auth events: what an honest
    /// server would build, before the attack changes it.
    pub fn draft(
        &self,
        sender: &str,
        event_type: &str,
        state_key: Option<&str>,
        content: Map<String, Value>,
        origin_server_ts: u64,
    ) -> NewEvent {
        NewEvent {
            room_id: Some(self.room_id.clone()),
            sender: sender.to_owned(),
            event_type: event_type.to_owned(),
            state_key: state_key.map(str::to_owned),
            auth_events: self.selected_auth_events(event_type, state_key, sender, &content),
            content,
            prev_events: self.extremities.clone(),
            depth: self.depth,
            origin_server_ts,
            redacts: None,
            event_id_opaque: None,
        }
    }
}

/// Signs crafted events as one server.
#[derive(Clone)]
pub struct Crafter {
    pub server_name: String,
    pub key: SigningKey,
}

/// Why an event could not be crafted.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("cannot craft the event: {0}")]
pub struct CraftError(pub String);

impl Crafter {
    pub fn of(server: &Homeserver) -> Self {
        Self {
            server_name: server.name().to_owned(),
            key: server.signing_key().clone(),
        }
    }

    /// Builds and signs `new` with this server's key.
    pub fn sign(&self, new: NewEvent, version: &'static RoomVersion) -> Result<Pdu, CraftError> {
        build_pdu(new, version, &self.server_name, &self.key).map_err(|e| CraftError(e.to_string()))
    }

    /// Builds `new`, then pads its content with `padding_bytes` of text and hashes and signs
    /// it again: a correctly signed event over the spec's size limit, which `build_pdu` (which
    /// checks the format) refuses to make.
    pub fn sign_oversized(
        &self,
        new: NewEvent,
        version: &'static RoomVersion,
        padding_bytes: usize,
    ) -> Result<RawPdu, CraftError> {
        let pdu = self.sign(new, version)?;
        let mut json = pdu.json().clone();
        json.remove("hashes");
        json.remove("signatures");
        if let Some(Value::Object(content)) = json.get_mut("content") {
            content.insert(
                "padding".to_owned(),
                Value::String("x".repeat(padding_bytes)),
            );
        }
        hash_and_sign_event(&mut json, version, &self.server_name, &self.key)
            .map_err(|e| CraftError(e.to_string()))?;
        Ok(json)
    }
}

/// An event id that no server holds, in the room version's format, distinct per `seed`.
pub fn unknown_event_id(version: &RoomVersion, seed: u64, server_name: &str) -> String {
    use sha2::{Digest as _, Sha256};
    let hash = Sha256::digest(format!("unknown/{seed}").as_bytes());
    let opaque = crate::proto::base64::encode(&hash, crate::proto::base64::Alphabet::UrlSafe);
    if version.event_ids_in_events() {
        format!("${}:{server_name}", &opaque[..18])
    } else {
        format!("${opaque}")
    }
}
