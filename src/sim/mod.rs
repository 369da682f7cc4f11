//! The lab: fabrics, topologies, experiments, workload, nemesis, adversaries, the runner.

pub mod experiment;
