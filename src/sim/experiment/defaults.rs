//! Every default of the experiment and topology formats, in one place. The serde `default`
//! attributes of the file types point here, and `mod.rs` documents the same list for readers.
//!
//! Invariant: a key left out of a file behaves exactly as if it were written with the value
//! given here.

use super::duration::SimDuration;
use super::numbers::Rate;
use super::workload::StateChangeKind;

/// `room_version`: the newest version, as new rooms get on the public network.
pub const ROOM_VERSION: &str = "12";
/// `settle`: the quiet final phase in which every fault is undone and convergence is required.
pub const SETTLE_MS: u64 = 60_000;
/// `seeds`: one run.
pub const SEEDS: [u64; 1] = [1];
/// Fabric choice when neither the experiment nor the topology names one: turmoil up to this
/// many servers (its cost grows about as n^3), the fast fabric above.
pub const TURMOIL_SERVERS_MAX: usize = 32;
/// `workload.messages_per_second`, for the whole room.
pub const MESSAGES_PER_SECOND: f64 = 1.0;
/// `workload.join_over`: the window over which `join = "staggered"` spreads the joins.
pub const JOIN_OVER_MS: u64 = 30_000;
/// `workload.state_change_kinds`: what state changes draw from. Bans are left out by default
/// because each one removes a sender for the rest of the run.
pub const STATE_CHANGE_KINDS: [StateChangeKind; 4] = [
    StateChangeKind::Topic,
    StateChangeKind::Name,
    StateChangeKind::PowerLevels,
    StateChangeKind::Membership,
];
/// `expect.converged`: every run ends with a liveness phase, so convergence is expected
/// unless an experiment says otherwise.
pub const EXPECT_CONVERGED: bool = true;

pub fn room_version() -> super::experiment::RoomVersionId {
    super::experiment::RoomVersionId(ROOM_VERSION.to_owned())
}

pub fn settle() -> SimDuration {
    SimDuration::from_ms(SETTLE_MS).unwrap_or_default()
}

pub fn seeds() -> Vec<u64> {
    SEEDS.to_vec()
}

pub fn messages_per_second() -> Rate {
    Rate::new(MESSAGES_PER_SECOND).unwrap_or_default()
}

pub fn join_over() -> SimDuration {
    SimDuration::from_ms(JOIN_OVER_MS).unwrap_or_default()
}

pub fn state_change_kinds() -> Vec<StateChangeKind> {
    STATE_CHANGE_KINDS.to_vec()
}

pub fn expect_converged() -> Option<bool> {
    Some(EXPECT_CONVERGED)
}
