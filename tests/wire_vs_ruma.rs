//! Differential tests of the signed federation objects against ruma's signatures crate.
//!
//! ruma's X-Matrix type lives in its federation API crate, which the enabled features do not
//! pull in; what both sides share is the signed JSON. So: key responses and request-signing
//! objects signed by fedlab verify with ruma, ruma's signatures verify with fedlab, and for the
//! same key both produce the same signature bytes (ed25519 is deterministic).

use fedlab::proto::server_keys::{OldVerifyKey, build_server_keys, verify_server_keys};
use fedlab::proto::signing::SigningKey;
use fedlab::proto::xmatrix::{HttpRequest, XMatrix, request_json};
use proptest::prelude::*;
use ruma::CanonicalJsonObject;
use ruma::serde::Base64;
use ruma::signatures::{Ed25519KeyPair, PublicKeyMap, sign_json, verify_json};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

const SEED: [u8; 32] = [42; 32];

fn fedlab_key(version: &str) -> SigningKey {
    SigningKey::from_seed(&format!("ed25519:{version}"), &SEED).unwrap()
}

/// The same key as [`fedlab_key`], as ruma holds it: a PKCS#8 v1 DER document around the seed.
fn ruma_key(version: &str) -> Ed25519KeyPair {
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&SEED);
    Ed25519KeyPair::from_der(&der, version.to_owned()).unwrap()
}

fn public_key_map(server: &str, version: &str) -> PublicKeyMap {
    let key = Base64::parse(fedlab_key(version).public_key_base64()).unwrap();
    BTreeMap::from([(
        server.to_owned(),
        BTreeMap::from([(format!("ed25519:{version}"), key)]),
    )])
}

fn to_ruma(object: &Map<String, Value>) -> CanonicalJsonObject {
    ruma::canonical_json::try_from_json_map(object.clone()).unwrap()
}

fn from_ruma(object: &CanonicalJsonObject) -> Value {
    serde_json::to_value(object).unwrap()
}

#[test]
fn key_response_signed_by_fedlab_verifies_with_ruma() {
    let old = BTreeMap::from([(
        "ed25519:0ld".to_owned(),
        OldVerifyKey {
            expired_ts: 1_532_645_052_628,
            key: fedlab_key("other").public_key_base64(),
        },
    )]);
    let keys = build_server_keys("a.example", &[fedlab_key("a1")], old, 1_652_262_000_000).unwrap();
    let object = keys.to_json_object();
    verify_json(&public_key_map("a.example", "a1"), &to_ruma(&object)).unwrap();
    let mut tampered = object;
    tampered.insert("valid_until_ts".into(), json!(1_652_262_000_001_u64));
    assert!(verify_json(&public_key_map("a.example", "a1"), &to_ruma(&tampered)).is_err());
}

#[test]
fn key_response_signed_by_ruma_verifies_with_fedlab() {
    let unsigned = json!({
        "server_name": "b.example",
        "verify_keys": {"ed25519:b1": {"key": fedlab_key("b1").public_key_base64()}},
        "valid_until_ts": 1_652_262_000_000_u64,
        "org.example.unknown_field": ["kept", "and", "signed"]
    });
    let mut object = to_ruma(unsigned.as_object().unwrap());
    sign_json("b.example", &ruma_key("b1"), &mut object).unwrap();
    let set = verify_server_keys(&from_ruma(&object), "b.example", 0).unwrap();
    assert_eq!(set.keys["ed25519:b1"].key, fedlab_key("b1").verifying_key());
}

#[test]
fn same_key_gives_the_same_key_response_signature() {
    let keys = build_server_keys("c.example", &[fedlab_key("c1")], BTreeMap::new(), 99).unwrap();
    let mut unsigned = keys.to_json_object();
    unsigned.remove("signatures");
    let mut object = to_ruma(&unsigned);
    sign_json("c.example", &ruma_key("c1"), &mut object).unwrap();
    assert_eq!(
        from_ruma(&object)["signatures"],
        json!({"c.example": {"ed25519:c1": keys.signatures["c.example"]["ed25519:c1"]}})
    );
}

/// Signs `request` both ways and checks that the signatures agree and verify across.
fn check_request_signature(request: &HttpRequest) -> Result<(), TestCaseError> {
    let (origin, destination) = ("origin.example:8448", "destination.example");
    let auth = XMatrix::sign(request, origin, destination, &fedlab_key("k")).unwrap();
    let mut object = to_ruma(&request_json(request, origin, destination));
    sign_json(origin, &ruma_key("k"), &mut object).unwrap();
    let ruma_signature = from_ruma(&object)["signatures"][origin]["ed25519:k"].clone();
    prop_assert_eq!(ruma_signature, json!(auth.signature()));
    verify_json(&public_key_map(origin, "k"), &object).unwrap();
    let header = XMatrix::parse(&auth.to_header_value()).unwrap();
    prop_assert!(
        header
            .verify(request, destination, &fedlab_key("k").verifying_key())
            .is_ok()
    );
    Ok(())
}

#[test]
fn request_signatures_match_ruma_for_spec_like_requests() {
    let body = json!({"origin": "origin.example:8448", "origin_server_ts": 1_234_567_890,
                      "pdus": [{"type": "m.room.message", "content": {"body": "日本語 \"q\""}}],
                      "edus": []});
    let put = HttpRequest {
        method: "PUT",
        uri: "/_matrix/federation/v1/send/S0meTransacti0nId",
        content: Some(&body),
    };
    check_request_signature(&put).unwrap();
    let get = HttpRequest {
        method: "GET",
        uri: "/_matrix/federation/v1/state_ids/%21r%3Aa?event_id=%24e",
        content: None,
    };
    check_request_signature(&get).unwrap();
}

/// JSON that canonical JSON accepts in strict mode (ruma refuses floats and large integers).
fn strict_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-(1_i64 << 53) + 1..(1_i64 << 53)).prop_map(|n| json!(n)),
        "\\PC{0,8}".prop_map(Value::String),
        "[\\x00-\\x1f\"\\\\]{0,4}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,6}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn request_signatures_match_ruma_for_arbitrary_bodies(
        body in prop::collection::btree_map("\\PC{0,6}", strict_json(), 0..4),
        uri in "/_matrix/[!-~]{0,24}",
    ) {
        let body = Value::Object(body.into_iter().collect());
        let request = HttpRequest { method: "POST", uri: &uri, content: Some(&body) };
        check_request_signature(&request)?;
    }
}
