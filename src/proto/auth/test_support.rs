//! Builders that keep the authorization tests short: users on three servers, events with
//! defaults, and a room whose state is a map the tests fill in directly (no auth on insert,
//! so a test can set up any state it wants to check against).

pub(super) use super::selection::key;
use super::{AuthRule, check_auth};
use crate::proto::event::{Event, StateKey};
use crate::proto::room_version::{ALL, RoomVersion, room_version};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

pub const ALICE: &str = "@alice:a.example";
pub const BOB: &str = "@bob:b.example";
pub const CAROL: &str = "@carol:c.example";
pub const DAVE: &str = "@dave:a.example";

pub fn versions() -> impl Iterator<Item = &'static RoomVersion> {
    ALL.iter()
}

pub fn v(number: u32) -> &'static RoomVersion {
    room_version(&number.to_string()).unwrap()
}

pub fn empty_state() -> BTreeMap<StateKey, Event> {
    BTreeMap::new()
}

pub fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("test content must be an object, got {other}"),
    }
}

/// An event with test defaults: one prev event that is not the create event, no auth events.
#[derive(Clone, Debug)]
pub struct EventBuilder {
    event: Event,
}

impl EventBuilder {
    pub fn state(event_type: &str, state_key: &str, sender: &str) -> Self {
        let mut builder = Self::message(event_type, sender);
        builder.event.state_key = Some(state_key.to_owned());
        builder
    }

    pub fn message(event_type: &str, sender: &str) -> Self {
        Self {
            event: Event {
                event_id: "$event:a.example".into(),
                room_id: "!room:a.example".into(),
                sender: sender.into(),
                event_type: event_type.into(),
                state_key: None,
                content: Map::new(),
                prev_events: vec!["$previous:a.example".into()],
                auth_events: vec![],
                depth: 2,
                origin_server_ts: 0,
                redacts: None,
            },
        }
    }

    /// `sender` sets `target`'s membership.
    pub fn member(sender: &str, target: &str, membership: &str) -> Self {
        Self::state("m.room.member", target, sender).content(json!({"membership": membership}))
    }

    pub fn content(mut self, content: Value) -> Self {
        self.event.content = object(content);
        self
    }

    pub fn id(mut self, event_id: &str) -> Self {
        self.event.event_id = event_id.into();
        self
    }

    pub fn room(mut self, room_id: &str) -> Self {
        self.event.room_id = room_id.into();
        self
    }

    pub fn prev(mut self, prev_events: &[&str]) -> Self {
        self.event.prev_events = prev_events.iter().map(|id| id.to_string()).collect();
        self
    }

    pub fn auth(mut self, auth_events: &[&str]) -> Self {
        self.event.auth_events = auth_events.iter().map(|id| id.to_string()).collect();
        self
    }

    pub fn redacts(mut self, event_id: &str) -> Self {
        self.event.redacts = Some(event_id.into());
        self
    }

    pub fn build(self) -> Event {
        self.event
    }
}

/// A create event by `sender`, with `creator` filled in where the version wants it and the
/// given extra content merged over it.
pub fn create_event(version: &RoomVersion, sender: &str, extra: Value) -> Event {
    let mut content = Map::new();
    if !version.creator_is_sender {
        content.insert("creator".into(), json!(sender));
    }
    content.extend(object(extra));
    let server = crate::proto::event::server_of(sender);
    let (event_id, room_id) = if version.room_id_from_create_event {
        ("$create".to_owned(), "!create".to_owned())
    } else {
        (format!("$create:{server}"), format!("!room:{server}"))
    };
    Event {
        event_id,
        room_id,
        sender: sender.into(),
        event_type: "m.room.create".into(),
        state_key: Some(String::new()),
        content,
        prev_events: vec![],
        auth_events: vec![],
        depth: 1,
        origin_server_ts: 0,
        redacts: None,
    }
}

/// A room's state, built by hand.
pub struct TestRoom {
    pub version: &'static RoomVersion,
    pub room_id: String,
    pub create_id: String,
    pub events: BTreeMap<StateKey, Event>,
    next_id: u32,
}

impl TestRoom {
    /// A room created by `creator`, who has joined.
    pub fn new(version: &'static RoomVersion, creator: &str) -> Self {
        Self::with_create(version, creator, json!({}))
    }

    /// As [`TestRoom::new`], with extra content in the create event.
    pub fn with_create(version: &'static RoomVersion, creator: &str, extra: Value) -> Self {
        let create = create_event(version, creator, extra);
        let mut room = Self {
            version,
            room_id: create.room_id.clone(),
            create_id: create.event_id.clone(),
            events: BTreeMap::new(),
            next_id: 0,
        };
        room.events.insert(create.state_key_pair().unwrap(), create);
        let first_join = EventBuilder::member(creator, creator, "join");
        let create_id = room.create_id.clone();
        room.add(first_join.prev(&[&create_id]));
        room
    }

    /// Gives the event this room's id and a fresh event id, unless it set one of its own.
    pub fn finish(&mut self, builder: EventBuilder) -> Event {
        let mut event = builder.build();
        if event.room_id == "!room:a.example" {
            event.room_id = self.room_id.clone();
        }
        if event.event_id == "$event:a.example" {
            self.next_id += 1;
            event.event_id = format!("$e{}:{}", self.next_id, event.sender_server());
        }
        event
    }

    /// Puts a state event into the state as it is, without checking it.
    pub fn add(&mut self, builder: EventBuilder) -> &mut Self {
        let event = self.finish(builder);
        let key = event
            .state_key_pair()
            .expect("only state events go into the state");
        self.events.insert(key, event);
        self
    }

    pub fn set_membership(&mut self, user_id: &str, membership: &str) -> &mut Self {
        self.add(EventBuilder::member(user_id, user_id, membership))
    }

    pub fn join(&mut self, user_id: &str) -> &mut Self {
        self.set_membership(user_id, "join")
    }

    pub fn power_levels(&mut self, content: Value) -> &mut Self {
        let sender = self.events[&key("m.room.create", "")].sender.clone();
        self.add(EventBuilder::state("m.room.power_levels", "", &sender).content(content))
    }

    pub fn join_rule(&mut self, rule: &str) -> &mut Self {
        let sender = self.events[&key("m.room.create", "")].sender.clone();
        self.add(
            EventBuilder::state("m.room.join_rules", "", &sender)
                .content(json!({"join_rule": rule})),
        )
    }

    pub fn state(&self) -> BTreeMap<StateKey, Event> {
        self.events.clone()
    }

    /// Checks an event against this room's state; the failed rule, if any.
    pub fn check(&mut self, builder: EventBuilder) -> Result<(), AuthRule> {
        let event = self.finish(builder);
        check_auth(self.version, &event, &self.events).map_err(|error| error.rule)
    }
}
