//! The redaction algorithm of each room version.
//!
//! Redaction keeps the keys the protocol needs (ids, references, hashes, signatures, and the
//! content keys that the authorization rules read) and strips everything else. It is the basis
//! of event signatures and reference hashes, so every byte of it matters: the rules follow the
//! spec's room version pages, and each difference between versions is a flag of
//! [`RedactionRules`] in the room version table.
//!
//! Invariants: redaction is idempotent (`redact(redact(x)) == redact(x)`), never adds a key that
//! was not there, and depends only on the event's `type` and the room version.

use super::{PduError, PduProblem};
use crate::proto::room_version::{RedactionRules, RoomVersion};
use serde_json::{Map, Value};

/// Top-level keys every room version keeps.
const KEPT_TOP_LEVEL_KEYS: [&str; 12] = [
    "event_id",
    "type",
    "room_id",
    "sender",
    "state_key",
    "content",
    "hashes",
    "signatures",
    "depth",
    "prev_events",
    "auth_events",
    "origin_server_ts",
];

/// Top-level keys room versions 1 to 10 keep as well; v11 stopped protecting them.
const KEPT_TOP_LEVEL_KEYS_BEFORE_V11: [&str; 3] = ["prev_state", "origin", "membership"];

/// Returns the redacted copy of `event` under the rules of `room_version`.
///
/// Fails only when the rules cannot be applied: `type` must be a string, and `content`, if
/// present, an object. A missing `content` stays missing.
pub fn redact(
    event: &Map<String, Value>,
    room_version: &RoomVersion,
) -> Result<Map<String, Value>, PduError> {
    let rules = &room_version.redaction;
    let event_type = match event.get("type") {
        Some(Value::String(event_type)) => event_type.as_str(),
        Some(_) => return Err(PduError::new(PduProblem::wrong_type("type", "a string"))),
        None => return Err(PduError::new(PduProblem::missing("type"))),
    };
    let mut redacted = Map::new();
    for (key, value) in event {
        if key == "content" {
            let Value::Object(content) = value else {
                return Err(PduError::new(PduProblem::wrong_type(
                    "content",
                    "an object",
                )));
            };
            let content = redact_content(event_type, content, rules);
            redacted.insert(key.clone(), Value::Object(content));
        } else if keeps_top_level_key(key, rules) {
            redacted.insert(key.clone(), value.clone());
        }
    }
    Ok(redacted)
}

fn keeps_top_level_key(key: &str, rules: &RedactionRules) -> bool {
    KEPT_TOP_LEVEL_KEYS.contains(&key)
        || (!rules.v11_rules && KEPT_TOP_LEVEL_KEYS_BEFORE_V11.contains(&key))
}

/// The content an event of `event_type` keeps after redaction.
fn redact_content(
    event_type: &str,
    content: &Map<String, Value>,
    rules: &RedactionRules,
) -> Map<String, Value> {
    if event_type == "m.room.create" && rules.v11_rules {
        return content.clone();
    }
    let mut kept = Map::new();
    for (key, value) in content {
        match content_key_rule(event_type, key, rules) {
            ContentKey::Strip => {}
            ContentKey::Keep => {
                kept.insert(key.clone(), value.clone());
            }
            ContentKey::KeepOnlySigned => {
                // v11: `third_party_invite` keeps only its `signed` key. A value that is not an
                // object has no `signed` key to keep, so nothing of it survives.
                if let Value::Object(invite) = value {
                    let signed: Map<String, Value> = invite
                        .get("signed")
                        .map(|signed| ("signed".to_owned(), signed.clone()))
                        .into_iter()
                        .collect();
                    kept.insert(key.clone(), Value::Object(signed));
                }
            }
        }
    }
    kept
}

enum ContentKey {
    Keep,
    Strip,
    KeepOnlySigned,
}

fn content_key_rule(event_type: &str, key: &str, rules: &RedactionRules) -> ContentKey {
    let keep = |yes: bool| {
        if yes {
            ContentKey::Keep
        } else {
            ContentKey::Strip
        }
    };
    match (event_type, key) {
        ("m.room.member", "membership") => ContentKey::Keep,
        ("m.room.member", "join_authorised_via_users_server") => {
            keep(rules.keep_join_authorised_via_users_server)
        }
        ("m.room.member", "third_party_invite") if rules.v11_rules => ContentKey::KeepOnlySigned,
        // From v11 on the whole content is kept (handled by the caller).
        ("m.room.create", "creator") => ContentKey::Keep,
        ("m.room.join_rules", "join_rule") => ContentKey::Keep,
        ("m.room.join_rules", "allow") => keep(rules.keep_join_rules_allow),
        (
            "m.room.power_levels",
            "ban" | "events" | "events_default" | "kick" | "redact" | "state_default" | "users"
            | "users_default",
        ) => ContentKey::Keep,
        ("m.room.power_levels", "invite") => keep(rules.v11_rules),
        ("m.room.aliases", "aliases") => keep(rules.keep_aliases),
        ("m.room.history_visibility", "history_visibility") => ContentKey::Keep,
        ("m.room.redaction", "redacts") => keep(rules.v11_rules),
        _ => ContentKey::Strip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::room_version::{ALL, room_version};
    use serde_json::json;

    fn redact_in(version: &str, event: Value) -> Value {
        let event = event.as_object().unwrap().clone();
        Value::Object(redact(&event, room_version(version).unwrap()).unwrap())
    }

    fn event(event_type: &str, content: Value) -> Value {
        json!({
            "type": event_type, "content": content, "event_id": "$e:x", "room_id": "!r:x",
            "sender": "@s:x", "state_key": "", "hashes": {"sha256": "h"}, "signatures": {},
            "depth": 1, "prev_events": [], "auth_events": [], "origin_server_ts": 5,
            "prev_state": [], "origin": "x", "membership": "join", "unsigned": {"age": 1},
            "age_ts": 7, "redacts": "$r", "extra": true,
        })
    }

    /// The content left after redacting `content` in each version 1..=12, in order.
    fn content_by_version(event_type: &str, content: Value) -> Vec<Value> {
        ALL.iter()
            .map(|v| redact_in(v.id, event(event_type, content.clone()))["content"].clone())
            .collect()
    }

    #[test]
    fn top_level_keys_before_and_from_v11() {
        let before = redact_in("10", event("m.room.message", json!({"body": "hi"})));
        let mut expected = event("m.room.message", json!({}));
        for key in ["unsigned", "age_ts", "redacts", "extra"] {
            expected.as_object_mut().unwrap().remove(key);
        }
        assert_eq!(before, expected);
        let from_v11 = redact_in("11", event("m.room.message", json!({"body": "hi"})));
        for key in ["origin", "membership", "prev_state"] {
            expected.as_object_mut().unwrap().remove(key);
        }
        assert_eq!(from_v11, expected);
    }

    #[test]
    fn member_content() {
        let content = json!({
            "membership": "join", "displayname": "A", "join_authorised_via_users_server": "@u:x",
            "third_party_invite": {"signed": {"token": "t"}, "display_name": "d"},
        });
        let by_version = content_by_version("m.room.member", content);
        assert_eq!(by_version[7], json!({"membership": "join"}), "v8");
        assert_eq!(
            by_version[8],
            json!({"membership": "join", "join_authorised_via_users_server": "@u:x"}),
            "v9"
        );
        assert_eq!(
            by_version[10],
            json!({"membership": "join", "join_authorised_via_users_server": "@u:x",
                   "third_party_invite": {"signed": {"token": "t"}}}),
            "v11"
        );
        assert_eq!(by_version[11], by_version[10], "v12");
        let without_signed =
            content_by_version("m.room.member", json!({"third_party_invite": {"a": 1}}));
        assert_eq!(without_signed[10], json!({"third_party_invite": {}}));
        let not_an_object = content_by_version("m.room.member", json!({"third_party_invite": "x"}));
        assert_eq!(not_an_object[10], json!({}));
    }

    #[test]
    fn create_content() {
        let content = json!({"creator": "@c:x", "room_version": "9", "m.federate": false});
        let by_version = content_by_version("m.room.create", content.clone());
        assert_eq!(by_version[9], json!({"creator": "@c:x"}), "v10");
        assert_eq!(by_version[10], content, "v11");
        assert_eq!(by_version[11], content, "v12");
    }

    #[test]
    fn join_rules_power_levels_aliases_history_visibility_redaction() {
        let join_rules = content_by_version(
            "m.room.join_rules",
            json!({"join_rule": "restricted", "allow": [], "x": 1}),
        );
        assert_eq!(join_rules[6], json!({"join_rule": "restricted"}), "v7");
        assert_eq!(
            join_rules[7],
            json!({"join_rule": "restricted", "allow": []}),
            "v8"
        );

        let all_power_keys = json!({"ban": 1, "events": {}, "events_default": 2, "kick": 3, "redact": 4,
            "state_default": 5, "users": {}, "users_default": 6, "invite": 7, "notifications": {}});
        let power = content_by_version("m.room.power_levels", all_power_keys.clone());
        let mut without_invite = all_power_keys.clone();
        without_invite.as_object_mut().unwrap().remove("invite");
        without_invite
            .as_object_mut()
            .unwrap()
            .remove("notifications");
        assert_eq!(power[9], without_invite, "v10");
        let mut with_invite = without_invite.clone();
        with_invite
            .as_object_mut()
            .unwrap()
            .insert("invite".into(), json!(7));
        assert_eq!(power[10], with_invite, "v11");

        let aliases = content_by_version("m.room.aliases", json!({"aliases": ["#a:x"], "b": 1}));
        assert_eq!(aliases[4], json!({"aliases": ["#a:x"]}), "v5");
        assert_eq!(aliases[5], json!({}), "v6");

        let visibility = content_by_version(
            "m.room.history_visibility",
            json!({"history_visibility": "shared", "b": 1}),
        );
        assert!(
            visibility
                .iter()
                .all(|c| *c == json!({"history_visibility": "shared"}))
        );

        let redaction =
            content_by_version("m.room.redaction", json!({"redacts": "$x", "reason": "r"}));
        assert_eq!(redaction[9], json!({}), "v10");
        assert_eq!(redaction[10], json!({"redacts": "$x"}), "v11");
    }

    #[test]
    fn is_idempotent_and_needs_a_type() {
        for version in ALL {
            let once = redact_in(
                version.id,
                event(
                    "m.room.member",
                    json!({"membership": "join", "third_party_invite": {"signed": 1, "x": 2}}),
                ),
            );
            assert_eq!(redact_in(version.id, once.clone()), once);
        }
        let no_type = json!({"content": {}}).as_object().unwrap().clone();
        assert_eq!(
            redact(&no_type, &ALL[0]).unwrap_err().to_string(),
            "`type` is missing"
        );
        let bad_content = json!({"type": "m", "content": []})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(
            redact(&bad_content, &ALL[0]).unwrap_err().to_string(),
            "`content` must be an object"
        );
        let no_content = json!({"type": "m", "body": 1}).as_object().unwrap().clone();
        assert_eq!(
            redact(&no_content, &ALL[0]).unwrap(),
            json!({"type": "m"}).as_object().unwrap().clone()
        );
    }
}
