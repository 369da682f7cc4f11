//! `fedlab sweep` and `fedlab report`: a sweep split into 3 shards and merged gives the same
//! merged.csv, byte for byte, as the sweep run whole; a resumed sweep skips recorded runs and
//! redoes a run whose record an interruption cut short.

use std::path::Path;
use std::process::Command;

const EXPERIMENT: &str = r#"name = "small"
description = "Three servers chat; one is cut off for a while."
fabric = "fast"
duration = "30s"
settle = "10s"

[topology]
[topology.group.hs]
count = 3

[[fault]]
at = "5s"
kind = "isolate"
server = "hs1.test"
for = "5s"
"#;

fn fedlab(dir: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_fedlab"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "fedlab {args:?}:\n{text}");
    text
}

const GRID: [&str; 6] = [
    "sweep",
    "small.toml",
    "--seeds",
    "1..4",
    "--param",
    "workload.messages_per_second=1,3",
];

fn sweep(dir: &Path, out: &str, extra: &[&str]) -> String {
    let mut args: Vec<&str> = GRID.to_vec();
    args.extend(["--out", out, "--jobs", "2"]);
    args.extend(extra);
    fedlab(dir, &args)
}

fn read(dir: &Path, path: &str) -> String {
    std::fs::read_to_string(dir.join(path)).unwrap()
}

#[test]
fn three_shards_merge_to_the_whole_sweep_and_resume_skips_done_runs() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    std::fs::write(dir.join("small.toml"), EXPERIMENT).unwrap();
    let whole = sweep(dir, "whole", &[]);
    assert!(whole.contains("6 runs in"), "{whole}");
    for shard in 0..3 {
        let text = sweep(
            dir,
            &format!("shard{shard}"),
            &["--shard", &format!("{shard}/3")],
        );
        assert!(text.contains("2 to run"), "{text}");
    }
    fedlab(dir, &["report", "whole", "--out", "report-whole"]);
    fedlab(
        dir,
        &[
            "report",
            "shard0",
            "shard1",
            "shard2",
            "--out",
            "report-shards",
        ],
    );
    let merged = read(dir, "report-whole/merged.csv");
    assert_eq!(merged.lines().count(), 7, "{merged}");
    assert_eq!(merged, read(dir, "report-shards/merged.csv"));
    assert_eq!(merged, read(dir, "whole/runs.csv"));
    let report = read(dir, "report-shards/report.md");
    assert!(report.contains("6 of 6 runs recorded"), "{report}");
    assert!(report.contains("### delivery_ratio"), "{report}");
    let plots = std::fs::read_dir(dir.join("report-shards/plots"))
        .unwrap()
        .count();
    assert!(plots > 5, "{plots} plots");
    assert!(
        dir.join("report-shards/plots/deliveries--workload-messages_per_second.svg")
            .is_file()
    );

    // Resume: nothing to redo.
    let records = read(dir, "whole/runs.jsonl");
    let again = sweep(dir, "whole", &[]);
    assert!(again.contains("6 already recorded, 0 to run"), "{again}");
    assert_eq!(records, read(dir, "whole/runs.jsonl"));

    // An interruption cut the last record short: that one run is done again.
    let mut lines: Vec<&str> = records.lines().collect();
    let last = lines.pop().unwrap();
    let cut = format!("{}\n{}", lines.join("\n"), &last[..last.len() / 2]);
    std::fs::write(dir.join("whole/runs.jsonl"), cut).unwrap();
    let resumed = sweep(dir, "whole", &[]);
    assert!(
        resumed.contains("5 already recorded, 1 to run"),
        "{resumed}"
    );
    fedlab(dir, &["report", "whole", "--out", "report-resumed"]);
    assert_eq!(merged, read(dir, "report-resumed/merged.csv"));

    // A different grid in the same directory is refused.
    let output = Command::new(env!("CARGO_BIN_EXE_fedlab"))
        .args(["sweep", "small.toml", "--seeds", "1..3", "--out", "whole"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}
