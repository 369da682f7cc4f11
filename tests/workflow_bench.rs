//! `fedlab bench --repeat`: each scale experiment runs the asked number of times, every run's
//! row is printed, then the best and median ratios; the runs' summaries must be identical,
//! which a repeated bench checks, and a missing experiment is a clear error.

mod cli_common;

use cli_common::{fedlab, text};

const EXPERIMENT: &str = r#"name = "scale-3"
description = "Three servers chat for a short while."
fabric = "fast"
duration = "20s"
settle = "5s"

[topology]
[topology.group.hs]
count = 3

[expect]
converged = true
"#;

#[test]
fn a_repeated_bench_prints_every_run_and_the_spread_and_replays_identically() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("scales")).unwrap();
    std::fs::write(dir.path().join("scales/scale-3.toml"), EXPERIMENT).unwrap();
    let args = [
        "bench",
        "--servers",
        "3",
        "--experiments",
        "scales",
        "--out",
        "bench",
        "--repeat",
        "3",
    ];
    let output = fedlab(dir.path(), &args);
    let printed = text(&output);
    assert!(output.status.success(), "{printed}");
    let rows = printed
        .lines()
        .filter(|line| line.trim_start().starts_with("3 ") && !line.contains("runs"))
        .count();
    assert_eq!(rows, 3, "one row per run:\n{printed}");
    assert!(
        printed.contains("3 servers, 3 runs, summaries identical: sim/cpu best"),
        "{printed}"
    );
    for run in 1..=3 {
        let summary = dir
            .path()
            .join(format!("bench/scale-3/run-{run}/summary.json"));
        assert!(summary.exists(), "{}", summary.display());
    }

    let missing = fedlab(
        dir.path(),
        &["bench", "--servers", "4", "--experiments", "scales"],
    );
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
    assert!(
        text(&missing).contains("scale-4.toml"),
        "{}",
        text(&missing)
    );

    let zero = fedlab(dir.path(), &["bench", "--repeat", "0"]);
    assert_eq!(zero.status.code(), Some(2), "{}", text(&zero));
}
