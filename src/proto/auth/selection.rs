//! The spec's auth events selection (which state an event must cite in `auth_events`), and the
//! checks on an event's `auth_events` list done on receipt of a PDU.
//!
//! Invariant: [`auth_types_for_event`] (owned keys) and [`auth_keys_for_event`] (borrowed, for
//! the hot paths) return each state key once, in the same fixed order (create, power levels,
//! sender, then the membership-specific keys), so callers that build `auth_events` from them
//! are deterministic.

use super::{AuthError, AuthRule, reject};
use crate::proto::event::{Event, StateKey};
use crate::proto::room_version::RoomVersion;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The state key pair of `event_type` and `state_key`.
pub(super) fn key(event_type: &str, state_key: &str) -> StateKey {
    (event_type.to_owned(), state_key.to_owned())
}

/// The spec's auth events selection: the state keys an event of this kind must cite.
/// (v12: never the create event.)
pub fn auth_types_for_event(
    version: &RoomVersion,
    event_type: &str,
    state_key: Option<&str>,
    sender: &str,
    content: &Map<String, Value>,
) -> Vec<StateKey> {
    auth_keys_for_event(version, event_type, state_key, sender, content)
        .iter()
        .map(|(event_type, state_key)| key(event_type, state_key))
        .collect()
}

/// The most state keys the selection can name for one event: create, power levels, sender,
/// target, join rules, third-party invite and join authoriser.
const AUTH_KEYS_MAX: usize = 7;

/// The state keys of the auth events selection, borrowed from the event and kept inline: the
/// authorization rules and state resolution ask for them for every event they check, and owned
/// keys cost two allocations each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthKeys<'a> {
    keys: [(&'a str, &'a str); AUTH_KEYS_MAX],
    len: usize,
}

impl<'a> AuthKeys<'a> {
    fn new() -> Self {
        Self {
            keys: [("", ""); AUTH_KEYS_MAX],
            len: 0,
        }
    }

    /// Adds a key unless it is already there, so each key is listed once, where it first came.
    fn push(&mut self, event_type: &'a str, state_key: &'a str) {
        let key = (event_type, state_key);
        if self.as_slice().contains(&key) {
            return;
        }
        assert!(
            self.len < AUTH_KEYS_MAX,
            "the selection names at most {AUTH_KEYS_MAX} keys"
        );
        self.keys[self.len] = key;
        self.len += 1;
    }

    /// The keys as (event type, state key), in the selection's order.
    pub fn as_slice(&self) -> &[(&'a str, &'a str)] {
        &self.keys[..self.len]
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.as_slice().iter().copied()
    }
}

/// [`auth_keys_for_event`] of an event's own fields.
pub fn auth_keys_of<'a>(version: &RoomVersion, event: &'a Event) -> AuthKeys<'a> {
    auth_keys_for_event(
        version,
        &event.event_type,
        event.state_key.as_deref(),
        &event.sender,
        &event.content,
    )
}

/// [`auth_types_for_event`] without allocating: the same keys in the same order, borrowed.
pub fn auth_keys_for_event<'a>(
    version: &RoomVersion,
    event_type: &str,
    state_key: Option<&'a str>,
    sender: &'a str,
    content: &'a Map<String, Value>,
) -> AuthKeys<'a> {
    let mut keys = AuthKeys::new();
    if event_type == "m.room.create" {
        return keys;
    }
    if !version.create_event_implied {
        keys.push("m.room.create", "");
    }
    keys.push("m.room.power_levels", "");
    keys.push("m.room.member", sender);
    if let (true, Some(target)) = (event_type == "m.room.member", state_key) {
        keys.push("m.room.member", target);
        let membership = content.get("membership").and_then(Value::as_str);
        if matches!(membership, Some("join" | "invite" | "knock")) {
            keys.push("m.room.join_rules", "");
        }
        if membership == Some("invite") {
            let token = content
                .get("third_party_invite")
                .and_then(|invite| invite.get("signed"))
                .and_then(|signed| signed.get("token"))
                .and_then(Value::as_str);
            if let Some(token) = token {
                keys.push("m.room.third_party_invite", token);
            }
        }
        if membership == Some("join") && version.restricted_join_rule {
            let authoriser = content
                .get("join_authorised_via_users_server")
                .and_then(Value::as_str);
            if let Some(authoriser) = authoriser {
                keys.push("m.room.member", authoriser);
            }
        }
    }
    keys
}

/// Checks on the auth_events list itself, done when a PDU is received: no duplicate
/// (type, state_key) pairs, only entries the selection algorithm allows for this event, a
/// create event among them (rooms before v12) and none in v12. `lookup` resolves ids.
///
/// The checks run in the spec's order (duplicates, selection, the create event, rooms), each
/// over the whole list, so the rule reported is the first the spec would reach. This form does
/// not know which events were rejected; [`check_auth_events_list_with_rejections`] also
/// applies the rule on rejected entries. A create event is decided by rule 1 before its auth
/// events are looked at, so its list is not checked.
pub fn check_auth_events_list<'a>(
    version: &RoomVersion,
    event: &Event,
    lookup: &dyn Fn(&str) -> Option<&'a Event>,
) -> Result<(), AuthError> {
    check_auth_events_list_with_rejections(version, event, lookup, &|_| false)
}

/// [`check_auth_events_list`], plus the spec's rule "If there are entries which were themselves
/// rejected under the checks performed on receipt of a PDU, reject": `rejected` says, by id,
/// whether the caller rejected an auth event.
pub fn check_auth_events_list_with_rejections<'a>(
    version: &RoomVersion,
    event: &Event,
    lookup: &dyn Fn(&str) -> Option<&'a Event>,
    rejected: &dyn Fn(&str) -> bool,
) -> Result<(), AuthError> {
    if event.event_type == "m.room.create" {
        return Ok(());
    }
    let id = &event.event_id;
    // Keys borrowed from the events: this runs for every event received.
    let mut cited: Vec<(&str, &'a Event, (&'a str, &'a str))> =
        Vec::with_capacity(event.auth_events.len());
    for auth_id in &event.auth_events {
        let Some(auth_event) = lookup(auth_id) else {
            return reject(
                AuthRule::AuthEventUnknown,
                format!("{id}: auth event {auth_id} is unknown"),
            );
        };
        let Some(state_key) = auth_event.state_key.as_deref() else {
            return reject(
                AuthRule::AuthEventNotSelected,
                format!("{id}: auth event {auth_id} is not a state event"),
            );
        };
        cited.push((auth_id, auth_event, (&auth_event.event_type, state_key)));
    }
    if let Some((first, auth_id, state_key)) = first_duplicate(&cited) {
        return reject(
            AuthRule::AuthEventsDuplicate,
            format!("{id}: auth events {first} and {auth_id} both hold {state_key:?}"),
        );
    }
    let create_key = ("m.room.create", "");
    let allowed = auth_keys_for_event(
        version,
        &event.event_type,
        event.state_key.as_deref(),
        &event.sender,
        &event.content,
    );
    for (auth_id, _, state_key) in &cited {
        if *state_key == create_key && version.create_event_implied {
            return reject(
                AuthRule::AuthEventsCiteCreate,
                format!(
                    "{id}: auth event {auth_id} is the create event, which room version {} \
                     implies by the room id",
                    version.id
                ),
            );
        }
        if !allowed.as_slice().contains(state_key) {
            return reject(
                AuthRule::AuthEventNotSelected,
                format!("{id}: auth event {auth_id} holds {state_key:?}, which is not selected"),
            );
        }
    }
    if let Some((auth_id, _, _)) = cited.iter().find(|(auth_id, _, _)| rejected(auth_id)) {
        return reject(
            AuthRule::AuthEventRejected,
            format!("{id}: auth event {auth_id} was rejected"),
        );
    }
    if !version.create_event_implied && !cited.iter().any(|(_, _, key)| *key == create_key) {
        return reject(
            AuthRule::AuthEventsWithoutCreate,
            format!("{id}: no m.room.create among the auth events"),
        );
    }
    for (auth_id, auth_event, _) in &cited {
        if auth_event.room_id != event.room_id {
            return reject(
                AuthRule::AuthEventWrongRoom,
                format!(
                    "{id}: auth event {auth_id} is in room {}, not {}",
                    auth_event.room_id, event.room_id
                ),
            );
        }
    }
    Ok(())
}

/// The first auth event, in citation order, whose state key an earlier one holds: (the earlier
/// one, it, the key). A scan for the few events an honest event cites; a map for a long list.
fn first_duplicate<'c>(
    cited: &[(&'c str, &Event, (&'c str, &'c str))],
) -> Option<(&'c str, &'c str, (&'c str, &'c str))> {
    const SCANNED_MAX: usize = 16;
    if cited.len() <= SCANNED_MAX {
        return cited
            .iter()
            .enumerate()
            .find_map(|(i, &(auth_id, _, key))| {
                cited[..i]
                    .iter()
                    .find(|(_, _, earlier)| *earlier == key)
                    .map(|&(first, _, _)| (first, auth_id, key))
            });
    }
    let mut by_key: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    cited.iter().find_map(|&(auth_id, _, key)| {
        by_key
            .insert(key, auth_id)
            .map(|first| (first, auth_id, key))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::auth::AuthRule::*;
    use crate::proto::auth::test_support::*;
    use serde_json::json;

    fn selection(version: &RoomVersion, event: &Event) -> Vec<StateKey> {
        auth_types_for_event(
            version,
            &event.event_type,
            event.state_key.as_deref(),
            &event.sender,
            &event.content,
        )
    }

    #[test]
    fn selection_per_event_kind() {
        let create = || key("m.room.create", "");
        let power = || key("m.room.power_levels", "");
        let rules = || key("m.room.join_rules", "");
        let member = |user: &str| key("m.room.member", user);
        let message = EventBuilder::message("m.room.message", BOB).build();
        assert_eq!(
            selection(v(11), &message),
            vec![create(), power(), member(BOB)]
        );
        assert_eq!(selection(v(12), &message), vec![power(), member(BOB)]);
        let create_event = create_event(v(11), ALICE, json!({}));
        assert!(selection(v(11), &create_event).is_empty());

        let invite = EventBuilder::member(ALICE, BOB, "invite").build();
        assert_eq!(
            selection(v(12), &invite),
            vec![power(), member(ALICE), member(BOB), rules()]
        );
        let leave = EventBuilder::member(BOB, BOB, "leave").build();
        assert_eq!(selection(v(12), &leave), vec![power(), member(BOB)]);
        let third_party = EventBuilder::member(ALICE, BOB, "invite")
            .content(json!({"membership": "invite",
                            "third_party_invite": {"signed": {"token": "tok"}}}))
            .build();
        assert_eq!(
            selection(v(12), &third_party),
            vec![
                power(),
                member(ALICE),
                member(BOB),
                rules(),
                key("m.room.third_party_invite", "tok")
            ]
        );
        let restricted = EventBuilder::member(BOB, BOB, "join")
            .content(json!({"membership": "join", "join_authorised_via_users_server": CAROL}))
            .build();
        assert_eq!(
            selection(v(7), &restricted),
            vec![create(), power(), member(BOB), rules()]
        );
        assert_eq!(
            selection(v(8), &restricted),
            vec![create(), power(), member(BOB), rules(), member(CAROL)]
        );
    }

    #[test]
    fn selection_lists_each_key_once() {
        // A self-authorised join: the sender, the target and the authoriser are one user.
        let join = EventBuilder::member(BOB, BOB, "join")
            .content(json!({"membership": "join", "join_authorised_via_users_server": BOB}))
            .build();
        let keys = auth_keys_for_event(
            v(8),
            &join.event_type,
            join.state_key.as_deref(),
            &join.sender,
            &join.content,
        );
        assert_eq!(
            keys.as_slice(),
            [
                ("m.room.create", ""),
                ("m.room.power_levels", ""),
                ("m.room.member", BOB),
                ("m.room.join_rules", "")
            ]
        );
        assert_eq!(
            selection(v(8), &join),
            keys.iter()
                .map(|(event_type, state_key)| key(event_type, state_key))
                .collect::<Vec<_>>()
        );
    }

    /// A room's events by id, for `lookup`.
    fn lookup_in<'a>(events: &'a [Event]) -> impl Fn(&str) -> Option<&'a Event> + 'a {
        move |id| events.iter().find(|event| event.event_id == id)
    }

    #[test]
    fn auth_events_list_checks() {
        for version in versions() {
            let mut room = TestRoom::new(version, ALICE);
            room.power_levels(json!({})).join(BOB);
            let events: Vec<Event> = room.events.values().cloned().collect();
            let lookup = lookup_in(&events);
            let id_of = |t: &str, k: &str| room.events[&key(t, k)].event_id.clone();
            let create = id_of("m.room.create", "");
            let power = id_of("m.room.power_levels", "");
            let alice = id_of("m.room.member", ALICE);
            let bob = id_of("m.room.member", BOB);
            let check = |auth: &[&str]| {
                let event = EventBuilder::message("m.room.message", BOB)
                    .room(&room.room_id)
                    .auth(auth)
                    .build();
                check_auth_events_list(version, &event, &lookup).map_err(|error| error.rule)
            };
            let v = version.id;
            if version.create_event_implied {
                assert_eq!(check(&[&power, &bob]), Ok(()), "v{v}");
                assert_eq!(check(&[&create, &power, &bob]), Err(AuthEventsCiteCreate));
            } else {
                assert_eq!(check(&[&create, &power, &bob]), Ok(()), "v{v}");
                assert_eq!(check(&[&power, &bob]), Err(AuthEventsWithoutCreate), "v{v}");
            }
            assert_eq!(check(&[&power, &bob, &power]), Err(AuthEventsDuplicate));
            assert_eq!(check(&[&power, &alice]), Err(AuthEventNotSelected));
            assert_eq!(check(&[&power, "$nowhere"]), Err(AuthEventUnknown));
        }
    }

    #[test]
    fn auth_events_from_another_room() {
        for version in versions() {
            let room = TestRoom::new(version, ALICE);
            let mut foreign = room.events[&key("m.room.member", ALICE)].clone();
            foreign.room_id = "!other:a.example".into();
            let create = room.events[&key("m.room.create", "")].clone();
            let events = vec![create.clone(), foreign.clone()];
            let event = EventBuilder::message("m.room.message", ALICE)
                .room(&room.room_id)
                .auth(&[&create.event_id, &foreign.event_id])
                .build();
            let mut event_v12 = event.clone();
            event_v12.auth_events = vec![foreign.event_id.clone()];
            let event = if version.create_event_implied {
                event_v12
            } else {
                event
            };
            let verdict = check_auth_events_list(version, &event, &lookup_in(&events));
            assert_eq!(
                verdict.map_err(|e| e.rule),
                Err(AuthEventWrongRoom),
                "v{}",
                version.id
            );
        }
    }

    #[test]
    fn rejected_auth_events_come_after_selection_and_before_create() {
        let room = TestRoom::new(v(5), ALICE);
        let events: Vec<Event> = room.events.values().cloned().collect();
        let alice = room.events[&key("m.room.member", ALICE)].event_id.clone();
        let create = room.create_id.clone();
        let rejected = |id: &str| id == alice;
        let check = |auth: &[&str]| {
            let event = EventBuilder::message("m.room.message", ALICE)
                .room(&room.room_id)
                .auth(auth)
                .build();
            check_auth_events_list_with_rejections(v(5), &event, &lookup_in(&events), &rejected)
                .map_err(|error| error.rule)
        };
        assert_eq!(check(&[&create, &alice]), Err(AuthEventRejected));
        assert_eq!(check(&[&alice]), Err(AuthEventRejected));
        assert_eq!(check(&[&create]), Ok(()));
        let nobody = |_: &str| false;
        let event = EventBuilder::message("m.room.message", ALICE)
            .room(&room.room_id)
            .auth(&[&create, &alice])
            .build();
        let plain = check_auth_events_list(v(5), &event, &lookup_in(&events));
        assert_eq!(plain, Ok(()));
        let with_none =
            check_auth_events_list_with_rejections(v(5), &event, &lookup_in(&events), &nobody);
        assert_eq!(with_none, Ok(()));
    }

    #[test]
    fn duplicates_are_reported_before_selection() {
        let room = TestRoom::new(v(10), ALICE);
        let events: Vec<Event> = room.events.values().cloned().collect();
        let alice = room.events[&key("m.room.member", ALICE)].event_id.clone();
        // Bob's message citing Alice's membership twice: both a duplicate and not selected.
        let event = EventBuilder::message("m.room.message", BOB)
            .auth(&[&alice, &alice])
            .build();
        let verdict = check_auth_events_list(v(10), &event, &lookup_in(&events));
        assert_eq!(verdict.map_err(|e| e.rule), Err(AuthEventsDuplicate));
    }

    proptest::proptest! {
        /// Short lists are scanned, long ones mapped: both name the first citation whose key
        /// an earlier one holds, and that earlier one, as a map of keys read in order would.
        #[test]
        fn the_first_duplicate_is_found_alike_in_short_and_long_lists(
            keys in proptest::collection::vec((0u8..3, 0u8..12), 0..40),
        ) {
            let event = EventBuilder::message("m.room.message", BOB).build();
            let names: Vec<(String, String, String)> = keys
                .iter()
                .enumerate()
                .map(|(i, (t, k))| (format!("${i}"), format!("t{t}"), format!("k{k}")))
                .collect();
            let cited: Vec<(&str, &Event, (&str, &str))> = names
                .iter()
                .map(|(id, t, k)| (id.as_str(), &event, (t.as_str(), k.as_str())))
                .collect();
            let mut seen: BTreeMap<(&str, &str), &str> = BTreeMap::new();
            let expected = cited
                .iter()
                .find_map(|&(id, _, key)| seen.insert(key, id).map(|first| (first, id, key)));
            proptest::prop_assert_eq!(first_duplicate(&cited), expected);
        }
    }
}
