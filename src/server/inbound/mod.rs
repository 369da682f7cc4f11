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
//! Invariants: a (origin, txn id) pair is processed once and later copies get the first
//! answer, also when they arrive while the first is still being processed (they wait for
//! it, since gap filling can outlast the sender's request timeout); a transaction over the spec's limits is refused whole with 400; the answer is sent
//! only after the durable log holds every accepted event.

mod gap;
pub mod limits;
mod send;

/// Answers to transactions still being processed, by (origin, txn id): `None` until the
/// first copy finishes. A sender dropped without an answer (the processing was cancelled)
/// lets a waiting retry process the transaction itself.
pub(crate) type TransactionsInFlight = std::collections::BTreeMap<
    (String, String),
    tokio::sync::watch::Receiver<Option<serde_json::Value>>,
>;
