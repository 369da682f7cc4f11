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

use super::create::{additional_creators, creator};
use super::power::{parse_power_level, show};
use super::rules::Room;
use super::user_id::is_valid_user_id;
use super::{AuthError, AuthRule, reject};
use crate::proto::room_version::RoomVersion;
use serde_json::{Map, Value};
use std::cmp::Ordering;

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
        for (key, before, after) in changed_entries(version, old, new, map) {
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
    for (user, before, after) in changed_entries(version, old, new, "users") {
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

/// The entries of `content[map]` that were added, changed or removed, as (key, before, after),
/// in key order. An entry that is no power level counts as absent.
///
/// A merge of the two maps' entries, which `serde_json` keeps sorted by key (its default
/// without `preserve_order`; a test below holds it to that): every power levels event of a
/// resolution comes through here, and collecting the entries cost more than all other checks.
fn changed_entries<'c>(
    version: &'c RoomVersion,
    old: &'c Map<String, Value>,
    new: &'c Map<String, Value>,
    map: &str,
) -> impl Iterator<Item = (&'c str, Option<i128>, Option<i128>)> {
    let mut before = levels_in(version, old.get(map)).peekable();
    let mut after = levels_in(version, new.get(map)).peekable();
    std::iter::from_fn(move || {
        loop {
            let (key, level_before, level_after) = match (before.peek(), after.peek()) {
                (None, None) => return None,
                (Some(&(key, level)), None) => {
                    before.next();
                    (key, Some(level), None)
                }
                (None, Some(&(key, level))) => {
                    after.next();
                    (key, None, Some(level))
                }
                (Some(&(key_before, level)), Some(&(key_after, level_now))) => {
                    match key_before.cmp(key_after) {
                        Ordering::Less => {
                            before.next();
                            (key_before, Some(level), None)
                        }
                        Ordering::Greater => {
                            after.next();
                            (key_after, None, Some(level_now))
                        }
                        Ordering::Equal => {
                            before.next();
                            after.next();
                            (key_before, Some(level), Some(level_now))
                        }
                    }
                }
            };
            if level_before != level_after {
                return Some((key, level_before, level_after));
            }
        }
    })
}

/// The readable entries of a map of levels (none if it is no object), in key order.
fn levels_in<'c>(
    version: &'c RoomVersion,
    map: Option<&'c Value>,
) -> impl Iterator<Item = (&'c str, i128)> {
    map.and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(key, value)| Some((key.as_str(), parse_power_level(version, value)?)))
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
        // The first creator in key order that `users` names. Looking each creator up, rather
        // than asking of every user whether they are a creator, reads the create event once.
        let creators = creator(version, create)
            .into_iter()
            .chain(additional_creators(create));
        if let Some(creator) = creators.filter(|user| users.contains_key(*user)).min() {
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

#[cfg(test)]
mod tests {
    use super::changed_entries;
    use crate::proto::auth::AuthRule::{self, *};
    use crate::proto::auth::test_support::*;
    use crate::proto::room_version::{ALL, RoomVersion};
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};
    use std::collections::{BTreeMap, BTreeSet};

    /// `changed_entries` merges two maps in iteration order, which is only key order while
    /// `serde_json` is built without `preserve_order`.
    #[test]
    fn json_objects_iterate_in_key_order() {
        let mut object = Map::new();
        for key in [
            "@zed:z.example",
            "@bob:b.example",
            "m.room.name",
            "@alice:a.example",
        ] {
            object.insert(key.to_owned(), json!(1));
        }
        let keys: Vec<&String> = object.keys().collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    /// The definition `changed_entries` implements, with maps: every key of either side whose
    /// readable level differs, in key order.
    fn changed_entries_by_definition(
        version: &RoomVersion,
        old: &Map<String, Value>,
        new: &Map<String, Value>,
    ) -> Vec<(String, Option<i128>, Option<i128>)> {
        let levels = |content: &Map<String, Value>| -> BTreeMap<String, i128> {
            content
                .get("users")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .filter_map(|(key, value)| {
                    Some((key.clone(), super::parse_power_level(version, value)?))
                })
                .collect()
        };
        let (before, after) = (levels(old), levels(new));
        let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        keys.into_iter()
            .map(|key| {
                (
                    key.clone(),
                    before.get(key).copied(),
                    after.get(key).copied(),
                )
            })
            .filter(|(_, before, after)| before != after)
            .collect()
    }

    fn users_map() -> impl Strategy<Value = Value> {
        let level = prop_oneof![
            4 => (-3i64..4).prop_map(|n| json!(n)),
            1 => (-3i64..4).prop_map(|n| json!(n.to_string())),
            1 => Just(json!(1.5)),
            1 => Just(json!("x")),
            1 => Just(json!(null)),
        ];
        let users = prop::collection::btree_map("[a-f]", level, 0..6)
            .prop_map(|entries| Value::Object(entries.into_iter().collect()));
        prop_oneof![8 => users, 1 => Just(json!([1, 2])), 1 => Just(json!(7))]
    }

    proptest! {
        #[test]
        fn changed_entries_follow_their_definition(
            version_index in 0..ALL.len(),
            old in users_map(),
            new in users_map(),
        ) {
            let version = &ALL[version_index];
            let old = json!({"users": old});
            let new = json!({"users": new});
            let (old, new) = (old.as_object().unwrap(), new.as_object().unwrap());
            let merged: Vec<(String, Option<i128>, Option<i128>)> =
                changed_entries(version, old, new, "users")
                    .map(|(key, before, after)| (key.to_owned(), before, after))
                    .collect();
            prop_assert_eq!(merged, changed_entries_by_definition(version, old, new));
        }
    }

    type Verdict = Result<(), AuthRule>;

    fn power_levels(sender: &str, content: Value) -> EventBuilder {
        EventBuilder::state("m.room.power_levels", "", sender).content(content)
    }

    /// A room where Alice (100) and Bob (50) are joined, under `current` power levels.
    fn room_with(version: u32, current: Value) -> TestRoom {
        let mut room = TestRoom::new(v(version), ALICE);
        room.power_levels(current).join(BOB).join(CAROL);
        room
    }

    #[test]
    fn first_power_levels_only_need_valid_content() {
        for version in versions() {
            let mut room = TestRoom::new(version, ALICE);
            let content = json!({"users": {ALICE: 100, BOB: 1000}, "ban": 9000});
            let content = if version.privileged_creators {
                json!({"users": {BOB: 1000}, "ban": 9000})
            } else {
                content
            };
            assert_eq!(
                room.check(power_levels(ALICE, content)),
                Ok(()),
                "v{}",
                version.id
            );
        }
    }

    #[test]
    fn named_level_changes() {
        let current = json!({"users": {ALICE: 100, BOB: 50}, "kick": 40, "ban": 60});
        // (new content from Bob at 50, expected)
        let table: &[(Value, Verdict)] = &[
            // Unchanged levels need no power.
            (
                json!({"users": {ALICE: 100, BOB: 50}, "kick": 40, "ban": 60}),
                Ok(()),
            ),
            (
                json!({"users": {ALICE: 100, BOB: 50}, "kick": 50, "ban": 60}),
                Ok(()),
            ),
            (
                json!({"users": {ALICE: 100, BOB: 50}, "kick": 51, "ban": 60}),
                Err(PowerLevelsNamedLevelAboveSender),
            ),
            // Lowering a level that is above the sender.
            (
                json!({"users": {ALICE: 100, BOB: 50}, "kick": 40, "ban": 10}),
                Err(PowerLevelsNamedLevelAboveSender),
            ),
            // Removing it too.
            (
                json!({"users": {ALICE: 100, BOB: 50}, "kick": 40}),
                Err(PowerLevelsNamedLevelAboveSender),
            ),
            // Adding one at the sender's level.
            (
                json!({"users": {ALICE: 100, BOB: 50}, "kick": 40, "ban": 60, "invite": 50}),
                Ok(()),
            ),
            // Removing one at or below the sender's level (absent stays absent, no default).
            (json!({"users": {ALICE: 100, BOB: 50}, "ban": 60}), Ok(())),
        ];
        for version in [1, 6, 10, 11] {
            for (content, expected) in table {
                let mut room = room_with(version, current.clone());
                let verdict = room.check(power_levels(BOB, content.clone()));
                assert_eq!(verdict, *expected, "v{version} {content}");
            }
        }
    }

    #[test]
    fn events_and_notifications_changes() {
        let current = json!({"users": {ALICE: 100, BOB: 50},
                             "events": {"m.room.name": 70, "m.room.topic": 20},
                             "notifications": {"room": 80}});
        let with = |events: Value, notifications: Value| {
            json!({"users": {ALICE: 100, BOB: 50}, "events": events,
                   "notifications": notifications})
        };
        let same_events = json!({"m.room.name": 70, "m.room.topic": 20});
        let table: &[(Value, Verdict, Verdict)] = &[
            // (content, verdict v1-v5, verdict v6+)
            (
                with(same_events.clone(), json!({"room": 80})),
                Ok(()),
                Ok(()),
            ),
            (
                with(
                    json!({"m.room.name": 70, "m.room.topic": 50}),
                    json!({"room": 80}),
                ),
                Ok(()),
                Ok(()),
            ),
            (
                with(
                    json!({"m.room.name": 10, "m.room.topic": 20}),
                    json!({"room": 80}),
                ),
                Err(PowerLevelsEventLevelAboveSender),
                Err(PowerLevelsEventLevelAboveSender),
            ),
            (
                with(json!({"m.room.topic": 20}), json!({"room": 80})),
                Err(PowerLevelsEventLevelAboveSender),
                Err(PowerLevelsEventLevelAboveSender),
            ),
            (
                with(
                    json!({"m.room.name": 70, "m.room.topic": 20, "m.x": 51}),
                    json!({"room": 80}),
                ),
                Err(PowerLevelsEventLevelAboveSender),
                Err(PowerLevelsEventLevelAboveSender),
            ),
            // Notifications only count from v6.
            (
                with(same_events.clone(), json!({"room": 10})),
                Ok(()),
                Err(PowerLevelsEventLevelAboveSender),
            ),
            (
                with(same_events.clone(), json!({})),
                Ok(()),
                Err(PowerLevelsEventLevelAboveSender),
            ),
            (
                with(same_events.clone(), json!({"room": 80, "other": 60})),
                Ok(()),
                Err(PowerLevelsEventLevelAboveSender),
            ),
        ];
        for version in versions() {
            for (content, before_v6, from_v6) in table {
                let mut room = TestRoom::new(version, ALICE);
                let mut current = current.clone();
                if version.privileged_creators {
                    current["users"].as_object_mut().unwrap().remove(ALICE);
                }
                let mut content = content.clone();
                if version.privileged_creators {
                    content["users"].as_object_mut().unwrap().remove(ALICE);
                }
                room.power_levels(current).join(BOB);
                let expected = if version.limit_notifications_power_levels {
                    from_v6
                } else {
                    before_v6
                };
                let verdict = room.check(power_levels(BOB, content.clone()));
                assert_eq!(verdict, *expected, "v{} {content}", version.id);
            }
        }
    }

    #[test]
    fn user_entry_changes() {
        let current = json!({"users": {ALICE: 100, BOB: 50, CAROL: 50, DAVE: 10}});
        let table: &[(Value, Verdict)] = &[
            // Demoting someone below you.
            (
                json!({"users": {ALICE: 100, BOB: 50, CAROL: 50, DAVE: 0}}),
                Ok(()),
            ),
            // Removing someone below you.
            (json!({"users": {ALICE: 100, BOB: 50, CAROL: 50}}), Ok(())),
            // Promoting someone up to your own level.
            (
                json!({"users": {ALICE: 100, BOB: 50, CAROL: 50, DAVE: 50}}),
                Ok(()),
            ),
            // ... but not above it.
            (
                json!({"users": {ALICE: 100, BOB: 50, CAROL: 50, DAVE: 51}}),
                Err(PowerLevelsUserLevelAboveSender),
            ),
            // Demoting a peer at your level.
            (
                json!({"users": {ALICE: 100, BOB: 50, CAROL: 49, DAVE: 10}}),
                Err(PowerLevelsUserNotBelowSender),
            ),
            // Removing a peer at your level.
            (
                json!({"users": {ALICE: 100, BOB: 50, DAVE: 10}}),
                Err(PowerLevelsUserNotBelowSender),
            ),
            // Demoting yourself is fine.
            (
                json!({"users": {ALICE: 100, BOB: 20, CAROL: 50, DAVE: 10}}),
                Ok(()),
            ),
            // Raising yourself is not.
            (
                json!({"users": {ALICE: 100, BOB: 60, CAROL: 50, DAVE: 10}}),
                Err(PowerLevelsUserLevelAboveSender),
            ),
            // Adding a new user.
            (
                json!({"users": {ALICE: 100, BOB: 50, CAROL: 50, DAVE: 10, "@eve:e.example": 5}}),
                Ok(()),
            ),
        ];
        for version in [1, 5, 9, 11] {
            for (content, expected) in table {
                let mut room = room_with(version, current.clone());
                let verdict = room.check(power_levels(BOB, content.clone()));
                assert_eq!(verdict, *expected, "v{version} {content}");
            }
        }
    }

    #[test]
    fn string_levels_compare_by_value_before_v10() {
        let current = json!({"users": {ALICE: 100, BOB: "50"}, "ban": "60"});
        for version in [1, 6, 9] {
            let mut room = room_with(version, current.clone());
            // "60" -> 60 is no change, so Bob at 50 may send it.
            let same = json!({"users": {ALICE: "100", BOB: 50}, "ban": " 060 "});
            assert_eq!(room.check(power_levels(BOB, same)), Ok(()), "v{version}");
        }
        let mut room = room_with(10, json!({"users": {ALICE: 100, BOB: 50}}));
        let stringy = json!({"users": {ALICE: 100, BOB: 50}, "ban": "50"});
        assert_eq!(
            room.check(power_levels(BOB, stringy)),
            Err(PowerLevelsNotInteger)
        );
    }

    #[test]
    fn content_validation_per_version() {
        // (content, first version where it is refused (0 = never, 1 = always), rule)
        let table: &[(Value, u32, AuthRule)] = &[
            (json!({"ban": "50"}), 10, PowerLevelsNotInteger),
            (json!({"ban": "fifty"}), 1, PowerLevelsNotInteger),
            (json!({"ban": 50.5}), 6, PowerLevelsNotInteger),
            (json!({"ban": null}), 1, PowerLevelsNotInteger),
            (
                json!({"events": {"m.room.name": "50"}}),
                10,
                PowerLevelsNotInteger,
            ),
            (
                json!({"events": {"m.room.name": true}}),
                1,
                PowerLevelsNotInteger,
            ),
            (json!({"events": []}), 1, PowerLevelsNotInteger),
            (
                json!({"notifications": {"room": "50"}}),
                10,
                PowerLevelsNotInteger,
            ),
            (
                json!({"notifications": {"room": "x"}}),
                6,
                PowerLevelsNotInteger,
            ),
            (json!({"notifications": 5}), 6, PowerLevelsNotInteger),
            (json!({"users": {BOB: "50"}}), 10, PowerLevelsInvalidUsers),
            (json!({"users": {BOB: "x"}}), 1, PowerLevelsInvalidUsers),
            (json!({"users": {"bob": 50}}), 1, PowerLevelsInvalidUsers),
            (
                json!({"users": {"@bob:bad host": 50}}),
                1,
                PowerLevelsInvalidUsers,
            ),
            (json!({"users": [BOB]}), 1, PowerLevelsInvalidUsers),
            (
                json!({"users": {BOB: 50}, "ban": 50, "events": {"a": 1}}),
                0,
                PowerLevelsNotInteger,
            ),
        ];
        for version in versions() {
            let number: u32 = version.id.parse().unwrap();
            for (content, refused_from, rule) in table {
                let mut room = TestRoom::new(version, ALICE);
                let verdict = room.check(power_levels(ALICE, content.clone()));
                let expected = if *refused_from != 0 && number >= *refused_from {
                    Err(*rule)
                } else {
                    Ok(())
                };
                assert_eq!(verdict, expected, "v{number} {content}");
            }
        }
    }

    #[test]
    fn v12_creators_stay_out_of_users() {
        let mut room = TestRoom::with_create(v(12), ALICE, json!({"additional_creators": [BOB]}));
        room.join(BOB).join(CAROL);
        let cases = [
            (json!({"users": {CAROL: 100}}), Ok(())),
            (
                json!({"users": {ALICE: 100}}),
                Err(PowerLevelsUsersCiteCreator),
            ),
            (json!({"users": {BOB: 0}}), Err(PowerLevelsUsersCiteCreator)),
        ];
        for (content, expected) in cases {
            assert_eq!(
                room.check(power_levels(BOB, content.clone())),
                expected,
                "{content}"
            );
        }
        // v11 has no such rule.
        let mut v11 = TestRoom::new(v(11), ALICE);
        assert_eq!(
            v11.check(power_levels(ALICE, json!({"users": {ALICE: 100}}))),
            Ok(())
        );
    }

    #[test]
    fn v12_creator_may_change_anything() {
        let mut room = TestRoom::new(v(12), ALICE);
        room.power_levels(json!({"users": {BOB: 9_000_000}, "ban": 1_000_000}))
            .join(BOB);
        let content = json!({"users": {BOB: 0}, "ban": 1});
        assert_eq!(room.check(power_levels(ALICE, content.clone())), Ok(()));
        // Bob, the highest non-creator, cannot touch a level above him.
        let raise = json!({"users": {BOB: 9_000_000}, "ban": 9_000_001});
        assert_eq!(
            room.check(power_levels(BOB, raise)),
            Err(PowerLevelsNamedLevelAboveSender)
        );
    }

    #[test]
    fn power_levels_also_need_the_event_level() {
        let mut room = room_with(
            11,
            json!({"users": {ALICE: 100, BOB: 50},
                                             "events": {"m.room.power_levels": 60}}),
        );
        let same = json!({"users": {ALICE: 100, BOB: 50}, "events": {"m.room.power_levels": 60}});
        assert_eq!(room.check(power_levels(BOB, same)), Err(EventWithoutPower));
    }
}
