//! Building small signed rooms for tests and hand-made scenarios.
//!
//! A [`RoomBuilder`] signs events as their senders' servers (each server's key is derived from
//! its name, so a scenario is the same on every run) and keeps an *author* store that ingests
//! every event it builds. The author store supplies what a real server would choose: prev
//! events (its forward extremities unless told otherwise), depth, and auth events (the auth
//! events selection applied to the state before the new event). Events the author rejects are
//! still built and returned, so a test can hand them to the store under test.
//!
//! Invariant: building is deterministic: the same calls give byte-identical PDUs.

use super::log::DurableLog;
use super::room::RoomStore;
use crate::proto::auth::auth_types_for_event;
use crate::proto::event::{StateMap, server_of};
use crate::proto::pdu::{EventRef, NewEvent, Pdu, build_pdu};
use crate::proto::room_version::RoomVersion;
use crate::proto::signing::SigningKey;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The signing key of `server` in built scenarios: seeded by the hash of its name.
pub fn server_key(server: &str) -> SigningKey {
    let seed: [u8; 32] = Sha256::digest(server.as_bytes()).into();
    SigningKey::from_seed("ed25519:1", &seed).expect("a well-formed key id")
}

/// One event to build; unset fields are chosen by the builder.
#[derive(Clone, Debug, PartialEq)]
pub struct EventSpec {
    pub sender: String,
    pub event_type: String,
    pub state_key: Option<String>,
    pub content: Value,
    /// `None`: the author store's forward extremities.
    pub prev_events: Option<Vec<String>>,
    /// `None`: selected from the state before the event.
    pub auth_events: Option<Vec<String>>,
    pub redacts: Option<String>,
    /// `None`: one more than the deepest prev event.
    pub depth: Option<u64>,
}

impl EventSpec {
    pub fn new(sender: &str, event_type: &str) -> Self {
        Self {
            sender: sender.to_owned(),
            event_type: event_type.to_owned(),
            state_key: None,
            content: json!({}),
            prev_events: None,
            auth_events: None,
            redacts: None,
            depth: None,
        }
    }

    pub fn state_key(mut self, state_key: &str) -> Self {
        self.state_key = Some(state_key.to_owned());
        self
    }

    pub fn content(mut self, content: Value) -> Self {
        self.content = content;
        self
    }

    pub fn prev(mut self, prev_events: &[&str]) -> Self {
        self.prev_events = Some(prev_events.iter().map(|id| (*id).to_owned()).collect());
        self
    }

    pub fn auth(mut self, auth_events: &[&str]) -> Self {
        self.auth_events = Some(auth_events.iter().map(|id| (*id).to_owned()).collect());
        self
    }

    pub fn redacts(mut self, event_id: &str) -> Self {
        self.redacts = Some(event_id.to_owned());
        self
    }

    pub fn depth(mut self, depth: u64) -> Self {
        self.depth = Some(depth);
        self
    }
}

/// Builds the events of one room, signed, with an author store that holds them all.
#[derive(Debug)]
pub struct RoomBuilder {
    version: &'static RoomVersion,
    author: RoomStore,
    built: Vec<Arc<Pdu>>,
    clock_ms: u64,
}

impl RoomBuilder {
    /// A room created by `creator`; its create event is the first event built.
    pub fn new(version: &'static RoomVersion, creator: &str) -> Self {
        let mut content = Map::new();
        content.insert("room_version".to_owned(), json!(version.id));
        if !version.creator_is_sender {
            content.insert("creator".to_owned(), json!(creator));
        }
        let room_id =
            (!version.room_id_from_create_event).then(|| format!("!room:{}", server_of(creator)));
        let new = NewEvent {
            room_id,
            sender: creator.to_owned(),
            event_type: "m.room.create".to_owned(),
            state_key: Some(String::new()),
            content,
            prev_events: Vec::new(),
            auth_events: Vec::new(),
            depth: 1,
            origin_server_ts: 1,
            redacts: None,
            event_id_opaque: None,
        };
        let server = server_of(creator);
        let create = build_pdu(new, version, server, &server_key(server))
            .expect("the create event is well formed");
        let mut author = RoomStore::new(&create.event().room_id, version, DurableLog::new());
        let create = Arc::new(create);
        author
            .ingest(create.clone(), false)
            .expect("the create event needs no other event");
        Self {
            version,
            author,
            built: vec![create],
            clock_ms: 1,
        }
    }

    /// A room as most tests want it: created by `creator`, who joins, sets power levels
    /// (`creator` at 100, or, in room v12, with a creator's infinite power, which forbids
    /// listing them; state at 50, events at 0, ban/kick/redact at 50, invite at 0) and a
    /// public join rule.
    pub fn standard(version: &'static RoomVersion, creator: &str) -> Self {
        let mut room = Self::new(version, creator);
        room.join(creator);
        let users = if version.privileged_creators {
            json!({})
        } else {
            json!({creator: 100})
        };
        room.state(
            creator,
            "m.room.power_levels",
            json!({"users": users, "users_default": 0, "state_default": 50,
                   "events_default": 0, "ban": 50, "kick": 50, "redact": 50, "invite": 0}),
        );
        room.state(creator, "m.room.join_rules", json!({"join_rule": "public"}));
        room
    }

    pub fn version(&self) -> &'static RoomVersion {
        self.version
    }

    pub fn room_id(&self) -> &str {
        self.author.room_id()
    }

    /// The store that ingested every built event, in build order.
    pub fn author(&self) -> &RoomStore {
        &self.author
    }

    /// Every event built so far, in build order (each after its prev and auth events).
    pub fn built(&self) -> &[Arc<Pdu>] {
        &self.built
    }

    pub fn create_event(&self) -> Arc<Pdu> {
        self.built[0].clone()
    }

    /// A built event by id.
    pub fn pdu(&self, event_id: &str) -> Arc<Pdu> {
        self.built
            .iter()
            .find(|pdu| pdu.event_id() == event_id)
            .unwrap_or_else(|| panic!("{event_id} was not built here"))
            .clone()
    }

    /// Builds, signs and returns the event; the author store ingests it.
    pub fn event(&mut self, spec: EventSpec) -> Arc<Pdu> {
        let prev_events = match spec.prev_events {
            Some(prev_events) => prev_events,
            None => self.author.dag().prev_events_for_new_event().0,
        };
        let depth = spec.depth.unwrap_or_else(|| {
            prev_events
                .iter()
                .filter_map(|id| self.author.dag().depth(id))
                .max()
                .map_or(1, |depth| depth + 1)
        });
        let content = match spec.content {
            Value::Object(content) => content,
            other => panic!("event content must be an object, not {other}"),
        };
        let auth_events = match spec.auth_events {
            Some(auth_events) => auth_events,
            None => {
                let state = self.state_before(&prev_events);
                auth_types_for_event(
                    self.version,
                    &spec.event_type,
                    spec.state_key.as_deref(),
                    &spec.sender,
                    &content,
                )
                .iter()
                .filter_map(|key| state.get(key).cloned())
                .collect()
            }
        };
        self.clock_ms += 1;
        let new = NewEvent {
            room_id: Some(self.room_id().to_owned()),
            sender: spec.sender.clone(),
            event_type: spec.event_type,
            state_key: spec.state_key,
            content,
            prev_events: self.references(&prev_events),
            auth_events: self.references(&auth_events),
            depth,
            origin_server_ts: self.clock_ms,
            redacts: spec.redacts,
            event_id_opaque: None,
        };
        let server = server_of(&spec.sender);
        let pdu = Arc::new(
            build_pdu(new, self.version, server, &server_key(server))
                .expect("built events are well formed"),
        );
        // Prev events the author lacks (a scenario with a gap) leave it unplaced there.
        let _ = self.author.ingest(pdu.clone(), false);
        self.built.push(pdu.clone());
        pdu
    }

    /// `user` joins (its own membership event).
    pub fn join(&mut self, user: &str) -> Arc<Pdu> {
        self.member(user, user, "join")
    }

    /// `sender` sets `target`'s membership.
    pub fn member(&mut self, sender: &str, target: &str, membership: &str) -> Arc<Pdu> {
        self.event(
            EventSpec::new(sender, "m.room.member")
                .state_key(target)
                .content(json!({"membership": membership})),
        )
    }

    /// A state event with an empty state key.
    pub fn state(&mut self, sender: &str, event_type: &str, content: Value) -> Arc<Pdu> {
        self.event(
            EventSpec::new(sender, event_type)
                .state_key("")
                .content(content),
        )
    }

    pub fn message(&mut self, sender: &str, body: &str) -> Arc<Pdu> {
        self.event(
            EventSpec::new(sender, "m.room.message")
                .content(json!({"msgtype": "m.text", "body": body})),
        )
    }

    /// The state before an event citing `prev_events`, as the author store computes it.
    fn state_before(&self, prev_events: &[String]) -> StateMap {
        let states: Vec<StateMap> = prev_events
            .iter()
            .filter_map(|id| self.author.state_after(id))
            .collect();
        match states.as_slice() {
            [] => StateMap::new(),
            [only] => only.clone(),
            _ => self
                .author
                .resolve_state_sets(&states)
                .expect("the author holds every event it built"),
        }
    }

    fn references(&self, event_ids: &[String]) -> Vec<EventRef> {
        event_ids
            .iter()
            .map(|id| self.pdu(id).as_reference())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::room_version::room_version;

    #[test]
    fn building_is_deterministic() {
        let build = || {
            let mut room = RoomBuilder::standard(room_version("11").unwrap(), "@a:x.example");
            room.join("@b:y.example");
            room.message("@b:y.example", "hi");
            room.built().to_vec()
        };
        assert_eq!(build(), build());
    }

    #[test]
    fn the_author_chooses_prev_and_auth_events() {
        let mut room = RoomBuilder::standard(room_version("12").unwrap(), "@a:x.example");
        let join = room.join("@b:y.example");
        let message = room.message("@b:y.example", "hi");
        assert_eq!(message.event().prev_events, [join.event_id()]);
        assert_eq!(message.event().depth, join.event().depth + 1);
        // Room v12: power levels and the sender's membership; the create event is implied.
        assert_eq!(message.event().auth_events.len(), 2);
        assert!(
            message
                .event()
                .auth_events
                .contains(&join.event_id().to_owned())
        );
        assert_eq!(room.author().forward_extremities().len(), 1);
        assert!(
            room.author()
                .record(message.event_id())
                .unwrap()
                .is_accepted()
        );
        assert_eq!(server_key("x.example").key_id(), "ed25519:1");
        assert_ne!(
            server_key("x.example").public_key_base64(),
            server_key("y.example").public_key_base64()
        );
    }
}
