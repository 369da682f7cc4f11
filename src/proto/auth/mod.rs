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
//! Where the spec is silent, this follows the reference servers, and says so where it
//! happens: a room without `m.room.join_rules` is invite-only (`membership`); before room v10
//! a power level that no form of integer can be read from is refused, not ignored
//! (`power_change`); a named level that is added or removed is compared without its default
//! (`power_change`).
//!
//! Code map: `create` (rule 1, creators), `rules` (the rules for every event and the state
//! helpers they share), `membership` and `third_party` (`m.room.member`), `power` (reading
//! levels), `power_change` (`m.room.power_levels`), `selection` (auth events), `user_id`
//! (identifier grammar).
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
mod read_once;
mod rules;
mod selection;
mod third_party;
mod user_id;

#[cfg(test)]
mod test_support;

use crate::proto::event::{Event, StateKey, state_entry};
use crate::proto::room_version::RoomVersion;
use std::collections::BTreeMap;

pub use membership::join_authorising_server;
pub use power::{parse_power_level, user_power_level};
pub use selection::{
    AuthKeys, auth_keys_for_event, auth_keys_of, auth_types_for_event, check_auth_events_list,
    check_auth_events_list_with_rejections,
};
pub use user_id::{is_valid_server_name, is_valid_user_id};

/// The state an event is checked against.
pub trait AuthState {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&Event>;
}

impl AuthState for BTreeMap<StateKey, &Event> {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&Event> {
        state_entry(self, event_type, state_key).copied()
    }
}

impl AuthState for BTreeMap<StateKey, Event> {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&Event> {
        state_entry(self, event_type, state_key)
    }
}

/// The state an event's own auth events form: a handful of state events, read by a scan (no
/// owned keys to build, no tree to search). A later event under the same state key replaces an
/// earlier one, as inserting into a map would.
#[derive(Debug, Default)]
pub struct AuthEventsState<'a> {
    entries: Vec<((&'a str, &'a str), &'a Event)>,
}

impl<'a> AuthEventsState<'a> {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Vec::with_capacity(capacity),
        }
    }

    /// Holds `event` under its own state key; a non-state event holds no key and is ignored.
    pub fn insert(&mut self, event: &'a Event) {
        if let Some(state_key) = event.state_key.as_deref() {
            self.insert_as((&event.event_type, state_key), event);
        }
    }

    /// Holds `event` under `key`.
    pub fn insert_as(&mut self, key: (&'a str, &'a str), event: &'a Event) {
        let held = self
            .entries
            .iter_mut()
            .find(|(held, _)| same_key(*held, key));
        match held {
            Some((_, held)) => *held = event,
            None => self.entries.push((key, event)),
        }
    }
}

impl AuthState for AuthEventsState<'_> {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&Event> {
        let asked = (event_type, state_key);
        self.entries
            .iter()
            .find(|(key, _)| same_key(*key, asked))
            .map(|&(_, event)| event)
    }
}

/// Whether two state keys are equal. Compared from the last byte: the auth keys' types share
/// the prefix `m.room.` and members' keys often share a server name's prefix, so unequal keys
/// differ near the end; and short keys compared in line cost less than a call to `memcmp`
/// each, a measurable share of placing an event.
fn same_key(a: (&str, &str), b: (&str, &str)) -> bool {
    let same = |x: &str, y: &str| x.len() == y.len() && x.bytes().rev().eq(y.bytes().rev());
    same(a.1, b.1) && same(a.0, b.0)
}

/// Two states read as one: an entry of `first` wins, `then` fills the gaps. State resolution
/// uses this shape for its iterative auth checks (the partial state, then the event's own auth
/// events for keys it lacks).
#[derive(Clone, Copy)]
pub struct Layered<'a> {
    pub first: &'a dyn AuthState,
    pub then: &'a dyn AuthState,
}

impl AuthState for Layered<'_> {
    fn get(&self, event_type: &str, state_key: &str) -> Option<&Event> {
        self.first
            .get(event_type, state_key)
            .or_else(|| self.then.get(event_type, state_key))
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
    let keys = auth_keys_for_event(
        version,
        &event.event_type,
        event.state_key.as_deref(),
        &event.sender,
        &event.content,
    );
    let read_once = read_once::ReadOnce::new(state, &keys);
    let state: &dyn AuthState = &read_once;
    let Some(create_event) = state.get("m.room.create", "") else {
        return reject(
            AuthRule::NoCreateEvent,
            format!("{}: no m.room.create event in the state", event.event_id),
        );
    };
    let room = rules::Room {
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
    if rules::redaction_rule_applies(version) && event.event_type == "m.room.redaction" {
        return room.check_redaction();
    }
    Ok(())
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
            let expected = if rules::redaction_rule_applies(version) {
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
    fn layered_state_prefers_the_first_layer() {
        let room = TestRoom::new(v(11), ALICE);
        let mut partial = room.state();
        partial.remove(&key("m.room.member", ALICE));
        let mut other = room.state();
        let mut changed = other[&key("m.room.create", "")].clone();
        changed.event_id = "$changed:a.example".into();
        other.insert(key("m.room.create", ""), changed);
        let layered = Layered {
            first: &partial,
            then: &other,
        };
        assert_eq!(
            layered
                .get("m.room.create", "")
                .map(|e| e.event_id.as_str()),
            Some(room.create_id.as_str())
        );
        assert_eq!(
            layered.get("m.room.member", ALICE),
            room.events.get(&key("m.room.member", ALICE))
        );
        assert_eq!(layered.get("m.room.topic", ""), None);
    }

    #[test]
    fn auth_events_state_answers_as_a_map_of_the_same_events() {
        let room = {
            let mut room = TestRoom::new(v(11), ALICE);
            room.join(BOB);
            room
        };
        let held: Vec<Event> = room.state().into_values().collect();
        let later_create = EventBuilder::state("m.room.create", "", BOB)
            .id("$later-create:b.example")
            .build();
        let message = EventBuilder::message("m.room.message", BOB).build();
        let mut scanned = AuthEventsState::default();
        let mut mapped: BTreeMap<StateKey, &Event> = BTreeMap::new();
        for event in held.iter().chain([&later_create, &message]) {
            scanned.insert(event);
            if let Some(key) = event.state_key_pair() {
                mapped.insert(key, event);
            }
        }
        let member = held.iter().find(|e| e.is("m.room.member", BOB)).unwrap();
        scanned.insert_as(("m.room.topic", ""), member);
        mapped.insert(key("m.room.topic", ""), member);
        for (event_type, state_key) in [
            ("m.room.create", ""),
            ("m.room.member", ALICE),
            ("m.room.member", BOB),
            ("m.room.member", "@carol:c.example"),
            ("m.room.power_levels", ""),
            ("m.room.topic", ""),
            ("m.room.message", ""),
        ] {
            assert_eq!(
                scanned.get(event_type, state_key).map(|e| &e.event_id),
                AuthState::get(&mapped, event_type, state_key).map(|e| &e.event_id),
                "{event_type} {state_key}"
            );
        }
        assert_eq!(
            scanned.get("m.room.create", "").unwrap().event_id,
            "$later-create:b.example",
            "the later event under a key replaces the earlier"
        );
    }

    #[test]
    fn error_display_names_rule_and_detail() {
        let error = AuthError::new(BanWithoutPower, "$x: too weak");
        assert_eq!(error.to_string(), "BanWithoutPower: $x: too weak");
    }
}
