//! The rules for `m.room.power_levels` events: what a valid content is, and which changes the
//! sender's own level allows.
//!
//! Validity: `users` maps valid user ids to levels in every version; from room v10 every
//! level must be a JSON integer, earlier versions also take the string and float forms of
//! `power::parse_power_level`. Before v10 the spec says nothing of malformed named levels or
//! `events` entries; they are refused here too (with [`AuthRule::PowerLevelsNotInteger`]),
//! since a change that cannot be read cannot be compared, and the reference servers fail on
//! them as well. `notifications` only counts from room v6. From room v12 a creator may not
//! appear in `users`.
//!
//! Changes are compared as parsed levels, so `"50"` to `50` is no change.

use super::create::{additional_creators, is_creator};
use super::power::{parse_power_level, show};
use super::user_id::is_valid_user_id;
use super::{AuthError, AuthRule, Room, reject};
use crate::proto::room_version::RoomVersion;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The top-level levels whose change is limited by the sender's level.
const NAMED_LEVELS: [&str; 7] = [
    "users_default",
    "events_default",
    "state_default",
    "ban",
    "redact",
    "kick",
    "invite",
];

pub(super) fn check_power_levels(room: &Room) -> Result<(), AuthError> {
    let (version, event) = (room.version, room.event);
    check_content(room)?;
    let Some(current) = room.get("m.room.power_levels", "") else {
        return Ok(());
    };
    let sender_power = room.power_of(&event.sender);
    let (old, new) = (&current.content, &event.content);
    for key in NAMED_LEVELS {
        let before = old
            .get(key)
            .and_then(|value| parse_power_level(version, value));
        let after = new
            .get(key)
            .and_then(|value| parse_power_level(version, value));
        if before == after {
            continue;
        }
        if let Some(level) = [before, after]
            .into_iter()
            .flatten()
            .find(|&l| l > sender_power)
        {
            return reject(
                AuthRule::PowerLevelsNamedLevelAboveSender,
                format!(
                    "{}: {key} changes from {before:?} to {after:?}; {level} is above the \
                     sender's {}",
                    room.id(),
                    show(sender_power)
                ),
            );
        }
    }
    let mut maps = vec!["events"];
    if version.limit_notifications_power_levels {
        maps.push("notifications");
    }
    for map in maps {
        for (key, (before, after)) in changed_entries(version, old, new, map) {
            if let Some(level) = [before, after]
                .into_iter()
                .flatten()
                .find(|&l| l > sender_power)
            {
                return reject(
                    AuthRule::PowerLevelsEventLevelAboveSender,
                    format!(
                        "{}: {map}.{key} changes from {before:?} to {after:?}; {level} is above \
                         the sender's {}",
                        room.id(),
                        show(sender_power)
                    ),
                );
            }
        }
    }
    for (user, (before, after)) in changed_entries(version, old, new, "users") {
        if let Some(level) = before
            && user != event.sender
            && level >= sender_power
        {
            return reject(
                AuthRule::PowerLevelsUserNotBelowSender,
                format!(
                    "{}: users.{user} was {level}, not below the sender's {}",
                    room.id(),
                    show(sender_power)
                ),
            );
        }
        if let Some(level) = after
            && level > sender_power
        {
            return reject(
                AuthRule::PowerLevelsUserLevelAboveSender,
                format!(
                    "{}: users.{user} becomes {level}, above the sender's {}",
                    room.id(),
                    show(sender_power)
                ),
            );
        }
    }
    Ok(())
}

/// The entries of `content[map]` that were added, changed or removed: key to (before, after).
fn changed_entries(
    version: &RoomVersion,
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    map: &str,
) -> BTreeMap<String, (Option<i128>, Option<i128>)> {
    let before = levels_in(version, old, map);
    let after = levels_in(version, new, map);
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    keys.into_iter()
        .filter_map(|key| {
            let pair = (before.get(key).copied(), after.get(key).copied());
            (pair.0 != pair.1).then(|| (key.clone(), pair))
        })
        .collect()
}

/// The readable entries of `content[map]`.
fn levels_in(
    version: &RoomVersion,
    content: &Map<String, Value>,
    map: &str,
) -> BTreeMap<String, i128> {
    content
        .get(map)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(key, value)| Some((key.clone(), parse_power_level(version, value)?)))
        .collect()
}

/// The rules on the new content alone, before any comparison.
fn check_content(room: &Room) -> Result<(), AuthError> {
    let (version, content) = (room.version, &room.event.content);
    let not_integer = |what: String| {
        reject(
            AuthRule::PowerLevelsNotInteger,
            format!(
                "{}: {what} is not a power level in room version {}",
                room.id(),
                version.id
            ),
        )
    };
    for key in NAMED_LEVELS {
        if let Some(value) = content.get(key)
            && parse_power_level(version, value).is_none()
        {
            return not_integer(format!("{key} = {value}"));
        }
    }
    let mut maps = vec!["events"];
    if version.limit_notifications_power_levels {
        maps.push("notifications");
    }
    for map in maps {
        let Some(value) = content.get(map) else {
            continue;
        };
        let Value::Object(entries) = value else {
            return not_integer(format!("{map} = {value} (not an object)"));
        };
        for (key, level) in entries {
            if parse_power_level(version, level).is_none() {
                return not_integer(format!("{map}.{key} = {level}"));
            }
        }
    }
    check_users(room)
}

fn check_users(room: &Room) -> Result<(), AuthError> {
    let (version, content) = (room.version, &room.event.content);
    let Some(value) = content.get("users") else {
        return Ok(());
    };
    let invalid = |what: String| {
        reject(
            AuthRule::PowerLevelsInvalidUsers,
            format!("{}: users {what}", room.id()),
        )
    };
    let Value::Object(users) = value else {
        return invalid(format!("is {value}, not an object"));
    };
    for (user_id, level) in users {
        if !is_valid_user_id(user_id) {
            return invalid(format!("has {user_id:?}, not a user id"));
        }
        if parse_power_level(version, level).is_none() {
            return invalid(format!("gives {user_id} {level}, not a power level"));
        }
    }
    if version.privileged_creators {
        let create = room.create_event;
        if let Some(creator) = users.keys().find(|user| is_creator(version, create, user)) {
            let all: Vec<&str> = std::iter::once(create.sender.as_str())
                .chain(additional_creators(create))
                .collect();
            return reject(
                AuthRule::PowerLevelsUsersCiteCreator,
                format!(
                    "{}: users names the creator {creator}; creators {all:?} have infinite power",
                    room.id()
                ),
            );
        }
    }
    Ok(())
}
