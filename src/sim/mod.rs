//! The lab: fabrics, topologies, experiments, workload, nemesis, adversaries, the runner.

pub mod acks;
pub mod fast_fabric;
pub mod host;
pub mod network;
pub mod turmoil_fabric;
