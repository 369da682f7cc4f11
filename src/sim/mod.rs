//! The lab: fabrics, topologies, experiments, workload, nemesis, adversaries, the runner.

pub mod adversary;
pub mod experiment;
pub mod fast_fabric;
pub mod host;
pub mod network;
pub mod runner;
pub mod turmoil_fabric;
