//! A small, fast hasher for the tables that intern a resolution's event ids and state keys.
//!
//! The standard hasher (SipHash) is built to resist chosen collisions and costs about four
//! instructions per byte; interning hashes every id of the auth DAG once or more per
//! resolution, which made hashing a tenth of the whole resolution. This one mixes a machine
//! word at a time (the multiply-rotate scheme of the Rust compiler's own hasher).
//!
//! Invariants: the hash depends on the bytes written only (no seed, no randomness), and the
//! tables using it are only ever looked up, never iterated, so no hash order reaches a result. A peer
//! that crafts ids colliding under it slows its own resolution down (longer probes), but cannot
//! change what it computes.

use std::hash::Hasher;

/// An odd constant with well-spread bits (from the golden ratio), as multiply-rotate hashers use.
const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

/// Hashes a word at a time: `state = (state.rotate_left(5) ^ word) * MULTIPLIER`.
#[derive(Clone, Copy, Default)]
pub(crate) struct WordHasher {
    state: u64,
}

impl WordHasher {
    fn add_word(&mut self, word: u64) {
        self.state = (self.state.rotate_left(5) ^ word).wrapping_mul(MULTIPLIER);
    }
}

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let word: [u8; 8] = chunk.try_into().expect("chunks of eight bytes");
            self.add_word(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0_u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            // The length keeps "a" and "a\0" apart.
            self.add_word(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add_word(u64::from(byte));
    }

    fn write_u32(&mut self, value: u32) {
        self.add_word(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.add_word(value);
    }

    fn write_usize(&mut self, value: usize) {
        self.add_word(value as u64);
    }

    fn finish(&self) -> u64 {
        // Fold the high half into the low one: the last multiply mixes the top bits best.
        self.state ^ (self.state >> 29)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, BuildHasherDefault};

    fn hash(text: &str) -> u64 {
        BuildHasherDefault::<WordHasher>::default().hash_one(text)
    }

    #[test]
    fn equal_strings_hash_equal_and_near_ones_apart() {
        assert_eq!(hash("$abc"), hash("$abc"));
        let near = ["", "a", "a\0", "b", "$abcdefgh", "$abcdefgi", "$abcdefg"];
        for (index, left) in near.iter().enumerate() {
            for right in &near[index + 1..] {
                assert_ne!(hash(left), hash(right), "{left:?} vs {right:?}");
            }
        }
    }
}
