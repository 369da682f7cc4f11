//! Checking the signatures and the content hash of a received PDU.
//!
//! The spec's "Validating hashes and signatures on received events": the event is redacted and
//! the redacted form must carry a valid signature from every required server, else the event
//! is dropped; then the content hash is compared, and on a mismatch the event is kept but only
//! in its redacted form. The required servers are the sender's (except for an invite made from
//! a third-party invite) and, in room v1/v2, the server of the event id.
//!
//! The signature of the server named by `join_authorised_via_users_server` is *not* required
//! here: the spec makes it an authorization rule (room v8+), so an event without it is rejected,
//! not dropped. [`check_authorising_server_signature`] performs that check for the rules.
//!
//! Keys come from the caller through [`KeyLookup`]: fetching keys and tracking their validity
//! is the server's job. Signatures by keys the lookup does not know are skipped, as are
//! algorithms other than ed25519, but each required server needs at least one known key's
//! signature, and every known key's signature must verify.

use super::{Pdu, content_hash_matches, redact};
use crate::proto::ids::{self, UserIdGrammar};
use crate::proto::signing::{ED25519, VerifyingKey, signing_bytes};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// What a key lookup is asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyQuery<'a> {
    pub server_name: &'a str,
    pub key_id: &'a str,
    /// The event's `origin_server_ts`. Keys known to have expired before it are to be ignored.
    pub origin_server_ts: u64,
    /// Room v5+: the key's `valid_until_ts` (capped at 7 days after it was fetched) must be at
    /// least `origin_server_ts`, else the key is to be treated as unknown.
    pub enforce_validity_period: bool,
}

/// Supplies servers' public keys. Returning `None` means "unknown key": its signature is
/// skipped.
pub trait KeyLookup {
    fn verifying_key(&self, query: &KeyQuery<'_>) -> Option<VerifyingKey>;
}

impl<F> KeyLookup for F
where
    F: Fn(&KeyQuery<'_>) -> Option<VerifyingKey>,
{
    fn verifying_key(&self, query: &KeyQuery<'_>) -> Option<VerifyingKey> {
        self(query)
    }
}

/// Server name -> key id -> key, valid forever (for tests and tools).
impl KeyLookup for BTreeMap<String, BTreeMap<String, VerifyingKey>> {
    fn verifying_key(&self, query: &KeyQuery<'_>) -> Option<VerifyingKey> {
        self.get(query.server_name)?.get(query.key_id).copied()
    }
}

/// Why a required signature does not hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureFailure {
    #[error("no signature from {server}")]
    Missing { server: String },
    #[error("no signature from {server} by a key that is known and valid")]
    NoKnownKey { server: String },
    #[error("the signature of {server} with key {key_id} does not verify")]
    Invalid { server: String, key_id: String },
    #[error("`content.join_authorised_via_users_server` {value:?} is not a user id")]
    BadAuthorisingUser { value: String },
}

/// The outcome of checking a received PDU's signatures and content hash.
#[derive(Clone, Debug, PartialEq)]
pub enum Verification {
    /// Every required signature verifies and the content hash matches.
    Valid,
    /// The signatures verify but the content hash does not match: the event must be kept and
    /// handled in its redacted form, which is given.
    HashMismatch { redacted: Box<Pdu> },
    /// A required signature is missing or wrong: the event must be dropped.
    BadSignature(SignatureFailure),
}

/// The servers whose signatures a received PDU must carry.
pub fn required_signers(pdu: &Pdu) -> BTreeSet<String> {
    let event = pdu.event();
    let mut servers = BTreeSet::new();
    if !is_invite_from_third_party_invite(pdu) {
        servers.insert(event.sender_server().to_owned());
    }
    if pdu.room_version().event_ids_in_events() {
        let server = ids::parse_event_id(&event.event_id, pdu.room_version())
            .ok()
            .and_then(|id| id.server_name)
            .expect("format checks ensure room v1/v2 event ids have a server name");
        servers.insert(server.to_owned());
    }
    servers
}

/// An invite made from a third-party invite may be sent, and signed, by a server other than
/// the sender's.
fn is_invite_from_third_party_invite(pdu: &Pdu) -> bool {
    let event = pdu.event();
    event.membership() == Some("invite") && event.content.contains_key("third_party_invite")
}

/// Every key lookup [`verify_pdu`] may make for `pdu`: one per ed25519 signature of each
/// required server, as (server name, key id). The outcome of [`verify_pdu`] is a function of
/// the PDU and of the lookup's answers to these queries alone (the query's timestamp and
/// validity flag come from the PDU), which lets a caller memoise it.
pub fn signature_key_queries(pdu: &Pdu) -> Vec<(String, String)> {
    let signatures = pdu
        .json()
        .get("signatures")
        .and_then(Value::as_object)
        .expect("format checks ensure `signatures` is an object");
    let mut queries = Vec::new();
    for server in required_signers(pdu) {
        let Some(by_key) = signatures.get(&server).and_then(Value::as_object) else {
            continue;
        };
        for key_id in by_key.keys() {
            if key_id.split_once(':').map(|(algorithm, _)| algorithm) == Some(ED25519) {
                queries.push((server.clone(), key_id.clone()));
            }
        }
    }
    queries
}

/// Checks the signatures (drop on failure) and then the content hash (redact on mismatch).
pub fn verify_pdu(pdu: &Pdu, keys: &impl KeyLookup) -> Verification {
    if let Err(failure) = check_signatures(pdu, &required_signers(pdu), keys) {
        return Verification::BadSignature(failure);
    }
    let matches = content_hash_matches(pdu.json(), pdu.room_version().numbers())
        .expect("a format-checked PDU is valid canonical JSON for its room version");
    if matches {
        Verification::Valid
    } else {
        Verification::HashMismatch {
            redacted: Box::new(pdu.redacted()),
        }
    }
}

/// The server of the user named by `content.join_authorised_via_users_server` of an
/// `m.room.member` event, in room versions with restricted joins (v8+). `Some(Err(..))` when
/// the key is present but does not name a user.
pub fn authorising_server(pdu: &Pdu) -> Option<Result<String, SignatureFailure>> {
    let event = pdu.event();
    if !pdu.room_version().restricted_join_rule || event.event_type != "m.room.member" {
        return None;
    }
    let value = event.content.get("join_authorised_via_users_server")?;
    let server = value
        .as_str()
        .and_then(|user| ids::parse_user_id(user, UserIdGrammar::Historical).ok())
        .map(|user| user.server_name.to_owned())
        .ok_or_else(|| SignatureFailure::BadAuthorisingUser {
            value: value.to_string(),
        });
    Some(server)
}

/// The authorization rule for `join_authorised_via_users_server` (room v8+): if the key is
/// present, the event must be validly signed by the server of the user it names. A failure
/// means the event is rejected.
pub fn check_authorising_server_signature(
    pdu: &Pdu,
    keys: &impl KeyLookup,
) -> Result<(), SignatureFailure> {
    match authorising_server(pdu) {
        None => Ok(()),
        Some(Err(failure)) => Err(failure),
        Some(Ok(server)) => check_signatures(pdu, &BTreeSet::from([server]), keys),
    }
}

/// Checks that each of `servers` validly signed `pdu` (its redacted form) with at least one
/// key `keys` knows: the check behind [`verify_pdu`], also used for signatures the spec asks
/// for outside it, such as the invited server's on an invite.
pub fn check_signatures(
    pdu: &Pdu,
    servers: &BTreeSet<String>,
    keys: &impl KeyLookup,
) -> Result<(), SignatureFailure> {
    let room_version = pdu.room_version();
    let redacted = redact(pdu.json(), room_version)
        .expect("a format-checked PDU has a string `type` and an object `content`");
    let signed_bytes = signing_bytes(&redacted, room_version.numbers())
        .expect("a format-checked PDU is valid canonical JSON for its room version");
    let signatures = pdu
        .json()
        .get("signatures")
        .and_then(Value::as_object)
        .expect("format checks ensure `signatures` is an object");
    for server in servers {
        let query = |key_id| KeyQuery {
            server_name: server,
            key_id,
            origin_server_ts: pdu.event().origin_server_ts,
            enforce_validity_period: room_version.enforce_key_validity,
        };
        check_server_signature(server, signatures, &signed_bytes, keys, query)?;
    }
    Ok(())
}

fn check_server_signature<'a>(
    server: &str,
    signatures: &'a Map<String, Value>,
    signed_bytes: &[u8],
    keys: &impl KeyLookup,
    query: impl Fn(&'a str) -> KeyQuery<'a>,
) -> Result<(), SignatureFailure> {
    let by_key = signatures
        .get(server)
        .and_then(Value::as_object)
        .ok_or_else(|| SignatureFailure::Missing {
            server: server.to_owned(),
        })?;
    let mut verified = false;
    for (key_id, signature) in by_key {
        let algorithm = key_id.split_once(':').map(|(algorithm, _)| algorithm);
        if algorithm != Some(ED25519) {
            continue;
        }
        let Some(key) = keys.verifying_key(&query(key_id)) else {
            continue;
        };
        let signature = signature.as_str().unwrap_or_default();
        if !key.verify_bytes(signed_bytes, signature) {
            return Err(SignatureFailure::Invalid {
                server: server.to_owned(),
                key_id: key_id.clone(),
            });
        }
        verified = true;
    }
    if verified {
        Ok(())
    } else {
        Err(SignatureFailure::NoKnownKey {
            server: server.to_owned(),
        })
    }
}
