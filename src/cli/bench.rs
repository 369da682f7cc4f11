//! `fedlab bench`: runs the scale experiments (`experiments/scale-N.toml`), each in its own
//! process so that its peak memory is its own, and prints one row of figures per run from the
//! `perf.json` and `summary.json` it wrote: wall and simulated time, their ratio (also per CPU
//! second, which other work on the machine does not disturb), deliveries per wall second, peak
//! memory, and whether the run passed its expectations.
//!
//! With `--repeat N` each experiment runs N times: a shared machine's speed varies from run to
//! run, so the best and the median of the ratios are printed after the rows, and the runs'
//! `summary.json` files must be byte-identical (the same seed replays the same run), which
//! makes every repeated bench a replay check too.

use super::Failure;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Server counts to run: `experiments/scale-<N>.toml` for each.
    #[arg(long, value_delimiter = ',', default_values_t = [100, 500, 1000])]
    pub servers: Vec<u32>,
    /// Override a key of every experiment, e.g. `--set duration=2m` for a shorter run.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Where the runs' results go (default: results/bench).
    #[arg(long, default_value = "results/bench")]
    pub out: PathBuf,
    /// Folder of the scale experiments.
    #[arg(long, default_value = "experiments")]
    pub experiments: PathBuf,
    /// How many times to run each experiment (results in `run-1`, `run-2`, ... when more
    /// than once); prints the best and median ratios and checks the summaries are identical.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
}

/// One run's figures, as its files hold them.
#[derive(Debug, Default, PartialEq)]
pub struct Row {
    pub servers: u64,
    pub events_sent: u64,
    pub simulated_s: f64,
    pub wall_s: f64,
    pub simulated_per_wall: f64,
    pub simulated_per_cpu: Option<f64>,
    pub deliveries_per_wall_second: f64,
    pub peak_memory_mib: Option<f64>,
    pub passed: bool,
}

pub fn run(args: BenchArgs) -> Result<(), Failure> {
    let program = std::env::current_exe()
        .map_err(|e| Failure::bad_input(format!("cannot find the fedlab binary: {e}")))?;
    println!("{}", header());
    let mut failed = Vec::new();
    let mut diverged = Vec::new();
    let mut spreads = Vec::new();
    for servers in &args.servers {
        let experiment = args.experiments.join(format!("scale-{servers}.toml"));
        let base = args.out.join(format!("scale-{servers}"));
        let mut rows = Vec::new();
        let mut first_summary: Option<Vec<u8>> = None;
        for attempt in 1..=args.repeat {
            let out = match args.repeat {
                1 => base.clone(),
                _ => base.join(format!("run-{attempt}")),
            };
            run_one(&program, &experiment, &out, &args.overrides)?;
            let row = read_row(&out)?;
            if !row.passed && attempt == 1 {
                failed.push(experiment.display().to_string());
            }
            println!("{}", format_row(&row));
            rows.push(row);
            let summary_path = out.join(crate::report::SUMMARY_FILE);
            let summary = std::fs::read(&summary_path)
                .map_err(|e| Failure::bad_input(format!("{}: {e}", summary_path.display())))?;
            match &first_summary {
                None => first_summary = Some(summary),
                Some(first) if *first != summary => {
                    diverged.push(format!("{} (run {attempt})", experiment.display()));
                }
                Some(_) => {}
            }
        }
        if let Some(spread) = Spread::of(&rows) {
            spreads.push(spread);
        }
    }
    for spread in &spreads {
        println!("{}", spread.describe());
    }
    if !diverged.is_empty() {
        return Err(Failure::failed(format!(
            "a repeated run's summary.json differs from the first run's: {}",
            diverged.join(", ")
        )));
    }
    match failed.as_slice() {
        [] => Ok(()),
        _ => Err(Failure::failed(format!(
            "expectations failed in {}",
            failed.join(", ")
        ))),
    }
}

/// Runs `experiment` in a child `fedlab run` writing to `out`.
fn run_one(
    program: &Path,
    experiment: &Path,
    out: &Path,
    overrides: &[String],
) -> Result<(), Failure> {
    let mut command = Command::new(program);
    command.arg("run").arg(experiment).arg("--out").arg(out);
    for item in overrides {
        command.arg("--set").arg(item);
    }
    let status = command
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| Failure::bad_input(format!("cannot run {}: {e}", program.display())))?;
    // Exit code 1 is a failed expectation: the figures still count. 2 is bad input.
    if status.code() == Some(2) || status.code().is_none() {
        return Err(Failure::bad_input(format!(
            "{}: the run did not complete ({status})",
            experiment.display()
        )));
    }
    Ok(())
}

/// The best and median ratios of repeated runs of one experiment.
#[derive(Debug, PartialEq)]
pub struct Spread {
    pub servers: u64,
    pub runs: usize,
    pub per_wall: (f64, f64),
    pub per_cpu: Option<(f64, f64)>,
}

impl Spread {
    /// `None` for fewer than two runs.
    pub fn of(rows: &[Row]) -> Option<Self> {
        if rows.len() < 2 {
            return None;
        }
        let per_wall: Vec<f64> = rows.iter().map(|row| row.simulated_per_wall).collect();
        let per_cpu: Option<Vec<f64>> = rows.iter().map(|row| row.simulated_per_cpu).collect();
        Some(Self {
            servers: rows[0].servers,
            runs: rows.len(),
            per_wall: best_and_median(per_wall),
            per_cpu: per_cpu.map(best_and_median),
        })
    }

    pub fn describe(&self) -> String {
        let cpu = self.per_cpu.map_or("n/a".to_owned(), |(best, median)| {
            format!("best {best:.2}, median {median:.2}")
        });
        let (best, median) = self.per_wall;
        format!(
            "{} servers, {} runs, summaries identical: sim/cpu {cpu}; sim/wall best {best:.2}, \
             median {median:.2}",
            self.servers, self.runs
        )
    }
}

/// The largest value and the median (the mean of the middle two for an even count).
fn best_and_median(mut values: Vec<f64>) -> (f64, f64) {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    let median = match values.len() % 2 {
        1 => values[middle],
        _ => (values[middle - 1] + values[middle]) / 2.0,
    };
    (values[values.len() - 1], median)
}

/// Reads the figures of the run whose results are in `dir`.
pub fn read_row(dir: &Path) -> Result<Row, Failure> {
    let read = |name: &str| -> Result<Value, Failure> {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Failure::bad_input(format!("{}: {e}", path.display())))?;
        serde_json::from_str(&text)
            .map_err(|e| Failure::bad_input(format!("{}: {e}", path.display())))
    };
    let perf = read(crate::report::PERF_FILE)?;
    let summary = read(crate::report::SUMMARY_FILE)?;
    let number = |value: &Value, key: &str| value.get(key).and_then(Value::as_f64);
    Ok(Row {
        servers: summary.get("servers").and_then(Value::as_u64).unwrap_or(0),
        events_sent: summary
            .pointer("/metrics/events_sent")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        simulated_s: number(&perf, "simulated_ms").unwrap_or(0.0) / 1000.0,
        wall_s: number(&perf, "wall_ms").unwrap_or(0.0) / 1000.0,
        simulated_per_wall: number(&perf, "simulated_per_wall").unwrap_or(0.0),
        simulated_per_cpu: number(&perf, "simulated_per_cpu"),
        deliveries_per_wall_second: number(&perf, "events_delivered_per_wall_second")
            .unwrap_or(0.0),
        peak_memory_mib: number(&perf, "peak_memory_bytes").map(|b| b / (1024.0 * 1024.0)),
        passed: summary
            .get("passed")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

pub fn header() -> String {
    format!(
        "{:>7} {:>7} {:>8} {:>9} {:>9} {:>9} {:>12} {:>9} {:>6}",
        "servers",
        "events",
        "sim s",
        "wall s",
        "sim/wall",
        "sim/cpu",
        "deliveries/s",
        "peak MiB",
        "passed"
    )
}

pub fn format_row(row: &Row) -> String {
    let optional = |value: Option<f64>, decimals: usize| {
        value.map_or("n/a".to_owned(), |v| format!("{v:.decimals$}"))
    };
    format!(
        "{:>7} {:>7} {:>8.1} {:>9.1} {:>9.2} {:>9} {:>12.0} {:>9} {:>6}",
        row.servers,
        row.events_sent,
        row.simulated_s,
        row.wall_s,
        row.simulated_per_wall,
        optional(row.simulated_per_cpu, 2),
        row.deliveries_per_wall_second,
        optional(row.peak_memory_mib, 0),
        if row.passed { "yes" } else { "no" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_reads_the_files_of_a_run() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("perf.json"),
            r#"{"wall_ms": 2000, "simulated_ms": 60000, "simulated_per_wall": 30.0,
                "events_delivered_per_wall_second": 500.0, "peak_memory_bytes": 104857600,
                "cpu_ms": 1500, "simulated_per_cpu": 40.0}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("summary.json"),
            r#"{"servers": 100, "passed": true, "metrics": {"events_sent": 600}}"#,
        )
        .unwrap();
        let row = read_row(dir.path()).unwrap();
        assert_eq!(
            row,
            Row {
                servers: 100,
                events_sent: 600,
                simulated_s: 60.0,
                wall_s: 2.0,
                simulated_per_wall: 30.0,
                simulated_per_cpu: Some(40.0),
                deliveries_per_wall_second: 500.0,
                peak_memory_mib: Some(100.0),
                passed: true,
            }
        );
        let line = format_row(&row);
        assert!(line.contains("30.00") && line.contains("yes"), "{line}");
        assert_eq!(line.len(), header().len());
        assert!(read_row(&dir.path().join("none")).is_err());
    }

    #[test]
    fn repeated_runs_give_the_best_and_the_median() {
        let row = |per_wall: f64, per_cpu: Option<f64>| Row {
            servers: 100,
            simulated_per_wall: per_wall,
            simulated_per_cpu: per_cpu,
            ..Row::default()
        };
        assert_eq!(
            Spread::of(&[row(1.0, Some(2.0))]),
            None,
            "one run has no spread"
        );
        let spread = Spread::of(&[
            row(30.0, Some(40.0)),
            row(50.0, Some(60.0)),
            row(20.0, Some(55.0)),
        ])
        .unwrap();
        assert_eq!(spread.per_wall, (50.0, 30.0));
        assert_eq!(spread.per_cpu, Some((60.0, 55.0)));
        let even = Spread::of(&[row(10.0, None), row(20.0, Some(1.0))]).unwrap();
        assert_eq!(even.per_wall, (20.0, 15.0));
        assert_eq!(
            even.per_cpu, None,
            "a run without CPU time leaves the CPU ratio out"
        );
        assert!(
            even.describe().contains("sim/cpu n/a"),
            "{}",
            even.describe()
        );
    }
}
