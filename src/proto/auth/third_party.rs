//! An invite that redeems a third-party invite (`content.third_party_invite`): the invited
//! user proves, with a signature of the identity server, that they own the 3PID the
//! `m.room.third_party_invite` event was sent to.
//!
//! `signed` holds `mxid`, `token` and `signatures`; the signature is checked with the spec's
//! "Signing JSON" bytes of `signed` against the public keys of the `m.room.third_party_invite`
//! event whose state key is the token (`public_key`, and each `public_keys[].public_key`).

use super::{AuthError, AuthRule, Room, reject};
use crate::proto::signing::{VerifyingKey, signing_bytes};
use serde_json::{Map, Value};

pub(super) fn check_third_party_invite(
    room: &Room,
    target: &str,
    invite: &Value,
) -> Result<(), AuthError> {
    let event = room.event;
    if room.membership_of(target) == "ban" {
        return reject(
            AuthRule::ThirdPartyInviteTargetBanned,
            format!("{}: {target} is banned", room.id()),
        );
    }
    let Some(signed) = invite.get("signed").and_then(Value::as_object) else {
        return reject(
            AuthRule::ThirdPartyInviteMalformed,
            format!("{}: third_party_invite has no signed object", room.id()),
        );
    };
    let (Some(mxid), Some(token)) = (signed.get("mxid"), signed.get("token")) else {
        return reject(
            AuthRule::ThirdPartyInviteMalformed,
            format!(
                "{}: third_party_invite.signed needs mxid and token",
                room.id()
            ),
        );
    };
    if mxid.as_str() != Some(target) {
        return reject(
            AuthRule::ThirdPartyInviteMxidMismatch,
            format!(
                "{}: signed.mxid {mxid} is not the invitee {target}",
                room.id()
            ),
        );
    }
    let Some(third_party_invite) = token
        .as_str()
        .and_then(|token| room.get("m.room.third_party_invite", token))
    else {
        return reject(
            AuthRule::ThirdPartyInviteUnknownToken,
            format!(
                "{}: no m.room.third_party_invite for token {token}",
                room.id()
            ),
        );
    };
    if third_party_invite.sender != event.sender {
        return reject(
            AuthRule::ThirdPartyInviteSenderMismatch,
            format!(
                "{}: {} sent the third-party invite {}, not {}",
                room.id(),
                third_party_invite.sender,
                third_party_invite.event_id,
                event.sender
            ),
        );
    }
    let numbers = room.version.numbers();
    let verified = signing_bytes(signed, numbers).is_ok_and(|message| {
        public_keys(&third_party_invite.content)
            .any(|key| signatures(signed).any(|signature| key.verify_bytes(&message, signature)))
    });
    if verified {
        return Ok(());
    }
    reject(
        AuthRule::ThirdPartyInviteBadSignature,
        format!(
            "{}: no signature in signed verifies with a public key of {}",
            room.id(),
            third_party_invite.event_id
        ),
    )
}

/// The usable public keys of an `m.room.third_party_invite` event. Identity servers write
/// unpadded base64 in either alphabet, so the URL-safe one is mapped onto the standard one.
fn public_keys(content: &Map<String, Value>) -> impl Iterator<Item = VerifyingKey> + '_ {
    let single = content.get("public_key").and_then(Value::as_str);
    let listed = content
        .get("public_keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.get("public_key").and_then(Value::as_str));
    single.into_iter().chain(listed).filter_map(|text| {
        let standard: String = text
            .chars()
            .map(|c| match c {
                '-' => '+',
                '_' => '/',
                other => other,
            })
            .collect();
        VerifyingKey::from_base64(&standard).ok()
    })
}

/// Every ed25519 signature in `signed.signatures`, whatever the server and key id.
fn signatures(signed: &Map<String, Value>) -> impl Iterator<Item = &str> {
    signed
        .get("signatures")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|by_server| by_server.values())
        .filter_map(Value::as_object)
        .flat_map(|by_key| by_key.iter())
        .filter(|(key_id, _)| key_id.starts_with("ed25519:"))
        .filter_map(|(_, signature)| signature.as_str())
}
