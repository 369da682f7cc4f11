//! Transactions (`PUT /_matrix/federation/v1/send/{txnId}`) and the per-PDU results a receiver
//! answers with.
//!
//! Invariant: a [`Transaction`] that passed [`Transaction::validate`] holds at most
//! [`TRANSACTION_PDUS_MAX`] PDUs and [`TRANSACTION_EDUS_MAX`] EDUs, the spec's limits.

use super::{RawEdu, RawPdu};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The spec's limit on PDUs in one transaction.
pub const TRANSACTION_PDUS_MAX: usize = 50;
/// The spec's limit on EDUs in one transaction.
pub const TRANSACTION_EDUS_MAX: usize = 100;

/// The body of `PUT /send/{txnId}`: live PDUs and EDUs from `origin`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transaction {
    /// The server name of the sending homeserver.
    pub origin: String,
    /// When the sender started this transaction, in milliseconds since the Unix epoch.
    pub origin_server_ts: u64,
    /// Room events; their format depends on each room's version.
    pub pdus: Vec<RawPdu>,
    /// Ephemeral messages; the spec lets a sender omit the key when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edus: Vec<RawEdu>,
}

/// A transaction as read from its body with each PDU kept as the exact text it arrived as:
/// what a receiver needs to look each one up by its bytes before parsing it. Read only from
/// bodies whose `pdus` are all JSON objects (see `server/inbound/send.rs`).
#[derive(Debug, Deserialize)]
pub struct TransactionTexts {
    pub origin: String,
    pub origin_server_ts: u64,
    pub pdus: Vec<Box<serde_json::value::RawValue>>,
    #[serde(default)]
    pub edus: Vec<RawEdu>,
}

impl TransactionTexts {
    /// The transaction whose body is `bytes`, when it is one of the plain shape: an object
    /// with no key twice, `origin` a string, `origin_server_ts` a non-negative integer, `pdus`
    /// an array of objects, and `edus`, if there, what `Vec<RawEdu>` reads. `None` otherwise
    /// (also for a body that is not JSON); such a body is read as a [`Transaction`].
    pub fn read(bytes: &[u8]) -> Option<Self> {
        let texts: Self = serde_json::from_slice(bytes).ok()?;
        let all_objects = texts.pdus.iter().all(|pdu| pdu.get().starts_with('{'));
        all_objects.then_some(texts)
    }

    /// As [`Transaction::validate`].
    pub fn validate(&self) -> Result<(), TransactionError> {
        check_counts(self.pdus.len(), self.edus.len())
    }
}

impl From<Transaction> for TransactionTexts {
    /// Each PDU written as serde_json writes its object.
    fn from(transaction: Transaction) -> Self {
        let pdus = transaction
            .pdus
            .into_iter()
            .map(|pdu| serde_json::value::to_raw_value(&pdu).expect("a JSON object serializes"))
            .collect();
        Self {
            origin: transaction.origin,
            origin_server_ts: transaction.origin_server_ts,
            pdus,
            edus: transaction.edus,
        }
    }
}

/// Why a transaction breaks the spec's limits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransactionError {
    #[error("transaction holds {count} PDUs; the limit is {TRANSACTION_PDUS_MAX}")]
    TooManyPdus { count: usize },
    #[error("transaction holds {count} EDUs; the limit is {TRANSACTION_EDUS_MAX}")]
    TooManyEdus { count: usize },
}

impl Transaction {
    /// Checks the spec's count limits. An empty transaction is valid: senders use one to
    /// probe a destination and the spec sets no lower bound.
    pub fn validate(&self) -> Result<(), TransactionError> {
        check_counts(self.pdus.len(), self.edus.len())
    }
}

fn check_counts(pdus: usize, edus: usize) -> Result<(), TransactionError> {
    if pdus > TRANSACTION_PDUS_MAX {
        return Err(TransactionError::TooManyPdus { count: pdus });
    }
    if edus > TRANSACTION_EDUS_MAX {
        return Err(TransactionError::TooManyEdus { count: edus });
    }
    Ok(())
}

/// How the receiver handled one PDU: `{}` for success, `{"error": "..."}` otherwise.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PduProcessingResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl PduProcessingResult {
    pub fn success() -> Self {
        Self { error: None }
    }

    pub fn failure(error: impl Into<String>) -> Self {
        Self {
            error: Some(error.into()),
        }
    }

    pub fn is_success(&self) -> bool {
        self.error.is_none()
    }
}

/// The 200 response to `PUT /send/{txnId}`, sent even when some PDUs failed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendTransactionResponse {
    /// For each processed PDU, keyed by event id.
    pub pdus: BTreeMap<String, PduProcessingResult>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn pdu(i: usize) -> RawPdu {
        json!({"type": "m.room.message", "n": i})
            .as_object()
            .unwrap()
            .clone()
    }

    fn edu() -> RawEdu {
        RawEdu {
            edu_type: "m.typing".into(),
            content: json!({"room_id": "!r:a", "user_id": "@u:a", "typing": true}),
        }
    }

    fn transaction(pdus: usize, edus: usize) -> Transaction {
        Transaction {
            origin: "a.example".into(),
            origin_server_ts: 1_234_567_890,
            pdus: (0..pdus).map(pdu).collect(),
            edus: (0..edus).map(|_| edu()).collect(),
        }
    }

    /// The spec's example body for `PUT /send/{txnId}` with its minimal PDU inlined.
    #[test]
    fn spec_example_deserializes() {
        let body = json!({
            "origin": "matrix.org",
            "origin_server_ts": 1234567890,
            "pdus": [{
                "type": "m.room.minimal_pdu",
                "room_id": "!somewhere:example.org",
                "content": {"see_room_version_spec":
                    "The event format changes depending on the room version."}
            }],
            "edus": [{"edu_type": "m.presence", "content": {"key": "value"}}]
        });
        let txn: Transaction = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(txn.origin, "matrix.org");
        assert_eq!(txn.pdus.len(), 1);
        assert_eq!(txn.edus[0].edu_type, "m.presence");
        assert_eq!(serde_json::to_value(&txn).unwrap(), body);
        txn.validate().unwrap();
    }

    #[test]
    fn edus_may_be_omitted_and_are_omitted_when_empty() {
        let txn: Transaction =
            serde_json::from_value(json!({"origin": "a", "origin_server_ts": 1, "pdus": []}))
                .unwrap();
        assert!(txn.edus.is_empty());
        txn.validate().unwrap();
        let out = serde_json::to_value(&txn).unwrap();
        assert_eq!(
            out,
            json!({"origin": "a", "origin_server_ts": 1, "pdus": []})
        );
    }

    #[test]
    fn unknown_fields_are_tolerated_and_required_fields_enforced() {
        let with_extra = json!({"origin": "a", "origin_server_ts": 1, "pdus": [],
                                "destination": "b", "future_field": [1]});
        assert!(serde_json::from_value::<Transaction>(with_extra).is_ok());
        for missing in ["origin", "origin_server_ts", "pdus"] {
            let mut body = json!({"origin": "a", "origin_server_ts": 1, "pdus": []});
            body.as_object_mut().unwrap().remove(missing);
            let error = serde_json::from_value::<Transaction>(body).unwrap_err();
            assert!(error.to_string().contains(missing), "{error}");
        }
        let not_object_pdu = json!({"origin": "a", "origin_server_ts": 1, "pdus": [1]});
        assert!(serde_json::from_value::<Transaction>(not_object_pdu).is_err());
    }

    #[test]
    fn count_limits_are_the_spec_limits() {
        transaction(0, 0).validate().unwrap();
        transaction(TRANSACTION_PDUS_MAX, TRANSACTION_EDUS_MAX)
            .validate()
            .unwrap();
        let error = transaction(TRANSACTION_PDUS_MAX + 1, 0)
            .validate()
            .unwrap_err();
        assert_eq!(error, TransactionError::TooManyPdus { count: 51 });
        assert_eq!(
            error.to_string(),
            "transaction holds 51 PDUs; the limit is 50"
        );
        assert_eq!(
            transaction(0, TRANSACTION_EDUS_MAX + 1).validate(),
            Err(TransactionError::TooManyEdus { count: 101 })
        );
    }

    #[test]
    fn round_trips_through_json() {
        let txn = transaction(3, 2);
        let text = serde_json::to_string(&txn).unwrap();
        assert_eq!(serde_json::from_str::<Transaction>(&text).unwrap(), txn);
    }

    /// The spec's example response for `PUT /send/{txnId}`.
    #[test]
    fn send_response_spec_example() {
        let body = json!({
            "pdus": {
                "$successful_event:example.org": {},
                "$failed_event:example.org": {
                    "error": "You are not allowed to send a message to this room."
                }
            }
        });
        let response: SendTransactionResponse = serde_json::from_value(body.clone()).unwrap();
        assert!(response.pdus["$successful_event:example.org"].is_success());
        assert_eq!(
            response.pdus["$failed_event:example.org"],
            PduProcessingResult::failure("You are not allowed to send a message to this room.")
        );
        assert_eq!(serde_json::to_value(&response).unwrap(), body);
        assert_eq!(
            serde_json::to_value(PduProcessingResult::success()).unwrap(),
            Value::Object(Default::default())
        );
    }
}
