//! `fedlab shrink`: from a failing (experiment, seed) to the smallest experiment found that
//! still fails the same expectation at the same seed, saved as an experiment file whose header
//! says what it fails and how to replay it.
//!
//! Exit codes: 0 when a file was written (the failure is what the user asked to keep); 2 when
//! the experiment is broken, does not fail at that seed, or the file cannot be written.

use super::Failure;
use crate::sim::attempt::run_at_seed;
use crate::sim::experiment::duration::SimDuration;
use crate::sim::experiment::{ExperimentFile, load_experiment, parse_experiment};
use crate::sim::experiment_toml::{experiment_toml, inline_topology};
use crate::sim::shrink::{self, Event, Limits, Size, Stop, Trial};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Args)]
pub struct ShrinkArgs {
    /// The experiment file that fails.
    pub experiment: PathBuf,
    /// The seed at which it fails.
    #[arg(long)]
    pub seed: u64,
    /// The expectation to keep failing (default: the first that fails).
    #[arg(long)]
    pub expectation: Option<String>,
    /// Where the smallest experiment goes (default: results/shrink/<name>-seed<N>.toml).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Wall time the search may take, as a duration such as 5m or 90s.
    #[arg(long, default_value = "5m")]
    pub time_limit: String,
    /// Most candidate runs the search may make.
    #[arg(long, default_value_t = 200)]
    pub attempts: usize,
}

pub fn run(args: ShrinkArgs) -> Result<(), Failure> {
    let time_limit = SimDuration::parse(&args.time_limit)
        .map_err(|error| Failure::bad_input(format!("--time-limit: {error}")))?;
    let experiment =
        load_experiment(&args.experiment).map_err(|e| Failure::bad_input(e.to_string()))?;
    let seed = args.seed;
    let original_replay = format!("fedlab run {} --seed {seed}", args.experiment.display());
    let output = run_at_seed(&experiment, seed, &original_replay)
        .map_err(|e| Failure::bad_input(format!("{}: {e}", args.experiment.display())))?;
    let failed: Vec<_> = output
        .summary
        .expectations
        .iter()
        .filter(|verdict| !verdict.passed)
        .collect();
    let target = match &args.expectation {
        Some(key) => failed
            .iter()
            .find(|verdict| &verdict.key == key)
            .ok_or_else(|| {
                Failure::bad_input(format!(
                    "{} seed {seed}: expectation {key:?} does not fail; failing: [{}]",
                    args.experiment.display(),
                    failed
                        .iter()
                        .map(|v| v.key.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?,
        None => failed.first().ok_or_else(|| {
            Failure::bad_input(format!(
                "{} passes at seed {seed}: nothing to shrink",
                args.experiment.display()
            ))
        })?,
    };
    let key = target.key.clone();
    let target_failure = Target {
        key: key.clone(),
        measured: measured(&target.actual),
    };
    let first_failure = format!("{key}: expected {}, got {}", target.expected, target.actual);
    let name = format!("{}-seed{seed}", experiment.name());
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("results")
            .join("shrink")
            .join(format!("{name}.toml"))
    });
    let mut start = inline_topology(&experiment).map_err(Failure::bad_input)?;
    start.name = out
        .file_stem()
        .and_then(|stem| stem.to_str())
        .map_or(name, str::to_owned);
    start.seeds = vec![seed];
    start.description = format!(
        "Shrunk from {} at seed {seed}, failing {key}. Originally: {}",
        experiment.name(),
        experiment.file.description
    );
    let original_size = Size::of(&start);
    eprintln!(
        "fedlab shrink: {} seed {seed} fails {first_failure}; searching for at most {time_limit} or {} runs",
        args.experiment.display(),
        args.attempts
    );
    let bar = progress_bar(args.attempts);
    let limits = Limits {
        time: Duration::from_millis(time_limit.as_ms()),
        attempts_max: args.attempts,
    };
    // Every header names the same run; only the file and the search's progress change.
    let header_for = |file: &ExperimentFile, search: &str| {
        header_lines(
            &args.experiment,
            seed,
            &out,
            &key,
            &first_failure,
            &original_size,
            file,
            search,
        )
    };
    let began = std::time::Instant::now();
    let mut kept = 0usize;
    let shrunk = shrink::shrink(
        start,
        limits,
        |candidate| still_fails(&out, candidate, seed, &target_failure),
        |event| match event {
            Event::Trying { what, attempts } => {
                bar.set_position(attempts as u64);
                bar.set_message(what.to_owned());
            }
            Event::Accepted { what, file } => {
                kept += 1;
                // The smallest so far is on disk at every step: an interrupted search keeps it.
                let header = header_for(
                    file,
                    &format!("search in progress: {kept} simplifications kept so far."),
                );
                if let Ok(text) = experiment_toml(file, &header)
                    && let Err(failure) = write_file(&out, &text)
                {
                    eprintln!("fedlab shrink: {}", failure.message);
                }
                let line = format!("still fails after: {what} -> {}", Size::of(file));
                if bar.is_hidden() {
                    eprintln!("{line}");
                } else {
                    bar.println(line);
                }
            }
        },
    );
    bar.finish_and_clear();
    let stop = match shrunk.stop {
        Stop::Minimal => "no smaller candidate fails",
        Stop::TimeLimit => "time limit reached",
        Stop::AttemptLimit => "attempt limit reached",
    };
    let header = header_for(
        &shrunk.file,
        &format!(
            "{} simplifications kept, {} candidate runs, {:.0} s; stopped: {stop}.",
            shrunk.steps.len(),
            shrunk.attempts,
            began.elapsed().as_secs_f64()
        ),
    );
    let text = experiment_toml(&shrunk.file, &header).map_err(Failure::bad_input)?;
    write_file(&out, &text)?;
    for line in &header {
        println!("{line}");
    }
    println!("written: {}", out.display());
    Ok(())
}

/// The header of a shrunk file: what it fails, where it came from, how to replay it.
#[allow(clippy::too_many_arguments)]
fn header_lines(
    original: &Path,
    seed: u64,
    out: &Path,
    key: &str,
    first_failure: &str,
    original_size: &Size,
    file: &ExperimentFile,
    search: &str,
) -> Vec<String> {
    vec![
        format!(
            "Shrunk by `fedlab shrink` from {} at seed {seed}.",
            original.display()
        ),
        format!("Fails: {key} (at shrink time the original failed {first_failure})."),
        format!("Original: {original_size}. Shrunk: {}.", Size::of(file)),
        search.to_owned(),
        format!("Replay: fedlab run {} --seed {seed}", out.display()),
    ]
}

/// The failure to keep.
struct Target {
    key: String,
    /// The original failed with a measured value: a candidate that fails only because the
    /// metric was never measured (a run too short to converge at all) is a different failure.
    measured: bool,
}

/// Whether a verdict's actual value was measured (the runner writes "not measured ..." else).
fn measured(actual: &str) -> bool {
    !actual.starts_with("not measured")
}

/// Loads `candidate` as if saved at `path` and runs it at `seed`.
fn still_fails(path: &Path, candidate: &ExperimentFile, seed: u64, target: &Target) -> Trial {
    let Ok(text) = experiment_toml(candidate, &[]) else {
        return Trial::Invalid;
    };
    let Ok(experiment) = parse_experiment(path, &text) else {
        return Trial::Invalid;
    };
    let Ok(output) = run_at_seed(&experiment, seed, "") else {
        return Trial::Other;
    };
    let same = output.summary.expectations.iter().any(|verdict| {
        verdict.key == target.key
            && !verdict.passed
            && (!target.measured || measured(&verdict.actual))
    });
    if same {
        Trial::StillFails
    } else {
        Trial::Other
    }
}

fn progress_bar(attempts: usize) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(attempts as u64), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("shrink {pos}/{len} runs [{elapsed_precise}] {wide_msg}")
    {
        bar.set_style(style);
    }
    bar
}

fn write_file(path: &Path, text: &str) -> Result<(), Failure> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| Failure::bad_input(format!("cannot create {}: {e}", parent.display())))?;
    }
    std::fs::write(path, text)
        .map_err(|e| Failure::bad_input(format!("cannot write {}: {e}", path.display())))
}
