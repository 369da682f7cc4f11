use super::*;
use crate::proto::room_version::{ALL, room_version};
use crate::proto::signing::{SigningKey, VerifyingKey};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

/// The key of the spec's appendix "Cryptographic Test Vectors".
fn spec_key() -> SigningKey {
    SigningKey::from_seed_base64("ed25519:1", "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1")
        .unwrap()
}

fn other_key() -> SigningKey {
    SigningKey::from_seed("ed25519:other", &[7; 32]).unwrap()
}

fn keys(entries: &[(&str, &SigningKey)]) -> BTreeMap<String, BTreeMap<String, VerifyingKey>> {
    let mut map: BTreeMap<String, BTreeMap<String, VerifyingKey>> = BTreeMap::new();
    for (server, key) in entries {
        map.entry(server.to_string())
            .or_default()
            .insert(key.key_id().to_owned(), key.verifying_key());
    }
    map
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

fn version(id: &str) -> &'static RoomVersion {
    room_version(id).unwrap()
}

/// Spec appendix, "Event Signing", first vector: a minimally-sized event.
#[test]
fn spec_vector_minimal_event() {
    let expected = json!({
        "auth_events": [], "content": {}, "depth": 3,
        "hashes": {"sha256": "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"},
        "origin": "domain", "origin_server_ts": 1000000, "prev_events": [],
        "room_id": "!x:domain", "sender": "@a:domain",
        "signatures": {"domain": {"ed25519:1":
            "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg"}},
        "type": "X", "unsigned": {"age_ts": 1000000}
    });
    // The vector predates room v11, which stopped protecting `origin`: every version up to
    // v10 must reproduce it exactly.
    for version in &ALL[..10] {
        let mut event = object(json!({
            "room_id": "!x:domain", "sender": "@a:domain", "origin": "domain",
            "origin_server_ts": 1000000, "signatures": {}, "hashes": {}, "type": "X",
            "content": {}, "prev_events": [], "auth_events": [], "depth": 3,
            "unsigned": {"age_ts": 1000000}
        }));
        hash_and_sign_event(&mut event, version, "domain", &spec_key()).unwrap();
        assert_eq!(
            Value::Object(event),
            expected,
            "room version {}",
            version.id
        );
    }
}

/// Spec appendix, "Event Signing", second vector: an event with redactable content.
#[test]
fn spec_vector_event_with_redactable_content() {
    let expected = json!({
        "content": {"body": "Here is the message content"}, "event_id": "$0:domain",
        "hashes": {"sha256": "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"},
        "origin": "domain", "origin_server_ts": 1000000, "type": "m.room.message",
        "room_id": "!r:domain", "sender": "@u:domain",
        "signatures": {"domain": {"ed25519:1":
            "Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eYHYMGCA5McEiVPdhzBA"}},
        "unsigned": {"age_ts": 1000000}
    });
    for version in &ALL[..10] {
        let mut event = object(json!({
            "content": {"body": "Here is the message content"}, "event_id": "$0:domain",
            "origin": "domain", "origin_server_ts": 1000000, "type": "m.room.message",
            "room_id": "!r:domain", "sender": "@u:domain", "signatures": {},
            "unsigned": {"age_ts": 1000000}
        }));
        hash_and_sign_event(&mut event, version, "domain", &spec_key()).unwrap();
        assert_eq!(
            Value::Object(event),
            expected,
            "room version {}",
            version.id
        );
    }
}

#[test]
fn v11_signs_without_origin() {
    let mut event = object(json!({
        "room_id": "!x:domain", "sender": "@a:domain", "origin": "domain",
        "origin_server_ts": 1000000, "type": "X", "content": {}, "prev_events": [],
        "auth_events": [], "depth": 3
    }));
    let mut v10 = event.clone();
    hash_and_sign_event(&mut v10, version("10"), "domain", &spec_key()).unwrap();
    hash_and_sign_event(&mut event, version("11"), "domain", &spec_key()).unwrap();
    assert_eq!(event["hashes"], v10["hashes"]);
    assert_ne!(event["signatures"], v10["signatures"]);
    // Removing `origin` leaves the v11 signature intact: it was never covered.
    event.remove("origin");
    let pdu = Pdu::from_json(event, version("11")).unwrap();
    let keys = keys(&[("domain", &spec_key())]);
    assert!(matches!(
        verify_pdu(&pdu, &keys),
        Verification::HashMismatch { .. }
    ));
}

#[test]
fn spec_vector_verifies_as_a_received_pdu() {
    let mut event = object(json!({
        "room_id": "!x:domain", "sender": "@a:domain", "origin": "domain",
        "origin_server_ts": 1000000, "type": "X", "content": {}, "prev_events": [],
        "auth_events": [], "depth": 3, "unsigned": {"age_ts": 1000000}
    }));
    hash_and_sign_event(&mut event, version("6"), "domain", &spec_key()).unwrap();
    let pdu = Pdu::from_json(event, version("6")).unwrap();
    assert_eq!(
        verify_pdu(&pdu, &keys(&[("domain", &spec_key())])),
        Verification::Valid
    );
    assert_eq!(pdu.event().room_id, "!x:domain");
    assert_eq!(pdu.event().depth, 3);
    assert_eq!(
        pdu.event_id(),
        format!(
            "${}",
            reference_hash_base64(pdu.json(), version("6")).unwrap()
        )
    );
}

fn new_event(
    version: &RoomVersion,
    event_type: &str,
    state_key: Option<&str>,
    content: Value,
) -> NewEvent {
    let room_id = if version.room_id_from_create_event {
        "!Nhcu5BS-UMnFX7hBVfVSoXiD7OgH6iRT-xyIuqDnpYQ"
    } else {
        "!room:example.org"
    };
    NewEvent {
        room_id: Some(room_id.to_owned()),
        sender: "@alice:example.org".to_owned(),
        event_type: event_type.to_owned(),
        state_key: state_key.map(str::to_owned),
        content: object(content),
        prev_events: vec![],
        auth_events: vec![],
        depth: 1,
        origin_server_ts: 1_700_000_000_000,
        redacts: None,
        event_id_opaque: None,
    }
}

fn build(new: NewEvent, version: &'static RoomVersion) -> Pdu {
    build_pdu(new, version, "example.org", &spec_key()).unwrap()
}

fn example_keys() -> BTreeMap<String, BTreeMap<String, VerifyingKey>> {
    keys(&[("example.org", &spec_key())])
}

#[test]
fn built_pdus_verify_in_every_version() {
    for version in ALL.iter() {
        let message = build(
            new_event(version, "m.room.message", None, json!({"body": "hi"})),
            version,
        );
        assert_eq!(
            verify_pdu(&message, &example_keys()),
            Verification::Valid,
            "v{}",
            version.id
        );
        let mut next = new_event(version, "m.room.message", None, json!({"body": "again"}));
        next.prev_events = vec![message.as_reference()];
        next.auth_events = vec![message.as_reference()];
        next.depth = 2;
        let next = build(next, version);
        assert_eq!(
            next.event().prev_events,
            vec![message.event_id().to_owned()]
        );
        assert_eq!(verify_pdu(&next, &example_keys()), Verification::Valid);
        if version.event_ids_in_events() {
            assert!(next.event_id().ends_with(":example.org"));
            let pair = &next.json()["prev_events"][0];
            assert_eq!(pair[0], json!(message.event_id()));
            assert_eq!(
                pair[1]["sha256"],
                json!(reference_hash_base64(message.json(), version).unwrap())
            );
        } else {
            assert_eq!(next.json()["prev_events"], json!([message.event_id()]));
            assert!(next.json().get("event_id").is_none());
        }
        // The same fields give the same event, so the same id, in every version.
        let again = build(
            new_event(version, "m.room.message", None, json!({"body": "hi"})),
            version,
        );
        assert_eq!(again.event_id(), message.event_id());
    }
}

#[test]
fn v12_create_event_has_no_room_id_and_names_the_room() {
    let v12 = version("12");
    let mut create = new_event(
        v12,
        "m.room.create",
        Some(""),
        json!({"room_version": "12"}),
    );
    create.room_id = None;
    let pdu = build(create.clone(), v12);
    assert!(pdu.json().get("room_id").is_none());
    assert_eq!(pdu.event().room_id, format!("!{}", &pdu.event_id()[1..]));
    assert_eq!(
        pdu.event().room_id,
        room_id_of_create_event(pdu.json(), v12).unwrap()
    );
    assert_eq!(verify_pdu(&pdu, &example_keys()), Verification::Valid);
    // Naming a room id is left to the authorization rules when received, refused when built.
    create.room_id = Some(pdu.event().room_id.clone());
    assert!(matches!(
        build_pdu(create, v12, "example.org", &spec_key())
            .unwrap_err()
            .problem,
        PduProblem::Unexpected { .. }
    ));
    // Other events of a v12 room need a room id, and a hash-shaped one.
    let mut message = new_event(v12, "m.room.message", None, json!({}));
    message.room_id = None;
    assert_eq!(
        build_pdu(message.clone(), v12, "example.org", &spec_key())
            .unwrap_err()
            .problem,
        PduProblem::missing("room_id")
    );
    message.room_id = Some("!room:example.org".into());
    let error = build_pdu(message, v12, "example.org", &spec_key()).unwrap_err();
    assert!(
        matches!(error.problem, PduProblem::BadId { ref field, .. } if field == "room_id"),
        "{error}"
    );
    // Before v12 a create event without a room id is malformed.
    let mut v11_create = new_event(version("11"), "m.room.create", Some(""), json!({}));
    v11_create.room_id = None;
    assert!(build_pdu(v11_create, version("11"), "example.org", &spec_key()).is_err());
}

#[test]
fn redacts_lives_top_level_until_v10_and_in_content_from_v11() {
    for version in ALL.iter() {
        let mut redaction = new_event(version, "m.room.redaction", None, json!({"reason": "spam"}));
        let target = if version.event_ids_in_events() {
            "$target:example.org".to_owned()
        } else {
            format!("${}", "A".repeat(43))
        };
        redaction.redacts = Some(target.clone());
        let pdu = build(redaction, version);
        assert_eq!(pdu.event().redacts.as_deref(), Some(target.as_str()));
        let redacted = pdu.redacted();
        assert_eq!(redacted.event_id(), pdu.event_id());
        if version.redacts_in_content {
            assert_eq!(pdu.json()["content"]["redacts"], json!(target));
            assert!(pdu.json().get("redacts").is_none());
            // v11 keeps `content.redacts` through redaction.
            assert_eq!(redacted.event().redacts.as_deref(), Some(target.as_str()));
        } else {
            assert_eq!(pdu.json()["redacts"], json!(target));
            assert!(pdu.json()["content"].get("redacts").is_none());
            // Before v11 a redacted redaction no longer says what it redacts.
            assert_eq!(redacted.event().redacts, None);
        }
        assert_eq!(redacted.event().content.get("reason"), None);
    }
}

/// A valid v6 message PDU to break in the format tests.
fn valid_v6() -> Map<String, Value> {
    build(
        new_event(version("6"), "m.room.message", None, json!({"body": "hi"})),
        version("6"),
    )
    .json()
    .clone()
}

fn problem_in(version_id: &str, json: Map<String, Value>) -> PduProblem {
    Pdu::from_json(json, version(version_id))
        .unwrap_err()
        .problem
}

fn with(mut json: Map<String, Value>, key: &str, value: Value) -> Map<String, Value> {
    json.insert(key.to_owned(), value);
    json
}

fn without(mut json: Map<String, Value>, key: &str) -> Map<String, Value> {
    json.remove(key);
    json
}

#[test]
fn format_requires_the_base_keys() {
    for key in [
        "sender",
        "origin_server_ts",
        "type",
        "content",
        "depth",
        "hashes",
        "signatures",
        "prev_events",
        "auth_events",
        "room_id",
    ] {
        assert_eq!(
            problem_in("6", without(valid_v6(), key)),
            PduProblem::missing(key),
            "{key}"
        );
    }
    assert_eq!(
        problem_in("6", with(valid_v6(), "hashes", json!({}))),
        PduProblem::missing("hashes.sha256")
    );
    assert_eq!(
        problem_in("6", with(valid_v6(), "type", json!(1))),
        PduProblem::wrong_type("type", "a string")
    );
    assert_eq!(
        problem_in("6", with(valid_v6(), "content", json!([]))),
        PduProblem::wrong_type("content", "an object")
    );
    assert_eq!(
        problem_in("6", with(valid_v6(), "unsigned", json!(3))),
        PduProblem::wrong_type("unsigned", "an object")
    );
    assert_eq!(
        problem_in("6", with(valid_v6(), "state_key", json!(null))),
        PduProblem::wrong_type("state_key", "a string")
    );
    assert_eq!(
        problem_in(
            "6",
            with(valid_v6(), "signatures", json!({"x": {"ed25519:1": 5}}))
        ),
        PduProblem::wrong_type("signatures.x.ed25519:1", "a string")
    );
    assert_eq!(
        problem_in("6", with(valid_v6(), "origin_server_ts", json!(-1))),
        PduProblem::wrong_type("origin_server_ts", "a non-negative integer")
    );
    assert!(matches!(
        problem_in("6", with(valid_v6(), "sender", json!("alice"))),
        PduProblem::BadId { ref field, .. } if field == "sender"
    ));
    // Historical localparts are accepted from other servers.
    assert!(
        Pdu::from_json(
            with(valid_v6(), "sender", json!("@Alice Smith:example.org")),
            version("6")
        )
        .is_ok()
    );
}

#[test]
fn format_limits_sizes_and_counts() {
    let long = "x".repeat(256);
    assert_eq!(
        problem_in("6", with(valid_v6(), "type", json!(long))),
        PduProblem::TooLong {
            field: "type".into(),
            bytes: 256,
            max: 255
        }
    );
    assert_eq!(
        problem_in("6", with(valid_v6(), "state_key", json!(long))),
        PduProblem::TooLong {
            field: "state_key".into(),
            bytes: 256,
            max: 255
        }
    );
    let ids: Vec<String> = (0..21).map(|i| format!("${:A>43}", i)).collect();
    assert_eq!(
        problem_in("6", with(valid_v6(), "prev_events", json!(ids))),
        PduProblem::TooMany {
            field: "prev_events".into(),
            count: 21,
            max: 20
        }
    );
    assert_eq!(
        problem_in("6", with(valid_v6(), "auth_events", json!(ids[..11]))),
        PduProblem::TooMany {
            field: "auth_events".into(),
            count: 11,
            max: 10
        }
    );
    assert!(matches!(
        problem_in("6", with(valid_v6(), "prev_events", json!(["$short"]))),
        PduProblem::BadId { ref field, .. } if field == "prev_events.0"
    ));
    // 65,536 bytes of canonical JSON is the most a PDU may have.
    let base = valid_v6();
    let base_bytes = object_to_canonical_bytes(&base, Numbers::Strict)
        .unwrap()
        .len();
    let padding_overhead = r#","pad":"""#.len();
    let fits = with(
        base.clone(),
        "pad",
        json!("p".repeat(PDU_BYTES_MAX - base_bytes - padding_overhead)),
    );
    assert_eq!(
        object_to_canonical_bytes(&fits, Numbers::Strict)
            .unwrap()
            .len(),
        PDU_BYTES_MAX
    );
    assert!(Pdu::from_json(fits, version("6")).is_ok());
    let too_big = with(
        base,
        "pad",
        json!("p".repeat(PDU_BYTES_MAX - base_bytes - padding_overhead + 1)),
    );
    assert_eq!(
        problem_in("6", too_big),
        PduProblem::TooLarge {
            bytes: PDU_BYTES_MAX + 1,
            max: PDU_BYTES_MAX
        }
    );
}

#[test]
fn depth_range_and_strict_numbers_from_v6() {
    let v5 = with(valid_v6(), "depth", json!(DEPTH_MAX_BEFORE_V6));
    assert_eq!(
        Pdu::from_json(v5.clone(), version("5"))
            .unwrap()
            .event()
            .depth,
        DEPTH_MAX_BEFORE_V6
    );
    assert!(matches!(problem_in("6", v5), PduProblem::CanonicalJson(_)));
    assert!(
        Pdu::from_json(
            with(valid_v6(), "depth", json!(DEPTH_MAX_FROM_V6)),
            version("6")
        )
        .is_ok()
    );
    assert_eq!(
        problem_in("5", with(valid_v6(), "depth", json!(u64::MAX))),
        PduProblem::DepthOutOfRange {
            depth: u64::MAX.to_string(),
            max: DEPTH_MAX_BEFORE_V6
        }
    );
    assert_eq!(
        problem_in("6", with(valid_v6(), "depth", json!(-1))),
        PduProblem::DepthOutOfRange {
            depth: "-1".into(),
            max: DEPTH_MAX_FROM_V6
        }
    );
    assert_eq!(
        problem_in("6", with(valid_v6(), "depth", json!("1"))),
        PduProblem::wrong_type("depth", "an integer")
    );
    // Floats in content: tolerated before v6, invalid from v6 on, with the path named.
    let float = with(valid_v6(), "content", json!({"w": 1.5}));
    assert!(Pdu::from_json(float.clone(), version("5")).is_ok());
    let error = Pdu::from_json(float, version("6")).unwrap_err();
    assert!(error.to_string().contains("content.w"), "{error}");
    assert!(
        error.event_id.is_some(),
        "a v6 event id can be named even for a malformed event"
    );
}

#[test]
fn event_format_v1_uses_pairs_and_carries_its_id() {
    let v1 = version("1");
    let pdu = build(new_event(v1, "m.room.message", None, json!({})), v1);
    let json = pdu.json().clone();
    assert_eq!(
        problem_in("1", without(json.clone(), "event_id")),
        PduProblem::missing("event_id")
    );
    assert_eq!(
        problem_in(
            "1",
            with(json.clone(), "prev_events", json!(["$a:example.org"]))
        ),
        PduProblem::wrong_type("prev_events.0", "an [event id, {hashes}] pair")
    );
    let with_pair = with(json.clone(), "prev_events", json!([["$a:example.org", {}]]));
    assert_eq!(
        Pdu::from_json(with_pair, v1).unwrap().event().prev_events,
        vec!["$a:example.org"]
    );
    assert_eq!(
        problem_in(
            "3",
            with(json.clone(), "prev_events", json!([["$a:example.org", {}]]))
        ),
        PduProblem::wrong_type("prev_events.0", "an event id string")
    );
    let error = Pdu::from_json(with(json, "depth", json!(-5)), v1).unwrap_err();
    assert_eq!(error.event_id.as_deref(), Some(pdu.event_id()));
    assert!(
        error
            .to_string()
            .starts_with(&format!("event {}: `depth` -5", pdu.event_id()))
    );
}

#[test]
fn parse_reports_syntax_and_shape() {
    assert!(matches!(
        Pdu::parse("{", version("11")).unwrap_err().problem,
        PduProblem::Syntax(_)
    ));
    assert_eq!(
        Pdu::parse("[]", version("11")).unwrap_err().problem,
        PduProblem::NotAnObject
    );
    let text = serde_json::to_string(&valid_v6()).unwrap();
    assert_eq!(Pdu::parse(&text, version("6")).unwrap().json(), &valid_v6());
}

#[test]
fn tampering_is_dropped_or_redacted() {
    let pdu = build(
        new_event(version("11"), "m.room.message", None, json!({"body": "hi"})),
        version("11"),
    );
    // Changing what redaction strips breaks only the content hash: keep, redacted.
    let tampered = Pdu::from_json(
        with(pdu.json().clone(), "content", json!({"body": "evil"})),
        version("11"),
    )
    .unwrap();
    assert_eq!(tampered.event_id(), pdu.event_id());
    match verify_pdu(&tampered, &example_keys()) {
        Verification::HashMismatch { redacted } => {
            assert_eq!(redacted.event().content, Map::new());
            assert_eq!(redacted.event_id(), pdu.event_id());
        }
        other => panic!("expected a hash mismatch, got {other:?}"),
    }
    // Changing what it keeps breaks the signature: drop.
    let forged = Pdu::from_json(
        with(pdu.json().clone(), "origin_server_ts", json!(5)),
        version("11"),
    )
    .unwrap();
    assert_eq!(
        verify_pdu(&forged, &example_keys()),
        Verification::BadSignature(SignatureFailure::Invalid {
            server: "example.org".into(),
            key_id: "ed25519:1".into()
        })
    );
    // `unsigned` may change in transit.
    let aged = Pdu::from_json(
        with(pdu.json().clone(), "unsigned", json!({"age": 10})),
        version("11"),
    )
    .unwrap();
    assert_eq!(verify_pdu(&aged, &example_keys()), Verification::Valid);
}

#[test]
fn missing_and_unknown_keys() {
    let pdu = build(
        new_event(version("11"), "m.room.message", None, json!({})),
        version("11"),
    );
    let unsigned = Pdu::from_json(
        with(pdu.json().clone(), "signatures", json!({})),
        version("11"),
    )
    .unwrap();
    assert_eq!(
        verify_pdu(&unsigned, &example_keys()),
        Verification::BadSignature(SignatureFailure::Missing {
            server: "example.org".into()
        })
    );
    assert_eq!(
        verify_pdu(&pdu, &keys(&[])),
        Verification::BadSignature(SignatureFailure::NoKnownKey {
            server: "example.org".into()
        })
    );
    // Unknown algorithms and unknown keys are skipped; the known one still verifies.
    let mut extra = pdu.json().clone();
    extra["signatures"]["example.org"]
        .as_object_mut()
        .unwrap()
        .insert("curve25519:x".into(), json!("zzz"));
    extra["signatures"]["example.org"]
        .as_object_mut()
        .unwrap()
        .insert("ed25519:unknown".into(), json!("zzz"));
    let extra = Pdu::from_json(extra, version("11")).unwrap();
    assert_eq!(verify_pdu(&extra, &example_keys()), Verification::Valid);
    // The lookup is told the event's timestamp and whether validity periods apply.
    let expired = |query: &KeyQuery<'_>| {
        assert!(query.enforce_validity_period);
        (query.origin_server_ts < 1_000).then(|| spec_key().verifying_key())
    };
    assert_eq!(
        verify_pdu(&pdu, &expired),
        Verification::BadSignature(SignatureFailure::NoKnownKey {
            server: "example.org".into()
        })
    );
}

#[test]
fn v1_needs_the_event_id_server_too() {
    let v1 = version("1");
    let mut join = new_event(
        v1,
        "m.room.member",
        Some("@alice:example.org"),
        json!({"membership": "join"}),
    );
    join.event_id_opaque = Some("join".into());
    // Made by another server: the id names it, so its signature is required as well.
    let pdu = build_pdu(join, v1, "resident.org", &other_key()).unwrap();
    assert_eq!(pdu.event_id(), "$join:resident.org");
    assert_eq!(
        required_signers(&pdu),
        BTreeSet::from(["example.org".to_owned(), "resident.org".to_owned()])
    );
    assert_eq!(
        verify_pdu(&pdu, &keys(&[("resident.org", &other_key())])),
        Verification::BadSignature(SignatureFailure::Missing {
            server: "example.org".into()
        })
    );
    let mut both = pdu.json().clone();
    sign_event(&mut both, v1, "example.org", &spec_key()).unwrap();
    let both = Pdu::from_json(both, v1).unwrap();
    let all_keys = keys(&[("resident.org", &other_key()), ("example.org", &spec_key())]);
    assert_eq!(verify_pdu(&both, &all_keys), Verification::Valid);
    assert_eq!(required_signers(&both).len(), 2);
    let v3_join = build(
        new_event(
            version("3"),
            "m.room.member",
            Some("@alice:example.org"),
            json!({"membership": "join"}),
        ),
        version("3"),
    );
    assert_eq!(
        required_signers(&v3_join),
        BTreeSet::from(["example.org".to_owned()])
    );
}

#[test]
fn third_party_invites_do_not_need_the_senders_signature() {
    let invite = new_event(
        version("11"),
        "m.room.member",
        Some("@bob:elsewhere.org"),
        json!({"membership": "invite", "third_party_invite": {"signed": {"token": "t"}}}),
    );
    let pdu = build_pdu(invite, version("11"), "elsewhere.org", &other_key()).unwrap();
    assert!(required_signers(&pdu).is_empty());
    assert_eq!(verify_pdu(&pdu, &keys(&[])), Verification::Valid);
}

#[test]
fn join_authorised_via_users_server_is_an_authorization_check() {
    let content =
        json!({"membership": "join", "join_authorised_via_users_server": "@admin:resident.org"});
    for version in ALL.iter() {
        let join = new_event(
            version,
            "m.room.member",
            Some("@alice:example.org"),
            content.clone(),
        );
        let pdu = build(join, version);
        // Receipt needs only the sender's signature.
        assert_eq!(verify_pdu(&pdu, &example_keys()), Verification::Valid);
        let check = check_authorising_server_signature(&pdu, &example_keys());
        if version.restricted_join_rule {
            assert_eq!(
                authorising_server(&pdu),
                Some(Ok("resident.org".to_owned()))
            );
            assert_eq!(
                check,
                Err(SignatureFailure::Missing {
                    server: "resident.org".into()
                })
            );
            let mut signed = pdu.json().clone();
            sign_event(&mut signed, version, "resident.org", &other_key()).unwrap();
            let signed = Pdu::from_json(signed, version).unwrap();
            let keys = keys(&[("resident.org", &other_key())]);
            assert_eq!(check_authorising_server_signature(&signed, &keys), Ok(()));
        } else {
            assert_eq!(authorising_server(&pdu), None);
            assert_eq!(check, Ok(()));
        }
    }
    let bad = new_event(
        version("9"),
        "m.room.member",
        Some("@alice:example.org"),
        json!({"membership": "join", "join_authorised_via_users_server": 5}),
    );
    let bad = build(bad, version("9"));
    assert_eq!(
        check_authorising_server_signature(&bad, &example_keys()),
        Err(SignatureFailure::BadAuthorisingUser { value: "5".into() })
    );
}

#[test]
fn redacted_pdu_keeps_id_and_protected_content() {
    for version in ALL.iter() {
        let member = new_event(
            version,
            "m.room.member",
            Some("@alice:example.org"),
            json!({"membership": "join", "displayname": "Alice"}),
        );
        let pdu = build(member, version);
        let redacted = pdu.redacted();
        assert_eq!(redacted.event_id(), pdu.event_id());
        assert_eq!(redacted.event().membership(), Some("join"));
        assert_eq!(redacted.event().content.get("displayname"), None);
        assert_eq!(
            verify_pdu(&redacted, &example_keys()),
            Verification::HashMismatch {
                redacted: Box::new(redacted.redacted())
            }
        );
    }
}

mod mutations {
    //! The stable-toolchain companion of the `pdu` fuzz target: valid PDUs with random keys
    //! replaced or removed must never panic, and when they still parse, keep their invariants.
    use super::*;
    use proptest::prelude::*;

    const KEYS: [&str; 16] = [
        "type",
        "content",
        "sender",
        "room_id",
        "event_id",
        "state_key",
        "prev_events",
        "auth_events",
        "depth",
        "origin_server_ts",
        "hashes",
        "signatures",
        "unsigned",
        "redacts",
        "origin",
        "extra",
    ];

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|i| json!(i)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            "[@!$a-z0-9:.#\\[\\]]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(2, 12, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_]{1,4}", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn mutation() -> impl Strategy<Value = (usize, Option<Value>)> {
        (0..KEYS.len(), prop::option::of(json_value()))
    }

    proptest! {
        #[test]
        fn mutated_pdus_never_panic(
            version_index in 0..ALL.len(),
            event_type in prop::sample::select(&["m.room.message", "m.room.member", "m.room.create", "m.room.redaction"][..]),
            mutations in prop::collection::vec(mutation(), 1..4),
        ) {
            let version = &ALL[version_index];
            let mut new = new_event(version, event_type, Some(""), json!({"membership": "join", "body": "x"}));
            if event_type == "m.room.create" && version.room_id_from_create_event {
                new.room_id = None;
            }
            let mut json = build(new, version).json().clone();
            for (key_index, value) in mutations {
                match value {
                    Some(value) => json.insert(KEYS[key_index].to_owned(), value),
                    None => json.remove(KEYS[key_index]),
                };
            }
            let _ = redact(&json, version);
            let _ = content_hash(&json, version.numbers());
            match Pdu::from_json(json, version) {
                Ok(pdu) => {
                    let redacted = pdu.redacted();
                    prop_assert_eq!(redacted.event_id(), pdu.event_id());
                    let text = String::from_utf8(pdu.canonical_bytes()).unwrap();
                    let reparsed = Pdu::parse(&text, version).unwrap();
                    prop_assert_eq!(reparsed.event_id(), pdu.event_id());
                    let verdict = verify_pdu(&pdu, &example_keys());
                    let _ = check_authorising_server_signature(&pdu, &example_keys());
                    let _ = verdict;
                }
                Err(error) => prop_assert!(!error.to_string().is_empty()),
            }
        }
    }
}

/// Regression: without correctly rounded float parsing, the canonical form of a room v1-5
/// event holding `-5.4026721643851555e253` parsed back to a neighbouring float, so a receiver
/// computed another event id than the sender.
#[test]
fn floats_in_lenient_rooms_survive_a_round_trip() {
    let v3 = version("3");
    let mut json = build(new_event(v3, "m.room.message", None, json!({})), v3)
        .json()
        .clone();
    json.insert(
        "content".into(),
        json!({"f": -5.4026721643851555e253, "g": 0.1, "h": 1e-300}),
    );
    let pdu = Pdu::from_json(json, v3).unwrap();
    let text = String::from_utf8(pdu.canonical_bytes()).unwrap();
    let reparsed = Pdu::parse(&text, v3).unwrap();
    assert_eq!(reparsed.event_id(), pdu.event_id());
    assert_eq!(reparsed.json(), pdu.json());
}

/// A memoised verification is keyed by the answers to `signature_key_queries`; a query that
/// `verify_pdu` makes outside that list would make the memo unsound.
#[test]
fn verify_pdu_asks_only_the_listed_key_queries() {
    let mut event = object(json!({
        "room_id": "!x:domain", "sender": "@a:domain", "origin": "domain",
        "origin_server_ts": 1000000, "type": "X", "content": {}, "prev_events": [],
        "auth_events": [], "depth": 3
    }));
    hash_and_sign_event(&mut event, version("11"), "domain", &spec_key()).unwrap();
    hash_and_sign_event(&mut event, version("11"), "domain", &other_key()).unwrap();
    hash_and_sign_event(&mut event, version("11"), "elsewhere", &other_key()).unwrap();
    let pdu = Pdu::from_json(event, version("11")).unwrap();
    let listed = signature_key_queries(&pdu);
    assert_eq!(
        listed,
        [
            ("domain".to_owned(), "ed25519:1".to_owned()),
            ("domain".to_owned(), "ed25519:other".to_owned()),
        ]
    );
    let known = keys(&[("domain", &spec_key()), ("domain", &other_key())]);
    let asked = std::cell::RefCell::new(Vec::new());
    let recording = |query: &KeyQuery<'_>| {
        asked
            .borrow_mut()
            .push((query.server_name.to_owned(), query.key_id.to_owned()));
        known.verifying_key(query)
    };
    assert_eq!(verify_pdu(&pdu, &recording), Verification::Valid);
    assert!(
        asked.borrow().iter().all(|query| listed.contains(query)),
        "asked {:?}, listed {listed:?}",
        asked.borrow()
    );
}

#[test]
fn derived_text_and_canonical_length_follow_the_json() {
    let json = object(json!({
        "room_id": "!x:domain", "sender": "@a:domain", "origin_server_ts": 1000000,
        "signatures": {}, "hashes": {"sha256": "x"}, "type": "X", "depth": 3,
        "content": {"body": "é \u{1F600}", "b": 1, "a": [2, 1]}, "prev_events": [],
        "auth_events": []
    }));
    let pdu = Pdu::from_json(json.clone(), version("11")).unwrap();
    assert_eq!(pdu.canonical_len(), pdu.canonical_bytes().len());
    assert_eq!(pdu.canonical_len(), pdu.canonical_len(), "memoised");
    assert_eq!(pdu.json_text().get(), Value::Object(json).to_string());
}
