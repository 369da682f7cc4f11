//! PDU parsing on arbitrary text under any room version (the first byte picks it): never
//! panics; the raw-JSON functions (redaction, hashes, event ids) hold their invariants on any
//! object; a PDU that parses round-trips through its canonical bytes, redacts to a valid PDU
//! with the same id, and gets a verification verdict without keys that matches the servers it
//! needs.
#![no_main]

use fedlab::proto::pdu::{self, Pdu, Verification};
use fedlab::proto::room_version::{ALL, RoomVersion};
use fedlab::proto::signing::VerifyingKey;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

fn check_raw_object(object: &Map<String, Value>, version: &RoomVersion) {
    let _ = pdu::content_hash(object, version.numbers());
    let _ = pdu::event_id(object, version);
    let _ = pdu::check_format(object, version);
    let Ok(redacted) = pdu::redact(object, version) else {
        return;
    };
    let twice = pdu::redact(&redacted, version).expect("a redacted event redacts again");
    assert_eq!(twice, redacted, "redaction is not idempotent");
    if let (Ok(full), Ok(stripped)) = (
        pdu::reference_hash(object, version),
        pdu::reference_hash(&redacted, version),
    ) {
        assert_eq!(full, stripped, "redaction changed the reference hash");
    }
}

fn check_pdu(pdu: &Pdu, version: &'static RoomVersion) {
    let bytes = pdu.canonical_bytes();
    let text = std::str::from_utf8(&bytes).expect("canonical JSON is UTF-8");
    let reparsed = Pdu::parse(text, version).expect("the canonical form of a valid PDU is valid");
    assert_eq!(reparsed.event_id(), pdu.event_id());
    assert_eq!(reparsed.canonical_bytes(), bytes);

    let redacted = pdu.redacted();
    assert_eq!(redacted.event_id(), pdu.event_id());
    assert_eq!(redacted.event().room_id, pdu.event().room_id);

    let no_keys: BTreeMap<String, BTreeMap<String, VerifyingKey>> = BTreeMap::new();
    let verdict = pdu::verify_pdu(pdu, &no_keys);
    let needs_signatures = !pdu::required_signers(pdu).is_empty();
    assert_eq!(
        matches!(verdict, Verification::BadSignature(_)),
        needs_signatures,
        "a PDU that needs signatures verified without keys, or one that needs none failed"
    );
    let _ = pdu::check_authorising_server_signature(pdu, &no_keys);
    let _ = pdu.as_reference();
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let version = &ALL[usize::from(selector) % ALL.len()];
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if let Ok(Value::Object(object)) = serde_json::from_str::<Value>(text) {
        check_raw_object(&object, version);
    }
    match Pdu::parse(text, version) {
        Ok(pdu) => check_pdu(&pdu, version),
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
