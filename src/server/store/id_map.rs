//! [`IdMap`]: the store's maps keyed by event id, read by lookup on every placed event; its
//! hasher [`IdKeys`] also serves the other lookup-only maps keyed by names or digests (peers'
//! keys by server name, the run-wide memos by SHA-256).
//!
//! A hash map with a fixed, fast hasher over the id's bytes. An ordered map of string keys
//! compared the ids byte by byte a dozen times per lookup (measured at 100 servers: 13% of the
//! run in those comparisons); a hash needs one pass over the id and one comparison.
//!
//! Invariant: nothing reads an `IdMap` in its iteration order where the order can reach a
//! result. Whoever iterates sorts first ([`sorted_by_id`]) or folds with an order-free
//! operation (a count, a maximum, a set digest). The hasher has no random state, so even a
//! slip would replay identically; but the order would then follow the hash function.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

/// A map keyed by event id (see the module comment for how it may be iterated).
pub(crate) type IdMap<V> = HashMap<Arc<str>, V, IdKeys>;

/// The entries of `map` in event-id (byte) order.
pub(crate) fn sorted_by_id<V>(map: &IdMap<V>) -> Vec<(&Arc<str>, &V)> {
    let mut entries: Vec<(&Arc<str>, &V)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    entries
}

/// Builds [`IdHasher`]s. Event ids are SHA-256 hashes in base64 for room versions 3 and
/// later, but ids chosen by their sender in versions 1 and 2 (`$1:a`, `$2:a`, ...), so every
/// byte is hashed, not a prefix.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IdKeys;

impl BuildHasher for IdKeys {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

/// Folds eight bytes at a time: rotate, xor, multiply by an odd constant (the multiply
/// spreads every input bit over the high bits, which the hash table reads first).
#[derive(Debug)]
pub(crate) struct IdHasher(u64);

const SPREAD: u64 = 0x517c_c1b7_2722_0a95;

impl IdHasher {
    fn fold(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SPREAD);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // The length first, so that the zero padding of the last word cannot collide.
        self.fold(bytes.len() as u64);
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.fold(u64::from_le_bytes(chunk.try_into().expect("eight bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.fold(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.fold(u64::from(byte));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn sequential_ids_spread_over_the_high_bits() {
        // Room versions 1 and 2 let a sender number its ids; they must not collide.
        let top_bits: BTreeSet<u64> = (0..1_000)
            .map(|n| IdKeys.hash_one(format!("$event{n}:server.example")) >> 54)
            .collect();
        assert!(
            top_bits.len() > 600,
            "only {} buckets of 1024",
            top_bits.len()
        );
    }

    #[test]
    fn every_byte_counts() {
        let a = "$aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        let b = "$aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab";
        assert_ne!(IdKeys.hash_one(a), IdKeys.hash_one(b));
        assert_ne!(IdKeys.hash_one("$a"), IdKeys.hash_one("$a\0"));
    }

    #[test]
    fn digests_differing_in_any_byte_hash_apart() {
        let key = [7u8; 32];
        for at in 0..32 {
            let mut other = key;
            other[at] ^= 1;
            assert_ne!(IdKeys.hash_one(key), IdKeys.hash_one(other), "byte {at}");
        }
    }

    #[test]
    fn sorted_entries_are_in_byte_order() {
        let mut map = IdMap::default();
        for id in ["$c", "$a", "$b", "$B"] {
            map.insert(Arc::<str>::from(id), id.len());
        }
        let ids: Vec<&str> = sorted_by_id(&map)
            .into_iter()
            .map(|(id, _)| &**id)
            .collect();
        assert_eq!(ids, ["$B", "$a", "$b", "$c"]);
    }
}
