//! `fedlab check`: every experiment under the given paths, for the seeds each declares, in
//! parallel across cores; one row per (experiment, seed) with its verdict and, for a failure,
//! the expectation that failed and the command that replays it.
//!
//! Exit codes: 0 when every run passed; 1 when a run failed or could not be run as written
//! (an experiment the runner refuses is not a pass); 2 when a file is broken.

use super::Failure;
use crate::sim::experiment::{Experiment, LoadError, load_all, parse_experiment};
use crate::sim::runner::{self, RunOptions};
use clap::Args;
use std::path::PathBuf;
use std::sync::Mutex;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Experiment files or folders (default: experiments/).
    pub paths: Vec<PathBuf>,
    /// Seeds to run instead of each experiment's own, as A..B (B excluded) or one number.
    #[arg(long)]
    pub seeds: Option<String>,
    /// Parallel runs (default: the number of cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Also run experiments marked `slow = true`.
    #[arg(long)]
    pub slow: bool,
    /// Instead of experiment files, run N swarm experiments, each drawn from its seed (seeds
    /// 1..=N, or --seeds); each is saved under results/swarm/ so a failure replays exactly.
    #[arg(long, value_name = "N", conflicts_with = "paths")]
    pub swarm: Option<u64>,
    /// Override a key of every experiment file, e.g. `--set fabric=turmoil`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

/// One run to do.
struct Job {
    experiment: std::sync::Arc<Experiment>,
    seed: u64,
    overrides: std::sync::Arc<Vec<String>>,
}

/// One row of the report.
struct Row {
    order: usize,
    name: String,
    seed: u64,
    verdict: String,
    detail: String,
    replay: String,
    ok: bool,
}

pub fn run(args: CheckArgs) -> Result<(), Failure> {
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from("experiments")]
    } else {
        args.paths.clone()
    };
    let seeds = args.seeds.as_deref().map(parse_seeds).transpose()?;
    if let Some(count) = args.swarm {
        let seeds = seeds.unwrap_or_else(|| (1..=count).collect());
        return finish(
            swarm_jobs(&seeds, &args.overrides)?,
            &args,
            Vec::new(),
            Vec::new(),
        );
    }
    let overrides = std::sync::Arc::new(args.overrides.clone());
    let mut jobs = Vec::new();
    let mut broken = Vec::new();
    let mut notes = Vec::new();
    for root in &paths {
        let loaded =
            load_all(root).map_err(|e| Failure::bad_input(format!("{}: {e}", root.display())))?;
        for (path, result) in loaded {
            let result = if overrides.is_empty() {
                result
            } else {
                reload_with_overrides(&path, &overrides)?
            };
            match result {
                Err(error) => broken.push(format!("{}: {error}", path.display())),
                Ok(experiment) => {
                    if let Some(reason) = &experiment.file.out_of_model {
                        notes.push(format!("{}: out of the model: {reason}", experiment.name()));
                        continue;
                    }
                    if experiment.file.slow && !args.slow {
                        notes.push(format!(
                            "{}: slow, skipped (pass --slow to run it)",
                            experiment.name()
                        ));
                        continue;
                    }
                    let experiment = std::sync::Arc::new(experiment);
                    let run_seeds = seeds
                        .clone()
                        .unwrap_or_else(|| experiment.file.seeds.clone());
                    for seed in run_seeds {
                        jobs.push(Job {
                            experiment: experiment.clone(),
                            seed,
                            overrides: overrides.clone(),
                        });
                    }
                }
            }
        }
    }
    // Kept failures come first: they are the cheapest evidence that a bug is back.
    jobs.sort_by_key(|job| !is_regression(&job.experiment.path));
    finish(jobs, &args, notes, broken)
}

/// Whether an experiment is a kept failure (a file under a `regressions` folder).
fn is_regression(path: &std::path::Path) -> bool {
    path.components()
        .any(|part| part.as_os_str() == REGRESSIONS_DIR)
}

/// The folder (under experiments/) that keeps shrunk failures.
pub const REGRESSIONS_DIR: &str = "regressions";

/// Draws, saves and loads the swarm experiment of each seed.
/// `--set` keys pin the draw and are written into the saved file, so the replay needs none.
fn swarm_jobs(seeds: &[u64], pins: &[String]) -> Result<Vec<Job>, Failure> {
    let dir = std::path::Path::new(super::swarm::SWARM_DIR);
    seeds
        .iter()
        .map(|&seed| {
            let (path, _) = super::swarm::prepare(seed, pins, dir)?;
            let experiment = crate::sim::experiment::load_experiment(&path)
                .map_err(|e| Failure::bad_input(e.to_string()))?;
            Ok(Job {
                experiment: std::sync::Arc::new(experiment),
                seed,
                overrides: std::sync::Arc::new(Vec::new()),
            })
        })
        .collect()
}

/// Runs the jobs in order (as far as parallelism allows), prints the rows and turns the
/// verdicts into an exit code.
fn finish(
    jobs: Vec<Job>,
    args: &CheckArgs,
    notes: Vec<String>,
    broken: Vec<String>,
) -> Result<(), Failure> {
    let threads = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let rows = run_jobs(jobs, threads);
    print_rows(&rows);
    for note in &notes {
        println!("note: {note}");
    }
    for problem in &broken {
        eprintln!("{problem}");
    }
    let failed: Vec<&Row> = rows.iter().filter(|row| !row.ok).collect();
    println!(
        "{} passed, {} failed",
        rows.len() - failed.len(),
        failed.len()
    );
    if !broken.is_empty() {
        return Err(Failure::bad_input(format!(
            "{} experiment file(s) could not be loaded",
            broken.len()
        )));
    }
    if let Some(first) = failed.first() {
        return Err(Failure::failed(format!(
            "{} seed {} failed; replay: {}",
            first.name, first.seed, first.replay
        )));
    }
    Ok(())
}

/// Loads `path` again with the `--set` overrides applied to its text. An override that does
/// not parse is bad input for the whole command; a file it breaks is reported as broken.
fn reload_with_overrides(
    path: &std::path::Path,
    overrides: &[String],
) -> Result<Result<Experiment, LoadError>, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::bad_input(format!("{}: cannot read: {e}", path.display())))?;
    let text = super::run::apply_overrides(path, &text, overrides)?;
    Ok(parse_experiment(path, &text))
}

pub(crate) fn parse_seeds(text: &str) -> Result<Vec<u64>, Failure> {
    let bad = || {
        Failure::bad_input(format!(
            "--seeds {text:?}: expected A..B (B excluded) or one number"
        ))
    };
    match text.split_once("..") {
        Some((a, b)) => {
            let (a, b): (u64, u64) = (
                a.trim().parse().map_err(|_| bad())?,
                b.trim().parse().map_err(|_| bad())?,
            );
            if a >= b {
                return Err(bad());
            }
            Ok((a..b).collect())
        }
        None => Ok(vec![text.trim().parse().map_err(|_| bad())?]),
    }
}

/// Runs jobs on `threads` threads; rows come back in job order.
fn run_jobs(jobs: Vec<Job>, threads: usize) -> Vec<Row> {
    // Popped from the back: reversed so the first job starts first.
    let queue = Mutex::new(jobs.into_iter().enumerate().rev().collect::<Vec<_>>());
    let rows = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let next = queue.lock().expect("queue lock").pop();
                    let Some((order, job)) = next else { return };
                    let row = run_one(order, &job);
                    rows.lock().expect("rows lock").push(row);
                }
            });
        }
    });
    let mut rows = rows.into_inner().expect("rows lock");
    rows.sort_by_key(|row| row.order);
    rows
}

fn run_one(order: usize, job: &Job) -> Row {
    let experiment = &job.experiment;
    let replay = super::run::replay_command(&experiment.path, job.seed, &job.overrides);
    let mut rng = runner::world::component_rng(job.seed, "plan");
    let plan = experiment.resolve(job.seed, &mut rng);
    let options = RunOptions {
        trace: false,
        replay: replay.clone(),
        ..RunOptions::default()
    };
    // A panic is a bug in fedlab: report it as this run's verdict, with its replay command,
    // instead of taking the other runs down with it.
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runner::run(plan, &options)));
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned()))
                .unwrap_or_else(|| "unknown panic".to_owned());
            let detail = format!("fedlab panicked (a bug): {message}");
            return Row {
                order,
                name: experiment.name().to_owned(),
                seed: job.seed,
                verdict: "PANIC".into(),
                detail,
                replay,
                ok: false,
            };
        }
    };
    let (verdict, detail, ok) = match outcome {
        Ok(output) if output.summary.passed => ("PASS".to_owned(), String::new(), true),
        Ok(output) => {
            let first = output
                .summary
                .expectations
                .iter()
                .find(|verdict| !verdict.passed);
            let detail = first.map_or("failed".to_owned(), |v| {
                format!("{}: expected {}, got {}", v.key, v.expected, v.actual)
            });
            ("FAIL".to_owned(), detail, false)
        }
        Err(error) => ("NOT RUN".to_owned(), error.to_string(), false),
    };
    Row {
        order,
        name: experiment.name().to_owned(),
        seed: job.seed,
        verdict,
        detail,
        replay,
        ok,
    }
}

fn print_rows(rows: &[Row]) {
    let name_width = rows
        .iter()
        .map(|row| row.name.len())
        .max()
        .unwrap_or(10)
        .max(10);
    println!(
        "{:<name_width$}  {:>6}  {:<7}  detail",
        "experiment", "seed", "verdict"
    );
    for row in rows {
        let mut line = format!(
            "{:<name_width$}  {:>6}  {:<7}",
            row.name, row.seed, row.verdict
        );
        if !row.ok {
            line.push_str(&format!("  {}  (replay: {})", row.detail, row.replay));
        }
        println!("{}", line.trim_end());
    }
}
