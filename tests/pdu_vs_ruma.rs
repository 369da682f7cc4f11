//! Differential tests of `proto::pdu` against ruma, an independent implementation: for random
//! events across room versions 1-12, content hashes, reference hashes and event ids, redaction,
//! signatures and verification outcomes must agree.
//!
//! Where ruma departs from the spec, fedlab follows the spec and a test below documents the
//! difference:
//! - room v11+ redaction of an `m.room.member` whose `third_party_invite` is not an object: the
//!   spec keeps only "the `signed` key of the `third_party_invite` key", so nothing survives;
//!   ruma keeps the value whole.
//! - `join_authorised_via_users_server`: the spec makes its server's signature an authorization
//!   rule for `m.room.member` events (rejection), not a signature check on receipt (dropping);
//!   ruma's `verify_event` requires it on receipt, and for every event type.

use fedlab::proto::base64::{self as fedlab_base64, Alphabet};
use fedlab::proto::canonical_json::INTEGER_MAX;
use fedlab::proto::pdu::{self, Pdu, SignatureFailure, Verification};
use fedlab::proto::room_version::{ALL, RoomVersion};
use fedlab::proto::signing::{SigningKey, VerifyingKey};
use proptest::prelude::*;
use ruma::CanonicalJsonObject;
use ruma::room_version_rules::RoomVersionRules;
use ruma::serde::Base64;
use ruma::signatures::{Ed25519KeyPair, PublicKeyMap, Verified};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

const SERVERS: [&str; 4] = [
    "example.org",
    "other.example:8448",
    "[::1]:8008",
    "10.0.0.1",
];

fn rules(version: &RoomVersion) -> RoomVersionRules {
    ruma::RoomVersionId::try_from(version.id)
        .unwrap()
        .rules()
        .unwrap()
}

fn to_ruma(event: &Map<String, Value>) -> CanonicalJsonObject {
    ruma::canonical_json::try_from_json_map(event.clone()).expect("generated JSON is canonical")
}

fn from_ruma(object: &CanonicalJsonObject) -> Map<String, Value> {
    match serde_json::to_value(object).unwrap() {
        Value::Object(map) => map,
        other => panic!("ruma gave a non-object {other}"),
    }
}

fn seed_of(server: &str) -> [u8; 32] {
    let index = SERVERS.iter().position(|s| *s == server).unwrap() as u8;
    [index + 1; 32]
}

fn fedlab_key(server: &str) -> SigningKey {
    SigningKey::from_seed("ed25519:1", &seed_of(server)).unwrap()
}

/// The same key for ruma, as the PKCS#8 v1 document that wraps an ed25519 seed.
fn ruma_key(server: &str) -> Ed25519KeyPair {
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&seed_of(server));
    Ed25519KeyPair::from_der(&der, "1".to_owned()).unwrap()
}

fn fedlab_keys() -> BTreeMap<String, BTreeMap<String, VerifyingKey>> {
    SERVERS
        .iter()
        .map(|server| {
            let key = fedlab_key(server).verifying_key();
            (
                server.to_string(),
                BTreeMap::from([("ed25519:1".to_owned(), key)]),
            )
        })
        .collect()
}

fn ruma_keys() -> PublicKeyMap {
    SERVERS
        .iter()
        .map(|server| {
            let public = fedlab_key(server).verifying_key().to_base64();
            let public = Base64::parse(public).unwrap();
            (
                server.to_string(),
                BTreeMap::from([("ed25519:1".to_owned(), public)]),
            )
        })
        .collect()
}

// ---- generators ----------------------------------------------------------------------------

const EVENT_TYPES: [&str; 11] = [
    "m.room.member",
    "m.room.create",
    "m.room.join_rules",
    "m.room.power_levels",
    "m.room.aliases",
    "m.room.history_visibility",
    "m.room.redaction",
    "m.room.message",
    "m.room.server_acl",
    "m.room.topic",
    "org.example.custom",
];

const CONTENT_KEYS: [&str; 24] = [
    "membership",
    "join_authorised_via_users_server",
    "third_party_invite",
    "creator",
    "room_version",
    "join_rule",
    "allow",
    "ban",
    "events",
    "events_default",
    "invite",
    "kick",
    "redact",
    "state_default",
    "users",
    "users_default",
    "notifications",
    "aliases",
    "history_visibility",
    "redacts",
    "body",
    "m.federate",
    "signed",
    "deny",
];

const EXTRA_TOP_LEVEL_KEYS: [&str; 7] = [
    "origin",
    "membership",
    "prev_state",
    "age_ts",
    "unsigned",
    "redacts",
    "outlier",
];

fn version() -> impl Strategy<Value = &'static RoomVersion> {
    (0..ALL.len()).prop_map(|index| &ALL[index])
}

/// Strings with any characters, control characters and non-ASCII included.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9._ ]{0,8}",
        prop::collection::vec(any::<char>(), 0..6).prop_map(String::from_iter),
    ]
}

fn integer() -> impl Strategy<Value = i64> {
    prop_oneof![-INTEGER_MAX..=INTEGER_MAX, -100i64..100]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        integer().prop_map(|i| json!(i)),
        text().prop_map(Value::String),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(&CONTENT_KEYS[..]).prop_map(str::to_owned),
        text(),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn content() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(key(), value(), 0..6).prop_map(|map| map.into_iter().collect())
}

fn event_type() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(&EVENT_TYPES[..]).prop_map(str::to_owned),
        1 => text(),
    ]
}

/// Any JSON object with a string `type` and an object `content`: what hashing and redaction
/// need, and nothing more.
fn loose_event() -> impl Strategy<Value = Map<String, Value>> {
    let top_level_key = prop_oneof![
        prop::sample::select(&EXTRA_TOP_LEVEL_KEYS[..]).prop_map(str::to_owned),
        prop::sample::select(
            &[
                "event_id",
                "room_id",
                "sender",
                "state_key",
                "hashes",
                "signatures",
                "depth",
                "prev_events",
                "auth_events",
                "origin_server_ts"
            ][..]
        )
        .prop_map(str::to_owned),
        text(),
    ];
    (
        event_type(),
        content(),
        prop::collection::btree_map(top_level_key, value(), 0..8),
    )
        .prop_map(|(event_type, content, extra)| {
            let mut event: Map<String, Value> = extra.into_iter().collect();
            event.insert("type".into(), json!(event_type));
            event.insert("content".into(), Value::Object(content));
            event
        })
}

/// Room v11+ redaction of a member event whose `third_party_invite` is not an object: where
/// fedlab (the spec) and ruma differ.
fn is_known_divergence(event: &Map<String, Value>, version: &RoomVersion) -> bool {
    version.redaction.v11_rules
        && event["type"] == "m.room.member"
        && event["content"]
            .get("third_party_invite")
            .is_some_and(|invite| !invite.is_object())
}

fn hash_id(alphabet: Alphabet) -> impl Strategy<Value = String> {
    any::<[u8; 32]>().prop_map(move |bytes| fedlab_base64::encode(&bytes, alphabet))
}

fn event_id_for(version: &'static RoomVersion) -> BoxedStrategy<String> {
    match version.event_id_format {
        fedlab::proto::room_version::EventIdFormat::ServerMade => {
            ("[A-Za-z0-9]{1,12}", prop::sample::select(&SERVERS[..]))
                .prop_map(|(opaque, server)| format!("${opaque}:{server}"))
                .boxed()
        }
        fedlab::proto::room_version::EventIdFormat::ReferenceHashStandard => {
            hash_id(Alphabet::Standard)
                .prop_map(|h| format!("${h}"))
                .boxed()
        }
        fedlab::proto::room_version::EventIdFormat::ReferenceHashUrlSafe => {
            hash_id(Alphabet::UrlSafe)
                .prop_map(|h| format!("${h}"))
                .boxed()
        }
    }
}

fn reference_for(version: &'static RoomVersion) -> BoxedStrategy<Value> {
    if version.event_ids_in_events() {
        (
            event_id_for(version),
            prop::option::of(hash_id(Alphabet::Standard)),
        )
            .prop_map(|(id, hash)| match hash {
                Some(hash) => json!([id, {"sha256": hash}]),
                None => json!([id, {}]),
            })
            .boxed()
    } else {
        event_id_for(version).prop_map(Value::String).boxed()
    }
}

fn user_id() -> impl Strategy<Value = String> {
    ("[a-z0-9._=/+-]{1,10}", prop::sample::select(&SERVERS[..]))
        .prop_map(|(local, server)| format!("@{local}:{server}"))
}

/// A signed-ready event that passes fedlab's format checks for `version`, within what ruma's
/// `verify_event` can read (member events have a membership; third-party invites and
/// `join_authorised_via_users_server` have the shapes ruma parses).
fn valid_event(version: &'static RoomVersion) -> impl Strategy<Value = Map<String, Value>> {
    let room_id = if version.room_id_from_create_event {
        hash_id(Alphabet::UrlSafe)
            .prop_map(|h| format!("!{h}"))
            .boxed()
    } else {
        ("[A-Za-z0-9]{1,12}", prop::sample::select(&SERVERS[..]))
            .prop_map(|(opaque, server)| format!("!{opaque}:{server}"))
            .boxed()
    };
    let member_content = (
        prop::sample::select(&["join", "invite", "leave", "ban", "knock"][..]),
        prop::option::of(user_id()),
        prop::option::of(prop::option::of(value())),
        content(),
    )
        .prop_map(|(membership, authorising, invite, mut content)| {
            content.remove("join_authorised_via_users_server");
            content.remove("third_party_invite");
            content.insert("membership".into(), json!(membership));
            if let Some(user) = authorising {
                content.insert("join_authorised_via_users_server".into(), json!(user));
            }
            if let Some(signed) = invite {
                let invite = match signed {
                    Some(signed) => json!({"signed": signed, "display_name": "x"}),
                    None => json!({"display_name": "x"}),
                };
                content.insert("third_party_invite".into(), invite);
            }
            content
        });
    let other_content = content().prop_map(|mut content| {
        // ruma reads this key on every event type from v8 on; only user ids parse.
        content.remove("join_authorised_via_users_server");
        content
    });
    (
        prop::sample::select(&EVENT_TYPES[..]),
        member_content,
        other_content,
        room_id,
        any::<bool>(),
        user_id(),
        prop::option::of("[a-z@:.]{0,10}"),
        (
            prop::collection::vec(reference_for(version), 0..4),
            prop::collection::vec(reference_for(version), 0..4),
        ),
        (0u64..1_000_000, 0u64..2_000_000_000_000),
        event_id_for(version),
        prop::collection::btree_map(
            prop::sample::select(&EXTRA_TOP_LEVEL_KEYS[..]),
            leaf(),
            0..3,
        ),
    )
        .prop_map(
            move |(
                event_type,
                member_content,
                other_content,
                room_id,
                omit_room_id,
                sender,
                state_key,
                (prev, auth),
                (depth, ts),
                event_id,
                extra,
            )| {
                let mut event = Map::new();
                for (key, value) in extra {
                    let value = if key == "unsigned" {
                        json!({"age": value})
                    } else {
                        value
                    };
                    event.insert(key.to_owned(), value);
                }
                let is_member = event_type == "m.room.member";
                event.insert("type".into(), json!(event_type));
                let content = if is_member {
                    member_content
                } else {
                    other_content
                };
                event.insert("content".into(), Value::Object(content));
                let create_without_room_id = version.room_id_from_create_event
                    && event_type == "m.room.create"
                    && omit_room_id;
                if !create_without_room_id {
                    event.insert("room_id".into(), json!(room_id));
                }
                event.insert("sender".into(), json!(sender));
                if let Some(state_key) = state_key {
                    event.insert("state_key".into(), json!(state_key));
                }
                event.insert("prev_events".into(), Value::Array(prev));
                event.insert("auth_events".into(), Value::Array(auth));
                event.insert("depth".into(), json!(depth));
                event.insert("origin_server_ts".into(), json!(ts));
                if version.event_ids_in_events() {
                    event.insert("event_id".into(), json!(event_id));
                }
                if !version.redacts_in_content && event.get("redacts").is_some() {
                    event.insert("redacts".into(), json!("$redacted"));
                }
                event
            },
        )
}

fn versioned_valid_event() -> impl Strategy<Value = (&'static RoomVersion, Map<String, Value>)> {
    version().prop_flat_map(|version| (Just(version), valid_event(version)))
}

// ---- helpers -----------------------------------------------------------------------------

fn server_of(id: &str) -> String {
    id.split_once(':').unwrap().1.to_owned()
}

/// The servers that sign an event: the sender's, in v1/v2 the event id's, and the server of
/// `join_authorised_via_users_server` (so that ruma, which requires it, is satisfied).
fn signers(event: &Map<String, Value>, version: &RoomVersion) -> Vec<String> {
    let mut servers = vec![server_of(event["sender"].as_str().unwrap())];
    if version.event_ids_in_events() {
        servers.push(server_of(event["event_id"].as_str().unwrap()));
    }
    if let Some(user) = event["content"]
        .get("join_authorised_via_users_server")
        .and_then(Value::as_str)
    {
        servers.push(server_of(user));
    }
    servers.sort();
    servers.dedup();
    servers
}

fn sign_with_fedlab(
    event: &Map<String, Value>,
    version: &'static RoomVersion,
) -> Map<String, Value> {
    let mut signed = event.clone();
    pdu::add_content_hash(&mut signed, version.numbers()).unwrap();
    for server in signers(event, version) {
        pdu::sign_event(&mut signed, version, &server, &fedlab_key(&server)).unwrap();
    }
    signed
}

fn sign_with_ruma(event: &Map<String, Value>, version: &RoomVersion) -> Map<String, Value> {
    let rules = rules(version);
    let mut signed = to_ruma(event);
    ruma::signatures::add_content_hash_to_event(&mut signed).unwrap();
    for server in signers(event, version) {
        ruma::signatures::sign_event(&server, &ruma_key(&server), &mut signed, &rules.redaction)
            .unwrap();
    }
    from_ruma(&signed)
}

/// The same verdict in both vocabularies.
#[derive(Debug, PartialEq)]
enum Outcome {
    Valid,
    HashMismatch,
    BadSignature,
}

fn fedlab_outcome(event: &Map<String, Value>, version: &'static RoomVersion) -> Outcome {
    let pdu = Pdu::from_json(event.clone(), version).expect("generated events are well-formed");
    match pdu::verify_pdu(&pdu, &fedlab_keys()) {
        Verification::Valid => Outcome::Valid,
        Verification::HashMismatch { redacted } => {
            let expected =
                ruma::canonical_json::redact(to_ruma(event), &rules(version).redaction, None)
                    .unwrap();
            assert_eq!(redacted.json(), &from_ruma(&expected));
            Outcome::HashMismatch
        }
        Verification::BadSignature(_) => Outcome::BadSignature,
    }
}

fn ruma_outcome(event: &Map<String, Value>, version: &RoomVersion) -> Outcome {
    match ruma::signatures::verify_event(&ruma_keys(), &to_ruma(event), &rules(version)) {
        Ok(Verified::All) => Outcome::Valid,
        Ok(Verified::Signatures) => Outcome::HashMismatch,
        Err(_) => Outcome::BadSignature,
    }
}

// ---- properties --------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn content_hash_agrees(event in loose_event(), version in version()) {
        let ours = pdu::content_hash(&event, version.numbers()).unwrap();
        let theirs = ruma::signatures::content_hash(&to_ruma(&event)).unwrap();
        prop_assert_eq!(&ours[..], theirs.as_bytes());
    }

    #[test]
    fn redaction_agrees(event in loose_event(), version in version()) {
        let ours = pdu::redact(&event, version).unwrap();
        let theirs = ruma::canonical_json::redact(to_ruma(&event), &rules(version).redaction, None).unwrap();
        let mut theirs = from_ruma(&theirs);
        if is_known_divergence(&event, version) {
            let kept = theirs["content"].as_object_mut().unwrap().remove("third_party_invite");
            prop_assert_eq!(kept.as_ref(), event["content"].get("third_party_invite"));
            prop_assert!(ours["content"].get("third_party_invite").is_none());
        }
        prop_assert_eq!(ours, theirs);
    }

    #[test]
    fn reference_hash_and_event_id_agree(event in loose_event(), version in version()) {
        let ours = pdu::reference_hash_base64(&event, version).unwrap();
        let theirs = ruma::signatures::reference_hash(&to_ruma(&event), &rules(version)).unwrap();
        if is_known_divergence(&event, version) {
            prop_assert_ne!(ours, theirs);
        } else {
            prop_assert_eq!(&ours, &theirs);
            if !version.event_ids_in_events() {
                prop_assert_eq!(pdu::event_id(&event, version).unwrap(), format!("${theirs}"));
            }
        }
    }

    #[test]
    fn signing_agrees((version, event) in versioned_valid_event()) {
        let ours = sign_with_fedlab(&event, version);
        let theirs = sign_with_ruma(&event, version);
        prop_assert_eq!(&ours, &theirs);
        // And the events are valid for both.
        prop_assert_eq!(fedlab_outcome(&ours, version), Outcome::Valid);
        prop_assert_eq!(ruma_outcome(&ours, version), Outcome::Valid);
        let pdu = Pdu::from_json(ours.clone(), version).unwrap();
        let ruma_id = ruma::signatures::reference_hash(&to_ruma(&ours), &rules(version)).unwrap();
        if version.event_ids_in_events() {
            prop_assert_eq!(pdu.event_id(), ours["event_id"].as_str().unwrap());
        } else {
            prop_assert_eq!(pdu.event_id(), format!("${ruma_id}"));
        }
    }

    #[test]
    fn tampering_gets_the_same_verdict(
        (version, event) in versioned_valid_event(),
        tamper_key in prop::sample::select(&["content.zz_added", "content.membership", "depth", "origin_server_ts", "unsigned", "origin", "signature", "hashes"][..]),
    ) {
        // Where ruma demands the authorising server's signature on receipt, the verdicts differ
        // on purpose: see `ruma_demands_the_authorising_server_signature_on_receipt`.
        prop_assume!(
            !(version.restricted_join_rule
                && event["content"].get("join_authorised_via_users_server").is_some())
        );
        let mut signed = sign_with_fedlab(&event, version);
        match tamper_key {
            "content.zz_added" => { signed["content"].as_object_mut().unwrap().insert("zz_added".into(), json!(1)); }
            "content.membership" => { signed["content"].as_object_mut().unwrap().insert("membership".into(), json!("ban")); }
            "depth" => { signed.insert("depth".into(), json!(event["depth"].as_u64().unwrap() + 1)); }
            "origin_server_ts" => { signed.insert("origin_server_ts".into(), json!(7)); }
            "unsigned" => { signed.insert("unsigned".into(), json!({"age": 5})); }
            "origin" => { signed.insert("origin".into(), json!("tampered.example")); }
            "signature" => {
                let sender_server = server_of(event["sender"].as_str().unwrap());
                signed["signatures"].as_object_mut().unwrap().remove(&sender_server);
            }
            "hashes" => { signed.insert("hashes".into(), json!({"sha256": "AAAA"})); }
            _ => unreachable!(),
        }
        let ours = fedlab_outcome(&signed, version);
        let theirs = ruma_outcome(&signed, version);
        prop_assert_eq!(ours, theirs);
    }
}

// ---- where ruma and the spec differ --------------------------------------------------------

/// Spec (rooms v11+): an `m.room.member` event keeps only "the `signed` key of the
/// `third_party_invite` key". A `third_party_invite` that is not an object has no such key, so
/// fedlab drops it; ruma keeps it whole.
#[test]
fn ruma_keeps_a_non_object_third_party_invite_through_v11_redaction() {
    let event = json!({"type": "m.room.member", "content": {"membership": "invite", "third_party_invite": "x"}});
    let event = event.as_object().unwrap().clone();
    let version = &ALL[10];
    let ours = pdu::redact(&event, version).unwrap();
    let theirs = from_ruma(
        &ruma::canonical_json::redact(to_ruma(&event), &rules(version).redaction, None).unwrap(),
    );
    assert_eq!(
        Value::Object(ours),
        json!({"type": "m.room.member", "content": {"membership": "invite"}})
    );
    assert_eq!(
        Value::Object(theirs),
        json!({"type": "m.room.member", "content": {"membership": "invite", "third_party_invite": "x"}})
    );
}

/// Spec: on receipt only the sender's server (and in v1/v2 the event id's) must have signed;
/// the signature of the `join_authorised_via_users_server` user's server is authorization rule
/// 4.2 of `m.room.member` events, so its absence rejects the event instead of dropping it.
/// ruma's `verify_event` demands it on receipt, for any event type.
#[test]
fn ruma_demands_the_authorising_server_signature_on_receipt() {
    let version = &ALL[8];
    let event = json!({
        "type": "m.room.member", "state_key": "@alice:example.org", "sender": "@alice:example.org",
        "room_id": "!room:example.org", "content": {"membership": "join",
            "join_authorised_via_users_server": "@admin:other.example:8448"},
        "prev_events": [], "auth_events": [], "depth": 5, "origin_server_ts": 10,
    });
    let mut event = event.as_object().unwrap().clone();
    pdu::hash_and_sign_event(
        &mut event,
        version,
        "example.org",
        &fedlab_key("example.org"),
    )
    .unwrap();
    let pdu = Pdu::from_json(event.clone(), version).unwrap();
    assert_eq!(pdu::verify_pdu(&pdu, &fedlab_keys()), Verification::Valid);
    assert_eq!(
        pdu::check_authorising_server_signature(&pdu, &fedlab_keys()),
        Err(SignatureFailure::Missing {
            server: "other.example:8448".into()
        })
    );
    assert!(
        ruma::signatures::verify_event(&ruma_keys(), &to_ruma(&event), &rules(version)).is_err()
    );

    // On a message event the key means nothing to the spec; ruma still requires the signature.
    let mut message = event.clone();
    message.insert("type".into(), json!("m.room.message"));
    message.remove("state_key");
    message.insert("signatures".into(), json!({}));
    pdu::hash_and_sign_event(
        &mut message,
        version,
        "example.org",
        &fedlab_key("example.org"),
    )
    .unwrap();
    let message_pdu = Pdu::from_json(message.clone(), version).unwrap();
    assert_eq!(
        pdu::verify_pdu(&message_pdu, &fedlab_keys()),
        Verification::Valid
    );
    assert_eq!(
        pdu::check_authorising_server_signature(&message_pdu, &fedlab_keys()),
        Ok(())
    );
    assert!(
        ruma::signatures::verify_event(&ruma_keys(), &to_ruma(&message), &rules(version)).is_err()
    );
}

/// The size limit is 65,536 bytes (the spec fixed an earlier 65,535 in v1.1); ruma's hash
/// functions still stop at 65,535 bytes of the hashed form.
#[test]
fn ruma_refuses_to_hash_65536_bytes() {
    let mut event = json!({"type": "m.room.message", "content": {}})
        .as_object()
        .unwrap()
        .clone();
    let overhead = serde_json::to_string(&event).unwrap().len() + r#","pad":"""#.len();
    event.insert("pad".into(), json!("p".repeat(65_536 - overhead)));
    let canonical = fedlab::proto::canonical_json::object_to_canonical_bytes(
        &event,
        fedlab::proto::canonical_json::Numbers::Strict,
    )
    .unwrap();
    assert_eq!(canonical.len(), 65_536);
    assert!(pdu::content_hash(&event, fedlab::proto::canonical_json::Numbers::Strict).is_ok());
    assert!(ruma::signatures::content_hash(&to_ruma(&event)).is_err());
}
