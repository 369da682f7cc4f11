//! Power levels as the authorization rules read them.
//!
//! A level in `m.room.power_levels` is a JSON integer in every room version; rooms v1-v9 also
//! accept a string of one (optional whitespace around it, an optional sign, decimal digits
//! with any number of leading zeros), and rooms v1-v5, whose JSON is not held to canonical
//! form, accept floats, truncated towards zero. [`parse_power_level`] is that one definition.
//!
//! Defaults, from the spec's definition of `m.room.power_levels`: `users_default`,
//! `events_default` and `invite` are 0; `state_default`, `kick`, `ban` and `redact` are 50,
//! whether or not the room has a power levels event. Without one the room creator has 100.
//! From room v12 the creators (the create event's sender and `additional_creators`) have
//! infinite power, written `i128::MAX`, with or without a power levels event.
//!
//! Invariant: reading never fails. A value the rules would refuse in a new power levels event
//! (see `power_change`) counts as absent when it turns up in the state anyway.

use super::AuthState;
use super::create::is_creator;
use crate::proto::event::Event;
use crate::proto::room_version::RoomVersion;
use serde_json::{Map, Value};

/// The power of a room creator in rooms with privileged creators (v12): above every level.
pub const CREATOR_POWER: i128 = i128::MAX;

/// The level rooms v1-v11 give the creator when there is no power levels event.
const CREATOR_DEFAULT_POWER: i128 = 100;

/// A power level value as `version` accepts it, or `None` when it is not one.
pub fn parse_power_level(version: &RoomVersion, value: &Value) -> Option<i128> {
    match value {
        Value::Number(number) => {
            if let Some(integer) = number.as_i64() {
                Some(i128::from(integer))
            } else if let Some(integer) = number.as_u64() {
                Some(i128::from(integer))
            } else if version.strict_canonical_json {
                // v6+: a float never passes canonical JSON, so it is no level either.
                None
            } else {
                number.as_f64().and_then(truncate_float)
            }
        }
        Value::String(text) if !version.integer_power_levels => parse_integer_string(text),
        _ => None,
    }
}

/// Rooms v1-v5: a float level is truncated at the decimal point.
fn truncate_float(value: f64) -> Option<i128> {
    // 2^126: well inside i128, and far beyond any level a room could need.
    const LIMIT: f64 = 85_070_591_730_234_615_865_843_651_857_942_052_864.0;
    let truncated = value.trunc();
    if truncated.is_finite() && truncated.abs() < LIMIT {
        Some(truncated as i128)
    } else {
        None
    }
}

/// Rooms v1-v9: `" +0050 "` is 50. Whitespace around, one optional sign, decimal digits.
/// Values beyond `i128` are refused rather than wrapped.
fn parse_integer_string(text: &str) -> Option<i128> {
    let trimmed = text.trim();
    let (negative, digits) = match trimmed.as_bytes().first()? {
        b'-' => (true, &trimmed[1..]),
        b'+' => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut magnitude: i128 = 0;
    for digit in digits.bytes() {
        magnitude = magnitude
            .checked_mul(10)?
            .checked_add(i128::from(digit - b'0'))?;
    }
    // Strings only count before room v10, and only v12 has infinite power (`i128::MAX`),
    // so no parsed level can be mistaken for a creator's.
    Some(if negative { -magnitude } else { magnitude })
}

/// Shows a level, with infinite power spelt out.
pub(super) fn show(level: i128) -> String {
    if level == CREATOR_POWER {
        "infinite (creator)".to_owned()
    } else {
        level.to_string()
    }
}

/// The power level of `user_id` in `state` (power levels event, else the create-event defaults:
/// the creator(s) get 100, others 0); in rooms with privileged creators (v12) the creators
/// and additional_creators have infinite power: return `i128::MAX` for them.
pub fn user_power_level(version: &RoomVersion, user_id: &str, state: &dyn AuthState) -> i128 {
    let create_event = state.get("m.room.create", "");
    let creator = create_event.is_some_and(|create| is_creator(version, create, user_id));
    if version.privileged_creators && creator {
        return CREATOR_POWER;
    }
    match state.get("m.room.power_levels", "") {
        Some(power_levels) => Levels::new(version, Some(power_levels)).user(user_id),
        None if creator => CREATOR_DEFAULT_POWER,
        None => 0,
    }
}

/// The levels of a power levels event (or of none), with the spec's defaults.
pub(super) struct Levels<'a> {
    version: &'a RoomVersion,
    content: Option<&'a Map<String, Value>>,
}

impl<'a> Levels<'a> {
    pub(super) fn new(version: &'a RoomVersion, event: Option<&'a Event>) -> Self {
        Self {
            version,
            content: event.map(|event| &event.content),
        }
    }

    /// A top-level level such as `ban`, if present and valid.
    pub(super) fn named(&self, key: &str) -> Option<i128> {
        parse_power_level(self.version, self.content?.get(key)?)
    }

    /// An entry of one of the maps `users`, `events` or `notifications`.
    fn entry(&self, map: &str, key: &str) -> Option<i128> {
        let value = self.content?.get(map)?.as_object()?.get(key)?;
        parse_power_level(self.version, value)
    }

    /// A user's level from the event: their `users` entry, else `users_default`.
    pub(super) fn user(&self, user_id: &str) -> i128 {
        self.entry("users", user_id)
            .or_else(|| self.named("users_default"))
            .unwrap_or(0)
    }

    pub(super) fn invite(&self) -> i128 {
        self.named("invite").unwrap_or(0)
    }

    pub(super) fn kick(&self) -> i128 {
        self.named("kick").unwrap_or(50)
    }

    pub(super) fn ban(&self) -> i128 {
        self.named("ban").unwrap_or(50)
    }

    pub(super) fn redact(&self) -> i128 {
        self.named("redact").unwrap_or(50)
    }

    /// The level needed to send an event of `event_type`: its `events` entry, else
    /// `state_default` (50) for state events and `events_default` (0) for the others.
    pub(super) fn required_for(&self, event_type: &str, is_state: bool) -> i128 {
        if let Some(level) = self.entry("events", event_type) {
            return level;
        }
        if is_state {
            self.named("state_default").unwrap_or(50)
        } else {
            self.named("events_default").unwrap_or(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::auth::test_support::*;
    use crate::proto::room_version::room_version;
    use serde_json::json;

    #[test]
    fn levels_parse_per_version() {
        let v1 = room_version("1").unwrap();
        let v6 = room_version("6").unwrap();
        let v10 = room_version("10").unwrap();
        // (value, v1, v6, v10)
        let cases = [
            (json!(50), Some(50), Some(50), Some(50)),
            (json!(-7), Some(-7), Some(-7), Some(-7)),
            (json!("100"), Some(100), Some(100), None),
            (json!("000100"), Some(100), Some(100), None),
            (json!(" +100 "), Some(100), Some(100), None),
            (json!("\t-100\n"), Some(-100), Some(-100), None),
            (json!("1_000"), None, None, None),
            (json!("10.5"), None, None, None),
            (json!("+-1"), None, None, None),
            (json!(""), None, None, None),
            (json!("-"), None, None, None),
            (json!("0x10"), None, None, None),
            (json!(50.57), Some(50), None, None),
            (json!(-2.9), Some(-2), None, None),
            (json!(5.114698E4), Some(51146), None, None),
            (json!(true), None, None, None),
            (json!(null), None, None, None),
            (json!({"a": 1}), None, None, None),
        ];
        for (value, in_v1, in_v6, in_v10) in cases {
            assert_eq!(parse_power_level(v1, &value), in_v1, "v1 {value}");
            assert_eq!(parse_power_level(v6, &value), in_v6, "v6 {value}");
            assert_eq!(parse_power_level(v10, &value), in_v10, "v10 {value}");
        }
    }

    #[test]
    fn huge_strings_are_not_levels() {
        let v1 = room_version("1").unwrap();
        let huge = "9".repeat(60);
        assert_eq!(parse_power_level(v1, &json!(huge)), None);
        assert_eq!(
            parse_power_level(v1, &json!("99999999999999999999")),
            Some(99_999_999_999_999_999_999)
        );
    }

    #[test]
    fn creator_defaults_without_power_levels() {
        for version in versions() {
            let room = TestRoom::new(version, ALICE);
            let state = room.state();
            let expected_creator = if version.privileged_creators {
                CREATOR_POWER
            } else {
                100
            };
            assert_eq!(
                user_power_level(version, ALICE, &state),
                expected_creator,
                "v{}",
                version.id
            );
            assert_eq!(user_power_level(version, BOB, &state), 0, "v{}", version.id);
        }
    }

    #[test]
    fn power_levels_event_decides_except_for_v12_creators() {
        for version in versions() {
            let mut room = TestRoom::new(version, ALICE);
            room.add(
                EventBuilder::state("m.room.power_levels", "", ALICE)
                    .content(json!({"users": {BOB: 75}, "users_default": 3})),
            );
            let state = room.state();
            let alice = user_power_level(version, ALICE, &state);
            if version.privileged_creators {
                assert_eq!(alice, CREATOR_POWER);
            } else {
                // The creator is not special once a power levels event exists.
                assert_eq!(alice, 3, "v{}", version.id);
            }
            assert_eq!(user_power_level(version, BOB, &state), 75);
            assert_eq!(user_power_level(version, CAROL, &state), 3);
        }
    }

    #[test]
    fn additional_creators_are_infinite_only_in_v12() {
        for version in versions() {
            let room = TestRoom::with_create(version, ALICE, json!({"additional_creators": [BOB]}));
            let bob = user_power_level(version, BOB, &room.state());
            let expected = if version.privileged_creators {
                CREATOR_POWER
            } else {
                0
            };
            assert_eq!(bob, expected, "v{}", version.id);
        }
    }

    #[test]
    fn creator_is_content_creator_before_v11() {
        // A create event whose content names another creator than its sender.
        for version in versions() {
            let room = TestRoom::with_create(version, ALICE, json!({"creator": BOB}));
            let state = room.state();
            let (alice, bob) = (
                user_power_level(version, ALICE, &state),
                user_power_level(version, BOB, &state),
            );
            if version.creator_is_sender {
                assert!(alice >= 100 && bob == 0, "v{}", version.id);
            } else {
                assert_eq!((alice, bob), (0, 100), "v{}", version.id);
            }
        }
    }

    #[test]
    fn defaults_for_named_levels() {
        let version = room_version("9").unwrap();
        let none = Levels::new(version, None);
        assert_eq!(
            (none.invite(), none.kick(), none.ban(), none.redact()),
            (0, 50, 50, 50)
        );
        assert_eq!(none.required_for("m.room.topic", true), 50);
        assert_eq!(none.required_for("m.room.message", false), 0);
        let event = EventBuilder::state("m.room.power_levels", "", ALICE)
            .content(
                json!({"events": {"m.room.message": "20"}, "state_default": 10,
                            "kick": "bad"}),
            )
            .build();
        let levels = Levels::new(version, Some(&event));
        assert_eq!(levels.required_for("m.room.message", false), 20);
        assert_eq!(levels.required_for("m.room.topic", true), 10);
        // An unreadable level counts as absent.
        assert_eq!(levels.kick(), 50);
    }
}
