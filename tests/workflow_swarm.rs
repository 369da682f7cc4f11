//! Swarm mode: experiments drawn from seeds run, and each drawn experiment is saved so that
//! `fedlab run <saved file> --seed N` replays it exactly.

use std::path::Path;
use std::process::{Command, Output};

fn fedlab(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fedlab"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs a swarm check of `seeds` seeds: every run passes, or fails with a replay command
/// whose replay fails the same way.
fn swarm_check(seeds: u64) {
    let dir = tempfile::tempdir().unwrap();
    let count = seeds.to_string();
    let output = fedlab(dir.path(), &["check", "--swarm", &count]);
    let report = text(&output);
    assert!(matches!(output.status.code(), Some(0 | 1)), "{report}");
    assert!(report.contains(&format!("swarm-seed{seeds} ")), "{report}");
    for line in report.lines().filter(|line| line.contains("(replay: ")) {
        let replay = line
            .split("(replay: fedlab ")
            .nth(1)
            .unwrap()
            .trim_end_matches(')');
        let args: Vec<&str> = replay.split_whitespace().collect();
        let again = fedlab(dir.path(), &args);
        assert_eq!(again.status.code(), Some(1), "{line}\n{}", text(&again));
    }
    if output.status.code() == Some(0) {
        assert!(
            report.contains(&format!("{seeds} passed, 0 failed")),
            "{report}"
        );
    }
}

#[test]
fn a_few_swarm_seeds_run_and_replay() {
    swarm_check(4);
}

/// The CI check: 50 seeds. About a minute of CPU in a debug build, so it is left to
/// `cargo test -- --ignored` (or a release CI job) rather than every test run.
#[test]
#[ignore]
fn fifty_swarm_seeds_pass_or_report_replayable_failures() {
    swarm_check(50);
}

#[test]
fn a_swarm_run_is_saved_and_replays_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let first = fedlab(dir, &["run", "--swarm", "--seed", "7", "--out", "first"]);
    assert!(
        matches!(first.status.code(), Some(0 | 1)),
        "{}",
        text(&first)
    );
    let printed = String::from_utf8_lossy(&first.stdout);
    assert!(printed.contains("name = \"swarm-seed7\""), "{printed}");
    let saved = std::fs::read_to_string(dir.join("results/swarm/swarm-seed7.toml")).unwrap();
    assert!(saved.contains("# Replay: fedlab run results/swarm/swarm-seed7.toml --seed 7"));
    let again = fedlab(
        dir,
        &[
            "run",
            "results/swarm/swarm-seed7.toml",
            "--seed",
            "7",
            "--out",
            "again",
        ],
    );
    assert_eq!(first.status.code(), again.status.code());
    let summary = |run: &str| std::fs::read_to_string(dir.join(run).join("summary.json")).unwrap();
    assert_eq!(summary("first"), summary("again"));
    // Pinned keys are applied over the draw.
    let pinned = fedlab(
        dir,
        &[
            "run",
            "--swarm",
            "--seed",
            "7",
            "--set",
            "workload.messages_per_second=0.5",
            "--out",
            "pinned",
        ],
    );
    assert!(
        matches!(pinned.status.code(), Some(0 | 1)),
        "{}",
        text(&pinned)
    );
    let saved = std::fs::read_to_string(dir.join("results/swarm/swarm-seed7.toml")).unwrap();
    assert!(saved.contains("messages_per_second = 0.5"), "{saved}");
    assert!(
        saved.contains("# Pinned: workload.messages_per_second=0.5"),
        "{saved}"
    );
}
