//! A server's published signing keys (`GET /_matrix/key/v2/server`): building and signing the
//! response, checking one that a peer served, and deciding whether a key may verify a
//! signature.
//!
//! Checking works on the raw JSON object, not on the typed [`ServerKeys`]: the signature covers
//! every field the publisher wrote, including fields this crate does not know.
//!
//! Key validity follows the spec: keys in `verify_keys` are valid until `valid_until_ts`, but
//! never for more than [`KEY_VALIDITY_MS_MAX`] after the response was fetched; keys in
//! `old_verify_keys` are valid for events up to their `expired_ts` and never for requests. Room
//! versions 1 to 4 ignore `valid_until_ts` (see `RoomVersion::enforce_key_validity`); the
//! `expired_ts` of an old key holds in every version, as the spec's "Validating hashes and
//! signatures on received events" states without exception.
//!
//! Invariant: [`verify_server_keys`] returns a [`ServerKeySet`] only for a response whose every
//! ed25519 verify key signed it, under the server name the caller asked for.

use crate::proto::canonical_json::Numbers;
use crate::proto::room_version::RoomVersion;
use crate::proto::signing::{
    ED25519, SigningError, SigningKey, VerifyingKey, check_key_id, signing_bytes, verify_json,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The spec's cap on how long a fetched key stays valid: "the lesser of `valid_until_ts` and
/// 7 days into the future", counted from when the response was fetched.
pub const KEY_VALIDITY_MS_MAX: u64 = 7 * 24 * 60 * 60 * 1000;

/// The body of `GET /_matrix/key/v2/server`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerKeys {
    pub server_name: String,
    /// Current keys, by key id (`ed25519:<version>`).
    pub verify_keys: BTreeMap<String, VerifyKey>,
    /// Keys the server used to use, by key id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub old_verify_keys: BTreeMap<String, OldVerifyKey>,
    /// Server name -> key id -> unpadded base64 signature.
    pub signatures: BTreeMap<String, BTreeMap<String, String>>,
    /// When the list of keys should be refreshed, in milliseconds since the Unix epoch.
    pub valid_until_ts: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyKey {
    /// Unpadded base64 of the ed25519 public key.
    pub key: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OldVerifyKey {
    /// When the server stopped using this key, in milliseconds since the Unix epoch.
    pub expired_ts: u64,
    /// Unpadded base64 of the ed25519 public key.
    pub key: String,
}

/// Why a key response cannot be built or trusted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServerKeysError {
    #[error("key response is malformed: {0}")]
    Malformed(String),
    #[error("key response is for server {found:?}, but {expected:?} was asked")]
    ServerNameMismatch { expected: String, found: String },
    #[error("key {key_id:?} of the key response is unusable: {source}")]
    BadKey {
        key_id: String,
        source: SigningError,
    },
    #[error("key {key_id:?} is listed in both verify_keys and old_verify_keys")]
    KeyListedTwice { key_id: String },
    #[error("key response lists no ed25519 verify key, so nothing can sign it")]
    NoVerifyKeys,
    #[error("key response cannot be signed: {0}")]
    Unsignable(SigningError),
    #[error("key response is not properly self-signed by {key_id:?}: {source}")]
    SelfSignature {
        key_id: String,
        source: SigningError,
    },
}

/// Why a key cannot verify a signature.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyValidityError {
    #[error("server {server} has no key {key_id}")]
    UnknownKey { server: String, key_id: String },
    #[error(
        "key {key_id} of {server} expired at {expired_ts}, before the event's timestamp {origin_server_ts}"
    )]
    Expired {
        server: String,
        key_id: String,
        expired_ts: u64,
        origin_server_ts: u64,
    },
    #[error("key {key_id} of {server} is valid until {valid_until_ts}, not at {at_ts}")]
    PastValidUntil {
        server: String,
        key_id: String,
        valid_until_ts: u64,
        at_ts: u64,
    },
    #[error("key {key_id} of {server} is an old key; old keys cannot sign requests")]
    OldKeyForRequest { server: String, key_id: String },
}

/// Builds the key response of `server_name` and signs it with every current key.
///
/// `valid_until_ts` comes from the caller's clock; `old_verify_keys` lists retired keys.
pub fn build_server_keys(
    server_name: &str,
    current_keys: &[SigningKey],
    old_verify_keys: BTreeMap<String, OldVerifyKey>,
    valid_until_ts: u64,
) -> Result<ServerKeys, ServerKeysError> {
    if current_keys.is_empty() {
        return Err(ServerKeysError::NoVerifyKeys);
    }
    for (key_id, old) in &old_verify_keys {
        parse_key(key_id, &old.key)?;
        if current_keys.iter().any(|key| key.key_id() == key_id) {
            return Err(ServerKeysError::KeyListedTwice {
                key_id: key_id.clone(),
            });
        }
    }
    let verify_keys = current_keys
        .iter()
        .map(|key| {
            let public = VerifyKey {
                key: key.public_key_base64(),
            };
            (key.key_id().to_owned(), public)
        })
        .collect();
    let mut keys = ServerKeys {
        server_name: server_name.to_owned(),
        verify_keys,
        old_verify_keys,
        signatures: BTreeMap::new(),
        valid_until_ts,
    };
    let bytes = signing_bytes(&keys.to_json_object(), Numbers::Strict)
        .map_err(ServerKeysError::Unsignable)?;
    let own_signatures = current_keys
        .iter()
        .map(|key| (key.key_id().to_owned(), key.sign_bytes(&bytes)))
        .collect();
    keys.signatures
        .insert(server_name.to_owned(), own_signatures);
    Ok(keys)
}

impl ServerKeys {
    pub fn to_json_object(&self) -> Map<String, Value> {
        match serde_json::to_value(self).expect("strings, integers and maps always serialize") {
            Value::Object(object) => object,
            _ => unreachable!("a struct serializes to an object"),
        }
    }
}

/// One current or old key, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownKey {
    pub key: VerifyingKey,
    /// `None` for a key in `verify_keys`; the `expired_ts` of a key in `old_verify_keys`.
    pub expired_ts: Option<u64>,
}

/// The keys of one server from a checked key response, and when it was fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerKeySet {
    pub server_name: String,
    /// Every ed25519 key by key id; keys of other algorithms are left out.
    pub keys: BTreeMap<String, KnownKey>,
    /// As published.
    pub valid_until_ts: u64,
    /// When the caller fetched the response, by its own clock.
    pub fetched_at_ts: u64,
}

/// Checks a key response served by a peer: its shape, that it is for `expected_server_name`,
/// that its keys decode, and that every ed25519 verify key signed it.
pub fn verify_server_keys(
    response: &Value,
    expected_server_name: &str,
    fetched_at_ts: u64,
) -> Result<ServerKeySet, ServerKeysError> {
    let object = response
        .as_object()
        .ok_or_else(|| ServerKeysError::Malformed("not a JSON object".to_owned()))?;
    let parsed = ServerKeys::deserialize(response)
        .map_err(|error| ServerKeysError::Malformed(error.to_string()))?;
    if parsed.server_name != expected_server_name {
        return Err(ServerKeysError::ServerNameMismatch {
            expected: expected_server_name.to_owned(),
            found: parsed.server_name,
        });
    }
    let mut keys = BTreeMap::new();
    for (key_id, verify_key) in ed25519_entries(&parsed.verify_keys) {
        let key = parse_key(key_id, &verify_key.key)?;
        verify_json(object, &parsed.server_name, key_id, &key, Numbers::Strict).map_err(
            |source| ServerKeysError::SelfSignature {
                key_id: key_id.clone(),
                source,
            },
        )?;
        keys.insert(
            key_id.clone(),
            KnownKey {
                key,
                expired_ts: None,
            },
        );
    }
    if keys.is_empty() {
        return Err(ServerKeysError::NoVerifyKeys);
    }
    for (key_id, old) in ed25519_entries(&parsed.old_verify_keys) {
        let known = KnownKey {
            key: parse_key(key_id, &old.key)?,
            expired_ts: Some(old.expired_ts),
        };
        if keys.insert(key_id.clone(), known).is_some() {
            return Err(ServerKeysError::KeyListedTwice {
                key_id: key_id.clone(),
            });
        }
    }
    Ok(ServerKeySet {
        server_name: parsed.server_name,
        keys,
        valid_until_ts: parsed.valid_until_ts,
        fetched_at_ts,
    })
}

/// The entries whose algorithm is ed25519, the only one Matrix defines; a key of an algorithm
/// this crate does not know can verify nothing here, so it is skipped rather than refused.
fn ed25519_entries<T>(map: &BTreeMap<String, T>) -> impl Iterator<Item = (&String, &T)> {
    map.iter().filter(|(key_id, _)| {
        key_id.split_once(':').map(|(algorithm, _)| algorithm) == Some(ED25519)
    })
}

fn parse_key(key_id: &str, key_base64: &str) -> Result<VerifyingKey, ServerKeysError> {
    let bad = |source| ServerKeysError::BadKey {
        key_id: key_id.to_owned(),
        source,
    };
    check_key_id(key_id).map_err(bad)?;
    VerifyingKey::from_base64(key_base64).map_err(bad)
}

/// The times that bound the use of a fetched key response: when it was published valid until,
/// and when the caller fetched it. Separate from the keys so that servers holding the same keys
/// from different fetches can share the keys and keep their own times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyTimes {
    /// As published.
    pub valid_until_ts: u64,
    /// When the caller fetched the response, by its own clock.
    pub fetched_at_ts: u64,
}

impl KeyTimes {
    /// `valid_until_ts`, capped at [`KEY_VALIDITY_MS_MAX`] after the fetch.
    pub fn effective_valid_until_ts(&self) -> u64 {
        self.valid_until_ts
            .min(self.fetched_at_ts.saturating_add(KEY_VALIDITY_MS_MAX))
    }
}

impl ServerKeySet {
    /// The times of this set's fetch.
    pub fn times(&self) -> KeyTimes {
        KeyTimes {
            valid_until_ts: self.valid_until_ts,
            fetched_at_ts: self.fetched_at_ts,
        }
    }

    /// `valid_until_ts`, capped at [`KEY_VALIDITY_MS_MAX`] after the fetch.
    pub fn effective_valid_until_ts(&self) -> u64 {
        self.times().effective_valid_until_ts()
    }

    /// The key `key_id`, if it may verify a signature on an event of `room_version` with
    /// `origin_server_ts`.
    pub fn key_for_event(
        &self,
        key_id: &str,
        origin_server_ts: u64,
        room_version: &RoomVersion,
    ) -> Result<VerifyingKey, KeyValidityError> {
        self.key_for_event_at_times(self.times(), key_id, origin_server_ts, room_version)
    }

    /// As [`ServerKeySet::key_for_event`], for these keys fetched at `times` rather than at
    /// this set's own times.
    pub fn key_for_event_at_times(
        &self,
        times: KeyTimes,
        key_id: &str,
        origin_server_ts: u64,
        room_version: &RoomVersion,
    ) -> Result<VerifyingKey, KeyValidityError> {
        let known = self.known_key(key_id)?;
        match known.expired_ts {
            Some(expired_ts) if expired_ts < origin_server_ts => {
                return Err(KeyValidityError::Expired {
                    server: self.server_name.clone(),
                    key_id: key_id.to_owned(),
                    expired_ts,
                    origin_server_ts,
                });
            }
            Some(_) => {}
            None if room_version.enforce_key_validity => {
                self.check_valid_until(times, key_id, origin_server_ts)?;
            }
            None => {}
        }
        Ok(known.key)
    }

    /// The key `key_id`, if it may verify a request signed at `now_ts` (the receiver's clock):
    /// current keys only, within their validity.
    pub fn key_for_request(
        &self,
        key_id: &str,
        now_ts: u64,
    ) -> Result<VerifyingKey, KeyValidityError> {
        self.key_for_request_at_times(self.times(), key_id, now_ts)
    }

    /// As [`ServerKeySet::key_for_request`], for these keys fetched at `times` rather than at
    /// this set's own times.
    pub fn key_for_request_at_times(
        &self,
        times: KeyTimes,
        key_id: &str,
        now_ts: u64,
    ) -> Result<VerifyingKey, KeyValidityError> {
        let known = self.known_key(key_id)?;
        if known.expired_ts.is_some() {
            return Err(KeyValidityError::OldKeyForRequest {
                server: self.server_name.clone(),
                key_id: key_id.to_owned(),
            });
        }
        self.check_valid_until(times, key_id, now_ts)?;
        Ok(known.key)
    }

    fn known_key(&self, key_id: &str) -> Result<&KnownKey, KeyValidityError> {
        self.keys
            .get(key_id)
            .ok_or_else(|| KeyValidityError::UnknownKey {
                server: self.server_name.clone(),
                key_id: key_id.to_owned(),
            })
    }

    fn check_valid_until(
        &self,
        times: KeyTimes,
        key_id: &str,
        at_ts: u64,
    ) -> Result<(), KeyValidityError> {
        let valid_until_ts = times.effective_valid_until_ts();
        if at_ts > valid_until_ts {
            return Err(KeyValidityError::PastValidUntil {
                server: self.server_name.clone(),
                key_id: key_id.to_owned(),
                valid_until_ts,
                at_ts,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::room_version::room_version;
    use serde_json::json;

    const DAY_MS: u64 = 24 * 60 * 60 * 1000;

    fn key(id: &str, seed_byte: u8) -> SigningKey {
        SigningKey::from_seed(id, &[seed_byte; 32]).unwrap()
    }

    fn old_key(expired_ts: u64) -> BTreeMap<String, OldVerifyKey> {
        BTreeMap::from([(
            "ed25519:0ld".to_owned(),
            OldVerifyKey {
                expired_ts,
                key: key("ed25519:0ld", 9).public_key_base64(),
            },
        )])
    }

    fn published(valid_until_ts: u64) -> Value {
        let keys = build_server_keys(
            "a.example",
            &[key("ed25519:a", 1), key("ed25519:b", 2)],
            old_key(1_000),
            valid_until_ts,
        )
        .unwrap();
        Value::Object(keys.to_json_object())
    }

    #[test]
    fn built_response_verifies_and_has_the_spec_shape() {
        let body = published(10 * DAY_MS);
        let object = body.as_object().unwrap();
        let mut names: Vec<&str> = object.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "old_verify_keys",
                "server_name",
                "signatures",
                "valid_until_ts",
                "verify_keys"
            ]
        );
        assert_eq!(
            body["signatures"]["a.example"].as_object().unwrap().len(),
            2
        );
        let set = verify_server_keys(&body, "a.example", 0).unwrap();
        assert_eq!(set.keys.len(), 3);
        assert_eq!(set.keys["ed25519:0ld"].expired_ts, Some(1_000));
        assert_eq!(
            set.keys["ed25519:a"].key,
            key("ed25519:a", 1).verifying_key()
        );
        // The typed value round-trips.
        let typed: ServerKeys = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(Value::Object(typed.to_json_object()), body);
    }

    /// The spec's example body; its signature is a placeholder, so it parses but cannot verify.
    #[test]
    fn spec_example_parses_but_is_not_trusted() {
        let body = json!({
            "server_name": "example.org",
            "verify_keys": {"ed25519:abc123": {"key": "VGhpcyBzaG91bGQgYmUgYSByZWFsIGVkMjU1MTkgcGF5bG9hZA"}},
            "old_verify_keys": {"ed25519:0ldk3y": {"expired_ts": 1532645052628_u64,
                "key": "VGhpcyBzaG91bGQgYmUgeW91ciBvbGQga2V5J3MgZWQyNTUxOSBwYXlsb2FkLg"}},
            "signatures": {"example.org": {"ed25519:auto2": "VGhpcyBzaG91bGQgYWN0dWFsbHkgYmUgYSBzaWduYXR1cmU"}},
            "valid_until_ts": 1652262000000_u64
        });
        let typed: ServerKeys = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(
            typed.old_verify_keys["ed25519:0ldk3y"].expired_ts,
            1532645052628
        );
        assert_eq!(Value::Object(typed.to_json_object()), body);
        assert!(verify_server_keys(&body, "example.org", 0).is_err());
    }

    #[test]
    fn tampering_and_wrong_names_are_refused() {
        let body = published(DAY_MS);
        assert_eq!(
            verify_server_keys(&body, "b.example", 0),
            Err(ServerKeysError::ServerNameMismatch {
                expected: "b.example".into(),
                found: "a.example".into()
            })
        );
        let mut extended = body.clone();
        extended["valid_until_ts"] = json!(DAY_MS * 365);
        assert!(matches!(
            verify_server_keys(&extended, "a.example", 0),
            Err(ServerKeysError::SelfSignature {
                source: SigningError::InvalidSignature { .. },
                ..
            })
        ));
        // Every listed verify key must have signed, not just one of them.
        let signer = key("ed25519:a", 1);
        let mut half_signed = json!({"server_name": "a.example", "valid_until_ts": 5,
            "verify_keys": {"ed25519:a": {"key": signer.public_key_base64()},
                            "ed25519:b": {"key": key("ed25519:b", 2).public_key_base64()}}})
        .as_object()
        .unwrap()
        .clone();
        crate::proto::signing::sign_json(&mut half_signed, "a.example", &signer, Numbers::Strict)
            .unwrap();
        let error = verify_server_keys(&Value::Object(half_signed), "a.example", 0).unwrap_err();
        assert!(
            matches!(&error, ServerKeysError::SelfSignature {
                key_id, source: SigningError::MissingSignature { .. } } if key_id == "ed25519:b"),
            "{error}"
        );
        // Fields we do not model are still covered by the signature.
        let mut extra = body.clone();
        extra["org.example.extra"] = json!(1);
        assert!(verify_server_keys(&extra, "a.example", 0).is_err());
        let mut missing = body;
        missing.as_object_mut().unwrap().remove("valid_until_ts");
        let error = verify_server_keys(&missing, "a.example", 0).unwrap_err();
        assert!(error.to_string().contains("valid_until_ts"), "{error}");
        assert!(verify_server_keys(&json!([]), "a.example", 0).is_err());
    }

    #[test]
    fn extra_fields_signed_by_the_publisher_are_accepted() {
        let signer = key("ed25519:a", 1);
        let mut object = json!({"server_name": "a.example", "valid_until_ts": 5,
            "verify_keys": {"ed25519:a": {"key": signer.public_key_base64()},
                            "curve25519:x": {"key": "whatever"}},
            "org.example.extra": {"nested": true}})
        .as_object()
        .unwrap()
        .clone();
        crate::proto::signing::sign_json(&mut object, "a.example", &signer, Numbers::Strict)
            .unwrap();
        let set = verify_server_keys(&Value::Object(object), "a.example", 0).unwrap();
        assert_eq!(set.keys.keys().collect::<Vec<_>>(), ["ed25519:a"]);
    }

    #[test]
    fn build_refuses_bad_inputs() {
        assert_eq!(
            build_server_keys("a", &[], BTreeMap::new(), 0),
            Err(ServerKeysError::NoVerifyKeys)
        );
        let clash = BTreeMap::from([(
            "ed25519:a".to_owned(),
            OldVerifyKey {
                expired_ts: 0,
                key: key("ed25519:a", 1).public_key_base64(),
            },
        )]);
        assert_eq!(
            build_server_keys("a", &[key("ed25519:a", 1)], clash, 0),
            Err(ServerKeysError::KeyListedTwice {
                key_id: "ed25519:a".into()
            })
        );
        let garbage = BTreeMap::from([(
            "ed25519:g".to_owned(),
            OldVerifyKey {
                expired_ts: 0,
                key: "not base64!".into(),
            },
        )]);
        assert!(matches!(
            build_server_keys("a", &[key("ed25519:a", 1)], garbage, 0),
            Err(ServerKeysError::BadKey { .. })
        ));
        assert!(matches!(
            build_server_keys("a", &[key("ed25519:a", 1)], BTreeMap::new(), u64::MAX),
            Err(ServerKeysError::Unsignable(SigningError::CanonicalJson(_)))
        ));
    }

    #[test]
    fn valid_until_is_enforced_from_room_version_5() {
        let set = verify_server_keys(&published(10 * DAY_MS), "a.example", 0).unwrap();
        // Fetched at 0: the 7-day cap wins over the published 10 days.
        assert_eq!(set.effective_valid_until_ts(), KEY_VALIDITY_MS_MAX);
        let v4 = room_version("4").unwrap();
        let v5 = room_version("5").unwrap();
        let cap = KEY_VALIDITY_MS_MAX;
        assert!(set.key_for_event("ed25519:a", cap, v5).is_ok());
        assert_eq!(
            set.key_for_event("ed25519:a", cap + 1, v5),
            Err(KeyValidityError::PastValidUntil {
                server: "a.example".into(),
                key_id: "ed25519:a".into(),
                valid_until_ts: cap,
                at_ts: cap + 1
            })
        );
        assert!(set.key_for_event("ed25519:a", 100 * DAY_MS, v4).is_ok());
        // Published validity shorter than the cap.
        let short = verify_server_keys(&published(DAY_MS), "a.example", 0).unwrap();
        assert_eq!(short.effective_valid_until_ts(), DAY_MS);
        assert!(short.key_for_event("ed25519:b", DAY_MS + 1, v5).is_err());
        assert!(short.key_for_event("ed25519:b", DAY_MS + 1, v4).is_ok());
    }

    /// Checking keys at other times answers as a set fetched at those times would.
    #[test]
    fn keys_checked_at_other_times_answer_as_if_fetched_then() {
        let set = verify_server_keys(&published(10 * DAY_MS), "a.example", 0).unwrap();
        let v5 = room_version("5").unwrap();
        for (valid_until_ts, fetched_at_ts) in [(DAY_MS, 0), (10 * DAY_MS, 5 * DAY_MS)] {
            let times = KeyTimes {
                valid_until_ts,
                fetched_at_ts,
            };
            let mut then = set.clone();
            (then.valid_until_ts, then.fetched_at_ts) = (valid_until_ts, fetched_at_ts);
            assert_eq!(then.times(), times);
            for at_ts in [0, DAY_MS, DAY_MS + 1, 10 * DAY_MS, 10 * DAY_MS + 1] {
                for key_id in ["ed25519:a", "ed25519:0ld", "ed25519:zzz"] {
                    assert_eq!(
                        set.key_for_event_at_times(times, key_id, at_ts, v5),
                        then.key_for_event(key_id, at_ts, v5)
                    );
                    assert_eq!(
                        set.key_for_request_at_times(times, key_id, at_ts),
                        then.key_for_request(key_id, at_ts)
                    );
                }
            }
        }
    }

    #[test]
    fn old_keys_verify_events_until_they_expired_and_never_requests() {
        let set = verify_server_keys(&published(DAY_MS), "a.example", 0).unwrap();
        for version in ["1", "12"] {
            let version = room_version(version).unwrap();
            assert!(set.key_for_event("ed25519:0ld", 1_000, version).is_ok());
            assert!(matches!(
                set.key_for_event("ed25519:0ld", 1_001, version),
                Err(KeyValidityError::Expired {
                    expired_ts: 1_000,
                    ..
                })
            ));
        }
        assert!(matches!(
            set.key_for_request("ed25519:0ld", 0),
            Err(KeyValidityError::OldKeyForRequest { .. })
        ));
        assert!(set.key_for_request("ed25519:a", DAY_MS).is_ok());
        assert!(matches!(
            set.key_for_request("ed25519:a", DAY_MS + 1),
            Err(KeyValidityError::PastValidUntil { .. })
        ));
        assert_eq!(
            set.key_for_request("ed25519:zzz", 0),
            Err(KeyValidityError::UnknownKey {
                server: "a.example".into(),
                key_id: "ed25519:zzz".into()
            })
        );
    }
}
