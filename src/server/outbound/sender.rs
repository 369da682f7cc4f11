//! The task that drains one destination's queue: it sends the next transaction, reports the
//! outcome to the queue, and sleeps until there is something to do.
//!
//! Invariants: one task per destination, so at most one transaction is in flight to it; the
//! task holds no `RefCell` borrow across an await.

use crate::proto::wire::{SendTransactionResponse, Transaction};
use crate::server::Inner;
use crate::server::outbound::queue::NextStep;
use std::rc::{Rc, Weak};
use std::time::Duration;

/// Drains the queue of `destination` until the server is dropped.
pub(crate) async fn run_destination(server: Weak<Inner>, destination: String) {
    loop {
        let Some(inner) = server.upgrade() else {
            return;
        };
        let wake = inner.outbound_wakeup(&destination);
        let step = inner.with_queue(&destination, |queue| queue.next_step(inner.clock.now_ms()));
        match step {
            NextStep::Idle => {
                drop(inner);
                wake.notified().await;
            }
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
    let body = Transaction {
        origin: inner.config.name.clone(),
        origin_server_ts: inner.clock.now_ms(),
        pdus: transaction
            .pdus
            .iter()
            .map(|pdu| pdu.json().clone())
            .collect(),
        edus: transaction.edus.clone(),
    };
    let uri = crate::proto::wire::paths::SEND_TRANSACTION.path(&[&transaction.txn_id]);
    let content = serde_json::to_value(&body).expect("a transaction serializes");
    let result: Result<SendTransactionResponse, _> = inner
        .federation_request(destination, "PUT", &uri, Some(&content))
        .await;
    let now_ms = inner.clock.now_ms();
    inner.with_queue(destination, |queue| match &result {
        Ok(_) => queue.on_success(),
        Err(error) if error.is_transient() => queue.on_failure(now_ms),
        Err(_) => queue.on_refused(),
    });
}
