//! Swarm mode: experiments drawn from seeds run, and each drawn experiment is saved so that
//! `fedlab run <saved file> --seed N` replays it exactly.

use fedlab::sim::attempt::run_at_seed;
use fedlab::sim::experiment::load_experiment;
mod cli_common;

use cli_common::{fedlab, text};
use std::path::Path;

/// Runs a swarm check of `seeds` seeds: every run passes, or fails with a replay command
/// whose replay fails the same way. Returns the failed rows, each with the one-line command
/// that draws and runs its seed again from anywhere.
fn swarm_check(seeds: u64) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let count = seeds.to_string();
    let output = fedlab(dir.path(), &["check", "--swarm", &count]);
    let report = text(&output);
    assert!(matches!(output.status.code(), Some(0 | 1)), "{report}");
    assert!(report.contains(&format!("swarm-seed{seeds} ")), "{report}");
    let mut failed = Vec::new();
    for line in report.lines().filter(|line| line.contains("(replay: ")) {
        let replay = line
            .split("(replay: fedlab ")
            .nth(1)
            .unwrap()
            .trim_end_matches(')');
        let args: Vec<&str> = replay.split_whitespace().collect();
        let again = fedlab(dir.path(), &args);
        assert_eq!(again.status.code(), Some(1), "{line}\n{}", text(&again));
        let seed = args.last().unwrap();
        let (row, detail) = line.split_once("FAIL").unwrap();
        let detail = detail.split("(replay: ").next().unwrap().trim();
        failed.push(format!(
            "{}: {detail}; replay: fedlab run --swarm --seed {seed}",
            row.trim()
        ));
    }
    if output.status.code() == Some(0) {
        assert!(
            report.contains(&format!("{seeds} passed, 0 failed")),
            "{report}"
        );
    } else {
        assert!(!failed.is_empty(), "{report}");
    }
    failed
}

#[test]
fn a_few_swarm_seeds_run_and_replay() {
    swarm_check(4);
}

/// The CI check: seeds 1..=50 pass. About 15 s of CPU in a release build (CI runs
/// `cargo test --release`), several times that in a debug build, where it is left to
/// `cargo test -- --ignored`.
#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "long in a debug build; CI runs it in release"
)]
fn fifty_swarm_seeds_pass() {
    let failed = swarm_check(50);
    assert!(
        failed.is_empty(),
        "{} of 50 swarm seeds failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
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

/// The failures swarm seeds found, shrunk and kept (`experiments/regressions/swarm-seed*`),
/// pass at their seeds: the bugs they found stay fixed.
#[test]
fn kept_swarm_regressions_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/regressions");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy();
            name.starts_with("swarm-seed") && name.ends_with(".toml")
        })
        .collect();
    paths.sort();
    assert!(paths.len() >= 3, "{paths:?}");
    for path in paths {
        let experiment = load_experiment(&path).unwrap_or_else(|error| panic!("{error}"));
        for &seed in &experiment.file.seeds {
            let replay = format!("fedlab run {} --seed {seed}", path.display());
            let output = run_at_seed(&experiment, seed, &replay).unwrap();
            let failed: Vec<String> = output
                .summary
                .expectations
                .iter()
                .filter(|verdict| !verdict.passed)
                .map(|verdict| format!("{verdict:?}"))
                .collect();
            assert!(failed.is_empty(), "{replay}: {failed:?}");
        }
    }
}
