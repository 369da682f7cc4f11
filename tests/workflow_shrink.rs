//! `fedlab shrink` on an experiment whose expectation cannot hold (a p99 delivery latency of
//! 0 ms, while every link takes at least 5 ms) finds a smaller experiment that still fails it,
//! writes it as a loadable file with a replay header, and the replay fails the same way.

use fedlab::sim::experiment::load_experiment;
use std::path::Path;
use std::process::Command;

const EXPERIMENT: &str = r#"name = "impossible"
description = "A p99 latency bound no network can meet, under faults."
fabric = "fast"
duration = "60s"
settle = "20s"

[topology]
users_per_server = 2
[topology.group.a]
count = 3
[topology.group.b]
count = 2

[workload]
messages_per_second = 2
state_changes_per_second = 0.2

[[fault]]
at = "10s"
kind = "partition"
sides = [["a"], ["b"]]

[[fault]]
at = "20s"
kind = "heal"

[[fault]]
at = "25s"
kind = "crash"
server = "a1.test"
for = "5s"

[expect]
latency_p99_max = "0ms"
"#;

fn fedlab(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fedlab"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn an_impossible_expectation_shrinks_to_a_smaller_failing_experiment_that_replays() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("impossible.toml"), EXPERIMENT).unwrap();
    let output = fedlab(
        dir.path(),
        &[
            "shrink",
            "impossible.toml",
            "--seed",
            "3",
            "--out",
            "kept/impossible-seed3.toml",
            "--time-limit",
            "3m",
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let path = dir.path().join("kept/impossible-seed3.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("# Shrunk by `fedlab shrink` from impossible.toml at seed 3."),
        "{text}"
    );
    assert!(text.contains("# Fails: latency_p99_max"), "{text}");
    assert!(
        text.contains("# Replay: fedlab run kept/impossible-seed3.toml --seed 3"),
        "{text}"
    );
    let original = load_experiment(&dir.path().join("impossible.toml")).unwrap();
    let shrunk = load_experiment(&path).unwrap();
    assert!(shrunk.warnings.is_empty(), "{:?}", shrunk.warnings);
    assert!(
        shrunk.topology.servers.len() < original.topology.servers.len(),
        "servers not reduced:\n{text}"
    );
    assert!(
        shrunk.file.faults.len() < original.file.faults.len(),
        "{text}"
    );
    assert!(shrunk.file.duration < original.file.duration, "{text}");
    // The replay fails the same expectation, with a measured latency.
    let replay = fedlab(
        dir.path(),
        &["run", "kept/impossible-seed3.toml", "--seed", "3"],
    );
    let replay_out = String::from_utf8_lossy(&replay.stdout);
    assert_eq!(replay.status.code(), Some(1), "{replay_out}");
    let line = replay_out
        .lines()
        .find(|line| line.starts_with("latency_p99_max"))
        .unwrap_or_else(|| panic!("no latency verdict:\n{replay_out}"));
    assert!(line.contains("FAIL"), "{line}");
    assert!(!line.contains("not measured"), "{line}");
}
