//! A transaction's PDUs read by their exact text: what a receiver learns of a PDU before
//! checking it (its size, room, claimed id and sender, and the digest the PDU cache keys it
//! by), remembered run-wide by the text's hash, so that a PDU that reaches a hundred servers
//! as the same bytes is parsed into a JSON object once, not once per receiver.
//!
//! Every fact is what the receiver read from the PDU's JSON object before this existed, so a
//! transaction is handled the same whichever way its facts were had: `length` and `digest` are
//! those of the object as serde_json writes it (for a PDU an honest server wrote, its very
//! text), `room_id`, `claimed_id` and `sender` the object's string values at those keys.
//!
//! Invariants: the facts of a text are a pure function of its bytes (the memo is keyed by the
//! SHA-256 of exactly those bytes, and a lookup changes nothing but the memo's order of
//! forgetting); bounded, first in first out; never iterated.

use crate::proto::wire::RawPdu;
use crate::server::Inner;
use crate::server::fifo_map::FifoMap;
use crate::server::store::id_map::IdKeys;
use crate::server::verify::PduDigest;
use serde_json::Value;
use serde_json::value::RawValue;
use std::cell::RefCell;
use std::rc::Rc;

/// How many texts' facts the memo holds: as many as the PDU cache holds PDUs.
const TEXTS_MAX: usize = crate::server::PDU_CACHE_ENTRIES_DEFAULT;

/// What a receiver reads from a PDU's JSON object before checking it.
pub(crate) struct PduTextFacts {
    /// The digest of the object as serde_json writes it, when that is not the text itself.
    rewritten: Option<PduDigest>,
    /// The length of the object as serde_json writes it (the size the spec's limit applies to).
    pub length: usize,
    pub room_id: Option<String>,
    pub claimed_id: Option<String>,
    pub sender: Option<String>,
}

impl PduTextFacts {
    /// The facts of `object`, read from `text`.
    fn of_object(object: &RawPdu, text: &str) -> Self {
        let bytes = serde_json::to_vec(object).expect("a JSON map serializes");
        let string = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_owned);
        Self {
            rewritten: (bytes != text.as_bytes()).then(|| PduDigest::of_bytes(&bytes)),
            length: bytes.len(),
            room_id: string("room_id"),
            claimed_id: string("event_id"),
            sender: string("sender"),
        }
    }
}

/// One PDU of a transaction as received: its text, its facts, and its digest.
pub(crate) struct PduText {
    pub text: Box<RawValue>,
    pub facts: Rc<PduTextFacts>,
    /// The digest of the object as serde_json writes it: the PDU cache's key, before the room
    /// version completes it.
    pub digest: PduDigest,
    /// The object, when it was parsed to learn the facts (else parsed when needed).
    object: Option<RawPdu>,
}

impl PduText {
    /// The PDU's JSON object: the one parsed for the facts, or parsed now. The text is a JSON
    /// object (see `TransactionTexts::read`), so this only fails for a text that is not, and
    /// then gives an empty object, which no check accepts.
    pub fn take_object(&mut self) -> RawPdu {
        self.object
            .take()
            .unwrap_or_else(|| serde_json::from_str(self.text.get()).unwrap_or_default())
    }
}

/// Facts of PDU texts seen in this run, by the SHA-256 of the text.
pub(crate) struct PduTextMemo {
    facts: RefCell<FifoMap<[u8; 32], Rc<PduTextFacts>, IdKeys>>,
}

impl Default for PduTextMemo {
    fn default() -> Self {
        Self {
            facts: RefCell::new(FifoMap::with_hasher(TEXTS_MAX)),
        }
    }
}

impl Inner {
    /// Reads one PDU text of a transaction: its facts from the run's memo when the same bytes
    /// were read before, else from its JSON object, parsed now.
    pub(crate) fn read_pdu_text(&self, text: Box<RawValue>) -> PduText {
        let text_digest = PduDigest::of_bytes(text.get().as_bytes());
        let memo = self.pdu_cache.as_ref().map(|cache| cache.pdu_texts());
        let key = memo.map(|_| text_digest.finish());
        let found = memo
            .zip(key)
            .and_then(|(memo, key)| memo.facts.borrow().get(&key).cloned());
        let (facts, object) = match found {
            Some(facts) => (facts, None),
            None => {
                let object: RawPdu = serde_json::from_str(text.get()).unwrap_or_default();
                let facts = Rc::new(PduTextFacts::of_object(&object, text.get()));
                if let (Some(memo), Some(key)) = (memo, key) {
                    memo.facts.borrow_mut().insert(key, facts.clone());
                }
                (facts, Some(object))
            }
        };
        let digest = facts.rewritten.clone().unwrap_or(text_digest);
        PduText {
            text,
            facts,
            digest,
            object,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::xmatrix::strategies::any_json;
    use proptest::prelude::*;

    /// The facts as the receiver read them from the object before this existed.
    fn facts_of_object(object: &RawPdu) -> (usize, Option<String>, Option<String>, Option<String>) {
        let bytes = serde_json::to_vec(object).unwrap();
        let string = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_owned);
        (
            bytes.len(),
            string("room_id"),
            string("event_id"),
            string("sender"),
        )
    }

    proptest! {
        /// Whatever the text (as serde_json writes an object, or spaced out), its facts and
        /// digest are those of its object as serde_json writes it.
        #[test]
        fn the_facts_of_a_text_are_those_of_its_object(
            values in prop::collection::vec(any_json(), 4),
            strings in prop::collection::vec(prop::option::of("[a-z$!:]{0,8}"), 3),
            spaced in any::<bool>(),
        ) {
            let mut object = RawPdu::new();
            for (key, value) in ["content", "type", "depth", "z"].iter().zip(values) {
                object.insert((*key).to_owned(), value);
            }
            for (key, value) in ["room_id", "event_id", "sender"].iter().zip(strings) {
                if let Some(value) = value {
                    object.insert((*key).to_owned(), Value::String(value));
                }
            }
            let text = match spaced {
                true => serde_json::to_string_pretty(&object).unwrap(),
                false => serde_json::to_string(&object).unwrap(),
            };
            let text_digest = PduDigest::of_bytes(text.as_bytes());
            let facts = PduTextFacts::of_object(&object, &text);
            let (length, room_id, claimed_id, sender) = facts_of_object(&object);
            prop_assert_eq!(facts.length, length);
            prop_assert_eq!(&facts.room_id, &room_id);
            prop_assert_eq!(&facts.claimed_id, &claimed_id);
            prop_assert_eq!(&facts.sender, &sender);
            let digest = facts.rewritten.clone().unwrap_or(text_digest);
            prop_assert_eq!(digest.finish(), PduDigest::of_raw(&object).0.finish());
            prop_assert_eq!(facts.rewritten.is_some(), text != serde_json::to_string(&object).unwrap());
        }
    }
}
