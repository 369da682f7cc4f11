//! The summary a researcher reads at the end of `fedlab run`: what ran, every metric, every
//! expectation with its verdict, the faults and what they did, the witness of a divergence,
//! then one verdict line and the command that replays the run.
//!
//! Invariants: the verdict line agrees with [`first_failure`], which callers also use for the
//! exit code, so the words and the exit status cannot disagree; a fault that never took effect
//! gets its own loud line and fails the run (a fault that silently did nothing is a false
//! green); plain ASCII columns without colour, so CI logs read the same as a terminal.

use super::units;
use crate::observe::record::{FaultWindow, RunOutput, RunSummary};
use std::io::{self, Write};

/// Spaces between two columns.
const COLUMN_GAP: usize = 2;

/// Why the run failed, in one line, or None when it passed. The first failed expectation wins;
/// then the first fault that never took effect; then a run marked failed for a reason the
/// summary does not itemise.
pub fn first_failure(summary: &RunSummary) -> Option<String> {
    if let Some(verdict) = summary.expectations.iter().find(|verdict| !verdict.passed) {
        return Some(format!(
            "{} (expected {}, actual {})",
            verdict.key, verdict.expected, verdict.actual
        ));
    }
    if let Some(fault) = summary.faults.iter().find(|fault| !fault.took_effect) {
        return Some(format!(
            "fault #{} ({}) never took effect",
            fault.index, fault.kind
        ));
    }
    (!summary.passed).then(|| "the run was marked failed without a failed expectation".into())
}

/// Writes the summary table of `output` to `out`.
pub fn print_summary(output: &RunOutput, out: &mut impl Write) -> io::Result<()> {
    let summary = &output.summary;
    write_header(output, out)?;
    writeln!(out)?;
    write_metrics(summary, out)?;
    writeln!(out)?;
    write_expectations(summary, out)?;
    writeln!(out)?;
    write_faults(&summary.faults, out)?;
    if let Some(witness) = &summary.witness {
        writeln!(out)?;
        writeln!(out, "witness")?;
        for line in witness.lines() {
            writeln!(out, "  {line}")?;
        }
    }
    writeln!(out)?;
    match first_failure(summary) {
        None => writeln!(out, "PASSED")?,
        Some(failure) => writeln!(out, "FAILED: {failure}")?,
    }
    writeln!(out, "replay: {}", summary.replay)
}

fn write_header(output: &RunOutput, out: &mut impl Write) -> io::Result<()> {
    let summary = &output.summary;
    let perf = &output.perf;
    let rows = vec![
        row(["experiment", summary.experiment.as_str()]),
        row(["seed", &summary.seed.to_string()]),
        row(["fabric", summary.fabric.as_str()]),
        row(["servers", &summary.servers.to_string()]),
        row([
            "duration",
            &format!("{} simulated", units::seconds(summary.duration_ms)),
        ]),
        row([
            "room version",
            &format!(
                "{} (state resolution {})",
                summary.room_version, summary.algorithm
            ),
        ]),
        row(["code version", summary.code_version.as_str()]),
        row(["trace digest", summary.trace_digest.as_str()]),
        row([
            "wall time",
            &format!(
                "{} ({}x simulated per wall second)",
                units::seconds(perf.wall_ms),
                units::decimal(perf.simulated_per_wall)
            ),
        ]),
    ];
    write_columns(out, "", None, &rows)
}

fn write_metrics(summary: &RunSummary, out: &mut impl Write) -> io::Result<()> {
    if summary.metrics.is_empty() {
        return writeln!(out, "no metrics recorded");
    }
    let rows: Vec<Vec<String>> = summary
        .metrics
        .iter()
        .map(|(name, value)| row([name.as_str(), &metric_value(value)]))
        .collect();
    write_columns(out, "", Some(&["metric", "value"]), &rows)
}

fn metric_value(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "n/a".into(),
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn write_expectations(summary: &RunSummary, out: &mut impl Write) -> io::Result<()> {
    if summary.expectations.is_empty() {
        return writeln!(out, "no expectations declared");
    }
    let rows: Vec<Vec<String>> = summary
        .expectations
        .iter()
        .map(|verdict| {
            let result = if verdict.passed { "PASS" } else { "FAIL" };
            row([
                verdict.key.as_str(),
                result,
                &verdict.expected,
                &verdict.actual,
            ])
        })
        .collect();
    write_columns(
        out,
        "",
        Some(&["expectation", "result", "expected", "actual"]),
        &rows,
    )
}

fn write_faults(faults: &[FaultWindow], out: &mut impl Write) -> io::Result<()> {
    if faults.is_empty() {
        return writeln!(out, "no faults injected");
    }
    let rows: Vec<Vec<String>> = faults
        .iter()
        .map(|fault| {
            row([
                &format!("#{}", fault.index),
                &fault.kind,
                &format!(
                    "{} to {}",
                    units::seconds(fault.from_ms),
                    units::seconds(fault.until_ms)
                ),
                &units::grouped(fault.effect_count),
                &fault.description,
            ])
        })
        .collect();
    write_columns(
        out,
        "",
        Some(&["fault", "kind", "window", "effect_count", "description"]),
        &rows,
    )?;
    for fault in faults.iter().filter(|fault| !fault.took_effect) {
        writeln!(
            out,
            "!! fault #{} ({}: {}) NEVER TOOK EFFECT: nothing was dropped, held or applied, \
             so this run did not test it",
            fault.index, fault.kind, fault.description
        )?;
    }
    Ok(())
}

fn row<const N: usize>(cells: [&str; N]) -> Vec<String> {
    cells.iter().map(|cell| cell.to_string()).collect()
}

/// Rows in left-aligned columns as wide as their widest cell, each line prefixed by
/// `indent`, without trailing spaces.
fn write_columns(
    out: &mut impl Write,
    indent: &str,
    header: Option<&[&str]>,
    rows: &[Vec<String>],
) -> io::Result<()> {
    let header_row: Option<Vec<String>> =
        header.map(|names| names.iter().map(|name| name.to_string()).collect());
    let all_rows = header_row.iter().chain(rows);
    let mut widths: Vec<usize> = Vec::new();
    for cells in all_rows.clone() {
        for (column, cell) in cells.iter().enumerate() {
            let width = cell.chars().count();
            match widths.get_mut(column) {
                Some(widest) => *widest = (*widest).max(width),
                None => widths.push(width),
            }
        }
    }
    for cells in all_rows {
        let mut line = String::from(indent);
        for (column, cell) in cells.iter().enumerate() {
            line.push_str(cell);
            if column + 1 < cells.len() {
                let padding = widths[column] - cell.chars().count() + COLUMN_GAP;
                line.extend(std::iter::repeat_n(' ', padding));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: &[Vec<String>], header: Option<&[&str]>) -> String {
        let mut out = Vec::new();
        write_columns(&mut out, "", header, rows).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn columns_align_to_the_widest_cell_without_trailing_spaces() {
        let text = table(
            &[row(["converged", "true"]), row(["delivery_ratio", ""])],
            Some(&["metric", "value"]),
        );
        assert_eq!(
            text,
            "metric          value\nconverged       true\ndelivery_ratio\n"
        );
    }

    #[test]
    fn metric_values_read_plainly() {
        assert_eq!(metric_value(&serde_json::json!(null)), "n/a");
        assert_eq!(metric_value(&serde_json::json!(0.97)), "0.97");
        assert_eq!(metric_value(&serde_json::json!("v2.1")), "v2.1");
        assert_eq!(metric_value(&serde_json::json!(true)), "true");
    }
}
