//! `fedlab report DIR...`: merges sweep directories (the shards of one sweep) and writes
//! `report.md`, `merged.csv` and the sweep plots.
//!
//! The merge keeps one record per (point, seed) in canonical order, so merging the shards of a
//! sweep gives the same `merged.csv` as the sweep run whole. Directories of different sweeps
//! (another experiment, grid or seed range) are refused rather than mixed.
//! Exit codes: 0 written (an incomplete sweep is reported in `report.md` and on stderr); 2 bad
//! input.

use super::Failure;
use crate::report::sweep::{SWEEP_JSON, SweepSpec, canonical, read_records, write_report};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Sweep directories (written by `fedlab sweep --out`), e.g. the shards of one sweep.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Where report.md, merged.csv and plots/ go (default: the first directory).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: ReportArgs) -> Result<(), Failure> {
    let mut spec: Option<(SweepSpec, PathBuf)> = None;
    let mut records = Vec::new();
    for dir in &args.dirs {
        let path = dir.join(SWEEP_JSON);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Failure::bad_input(format!(
                "{}: cannot read ({e}); expected a directory written by `fedlab sweep --out`",
                path.display()
            ))
        })?;
        let this: SweepSpec = serde_json::from_str(&text).map_err(|e| {
            Failure::bad_input(format!("{}: not a sweep definition: {e}", path.display()))
        })?;
        match &spec {
            Some((first, first_dir)) if *first != this => {
                return Err(Failure::bad_input(format!(
                    "{} and {} hold different sweeps; expected shards of one sweep (same experiment, --param and --seeds)",
                    first_dir.display(),
                    dir.display()
                )));
            }
            Some(_) => {}
            None => spec = Some((this, dir.clone())),
        }
        records.extend(read_records(dir).map_err(|e| Failure::bad_input(e.to_string()))?);
    }
    let (spec, first_dir) = spec.expect("clap requires at least one directory");
    let records = canonical(records);
    let out = args.out.unwrap_or(first_dir);
    let sources: Vec<String> = args.dirs.iter().map(|d| d.display().to_string()).collect();
    write_report(&out, &spec, &records, &sources)
        .map_err(|e| Failure::bad_input(format!("cannot write the report: {e}")))?;
    let expected = spec.runs().len();
    if records.len() < expected {
        eprintln!(
            "fedlab report: {} of {expected} runs recorded; the report covers those only",
            records.len()
        );
    }
    println!("report: {}", out.join("report.md").display());
    Ok(())
}
