//! The authorization rules of room versions 1 to 12 ("Authorization rules" in each room
//! version's page of the spec), plus the auth events selection of the server-server API.
//!
//! [`check_auth`] walks the rules in the spec's order and stops at the first rule that allows
//! or rejects; a rejection names that rule as an [`AuthRule`]. The state the rules read is
//! whatever the caller passes ([`AuthState`]): the event's auth events, the state before the
//! event, or the current state; the rules themselves cannot tell which.
//!
//! Invariants:
//! - Pure: the verdict is a function of the room version, the event and the state only.
//! - Every version difference is read from [`RoomVersion`]'s flags, never from its id.
//! - Bad input (malformed content, odd JSON types) is a rejection naming the rule, never a
//!   panic.
//!
//! What is not checked here, because an [`Event`] does not carry it: signatures (the sender's
//! server, and from room v8 the server of `join_authorised_via_users_server`, see
//! [`join_authorising_server`]), and whether an auth event was itself rejected (the caller
//! passes that to [`check_auth_events_list_with_rejections`]). The caller that holds the
//! signed PDU and the rejection flags does those.

mod create;
mod membership;
mod power;
mod power_change;
#[cfg(test)]
mod properties;
mod selection;
mod third_party;
mod user_id;

#[cfg(test)]
mod test_support;

use crate::proto::event::{Event, StateKey, server_of};
use crate::proto::room_version::RoomVersion;
use std::collections::BTreeMap;

pub use membership::join_authorising_server;
pub use power::{parse_power_level, user_power_level};
pub use selection::{
    auth_types_for_event, check_auth_events_list, check_auth_events_list_with_rejections,
};
pub use user_id::{is_valid_server_name, is_valid_user_id};

/// The state an event is checked against.
pub trait AuthState {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&Event>;
}

impl AuthState for BTreeMap<StateKey, &Event> {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&Event> {
        BTreeMap::get(self, &(event_type.to_owned(), state_key.to_owned())).copied()
    }
}

impl AuthState for BTreeMap<StateKey, Event> {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&Event> {
        BTreeMap::get(self, &(event_type.to_owned(), state_key.to_owned()))
    }
}

/// The rule an event failed: one variant per rejecting rule of the spec's authorization rules
/// (and of the checks on the `auth_events` list), so that a rejection can say why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AuthRule {
    // Rule 1: m.room.create.
    /// A create event has `prev_events`.
    CreateHasPrevEvents,
    /// Rooms v1-v11: the create event's `room_id` is on another server than its sender.
    CreateRoomIdServerMismatch,
    /// Room v12: the create event has a `room_id` (its room id is derived from its event id).
    CreateHasRoomId,
    /// `content.room_version` is present and not a known room version.
    CreateUnknownRoomVersion,
    /// Rooms v1-v10: `content.creator` is missing.
    CreateWithoutCreator,
    /// Room v12: `content.additional_creators` is not an array of valid user ids.
    CreateInvalidAdditionalCreators,

    // Room ids and the auth events.
    /// The state has no `m.room.create` event.
    NoCreateEvent,
    /// Room v12: the event's `room_id` is not the create event's id with `!` for `$`.
    RoomIdNotCreateEvent,
    /// An auth event (or a consulted state event) belongs to another room.
    AuthEventWrongRoom,
    /// An id in `auth_events` names no known event.
    AuthEventUnknown,
    /// Two auth events share a `(type, state_key)` pair.
    AuthEventsDuplicate,
    /// An auth event is not one the auth events selection picks for this event.
    AuthEventNotSelected,
    /// An auth event was itself rejected (known only to the caller, see
    /// [`check_auth_events_list_with_rejections`]).
    AuthEventRejected,
    /// Rooms v1-v11: no `m.room.create` event among the auth events.
    AuthEventsWithoutCreate,
    /// Room v12: the `m.room.create` event is among the auth events.
    AuthEventsCiteCreate,

    /// The create event has `m.federate: false` and the sender is on another server.
    NotFederated,

    // Rooms v1-v5: m.room.aliases.
    /// An `m.room.aliases` event without a `state_key`.
    AliasesWithoutStateKey,
    /// An `m.room.aliases` event whose `state_key` is not the sender's server.
    AliasesStateKeyNotSenderServer,

    // m.room.member.
    /// An `m.room.member` event without a `state_key` or `content.membership`.
    MemberMalformed,
    /// Room v8+: `content.join_authorised_via_users_server` is not a user id, or the event is
    /// not validly signed by that user's server (the latter checked by the caller, see
    /// [`join_authorising_server`]).
    JoinAuthoriserUnsigned,
    /// A join whose sender is not the target.
    JoinSenderNotTarget,
    /// A join by a banned user.
    JoinSenderBanned,
    /// A join under a restricted join rule whose `join_authorised_via_users_server` is
    /// missing, not joined, or without the power to invite.
    JoinAuthoriserNotAllowed,
    /// A join the join rule does not allow (not public, not invited).
    JoinRuleForbids,
    /// A third-party invite to a banned user.
    ThirdPartyInviteTargetBanned,
    /// `content.third_party_invite` without `signed`, or `signed` without `mxid` and `token`.
    ThirdPartyInviteMalformed,
    /// `signed.mxid` is not the invited user.
    ThirdPartyInviteMxidMismatch,
    /// No `m.room.third_party_invite` event with `signed.token` as its state key.
    ThirdPartyInviteUnknownToken,
    /// The invite's sender did not send the `m.room.third_party_invite` event.
    ThirdPartyInviteSenderMismatch,
    /// No signature in `signed` verifies with the third-party invite's public keys.
    ThirdPartyInviteBadSignature,
    /// An invite from a sender who is not joined.
    InviteSenderNotJoined,
    /// An invite to a user who is joined or banned.
    InviteTargetJoinedOrBanned,
    /// An invite from a sender below the invite level.
    InviteWithoutPower,
    /// A user leaving a room they are not invited to, joined to, or knocking on.
    LeaveWithoutMembership,
    /// A kick or unban by a sender who is not joined.
    KickSenderNotJoined,
    /// An unban by a sender below the ban level.
    UnbanWithoutPower,
    /// A kick by a sender below the kick level or not above the target.
    KickWithoutPower,
    /// A ban by a sender who is not joined.
    BanSenderNotJoined,
    /// A ban by a sender below the ban level or not above the target.
    BanWithoutPower,
    /// A knock where the join rule does not allow knocking.
    KnockJoinRuleForbids,
    /// A knock whose sender is not the target.
    KnockSenderNotTarget,
    /// A knock by a user who is banned, invited or joined.
    KnockFromMember,
    /// A membership this room version does not know.
    UnknownMembership,

    // Everything else.
    /// The sender is not joined to the room.
    SenderNotJoined,
    /// An `m.room.third_party_invite` event from a sender below the invite level.
    ThirdPartyInviteEventWithoutPower,
    /// The sender's power level is below the level the event type requires.
    EventWithoutPower,
    /// A `state_key` that starts with `@` and is not the sender.
    StateKeyNotSender,

    // m.room.power_levels.
    /// A level that is not an integer (or, before room v10, a string of one).
    PowerLevelsNotInteger,
    /// `users` is not an object of valid user ids to integers.
    PowerLevelsInvalidUsers,
    /// Room v12: a creator appears in `users`.
    PowerLevelsUsersCiteCreator,
    /// A named level (`ban`, `state_default`, ...) changed from or to a value above the
    /// sender's level.
    PowerLevelsNamedLevelAboveSender,
    /// An `events` or `notifications` entry changed from or to a value above the sender's
    /// level.
    PowerLevelsEventLevelAboveSender,
    /// Another user's entry in `users` changed or removed while at or above the sender's
    /// level.
    PowerLevelsUserNotBelowSender,
    /// An entry in `users` added or changed to a value above the sender's level.
    PowerLevelsUserLevelAboveSender,

    /// Rooms v1-v2: a redaction below the redact level of an event from another server.
    RedactionWithoutPower,
}

/// Why an event failed the authorization rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{rule:?}: {detail}")]
pub struct AuthError {
    pub rule: AuthRule,
    pub detail: String,
}

impl AuthError {
    pub fn new(rule: AuthRule, detail: impl Into<String>) -> Self {
        Self {
            rule,
            detail: detail.into(),
        }
    }
}

/// Shorthand for a rejection.
fn reject<T>(rule: AuthRule, detail: impl Into<String>) -> Result<T, AuthError> {
    Err(AuthError::new(rule, detail))
}

/// The authorization rules, checked against `state` (the caller decides whether that is the
/// event's auth events, the state before the event, or the current state).
/// In room v12 the create event is not among the auth events; the caller puts it in `state`
/// under ("m.room.create", "") anyway, and the rules find it there.
pub fn check_auth(
    version: &RoomVersion,
    event: &Event,
    state: &dyn AuthState,
) -> Result<(), AuthError> {
    if event.event_type == "m.room.create" {
        return create::check_create(version, event);
    }
    let Some(create_event) = state.get("m.room.create", "") else {
        return reject(
            AuthRule::NoCreateEvent,
            format!("{}: no m.room.create event in the state", event.event_id),
        );
    };
    let room = Room {
        version,
        state,
        create_event,
        event,
    };
    room.check_room_ids()?;
    room.check_federation()?;
    if version.special_case_aliases_auth && event.event_type == "m.room.aliases" {
        return room.check_aliases();
    }
    if event.event_type == "m.room.member" {
        return membership::check_member(&room);
    }
    room.check_sender_joined()?;
    if event.event_type == "m.room.third_party_invite" {
        return room.check_third_party_invite_event();
    }
    room.check_required_power()?;
    room.check_user_state_key()?;
    if event.event_type == "m.room.power_levels" {
        return power_change::check_power_levels(&room);
    }
    if redaction_rule_applies(version) && event.event_type == "m.room.redaction" {
        return room.check_redaction();
    }
    Ok(())
}

/// Rooms v1 and v2 have a rule of their own for `m.room.redaction`, comparing the servers in
/// event ids. It went away in v3 together with server-made event ids, which is why it is tied to
/// the event id format.
fn redaction_rule_applies(version: &RoomVersion) -> bool {
    version.event_ids_in_events()
}

/// An event under check, with the state it is checked against and the room's create event.
struct Room<'a> {
    version: &'a RoomVersion,
    state: &'a dyn AuthState,
    create_event: &'a Event,
    event: &'a Event,
}

impl<'a> Room<'a> {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&'a Event> {
        self.state.get(event_type, state_key)
    }

    /// `content.membership` of `user_id`'s member event, `leave` when there is none.
    fn membership_of(&self, user_id: &str) -> &'a str {
        self.get("m.room.member", user_id)
            .and_then(Event::membership)
            .unwrap_or("leave")
    }

    fn power_of(&self, user_id: &str) -> i128 {
        user_power_level(self.version, user_id, self.state)
    }

    fn levels(&self) -> power::Levels<'a> {
        power::Levels::new(self.version, self.get("m.room.power_levels", ""))
    }

    fn id(&self) -> &str {
        &self.event.event_id
    }

    /// Room v12, rule 2: the room id is the create event's id with `!` for `$`. Before v12,
    /// the create event and every other state event the rules consult must be in the event's
    /// room (the spec's rule on the `room_id` of auth events, applied to what is read here).
    fn check_room_ids(&self) -> Result<(), AuthError> {
        if self.version.room_id_from_create_event {
            let expected = create::room_id_of_create_event(&self.create_event.event_id);
            if self.event.room_id != expected {
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
        for (event_type, key) in auth_types_for_event(
            self.version,
            &self.event.event_type,
            state_key,
            sender,
            content,
        ) {
            if event_type == "m.room.create" {
                continue;
            }
            if let Some(consulted) = self.get(&event_type, &key) {
                self.check_same_room(consulted)?;
            }
        }
        Ok(())
    }

    fn check_same_room(&self, other: &Event) -> Result<(), AuthError> {
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
    fn check_federation(&self) -> Result<(), AuthError> {
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
    fn check_aliases(&self) -> Result<(), AuthError> {
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

    fn check_sender_joined(&self) -> Result<(), AuthError> {
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

    fn check_third_party_invite_event(&self) -> Result<(), AuthError> {
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

    fn check_required_power(&self) -> Result<(), AuthError> {
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

    fn check_user_state_key(&self) -> Result<(), AuthError> {
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
    fn check_redaction(&self) -> Result<(), AuthError> {
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
    use super::AuthRule::*;
    use super::test_support::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn redaction_rule_only_in_v1_and_v2() {
        for version in versions() {
            let mut room = TestRoom::new(version, ALICE);
            room.join(BOB);
            let foreign = EventBuilder::message("m.room.redaction", BOB)
                .id("$redaction:b.example")
                .redacts("$target:a.example");
            let own = EventBuilder::message("m.room.redaction", BOB)
                .id("$redaction:b.example")
                .redacts("$target:b.example");
            let expected = if redaction_rule_applies(version) {
                Err(RedactionWithoutPower)
            } else {
                Ok(())
            };
            assert_eq!(room.check(foreign.clone()), expected, "v{}", version.id);
            assert_eq!(room.check(own), Ok(()), "v{}", version.id);
            room.power_levels(json!({"users": {BOB: 50}}));
            assert_eq!(room.check(foreign), Ok(()), "v{}", version.id);
        }
    }

    #[test]
    fn error_display_names_rule_and_detail() {
        let error = AuthError::new(BanWithoutPower, "$x: too weak");
        assert_eq!(error.to_string(), "BanWithoutPower: $x: too weak");
    }
}

#[cfg(test)]
mod general_rule_tests {
    use super::AuthRule::*;
    use super::test_support::*;
    use super::*;
    use serde_json::json;

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
