//! Observers and what they record: consistency metrics sampled over simulated time, fault
//! windows, expectations with their verdicts.
//!
//! Invariant: observers read servers through read-only views and never change what they
//! observe; everything recorded here is a function of the simulation, so a replay with the same
//! seed records the same values (wall-clock figures live in [`Perf`] only).

pub mod record;
