//! The task that drains one destination's queue: it sends the next transaction, reports the
//! outcome to the queue, and sleeps until there is something to do.
//!
//! Invariants: at most one task per destination, so at most one transaction is in flight to
//! it; the task ends only when the queue has nothing to send (no transaction in flight, none
//! waiting for a retry); the task holds no `RefCell` borrow across an await.

use crate::proto::wire::SendTransactionResponse;
use crate::server::Inner;
use crate::server::outbound::queue::{NextStep, OutgoingTransaction};
use serde_json::{Map, Value};
use std::rc::{Rc, Weak};
use std::time::Duration;
use tokio::sync::Notify;

/// Drains the queue of `destination` until it is empty (then the task ends) or the server is
/// dropped; `wake` interrupts a backoff wait.
pub(crate) async fn run_destination(server: Weak<Inner>, destination: String, wake: Rc<Notify>) {
    loop {
        let Some(inner) = server.upgrade() else {
            return;
        };
        let step = inner.next_outbound_step(&destination, inner.clock.now_ms());
        match step {
            NextStep::Idle => return,
            NextStep::WaitUntil { at_ms } => {
                let delay = Duration::from_millis(at_ms.saturating_sub(inner.clock.now_ms()));
                drop(inner);
                tokio::select! {
                    biased;
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            NextStep::Send(transaction) => send_one(&inner, &destination, transaction).await,
        }
    }
}

async fn send_one(
    inner: &Rc<Inner>,
    destination: &str,
    transaction: crate::server::outbound::queue::OutgoingTransaction,
) {
    let content = transaction_body(&inner.config.name, inner.clock.now_ms(), &transaction);
    let uri = crate::proto::wire::paths::SEND_TRANSACTION.path(&[&transaction.txn_id]);
    // The queue keeps the transaction (shared PDUs) for a retry; the request holds only bytes.
    drop(transaction);
    let result: Result<SendTransactionResponse, _> = inner
        .federation_request_owned(destination, "PUT", &uri, content)
        .await;
    let now_ms = inner.clock.now_ms();
    inner.with_queue(destination, |queue| match &result {
        Ok(_) => queue.on_success(),
        Err(error) if error.is_transient() => queue.on_failure(now_ms),
        Err(_) => queue.on_refused(),
    });
}

/// The JSON body of `transaction` from `origin`: the value a
/// [`Transaction`](crate::proto::wire::Transaction) serializes to,
/// built with one copy of each PDU instead of two.
pub(crate) fn transaction_body(
    origin: &str,
    origin_server_ts: u64,
    transaction: &OutgoingTransaction,
) -> Value {
    let mut body = Map::new();
    body.insert("origin".into(), Value::from(origin));
    body.insert("origin_server_ts".into(), Value::from(origin_server_ts));
    let pdus = transaction.pdus.iter();
    let pdus = pdus.map(|pdu| Value::Object(pdu.json().clone()));
    body.insert("pdus".into(), Value::Array(pdus.collect()));
    if !transaction.edus.is_empty() {
        let edus = serde_json::to_value(&transaction.edus).expect("EDUs serialize");
        body.insert("edus".into(), edus);
    }
    Value::Object(body)
}
