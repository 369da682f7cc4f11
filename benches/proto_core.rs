//! Costs of the protocol core on a typical PDU: a room v11 `m.room.message` with a short body,
//! three `prev_events` and four `auth_events`, about 1 KB of canonical JSON.
//!
//! Run: `cargo bench --bench proto_core` (add `-- --quick` for a short run).

use criterion::{Criterion, criterion_group, criterion_main};
use fedlab::proto::canonical_json::{Numbers, object_to_canonical_bytes};
use fedlab::proto::pdu::{self, EventRef, NewEvent, Pdu, Verification};
use fedlab::proto::room_version::{RoomVersion, room_version};
use fedlab::proto::signing::{SigningKey, VerifyingKey};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::hint::black_box;

const SERVER: &str = "example.org";

fn key() -> SigningKey {
    SigningKey::from_seed("ed25519:bench", &[42; 32]).expect("a valid key id")
}

fn keys() -> BTreeMap<String, BTreeMap<String, VerifyingKey>> {
    let key = key();
    BTreeMap::from([(
        SERVER.to_owned(),
        BTreeMap::from([(key.key_id().to_owned(), key.verifying_key())]),
    )])
}

fn reference(index: usize) -> EventRef {
    let hash =
        fedlab::proto::base64::encode(&[index as u8; 32], fedlab::proto::base64::Alphabet::UrlSafe);
    EventRef::from(format!("${hash}"))
}

fn typical_event() -> NewEvent {
    let content = json!({
        "msgtype": "m.text",
        "body": "The quick brown fox jumps over the lazy dog, then files a bug about federation.",
        "m.mentions": {"user_ids": ["@bob:other.example"]},
    });
    NewEvent {
        room_id: Some("!OGEhHVWSdvArJzumhm:example.org".to_owned()),
        sender: "@alice:example.org".to_owned(),
        event_type: "m.room.message".to_owned(),
        state_key: None,
        content: content.as_object().cloned().unwrap_or_default(),
        prev_events: (0..3).map(reference).collect(),
        auth_events: (3..7).map(reference).collect(),
        depth: 1234,
        origin_server_ts: 1_700_000_000_000,
        redacts: None,
        event_id_opaque: None,
    }
}

fn v11() -> &'static RoomVersion {
    room_version("11").expect("room version 11 exists")
}

fn typical_pdu() -> Pdu {
    pdu::build_pdu(typical_event(), v11(), SERVER, &key()).expect("the typical event builds")
}

fn unsigned_json() -> Map<String, Value> {
    let mut json = typical_pdu().json().clone();
    json.remove("signatures");
    json.remove("hashes");
    json
}

fn benches(c: &mut Criterion) {
    let pdu = typical_pdu();
    let text = String::from_utf8(pdu.canonical_bytes()).expect("canonical JSON is UTF-8");
    let keys = keys();
    let key = key();
    eprintln!("typical PDU: {} bytes of canonical JSON", text.len());

    c.bench_function("canonical_json/typical_pdu", |b| {
        b.iter(|| object_to_canonical_bytes(black_box(pdu.json()), Numbers::Strict))
    });
    c.bench_function("content_hash/typical_pdu", |b| {
        b.iter(|| pdu::content_hash(black_box(pdu.json()), Numbers::Strict))
    });
    c.bench_function("event_id/typical_pdu", |b| {
        b.iter(|| pdu::event_id(black_box(pdu.json()), v11()))
    });
    c.bench_function("parse/typical_pdu", |b| {
        b.iter(|| Pdu::parse(black_box(&text), v11()))
    });
    let unsigned = unsigned_json();
    c.bench_function("hash_and_sign/typical_pdu", |b| {
        b.iter(|| {
            let mut json = unsigned.clone();
            pdu::hash_and_sign_event(&mut json, v11(), SERVER, &key).map(|()| json)
        })
    });
    c.bench_function("verify/typical_pdu", |b| {
        b.iter(|| {
            let verdict = pdu::verify_pdu(black_box(&pdu), &keys);
            assert_eq!(verdict, Verification::Valid);
        })
    });
}

criterion_group!(proto_core, benches);
criterion_main!(proto_core);
