//! [`SetDigest`]: a digest of a set of event ids kept up to date as ids enter and leave it, so
//! that telling whether two stores hold the same set costs nothing per held event.
//!
//! Each id contributes its SHA-256 read as four 64-bit words, added lane by lane (wrapping);
//! removing subtracts them. The digest of a set is therefore independent of the order in which
//! ids came and went, and equal sets have equal digests. Different sets collide only if their
//! sums of hashes agree in all 256 bits.
//!
//! Invariant: the digest equals [`SetDigest::of`] the set, as long as every id added is removed
//! at most once before being added again (the store adds an id when its record becomes
//! authorized and removes it when that record stops being so).

use sha2::{Digest, Sha256};

/// A digest of a set of event ids; `Default` is the digest of the empty set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SetDigest([u64; 4]);

impl SetDigest {
    /// The digest of the given ids, computed from scratch.
    pub fn of<'a>(ids: impl IntoIterator<Item = &'a str>) -> Self {
        let mut digest = Self::default();
        for id in ids {
            digest.add(id);
        }
        digest
    }

    pub fn add(&mut self, event_id: &str) {
        for (lane, word) in self.0.iter_mut().zip(words(event_id)) {
            *lane = lane.wrapping_add(word);
        }
    }

    pub fn remove(&mut self, event_id: &str) {
        for (lane, word) in self.0.iter_mut().zip(words(event_id)) {
            *lane = lane.wrapping_sub(word);
        }
    }

    /// The digest as 32 bytes.
    pub fn to_bytes(self) -> [u8; 32] {
        let mut bytes = [0; 32];
        for (chunk, lane) in bytes.chunks_exact_mut(8).zip(self.0) {
            chunk.copy_from_slice(&lane.to_le_bytes());
        }
        bytes
    }
}

fn words(event_id: &str) -> [u64; 4] {
    let hash = Sha256::digest(event_id.as_bytes());
    let mut words = [0; 4];
    for (word, chunk) in words.iter_mut().zip(hash.chunks_exact(8)) {
        *word = u64::from_le_bytes(chunk.try_into().expect("8-byte chunks"));
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        /// Adding and removing ids in any order gives the digest of the set that remains.
        #[test]
        fn the_digest_follows_the_set(ops in prop::collection::vec((0..12_u8, any::<bool>()), 0..60)) {
            let mut held = BTreeSet::new();
            let mut digest = SetDigest::default();
            for (id, insert) in ops {
                let id = format!("$event{id}");
                if insert && held.insert(id.clone()) {
                    digest.add(&id);
                } else if !insert && held.remove(&id) {
                    digest.remove(&id);
                }
            }
            prop_assert_eq!(digest, SetDigest::of(held.iter().map(String::as_str)));
            prop_assert_eq!(digest == SetDigest::default(), held.is_empty());
        }
    }

    #[test]
    fn different_sets_differ() {
        let one = SetDigest::of(["$a", "$b"]);
        assert_eq!(one, SetDigest::of(["$b", "$a"]));
        assert_ne!(one, SetDigest::of(["$a"]));
        assert_ne!(one, SetDigest::of(["$a", "$c"]));
        assert_ne!(one.to_bytes(), SetDigest::default().to_bytes());
    }
}
