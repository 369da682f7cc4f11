//! `fedlab bench`: runs the scale experiments (`experiments/scale-N.toml`), each in its own
//! process so that its peak memory is its own, and prints one row of figures per run from the
//! `perf.json` and `summary.json` it wrote: wall and simulated time, their ratio (also per CPU
//! second, which other work on the machine does not disturb), deliveries per wall second, peak
//! memory, and whether the run passed its expectations.

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
    for servers in &args.servers {
        let experiment = args.experiments.join(format!("scale-{servers}.toml"));
        let out = args.out.join(format!("scale-{servers}"));
        let mut command = Command::new(&program);
        command.arg("run").arg(&experiment).arg("--out").arg(&out);
        for item in &args.overrides {
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
        let row = read_row(&out)?;
        if !row.passed {
            failed.push(experiment.display().to_string());
        }
        println!("{}", format_row(&row));
    }
    match failed.as_slice() {
        [] => Ok(()),
        _ => Err(Failure::failed(format!(
            "expectations failed in {}",
            failed.join(", ")
        ))),
    }
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
}
