//! `PUT /_matrix/federation/v1/send/{txnId}`.
//!
//! A copy of a transaction that arrives while the first is still being processed (the sender
//! timed out and retried) waits for the first's answer instead of processing it again.

use super::TransactionAnswer;
use super::pdu_text::PduText;
use crate::proto::wire::{
    ErrorCode, MatrixError, PduProcessingResult, RawEdu, SendTransactionResponse, Transaction,
    TransactionTexts,
};
use crate::server::Inner;
use crate::server::http::{Incoming, TextResult};
use serde::Deserialize as _;
use serde_json::Value;
use std::collections::BTreeMap;
use std::rc::Rc;

impl Inner {
    /// The answer is written as text (the bytes its JSON object would be written as, see
    /// the test), and a copy of it remembered for retries of the transaction.
    pub(crate) async fn on_send_transaction(self: Rc<Self>, incoming: Incoming) -> TextResult {
        let txn_id = incoming.params[0].clone();
        let key = (incoming.origin.clone(), txn_id);
        if let Some(answer) = self.earlier_answer(&key).await {
            self.metrics.borrow_mut().transactions_duplicate += 1;
            return Ok(answer.to_string());
        }
        let transaction = match incoming.transaction {
            Some(texts) => texts,
            None => {
                let body = incoming.body.unwrap_or(Value::Null);
                let transaction = transaction_of(body).map_err(|e| {
                    self.metrics.borrow_mut().transactions_refused += 1;
                    MatrixError::new(ErrorCode::BadJson, format!("not a transaction: {e}"))
                })?;
                TransactionTexts::from(transaction)
            }
        };
        // The spec's limits are a malformed request, not an oversized body: 400.
        let refuse = |error: String| {
            self.metrics.borrow_mut().transactions_refused += 1;
            Err(MatrixError::new(ErrorCode::BadJson, error))
        };
        let limits = self.config.defences.transaction_limits;
        let counts = transaction.validate().map_err(|e| e.to_string());
        if let Err(error) = &counts
            && limits
        {
            return refuse(error.clone());
        }
        // Each PDU's facts read once (by its text's hash, when seen before in this run), for
        // the size check and for the checks of `receive_pdu`.
        let TransactionTexts {
            origin, pdus, edus, ..
        } = transaction;
        let pdus: Vec<PduText> = pdus
            .into_iter()
            .map(|text| self.read_pdu_text(text))
            .collect();
        if counts.is_ok()
            && limits
            && let Err(error) = check_pdu_bytes(pdus.iter().map(|pdu| pdu.facts.length))
        {
            return refuse(error);
        }
        if origin != incoming.origin {
            self.metrics.borrow_mut().transactions_refused += 1;
            return Err(MatrixError::new(
                ErrorCode::Forbidden,
                format!(
                    "transaction origin {} is not the signing server {}",
                    origin, incoming.origin
                ),
            ));
        }
        let admitted = {
            let mut gate = self.inbound_gate.borrow_mut();
            let admitted = gate.admit(
                &self.config.inbound_limits,
                &incoming.origin,
                pdus.len(),
                self.clock.now_ms(),
                self.config.defences.rate_limits,
            );
            let mut metrics = self.metrics.borrow_mut();
            metrics.transactions_in_flight_peak = metrics
                .transactions_in_flight_peak
                .max(gate.in_flight_total());
            admitted
        };
        if let Err(refusal) = admitted {
            self.metrics.borrow_mut().transactions_rate_limited += 1;
            return Err(MatrixError::new(
                ErrorCode::LimitExceeded,
                refusal.to_string(),
            ));
        }
        let (answer_sender, answer_receiver) = super::once::once_channel();
        self.transactions_in_flight
            .borrow_mut()
            .insert(key.clone(), answer_receiver);
        let in_flight = InFlight {
            server: self.clone(),
            origin: incoming.origin.clone(),
            key: key.clone(),
            answer: answer_sender,
        };
        self.metrics.borrow_mut().transactions_received += 1;
        let mut results = BTreeMap::new();
        for pdu in pdus {
            let (event_id, result) = self.clone().receive_pdu(&incoming.origin, pdu).await;
            results.insert(event_id, result);
        }
        for edu in edus {
            self.receive_edu(&incoming.origin, edu);
        }
        self.store.borrow().flush();
        if self.config.record_acknowledged {
            self.acknowledged.borrow_mut().extend(
                results
                    .iter()
                    .filter(|(_, result)| result.error.is_none())
                    .map(|(id, _)| id.clone()),
            );
        }
        let answer = answer_text(&SendTransactionResponse { pdus: results });
        // Other servers give the same answer for the same event: one copy for the run.
        let answer: TransactionAnswer = match &self.pdu_cache {
            Some(cache) => cache.answers().intern(answer),
            None => answer.into(),
        };
        self.remember_transaction(key, answer.clone());
        in_flight.answer.announce(answer.clone());
        Ok(answer.to_string())
    }

    /// The answer of an earlier copy of transaction `key`: remembered, or awaited when that
    /// copy is still being processed. `None` when this copy must be processed: no copy came
    /// before, or the one in flight was cancelled without an answer.
    async fn earlier_answer(&self, key: &(String, String)) -> Option<TransactionAnswer> {
        loop {
            let remembered = self.transactions_seen.borrow().get(&key.0, &key.1).cloned();
            if remembered.is_some() {
                return remembered;
            }
            let in_flight = self.transactions_in_flight.borrow().get(key).cloned();
            if let Some(answer) = in_flight?.recv().await {
                return Some(answer);
            }
            // The first copy was dropped unanswered; its guard removed the entry. Look again:
            // another retry may have started processing meanwhile.
        }
    }

    fn remember_transaction(&self, (origin, txn_id): (String, String), answer: TransactionAnswer) {
        let per_origin_max = self.config.transactions_remembered_per_origin;
        self.transactions_seen
            .borrow_mut()
            .remember(&origin, &txn_id, answer, per_origin_max);
    }

    /// Handles one PDU of a transaction and says how it went, under the event id it claims.
    async fn receive_pdu(
        self: Rc<Self>,
        origin: &str,
        mut pdu: PduText,
    ) -> (String, PduProcessingResult) {
        self.metrics.borrow_mut().pdus_received += 1;
        let facts = pdu.facts.clone();
        let claimed_id = facts.claimed_id.clone();
        let Some(room_id) = facts.room_id.clone() else {
            let id = claimed_id.unwrap_or_default();
            return (id, PduProcessingResult::failure("PDU has no room_id"));
        };
        self.join_ended(&room_id).await;
        let version = self
            .store
            .borrow()
            .room(&room_id)
            .map(|room| room.room_version());
        let Some(version) = version else {
            let id = claimed_id.unwrap_or_default();
            return (
                id,
                PduProcessingResult::failure(format!("this server is not in room {room_id}")),
            );
        };
        // From room v3 on the id is the reference hash, which a dropped PDU still has: the
        // sender learns which of its PDUs failed, and two failures never share a key. Only
        // computed on failure: hashing every PDU again is a measurable cost at scale.
        let failed_id = |pdu: &mut PduText| {
            crate::proto::pdu::event_id(&pdu.take_object(), version)
                .ok()
                .or_else(|| claimed_id.clone())
                .unwrap_or_default()
        };
        if let Err(reason) = self.check_pdu_acl(origin, &room_id, facts.sender.as_deref()) {
            return (failed_id(&mut pdu), PduProcessingResult::failure(reason));
        }
        let digest = pdu.digest.clone();
        let parsed = self.parse_received_pdu_by(|| digest, || pdu.take_object(), version);
        let checked = match self.check_parsed_pdu(&parsed, version).await {
            Ok(checked) => checked,
            Err(reason) => {
                return (
                    failed_id(&mut pdu),
                    PduProcessingResult::failure(reason.to_string()),
                );
            }
        };
        let event_id = checked.pdu.event_id().to_owned();
        match self.place_event(origin, &room_id, checked).await {
            Ok(()) => (event_id, PduProcessingResult::success()),
            Err(reason) => (event_id, PduProcessingResult::failure(reason)),
        }
    }
}

/// A transaction's PDUs are each at most the spec's 65,536 bytes (`lengths`, as serde_json
/// writes each); one over is refused whole (the format check would drop it alone, after its
/// siblings were processed).
fn check_pdu_bytes(lengths: impl Iterator<Item = usize>) -> Result<(), String> {
    for (index, bytes) in lengths.enumerate() {
        if bytes > crate::proto::pdu::PDU_BYTES_MAX {
            return Err(format!(
                "pdus.{index} is {bytes} bytes; at most {} are allowed",
                crate::proto::pdu::PDU_BYTES_MAX
            ));
        }
    }
    Ok(())
}

/// The transaction a body holds: what `serde_json::from_value::<Transaction>` gives, with the
/// PDUs' JSON objects taken as they are (the derived deserializer copies every entry of every
/// object into a new map, a measurable cost at scale). Only a body of the plain shape, where
/// that copy is the whole work, takes this way: an object whose `origin` is a string,
/// `origin_server_ts` a non-negative integer, `pdus` an array of objects and `edus`, if
/// there, what `Vec<RawEdu>` reads. Any other body goes through `from_value`, for the same
/// value or the same error; unknown keys are ignored either way.
fn transaction_of(body: Value) -> Result<Transaction, serde_json::Error> {
    let Value::Object(map) = &body else {
        return serde_json::from_value(body);
    };
    let plain = map.get("origin").is_some_and(Value::is_string)
        && map
            .get("origin_server_ts")
            .is_some_and(|ts| ts.as_u64().is_some())
        && map
            .get("pdus")
            .and_then(Value::as_array)
            .is_some_and(|pdus| pdus.iter().all(Value::is_object));
    let edus = match map.get("edus") {
        None => Ok(Vec::new()),
        Some(edus) => Vec::<RawEdu>::deserialize(edus),
    };
    let (true, Ok(edus)) = (plain, edus) else {
        return serde_json::from_value(body);
    };
    let Value::Object(mut map) = body else {
        unreachable!("matched as an object above");
    };
    let mut take = |key: &str| map.remove(key).expect("checked present above");
    let (Value::String(origin), Value::Number(ts), Value::Array(pdus)) =
        (take("origin"), take("origin_server_ts"), take("pdus"))
    else {
        unreachable!("shapes checked above");
    };
    let pdus = pdus
        .into_iter()
        .map(|pdu| match pdu {
            Value::Object(object) => object,
            _ => unreachable!("every PDU checked to be an object above"),
        })
        .collect();
    Ok(Transaction {
        origin,
        origin_server_ts: ts.as_u64().expect("checked above"),
        pdus,
        edus,
    })
}

/// Marks an admitted transaction finished when processing ends, however it ends (a crash
/// drops the future mid-way): its admission is released and its in-flight entry removed, so
/// retries waiting on `answer` either got it or learn it will not come.
struct InFlight {
    server: Rc<Inner>,
    origin: String,
    key: (String, String),
    answer: super::once::OnceSender<TransactionAnswer>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.server.inbound_gate.borrow_mut().finish(&self.origin);
        self.server
            .transactions_in_flight
            .borrow_mut()
            .remove(&self.key);
    }
}

/// The JSON text of a transaction's answer: what `serde_json` writes for its JSON object
/// (the struct's one field, and each result's one optional field, leave no order to differ).
fn answer_text(answer: &SendTransactionResponse) -> String {
    serde_json::to_string(answer).expect("a transaction answer serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::wire::RawPdu;
    use crate::proto::xmatrix::strategies::any_json;
    use proptest::prelude::*;
    use serde_json::json;

    /// What `from_value` makes of `body`, as `transaction_of` must make of it too.
    fn both_ways(body: Value) -> (Result<Transaction, String>, Result<Transaction, String>) {
        let direct = serde_json::from_value::<Transaction>(body.clone()).map_err(|e| e.to_string());
        let taken = transaction_of(body).map_err(|e| e.to_string());
        (taken, direct)
    }

    #[test]
    fn a_transaction_is_read_as_from_value_reads_it() {
        let pdu = json!({"type": "m.room.message", "content": {"body": "hi", "n": [1, 2.5]}});
        let edu = json!({"edu_type": "m.typing", "content": {"typing": true}});
        let bodies = [
            json!({"origin": "a", "origin_server_ts": 5, "pdus": [pdu, pdu]}),
            json!({"origin": "a", "origin_server_ts": 5, "pdus": [], "edus": [edu]}),
            json!({"origin": "a", "origin_server_ts": 5, "pdus": [pdu], "zz": 1, "a": null}),
            json!({"origin": "a", "origin_server_ts": 5, "pdus": [pdu], "edus": null}),
            json!({"origin": "a", "origin_server_ts": 5, "pdus": [pdu], "edus": [1]}),
            json!({"origin": "a", "origin_server_ts": 5.0, "pdus": [pdu]}),
            json!({"origin": "a", "origin_server_ts": -5, "pdus": [pdu]}),
            json!({"origin": 1, "origin_server_ts": 5, "pdus": [pdu]}),
            json!({"origin": "a", "origin_server_ts": 5, "pdus": [pdu, []]}),
            json!({"origin": "a", "origin_server_ts": 5, "pdus": {}}),
            json!({"origin": "a", "pdus": [pdu]}),
            json!(["a", 5, [pdu]]),
            json!(null),
            json!("a"),
        ];
        for body in bodies {
            let (taken, direct) = both_ways(body.clone());
            assert_eq!(taken, direct, "{body}");
        }
    }

    proptest! {
        /// Any value under any of the keys, or a key left out, reads the same both ways.
        #[test]
        fn any_transaction_body_reads_as_from_value_reads_it(
            values in prop::collection::vec(prop::option::of(any_json()), 5),
            plain_pdus in any::<bool>(),
        ) {
            let mut body = serde_json::Map::new();
            let keys = ["origin", "origin_server_ts", "pdus", "edus", "other"];
            for (key, value) in keys.iter().zip(values) {
                if let Some(value) = value {
                    body.insert((*key).to_owned(), value);
                }
            }
            if plain_pdus {
                body.insert("origin".into(), json!("a"));
                body.insert("origin_server_ts".into(), json!(7));
                body.insert("pdus".into(), json!([{"a": 1}, {}]));
            }
            let body = Value::Object(body);
            check_read_as_texts(&body, &body.to_string())?;
            check_read_as_texts(&body, &serde_json::to_string_pretty(&body).unwrap())?;
            let (taken, direct) = both_ways(body);
            prop_assert_eq!(taken, direct);
        }
    }

    /// What `TransactionTexts::read` makes of `text` (whose JSON is `body`), checked against
    /// `transaction_of`: read only when that reads the body too, with equal fields and each
    /// PDU's text parsing to the object `transaction_of` holds.
    fn check_read_as_texts(body: &Value, text: &str) -> Result<bool, TestCaseError> {
        let Some(texts) = TransactionTexts::read(text.as_bytes()) else {
            return Ok(false);
        };
        let direct = transaction_of(body.clone());
        prop_assert!(
            direct.is_ok(),
            "read as texts only what reads as a transaction"
        );
        let direct = direct.unwrap();
        prop_assert_eq!(&texts.origin, &direct.origin);
        prop_assert_eq!(texts.origin_server_ts, direct.origin_server_ts);
        prop_assert_eq!(&texts.edus, &direct.edus);
        let objects: Vec<RawPdu> = texts
            .pdus
            .iter()
            .map(|pdu| serde_json::from_str(pdu.get()).unwrap())
            .collect();
        prop_assert_eq!(objects, direct.pdus);
        Ok(true)
    }

    #[test]
    fn plain_bodies_are_read_as_texts_and_others_are_not() {
        let pdu = json!({"type": "m.room.message", "content": {"body": "hi"}});
        let plain = json!({"origin": "a", "origin_server_ts": 5, "pdus": [pdu, {}], "z": 1});
        for text in [
            plain.to_string(),
            serde_json::to_string_pretty(&plain).unwrap(),
        ] {
            assert!(check_read_as_texts(&plain, &text).unwrap(), "{text}");
        }
        let duplicated = r#"{"origin": "a", "origin": "b", "origin_server_ts": 5, "pdus": []}"#;
        let not_objects = json!({"origin": "a", "origin_server_ts": 5, "pdus": [[], 1]});
        let bad_edus = json!({"origin": "a", "origin_server_ts": 5, "pdus": [], "edus": null});
        for text in [
            duplicated.to_owned(),
            not_objects.to_string(),
            bad_edus.to_string(),
            "{".to_owned(),
        ] {
            assert!(TransactionTexts::read(text.as_bytes()).is_none(), "{text}");
        }
    }

    #[test]
    fn the_answer_text_is_the_text_of_its_json_object() {
        let mut pdus = BTreeMap::new();
        pdus.insert("$b:x".to_owned(), PduProcessingResult::success());
        pdus.insert(
            "$a\"\u{1}é".to_owned(),
            PduProcessingResult::failure("no \"room\"\n"),
        );
        pdus.insert(String::new(), PduProcessingResult::failure(""));
        for answer in [
            SendTransactionResponse { pdus },
            SendTransactionResponse::default(),
        ] {
            let object = serde_json::to_value(&answer).unwrap();
            assert_eq!(answer_text(&answer), object.to_string());
        }
    }
}
