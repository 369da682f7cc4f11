//! The same experiment on both fabrics: a four-server partition that heals gives the same
//! verdicts on the fast fabric and on turmoil (numbers differ: latencies and timing are each
//! fabric's own), and a turmoil run replays byte for byte.

use fedlab::observe::record::{RunOutput, RunSummary};
use fedlab::sim::experiment::parse_experiment;
use fedlab::sim::runner::{self, RunOptions};
use std::path::Path;

/// Two pairs of servers split for 10 s while both sides send messages and change state.
const PARTITION_HEAL: &str = r#"
name = "fabrics-partition-heal"
description = "Four servers, two on each side of a 10 s partition; after the heal all must agree."
room_version = "12"
duration = "40s"
settle = "15s"
seeds = [1]

[topology]
users_per_server = 2
links.default = { latency_min = "5ms", latency_max = "20ms" }

[topology.group.hs]
count = 4

[workload]
messages_per_second = 2
state_changes_per_second = 0.2

[[fault]]
at = "8s"
kind = "partition"
sides = [["hs1.test", "hs2.test"], ["hs3.test", "hs4.test"]]

[[fault]]
at = "18s"
kind = "heal"

[expect]
converged = true
convergence_within = "15s"
delivery_ratio_min = 1.0
state_resets_max = 0
"#;

fn run(fabric: &str, seed: u64) -> RunOutput {
    let text = format!("fabric = \"{fabric}\"\n{PARTITION_HEAL}");
    let path = Path::new("fabrics-partition-heal.toml");
    let experiment = parse_experiment(path, &text).unwrap();
    let mut rng = runner::world::component_rng(seed, "plan");
    let plan = experiment.resolve(seed, &mut rng);
    runner::run(plan, &RunOptions::default()).unwrap()
}

/// Each expectation's key and whether it passed.
fn verdicts(summary: &RunSummary) -> Vec<(String, bool)> {
    summary
        .expectations
        .iter()
        .map(|verdict| (verdict.key.clone(), verdict.passed))
        .collect()
}

fn assert_partition_seen(output: &RunOutput) {
    let summary = &output.summary;
    let json = serde_json::to_string_pretty(summary).unwrap();
    assert!(summary.passed, "{} failed:\n{json}", summary.fabric);
    assert_eq!(summary.metrics["converged"], true, "{json}");
    let partition = &summary.faults[0];
    assert_eq!(partition.kind, "partition");
    assert!(
        partition.took_effect && partition.effect_count > 0,
        "{json}"
    );
    assert!(
        output.timeline.iter().any(|sample| sample.divergence > 1),
        "{}: never diverged during the partition",
        summary.fabric
    );
}

#[test]
fn partition_heal_gives_the_same_verdicts_on_both_fabrics() {
    let fast = run("fast", 1);
    let turmoil = run("turmoil", 1);
    assert_eq!(fast.summary.fabric, "fast");
    assert_eq!(turmoil.summary.fabric, "turmoil");
    assert_partition_seen(&fast);
    assert_partition_seen(&turmoil);
    assert_eq!(verdicts(&fast.summary), verdicts(&turmoil.summary));
    assert_eq!(fast.summary.faults.len(), turmoil.summary.faults.len());
}

#[test]
fn turmoil_run_replays_byte_for_byte() {
    let first = run("turmoil", 2);
    let again = run("turmoil", 2);
    let json = |output: &RunOutput| serde_json::to_string_pretty(&output.summary).unwrap();
    assert_eq!(json(&first), json(&again));
    assert_eq!(first.timeline, again.timeline);
}

#[test]
#[ignore = "prints both summaries for a person to read"]
fn print_both_summaries() {
    for fabric in ["fast", "turmoil"] {
        let output = run(fabric, 1);
        println!("{}", serde_json::to_string_pretty(&output.summary).unwrap());
        println!("{:?}", output.perf);
    }
}
