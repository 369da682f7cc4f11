//! What a run leaves behind: the results directory (`summary.json`, `perf.json`,
//! `timeline.csv`, `trace.jsonl`, plots as SVG and PNG), the summary table printed at the end
//! of a run, and the progress bar shown while it runs.
//!
//! Invariants: everything written from the simulated part of a [`RunOutput`] is byte-identical
//! for equal inputs (`perf.json` alone carries machine-dependent figures); nothing here reads
//! the system's fonts, a display or the clock; the report only reads the run output and never
//! changes it.

mod files;
mod font;
mod plots;
mod progress;
pub mod sweep;
mod table;
mod units;

pub use files::{PERF_FILE, SUMMARY_FILE, TIMELINE_FILE, TIMELINE_HEADER, TRACE_FILE};
pub use plots::{
    DIVERGENCE_STEM, EXTREMITIES_STEM, LATENCY_CDF_STEM, SIZE_PX as PLOT_SIZE_PX, SpreadPlot,
    percentile_nearest_rank, write_spread_svg,
};
pub use progress::Progress;
pub use table::{first_failure, print_summary};

use crate::observe::record::RunOutput;
use std::io;
use std::path::Path;

/// Writes the results directory of one run into `dir`, creating it if needed. Files of an
/// earlier run in the same directory are overwritten; a `trace.jsonl` left by an earlier run is
/// removed when this run has no trace. Errors name the file.
pub fn write_run(dir: &Path, output: &RunOutput) -> io::Result<()> {
    std::fs::create_dir_all(dir).map_err(|error| files::with_path(dir, error))?;
    let summary = files::summary_json(&output.summary)?;
    files::write_file(dir, SUMMARY_FILE, summary.as_bytes())?;
    files::write_file(dir, PERF_FILE, files::perf_json(&output.perf)?.as_bytes())?;
    let timeline = files::timeline_csv(&output.timeline);
    files::write_file(dir, TIMELINE_FILE, timeline.as_bytes())?;
    match &output.trace {
        Some(lines) => files::write_file(dir, TRACE_FILE, files::trace_jsonl(lines)?.as_bytes())?,
        None => files::remove_stale(dir, TRACE_FILE)?,
    }
    plots::write_plots(dir, output)
}
