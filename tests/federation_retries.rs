//! A transaction retried while its first copy is still being processed (the sender's request
//! timed out during gap filling) is processed once: the retry waits for the first's answer.

mod common_fed;

use common_fed::Lab;
use fedlab::proto::signing::SigningKey;
use fedlab::proto::wire::paths;
use fedlab::proto::xmatrix::{HttpRequest, XMatrix};
use fedlab::server::transport::Transport as _;
use fedlab::sim::turmoil_fabric::TurmoilTransport;
use hyper::body::Bytes;
use hyper::{Request, header};
use serde_json::{Value, json};
use std::time::Duration;

const HS1: &str = "hs1.test";
const HS2: &str = "hs2.test";
const HS3: &str = "hs3.test";

/// Sends transaction `txn_id` to hs1 as hs2 (signed with hs2's key) from the driver, so that
/// the link between hs1 and hs2 can be held meanwhile; returns the status and the body.
async fn send_as_hs2(key: &SigningKey, txn_id: &str, body: &Value) -> (u16, Value) {
    let uri = paths::send_transaction_path(txn_id);
    let to_sign = HttpRequest {
        method: "PUT",
        uri: &uri,
        content: Some(body),
    };
    let authorization = XMatrix::sign(&to_sign, HS2, HS1, key).unwrap();
    let request = Request::builder()
        .method("PUT")
        .uri(&uri)
        .header(header::AUTHORIZATION, authorization.to_header_value())
        .header(header::CONTENT_TYPE, "application/json")
        .body(Bytes::from(body.to_string()))
        .unwrap();
    let transport = TurmoilTransport {
        timeout: Duration::from_secs(30),
    };
    let response = transport.send(HS1, request).await.unwrap();
    let answer = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
    (response.status().as_u16(), answer)
}

#[test]
fn a_retry_arriving_during_gap_filling_waits_for_the_first_answer() {
    Lab::new(3, 5).run(|servers| async move {
        let room = servers.room_with_everyone().await;
        // hs3's messages reach hs2 but not hs1, so a transaction holding the last of them
        // makes hs1 fill the gap from hs2: the first copy is in flight for round trips.
        servers.partition(&[HS1], &[HS3]);
        let mut last = String::new();
        for i in 0..4 {
            last = servers.message(HS3, &room, &format!("behind {i}")).await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let pdu = servers
            .server(HS2)
            .with_room(&room, |r| r.event(&last))
            .flatten()
            .expect("hs2 holds hs3's last message")
            .json()
            .clone();
        let body = json!({"origin": HS2, "origin_server_ts": 1_700_000_000_000u64, "pdus": [pdu]});
        let key = servers.server(HS2).signing_key().clone();
        let before = servers.server(HS1).metrics();
        // Holding the hs1-hs2 link keeps hs1's gap filling waiting while the retry arrives.
        turmoil::hold(HS1, HS2);
        let first = send_as_hs2(&key, "retried", &body);
        let retry = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            send_as_hs2(&key, "retried", &body).await
        };
        let release = async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            turmoil::release(HS1, HS2);
        };
        let ((first_status, first), (retry_status, retry), ()) =
            tokio::join!(first, retry, release);
        let after = servers.server(HS1).metrics();

        assert_eq!(first_status, 200, "{first}");
        assert_eq!(retry_status, 200, "{retry}");
        assert_eq!(first, retry, "the retry gets the first copy's answer");
        assert_eq!(first["pdus"][&last], json!({}), "the PDU was accepted");
        assert!(
            after.missing_events_requests > before.missing_events_requests,
            "the first copy filled a gap, so the retry came while it was in flight"
        );
        assert_eq!(
            after.transactions_received - before.transactions_received,
            1,
            "the transaction was processed once"
        );
        assert_eq!(
            after.transactions_duplicate - before.transactions_duplicate,
            1
        );
        Ok(())
    });
}
