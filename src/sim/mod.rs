//! The lab: fabrics, topologies, experiments, workload, nemesis, adversaries, the runner.

pub mod adversary;
pub mod attempt;
pub mod experiment;
pub mod experiment_toml;
pub mod fast_fabric;
pub mod host;
pub mod network;
pub mod runner;
pub mod shrink;
pub mod swarm;
pub mod turmoil_fabric;
