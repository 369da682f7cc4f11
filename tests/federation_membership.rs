//! Membership across servers over turmoil: remote invites (`/invite`), joining by invitation,
//! rejecting an invite through make_leave/send_leave, and rooms' server ACLs on every
//! federation path that concerns a room.

mod common_fed;

use common_fed::{Servers, content, user};
use fedlab::proto::pdu::build_pdu;
use fedlab::proto::room_version;
use fedlab::proto::wire::paths;
use fedlab::proto::wire::{BackfillQuery, RawPdu, SendJoinQuery, SendTransactionResponse};
use fedlab::proto::wire::{MakeJoinQuery, StateQuery};
use fedlab::server::client::RawAnswer;
use fedlab::server::rooms::LocalError;
use fedlab::server::store::LocalEventDraft;
use serde_json::{Value, json};
use std::time::Duration;

const HS1: &str = "hs1.test";
const HS2: &str = "hs2.test";
const HS3: &str = "hs3.test";

/// Sends a signed request from `from` and returns the answer.
async fn request(
    servers: &Servers,
    from: &str,
    to: &str,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> RawAnswer {
    let (to, method, uri) = (to.to_owned(), method.to_owned(), uri.to_owned());
    servers
        .slot(from)
        .call(move |hs| async move {
            hs.raw_request(&to, &method, &uri, body.as_ref(), true)
                .await
        })
        .await
        .expect("server is up")
        .expect("an answer comes back")
}

fn errcode(answer: &RawAnswer) -> String {
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    body["errcode"].as_str().unwrap_or_default().to_owned()
}

async fn invite(
    servers: &Servers,
    from: &str,
    room: &str,
    target: &str,
) -> Result<String, LocalError> {
    let (sender, room, target) = (user(from), room.to_owned(), target.to_owned());
    servers
        .slot(from)
        .call(move |hs| async move { hs.invite_remote(&sender, &room, &target).await })
        .await
        .expect("server is up")
}

async fn try_join(
    servers: &Servers,
    server: &str,
    room: &str,
    via: &str,
) -> Result<(), LocalError> {
    let (joiner, room, via) = (user(server), room.to_owned(), via.to_owned());
    servers
        .slot(server)
        .call(move |hs| async move { hs.join_remote(&joiner, &room, &via).await })
        .await
        .expect("server is up")
}

/// `target`'s membership in `room` as `server` holds it, with the event's sender.
fn membership(
    servers: &Servers,
    server: &str,
    room: &str,
    target: &str,
) -> Option<(String, String)> {
    let key = ("m.room.member".to_owned(), target.to_owned());
    servers
        .server(server)
        .with_room(room, |r| r.current_state_event(&key))
        .flatten()
        .map(|pdu| {
            let event = pdu.event();
            (
                event.membership().unwrap_or_default().to_owned(),
                event.sender.clone(),
            )
        })
}

/// A room on hs1 that only invited users may join.
async fn invite_only_room(servers: &Servers) -> String {
    let room = servers.create_room(HS1).await;
    servers
        .state(
            HS1,
            &room,
            "m.room.join_rules",
            "",
            json!({"join_rule": "invite"}),
        )
        .await;
    room
}

/// Waits until `a` and `b` hold the same state and events of `room`.
async fn converge_pair(servers: &Servers, room: &str, a: &str, b: &str) {
    let mut difference = None;
    for _ in 0..300 {
        let views = (
            common_fed::View::of(&servers.server(a), room),
            common_fed::View::of(&servers.server(b), room),
        );
        difference = match views {
            (Some(view_a), Some(view_b)) => view_a.difference(&view_b),
            _ => Some("a server does not hold the room".to_owned()),
        };
        if difference.is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{a} and {b} did not converge on {room}: {difference:?}");
}

#[test]
fn remote_invite_then_join() {
    common_fed::Lab::new(3, 41).run(|servers| async move {
        let room = invite_only_room(&servers).await;
        let refused = try_join(&servers, HS3, &room, HS1).await;
        assert!(
            matches!(&refused, Err(LocalError::Join { reason, .. }) if reason.contains("403")),
            "an uninvited user joined: {refused:?}"
        );

        let invite_id = invite(&servers, HS1, &room, &user(HS2))
            .await
            .expect("invited");
        let pending = servers.server(HS2).pending_invites(&user(HS2));
        assert_eq!(pending.len(), 1, "{pending:?}");
        assert_eq!(
            (pending[0].room_id.as_str(), pending[0].inviting_server()),
            (room.as_str(), HS1)
        );
        assert_eq!(pending[0].event_id, invite_id);
        assert!(
            pending[0]
                .invite_room_state
                .iter()
                .any(|raw| raw["type"] == "m.room.create")
        );
        let stored = servers
            .server(HS1)
            .with_room(&room, |r| r.event(&invite_id))
            .flatten()
            .expect("the inviting server stored the invite");
        let signers: Vec<&String> = stored.json()["signatures"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(signers, [HS1, HS2], "the invite is signed by both servers");
        assert_eq!(
            membership(&servers, HS1, &room, &user(HS2)),
            Some(("invite".to_owned(), user(HS1)))
        );

        servers.join(HS2, &room, HS1).await;
        assert!(servers.server(HS2).pending_invites(&user(HS2)).is_empty());
        assert_eq!(
            membership(&servers, HS1, &room, &user(HS2)),
            Some(("join".to_owned(), user(HS2)))
        );
        servers.message(HS2, &room, "hello after the invite").await;
        converge_pair(&servers, &room, HS1, HS2).await;
        Ok(())
    });
}

#[test]
fn invite_rejected_through_make_leave_and_send_leave() {
    common_fed::Lab::new(3, 42).run(|servers| async move {
        let room = invite_only_room(&servers).await;
        invite(&servers, HS1, &room, &user(HS3))
            .await
            .expect("invited");
        servers.join(HS3, &room, HS1).await;
        invite(&servers, HS1, &room, &user(HS2))
            .await
            .expect("invited");
        let (invitee, room_id) = (user(HS2), room.clone());
        let leave_id = servers
            .slot(HS2)
            .call(move |hs| async move { hs.reject_invite(&invitee, &room_id).await })
            .await
            .expect("server is up")
            .expect("the invite is rejected");
        assert!(!servers.server(HS2).is_in_room(&room));
        assert!(servers.server(HS2).pending_invites(&user(HS2)).is_empty());
        assert_eq!(
            membership(&servers, HS1, &room, &user(HS2)),
            Some(("leave".to_owned(), user(HS2)))
        );
        let held = |server: &str| {
            servers
                .server(server)
                .with_room(&room, |r| r.contains(&leave_id))
        };
        assert_eq!(held(HS1), Some(true));
        converge_pair(&servers, &room, HS1, HS3).await;
        assert_eq!(held(HS3), Some(true), "the resident sent the leave on");

        // Rejected means no longer invited: the room stays closed to the user.
        let refused = try_join(&servers, HS2, &room, HS1).await;
        assert!(refused.is_err(), "joined after rejecting: {refused:?}");
        // A second rejection has nothing to reject.
        let (invitee, room_id) = (user(HS2), room.clone());
        let again = servers
            .slot(HS2)
            .call(move |hs| async move { hs.reject_invite(&invitee, &room_id).await })
            .await
            .expect("server is up");
        assert!(
            matches!(again, Err(LocalError::NoInvite { .. })),
            "{again:?}"
        );
        Ok(())
    });
}

#[test]
fn make_leave_and_send_leave_check_what_they_are_given() {
    common_fed::Lab::new(2, 43).run(|servers| async move {
        let room = invite_only_room(&servers).await;
        // Never invited: no leave template.
        let uri = paths::make_leave_path(&room, &user(HS2));
        let answer = request(&servers, HS2, HS1, "GET", &uri, None).await;
        assert_eq!(
            (answer.status, errcode(&answer).as_str()),
            (403, "M_FORBIDDEN")
        );
        // A template for another server's user is refused.
        let uri = paths::make_leave_path(&room, &user(HS1));
        let answer = request(&servers, HS2, HS1, "GET", &uri, None).await;
        assert_eq!(answer.status, 403);

        invite(&servers, HS1, &room, &user(HS2))
            .await
            .expect("invited");
        let uri = paths::make_leave_path(&room, &user(HS2));
        let answer = request(&servers, HS2, HS1, "GET", &uri, None).await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);

        // A join sent to send_leave, and a leave of hs1's user signed by hs2, are refused.
        let hs2 = servers.server(HS2);
        let version = servers
            .server(HS1)
            .with_room(&room, |r| r.room_version())
            .unwrap();
        let crafted = |sender: &str, membership: &str| -> RawPdu {
            let draft = LocalEventDraft {
                sender: sender.to_owned(),
                event_type: "m.room.member".into(),
                state_key: Some(sender.to_owned()),
                content: content(json!({"membership": membership})),
                redacts: None,
                origin_server_ts: hs2.clock().now_ms(),
            };
            let new = servers
                .server(HS1)
                .with_room(&room, |r| r.prepare_local_event(draft))
                .unwrap()
                .unwrap_or_else(|e| panic!("{sender} {membership}: {e}"));
            build_pdu(new, version, HS2, hs2.signing_key())
                .unwrap()
                .json()
                .clone()
        };
        for (case, pdu) in [
            ("a join", crafted(&user(HS2), "join")),
            ("another server's user", crafted(&user(HS1), "leave")),
        ] {
            let id = fedlab::proto::pdu::Pdu::from_json(pdu.clone(), version).unwrap();
            let uri = paths::send_leave_path(&room, id.event_id());
            let answer = request(&servers, HS2, HS1, "PUT", &uri, Some(Value::Object(pdu))).await;
            assert_eq!(answer.status, 400, "{case}: {:?}", answer.body);
            assert_eq!(errcode(&answer), "M_INVALID_PARAM", "{case}");
        }

        // A leave or join altered after signing (content hash broken, signature intact) is
        // refused by send_leave and send_join alike, not stored redacted.
        for (membership, code) in [("leave", "M_INVALID_PARAM"), ("join", "M_BAD_JSON")] {
            let mut pdu = crafted(&user(HS2), membership);
            pdu["content"]["reason"] = json!("altered in transit");
            let id = fedlab::proto::pdu::Pdu::from_json(pdu.clone(), version).unwrap();
            let uri = match membership {
                "leave" => paths::send_leave_path(&room, id.event_id()),
                _ => paths::send_join_path(&room, id.event_id(), &Default::default()),
            };
            let answer = request(&servers, HS2, HS1, "PUT", &uri, Some(Value::Object(pdu))).await;
            assert_eq!(answer.status, 400, "{membership}: {:?}", answer.body);
            assert_eq!(errcode(&answer), code, "{membership}");
            let held = servers
                .server(HS1)
                .with_room(&room, |r| r.contains(id.event_id()));
            assert_eq!(held, Some(false), "{membership}");
        }
        Ok(())
    });
}

/// Every federation path that concerns the room, with a body where it needs one. The bodies
/// of the writes are not valid: an allowed server gets 400 for them, a denied one 403 before
/// the body is read.
fn room_paths(
    room: &str,
    event: &str,
    member_of_origin: &str,
) -> Vec<(&'static str, String, Option<Value>)> {
    let state_query = StateQuery {
        event_id: event.to_owned(),
    };
    let backfill = BackfillQuery {
        v: vec![event.to_owned()],
        limit: 5,
    };
    let missing = json!({"earliest_events": [], "latest_events": [event], "limit": 5});
    let junk = json!({"not": "an event"});
    vec![
        (
            "GET",
            paths::make_join_path(
                room,
                member_of_origin,
                &MakeJoinQuery {
                    ver: room_version::ALL.iter().map(|v| v.id.to_owned()).collect(),
                },
            ),
            None,
        ),
        (
            "PUT",
            paths::send_join_path(room, "$junk", &SendJoinQuery::default()),
            Some(junk.clone()),
        ),
        ("GET", paths::make_leave_path(room, member_of_origin), None),
        (
            "PUT",
            paths::send_leave_path(room, "$junk"),
            Some(junk.clone()),
        ),
        ("PUT", paths::invite_path(room, "$junk"), Some(junk)),
        ("GET", paths::backfill_path(room, &backfill), None),
        ("GET", paths::event_path(event), None),
        ("GET", paths::state_path(room, &state_query), None),
        ("GET", paths::state_ids_path(room, &state_query), None),
        ("GET", paths::event_auth_path(room, event), None),
        ("POST", paths::get_missing_events_path(room), Some(missing)),
    ]
}

#[test]
fn a_server_acl_shuts_a_server_out_of_every_path() {
    common_fed::Lab::new(3, 44).run(|servers| async move {
        let room = servers.room_with_everyone().await;
        let before_acl = servers.message(HS2, &room, "before the ACL").await;
        typing_and_wait(&servers, HS2, &room).await;
        let typing_before = servers.server(HS1).edu_counters().typing;
        assert!(typing_before >= 1, "hs2's typing before the ACL counts");

        let acl = json!({"allow": ["*"], "deny": ["hs2.*"], "allow_ip_literals": false});
        servers
            .state(HS1, &room, "m.room.server_acl", "", acl)
            .await;
        servers
            .converge(&room, Duration::from_secs(30))
            .await
            .unwrap();
        let message = servers.message(HS1, &room, "after the ACL").await;
        servers
            .converge(&room, Duration::from_secs(30))
            .await
            .unwrap();

        for (method, uri, body) in room_paths(&room, &message, &user(HS2)) {
            let denied = request(&servers, HS2, HS1, method, &uri, body).await;
            assert_eq!(
                (denied.status, errcode(&denied).as_str()),
                (403, "M_FORBIDDEN"),
                "{method} {uri} from the denied server: {:?}",
                denied.body
            );
        }
        for (method, uri, body) in room_paths(&room, &message, &user(HS3)) {
            let allowed = request(&servers, HS3, HS1, method, &uri, body).await;
            assert_ne!(
                allowed.status, 403,
                "{method} {uri} from hs3: {:?}",
                allowed.body
            );
            if method != "PUT" {
                assert_eq!(
                    allowed.status, 200,
                    "{method} {uri} from hs3: {:?}",
                    allowed.body
                );
            }
        }
        let refused = servers.server(HS1).metrics().acl_requests_refused;
        assert_eq!(refused, room_paths(&room, &message, "").len() as u64);

        // hs2 still believes itself a member and sends: neither hs1 nor hs3 accepts it.
        let after_acl = servers.message(HS2, &room, "shut out").await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        for server in [HS1, HS3] {
            let accepted = servers
                .server(server)
                .with_room(&room, |r| r.accepted_event_ids())
                .unwrap();
            assert!(
                accepted.contains(&before_acl),
                "{server} lost hs2's earlier message"
            );
            assert!(
                !accepted.contains(&after_acl),
                "{server} accepted a denied server's event"
            );
            assert!(
                servers.server(server).metrics().acl_pdus_dropped >= 1,
                "{server}"
            );
        }
        // Nor may hs3 pass hs2's new event on as part of its own traffic.
        let relayed = hs2_message_pdu(&servers, &room, "relayed");
        let relayed_id = fedlab::proto::pdu::Pdu::from_json(
            relayed.clone(),
            servers
                .server(HS1)
                .with_room(&room, |r| r.room_version())
                .unwrap(),
        )
        .unwrap()
        .event_id()
        .to_owned();
        let body =
            json!({"origin": HS3, "origin_server_ts": 1_700_000_000_000u64, "pdus": [relayed]});
        let answer = request(
            &servers,
            HS3,
            HS1,
            "PUT",
            &paths::send_transaction_path("relay"),
            Some(body),
        )
        .await;
        assert_eq!(answer.status, 200);
        let results: SendTransactionResponse = serde_json::from_slice(&answer.body).unwrap();
        let error = results.pdus[&relayed_id].error.clone().unwrap_or_default();
        assert!(
            error.contains("server ACL") && error.contains(HS2),
            "{error}"
        );

        // Typing from hs2 is ignored now, typing from hs3 still counts.
        let ignored_before = servers.server(HS1).metrics().acl_edus_ignored;
        typing_and_wait(&servers, HS2, &room).await;
        let counters = servers.server(HS1).edu_counters();
        assert_eq!(
            counters.typing, typing_before,
            "a denied server's typing was counted"
        );
        assert!(servers.server(HS1).metrics().acl_edus_ignored > ignored_before);
        typing_and_wait(&servers, HS3, &room).await;
        assert_eq!(servers.server(HS1).edu_counters().typing, typing_before + 1);

        // So are hs2's read receipts for the room.
        let receipts_before = servers.server(HS1).edu_counters().receipts;
        for reader in [HS2, HS3] {
            let (user_id, room_id, read) = (user(reader), room.clone(), message.clone());
            servers
                .slot(reader)
                .call(move |hs| async move { hs.send_read_receipt(&user_id, &room_id, &read) })
                .await
                .expect("server is up");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            servers.server(HS1).edu_counters().receipts,
            receipts_before + 1
        );
        Ok(())
    });
}

/// An invite from a server the room's ACL denies is refused by the invited server, which
/// learns the ACL from the state the inviter shares; an allowed server's invite works.
#[test]
fn invited_server_applies_the_shared_acl() {
    common_fed::Lab::new(3, 45).run(|servers| async move {
        let room = servers.create_room(HS1).await;
        servers.join(HS2, &room, HS1).await;
        let acl = json!({"allow": ["*"], "deny": [HS2]});
        servers
            .state(HS1, &room, "m.room.server_acl", "", acl)
            .await;
        converge_pair(&servers, &room, HS1, HS2).await;
        let refused = invite(&servers, HS2, &room, &user(HS3)).await;
        assert!(
            matches!(&refused, Err(LocalError::Invite { reason, .. }) if reason.contains("403")),
            "{refused:?}"
        );
        assert!(servers.server(HS3).pending_invites(&user(HS3)).is_empty());
        assert_eq!(servers.server(HS3).metrics().acl_requests_refused, 1);
        invite(&servers, HS1, &room, &user(HS3))
            .await
            .expect("hs1 may invite");
        assert_eq!(servers.server(HS3).pending_invites(&user(HS3)).len(), 1);
        Ok(())
    });
}

/// A message of hs2's user citing the room's forward extremities on hs1, signed by hs2.
fn hs2_message_pdu(servers: &Servers, room: &str, body: &str) -> RawPdu {
    let hs2 = servers.server(HS2);
    let draft = LocalEventDraft {
        sender: user(HS2),
        event_type: "m.room.message".into(),
        state_key: None,
        content: content(json!({"msgtype": "m.text", "body": body})),
        redacts: None,
        origin_server_ts: hs2.clock().now_ms(),
    };
    let (new, version) = servers
        .server(HS1)
        .with_room(room, |r| {
            (r.prepare_local_event(draft).unwrap(), r.room_version())
        })
        .unwrap();
    build_pdu(new, version, HS2, hs2.signing_key())
        .unwrap()
        .json()
        .clone()
}

/// `server`'s user starts typing; waits long enough for the EDU to arrive.
async fn typing_and_wait(servers: &Servers, server: &str, room: &str) {
    let (typist, room_id) = (user(server), room.to_owned());
    servers
        .slot(server)
        .call(move |hs| async move { hs.send_typing(&typist, &room_id, true) })
        .await
        .expect("server is up");
    tokio::time::sleep(Duration::from_secs(2)).await;
}

/// The invited server's checks, one broken invite at a time: each gets 400 with the spec's
/// suggested code, and only the intact one is countersigned and kept.
#[test]
fn invited_server_checks_what_it_signs() {
    common_fed::Lab::new(3, 46).run(|servers| async move {
        let room = servers.create_room(HS1).await;
        let other_room = servers.create_room(HS1).await;
        let hs1 = servers.server(HS1);
        let version = hs1.with_room(&room, |r| r.room_version()).unwrap();
        let create_of = |room_id: &str| -> RawPdu {
            let key = ("m.room.create".to_owned(), String::new());
            let create = hs1.with_room(room_id, |r| r.current_state_event(&key)).flatten();
            create.unwrap().json().clone()
        };
        let build = |target: &str, membership: &str, key: &fedlab::proto::signing::SigningKey| {
            let draft = LocalEventDraft {
                sender: user(HS1),
                event_type: "m.room.member".into(),
                state_key: Some(target.to_owned()),
                content: content(json!({"membership": "invite"})),
                redacts: None,
                origin_server_ts: hs1.clock().now_ms(),
            };
            let mut new = hs1
                .with_room(&room, |r| r.prepare_local_event(draft))
                .unwrap()
                .unwrap();
            new.content = content(json!({"membership": membership}));
            build_pdu(new, version, HS1, key).unwrap()
        };
        let impostor =
            fedlab::proto::signing::SigningKey::from_seed("ed25519:fedlab", &[9; 32]).unwrap();
        let good = build(&user(HS2), "invite", hs1.signing_key());
        let body = |pdu: &fedlab::proto::pdu::Pdu, state: Vec<RawPdu>, room_version: &str| {
            json!({"room_version": room_version, "event": pdu.json(), "invite_room_state": state})
        };
        let intact_state = vec![create_of(&room)];
        let cases = [
            ("no create event", HS1, good.clone(), vec![], version.id, "M_INVALID_PARAM"),
            (
                "state of another room",
                HS1,
                good.clone(),
                vec![create_of(&other_room)],
                version.id,
                "M_INVALID_PARAM",
            ),
            (
                "not an invite",
                HS1,
                build(&user(HS2), "join", hs1.signing_key()),
                intact_state.clone(),
                version.id,
                "M_INVALID_PARAM",
            ),
            (
                "invitee of another server",
                HS1,
                build(&user(HS3), "invite", hs1.signing_key()),
                intact_state.clone(),
                version.id,
                "M_INVALID_PARAM",
            ),
            (
                "bad signature",
                HS1,
                build(&user(HS2), "invite", &impostor),
                intact_state.clone(),
                version.id,
                "M_INVALID_PARAM",
            ),
            (
                "sender not on the requesting server",
                HS3,
                good.clone(),
                intact_state.clone(),
                version.id,
                "M_INVALID_PARAM",
            ),
            (
                "unknown room version",
                HS1,
                good.clone(),
                intact_state.clone(),
                "99",
                "M_INCOMPATIBLE_ROOM_VERSION",
            ),
        ];
        for (case, from, pdu, state, room_version, expected) in cases {
            let uri = paths::invite_path(&room, pdu.event_id());
            let answer = request(&servers, from, HS2, "PUT", &uri, Some(body(&pdu, state, room_version))).await;
            assert_eq!((answer.status, errcode(&answer).as_str()), (400, expected), "{case}: {:?}", answer.body);
        }
        assert!(servers.server(HS2).pending_invites(&user(HS2)).is_empty());

        let mismatched = paths::invite_path(&room, &format!("${}", "B".repeat(43)));
        let answer = request(&servers, HS1, HS2, "PUT", &mismatched, Some(body(&good, intact_state.clone(), version.id))).await;
        assert_eq!(answer.status, 400, "event id not the path's");

        let uri = paths::invite_path(&room, good.event_id());
        let answer = request(&servers, HS1, HS2, "PUT", &uri, Some(body(&good, intact_state, version.id))).await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        let signed: Value = serde_json::from_slice(&answer.body).unwrap();
        let mut returned = signed["event"].as_object().unwrap().clone();
        assert!(returned["signatures"][HS2].is_object(), "countersigned");
        returned.remove("signatures");
        let mut sent = good.json().clone();
        sent.remove("signatures");
        assert_eq!(returned, sent, "nothing but the signatures changed");
        assert_eq!(servers.server(HS2).pending_invites(&user(HS2)).len(), 1);
        Ok(())
    });
}

/// A peer cannot fill the invited server's memory: past the bound, invites to new rooms are
/// refused with 403 until the user joins or rejects some.
#[test]
fn pending_invites_are_bounded() {
    use fedlab::server::invite::PENDING_INVITES_PER_USER_MAX;
    common_fed::Lab::new(2, 47).run(|servers| async move {
        let mut rooms = Vec::new();
        for _ in 0..=PENDING_INVITES_PER_USER_MAX {
            rooms.push(servers.create_room(HS1).await);
        }
        for room in &rooms[..PENDING_INVITES_PER_USER_MAX] {
            invite(&servers, HS1, room, &user(HS2))
                .await
                .expect("within the bound");
        }
        let last = &rooms[PENDING_INVITES_PER_USER_MAX];
        let refused = invite(&servers, HS1, last, &user(HS2)).await;
        assert!(
            matches!(&refused, Err(LocalError::Invite { reason, .. }) if reason.contains("403")),
            "{refused:?}"
        );
        let (invitee, first) = (user(HS2), rooms[0].clone());
        servers
            .slot(HS2)
            .call(move |hs| async move { hs.reject_invite(&invitee, &first).await })
            .await
            .expect("server is up")
            .expect("rejected");
        invite(&servers, HS1, last, &user(HS2))
            .await
            .expect("room again");
        assert_eq!(
            servers.server(HS2).pending_invites(&user(HS2)).len(),
            PENDING_INVITES_PER_USER_MAX
        );
        Ok(())
    });
}
