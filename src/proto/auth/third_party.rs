//! An invite that redeems a third-party invite (`content.third_party_invite`): the invited
//! user proves, with a signature of the identity server, that they own the 3PID the
//! `m.room.third_party_invite` event was sent to.
//!
//! `signed` holds `mxid`, `token` and `signatures`; the signature is checked with the spec's
//! "Signing JSON" bytes of `signed` against the public keys of the `m.room.third_party_invite`
//! event whose state key is the token (`public_key`, and each `public_keys[].public_key`).

use super::rules::Room;
use super::{AuthError, AuthRule, reject};
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

#[cfg(test)]
mod tests {
    use crate::proto::auth::AuthRule::*;
    use crate::proto::auth::test_support::*;
    use crate::proto::signing::{SigningKey, sign_json};
    use serde_json::{Map, Value, json};

    const TOKEN: &str = "abc123";

    fn identity_key(seed_byte: u8) -> SigningKey {
        SigningKey::from_seed("ed25519:0", &[seed_byte; 32]).unwrap()
    }

    /// `signed` for `mxid` and `token`, signed by the identity server's key.
    fn signed(key: &SigningKey, mxid: &str, token: &str) -> Map<String, Value> {
        let mut signed = object(json!({"mxid": mxid, "token": token}));
        sign_json(&mut signed, "id.example", key, v(10).numbers()).unwrap();
        signed
    }

    fn invite(sender: &str, target: &str, signed: Map<String, Value>) -> EventBuilder {
        EventBuilder::member(sender, target, "invite").content(json!({
            "membership": "invite",
            "third_party_invite": {"display_name": "bob@mail", "signed": signed},
        }))
    }

    /// A room where Alice sent a third-party invite with `key_content` under TOKEN.
    fn room(version: u32, key_content: Value) -> TestRoom {
        let mut room = TestRoom::new(v(version), ALICE);
        room.add(
            EventBuilder::state("m.room.third_party_invite", TOKEN, ALICE).content(key_content),
        );
        room
    }

    fn single_key(key: &SigningKey) -> Value {
        json!({"display_name": "b...@mail", "public_key": key.public_key_base64()})
    }

    #[test]
    fn valid_signatures_are_accepted_in_every_version() {
        let key = identity_key(7);
        for version in versions() {
            let number: u32 = version.id.parse().unwrap();
            let mut room = room(number, single_key(&key));
            let event = invite(ALICE, BOB, signed(&key, BOB, TOKEN));
            assert_eq!(room.check(event), Ok(()), "v{number}");
        }
    }

    #[test]
    fn keys_in_public_keys_and_url_safe_alphabet() {
        let key = identity_key(9);
        let url_safe = key.public_key_base64().replace('+', "-").replace('/', "_");
        let content = json!({"public_key": identity_key(1).public_key_base64(),
                             "public_keys": [{"public_key": "not base64!"},
                                             {"public_key": url_safe}]});
        let mut room = room(11, content);
        assert_eq!(
            room.check(invite(ALICE, BOB, signed(&key, BOB, TOKEN))),
            Ok(())
        );
    }

    #[test]
    fn each_failing_step_names_its_rule() {
        let key = identity_key(3);
        let mut room = room(9, single_key(&key));
        let good = signed(&key, BOB, TOKEN);

        let mut tampered = good.clone();
        tampered.insert("extra".into(), json!("x"));
        assert_eq!(
            room.check(invite(ALICE, BOB, tampered)),
            Err(ThirdPartyInviteBadSignature)
        );
        let other_key = signed(&identity_key(4), BOB, TOKEN);
        assert_eq!(
            room.check(invite(ALICE, BOB, other_key)),
            Err(ThirdPartyInviteBadSignature)
        );
        let mut unsigned = good.clone();
        unsigned.remove("signatures");
        assert_eq!(
            room.check(invite(ALICE, BOB, unsigned)),
            Err(ThirdPartyInviteBadSignature)
        );
        assert_eq!(
            room.check(invite(ALICE, CAROL, good.clone())),
            Err(ThirdPartyInviteMxidMismatch)
        );
        let other_token = signed(&key, BOB, "other");
        assert_eq!(
            room.check(invite(ALICE, BOB, other_token)),
            Err(ThirdPartyInviteUnknownToken)
        );
        room.join(DAVE);
        assert_eq!(
            room.check(invite(DAVE, BOB, good.clone())),
            Err(ThirdPartyInviteSenderMismatch)
        );
        let mut no_token = good.clone();
        no_token.remove("token");
        assert_eq!(
            room.check(invite(ALICE, BOB, no_token)),
            Err(ThirdPartyInviteMalformed)
        );
        let no_signed = EventBuilder::member(ALICE, BOB, "invite")
            .content(json!({"membership": "invite", "third_party_invite": {}}));
        assert_eq!(room.check(no_signed), Err(ThirdPartyInviteMalformed));
        room.set_membership(BOB, "ban");
        assert_eq!(
            room.check(invite(ALICE, BOB, good)),
            Err(ThirdPartyInviteTargetBanned)
        );
    }

    #[test]
    fn the_third_party_path_skips_the_ordinary_invite_rules() {
        // Alice's own power does not matter here: her m.room.third_party_invite needed it.
        let key = identity_key(5);
        let mut room = room(11, single_key(&key));
        room.power_levels(json!({"invite": 100, "users": {}}));
        assert_eq!(
            room.check(invite(ALICE, BOB, signed(&key, BOB, TOKEN))),
            Ok(())
        );
        assert_eq!(
            room.check(EventBuilder::member(ALICE, BOB, "invite")),
            Err(InviteWithoutPower)
        );
    }
}
