//! Experiment and topology files: their TOML formats, loading with errors a researcher can
//! act on, validation against the topology, and the resolved [`RunPlan`] a runner executes.
//!
//! Flow: [`load_experiment`] reads `experiments/NAME.toml` into an [`ExperimentFile`] (serde,
//! unknown keys rejected everywhere), loads its topology ([`TopologyFile`] into a
//! [`Topology`] of concrete servers), and [`validate`]s the two together into an
//! [`Experiment`], collecting every problem rather than the first. [`Experiment::resolve`]
//! then expands it for one seed into a [`RunPlan`]. Every [`Problem`] names the file, the key
//! path (`fault[2].sides[1][0]`), the line when known, and what was expected.
//!
//! # Defaults (the constants live in `defaults.rs`)
//!
//! | key | default |
//! |---|---|
//! | `room_version` | `"12"` |
//! | `settle` | `"60s"` |
//! | `seeds` | `[1]` |
//! | `slow` | `false` |
//! | `fabric` | the topology's `fabric`, else `turmoil` up to 32 servers and `fast` above |
//! | `workload.users_per_server` | the topology's counts |
//! | `workload.messages_per_second` | `1` (whole room) |
//! | `workload.state_changes_per_second`, `typing_per_second`, `receipts_per_second` | `0` |
//! | `workload.join` / `join_over` | `"at-start"` / `"30s"` (used by `"staggered"`) |
//! | `workload.state_changes_by` | `"admins"` |
//! | `workload.state_change_kinds` | `["topic", "name", "power-levels", "membership"]` |
//! | `workload.admins_per_server` | `0` (the creator is the only admin) |
//! | `workload.creator` | the first honest server with a user |
//! | `workload.senders_per_server` | every user sends |
//! | `fault.until` / `fault.for` | none: a heal/restart or the final phase ends the fault |
//! | `fault.one_way` (cut), `fault.lose_unflushed` (crash) | `false` |
//! | `fault.latency_max` | `latency_min` |
//! | `adversary.from` / `adversary.until` | `"0s"` / the start of the final phase |
//! | `adversary.params` | per attack, see `Attack::parameters` |
//! | `expect.converged` | `true`; every other expectation is unchecked unless given |
//! | topology `users_per_server` | `1` |
//! | topology `links.default` | `latency_min = "5ms"`, `latency_max = "20ms"`, `loss = 0` |
//! | topology `group.NAME.link` | `links.default` |
//! | link `latency_max` / `loss` | `latency_min` / `0` |
//!
//! Invariant: nothing in this module reads a clock or draws randomness except the partition
//! shapes of [`Experiment::resolve`], which draw from the RNG passed in.

pub mod adversary;
pub mod defaults;
pub mod duration;
pub mod expect;
#[allow(clippy::module_inception)]
pub mod experiment;
pub mod fault;
pub mod load;
pub mod numbers;
pub mod plan;
pub mod problem;
pub mod schedule;
pub mod source;
pub mod topology;
pub mod workload;

pub use adversary::{AdversaryFile, Attack, AttackParams, ParamValue};
pub use duration::{SignedDuration, SimDuration};
pub use expect::{Bound, Expect};
pub use experiment::{
    Adversary, Experiment, ExperimentFile, FabricChoice, TopologyRef, TopologySource, validate,
};
pub use fault::{Fault, FaultEffect, FaultFile, FaultKind, Shape};
pub use load::{load_all, load_experiment, load_topology, parse_experiment, parse_topology};
pub use numbers::{Probability, Rate};
pub use plan::{
    Action, LinkSet, PlannedAdversary, PlannedFault, PlannedServer, PlannedUser, RunPlan, Step,
    TimedAction, UserRef, WorkloadPlan,
};
pub use problem::{KeyPath, LoadError, Problem, Severity};
pub use schedule::{Undo, UndoCause};
pub use topology::{Fabric, GroupId, LinkProfile, ServerId, Topology, TopologyFile};
pub use workload::{JoinMode, StateChangeKind, StateChangers, Workload};
