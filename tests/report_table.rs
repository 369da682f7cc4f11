//! `report::print_summary`: the table at the end of a run and its verdict line.

mod report_common;

use fedlab::observe::record::RunOutput;
use fedlab::report;
use report_common::{failed_run, partition_run};

fn printed(output: &RunOutput) -> String {
    let mut out = Vec::new();
    report::print_summary(output, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn line_starting<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find(|line| line.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starts with {prefix:?} in\n{text}"))
}

#[test]
fn passing_run_ends_with_passed_and_the_replay_command() {
    let mut output = partition_run();
    // Every fault took effect, so nothing holds the run back.
    output.summary.faults.retain(|fault| fault.took_effect);
    let text = printed(&output);
    let last: Vec<&str> = text.lines().rev().take(2).collect();
    assert_eq!(last[1], "PASSED");
    assert_eq!(
        last[0],
        "replay: fedlab run experiments/partition-heal.toml --seed 7"
    );
    assert!(!text.contains("NEVER TOOK EFFECT"));
    assert!(!text.contains("witness"));
}

#[test]
fn failed_expectation_prints_failed_with_its_key() {
    let text = printed(&failed_run());
    assert_eq!(
        line_starting(&text, "FAILED"),
        "FAILED: converged (expected true, actual false)"
    );
    assert!(
        text.trim_end()
            .ends_with("replay: fedlab run experiments/partition-heal.toml --seed 7")
    );
    let row = line_starting(&text, "delivery_ratio_min");
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        ["delivery_ratio_min", "FAIL", "1.0", "0.97"]
    );
    assert_eq!(
        report::first_failure(&failed_run().summary).as_deref(),
        Some("converged (expected true, actual false)")
    );
}

#[test]
fn header_names_the_run() {
    let text = printed(&partition_run());
    for (key, value) in [
        ("experiment", "partition-heal"),
        ("seed", "7"),
        ("fabric", "turmoil"),
        ("servers", "5"),
        ("duration", "120 s simulated"),
    ] {
        let line = line_starting(&text, key);
        assert_eq!(line[key.len()..].trim_start(), value, "{line}");
    }
}

#[test]
fn columns_are_aligned() {
    let text = printed(&partition_run());
    let metrics: Vec<&str> = text
        .lines()
        .skip_while(|line| !line.starts_with("metric "))
        .take_while(|line| !line.is_empty())
        .collect();
    assert_eq!(metrics.len(), 1 + partition_run().summary.metrics.len());
    let value_column = metrics[0].find("value").unwrap();
    for line in &metrics[1..] {
        let (name, value) = line.split_at(value_column);
        assert!(name.ends_with("  ") && !value.starts_with(' '), "{line:?}");
    }
    assert!(line_starting(&text, "acked_lost").ends_with("n/a"));
    assert!(
        text.lines().all(|line| line == line.trim_end()),
        "trailing spaces"
    );
}

#[test]
fn fault_without_effect_is_loud_and_fails_the_run() {
    let text = printed(&partition_run());
    let fault_row = line_starting(&text, "#0 ");
    assert!(
        fault_row.contains("partition") && fault_row.contains("4,321"),
        "{fault_row}"
    );
    assert!(line_starting(&text, "!! fault #3 (loss").contains("NEVER TOOK EFFECT"));
    assert_eq!(
        line_starting(&text, "FAILED"),
        "FAILED: fault #3 (loss) never took effect"
    );
}

#[test]
fn witness_is_printed_when_present() {
    let text = printed(&failed_run());
    let witness = text
        .lines()
        .skip_while(|line| *line != "witness")
        .nth(1)
        .unwrap();
    assert!(witness.starts_with("  hs1 and hs4 disagree on (m.room.power_levels"));
}

#[test]
fn run_marked_failed_without_itemised_cause_still_fails() {
    let mut output = partition_run();
    output.summary.faults.retain(|fault| fault.took_effect);
    output.summary.passed = false;
    assert!(line_starting(&printed(&output), "FAILED: ").contains("marked failed"));
}
