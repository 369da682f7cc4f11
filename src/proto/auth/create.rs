//! Rule 1 of every room version (`m.room.create`), and who the room's creators are.
//!
//! Creators: rooms v1-v10 name one in `content.creator`; v11 takes the create event's
//! `sender`; v12 adds the user ids of `content.additional_creators`.

use super::user_id::is_valid_user_id;
use super::{AuthError, AuthRule, reject};
use crate::proto::event::{Event, server_of};
use crate::proto::room_version::RoomVersion;
use serde_json::Value;

/// Rule 1: the create event stands on its own; nothing in the state is consulted.
pub(super) fn check_create(version: &RoomVersion, event: &Event) -> Result<(), AuthError> {
    let id = &event.event_id;
    if !event.prev_events.is_empty() {
        return reject(
            AuthRule::CreateHasPrevEvents,
            format!(
                "{id}: a create event has prev_events {:?}",
                event.prev_events
            ),
        );
    }
    if version.room_id_from_create_event {
        // The event format drops `room_id` from a v12 create event; whoever built the `Event`
        // left it empty or filled in the derived id. Any other value came from the wire.
        let derived = room_id_of_create_event(id);
        if !event.room_id.is_empty() && event.room_id != derived {
            return reject(
                AuthRule::CreateHasRoomId,
                format!("{id}: a create event carries room_id {}", event.room_id),
            );
        }
    } else if server_of(&event.room_id) != event.sender_server() {
        return reject(
            AuthRule::CreateRoomIdServerMismatch,
            format!(
                "{id}: room {} is not on the sender's server {}",
                event.room_id,
                event.sender_server()
            ),
        );
    }
    if let Some(room_version) = event.content.get("room_version") {
        let known = room_version
            .as_str()
            .is_some_and(|text| RoomVersion::from_id(text).is_some());
        if !known {
            return reject(
                AuthRule::CreateUnknownRoomVersion,
                format!("{id}: content.room_version {room_version} is not a known room version"),
            );
        }
    }
    if version.privileged_creators {
        check_additional_creators(event)?;
    }
    if !version.creator_is_sender && !event.content.contains_key("creator") {
        return reject(
            AuthRule::CreateWithoutCreator,
            format!("{id}: content has no creator"),
        );
    }
    Ok(())
}

/// Room v12: `additional_creators`, when present, is an array of valid user ids.
fn check_additional_creators(event: &Event) -> Result<(), AuthError> {
    let Some(value) = event.content.get("additional_creators") else {
        return Ok(());
    };
    let bad = |what: String| {
        reject(
            AuthRule::CreateInvalidAdditionalCreators,
            format!("{}: content.additional_creators {what}", event.event_id),
        )
    };
    let Value::Array(entries) = value else {
        return bad(format!("is {value}, not an array"));
    };
    for (index, entry) in entries.iter().enumerate() {
        match entry.as_str() {
            Some(user_id) if is_valid_user_id(user_id) => {}
            _ => return bad(format!("[{index}] = {entry} is not a valid user id")),
        }
    }
    Ok(())
}

/// Whether `room_id` is [`room_id_of_create_event`] of `create_event_id`, without building it
/// (every event of a room v12 resolution is checked against it).
pub(super) fn is_room_id_of_create_event(room_id: &str, create_event_id: &str) -> bool {
    let hash = create_event_id.strip_prefix('$').unwrap_or(create_event_id);
    room_id.strip_prefix('!') == Some(hash)
}

/// Room v12: the room id is the create event's id with the sigil `!` instead of `$`.
pub(super) fn room_id_of_create_event(create_event_id: &str) -> String {
    let hash = create_event_id.strip_prefix('$').unwrap_or(create_event_id);
    format!("!{hash}")
}

/// The user rooms v1-v11 call the creator: `content.creator` before v11, the sender from v11.
pub(super) fn creator<'a>(version: &RoomVersion, create_event: &'a Event) -> Option<&'a str> {
    if version.creator_is_sender {
        Some(&create_event.sender)
    } else {
        create_event.content_str("creator")
    }
}

/// Whether `user_id` is a creator: the creator, and in room v12 also one of the
/// `additional_creators`.
pub(super) fn is_creator(version: &RoomVersion, create_event: &Event, user_id: &str) -> bool {
    if creator(version, create_event) == Some(user_id) {
        return true;
    }
    version.privileged_creators && additional_creators(create_event).any(|extra| extra == user_id)
}

/// The string entries of `content.additional_creators` (an invalid create event was rejected,
/// so anything else is skipped).
pub(super) fn additional_creators(create_event: &Event) -> impl Iterator<Item = &str> {
    create_event
        .content
        .get("additional_creators")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::auth::check_auth;
    use crate::proto::auth::test_support::*;
    use serde_json::json;

    fn check(version: &RoomVersion, event: &Event) -> Result<(), AuthRule> {
        check_auth(version, event, &empty_state()).map_err(|error| error.rule)
    }

    #[test]
    fn create_rules_per_version() {
        for version in versions() {
            let v = version.id;
            let good = create_event(version, ALICE, json!({}));
            assert_eq!(check(version, &good), Ok(()), "v{v}");

            let mut with_prev = good.clone();
            with_prev.prev_events = vec!["$earlier".into()];
            assert_eq!(
                check(version, &with_prev),
                Err(AuthRule::CreateHasPrevEvents)
            );

            let unknown = create_event(version, ALICE, json!({"room_version": "13"}));
            assert_eq!(
                check(version, &unknown),
                Err(AuthRule::CreateUnknownRoomVersion)
            );
            let not_string = create_event(version, ALICE, json!({"room_version": 11}));
            assert_eq!(
                check(version, &not_string),
                Err(AuthRule::CreateUnknownRoomVersion)
            );
            let known = create_event(version, ALICE, json!({"room_version": "12"}));
            assert_eq!(check(version, &known), Ok(()));
        }
    }

    #[test]
    fn creator_required_before_v11() {
        for version in versions() {
            let mut event = create_event(version, ALICE, json!({}));
            event.content.remove("creator");
            let expected = if version.creator_is_sender {
                Ok(())
            } else {
                Err(AuthRule::CreateWithoutCreator)
            };
            assert_eq!(check(version, &event), expected, "v{}", version.id);
        }
    }

    #[test]
    fn room_id_server_must_be_senders_before_v12() {
        for version in versions() {
            let mut event = create_event(version, ALICE, json!({}));
            event.room_id = "!room:elsewhere.org".into();
            let expected = if version.room_id_from_create_event {
                Err(AuthRule::CreateHasRoomId)
            } else {
                Err(AuthRule::CreateRoomIdServerMismatch)
            };
            assert_eq!(check(version, &event), expected, "v{}", version.id);
        }
    }

    #[test]
    fn v12_create_room_id_empty_or_derived() {
        let version = v(12);
        let mut event = create_event(version, ALICE, json!({}));
        event.room_id = String::new();
        assert_eq!(check(version, &event), Ok(()));
        event.room_id = room_id_of_create_event(&event.event_id);
        assert_eq!(check(version, &event), Ok(()));
    }

    #[test]
    fn additional_creators_validated_in_v12_only() {
        let cases = [
            (json!([BOB, CAROL]), true),
            (json!([]), true),
            (json!(BOB), false),
            (json!(["bob"]), false),
            (json!(["@bob"]), false),
            (json!(["@bob:bad host"]), false),
            (json!([7]), false),
            (json!({"@bob:example.org": true}), false),
        ];
        for (value, valid) in cases {
            let content = json!({"additional_creators": value});
            let v12 = create_event(v(12), ALICE, content.clone());
            let expected = if valid {
                Ok(())
            } else {
                Err(AuthRule::CreateInvalidAdditionalCreators)
            };
            assert_eq!(check(v(12), &v12), expected, "{value}");
            let v11 = create_event(v(11), ALICE, content);
            assert_eq!(check(v(11), &v11), Ok(()), "v11 ignores {value}");
        }
    }

    #[test]
    fn v12_room_id_derivation() {
        assert_eq!(room_id_of_create_event("$abc_-DEF"), "!abc_-DEF");
        for (room_id, create_id) in [
            ("!abc", "$abc"),
            ("!abc", "abc"),
            ("abc", "$abc"),
            ("!ab", "$abc"),
        ] {
            assert_eq!(
                is_room_id_of_create_event(room_id, create_id),
                room_id == room_id_of_create_event(create_id),
                "{room_id} {create_id}"
            );
        }
    }
}
