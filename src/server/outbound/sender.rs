//! The task that drains one destination's queue: it sends the next transaction, reports the
//! outcome to the queue, and sleeps until there is something to do.
//!
//! Invariants: at most one task per destination, so at most one transaction is in flight to
//! it; the task ends only when the queue has nothing to send (no transaction in flight, none
//! waiting for a retry); the task holds no `RefCell` borrow across an await.

use crate::proto::wire::SendTransactionResponse;
use crate::proto::xmatrix::{object_serializes_canonically, serializes_canonically};
use crate::server::Inner;
use crate::server::outbound::queue::{NextStep, OutgoingTransaction};
use serde_json::Value;
use serde_json::value::RawValue;
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

async fn send_one(inner: &Rc<Inner>, destination: &str, transaction: Rc<OutgoingTransaction>) {
    let body = transaction_body(&inner.config.name, inner.clock.now_ms(), &transaction);
    let uri = crate::proto::wire::paths::SEND_TRANSACTION.path(&[&transaction.txn_id]);
    // The queue keeps the transaction (shared PDUs) for a retry; the request holds only bytes.
    drop(transaction);
    let result: Result<SendTransactionResponse, _> = inner
        .federation_request_text(destination, "PUT", &uri, body.text, body.canonical)
        .await;
    let now_ms = inner.clock.now_ms();
    inner.with_queue(destination, |queue| match &result {
        Ok(_) => queue.on_success(),
        Err(error) if error.is_transient() => {
            queue.on_failure(now_ms, &format!("{}>{destination}", inner.config.name));
        }
        Err(_) => queue.on_refused(),
    });
}

/// The JSON text of a transaction's body.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TransactionBody {
    /// What serde_json writes for the body's JSON object.
    pub text: String,
    /// Whether `text` is that object's canonical JSON too (no float anywhere).
    pub canonical: bool,
}

/// The body of a transaction as written: the keys of the object serde_json writes for a
/// [`Transaction`](crate::proto::wire::Transaction), in its (sorted) order.
#[derive(serde::Serialize)]
struct BodyFields<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    edus: Option<Value>,
    origin: &'a str,
    origin_server_ts: u64,
    pdus: Vec<&'a RawValue>,
}

/// The JSON body of `transaction` from `origin`: the text of the value a
/// [`Transaction`](crate::proto::wire::Transaction) serializes to, written from the PDUs'
/// JSON objects as they are held instead of copying each into a new value first: each PDU as
/// its text, written once per PDU ([`Pdu::json_text`](crate::proto::pdu::Pdu::json_text), the
/// same bytes), not once per destination.
pub(crate) fn transaction_body(
    origin: &str,
    origin_server_ts: u64,
    transaction: &OutgoingTransaction,
) -> TransactionBody {
    // Through a value, as before: its keys are sorted, where `RawEdu` writes its fields in
    // declaration order.
    let edus = (!transaction.edus.is_empty())
        .then(|| serde_json::to_value(&transaction.edus).expect("EDUs serialize"));
    let canonical = transaction
        .pdus
        .iter()
        .all(|pdu| object_serializes_canonically(pdu.json()))
        && edus.as_ref().is_none_or(serializes_canonically);
    let fields = BodyFields {
        edus,
        origin,
        origin_server_ts,
        pdus: transaction.pdus.iter().map(|pdu| pdu.json_text()).collect(),
    };
    let text = serde_json::to_string(&fields).expect("a transaction body serializes");
    TransactionBody { text, canonical }
}
