//! The defences a homeserver must keep against what a peer sends, checked with crafted but
//! real requests and PDUs over turmoil: transaction limits, request signatures, PDU
//! signatures and content hashes, and history kept from servers with no member in the room.

mod common_fed;

use common_fed::{Lab, Servers, key_seed, user};
use fedlab::proto::pdu::{EventRef, NewEvent, build_pdu};
use fedlab::proto::signing::SigningKey;
use fedlab::proto::wire::paths;
use fedlab::proto::wire::{BackfillQuery, RawPdu, SendTransactionResponse, StateQuery};
use fedlab::proto::xmatrix::{HttpRequest, XMatrix};
use fedlab::server::client::RawAnswer;
use fedlab::server::store::{LocalEventDraft, RedactedBecause};
use fedlab::server::transport::Transport as _;
use fedlab::sim::turmoil_fabric::TurmoilTransport;
use hyper::body::Bytes;
use hyper::{Request, header};
use serde_json::{Value, json};
use std::time::Duration;

const HS1: &str = "hs1.test";
const HS2: &str = "hs2.test";
const HS3: &str = "hs3.test";

/// `count` messages by `server`'s user, each citing the one before, the first citing the
/// room's forward extremities; signed with `key` (the server's own unless an impostor's).
fn chained_messages(
    servers: &Servers,
    server: &str,
    room: &str,
    label: &str,
    count: usize,
    key: &SigningKey,
) -> Vec<RawPdu> {
    let hs = servers.server(server);
    let draft = LocalEventDraft {
        sender: user(server),
        event_type: "m.room.message".into(),
        state_key: None,
        content: common_fed::content(json!({"msgtype": "m.text", "body": "0"})),
        redacts: None,
        origin_server_ts: hs.clock().now_ms(),
    };
    let (first, version) = hs
        .with_room(room, |r| {
            let new = r.prepare_local_event(draft).expect("the user may send");
            (new, r.room_version())
        })
        .expect("server is in the room");
    let mut pdus = Vec::new();
    let mut new = first;
    for i in 0..count {
        new.content =
            common_fed::content(json!({"msgtype": "m.text", "body": format!("{label} {i}")}));
        let pdu = build_pdu(new.clone(), version, server, key).expect("a valid event");
        new = NewEvent {
            prev_events: vec![EventRef::from(pdu.event_id())],
            depth: new.depth + 1,
            ..new
        };
        pdus.push(pdu.json().clone());
    }
    pdus
}

fn event_id(pdu: &RawPdu, servers: &Servers, room: &str) -> String {
    let version = servers
        .server(HS1)
        .with_room(room, |r| r.room_version())
        .unwrap();
    fedlab::proto::pdu::Pdu::from_json(pdu.clone(), version)
        .unwrap()
        .event_id()
        .to_owned()
}

fn transaction(origin: &str, pdus: &[RawPdu]) -> Value {
    json!({"origin": origin, "origin_server_ts": 1_700_000_000_000u64, "pdus": pdus})
}

/// Sends a request from `from` (signed by it when `signed`) and returns the answer.
async fn request(
    servers: &Servers,
    from: &str,
    to: &str,
    method: &str,
    uri: String,
    body: Option<Value>,
    signed: bool,
) -> RawAnswer {
    let to = to.to_owned();
    let method = method.to_owned();
    servers
        .slot(from)
        .call(move |hs| async move {
            hs.raw_request(&to, &method, &uri, body.as_ref(), signed)
                .await
        })
        .await
        .expect("server is up")
        .expect("an answer comes back")
}

fn send_answer(answer: &RawAnswer) -> SendTransactionResponse {
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    serde_json::from_slice(&answer.body).expect("a transaction answer")
}

fn errcode(answer: &RawAnswer) -> String {
    let body: Value = serde_json::from_slice(&answer.body).expect("a Matrix error");
    body["errcode"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn transaction_of_51_pdus_is_refused_and_one_of_50_accepted() {
    Lab::new(2, 3).run(|servers| async move {
        let room = servers.room_with_everyone().await;
        let key = servers.server(HS2).signing_key().clone();
        let pdus = chained_messages(&servers, HS2, &room, "bulk", 51, &key);
        let ids: Vec<String> = pdus.iter().map(|p| event_id(p, &servers, &room)).collect();

        let uri = paths::send_transaction_path("fiftyone");
        let body = transaction(HS2, &pdus);
        let answer = request(&servers, HS2, HS1, "PUT", uri, Some(body), true).await;
        assert_eq!(answer.status, 400, "{:?}", answer.body);
        assert_eq!(errcode(&answer), "M_BAD_JSON");
        let held = |id: &String| servers.server(HS1).with_room(&room, |r| r.contains(id));
        assert!(
            ids.iter().all(|id| held(id) == Some(false)),
            "a refused PDU was kept"
        );

        let uri = paths::send_transaction_path("fifty");
        let body = transaction(HS2, &pdus[..50]);
        let answer = send_answer(&request(&servers, HS2, HS1, "PUT", uri, Some(body), true).await);
        assert_eq!(answer.pdus.len(), 50);
        assert!(answer.pdus.values().all(|r| r.is_success()), "{answer:?}");
        let accepted = servers
            .server(HS1)
            .with_room(&room, |r| r.accepted_event_ids())
            .unwrap();
        assert!(ids[..50].iter().all(|id| accepted.contains(id)));
        assert!(!accepted.contains(&ids[50]));
        Ok(())
    });
}

/// A request signed by hs2, or tampered with after signing: sent from the driver so that the
/// header and body can disagree.
async fn send_crafted(
    destination: &str,
    uri: &str,
    signed_body: &Value,
    sent_body: &Value,
    key: Option<&SigningKey>,
) -> (u16, String) {
    let mut builder = Request::builder().method("PUT").uri(uri);
    if let Some(key) = key {
        let to_sign = HttpRequest {
            method: "PUT",
            uri,
            content: Some(signed_body),
        };
        let authorization = XMatrix::sign(&to_sign, HS2, destination, key).unwrap();
        builder = builder.header(header::AUTHORIZATION, authorization.to_header_value());
    }
    let request = builder
        .header(header::CONTENT_TYPE, "application/json")
        .body(Bytes::from(sent_body.to_string()))
        .unwrap();
    let transport = TurmoilTransport {
        timeout: Duration::from_secs(10),
    };
    let response = transport.send(destination, request).await.unwrap();
    let body: Value = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
    let errcode = body["errcode"].as_str().unwrap_or_default().to_owned();
    (response.status().as_u16(), errcode)
}

#[test]
fn wrongly_signed_requests_get_401() {
    Lab::new(2, 4).run(|servers| async move {
        let hs2_key = SigningKey::from_seed("ed25519:fedlab", &key_seed(HS2)).unwrap();
        let impostor = SigningKey::from_seed("ed25519:fedlab", &[9u8; 32]).unwrap();
        let unpublished = SigningKey::from_seed("ed25519:other", &key_seed(HS2)).unwrap();
        let empty = transaction(HS2, &[]);
        let tampered = json!({"origin": HS2, "origin_server_ts": 1u64, "pdus": []});
        let cases = [
            ("properly signed", &empty, Some(&hs2_key), (200, "")),
            (
                "tampered body",
                &tampered,
                Some(&hs2_key),
                (401, "M_UNAUTHORIZED"),
            ),
            (
                "impostor key",
                &empty,
                Some(&impostor),
                (401, "M_UNAUTHORIZED"),
            ),
            (
                "unpublished key id",
                &empty,
                Some(&unpublished),
                (401, "M_UNAUTHORIZED"),
            ),
            ("no header", &empty, None, (401, "M_UNAUTHORIZED")),
        ];
        for (i, (case, sent, key, expected)) in cases.into_iter().enumerate() {
            let uri = paths::send_transaction_path(&format!("t{i}"));
            let (status, errcode) = send_crafted(HS1, &uri, &empty, sent, key).await;
            assert_eq!((status, errcode.as_str()), expected, "{case}");
        }
        let uri = paths::send_transaction_path("unsigned");
        let answer = request(&servers, HS2, HS1, "PUT", uri, Some(empty), false).await;
        assert_eq!(answer.status, 401, "raw_request without a signature");
        let metrics = servers.server(HS1).metrics();
        assert_eq!(metrics.requests_unauthorized, 5);
        Ok(())
    });
}

/// Also guards the key of a dropped PDU's result: it used to be the absent `event_id` field
/// (an empty string in room v12), so the sender could not tell which PDU failed.
#[test]
fn bad_signature_is_dropped_and_bad_content_hash_kept_redacted() {
    Lab::new(2, 5).run(|servers| async move {
        let room = servers.room_with_everyone().await;
        let impostor = SigningKey::from_seed("ed25519:fedlab", &[9u8; 32]).unwrap();
        let forged = chained_messages(&servers, HS2, &room, "forged", 1, &impostor).remove(0);
        let key = servers.server(HS2).signing_key().clone();
        let mut altered = chained_messages(&servers, HS2, &room, "altered", 1, &key).remove(0);
        // The body of a message is outside its redacted form: the signature and the event id
        // still hold, only the content hash tells.
        altered.insert(
            "content".into(),
            json!({"msgtype": "m.text", "body": "rewritten in transit"}),
        );
        let (forged_id, altered_id) = (
            event_id(&forged, &servers, &room),
            event_id(&altered, &servers, &room),
        );
        let uri = paths::send_transaction_path("tampered");
        let body = transaction(HS2, &[forged, altered]);
        let answer = send_answer(&request(&servers, HS2, HS1, "PUT", uri, Some(body), true).await);
        let forged_error = answer.pdus[&forged_id].error.clone().unwrap_or_default();
        assert!(forged_error.contains("signature"), "{forged_error}");
        assert!(answer.pdus[&altered_id].is_success(), "{answer:?}");

        let hs1 = servers.server(HS1);
        hs1.with_room(&room, |r| {
            assert!(!r.contains(&forged_id), "a forged event was kept");
            let record = r.record(&altered_id).expect("the altered event is kept");
            assert!(record.is_accepted());
            assert_eq!(
                record.redacted(),
                Some(&RedactedBecause::ContentHashMismatch)
            );
            assert!(record.pdu().event().content.is_empty(), "held redacted");
        });
        let metrics = hs1.metrics();
        assert_eq!(
            (
                metrics.pdus_dropped_bad_signature,
                metrics.pdus_redacted_bad_hash
            ),
            (1, 1)
        );
        Ok(())
    });
}

#[test]
fn a_server_with_no_member_cannot_read_the_room() {
    Lab::new(3, 6).run(|servers| async move {
        let room = servers.create_room(HS1).await;
        servers.join(HS2, &room, HS1).await;
        let message = servers.message(HS1, &room, "members only").await;
        let missing = json!({"earliest_events": [], "latest_events": [message], "limit": 10});
        let reads = [
            ("GET", paths::event_path(&message), None),
            (
                "GET",
                paths::state_ids_path(
                    &room,
                    &StateQuery {
                        event_id: message.clone(),
                    },
                ),
                None,
            ),
            (
                "GET",
                paths::backfill_path(
                    &room,
                    &BackfillQuery {
                        v: vec![message.clone()],
                        limit: 10,
                    },
                ),
                None,
            ),
            ("POST", paths::get_missing_events_path(&room), Some(missing)),
        ];
        for (method, uri, body) in reads {
            let outsider =
                request(&servers, HS3, HS1, method, uri.clone(), body.clone(), true).await;
            assert_eq!(outsider.status, 403, "{uri} to a non-member");
            assert_eq!(errcode(&outsider), "M_FORBIDDEN");
            let member = request(&servers, HS2, HS1, method, uri.clone(), body, true).await;
            assert_eq!(member.status, 200, "{uri} to a member: {:?}", member.body);
        }
        Ok(())
    });
}
