//! The same experiment on both fabrics: a four-server partition that heals gives the same
//! verdicts on the fast fabric and on turmoil (numbers differ: latencies and timing are each
//! fabric's own), and a turmoil run replays byte for byte.

use fedlab::observe::record::{RunOutput, RunSummary};
use fedlab::sim::experiment::parse_experiment;
use fedlab::sim::runner::{self, RunOptions};
use std::path::Path;
use std::process::Command;

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

/// Runs experiment `text` (read as if from `file_name`) on `fabric` at `seed`.
fn run_on(fabric: &str, text: &str, file_name: &str, seed: u64) -> RunOutput {
    let text = format!("fabric = \"{fabric}\"\n{text}");
    let experiment = parse_experiment(Path::new(file_name), &text).unwrap();
    let mut rng = runner::world::component_rng(seed, "plan");
    let plan = experiment.resolve(seed, &mut rng);
    runner::run(plan, &RunOptions::default()).unwrap()
}

fn run(fabric: &str, seed: u64) -> RunOutput {
    run_on(fabric, PARTITION_HEAL, "fabrics-partition-heal.toml", seed)
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

/// One fault of every kind on four servers, one after another, so each must show an effect.
const EVERY_FAULT: &str = r#"
name = "fabrics-every-fault"
description = "Four servers through isolate, cut, latency, loss, crash and restart, clock skew, slow and a partition."
room_version = "12"
duration = "75s"
settle = "25s"
seeds = [1]

[topology]
users_per_server = 2
links.default = { latency_min = "5ms", latency_max = "20ms" }

[topology.group.hs]
count = 4

[workload]
messages_per_second = 3

[[fault]]
at = "5s"
for = "6s"
kind = "isolate"
server = "hs4.test"

[[fault]]
at = "12s"
for = "6s"
kind = "cut"
from = "hs1.test"
to = "hs2.test"
one_way = true

[[fault]]
at = "5s"
for = "20s"
kind = "latency"
between = ["hs1.test", "hs3.test"]
latency_min = "200ms"
latency_max = "400ms"

[[fault]]
at = "20s"
for = "8s"
kind = "loss"
between = ["hs2.test", "hs3.test"]
loss = 0.5

[[fault]]
at = "26s"
for = "8s"
kind = "crash"
server = "hs3.test"

[[fault]]
at = "10s"
for = "30s"
kind = "clock-skew"
server = "hs2.test"
offset = "-20s"

[[fault]]
at = "30s"
for = "15s"
kind = "slow"
server = "hs1.test"
extra_latency = "300ms"

[[fault]]
at = "38s"
for = "8s"
kind = "partition"
shape = "halves"

[expect]
converged = true
acked_lost_max = 0
"#;

#[test]
fn every_fault_kind_takes_effect_on_both_fabrics() {
    let on = |fabric: &str| run_on(fabric, EVERY_FAULT, "every-fault.toml", 1);
    let (fast, turmoil) = (on("fast"), on("turmoil"));
    for output in [&fast, &turmoil] {
        let summary = &output.summary;
        let json = serde_json::to_string_pretty(summary).unwrap();
        assert_eq!(summary.faults.len(), 8, "{json}");
        for fault in &summary.faults {
            assert!(fault.took_effect, "{}: {fault:?}", summary.fabric);
        }
        assert!(summary.passed, "{json}");
    }
    assert_eq!(verdicts(&fast.summary), verdicts(&turmoil.summary));
}

/// Runs `fedlab check ARGS` from the repository: (exit code, stdout, stderr).
fn check(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_fedlab"))
        .arg("check")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn check_runs_on_the_fabric_set_on_the_command_line() {
    let (code, stdout, stderr) = check(&[
        "--set",
        "fabric=turmoil",
        "--jobs",
        "1",
        "experiments/quickstart.toml",
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("PASS"), "{stdout}");
    let (code, stdout, stderr) = check(&[
        "--set",
        "fabric=carrier-pigeon",
        "experiments/quickstart.toml",
    ]);
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert!(stderr.contains("fabric"), "{stderr}");
}

/// `count` servers in one room at 10 messages per second, no faults.
fn one_room(count: usize) -> String {
    format!(
        r#"
name = "fabrics-speed-{count}"
description = "{count} servers in one room at 10 messages per second."
room_version = "12"
duration = "40s"
seeds = [1]

[topology]
users_per_server = 1
links.default = {{ latency_min = "5ms", latency_max = "20ms" }}

[topology.group.hs]
count = {count}

[workload]
messages_per_second = 10
"#
    )
}

/// How fast each fabric runs one room of 10, 25 and 50 servers (or `FEDLAB_SCALE_SERVERS`),
/// in simulated seconds per wall second. A measurement, not a check: run it in release mode,
/// `cargo test --release --test runner_fabrics -- --ignored --nocapture speed`.
#[test]
#[ignore = "a measurement: run in release mode with --ignored"]
fn speed_of_both_fabrics() {
    let counts: Vec<usize> = std::env::var("FEDLAB_SCALE_SERVERS")
        .unwrap_or_else(|_| "10,25,50".into())
        .split(',')
        .map(|n| n.trim().parse().expect("a list of server counts"))
        .collect();
    let fabrics = std::env::var("FEDLAB_FABRICS").unwrap_or_else(|_| "fast,turmoil".into());
    println!("fabric  | servers | simulated s | wall s | sim s per wall s | events | passed");
    for count in counts {
        for fabric in fabrics.split(',') {
            let output = run_on(fabric, &one_room(count), "speed.toml", 1);
            let perf = &output.perf;
            println!(
                "{fabric:7} | {count:7} | {:11.1} | {:6.1} | {:16.2} | {:6} | {}",
                perf.simulated_ms as f64 / 1000.0,
                perf.wall_ms as f64 / 1000.0,
                perf.simulated_per_wall,
                output.summary.metrics["events_sent"],
                output.summary.passed
            );
        }
    }
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
