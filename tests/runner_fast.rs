//! The runner executes experiments on the fast fabric: the quickstart converges after its
//! partition heals, the partition is seen to drop messages, and a replay with the same seed
//! gives a byte-identical summary, with or without the servers sharing parsed and verified
//! events.

use fedlab::observe::record::RunOutput;
use fedlab::sim::experiment::parse_experiment;
use fedlab::sim::runner::{self, RunOptions, Sharing};
use std::path::Path;

fn run(path: &str, seed: u64, fabric_fast: bool) -> RunOutput {
    run_with(path, seed, fabric_fast, &RunOptions::default())
}

fn run_with(path: &str, seed: u64, fabric_fast: bool, options: &RunOptions) -> RunOutput {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let mut text = std::fs::read_to_string(&path).unwrap();
    if fabric_fast && !text.contains("fabric") {
        text = format!("fabric = \"fast\"\n{text}");
    }
    let experiment = parse_experiment(&path, &text).unwrap();
    let mut rng = runner::world::component_rng(seed, "plan");
    let plan = experiment.resolve(seed, &mut rng);
    runner::run(plan, options).unwrap()
}

#[test]
fn quickstart_converges_after_its_partition_and_replays_byte_for_byte() {
    let first = run("experiments/quickstart.toml", 1, true);
    let summary = &first.summary;
    let json = serde_json::to_string_pretty(summary).unwrap();
    assert!(summary.passed, "quickstart failed:\n{json}");
    let partition = &summary.faults[0];
    assert_eq!(partition.kind, "partition");
    assert!(
        partition.effect_count > 0,
        "the partition dropped nothing: {json}"
    );
    assert!(
        first.timeline.iter().any(|sample| sample.divergence > 1),
        "never diverged during the partition"
    );
    let again = run("experiments/quickstart.toml", 1, true);
    assert_eq!(json, serde_json::to_string_pretty(&again.summary).unwrap());
    let other = run("experiments/quickstart.toml", 2, true);
    assert_ne!(summary.trace_digest, other.summary.trace_digest);
}

#[test]
#[ignore = "prints a summary for a person to read"]
fn print_quickstart_summary() {
    let output = run("experiments/quickstart.toml", 1, true);
    println!("{}", serde_json::to_string_pretty(&output.summary).unwrap());
    for sample in output.timeline.iter().step_by(10) {
        println!("{sample:?}");
    }
}

#[test]
#[ignore = "prints a summary for a person to read"]
fn print_named_summary() {
    let path = std::env::var("FEDLAB_EXPERIMENT").unwrap_or("experiments/quickstart.toml".into());
    let seed = std::env::var("FEDLAB_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let output = run(&path, seed, true);
    println!("{}", serde_json::to_string_pretty(&output.summary).unwrap());
}

/// Sharing parsed and verified events (and request signatures, made only when read, and state
/// resolutions) between servers saves work only: the summary (with its trace digest over every server's durable log), the
/// timeline and the trace are the same bytes when every server parses, verifies and holds its
/// own copy, and every request is signed by its sender and verified by its receiver.
#[test]
fn sharing_events_between_servers_changes_no_result() {
    let with = |sharing| RunOptions {
        trace: true,
        sharing,
        ..RunOptions::default()
    };
    let shared = run_with(
        "experiments/quickstart.toml",
        3,
        true,
        &with(Sharing::Shared),
    );
    let alone = run_with(
        "experiments/quickstart.toml",
        3,
        true,
        &with(Sharing::PerServer),
    );
    let json = |output: &RunOutput| serde_json::to_string_pretty(&output.summary).unwrap();
    assert!(shared.summary.passed, "{}", json(&shared));
    assert_eq!(json(&shared), json(&alone));
    assert_eq!(shared.timeline, alone.timeline);
    assert_eq!(shared.trace, alone.trace);
    assert_eq!(shared.delivery_latencies_ms, alone.delivery_latencies_ms);
    let saved = shared.perf.pdu_cache.expect("the shared run has a cache");
    assert!(saved.verify_hits > saved.verify_misses, "{saved:?}");
    // Request signatures too: on the fast fabric every request a server sends carries a
    // pending signature, which its receiver accepts without anyone signing unless the request
    // changed on the way.
    let requests = saved.requests;
    assert!(requests.deferred_vouched > 0, "{saved:?}");
    assert_eq!(requests.deferred_signed, 0, "{saved:?}");
    assert!(requests.deferred >= requests.deferred_vouched, "{saved:?}");
    // And state resolutions: the servers merge the partition's two sides alike.
    assert!(saved.resolutions.hits > 0, "{saved:?}");
    assert_eq!(alone.perf.pdu_cache, None);
}

/// The convergence time measures the merge after the heal, not the workload's schedule: here
/// the room keeps talking for 40 s after the heal, so agreement for good cannot begin before
/// then, yet the servers agree again within seconds of the heal.
#[test]
fn convergence_time_is_the_first_agreement_after_the_heal_while_traffic_goes_on() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/quickstart.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("duration = \"60s\"", "duration = \"90s\"")
        .replace("[expect]", "[expect]\n# overridden by the test")
        .replace(
            "convergence_within = \"15s\"",
            "convergence_within = \"20s\"",
        );
    assert!(text.contains("duration = \"90s\"") && text.contains("settle = \"20s\""));
    let experiment = parse_experiment(&path, &text).unwrap();
    let mut rng = runner::world::component_rng(1, "plan");
    let output = runner::run(experiment.resolve(1, &mut rng), &RunOptions::default()).unwrap();
    let metrics = &output.summary.metrics;
    let json = serde_json::to_string_pretty(&output.summary).unwrap();
    let heal_to_agreement = metrics["convergence_time_ms"].as_u64().unwrap();
    let heal_to_for_good = metrics["converged_for_good_ms"].as_u64().unwrap();
    // The workload stops at 70 s (duration - settle), 40 s after the heal at 30 s.
    assert!(heal_to_for_good >= 30_000, "{json}");
    assert!(heal_to_agreement <= 20_000, "{json}");
    assert!(output.summary.passed, "{json}");
}
