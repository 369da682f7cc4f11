//! What servers acknowledged: a transport wrapper that reads the answers to `PUT /send` and
//! records, per receiving server, every PDU it answered with success. After a crash and
//! restart, each of these must still be in the receiver's store (the `acked_lost` oracle).
//!
//! Invariants: the wrapper is an observer: it forwards every request and answer unchanged and
//! only reads answers with status 200; the ledger is ordered (`BTreeMap`/`BTreeSet`).

use crate::proto::wire::SendTransactionResponse;
use crate::proto::wire::paths::SEND_TRANSACTION;
use crate::server::transport::{LocalFuture, Transport, TransportError};
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// Event ids each server acknowledged, by server name. Clones share the same ledger.
#[derive(Clone, Debug, Default)]
pub struct AckLedger {
    acked: Rc<RefCell<BTreeMap<String, BTreeSet<String>>>>,
}

impl AckLedger {
    /// The events `server` acknowledged so far.
    pub fn acked_by(&self, server: &str) -> BTreeSet<String> {
        self.acked.borrow().get(server).cloned().unwrap_or_default()
    }

    fn record(&self, server: &str, event_ids: impl IntoIterator<Item = String>) {
        self.acked
            .borrow_mut()
            .entry(server.to_owned())
            .or_default()
            .extend(event_ids);
    }
}

/// A transport that records the PDUs its destinations acknowledged.
pub struct RecordingTransport<T> {
    inner: T,
    ledger: AckLedger,
}

impl<T> RecordingTransport<T> {
    pub fn new(inner: T, ledger: AckLedger) -> Self {
        Self { inner, ledger }
    }
}

impl<T: Transport> Transport for RecordingTransport<T> {
    fn send(
        &self,
        destination: &str,
        request: Request<Bytes>,
    ) -> LocalFuture<Result<Response<Bytes>, TransportError>> {
        let is_send = request.method().as_str() == SEND_TRANSACTION.method
            && matches!(
                SEND_TRANSACTION.match_path(request.uri().path()),
                Ok(Some(_))
            );
        let answer = self.inner.send(destination, request);
        let ledger = self.ledger.clone();
        let destination = destination.to_owned();
        Box::pin(async move {
            let response = answer.await?;
            if is_send && response.status() == StatusCode::OK {
                // An answer that is not a transaction response acknowledges nothing.
                if let Ok(parsed) =
                    serde_json::from_slice::<SendTransactionResponse>(response.body())
                {
                    let acked = parsed
                        .pdus
                        .into_iter()
                        .filter(|(_, result)| result.is_success())
                        .map(|(event_id, _)| event_id);
                    ledger.record(&destination, acked);
                }
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Canned(String);

    impl Transport for Canned {
        fn send(
            &self,
            _destination: &str,
            _request: Request<Bytes>,
        ) -> LocalFuture<Result<Response<Bytes>, TransportError>> {
            let body = Bytes::from(self.0.clone());
            Box::pin(async move { Ok(Response::new(body)) })
        }
    }

    #[tokio::test]
    async fn records_only_successful_pdus_of_send_answers() {
        let answer = json!({"pdus": {"$a": {}, "$b": {"error": "rejected"}}}).to_string();
        let ledger = AckLedger::default();
        let transport = RecordingTransport::new(Canned(answer), ledger.clone());
        let send = Request::put("/_matrix/federation/v1/send/t1")
            .body(Bytes::new())
            .unwrap();
        transport.send("hs2", send).await.unwrap();
        let other = Request::get("/_matrix/federation/v1/event/$c")
            .body(Bytes::new())
            .unwrap();
        transport.send("hs2", other).await.unwrap();
        assert_eq!(ledger.acked_by("hs2"), BTreeSet::from(["$a".to_owned()]));
        assert!(ledger.acked_by("hs3").is_empty());
    }
}
