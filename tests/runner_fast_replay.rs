//! A fast-fabric run replays byte for byte when many tasks wait on one thing: servers that
//! join at the start of partition-heal receive room events while their joins are still in
//! progress, and those events all wait for the join to end. They must resume in an order
//! given by the run alone (three runs of one seed once gave three different summaries).

use fedlab::sim::experiment::parse_experiment;
use fedlab::sim::runner::{self, RunOptions};
use std::path::Path;

/// The summary of partition-heal at `seed`.
fn partition_heal_summary(seed: u64) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/partition-heal.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let experiment = parse_experiment(&path, &text).unwrap();
    let mut rng = runner::world::component_rng(seed, "plan");
    let plan = experiment.resolve(seed, &mut rng);
    let output = runner::run(plan, &RunOptions::default()).unwrap();
    serde_json::to_string_pretty(&output.summary).unwrap()
}

#[test]
fn partition_heal_replays_byte_for_byte() {
    let first = partition_heal_summary(1);
    assert_eq!(
        first,
        partition_heal_summary(1),
        "two runs of seed 1 differ"
    );
}
