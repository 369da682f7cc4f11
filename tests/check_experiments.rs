//! CI's run of the shipped experiments: `fedlab check experiments/`, the command a user runs,
//! on the fast set (every experiment not marked `slow = true`: the top-level experiments, the
//! threat table and the kept regressions, each at every seed it lists).
//!
//! The full set, slow experiments included, is `fedlab check experiments/ --slow`; it is not
//! run here because the slow ones take many minutes each (see the comment in each file).
//!
//! Invariant: the test runs the real binary with the real arguments, so what CI checks is what
//! the README's command does; a failure names the experiment, the seed, the expectation and the
//! replay command, as `fedlab check` prints them.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// The rows of `fedlab check` output that are not passes, and its last lines.
fn failures(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|line| {
            line.contains(" FAIL ") || line.contains(" PANIC ") || line.contains(" NOT RUN ")
        })
        .collect()
}

/// The "N passed, M failed" line.
fn totals(stdout: &str) -> Option<(u64, u64)> {
    let line = stdout.lines().find(|line| line.ends_with(" failed"))?;
    let mut numbers = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|part| !part.is_empty())
        .map(|part| part.parse::<u64>().ok());
    Some((numbers.next()??, numbers.next()??))
}

#[test]
fn the_fast_set_of_shipped_experiments_passes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_fedlab"))
        .args(["check", "experiments/"])
        .current_dir(root)
        .output()
        .expect("fedlab runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    println!(
        "fedlab check experiments/: {:.0} s of wall time",
        started.elapsed().as_secs_f64()
    );
    let failed = failures(&stdout);
    assert!(
        output.status.success() && failed.is_empty(),
        "fedlab check experiments/ exited with {}:\n{}\n{}",
        output.status,
        failed.join("\n"),
        stderr.trim()
    );
    let (passed, failed_count) = totals(&stdout).expect("fedlab check prints its totals");
    assert_eq!(failed_count, 0);
    // Not a pass by running nothing: the threat table and the kept regressions are in the set.
    for experiment in [
        "quickstart",
        "unrecoverable-consistency",
        "partition-heal-seed1",
    ] {
        assert!(
            stdout
                .lines()
                .any(|line| line.starts_with(experiment) && line.contains(" PASS")),
            "{experiment} was not run"
        );
    }
    assert!(passed >= 50, "only {passed} runs");
}

#[test]
fn failure_rows_and_totals_are_read_from_the_output() {
    let stdout = "experiment  seed  verdict  detail\n\
                  quickstart     1  PASS\n\
                  split          3  FAIL     state_resets_max: expected <= 0, got 5  (replay: fedlab run x.toml --seed 3)\n\
                  1 passed, 1 failed\n";
    assert_eq!(failures(stdout).len(), 1);
    assert!(failures(stdout)[0].contains("--seed 3"));
    assert_eq!(totals(stdout), Some((1, 1)));
}
