//! Inbound federation: transactions (`/send`) and the gap filling they may need.
//!
//! For each PDU of a transaction, in order: the room must be one this server is in; the PDU's
//! format and signatures are checked (drop) and its content hash (redact); missing prev events
//! are fetched with `/get_missing_events` and, when the gap does not close, the state before
//! each missing prev event comes from `/state_ids`; missing auth events come from
//! `/event_auth`; then the store runs the authorization checks (reject, soft-fail). The
//! transaction is acknowledged only after the store flushed what it accepted.
//!
//! Per-origin rate and in-flight limits (`limits`) refuse a transaction whole with 429 before
//! any of its PDUs is looked at.
//!
//! A PDU of a room this server is still joining waits until the join (with the history
//! fetched after it) is done, as Synapse queues such PDUs, instead of being refused as
//! belonging to a room the server is not in: the resident sends our join on to the room's
//! other servers before its `send_join` answer reaches us, so they may already send us the
//! room's events, and nobody would send a refused one again.
//!
//! Invariants: a (origin, txn id) pair is processed once and later copies get the first
//! answer, also when they arrive while the first is still being processed (they wait for
//! it, since gap filling can outlast the sender's request timeout); a transaction over the spec's limits is refused whole with 400; the answer is sent
//! only after the durable log holds every accepted event.

pub mod answers;
mod gap;
pub mod limits;
pub(crate) mod once;
pub(crate) mod pdu_text;
mod seen;
mod send;

pub(crate) use seen::TransactionsSeen;

/// Answers to transactions still being processed, by (origin, txn id): `None` until the
/// first copy finishes. A sender dropped without an answer (the processing was cancelled)
/// lets a waiting retry process the transaction itself.
pub(crate) type TransactionsInFlight =
    std::collections::BTreeMap<(String, String), once::OnceReceiver<TransactionAnswer>>;

/// The JSON text of a transaction's answer, shared by the copies that get it.
///
/// Memory: a server remembers the answers of each origin's last
/// `transactions_remembered_per_origin` transactions; as JSON objects each took over a kilobyte (two map nodes), as text it takes
/// the length of the event ids it lists.
pub(crate) type TransactionAnswer = std::rc::Rc<str>;

/// Joins in progress, by room id, for rooms the server was not in when the join began. The
/// join holds the matching sender and drops it when it ends, however it ends (done, failed,
/// cancelled by a crash); a PDU of such a room waits for that.
pub(crate) type JoinsInProgress = std::collections::BTreeMap<String, once::OnceReceiver<()>>;

/// Registers a join of a room for as long as it lives (see [`JoinsInProgress`]).
pub(crate) struct JoinInProgress {
    server: std::rc::Rc<crate::server::Inner>,
    room_id: String,
    _ends: once::OnceSender<()>,
}

impl JoinInProgress {
    /// Registers the join of `room_id` unless the server is in the room already (another
    /// local user joining, or a rejoin) or another join of it is in progress: `None` then.
    pub(crate) fn begin(server: &std::rc::Rc<crate::server::Inner>, room_id: &str) -> Option<Self> {
        if server.store.borrow().room(room_id).is_some()
            || server.joins_in_progress.borrow().contains_key(room_id)
        {
            return None;
        }
        let (ends, waiters) = once::once_channel();
        server
            .joins_in_progress
            .borrow_mut()
            .insert(room_id.to_owned(), waiters);
        Some(Self {
            server: server.clone(),
            room_id: room_id.to_owned(),
            _ends: ends,
        })
    }
}

impl Drop for JoinInProgress {
    fn drop(&mut self) {
        self.server
            .joins_in_progress
            .borrow_mut()
            .remove(&self.room_id);
    }
}

impl crate::server::Inner {
    /// Waits until no join of `room_id` is in progress.
    pub(crate) async fn join_ended(&self, room_id: &str) {
        let waiter = self.joins_in_progress.borrow().get(room_id).cloned();
        if let Some(waiter) = waiter {
            // Nothing is ever announced: this returns when the join drops its sender.
            waiter.recv().await;
        }
    }
}
