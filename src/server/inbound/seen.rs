//! The answers of the transactions each origin sent last, for deduplication.
//!
//! A sender keeps one transaction in flight per destination and retries it, under the same
//! txn id, until it is answered; only then does it send the next. A retry therefore names one
//! of the last transactions of its origin, and a server needs to remember only those: the
//! last `per_origin_max` of each origin. The memory is bounded by the number of origins, not
//! by how long the run lasts (a global cap of ten thousand fills up in a long run; at a
//! thousand servers that is about a gigabyte in all), and a flood from one origin evicts only its own.
//!
//! Invariants: at most `per_origin_max` answers per origin, the newest last; a txn id appears
//! once per origin.

use super::TransactionAnswer;
use crate::server::name_key::NameMap;
use crate::server::store::id_map::IdKeys;
use std::collections::VecDeque;
use std::hash::BuildHasher;

/// An origin's remembered answers, by txn id, the newest last.
type OriginAnswers = VecDeque<Remembered>;

/// One remembered answer under its txn id, and the id's hash: a lookup compares the hashes
/// first and reads the id's bytes (a heap string, cold in a server's memory) only when they
/// agree, which for a new transaction, the common case, they do not.
#[derive(Debug)]
struct Remembered {
    hash: u64,
    txn_id: Box<str>,
    answer: TransactionAnswer,
}

impl Remembered {
    fn is(&self, hash: u64, txn_id: &str) -> bool {
        self.hash == hash && *self.txn_id == *txn_id
    }
}

fn hash_of(txn_id: &str) -> u64 {
    IdKeys.hash_one(txn_id)
}

/// Remembered answers, by origin, then txn id. Looked up per received transaction and never
/// read in its iteration order: the origins are hashed (server names share long prefixes,
/// which an ordered map compares byte by byte).
#[derive(Debug, Default)]
pub(crate) struct TransactionsSeen {
    by_origin: NameMap<OriginAnswers>,
}

impl TransactionsSeen {
    /// The remembered answer to `txn_id` from `origin`.
    pub(crate) fn get(&self, origin: &str, txn_id: &str) -> Option<&TransactionAnswer> {
        let hash = hash_of(txn_id);
        self.by_origin
            .get(origin)?
            .iter()
            .find(|held| held.is(hash, txn_id))
            .map(|held| &held.answer)
    }

    /// Remembers `answer` as the newest of `origin`, forgetting its oldest beyond
    /// `per_origin_max` (at least one is kept).
    pub(crate) fn remember(
        &mut self,
        origin: &str,
        txn_id: &str,
        answer: TransactionAnswer,
        per_origin_max: usize,
    ) {
        let per_origin_max = per_origin_max.max(1);
        let answers = self
            .by_origin
            .get_or_insert_with(origin, || VecDeque::with_capacity(per_origin_max));
        let hash = hash_of(txn_id);
        answers.retain(|held| !held.is(hash, txn_id));
        while answers.len() >= per_origin_max {
            answers.pop_front();
        }
        answers.push_back(Remembered {
            hash,
            txn_id: txn_id.into(),
            answer,
        });
    }

    /// How many answers are remembered in all.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_origin.values().map(VecDeque::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(text: &str) -> TransactionAnswer {
        TransactionAnswer::from(text)
    }

    #[test]
    fn each_origin_keeps_its_newest_answers() {
        let mut seen = TransactionsSeen::default();
        for txn in ["1", "2", "3"] {
            seen.remember("a.example", txn, answer(txn), 2);
        }
        seen.remember("b.example", "1", answer("b1"), 2);
        assert_eq!(
            seen.get("a.example", "1"),
            None,
            "the oldest of a is forgotten"
        );
        assert_eq!(seen.get("a.example", "2").map(|a| &**a), Some("2"));
        assert_eq!(seen.get("a.example", "3").map(|a| &**a), Some("3"));
        assert_eq!(seen.get("b.example", "1").map(|a| &**a), Some("b1"));
        assert_eq!(seen.get("c.example", "1"), None);
        assert_eq!(seen.len(), 3);
    }

    #[test]
    fn a_flood_from_one_origin_forgets_only_its_own() {
        let mut seen = TransactionsSeen::default();
        seen.remember("honest.example", "7", answer("kept"), 2);
        for txn in 0..1_000 {
            seen.remember("flood.example", &txn.to_string(), answer("x"), 2);
        }
        assert_eq!(seen.get("honest.example", "7").map(|a| &**a), Some("kept"));
        assert_eq!(seen.len(), 3);
    }

    #[test]
    fn remembering_a_txn_again_keeps_it_once() {
        let mut seen = TransactionsSeen::default();
        seen.remember("a.example", "1", answer("first"), 2);
        seen.remember("a.example", "2", answer("second"), 2);
        seen.remember("a.example", "1", answer("again"), 2);
        assert_eq!(seen.get("a.example", "1").map(|a| &**a), Some("again"));
        assert_eq!(seen.get("a.example", "2").map(|a| &**a), Some("second"));
        assert_eq!(seen.len(), 2);
        seen.remember("a.example", "3", answer("third"), 0);
        assert_eq!(seen.len(), 1, "a bound of 0 still keeps the newest");
    }
}
