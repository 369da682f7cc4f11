//! The rules every event goes through after rule 1, and the view of the room they share.
//!
//! [`Room`] pairs the event under check with the state it is checked against and the room's
//! create event; its helpers read memberships (none means `leave`) and power levels. The
//! rules here are those of the spec that are not about one event type's content: room ids,
//! `m.federate`, the v1-v5 `m.room.aliases` rule, the sender being joined, the
//! `m.room.third_party_invite` and required power level rules, user-owned state keys, and the
//! v1-v2 `m.room.redaction` rule.

use super::user_power_level;
use super::{AuthError, AuthRule, AuthState, auth_keys_for_event, create, power, reject};
use crate::proto::event::{Event, server_of};
use crate::proto::room_version::RoomVersion;

/// Rooms v1 and v2 have a rule of their own for `m.room.redaction`, comparing the servers in
/// event ids. It went away in v3 together with server-made event ids, which is why it is tied to
/// the event id format.
pub(super) fn redaction_rule_applies(version: &RoomVersion) -> bool {
    version.event_ids_in_events()
}

/// An event under check, with the state it is checked against and the room's create event.
pub(super) struct Room<'a> {
    pub(super) version: &'a RoomVersion,
    pub(super) state: &'a dyn AuthState,
    pub(super) create_event: &'a Event,
    pub(super) event: &'a Event,
}

impl<'a> Room<'a> {
    pub(super) fn get(&self, event_type: &str, state_key: &str) -> Option<&'a Event> {
        self.state.get(event_type, state_key)
    }

    /// `content.membership` of `user_id`'s member event, `leave` when there is none.
    pub(super) fn membership_of(&self, user_id: &str) -> &'a str {
        self.get("m.room.member", user_id)
            .and_then(Event::membership)
            .unwrap_or("leave")
    }

    pub(super) fn power_of(&self, user_id: &str) -> i128 {
        user_power_level(self.version, user_id, self.state)
    }

    pub(super) fn levels(&self) -> power::Levels<'a> {
        power::Levels::new(self.version, self.get("m.room.power_levels", ""))
    }

    pub(super) fn id(&self) -> &str {
        &self.event.event_id
    }

    /// Room v12, rule 2: the room id is the create event's id with `!` for `$`. Before v12,
    /// the create event and every other state event the rules consult must be in the event's
    /// room (the spec's rule on the `room_id` of auth events, applied to what is read here).
    pub(super) fn check_room_ids(&self) -> Result<(), AuthError> {
        if self.version.room_id_from_create_event {
            let create_id = &self.create_event.event_id;
            if !create::is_room_id_of_create_event(&self.event.room_id, create_id) {
                let expected = create::room_id_of_create_event(create_id);
                return reject(
                    AuthRule::RoomIdNotCreateEvent,
                    format!(
                        "{}: room_id {} is not the create event's room {}",
                        self.id(),
                        self.event.room_id,
                        expected
                    ),
                );
            }
        } else {
            self.check_same_room(self.create_event)?;
        }
        let sender = self.event.sender.as_str();
        let content = &self.event.content;
        let state_key = self.event.state_key.as_deref();
        let keys = auth_keys_for_event(
            self.version,
            &self.event.event_type,
            state_key,
            sender,
            content,
        );
        for (event_type, key) in keys.iter() {
            if event_type == "m.room.create" {
                continue;
            }
            if let Some(consulted) = self.get(event_type, key) {
                self.check_same_room(consulted)?;
            }
        }
        Ok(())
    }

    pub(super) fn check_same_room(&self, other: &Event) -> Result<(), AuthError> {
        if other.room_id == self.event.room_id {
            return Ok(());
        }
        reject(
            AuthRule::AuthEventWrongRoom,
            format!(
                "{}: auth event {} is in room {}, not {}",
                self.id(),
                other.event_id,
                other.room_id,
                self.event.room_id
            ),
        )
    }

    /// `m.federate: false` keeps the room to the create event's server.
    pub(super) fn check_federation(&self) -> Result<(), AuthError> {
        let federate = self.create_event.content.get("m.federate");
        if federate != Some(&serde_json::Value::Bool(false)) {
            return Ok(());
        }
        let room_server = self.create_event.sender_server();
        if self.event.sender_server() == room_server {
            return Ok(());
        }
        reject(
            AuthRule::NotFederated,
            format!(
                "{}: the room is not federated and {} is not on {}",
                self.id(),
                self.event.sender,
                room_server
            ),
        )
    }

    /// Rooms v1-v5: a server may set the aliases under its own name, member or not.
    pub(super) fn check_aliases(&self) -> Result<(), AuthError> {
        let Some(state_key) = self.event.state_key.as_deref() else {
            return reject(
                AuthRule::AliasesWithoutStateKey,
                format!("{}: m.room.aliases without a state_key", self.id()),
            );
        };
        if state_key != self.event.sender_server() {
            return reject(
                AuthRule::AliasesStateKeyNotSenderServer,
                format!(
                    "{}: state_key {state_key:?} is not the sender's server {}",
                    self.id(),
                    self.event.sender_server()
                ),
            );
        }
        Ok(())
    }

    pub(super) fn check_sender_joined(&self) -> Result<(), AuthError> {
        let membership = self.membership_of(&self.event.sender);
        if membership == "join" {
            return Ok(());
        }
        reject(
            AuthRule::SenderNotJoined,
            format!(
                "{}: sender {} is {membership}, not join",
                self.id(),
                self.event.sender
            ),
        )
    }

    pub(super) fn check_third_party_invite_event(&self) -> Result<(), AuthError> {
        let power = self.power_of(&self.event.sender);
        let invite_level = self.levels().invite();
        if power >= invite_level {
            return Ok(());
        }
        reject(
            AuthRule::ThirdPartyInviteEventWithoutPower,
            format!(
                "{}: sender {} has power {} below the invite level {invite_level}",
                self.id(),
                self.event.sender,
                power::show(power)
            ),
        )
    }

    pub(super) fn check_required_power(&self) -> Result<(), AuthError> {
        let required = self
            .levels()
            .required_for(&self.event.event_type, self.event.state_key.is_some());
        let power = self.power_of(&self.event.sender);
        if required <= power {
            return Ok(());
        }
        reject(
            AuthRule::EventWithoutPower,
            format!(
                "{}: sender {} has power {} and {} needs {required}",
                self.id(),
                self.event.sender,
                power::show(power),
                self.event.event_type
            ),
        )
    }

    pub(super) fn check_user_state_key(&self) -> Result<(), AuthError> {
        match self.event.state_key.as_deref() {
            Some(key) if key.starts_with('@') && key != self.event.sender => reject(
                AuthRule::StateKeyNotSender,
                format!(
                    "{}: state_key {key} belongs to another user than {}",
                    self.id(),
                    self.event.sender
                ),
            ),
            _ => Ok(()),
        }
    }

    /// Rooms v1-v2: redacting needs the redact level, unless the redacted event's id is from
    /// the redaction's own server.
    pub(super) fn check_redaction(&self) -> Result<(), AuthError> {
        let power = self.power_of(&self.event.sender);
        let redact_level = self.levels().redact();
        if power >= redact_level {
            return Ok(());
        }
        let own_server = server_of(&self.event.event_id);
        if let Some(redacts) = self.event.redacts.as_deref()
            && server_of(redacts) == own_server
        {
            return Ok(());
        }
        reject(
            AuthRule::RedactionWithoutPower,
            format!(
                "{}: sender {} has power {} below the redact level {redact_level}, and {:?} \
                 is not an event of {own_server}",
                self.id(),
                self.event.sender,
                power::show(power),
                self.event.redacts
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::proto::auth::AuthRule::*;
    use crate::proto::auth::test_support::*;
    use crate::proto::auth::{AuthState, check_auth};
    use crate::proto::event::{Event, StateKey};
    use serde_json::json;
    use std::collections::BTreeMap;

    fn topic(sender: &str) -> EventBuilder {
        EventBuilder::state("m.room.topic", "", sender).content(json!({"topic": "hi"}))
    }

    fn message(sender: &str) -> EventBuilder {
        EventBuilder::message("m.room.message", sender).content(json!({"body": "hi"}))
    }

    #[test]
    fn state_without_create_event_is_rejected() {
        for version in versions() {
            let mut room = TestRoom::new(version, ALICE);
            room.events.remove(&key("m.room.create", ""));
            assert_eq!(
                room.check(message(ALICE)),
                Err(NoCreateEvent),
                "v{}",
                version.id
            );
        }
    }

    #[test]
    fn v12_room_id_must_come_from_the_create_event() {
        let mut room = TestRoom::new(v(12), ALICE);
        assert_eq!(room.check(message(ALICE)), Ok(()));
        assert_eq!(
            room.check(message(ALICE).room("!elsewhere")),
            Err(RoomIdNotCreateEvent)
        );
        // Before v12 a room id of another room shows as a create event of another room.
        let mut room = TestRoom::new(v(11), ALICE);
        assert_eq!(
            room.check(message(ALICE).room("!elsewhere:a.example")),
            Err(AuthEventWrongRoom)
        );
    }

    #[test]
    fn consulted_state_from_another_room_is_rejected() {
        for version in versions() {
            let mut room = TestRoom::new(version, ALICE);
            room.add(
                EventBuilder::state("m.room.power_levels", "", ALICE)
                    .room("!other:a.example")
                    .content(json!({})),
            );
            assert_eq!(
                room.check(message(ALICE)),
                Err(AuthEventWrongRoom),
                "v{}",
                version.id
            );
        }
    }

    #[test]
    fn unfederated_rooms_keep_to_the_creators_server() {
        for version in versions() {
            let mut room = TestRoom::with_create(version, ALICE, json!({"m.federate": false}));
            room.join_rule("public");
            // Dave shares Alice's server.
            assert_eq!(room.check(EventBuilder::member(DAVE, DAVE, "join")), Ok(()));
            assert_eq!(
                room.check(EventBuilder::member(BOB, BOB, "join")),
                Err(NotFederated)
            );
            // Only the boolean false counts.
            let mut open = TestRoom::with_create(version, ALICE, json!({"m.federate": "false"}));
            open.join_rule("public");
            assert_eq!(open.check(EventBuilder::member(BOB, BOB, "join")), Ok(()));
        }
    }

    #[test]
    fn aliases_rule_in_v1_to_v5() {
        for version in versions() {
            let mut room = TestRoom::new(version, ALICE);
            // Bob is not in the room and has no power, but may set his server's aliases.
            let own = EventBuilder::state("m.room.aliases", "b.example", BOB)
                .content(json!({"aliases": ["#x:b.example"]}));
            let other = EventBuilder::state("m.room.aliases", "a.example", BOB);
            let no_state_key = EventBuilder::message("m.room.aliases", BOB);
            if version.special_case_aliases_auth {
                assert_eq!(room.check(own), Ok(()), "v{}", version.id);
                assert_eq!(room.check(other), Err(AliasesStateKeyNotSenderServer));
                assert_eq!(room.check(no_state_key), Err(AliasesWithoutStateKey));
            } else {
                assert_eq!(room.check(own), Err(SenderNotJoined), "v{}", version.id);
                room.join(BOB);
                // From v6 it is an ordinary state event, at state_default (50).
                assert_eq!(room.check(other), Err(EventWithoutPower));
            }
        }
    }

    #[test]
    fn senders_must_be_joined() {
        for version in versions() {
            let mut room = TestRoom::new(version, ALICE);
            for membership in ["invite", "leave", "ban", "knock"] {
                room.set_membership(BOB, membership);
                assert_eq!(room.check(message(BOB)), Err(SenderNotJoined));
            }
            room.join(BOB);
            assert_eq!(room.check(message(BOB)), Ok(()), "v{}", version.id);
        }
    }

    #[test]
    fn third_party_invite_events_need_invite_power() {
        for version in versions() {
            let mut room = TestRoom::new(version, ALICE);
            room.power_levels(json!({"invite": 10, "users": {CAROL: 10}}))
                .join(BOB)
                .join(CAROL);
            let event = |sender: &str| {
                EventBuilder::state("m.room.third_party_invite", "tok", sender)
                    .content(json!({"public_key": "x"}))
            };
            assert_eq!(room.check(event(CAROL)), Ok(()), "v{}", version.id);
            assert_eq!(
                room.check(event(BOB)),
                Err(ThirdPartyInviteEventWithoutPower)
            );
        }
    }

    #[test]
    fn required_power_levels_for_events() {
        for version in versions() {
            let mut room = TestRoom::new(version, ALICE);
            room.join(BOB);
            // No power levels event: state needs 50, messages 0; only the creator has power.
            assert_eq!(room.check(topic(ALICE)), Ok(()), "v{}", version.id);
            assert_eq!(room.check(topic(BOB)), Err(EventWithoutPower));
            assert_eq!(room.check(message(BOB)), Ok(()));
            room.power_levels(json!({"events": {"m.room.message": 5, "m.room.topic": 0},
                                     "users": {BOB: 4}}));
            assert_eq!(room.check(topic(BOB)), Ok(()));
            assert_eq!(room.check(message(BOB)), Err(EventWithoutPower));
        }
    }

    #[test]
    fn user_state_keys_belong_to_their_user() {
        for version in versions() {
            let mut room = TestRoom::new(version, ALICE);
            let own = EventBuilder::state("m.custom", ALICE, ALICE);
            let other = EventBuilder::state("m.custom", BOB, ALICE);
            let plain = EventBuilder::state("m.custom", "alice", ALICE);
            assert_eq!(room.check(own), Ok(()));
            assert_eq!(room.check(other), Err(StateKeyNotSender), "v{}", version.id);
            assert_eq!(room.check(plain), Ok(()));
        }
    }

    #[test]
    fn v12_creator_power_without_power_levels_event() {
        let mut room = TestRoom::with_create(v(12), ALICE, json!({"additional_creators": [BOB]}));
        room.join(BOB);
        room.power_levels(json!({"state_default": 1_000_000, "users": {}}));
        assert_eq!(room.check(topic(BOB)), Ok(()));
    }

    #[test]
    fn map_of_references_is_a_state() {
        let room = TestRoom::new(v(11), ALICE);
        let by_reference: BTreeMap<StateKey, &Event> = room
            .events
            .iter()
            .map(|(key, event)| (key.clone(), event))
            .collect();
        let event = room.events[&key("m.room.member", ALICE)].clone();
        let mut message = message(ALICE).build();
        message.room_id = event.room_id.clone();
        assert_eq!(check_auth(v(11), &message, &by_reference), Ok(()));
        assert_eq!(
            AuthState::get(&by_reference, "m.room.member", ALICE),
            Some(&event)
        );
    }
}
