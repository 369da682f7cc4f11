//! Which room state a server ACL is read from when a PDU's sender server is checked. The spec
//! applies ACLs "to servers when they make requests", "purely at the network layer", never
//! "relative to the room DAG"; Synapse reads the ACL of the room's current state when a
//! transaction arrives. So the ACL that decides is the one in the receiver's current state,
//! not the one in the state before the event: an event made before a server was denied is
//! dropped once it is denied, and an event made while it was denied is taken once the ACL
//! is lifted.

mod common_fed;

use common_fed::{Servers, content, user};
use fedlab::proto::pdu::{Pdu, build_pdu};
use fedlab::proto::wire::paths;
use fedlab::proto::wire::{RawPdu, SendTransactionResponse};
use fedlab::server::store::LocalEventDraft;
use serde_json::json;
use std::time::Duration;

const HS1: &str = "hs1.test";
const HS2: &str = "hs2.test";
const HS3: &str = "hs3.test";

/// A message by hs2's user placed at hs1's current head, signed by hs2 and sent nowhere;
/// with its event id.
fn hs2_message_at_hs1_head(servers: &Servers, room: &str, body: &str) -> (RawPdu, String) {
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
    let json = build_pdu(new, version, HS2, hs2.signing_key())
        .unwrap()
        .json()
        .clone();
    let id = Pdu::from_json(json.clone(), version)
        .unwrap()
        .event_id()
        .to_owned();
    (json, id)
}

/// hs3 (always allowed) relays `pdu` to hs1 in a transaction; returns hs1's error for it.
async fn relay_through_hs3(servers: &Servers, pdu: RawPdu, id: &str, txn: &str) -> Option<String> {
    let body = json!({"origin": HS3, "origin_server_ts": 1_700_000_000_000u64, "pdus": [pdu]});
    let uri = paths::send_transaction_path(txn);
    let answer = servers
        .slot(HS3)
        .call(move |hs| async move { hs.raw_request(HS1, "PUT", &uri, Some(&body), true).await })
        .await
        .expect("hs3 is up")
        .expect("hs1 answers");
    assert_eq!(answer.status, 200);
    let results: SendTransactionResponse = serde_json::from_slice(&answer.body).unwrap();
    results.pdus[id].error.clone()
}

fn accepted_by_hs1(servers: &Servers, room: &str, id: &str) -> bool {
    servers
        .server(HS1)
        .with_room(room, |r| r.accepted_event_ids().contains(id))
        .unwrap()
}

#[test]
fn the_acl_of_the_current_state_decides_not_the_state_before_the_event() {
    common_fed::Lab::new(3, 51).run(|servers| async move {
        let room = servers.room_with_everyone().await;
        // Made while hs2 is allowed: the state before it has no ACL.
        let (before, before_id) = hs2_message_at_hs1_head(&servers, &room, "made before");

        let deny = json!({"allow": ["*"], "deny": [HS2]});
        servers
            .state(HS1, &room, "m.room.server_acl", "", deny)
            .await;
        servers
            .converge(&room, Duration::from_secs(30))
            .await
            .unwrap();
        // Made while hs2 is denied: the state before it holds the denying ACL.
        let (under, under_id) = hs2_message_at_hs1_head(&servers, &room, "made under the ACL");

        let error = relay_through_hs3(&servers, before.clone(), &before_id, "t1").await;
        let error = error.expect("an event of a denied server is dropped");
        assert!(
            error.contains("server ACL") && error.contains(HS2),
            "{error}"
        );
        assert!(!accepted_by_hs1(&servers, &room, &before_id));

        let allow = json!({"allow": ["*"], "deny": []});
        servers
            .state(HS1, &room, "m.room.server_acl", "", allow)
            .await;
        servers
            .converge(&room, Duration::from_secs(30))
            .await
            .unwrap();
        let error = relay_through_hs3(&servers, under, &under_id, "t2").await;
        assert_eq!(error, None, "hs2 is allowed again");
        assert!(accepted_by_hs1(&servers, &room, &under_id));
        // The first one, offered again now that hs2 is allowed, is taken too.
        let (again, again_id) = hs2_message_at_hs1_head(&servers, &room, "after the lift");
        assert_eq!(
            relay_through_hs3(&servers, again, &again_id, "t3").await,
            None
        );
        Ok(())
    });
}
