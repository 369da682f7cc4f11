//! Property tests of the authorization rules over random small rooms and events.
//!
//! - The rules read only what the auth events selection names: checking against the whole
//!   state and against just the selected entries (plus the create event) gives the same verdict.
//! - No content, however malformed, makes the rules panic.
//! - More power never hurts: raising the sender's level in `users` cannot turn an accepted
//!   event that is not a power levels event into a rejected one.

use super::test_support::*;
use super::{auth_types_for_event, check_auth};
use crate::proto::event::{Event, StateKey};
use crate::proto::room_version::{ALL, RoomVersion};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const USERS: [&str; 4] = [ALICE, BOB, CAROL, DAVE];
const MEMBERSHIPS: [&str; 6] = ["join", "invite", "leave", "ban", "knock", "wave"];
const JOIN_RULES: [&str; 6] = [
    "public",
    "invite",
    "knock",
    "restricted",
    "knock_restricted",
    "x",
];

fn version() -> impl Strategy<Value = &'static RoomVersion> {
    (0..ALL.len()).prop_map(|index| &ALL[index])
}

fn user() -> impl Strategy<Value = &'static str> {
    prop::sample::select(USERS.to_vec())
}

/// A level as any version might hold it: mostly integers, sometimes strings or junk.
fn level() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => (-10i64..120).prop_map(|n| json!(n)),
        1 => (0i64..120).prop_map(|n| json!(n.to_string())),
        1 => Just(json!(50.5)),
        1 => Just(json!("junk")),
    ]
}

fn power_levels_content() -> impl Strategy<Value = Value> {
    (
        prop::collection::btree_map(user(), level(), 0..4),
        prop::option::of(level()),
        prop::option::of(level()),
        prop::option::of(level()),
        prop::option::of(level()),
        prop::collection::btree_map(
            prop::sample::select(vec![
                "m.room.topic",
                "m.room.message",
                "m.room.power_levels",
            ]),
            level(),
            0..3,
        ),
    )
        .prop_map(|(users, ban, kick, invite, state_default, events)| {
            let mut content = json!({"users": users, "events": events});
            for (key, value) in [
                ("ban", ban),
                ("kick", kick),
                ("invite", invite),
                ("state_default", state_default),
            ] {
                if let Some(value) = value {
                    content[key] = value;
                }
            }
            content
        })
}

/// A room: Alice created it; each other user has some membership or none.
#[derive(Debug, Clone)]
struct RoomShape {
    version: &'static RoomVersion,
    memberships: Vec<(&'static str, &'static str)>,
    join_rule: Option<&'static str>,
    power_levels: Option<Value>,
}

fn room_shape() -> impl Strategy<Value = RoomShape> {
    (
        version(),
        prop::collection::vec((user(), prop::sample::select(MEMBERSHIPS.to_vec())), 0..5),
        prop::option::of(prop::sample::select(JOIN_RULES.to_vec())),
        prop::option::of(power_levels_content()),
    )
        .prop_map(
            |(version, memberships, join_rule, power_levels)| RoomShape {
                version,
                memberships,
                join_rule,
                power_levels,
            },
        )
}

impl RoomShape {
    fn build(&self) -> TestRoom {
        let mut room = TestRoom::new(self.version, ALICE);
        for (user, membership) in &self.memberships {
            room.set_membership(user, membership);
        }
        if let Some(rule) = self.join_rule {
            room.join_rule(rule);
        }
        if let Some(content) = &self.power_levels {
            room.power_levels(content.clone());
        }
        room
    }
}

fn event() -> impl Strategy<Value = EventBuilder> {
    prop_oneof![
        (
            user(),
            user(),
            prop::sample::select(MEMBERSHIPS.to_vec()),
            prop::option::of(user())
        )
            .prop_map(|(sender, target, membership, authoriser)| {
                let mut content = json!({"membership": membership});
                if let Some(authoriser) = authoriser {
                    content["join_authorised_via_users_server"] = json!(authoriser);
                }
                EventBuilder::member(sender, target, membership).content(content)
            }),
        user().prop_map(|sender| EventBuilder::message("m.room.message", sender)),
        (user(), prop::sample::select(vec!["", ALICE, BOB])).prop_map(|(sender, key)| {
            EventBuilder::state("m.room.topic", key, sender).content(json!({"topic": "t"}))
        }),
        (user(), power_levels_content()).prop_map(|(sender, content)| {
            EventBuilder::state("m.room.power_levels", "", sender).content(content)
        }),
        user().prop_map(|sender| EventBuilder::state("m.room.third_party_invite", "t", sender)),
    ]
}

/// Arbitrary JSON, for content the rules must survive.
fn junk() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[a-z@:. 0-9-]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "membership",
                    "users",
                    "ban",
                    "events",
                    "notifications",
                    "signed",
                    "third_party_invite",
                    "token",
                    "mxid",
                    "join_authorised_via_users_server",
                    "additional_creators",
                    "room_version",
                    "m.federate",
                    "users_default",
                ]),
                inner,
                0..4,
            )
            .prop_map(|map| Value::Object(
                map.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

fn selected_state(
    version: &RoomVersion,
    event: &Event,
    state: &BTreeMap<StateKey, Event>,
) -> BTreeMap<StateKey, Event> {
    let mut keys = auth_types_for_event(
        version,
        &event.event_type,
        event.state_key.as_deref(),
        &event.sender,
        &event.content,
    );
    keys.push(key("m.room.create", ""));
    keys.into_iter()
        .filter_map(|state_key| Some((state_key.clone(), state.get(&state_key)?.clone())))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn rules_read_only_the_selected_state(shape in room_shape(), builder in event()) {
        let mut room = shape.build();
        let event = room.finish(builder);
        let full = check_auth(shape.version, &event, &room.events).map_err(|e| e.rule);
        let selected = selected_state(shape.version, &event, &room.events);
        let narrow = check_auth(shape.version, &event, &selected).map_err(|e| e.rule);
        prop_assert_eq!(full, narrow);
    }

    #[test]
    fn malformed_content_never_panics(
        shape in room_shape(),
        sender in user(),
        event_type in prop::sample::select(vec![
            "m.room.member", "m.room.power_levels", "m.room.create", "m.room.join_rules",
            "m.room.third_party_invite", "m.room.aliases", "m.room.redaction",
        ]),
        state_key in prop::option::of(prop::sample::select(vec!["", ALICE, BOB, "b.example"])),
        content in junk(),
    ) {
        let mut room = shape.build();
        let mut builder = EventBuilder::message(event_type, sender);
        if let Some(state_key) = state_key {
            builder = EventBuilder::state(event_type, state_key, sender);
        }
        let content = match content {
            Value::Object(_) => content,
            other => json!({"value": other}),
        };
        let event = room.finish(builder.content(content));
        let _ = check_auth(shape.version, &event, &room.events);
        let _ = super::check_auth_events_list(shape.version, &event, &|_| None);
    }

    #[test]
    fn more_power_never_hurts(shape in room_shape(), builder in event(), boost in 1i64..200) {
        let mut room = shape.build();
        let event = room.finish(builder);
        let before = check_auth(shape.version, &event, &room.events);
        if event.event_type == "m.room.power_levels" || before.is_err() {
            return Ok(());
        }
        // Raise the sender's level in the power levels event, if there is one.
        let Some(power_levels) = room.events.get_mut(&key("m.room.power_levels", "")) else {
            return Ok(());
        };
        let sender_level =
            super::user_power_level(shape.version, &event.sender, &shape.build().events);
        let users = power_levels
            .content
            .entry("users")
            .or_insert_with(|| json!({}));
        if sender_level >= 1_000_000 || !users.is_object() {
            return Ok(());
        }
        users[event.sender.as_str()] = json!(i64::try_from(sender_level).unwrap() + boost);
        let after = check_auth(shape.version, &event, &room.events).map_err(|e| e.rule);
        prop_assert_eq!(after, Ok(()));
    }
}
