//! The rules for `m.room.member` events (rule 4 from room v6, rule 5 before), by membership.
//!
//! Memberships: `join`, `invite` (with the third-party path in `third_party`), `leave` (a user
//! leaving, a kick or an unban), `ban`, and from room v7 `knock`. Join rules: `public`,
//! `invite`, from v7 `knock`, from v8 `restricted`, from v10 `knock_restricted`; a join rule
//! a version does not know allows nothing.

use super::create::creator;
use super::power::show;
use super::rules::Room;
use super::{AuthError, AuthRule, reject, third_party};
use crate::proto::event::{Event, server_of};
use crate::proto::room_version::RoomVersion;
use serde_json::Value;

/// The content key naming the user whose server vouches for a restricted join (v8+).
const AUTHORISER_KEY: &str = "join_authorised_via_users_server";

pub(super) fn check_member(room: &Room) -> Result<(), AuthError> {
    let event = room.event;
    let (Some(target), Some(membership)) =
        (event.state_key.as_deref(), event.content.get("membership"))
    else {
        return reject(
            AuthRule::MemberMalformed,
            format!(
                "{}: m.room.member needs a state_key and content.membership",
                room.id()
            ),
        );
    };
    match membership.as_str() {
        Some("join") => check_join(room, target),
        Some("invite") => check_invite(room, target),
        Some("leave") => check_leave(room, target),
        Some("ban") => check_ban(room, target),
        Some("knock") if room.version.knocking => check_knock(room, target),
        _ => reject(
            AuthRule::UnknownMembership,
            format!(
                "{}: membership {membership} is unknown in room version {}",
                room.id(),
                room.version.id
            ),
        ),
    }
}

/// The server whose signature an `m.room.member` event needs besides the sender's: from room
/// v8, the server of `content.join_authorised_via_users_server` when that key is present (rule
/// "If the event is not validly signed by the homeserver of the user ID denoted by the key,
/// reject"). An [`Event`] carries no signatures, so the caller holding the signed PDU checks
/// it, and rejects with [`AuthRule::JoinAuthoriserUnsigned`] when the signature is missing.
/// A key that is not a user id can never be signed for: that is the error here.
pub fn join_authorising_server<'a>(
    version: &RoomVersion,
    event: &'a Event,
) -> Result<Option<&'a str>, AuthError> {
    if !version.restricted_join_rule || event.event_type != "m.room.member" {
        return Ok(None);
    }
    match event.content.get(AUTHORISER_KEY) {
        None => Ok(None),
        Some(Value::String(user_id)) if super::is_valid_user_id(user_id) => {
            Ok(Some(server_of(user_id)))
        }
        Some(other) => reject(
            AuthRule::JoinAuthoriserUnsigned,
            format!(
                "{}: content.{AUTHORISER_KEY} {other} is not a user id",
                event.event_id
            ),
        ),
    }
}

/// The join rule in force: `invite` when the room has no join rules event (or its content
/// names none), as the reference servers read it.
fn join_rule<'a>(room: &Room<'a>) -> &'a str {
    let Some(event) = room.get("m.room.join_rules", "") else {
        return "invite";
    };
    match event.content.get("join_rule") {
        None => "invite",
        Some(value) => value.as_str().unwrap_or(""),
    }
}

fn check_join(room: &Room, target: &str) -> Result<(), AuthError> {
    let (version, event) = (room.version, room.event);
    let first_join = event.prev_events.len() == 1
        && event.prev_events[0] == room.create_event.event_id
        && creator(version, room.create_event) == Some(target);
    if first_join {
        return Ok(());
    }
    if event.sender != target {
        return reject(
            AuthRule::JoinSenderNotTarget,
            format!("{}: {} cannot join {target}", room.id(), event.sender),
        );
    }
    let membership = room.membership_of(target);
    if membership == "ban" {
        return reject(
            AuthRule::JoinSenderBanned,
            format!("{}: {target} is banned", room.id()),
        );
    }
    let rule = join_rule(room);
    let invited_or_joined = membership == "invite" || membership == "join";
    let invite_only = rule == "invite" || (version.knocking && rule == "knock");
    let restricted = (version.restricted_join_rule && rule == "restricted")
        || (version.knock_restricted_join_rule && rule == "knock_restricted");
    if invite_only && invited_or_joined {
        return Ok(());
    }
    if restricted {
        if invited_or_joined {
            return Ok(());
        }
        return check_authoriser(room);
    }
    if rule == "public" {
        return Ok(());
    }
    reject(
        AuthRule::JoinRuleForbids,
        format!(
            "{}: join rule {rule:?} does not let {target} ({membership}) join",
            room.id()
        ),
    )
}

/// A restricted join by a user who is neither invited nor joined: the user named in
/// `join_authorised_via_users_server` must be joined and able to invite.
fn check_authoriser(room: &Room) -> Result<(), AuthError> {
    let not_allowed = |why: String| {
        reject(
            AuthRule::JoinAuthoriserNotAllowed,
            format!("{}: restricted join: {why}", room.id()),
        )
    };
    let Some(authoriser) = room.event.content_str(AUTHORISER_KEY) else {
        return not_allowed(format!("no {AUTHORISER_KEY}"));
    };
    let membership = room.membership_of(authoriser);
    if membership != "join" {
        return not_allowed(format!("authoriser {authoriser} is {membership}, not join"));
    }
    let power = room.power_of(authoriser);
    let invite_level = room.levels().invite();
    if power < invite_level {
        return not_allowed(format!(
            "authoriser {authoriser} has power {} below the invite level {invite_level}",
            show(power)
        ));
    }
    Ok(())
}

fn check_invite(room: &Room, target: &str) -> Result<(), AuthError> {
    let event = room.event;
    if let Some(invite) = event.content.get("third_party_invite") {
        return third_party::check_third_party_invite(room, target, invite);
    }
    let sender_membership = room.membership_of(&event.sender);
    if sender_membership != "join" {
        return reject(
            AuthRule::InviteSenderNotJoined,
            format!(
                "{}: {} is {sender_membership}, not join",
                room.id(),
                event.sender
            ),
        );
    }
    let target_membership = room.membership_of(target);
    if target_membership == "join" || target_membership == "ban" {
        return reject(
            AuthRule::InviteTargetJoinedOrBanned,
            format!("{}: {target} is {target_membership}", room.id()),
        );
    }
    let power = room.power_of(&event.sender);
    let invite_level = room.levels().invite();
    if power >= invite_level {
        return Ok(());
    }
    reject(
        AuthRule::InviteWithoutPower,
        format!(
            "{}: {} has power {} below the invite level {invite_level}",
            room.id(),
            event.sender,
            show(power)
        ),
    )
}

/// A user leaving, or a kick or unban of another user.
fn check_leave(room: &Room, target: &str) -> Result<(), AuthError> {
    let event = room.event;
    let target_membership = room.membership_of(target);
    if event.sender == target {
        let may_leave = matches!(target_membership, "invite" | "join")
            || (room.version.knocking && target_membership == "knock");
        if may_leave {
            return Ok(());
        }
        return reject(
            AuthRule::LeaveWithoutMembership,
            format!(
                "{}: {target} is {target_membership} and cannot leave",
                room.id()
            ),
        );
    }
    let sender_membership = room.membership_of(&event.sender);
    if sender_membership != "join" {
        return reject(
            AuthRule::KickSenderNotJoined,
            format!(
                "{}: {} is {sender_membership}, not join",
                room.id(),
                event.sender
            ),
        );
    }
    let levels = room.levels();
    let sender_power = room.power_of(&event.sender);
    if target_membership == "ban" && sender_power < levels.ban() {
        return reject(
            AuthRule::UnbanWithoutPower,
            format!(
                "{}: {} has power {} below the ban level {}",
                room.id(),
                event.sender,
                show(sender_power),
                levels.ban()
            ),
        );
    }
    let target_power = room.power_of(target);
    if sender_power >= levels.kick() && target_power < sender_power {
        return Ok(());
    }
    reject(
        AuthRule::KickWithoutPower,
        format!(
            "{}: {} (power {}) cannot kick {target} (power {}) at kick level {}",
            room.id(),
            event.sender,
            show(sender_power),
            show(target_power),
            levels.kick()
        ),
    )
}

fn check_ban(room: &Room, target: &str) -> Result<(), AuthError> {
    let event = room.event;
    let sender_membership = room.membership_of(&event.sender);
    if sender_membership != "join" {
        return reject(
            AuthRule::BanSenderNotJoined,
            format!(
                "{}: {} is {sender_membership}, not join",
                room.id(),
                event.sender
            ),
        );
    }
    let ban_level = room.levels().ban();
    let sender_power = room.power_of(&event.sender);
    let target_power = room.power_of(target);
    if sender_power >= ban_level && target_power < sender_power {
        return Ok(());
    }
    reject(
        AuthRule::BanWithoutPower,
        format!(
            "{}: {} (power {}) cannot ban {target} (power {}) at ban level {ban_level}",
            room.id(),
            event.sender,
            show(sender_power),
            show(target_power)
        ),
    )
}

/// Room v7+: a user asks to be invited.
fn check_knock(room: &Room, target: &str) -> Result<(), AuthError> {
    let event = room.event;
    let rule = join_rule(room);
    let knockable =
        rule == "knock" || (room.version.knock_restricted_join_rule && rule == "knock_restricted");
    if !knockable {
        return reject(
            AuthRule::KnockJoinRuleForbids,
            format!("{}: join rule {rule:?} does not allow knocking", room.id()),
        );
    }
    if event.sender != target {
        return reject(
            AuthRule::KnockSenderNotTarget,
            format!("{}: {} cannot knock for {target}", room.id(), event.sender),
        );
    }
    let membership = room.membership_of(target);
    if matches!(membership, "ban" | "invite" | "join") {
        return reject(
            AuthRule::KnockFromMember,
            format!("{}: {target} is {membership} and cannot knock", room.id()),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::proto::auth::AuthRule::*;
    use crate::proto::auth::test_support::*;
    use serde_json::json;

    fn member(sender: &str, target: &str, membership: &str) -> EventBuilder {
        EventBuilder::member(sender, target, membership)
    }

    #[test]
    fn creator_first_join_needs_create_as_only_prev_event() {
        for version in versions() {
            let mut room = TestRoom::new(version, ALICE);
            room.events.remove(&key("m.room.member", ALICE));
            let create_id = room.create_id.clone();
            let first = member(ALICE, ALICE, "join").prev(&[&create_id]);
            assert_eq!(room.check(first), Ok(()), "v{}", version.id);
            // With another prev event it is an ordinary join, and the default join rule is
            // invite.
            let later = member(ALICE, ALICE, "join").prev(&[&create_id, "$other:a.example"]);
            assert_eq!(room.check(later), Err(JoinRuleForbids));
            // Someone else cannot use the first-join rule.
            let bob = member(BOB, BOB, "join").prev(&[&create_id]);
            assert_eq!(room.check(bob), Err(JoinRuleForbids));
        }
    }

    #[test]
    fn first_join_creator_is_content_creator_before_v11() {
        for version in versions() {
            let mut room = TestRoom::with_create(version, ALICE, json!({"creator": BOB}));
            room.events.remove(&key("m.room.member", ALICE));
            let create_id = room.create_id.clone();
            let bob_first = room.check(member(BOB, BOB, "join").prev(&[&create_id]));
            let alice_first = room.check(member(ALICE, ALICE, "join").prev(&[&create_id]));
            if version.creator_is_sender {
                assert_eq!((alice_first, bob_first), (Ok(()), Err(JoinRuleForbids)));
            } else {
                assert_eq!((alice_first, bob_first), (Err(JoinRuleForbids), Ok(())));
            }
        }
    }

    #[test]
    fn join_rules_table() {
        // (join rule, prior membership of bob, first version that allows, verdict)
        let table: &[(&str, &str, u32, Result<(), crate::proto::auth::AuthRule>)] = &[
            ("public", "leave", 1, Ok(())),
            ("invite", "leave", 1, Err(JoinRuleForbids)),
            ("invite", "invite", 1, Ok(())),
            ("invite", "join", 1, Ok(())),
            ("public", "ban", 1, Err(JoinSenderBanned)),
            ("knock", "invite", 7, Ok(())),
            ("knock", "leave", 1, Err(JoinRuleForbids)),
            ("knock", "knock", 1, Err(JoinRuleForbids)),
            ("restricted", "invite", 8, Ok(())),
            ("knock_restricted", "join", 10, Ok(())),
            ("private", "leave", 1, Err(JoinRuleForbids)),
        ];
        for &(rule, prior, since, expected) in table {
            for version in versions() {
                let mut room = TestRoom::new(version, ALICE);
                room.join_rule(rule).set_membership(BOB, prior);
                let verdict = room.check(member(BOB, BOB, "join"));
                let number: u32 = version.id.parse().unwrap();
                let expected = if number >= since {
                    expected
                } else {
                    Err(JoinRuleForbids)
                };
                assert_eq!(verdict, expected, "{rule} from {prior} in v{number}");
            }
        }
    }

    #[test]
    fn join_for_someone_else_is_rejected() {
        let mut room = TestRoom::new(v(1), ALICE);
        room.join_rule("public");
        assert_eq!(
            room.check(member(ALICE, BOB, "join")),
            Err(JoinSenderNotTarget)
        );
    }

    #[test]
    fn restricted_join_via_authoriser() {
        for (version, rule) in [
            (v(8), "restricted"),
            (v(10), "knock_restricted"),
            (v(12), "restricted"),
        ] {
            let mut room = TestRoom::new(version, ALICE);
            room.join_rule(rule)
                .power_levels(json!({"invite": 20, "users": {CAROL: 10, DAVE: 20}}));
            room.join(CAROL).join(DAVE);
            let via = |authoriser: &str| {
                member(BOB, BOB, "join").content(json!({"membership": "join",
                                    "join_authorised_via_users_server": authoriser}))
            };
            assert_eq!(room.check(via(DAVE)), Ok(()), "v{}", version.id);
            assert_eq!(room.check(via(CAROL)), Err(JoinAuthoriserNotAllowed));
            room.set_membership(DAVE, "leave");
            assert_eq!(room.check(via(DAVE)), Err(JoinAuthoriserNotAllowed));
            assert_eq!(
                room.check(member(BOB, BOB, "join")),
                Err(JoinAuthoriserNotAllowed)
            );
        }
    }

    #[test]
    fn invite_rules() {
        for version in versions() {
            let mut room = TestRoom::new(version, ALICE);
            room.power_levels(json!({"users": {ALICE: 100}, "invite": 10}));
            assert_eq!(room.check(member(ALICE, BOB, "invite")), Ok(()));
            // Carol is not joined.
            assert_eq!(
                room.check(member(CAROL, BOB, "invite")),
                Err(InviteSenderNotJoined)
            );
            // Carol is joined, at the default level 0.
            room.join(CAROL);
            assert_eq!(
                room.check(member(CAROL, BOB, "invite")),
                Err(InviteWithoutPower)
            );
            room.join(BOB);
            assert_eq!(
                room.check(member(ALICE, BOB, "invite")),
                Err(InviteTargetJoinedOrBanned)
            );
            room.set_membership(BOB, "ban");
            assert_eq!(
                room.check(member(ALICE, BOB, "invite")),
                Err(InviteTargetJoinedOrBanned)
            );
        }
    }

    #[test]
    fn leave_kick_and_unban() {
        for version in versions() {
            let mut room = TestRoom::new(version, ALICE);
            room.power_levels(json!({"users": {ALICE: 100, BOB: 50}, "ban": 60, "kick": 40}));
            room.join(BOB).join(CAROL);
            // Leaving yourself.
            assert_eq!(room.check(member(CAROL, CAROL, "leave")), Ok(()));
            assert_eq!(
                room.check(member(DAVE, DAVE, "leave")),
                Err(LeaveWithoutMembership)
            );
            // Kicks need the kick level and more power than the target.
            assert_eq!(room.check(member(BOB, CAROL, "leave")), Ok(()));
            assert_eq!(
                room.check(member(CAROL, BOB, "leave")),
                Err(KickWithoutPower)
            );
            assert_eq!(
                room.check(member(BOB, ALICE, "leave")),
                Err(KickWithoutPower)
            );
            assert_eq!(
                room.check(member(DAVE, CAROL, "leave")),
                Err(KickSenderNotJoined)
            );
            // Unbans also need the ban level.
            room.set_membership(CAROL, "ban");
            assert_eq!(
                room.check(member(BOB, CAROL, "leave")),
                Err(UnbanWithoutPower)
            );
            assert_eq!(room.check(member(ALICE, CAROL, "leave")), Ok(()));
            // A banned user cannot leave by themselves.
            assert_eq!(
                room.check(member(CAROL, CAROL, "leave")),
                Err(LeaveWithoutMembership)
            );
        }
    }

    #[test]
    fn leaving_a_knock_from_v7() {
        for version in versions() {
            let mut room = TestRoom::new(version, ALICE);
            room.set_membership(BOB, "knock");
            let expected = if version.knocking {
                Ok(())
            } else {
                Err(LeaveWithoutMembership)
            };
            assert_eq!(
                room.check(member(BOB, BOB, "leave")),
                expected,
                "v{}",
                version.id
            );
        }
    }

    #[test]
    fn ban_rules() {
        for version in versions() {
            let mut room = TestRoom::new(version, ALICE);
            room.power_levels(json!({"users": {ALICE: 100, BOB: 50}}));
            room.join(BOB).join(CAROL);
            assert_eq!(room.check(member(BOB, CAROL, "ban")), Ok(()));
            assert_eq!(room.check(member(BOB, DAVE, "ban")), Ok(()));
            assert_eq!(room.check(member(CAROL, DAVE, "ban")), Err(BanWithoutPower));
            assert_eq!(room.check(member(BOB, ALICE, "ban")), Err(BanWithoutPower));
            assert_eq!(
                room.check(member(DAVE, CAROL, "ban")),
                Err(BanSenderNotJoined)
            );
        }
    }

    #[test]
    fn knock_rules() {
        for version in versions() {
            let mut room = TestRoom::new(version, ALICE);
            room.join_rule("knock");
            let verdict = room.check(member(BOB, BOB, "knock"));
            if !version.knocking {
                assert_eq!(verdict, Err(UnknownMembership), "v{}", version.id);
                continue;
            }
            assert_eq!(verdict, Ok(()), "v{}", version.id);
            assert_eq!(
                room.check(member(ALICE, BOB, "knock")),
                Err(KnockSenderNotTarget)
            );
            for prior in ["ban", "invite", "join"] {
                room.set_membership(BOB, prior);
                assert_eq!(room.check(member(BOB, BOB, "knock")), Err(KnockFromMember));
            }
            room.set_membership(BOB, "leave");
            room.join_rule("knock_restricted");
            let expected = if version.knock_restricted_join_rule {
                Ok(())
            } else {
                Err(KnockJoinRuleForbids)
            };
            assert_eq!(room.check(member(BOB, BOB, "knock")), expected);
            room.join_rule("public");
            assert_eq!(
                room.check(member(BOB, BOB, "knock")),
                Err(KnockJoinRuleForbids)
            );
        }
    }

    #[test]
    fn malformed_and_unknown_memberships() {
        let mut room = TestRoom::new(v(11), ALICE);
        let no_membership = EventBuilder::state("m.room.member", BOB, BOB).content(json!({}));
        assert_eq!(room.check(no_membership), Err(MemberMalformed));
        let no_state_key =
            EventBuilder::message("m.room.member", BOB).content(json!({"membership": "join"}));
        assert_eq!(room.check(no_state_key), Err(MemberMalformed));
        assert_eq!(room.check(member(BOB, BOB, "wave")), Err(UnknownMembership));
        let not_string = member(BOB, BOB, "x").content(json!({"membership": 1}));
        assert_eq!(room.check(not_string), Err(UnknownMembership));
    }

    #[test]
    fn v12_creators_cannot_be_kicked_or_banned() {
        let mut room = TestRoom::with_create(v(12), ALICE, json!({"additional_creators": [BOB]}));
        room.power_levels(json!({"users": {CAROL: 100}}));
        room.join(BOB).join(CAROL);
        assert_eq!(room.check(member(CAROL, BOB, "ban")), Err(BanWithoutPower));
        assert_eq!(
            room.check(member(CAROL, ALICE, "leave")),
            Err(KickWithoutPower)
        );
        // Infinite is not above infinite: creators cannot remove each other either.
        assert_eq!(room.check(member(ALICE, BOB, "ban")), Err(BanWithoutPower));
        assert_eq!(room.check(member(BOB, CAROL, "ban")), Ok(()));
    }

    #[test]
    fn join_authorising_server_from_v8() {
        use crate::proto::auth::join_authorising_server;
        let event = member(BOB, BOB, "join")
            .content(json!({"membership": "join", "join_authorised_via_users_server": CAROL}))
            .build();
        assert_eq!(join_authorising_server(v(7), &event), Ok(None));
        assert_eq!(join_authorising_server(v(8), &event), Ok(Some("c.example")));
        let bad = member(BOB, BOB, "join")
            .content(json!({"membership": "join", "join_authorised_via_users_server": 5}))
            .build();
        assert_eq!(
            join_authorising_server(v(9), &bad).map_err(|e| e.rule),
            Err(JoinAuthoriserUnsigned)
        );
        assert_eq!(
            join_authorising_server(v(9), &member(BOB, BOB, "join").build()),
            Ok(None)
        );
    }
}
