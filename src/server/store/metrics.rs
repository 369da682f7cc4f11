//! Figures the observers read: verdict counts, extremities, size, and a digest of the current
//! state that two servers agree on exactly when their current states are equal.
//!
//! Invariant: read-only; the digest depends on the current state map only.

use super::room::RoomStore;
use crate::proto::canonical_json::{Numbers, to_canonical_bytes};
use crate::proto::event::StateMap;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// One room's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoomMetrics {
    /// Events held, with or without state.
    pub events: u64,
    pub accepted: u64,
    pub soft_failed: u64,
    pub rejected: u64,
    /// Events held without state (not counting rejected ones, which count as rejected).
    pub outliers: u64,
    /// Events held in redacted form.
    pub redacted: u64,
    pub forward_extremities: u64,
    pub state_groups: u64,
    /// State resolutions computed (each set of states is resolved once).
    pub resolutions: u64,
    pub current_state_entries: u64,
    /// Lowercase hex sha256 of the canonical JSON array of `[type, state_key, event_id]`
    /// triples of the current state, sorted.
    pub current_state_digest: String,
    /// Canonical JSON bytes of the events held, plus an estimate of the state groups.
    pub bytes_approx: u64,
}

impl RoomStore {
    pub fn metrics(&self) -> RoomMetrics {
        let as_u64 = |count: usize| u64::try_from(count).unwrap_or(u64::MAX);
        RoomMetrics {
            events: as_u64(self.events.len()),
            accepted: self.counts.accepted,
            soft_failed: self.counts.soft_failed,
            rejected: self.counts.rejected,
            outliers: self.counts.outliers,
            redacted: self.counts.redacted,
            forward_extremities: as_u64(self.dag.extremities().len()),
            state_groups: as_u64(self.groups.len()),
            resolutions: as_u64(self.resolutions.len()),
            current_state_entries: as_u64(self.current_state.len()),
            current_state_digest: state_digest(&self.current_state),
            bytes_approx: as_u64(self.event_bytes + self.groups.bytes_approx()),
        }
    }

    pub fn current_state_digest(&self) -> String {
        state_digest(&self.current_state)
    }
}

/// The digest of a state map (see [`RoomMetrics::current_state_digest`]).
pub fn state_digest(state: &StateMap) -> String {
    let triples: Vec<Value> = state
        .iter()
        .map(|((event_type, state_key), event_id)| {
            Value::Array(vec![
                Value::String(event_type.clone()),
                Value::String(state_key.clone()),
                Value::String(event_id.clone()),
            ])
        })
        .collect();
    let bytes = to_canonical_bytes(&Value::Array(triples), Numbers::Strict)
        .expect("an array of strings is canonical JSON");
    Sha256::digest(&bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_the_empty_state_is_the_hash_of_an_empty_array() {
        // sha256("[]")
        assert_eq!(
            state_digest(&StateMap::new()),
            "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945"
        );
    }

    #[test]
    fn digest_depends_on_every_part_of_a_triple() {
        let state = |t: &str, k: &str, id: &str| {
            StateMap::from([((t.to_owned(), k.to_owned()), id.to_owned())])
        };
        let base = state_digest(&state("m.room.topic", "", "$a"));
        assert_ne!(base, state_digest(&state("m.room.name", "", "$a")));
        assert_ne!(base, state_digest(&state("m.room.topic", "x", "$a")));
        assert_ne!(base, state_digest(&state("m.room.topic", "", "$b")));
        assert_eq!(base.len(), 64);
    }
}
