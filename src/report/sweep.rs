//! The records of a sweep (`runs.jsonl`, `runs.csv`) and their merge across shard
//! directories, plus the statistics `report.md` prints.
//!
//! Invariants: a record holds only simulated results (no wall time), so a run gives the same
//! record on every machine; [`canonical`] orders records by (point, seed) and keeps one per
//! pair, so the merge of shards equals the unsharded sweep byte for byte; a line of
//! `runs.jsonl` that does not parse (the half-written last line of an interrupted sweep) is
//! not a record and is dropped, so that run is done again.

use crate::observe::record::RunSummary;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;

pub const RUNS_JSONL: &str = "runs.jsonl";
pub const RUNS_CSV: &str = "runs.csv";
/// The sweep's definition, so a resume or a merge can refuse a different grid.
pub const SWEEP_JSON: &str = "sweep.json";

/// What a sweep runs: the same in every shard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepSpec {
    pub experiment: String,
    /// Swept keys with their values, in the order given (the first varies slowest).
    pub params: Vec<(String, Vec<String>)>,
    pub seeds: Vec<u64>,
}

impl SweepSpec {
    /// Every parameter point: one value per swept key.
    pub fn points(&self) -> Vec<Vec<(String, String)>> {
        let mut points: Vec<Vec<(String, String)>> = vec![Vec::new()];
        for (key, values) in &self.params {
            points = points
                .into_iter()
                .flat_map(|point| {
                    values.iter().map(move |value| {
                        let mut next = point.clone();
                        next.push((key.clone(), value.clone()));
                        next
                    })
                })
                .collect();
        }
        points
    }

    /// Every run as (run index, point index, seed), point-major.
    pub fn runs(&self) -> Vec<(usize, usize, u64)> {
        let points = self.points().len();
        (0..points)
            .flat_map(|point| self.seeds.iter().map(move |&seed| (point, seed)))
            .enumerate()
            .map(|(index, (point, seed))| (index, point, seed))
            .collect()
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Pass,
    Fail,
    /// The runner refused it or fedlab panicked: see `detail`.
    NotRun,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::NotRun => "not-run",
        }
    }
}

/// One line of `runs.jsonl`: one (point, seed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepRecord {
    pub experiment: String,
    pub point: usize,
    pub params: Vec<(String, String)>,
    pub seed: u64,
    pub status: Status,
    /// Keys of the expectations that failed.
    pub failed: Vec<String>,
    /// Every scalar metric (number, boolean or null) of the summary.
    pub metrics: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub replay: String,
}

impl SweepRecord {
    /// The record of a finished run.
    pub fn from_summary(
        point: usize,
        params: Vec<(String, String)>,
        summary: &RunSummary,
        replay: String,
    ) -> Self {
        let metrics = summary
            .metrics
            .iter()
            .filter(|(_, value)| matches!(value, Value::Number(_) | Value::Bool(_) | Value::Null))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        Self {
            experiment: summary.experiment.clone(),
            point,
            params,
            seed: summary.seed,
            status: if summary.passed {
                Status::Pass
            } else {
                Status::Fail
            },
            failed: summary
                .expectations
                .iter()
                .filter(|verdict| !verdict.passed)
                .map(|verdict| verdict.key.clone())
                .collect(),
            metrics,
            detail: None,
            replay,
        }
    }

    /// One JSON line, newline included.
    pub fn json_line(&self) -> String {
        let mut line = serde_json::to_string(self).expect("a record serializes");
        line.push('\n');
        line
    }

    /// A metric as a number (booleans count as 0 and 1), if it was measured.
    pub fn number(&self, metric: &str) -> Option<f64> {
        match self.metrics.get(metric)? {
            Value::Number(number) => number.as_f64(),
            Value::Bool(value) => Some(f64::from(u8::from(*value))),
            _ => None,
        }
    }
}

/// The complete records of `text`, in file order; lines that do not parse are dropped.
pub fn parse_records(text: &str) -> Vec<SweepRecord> {
    text.split_inclusive('\n')
        .filter(|line| line.ends_with('\n'))
        .filter_map(|line| serde_json::from_str(line.trim_end()).ok())
        .collect()
}

/// The records of a sweep directory (none when it has no `runs.jsonl` yet).
pub fn read_records(dir: &Path) -> io::Result<Vec<SweepRecord>> {
    match std::fs::read_to_string(dir.join(RUNS_JSONL)) {
        Ok(text) => Ok(parse_records(&text)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(error) => Err(io::Error::new(
            error.kind(),
            format!("{}: {error}", dir.join(RUNS_JSONL).display()),
        )),
    }
}

/// Records ordered by (point, seed), one per pair (the first seen wins).
pub fn canonical(records: impl IntoIterator<Item = SweepRecord>) -> Vec<SweepRecord> {
    let mut by_run: BTreeMap<(usize, u64), SweepRecord> = BTreeMap::new();
    for record in records {
        by_run.entry((record.point, record.seed)).or_insert(record);
    }
    by_run.into_values().collect()
}

/// Every metric name of the records, sorted.
pub fn metric_names(records: &[SweepRecord]) -> Vec<String> {
    let names: BTreeSet<&String> = records.iter().flat_map(|r| r.metrics.keys()).collect();
    names.into_iter().cloned().collect()
}

/// `runs.csv` of canonical records: point, the swept keys, seed, status, failed
/// expectations (`;`-separated), then every metric.
pub fn csv(records: &[SweepRecord]) -> String {
    let keys: Vec<String> = records
        .first()
        .map(|record| record.params.iter().map(|(key, _)| key.clone()).collect())
        .unwrap_or_default();
    let metrics = metric_names(records);
    let mut header = vec!["point".to_owned()];
    header.extend(keys.iter().cloned());
    header.extend(["seed", "status", "failed"].map(str::to_owned));
    header.extend(metrics.iter().cloned());
    let mut out = csv_line(&header);
    for record in records {
        let mut row = vec![record.point.to_string()];
        row.extend(record.params.iter().map(|(_, value)| value.clone()));
        row.push(record.seed.to_string());
        row.push(record.status.name().to_owned());
        row.push(record.failed.join(";"));
        for metric in &metrics {
            row.push(match record.metrics.get(metric) {
                None | Some(Value::Null) => String::new(),
                Some(value) => value.to_string(),
            });
        }
        out.push_str(&csv_line(&row));
    }
    out
}

fn csv_line(fields: &[String]) -> String {
    let quoted: Vec<String> = fields
        .iter()
        .map(|field| {
            if field.contains([',', '"', '\n']) {
                format!("\"{}\"", field.replace('"', "\"\""))
            } else {
                field.clone()
            }
        })
        .collect();
    let mut line = quoted.join(",");
    line.push('\n');
    line
}

/// Mean, min and max of a metric over the runs that measured it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub count: usize,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let values: Vec<f64> = values.into_iter().collect();
        if values.is_empty() {
            return None;
        }
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(Self {
            count: values.len(),
            mean: values.iter().sum::<f64>() / values.len() as f64,
            min,
            max,
        })
    }
}

/// The merged report of a sweep: `report.md`, `merged.csv` and one SVG plot per (metric,
/// swept parameter) under `plots/`, written into `dir`. `sources` name the merged directories.
pub fn write_report(
    dir: &Path,
    spec: &SweepSpec,
    records: &[SweepRecord],
    sources: &[String],
) -> io::Result<()> {
    std::fs::create_dir_all(dir.join(PLOTS_DIR)).map_err(|e| super::files::with_path(dir, e))?;
    super::files::write_file(dir, MERGED_CSV, csv(records).as_bytes())?;
    let measured = measured_metrics(records);
    let mut plots = Vec::new();
    for metric in &measured {
        for (param, _) in &spec.params {
            let stem = format!("{}--{}", file_stem(metric), file_stem(param));
            let plot = super::plots::SpreadPlot::new(spec, records, metric, param);
            super::plots::write_spread_svg(&dir.join(PLOTS_DIR), &stem, &plot)?;
            plots.push((
                metric.clone(),
                param.clone(),
                format!("{PLOTS_DIR}/{stem}.svg"),
            ));
        }
    }
    let markdown = report_markdown(spec, records, sources, &plots);
    super::files::write_file(dir, REPORT_MD, markdown.as_bytes())
}

pub const REPORT_MD: &str = "report.md";
pub const MERGED_CSV: &str = "merged.csv";
pub const PLOTS_DIR: &str = "plots";

/// Metrics some run measured, sorted.
fn measured_metrics(records: &[SweepRecord]) -> Vec<String> {
    metric_names(records)
        .into_iter()
        .filter(|metric| records.iter().any(|record| record.number(metric).is_some()))
        .collect()
}

fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// `report.md`: what was merged, verdicts per point, each metric's spread per point, plots.
pub fn report_markdown(
    spec: &SweepSpec,
    records: &[SweepRecord],
    sources: &[String],
    plots: &[(String, String, String)],
) -> String {
    use std::fmt::Write as _;
    let points = spec.points();
    let expected = points.len() * spec.seeds.len();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Sweep: {}
",
        spec.experiment
    );
    let _ = writeln!(
        out,
        "{} of {expected} runs recorded ({} points x {} seeds), merged from {}.",
        records.len(),
        points.len(),
        spec.seeds.len(),
        sources.join(", ")
    );
    if records.len() < expected {
        let _ = writeln!(
            out,
            "
**Incomplete:** {} runs are missing (a shard not run or not finished); the figures below cover the recorded runs only.",
            expected - records.len()
        );
    }
    for (key, values) in &spec.params {
        let _ = writeln!(
            out,
            "
- `{key}`: {}",
            values.join(", ")
        );
    }
    let keys: Vec<&str> = spec.params.iter().map(|(key, _)| key.as_str()).collect();
    let head = |extra: &[&str]| {
        let mut columns: Vec<String> = vec!["point".into()];
        columns.extend(keys.iter().map(|key| format!("`{key}`")));
        columns.extend(extra.iter().map(|c| (*c).to_owned()));
        format!(
            "| {} |\n|{}\n",
            columns.join(" | "),
            "---|".repeat(columns.len())
        )
    };
    let cells = |index: usize, point: &[(String, String)]| {
        let mut row = vec![index.to_string()];
        row.extend(point.iter().map(|(_, value)| value.clone()));
        row
    };
    let _ = writeln!(
        out,
        "
## Verdicts per point
"
    );
    out.push_str(&head(&[
        "runs",
        "passed",
        "pass rate",
        "failed expectations (runs)",
        "not run",
    ]));
    for (index, point) in points.iter().enumerate() {
        let runs: Vec<&SweepRecord> = records.iter().filter(|r| r.point == index).collect();
        let passed = runs.iter().filter(|r| r.status == Status::Pass).count();
        let not_run = runs.iter().filter(|r| r.status == Status::NotRun).count();
        let mut failures: BTreeMap<&str, usize> = BTreeMap::new();
        for key in runs.iter().flat_map(|r| r.failed.iter()) {
            *failures.entry(key.as_str()).or_default() += 1;
        }
        let failures: Vec<String> = failures
            .iter()
            .map(|(key, count)| format!("{key} ({count})"))
            .collect();
        let rate = if runs.is_empty() {
            "-".to_owned()
        } else {
            format!("{:.0}%", 100.0 * passed as f64 / runs.len() as f64)
        };
        let mut row = cells(index, point);
        row.extend([
            runs.len().to_string(),
            passed.to_string(),
            rate,
            failures.join(", "),
            not_run.to_string(),
        ]);
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    let _ = writeln!(
        out,
        "
## Metrics per point (over seeds)"
    );
    for metric in measured_metrics(records) {
        let _ = writeln!(
            out,
            "
### {metric}
"
        );
        out.push_str(&head(&["runs measured", "mean", "min", "max"]));
        for (index, point) in points.iter().enumerate() {
            let values = records
                .iter()
                .filter(|r| r.point == index)
                .filter_map(|r| r.number(&metric));
            let mut row = cells(index, point);
            match Spread::of(values) {
                Some(spread) => row.extend([
                    spread.count.to_string(),
                    super::units::decimal(spread.mean),
                    super::units::decimal(spread.min),
                    super::units::decimal(spread.max),
                ]),
                None => row.extend(["0", "-", "-", "-"].map(str::to_owned)),
            }
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
    }
    if !plots.is_empty() {
        let _ = writeln!(
            out,
            "
## Plots
"
        );
        for (metric, param, path) in plots {
            let _ = writeln!(
                out,
                "![{metric} against {param}]({path})
"
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SweepSpec {
        SweepSpec {
            experiment: "e.toml".into(),
            params: vec![
                ("a".into(), vec!["1".into(), "2".into()]),
                ("b".into(), vec!["x".into(), "y".into(), "z".into()]),
            ],
            seeds: vec![5, 6],
        }
    }

    fn record(point: usize, seed: u64) -> SweepRecord {
        SweepRecord {
            experiment: "e".into(),
            point,
            params: spec().points()[point].clone(),
            seed,
            status: Status::Pass,
            failed: vec![],
            metrics: BTreeMap::from([
                ("m".to_owned(), serde_json::json!(point as f64 + 0.5)),
                ("ok".to_owned(), serde_json::json!(true)),
                ("n".to_owned(), Value::Null),
            ]),
            detail: None,
            replay: format!("fedlab run e.toml --seed {seed}"),
        }
    }

    #[test]
    fn grid_is_point_major_with_the_first_key_slowest() {
        let spec = spec();
        let points = spec.points();
        assert_eq!(points.len(), 6);
        assert_eq!(
            points[1],
            vec![("a".into(), "1".into()), ("b".into(), "y".into())]
        );
        let runs = spec.runs();
        assert_eq!(runs.len(), 12);
        assert_eq!(runs[3], (3, 1, 6));
    }

    #[test]
    fn a_partial_last_line_is_not_a_record() {
        let full = record(0, 5).json_line() + &record(1, 5).json_line();
        let partial = format!("{full}{}", &record(2, 5).json_line()[..20]);
        assert_eq!(parse_records(&partial).len(), 2);
        // A complete line without its newline may be cut short too: it is redone.
        let unterminated = full.trim_end();
        assert_eq!(parse_records(unterminated).len(), 1);
    }

    #[test]
    fn canonical_order_makes_the_merge_independent_of_order() {
        let all: Vec<SweepRecord> = spec()
            .runs()
            .iter()
            .map(|&(_, p, s)| record(p, s))
            .collect();
        let mut shuffled = all.clone();
        shuffled.reverse();
        shuffled.push(all[0].clone());
        assert_eq!(csv(&canonical(shuffled)), csv(&canonical(all.clone())));
        let text = csv(&canonical(all));
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("point,a,b,seed,status,failed,m,n,ok"));
        assert_eq!(lines.next(), Some("0,1,x,5,pass,,0.5,,true"));
    }

    #[test]
    fn spread_and_numbers() {
        let spread = Spread::of([1.0, 3.0, 2.0]).unwrap();
        assert_eq!(
            (spread.count, spread.mean, spread.min, spread.max),
            (3, 2.0, 1.0, 3.0)
        );
        assert!(Spread::of([]).is_none());
        let record = record(0, 5);
        assert_eq!(record.number("ok"), Some(1.0));
        assert_eq!(record.number("n"), None);
    }
}
